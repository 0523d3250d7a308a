use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    ops::Bound,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;

use super::MemoryLastInbound;
use crate::{
    clock::SharedClock,
    contact::{Address, Contact, ContactId, NewContact},
    error::StoreError,
    identity::Directory,
    segment::{Activity, Cursor, Segment, SegmentPage, SegmentQuery},
    sync::lock,
};

const CURSOR_PREFIX: &str = "after:";

/// Keeps the first of each address, in order.
fn dedup_addresses(addresses: &mut Vec<Address>) {
    let mut seen = std::collections::HashSet::new();
    addresses.retain(|a| seen.insert(a.clone()));
}

#[derive(Debug, Default)]
struct State {
    contacts: BTreeMap<ContactId, Contact>,
    by_address: HashMap<Address, ContactId>,
    next_id: u64,
}

impl State {
    fn owner_conflict(&self, address: &Address, id: &ContactId) -> Option<StoreError> {
        match self.by_address.get(address) {
            Some(owner) if owner != id => Some(StoreError::conflict(format!(
                "address {address} is linked to contact {owner}"
            ))),
            _ => None,
        }
    }
}

/// Where a [`MemoryDirectory`] reads activity for `active_within` segments.
struct ActivitySource {
    last: Arc<MemoryLastInbound>,
    clock: SharedClock,
}

/// Contacts in memory: a [`Directory`] and a [`SegmentQuery`] over them.
///
/// Ids are assigned as `c1`, `c2`, ...; [`MemoryDirectory::insert`] takes contacts with ids of
/// the host's choosing. Segment pages follow contact-id order. Segments with `active_within`
/// conditions need a last-inbound record ([`with_activity`](MemoryDirectory::with_activity));
/// without one they are refused with [`StoreError::Invalid`] (treating nobody as active would
/// make `not active_within` match everyone).
#[derive(Default)]
pub struct MemoryDirectory {
    state: Mutex<State>,
    activity: Option<ActivitySource>,
}

impl fmt::Debug for MemoryDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryDirectory")
            .field("contacts", &self.len())
            .field("activity", &self.activity.is_some())
            .finish()
    }
}

impl MemoryDirectory {
    /// Hands `read` the contacts of `segment` from `start` on, in id order, evaluated at the
    /// activity source's time.
    fn matching<R>(
        &self,
        segment: &Segment,
        start: Bound<ContactId>,
        read: impl FnOnce(&mut dyn Iterator<Item = &Contact>) -> R,
    ) -> R {
        let lookup = |a: &Address| self.activity.as_ref().and_then(|s| s.last.get(a));
        let activity = match &self.activity {
            Some(source) if segment.reads_activity() => Activity::new(source.clock.now(), &lookup),
            _ => Activity::none(),
        };
        let state = lock(&self.state);
        let mut matching = state
            .contacts
            .range((start, Bound::Unbounded))
            .map(|(_, c)| c)
            .filter(|c| segment.matches_at(c, &activity));
        read(&mut matching)
    }

    /// An empty directory.
    pub fn new() -> Self {
        MemoryDirectory::default()
    }

    /// Evaluates `active_within` segment conditions against `last` at `clock`'s time.
    pub fn with_activity(mut self, last: Arc<MemoryLastInbound>, clock: SharedClock) -> Self {
        self.activity = Some(ActivitySource { last, clock });
        self
    }

    /// Stores `contact` under its own id, linking its addresses. Fails with a conflict if the
    /// id exists or an address is linked.
    pub fn insert(&self, mut contact: Contact) -> Result<(), StoreError> {
        dedup_addresses(&mut contact.addresses);
        let mut state = lock(&self.state);
        if state.contacts.contains_key(&contact.id) {
            return Err(StoreError::conflict(format!(
                "contact {} exists",
                contact.id
            )));
        }
        if let Some(e) = contact
            .addresses
            .iter()
            .find_map(|a| state.owner_conflict(a, &contact.id))
        {
            return Err(e);
        }
        for a in &contact.addresses {
            state.by_address.insert(a.clone(), contact.id.clone());
        }
        state.contacts.insert(contact.id.clone(), contact);
        Ok(())
    }

    /// How many contacts are stored.
    pub fn len(&self) -> usize {
        lock(&self.state).contacts.len()
    }

    /// Whether no contact is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Directory for MemoryDirectory {
    async fn get(&self, id: &ContactId) -> Result<Option<Contact>, StoreError> {
        Ok(lock(&self.state).contacts.get(id).cloned())
    }

    async fn find_by_address(&self, address: &Address) -> Result<Option<Contact>, StoreError> {
        let state = lock(&self.state);
        Ok(state
            .by_address
            .get(address)
            .and_then(|id| state.contacts.get(id))
            .cloned())
    }

    async fn create(&self, new: NewContact) -> Result<Contact, StoreError> {
        let mut state = lock(&self.state);
        let id = loop {
            state.next_id += 1;
            let candidate =
                ContactId::new(format!("c{}", state.next_id)).map_err(StoreError::backend)?;
            if !state.contacts.contains_key(&candidate) {
                break candidate;
            }
        };
        if let Some(e) = new
            .addresses
            .iter()
            .find_map(|a| state.owner_conflict(a, &id))
        {
            return Err(e);
        }
        let mut contact = new.into_contact(id.clone());
        dedup_addresses(&mut contact.addresses);
        for a in &contact.addresses {
            state.by_address.insert(a.clone(), id.clone());
        }
        state.contacts.insert(id, contact.clone());
        Ok(contact)
    }

    async fn link(&self, id: &ContactId, address: &Address) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        if !state.contacts.contains_key(id) {
            return Err(StoreError::not_found("contact", id.as_str()));
        }
        if let Some(e) = state.owner_conflict(address, id) {
            return Err(e);
        }
        if state
            .by_address
            .insert(address.clone(), id.clone())
            .is_none()
        {
            if let Some(c) = state.contacts.get_mut(id) {
                c.addresses.push(address.clone());
            }
        }
        Ok(())
    }

    async fn unlink(&self, address: &Address) -> Result<Option<ContactId>, StoreError> {
        let mut state = lock(&self.state);
        let owner = state.by_address.remove(address);
        if let Some(c) = owner.as_ref().and_then(|id| state.contacts.get_mut(id)) {
            c.addresses.retain(|a| a != address);
        }
        Ok(owner)
    }

    async fn merge(&self, from: &ContactId, into: &ContactId) -> Result<Contact, StoreError> {
        if from == into {
            return Err(StoreError::conflict(format!(
                "cannot merge contact {from} into itself"
            )));
        }
        let mut state = lock(&self.state);
        if !state.contacts.contains_key(into) {
            return Err(StoreError::not_found("contact", into.as_str()));
        }
        let source = state
            .contacts
            .remove(from)
            .ok_or_else(|| StoreError::not_found("contact", from.as_str()))?;
        for a in &source.addresses {
            state.by_address.insert(a.clone(), into.clone());
        }
        let target = state
            .contacts
            .get_mut(into)
            .ok_or_else(|| StoreError::not_found("contact", into.as_str()))?;
        crate::identity::absorb(target, source);
        Ok(target.clone())
    }

    async fn forget_contact(&self, id: &ContactId) -> Result<Option<Contact>, StoreError> {
        let mut state = lock(&self.state);
        let Some(contact) = state.contacts.remove(id) else {
            return Ok(None);
        };
        for a in &contact.addresses {
            if state.by_address.get(a) == Some(id) {
                state.by_address.remove(a);
            }
        }
        Ok(Some(contact))
    }
}

#[async_trait]
impl SegmentQuery for MemoryDirectory {
    async fn page(
        &self,
        segment: &Segment,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<SegmentPage, StoreError> {
        if limit == 0 {
            return Err(StoreError::invalid("page limit must be at least 1"));
        }
        let start = match after {
            None => Bound::Unbounded,
            Some(cursor) => {
                let id = cursor
                    .as_str()
                    .strip_prefix(CURSOR_PREFIX)
                    .and_then(|id| ContactId::new(id).ok())
                    .ok_or_else(|| {
                        StoreError::invalid(format!(
                            "cursor {:?} was not issued by this store",
                            cursor.as_str()
                        ))
                    })?;
                Bound::Excluded(id)
            }
        };
        self.check(segment)?;
        let (contacts, more) = self.matching(segment, start, |matching| {
            let contacts: Vec<Contact> = (&mut *matching).take(limit).cloned().collect();
            (contacts, matching.next().is_some())
        });
        let next = match contacts.last() {
            Some(last) if more => Some(Cursor::new(format!("{CURSOR_PREFIX}{}", last.id))),
            _ => None,
        };
        Ok(SegmentPage::new(contacts, next))
    }

    fn check(&self, segment: &Segment) -> Result<(), StoreError> {
        if segment.reads_activity() && self.activity.is_none() {
            return Err(StoreError::invalid(
                "the segment reads activity (active_within) and this directory has no \
                 last-inbound record: build it with MemoryDirectory::with_activity",
            ));
        }
        Ok(())
    }

    async fn count(&self, segment: &Segment) -> Result<Option<u64>, StoreError> {
        self.check(segment)?;
        let n = self.matching(segment, Bound::Unbounded, |matching| matching.count());
        Ok(Some(u64::try_from(n).unwrap_or(u64::MAX)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        activity::LastInbound,
        clock::{Clock, ManualClock, Timestamp},
        contact::Channel,
    };

    #[tokio::test]
    async fn active_within_segments_read_the_last_inbound_record() {
        let clock = ManualClock::new(Timestamp::from_secs(1_000_000));
        let last = Arc::new(MemoryLastInbound::new());
        let directory = MemoryDirectory::new().with_activity(last.clone(), clock.shared());
        for (id, psid) in [("a", "1"), ("b", "2"), ("c", "3")] {
            let mut contact = Contact::new(ContactId::new(id).unwrap());
            contact
                .addresses
                .push(Address::messenger("page", psid).unwrap());
            directory.insert(contact).unwrap();
        }
        let wrote = |psid: &str, ago_hours: u64| {
            let last = last.clone();
            let at = clock
                .now()
                .saturating_sub(Duration::from_secs(ago_hours * 3600));
            let address = Address::messenger("page", psid).unwrap();
            async move { last.record(&address, at).await.unwrap() }
        };
        wrote("1", 2).await;
        wrote("2", 30).await;
        let segment = Segment::active_within(Channel::Messenger, 24).unwrap();
        let ids = |page: SegmentPage| -> Vec<String> {
            page.contacts.iter().map(|c| c.id.to_string()).collect()
        };
        assert_eq!(
            ids(directory.page(&segment, None, 10).await.unwrap()),
            ["a"]
        );
        // Time moves on: nobody is active any more.
        clock.advance(Duration::from_secs(23 * 3600));
        assert!(
            directory
                .page(&segment, None, 10)
                .await
                .unwrap()
                .contacts
                .is_empty()
        );
        // Without a record, activity segments are refused, not evaluated as "nobody active".
        let plain = MemoryDirectory::new();
        let inactive = Segment::negate(segment.clone()).unwrap();
        assert!(matches!(
            plain.page(&inactive, None, 10).await,
            Err(StoreError::Invalid { .. })
        ));
    }
}
