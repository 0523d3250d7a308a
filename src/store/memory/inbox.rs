use std::{collections::HashMap, sync::Mutex};

use async_trait::async_trait;

use crate::{
    clock::Timestamp,
    contact::{Channel, ContactId},
    error::StoreError,
    inbox::{Entry, EntryContent, EntryId, Inbox, Incoming, Outgoing, StatusUpdate},
    sync::lock,
};

#[derive(Debug, Default)]
struct State {
    /// Every entry, indexed by recording order.
    entries: Vec<Entry>,
    /// Per contact, indexes into `entries` sorted by (time, recording order).
    by_contact: HashMap<ContactId, Vec<usize>>,
    /// Incoming entries by (channel, transport message id), for idempotent recording.
    incoming: HashMap<(Channel, String), usize>,
    /// Outgoing entries by (channel, transport message id), for receipts.
    outgoing: HashMap<(Channel, String), usize>,
}

impl State {
    fn push(
        &mut self,
        contact: &ContactId,
        at: Timestamp,
        content: EntryContent,
    ) -> Result<(usize, EntryId), StoreError> {
        let index = self.entries.len();
        let id = EntryId::new(format!("e{}", index + 1)).map_err(StoreError::backend)?;
        self.entries
            .push(Entry::new(id.clone(), contact.clone(), at, content));
        let list = self.by_contact.entry(contact.clone()).or_default();
        let entries = &self.entries;
        // Entries recorded later sort after earlier ones with the same time.
        let pos = list.partition_point(|&i| entries[i].at <= at);
        list.insert(pos, index);
        Ok((index, id))
    }
}

/// Conversations in memory: an [`Inbox`].
#[derive(Debug, Default)]
pub struct MemoryInbox {
    state: Mutex<State>,
}

impl MemoryInbox {
    /// An empty inbox.
    pub fn new() -> Self {
        MemoryInbox::default()
    }
}

#[async_trait]
impl Inbox for MemoryInbox {
    async fn record_incoming(
        &self,
        contact: &ContactId,
        at: Timestamp,
        entry: Incoming,
    ) -> Result<EntryId, StoreError> {
        let mut state = lock(&self.state);
        let key = entry
            .message_id
            .as_ref()
            .map(|mid| (entry.channel.clone(), mid.clone()));
        if let Some(&existing) = key.as_ref().and_then(|k| state.incoming.get(k)) {
            return Ok(state.entries[existing].id.clone());
        }
        let (index, id) = state.push(contact, at, EntryContent::Incoming(entry))?;
        if let Some(k) = key {
            state.incoming.insert(k, index);
        }
        Ok(id)
    }

    async fn record_outgoing(
        &self,
        contact: &ContactId,
        at: Timestamp,
        entry: Outgoing,
    ) -> Result<EntryId, StoreError> {
        let mut state = lock(&self.state);
        let keys: Vec<(Channel, String)> = entry
            .deliveries
            .iter()
            .flat_map(|d| d.message_ids.iter().map(|m| (d.channel.clone(), m.clone())))
            .collect();
        let (index, id) = state.push(contact, at, EntryContent::Outgoing(entry))?;
        for k in keys {
            state.outgoing.insert(k, index);
        }
        Ok(id)
    }

    async fn update_status(&self, update: &StatusUpdate) -> Result<usize, StoreError> {
        let mut state = lock(&self.state);
        let mut moved = 0;
        match update {
            StatusUpdate::Message {
                channel,
                message_id,
                status,
            } => {
                let key = (channel.clone(), message_id.clone());
                let Some(&index) = state.outgoing.get(&key) else {
                    return Ok(0);
                };
                if let EntryContent::Outgoing(out) = &mut state.entries[index].content {
                    for d in &mut out.deliveries {
                        if &d.channel == channel
                            && d.message_ids.iter().any(|m| m == message_id)
                            && d.status.can_advance_to(*status)
                        {
                            d.status = *status;
                            moved += 1;
                        }
                    }
                }
            }
            StatusUpdate::UpTo {
                contact,
                channel,
                watermark,
                status,
            } => {
                let State {
                    entries,
                    by_contact,
                    ..
                } = &mut *state;
                for &index in by_contact
                    .get(contact)
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                {
                    let entry = &mut entries[index];
                    if entry.at > *watermark {
                        break;
                    }
                    if let EntryContent::Outgoing(out) = &mut entry.content {
                        for d in &mut out.deliveries {
                            if &d.channel == channel && d.status.can_advance_to(*status) {
                                d.status = *status;
                                moved += 1;
                            }
                        }
                    }
                }
            }
        }
        Ok(moved)
    }

    async fn reassign(&self, from: &ContactId, into: &ContactId) -> Result<usize, StoreError> {
        if from == into {
            return Ok(0);
        }
        let mut state = lock(&self.state);
        let Some(moved) = state.by_contact.remove(from) else {
            return Ok(0);
        };
        let State {
            entries,
            by_contact,
            ..
        } = &mut *state;
        for &i in &moved {
            entries[i].contact = into.clone();
        }
        let target = by_contact.entry(into.clone()).or_default();
        target.extend_from_slice(&moved);
        // Stable by (time, recording order): indexes are in recording order.
        target.sort_by_key(|&i| (entries[i].at, i));
        Ok(moved.len())
    }

    async fn conversation(
        &self,
        contact: &ContactId,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let state = lock(&self.state);
        let list = state
            .by_contact
            .get(contact)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let start = list.len().saturating_sub(limit);
        Ok(list[start..]
            .iter()
            .map(|&i| state.entries[i].clone())
            .collect())
    }
}
