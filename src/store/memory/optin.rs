use std::{collections::BTreeMap, sync::Mutex};

use async_trait::async_trait;

use crate::{
    contact::ContactId,
    error::StoreError,
    optin::{OptInRecord, OptIns},
    sync::lock,
};

/// Per contact, records by (channel name, topic): the order [`OptIns::list`] promises.
type Records = BTreeMap<ContactId, BTreeMap<(String, String), OptInRecord>>;

/// Notification opt-ins in memory: an [`OptIns`].
#[derive(Debug, Default)]
pub struct MemoryOptIns {
    records: Mutex<Records>,
}

impl MemoryOptIns {
    /// No opt-ins.
    pub fn new() -> Self {
        MemoryOptIns::default()
    }
}

/// Keeps `record` under its (channel, topic) of `list` unless the one there is later.
fn keep(list: &mut BTreeMap<(String, String), OptInRecord>, record: OptInRecord) -> bool {
    let key = (record.channel.to_string(), record.topic().to_owned());
    match list.get(&key) {
        Some(stored) if stored.at > record.at => false,
        _ => {
            list.insert(key, record);
            true
        }
    }
}

#[async_trait]
impl OptIns for MemoryOptIns {
    async fn record(&self, record: OptInRecord) -> Result<bool, StoreError> {
        let mut records = lock(&self.records);
        Ok(keep(
            records.entry(record.contact.clone()).or_default(),
            record,
        ))
    }

    async fn list(&self, contact: &ContactId) -> Result<Vec<OptInRecord>, StoreError> {
        Ok(lock(&self.records)
            .get(contact)
            .map(|list| list.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn reassign(&self, from: &ContactId, into: &ContactId) -> Result<usize, StoreError> {
        if from == into {
            return Ok(0);
        }
        let mut records = lock(&self.records);
        let Some(moved) = records.remove(from) else {
            return Ok(0);
        };
        let count = moved.len();
        let target = records.entry(into.clone()).or_default();
        for (_, mut record) in moved {
            record.contact = into.clone();
            keep(target, record);
        }
        Ok(count)
    }

    async fn forget_contact(&self, contact: &ContactId) -> Result<usize, StoreError> {
        Ok(lock(&self.records).remove(contact).map_or(0, |l| l.len()))
    }
}
