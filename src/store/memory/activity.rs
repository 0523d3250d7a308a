use std::{collections::HashMap, sync::Mutex};

use async_trait::async_trait;
use foldhash::fast::RandomState;

use crate::{
    activity::LastInbound, clock::Timestamp, contact::Address, error::StoreError, sync::lock,
};

/// Addresses to last inbound times, hashed with a per-map seeded `foldhash` (much cheaper than
/// SipHash on the webhook path).
type Times = HashMap<Address, Timestamp, RandomState>;

/// Keeps the later time; clones the address only the first time it is seen.
fn record_into(last: &mut Times, address: &Address, at: Timestamp) {
    match last.get_mut(address) {
        Some(slot) => *slot = (*slot).max(at),
        None => {
            last.insert(address.clone(), at);
        }
    }
}

/// Last inbound times in memory: a [`LastInbound`].
#[derive(Debug, Default)]
pub struct MemoryLastInbound {
    last: Mutex<Times>,
}

impl MemoryLastInbound {
    /// An empty record.
    pub fn new() -> Self {
        MemoryLastInbound::default()
    }

    /// When `address` last wrote, if ever (the synchronous form of [`LastInbound::last`]).
    pub fn get(&self, address: &Address) -> Option<Timestamp> {
        lock(&self.last).get(address).copied()
    }
}

#[async_trait]
impl LastInbound for MemoryLastInbound {
    async fn record(&self, address: &Address, at: Timestamp) -> Result<(), StoreError> {
        record_into(&mut lock(&self.last), address, at);
        Ok(())
    }

    async fn last(&self, address: &Address) -> Result<Option<Timestamp>, StoreError> {
        Ok(lock(&self.last).get(address).copied())
    }

    async fn forget(&self, address: &Address) -> Result<bool, StoreError> {
        Ok(lock(&self.last).remove(address).is_some())
    }

    async fn record_many(&self, records: &[(&Address, Timestamp)]) -> Result<(), StoreError> {
        let mut last = lock(&self.last);
        for (address, at) in records {
            record_into(&mut last, address, *at);
        }
        Ok(())
    }
}
