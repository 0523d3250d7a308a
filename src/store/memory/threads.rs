use std::{collections::HashMap, sync::Mutex};

use async_trait::async_trait;

use crate::{
    clock::Timestamp,
    contact::Address,
    error::StoreError,
    sync::lock,
    threads::{ThreadOwner, ThreadOwners, ThreadState},
};

/// Thread owners in memory: a [`ThreadOwners`].
#[derive(Debug, Default)]
pub struct MemoryThreadOwners {
    owners: Mutex<HashMap<Address, ThreadState>>,
}

impl MemoryThreadOwners {
    /// No thread spoken about.
    pub fn new() -> Self {
        MemoryThreadOwners::default()
    }
}

#[async_trait]
impl ThreadOwners for MemoryThreadOwners {
    async fn set(
        &self,
        address: &Address,
        owner: ThreadOwner,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut owners = lock(&self.owners);
        if owners.get(address).is_some_and(|s| s.since > at) {
            return Ok(false);
        }
        owners.insert(address.clone(), ThreadState::new(owner, at));
        Ok(true)
    }

    async fn get(&self, address: &Address) -> Result<Option<ThreadState>, StoreError> {
        Ok(lock(&self.owners).get(address).cloned())
    }

    async fn forget(&self, address: &Address) -> Result<bool, StoreError> {
        Ok(lock(&self.owners).remove(address).is_some())
    }
}
