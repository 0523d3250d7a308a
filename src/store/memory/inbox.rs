use std::{collections::HashMap, sync::Mutex};

use async_trait::async_trait;

use crate::{
    clock::Timestamp,
    contact::{Channel, ContactId},
    error::StoreError,
    inbox::{
        Annotation, ConversationCursor, ConversationPage, ConversationSummary, Entry, EntryContent,
        EntryId, Inbox, Incoming, Outgoing, StatusUpdate,
    },
    sync::lock,
};

#[derive(Debug, Default)]
struct State {
    /// Every entry, indexed by recording order (the id is the index plus one). A forgotten
    /// entry leaves `None`, so later ids keep their index and no id is ever reused.
    entries: Vec<Option<Entry>>,
    /// Per contact, indexes into `entries` sorted by (time, recording order).
    by_contact: HashMap<ContactId, Vec<usize>>,
    /// Incoming entries by (channel, transport message id), for idempotent recording.
    incoming: HashMap<(Channel, String), usize>,
    /// Incoming entries by (channel, inbound event key), for idempotent recording of events
    /// without a message id.
    by_event: HashMap<(Channel, String), usize>,
    /// Outgoing entries by (channel, transport message id), for receipts.
    outgoing: HashMap<(Channel, String), usize>,
    /// The agents' read mark per conversation.
    read: HashMap<ContactId, Timestamp>,
    /// Reactions and edits per contact, in (time, recording) order.
    annotations: HashMap<ContactId, Vec<Annotation>>,
    /// Whose annotation each (channel, event key) recorded, for idempotent recording.
    annotation_keys: HashMap<(Channel, String), ContactId>,
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
            .push(Some(Entry::new(id.clone(), contact.clone(), at, content)));
        let list = self.by_contact.entry(contact.clone()).or_default();
        let entries = &self.entries;
        // Entries recorded later sort after earlier ones with the same time.
        let pos = list.partition_point(|&i| at_of(entries, i) <= Some(at));
        list.insert(pos, index);
        Ok((index, id))
    }

    /// The live entry at `i`, with the annotations of its contact that target it.
    fn annotated(&self, i: usize) -> Option<Entry> {
        let entry = live(&self.entries, i)?;
        let notes: Vec<Annotation> = self
            .annotations
            .get(&entry.contact)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|a| entry.is_target_of(a))
            .cloned()
            .collect();
        Some(entry.clone().with_annotations(notes))
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
        let event_key = entry
            .event_key
            .as_ref()
            .map(|k| (entry.channel.clone(), k.clone()));
        let found = key
            .as_ref()
            .and_then(|k| state.incoming.get(k))
            .or_else(|| event_key.as_ref().and_then(|k| state.by_event.get(k)))
            .and_then(|&i| live(&state.entries, i));
        if let Some(existing) = found {
            return Ok(existing.id.clone());
        }
        let (index, id) = state.push(contact, at, EntryContent::Incoming(entry))?;
        if let Some(k) = key {
            state.incoming.insert(k, index);
        }
        if let Some(k) = event_key {
            state.by_event.insert(k, index);
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
                if let Some(Entry {
                    content: EntryContent::Outgoing(out),
                    ..
                }) = state.entries.get_mut(index).and_then(Option::as_mut)
                {
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
                    let Some(entry) = entries.get_mut(index).and_then(Option::as_mut) else {
                        continue;
                    };
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
            if let Some(entry) = entries.get_mut(i).and_then(Option::as_mut) {
                entry.contact = into.clone();
            }
        }
        let target = by_contact.entry(into.clone()).or_default();
        target.extend_from_slice(&moved);
        // Stable by (time, recording order): indexes are in recording order.
        target.sort_by_key(|&i| (at_of(entries, i), i));
        if let Some(mark) = state.read.remove(from) {
            let kept = state.read.entry(into.clone()).or_insert(mark);
            *kept = (*kept).max(mark);
        }
        if let Some(notes) = state.annotations.remove(from) {
            for note in &notes {
                if let Some(key) = &note.event_key {
                    state
                        .annotation_keys
                        .insert((note.channel.clone(), key.clone()), into.clone());
                }
            }
            let target = state.annotations.entry(into.clone()).or_default();
            target.extend(notes);
            // Stable: each list was in (time, recording) order.
            target.sort_by_key(|a| a.at);
        }
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
            .filter_map(|&i| state.annotated(i))
            .collect())
    }

    async fn conversations(
        &self,
        after: Option<&ConversationCursor>,
        limit: usize,
    ) -> Result<ConversationPage, StoreError> {
        if limit == 0 {
            return Err(StoreError::invalid("page limit must be at least 1"));
        }
        let after = after
            .map(|c| ConversationCursor::parse(c.as_str()))
            .transpose()?;
        let state = lock(&self.state);
        // (newest time, contact) of every conversation, newest first.
        let mut keys: Vec<(Timestamp, &ContactId, usize)> = state
            .by_contact
            .iter()
            .filter_map(|(contact, list)| {
                let &newest = list.last()?;
                Some((at_of(&state.entries, newest)?, contact, newest))
            })
            .filter(|(at, contact, _)| match &after {
                None => true,
                Some((a, c)) => (*at, *contact) < (*a, c),
            })
            .collect();
        keys.sort_by(|x, y| (y.0, y.1).cmp(&(x.0, x.1)));
        let more = keys.len() > limit;
        let conversations: Vec<ConversationSummary> = keys
            .into_iter()
            .take(limit)
            .filter_map(|(_, contact, newest)| {
                let last = state.annotated(newest)?;
                let mark = state.read.get(contact).copied();
                let unread = state.by_contact.get(contact).map_or(0, |list| {
                    list.iter()
                        .filter_map(|&i| live(&state.entries, i))
                        .filter(|e| matches!(e.content, EntryContent::Incoming(_)))
                        .filter(|e| mark.is_none_or(|m| e.at > m))
                        .count()
                });
                Some(ConversationSummary::new(
                    contact.clone(),
                    last,
                    u64::try_from(unread).unwrap_or(u64::MAX),
                ))
            })
            .collect();
        let next = match conversations.last() {
            Some(last) if more => Some(last.cursor()),
            _ => None,
        };
        Ok(ConversationPage::new(conversations, next))
    }

    async fn mark_read(&self, contact: &ContactId, up_to: Timestamp) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        let mark = state.read.entry(contact.clone()).or_insert(up_to);
        *mark = (*mark).max(up_to);
        Ok(())
    }

    async fn forget_contact(&self, contact: &ContactId) -> Result<usize, StoreError> {
        let mut state = lock(&self.state);
        state.read.remove(contact);
        if let Some(notes) = state.annotations.remove(contact) {
            for note in notes {
                if let Some(key) = note.event_key {
                    state.annotation_keys.remove(&(note.channel, key));
                }
            }
        }
        let Some(indexes) = state.by_contact.remove(contact) else {
            return Ok(0);
        };
        let State {
            entries,
            incoming,
            by_event,
            outgoing,
            ..
        } = &mut *state;
        let mut removed = 0;
        for i in indexes {
            let Some(entry) = entries.get_mut(i).and_then(Option::take) else {
                continue;
            };
            removed += 1;
            // The lookups of its transport message ids go with it (only where they still
            // point at this entry: an id sent again later belongs to the later entry).
            let unindex = |map: &mut HashMap<(Channel, String), usize>, key| {
                if map.get(&key) == Some(&i) {
                    map.remove(&key);
                }
            };
            match entry.content {
                EntryContent::Incoming(Incoming {
                    channel,
                    message_id,
                    event_key,
                    ..
                }) => {
                    if let Some(mid) = message_id {
                        unindex(incoming, (channel.clone(), mid));
                    }
                    if let Some(key) = event_key {
                        unindex(by_event, (channel, key));
                    }
                }
                EntryContent::Outgoing(out) => {
                    for d in out.deliveries {
                        for mid in d.message_ids {
                            unindex(outgoing, (d.channel.clone(), mid));
                        }
                    }
                }
            }
        }
        Ok(removed)
    }

    async fn annotate(
        &self,
        contact: &ContactId,
        annotation: Annotation,
    ) -> Result<Option<EntryId>, StoreError> {
        let mut state = lock(&self.state);
        let target = (annotation.channel.clone(), annotation.message_id.clone());
        let found = state
            .incoming
            .get(&target)
            .or_else(|| state.outgoing.get(&target))
            .and_then(|&i| live(&state.entries, i))
            .filter(|e| e.contact == *contact)
            .map(|e| e.id.clone());
        if let Some(key) = &annotation.event_key {
            let key = (annotation.channel.clone(), key.clone());
            if state.annotation_keys.contains_key(&key) {
                return Ok(found);
            }
            state.annotation_keys.insert(key, contact.clone());
        }
        let list = state.annotations.entry(contact.clone()).or_default();
        let pos = list.partition_point(|a| a.at <= annotation.at);
        list.insert(pos, annotation);
        Ok(found)
    }
}

/// The entry at index `i`, unless it was forgotten.
fn live(entries: &[Option<Entry>], i: usize) -> Option<&Entry> {
    entries.get(i).and_then(Option::as_ref)
}

/// The time of the entry at index `i` (`None`, sorting first, for a forgotten one: indexes
/// never point at one, as forgetting removes a contact's whole list).
fn at_of(entries: &[Option<Entry>], i: usize) -> Option<Timestamp> {
    live(entries, i).map(|e| e.at)
}
