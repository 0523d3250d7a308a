use std::{
    collections::{BTreeSet, HashMap},
    sync::Mutex,
};

use async_trait::async_trait;

use crate::{
    clock::Timestamp,
    contact::ContactId,
    error::StoreError,
    process::{FlowId, InstanceId, ProcessInstance, ProcessStore},
    sync::lock,
};

#[derive(Debug, Default)]
struct State {
    instances: HashMap<InstanceId, ProcessInstance>,
    /// The unfinished instances of each contact, sorted by id, so `active_for` (called for
    /// every inbound message) reads only the contact's own, and "one unfinished instance per
    /// contact and flow" is checked over those few. A `Vec`, not a set: a contact runs a
    /// handful of flows, and this index is paid for by every idle instance.
    by_contact: HashMap<ContactId, Vec<InstanceId>>,
    /// Unfinished instances with a `due_at`, in due order, so `due` does not scan idle ones.
    due: BTreeSet<(Timestamp, InstanceId)>,
}

impl State {
    fn finish(&mut self, instance: &ProcessInstance) {
        if let Some(ids) = self.by_contact.get_mut(&instance.contact) {
            ids.retain(|id| *id != instance.id);
            if ids.is_empty() {
                self.by_contact.remove(&instance.contact);
            }
        }
    }

    /// The unfinished instance of `contact` running `flow`, if any.
    fn running(&self, contact: &ContactId, flow: &FlowId) -> Option<&InstanceId> {
        self.by_contact
            .get(contact)?
            .iter()
            .find(|id| self.instances.get(*id).is_some_and(|i| &i.flow == flow))
    }

    fn index_due(&mut self, instance: &ProcessInstance) {
        if let (Some(at), false) = (instance.due_at, instance.is_finished()) {
            self.due.insert((at, instance.id.clone()));
        }
    }
}

/// Flow instances in memory: a [`ProcessStore`].
#[derive(Debug, Default)]
pub struct MemoryProcessStore {
    state: Mutex<State>,
}

impl MemoryProcessStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryProcessStore::default()
    }
}

#[async_trait]
impl ProcessStore for MemoryProcessStore {
    async fn insert(&self, instance: &ProcessInstance) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        if state.instances.contains_key(&instance.id) {
            return Err(StoreError::conflict(format!(
                "instance {} exists",
                instance.id
            )));
        }
        if !instance.is_finished() {
            if let Some(running) = state.running(&instance.contact, &instance.flow) {
                return Err(StoreError::conflict(format!(
                    "contact {} already runs flow {} as instance {running}",
                    instance.contact, instance.flow
                )));
            }
            let ids = state
                .by_contact
                .entry(instance.contact.clone())
                .or_default();
            let at = ids.partition_point(|id| *id < instance.id);
            ids.insert(at, instance.id.clone());
        }
        state.index_due(instance);
        state
            .instances
            .insert(instance.id.clone(), instance.clone());
        Ok(())
    }

    async fn get(&self, id: &InstanceId) -> Result<Option<ProcessInstance>, StoreError> {
        Ok(lock(&self.state).instances.get(id).cloned())
    }

    async fn active_for(&self, contact: &ContactId) -> Result<Vec<ProcessInstance>, StoreError> {
        let state = lock(&self.state);
        // Ids in order, so instances come out sorted by id.
        Ok(state
            .by_contact
            .get(contact)
            .into_iter()
            .flatten()
            .filter_map(|id| state.instances.get(id).cloned())
            .collect())
    }

    async fn update(&self, instance: &ProcessInstance) -> Result<u64, StoreError> {
        let mut state = lock(&self.state);
        let stored = state
            .instances
            .get(&instance.id)
            .ok_or_else(|| StoreError::not_found("process instance", instance.id.as_str()))?;
        let previous_due = stored.due_at;
        if stored.revision != instance.revision {
            return Err(StoreError::conflict(format!(
                "instance {} is at revision {}, the update was based on {}",
                instance.id, stored.revision, instance.revision
            )));
        }
        if stored.is_finished() && !instance.is_finished() {
            return Err(StoreError::invalid(format!(
                "instance {} has finished and cannot run again; start a new instance",
                instance.id
            )));
        }
        if stored.contact != instance.contact || stored.flow != instance.flow {
            return Err(StoreError::invalid(format!(
                "instance {} cannot change its contact or flow",
                instance.id
            )));
        }
        let revision = instance.revision.checked_add(1).ok_or_else(|| {
            StoreError::invalid(format!("instance {} revision overflow", instance.id))
        })?;
        let mut next = instance.clone();
        next.revision = revision;
        if next.is_finished() {
            state.finish(&next);
        }
        if previous_due != next.due_at || next.is_finished() {
            if let Some(at) = previous_due {
                state.due.remove(&(at, next.id.clone()));
            }
            state.index_due(&next);
        }
        state.instances.insert(next.id.clone(), next);
        Ok(revision)
    }

    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<ProcessInstance>, StoreError> {
        let state = lock(&self.state);
        Ok(state
            .due
            .iter()
            .take_while(|(at, _)| *at <= now)
            .filter_map(|(_, id)| state.instances.get(id))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn forget_contact(&self, contact: &ContactId) -> Result<usize, StoreError> {
        let mut state = lock(&self.state);
        // Finished instances are in no per-contact index (it would cost every idle instance
        // memory for a rare call): a scan finds them.
        let ids: Vec<InstanceId> = state
            .instances
            .values()
            .filter(|i| i.contact == *contact)
            .map(|i| i.id.clone())
            .collect();
        state.by_contact.remove(contact);
        for id in &ids {
            if let Some(at) = state.instances.remove(id).and_then(|i| i.due_at) {
                state.due.remove(&(at, id.clone()));
            }
        }
        Ok(ids.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str, contact: &str, flow: &str) -> ProcessInstance {
        ProcessInstance::new(
            InstanceId::new(id).unwrap(),
            FlowId::new(flow).unwrap(),
            1,
            ContactId::new(contact).unwrap(),
            "start",
        )
    }

    #[tokio::test]
    async fn active_for_reads_the_contacts_own_index() {
        let store = MemoryProcessStore::new();
        for (id, contact, flow) in [("b", "ann", "f1"), ("a", "ann", "f2"), ("c", "bob", "f1")] {
            store.insert(&instance(id, contact, flow)).await.unwrap();
        }
        let ann = ContactId::new("ann").unwrap();
        let ids = |list: Vec<ProcessInstance>| -> Vec<String> {
            list.into_iter().map(|i| i.id.as_str().to_owned()).collect()
        };
        assert_eq!(ids(store.active_for(&ann).await.unwrap()), ["a", "b"]);
        let mut done = store
            .get(&InstanceId::new("a").unwrap())
            .await
            .unwrap()
            .unwrap();
        done.status = crate::process::InstanceStatus::Finished;
        store.update(&done).await.unwrap();
        assert_eq!(ids(store.active_for(&ann).await.unwrap()), ["b"]);
        let state = lock(&store.state);
        assert_eq!(state.by_contact.get(&ann).map(Vec::len), Some(1));
        assert_eq!(state.by_contact.len(), 2);
    }
}
