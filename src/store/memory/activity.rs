use std::{collections::HashMap, sync::Mutex};

use async_trait::async_trait;

use crate::{
    activity::LastInbound, clock::Timestamp, contact::Address, error::StoreError, sync::lock,
};

/// Last inbound times in memory: a [`LastInbound`].
#[derive(Debug, Default)]
pub struct MemoryLastInbound {
    last: Mutex<HashMap<Address, Timestamp>>,
}

impl MemoryLastInbound {
    /// An empty record.
    pub fn new() -> Self {
        MemoryLastInbound::default()
    }
}

#[async_trait]
impl LastInbound for MemoryLastInbound {
    async fn record(&self, address: &Address, at: Timestamp) -> Result<(), StoreError> {
        let mut last = lock(&self.last);
        let slot = last.entry(address.clone()).or_insert(at);
        *slot = (*slot).max(at);
        Ok(())
    }

    async fn last(&self, address: &Address) -> Result<Option<Timestamp>, StoreError> {
        Ok(lock(&self.last).get(address).copied())
    }
}
