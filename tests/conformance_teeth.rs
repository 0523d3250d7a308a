//! The conformance suite fails implementations that break their contract: a suite that passed
//! everything would prove nothing about a host's store.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use tidings::{
    clock::Timestamp,
    contact::ContactId,
    error::StoreError,
    inbox::{Entry, EntryId, Inbox, Incoming, Outgoing, StatusUpdate},
    newsletter::{CampaignId, Outbox, OutcomeRecord, Recorded},
    process::{InstanceId, ProcessInstance, ProcessStore},
    seen::{Claim, SeenEvents},
    store::memory::{MemoryInbox, MemoryOutbox, MemorySeenEvents},
    testkit::conformance,
};

/// Forgets nothing and remembers nothing: every key is new.
struct AmnesiacSeen;

#[async_trait]
impl SeenEvents for AmnesiacSeen {
    async fn is_seen(&self, _: &str, _: Timestamp) -> Result<bool, StoreError> {
        Ok(false)
    }
    async fn mark_seen(&self, _: &str, _: Timestamp, _: Duration) -> Result<bool, StoreError> {
        Ok(true)
    }
    async fn purge_expired(&self, _: Timestamp) -> Result<usize, StoreError> {
        Ok(0)
    }
    async fn forget(&self, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
    async fn claim(&self, _: &str, _: Timestamp, _: Duration) -> Result<Claim, StoreError> {
        Ok(Claim::Acquired)
    }
    async fn settle(&self, _: &str, _: Timestamp, _: Duration) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Claims correctly but never settles: a handled event is claimable again once its lease
/// ends, so a late redelivery would be routed twice.
#[derive(Default)]
struct UnsettledSeen(MemorySeenEvents);

#[async_trait]
impl SeenEvents for UnsettledSeen {
    async fn is_seen(&self, key: &str, now: Timestamp) -> Result<bool, StoreError> {
        self.0.is_seen(key, now).await
    }
    async fn mark_seen(
        &self,
        key: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.0.mark_seen(key, now, ttl).await
    }
    async fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
        self.0.purge_expired(now).await
    }
    async fn forget(&self, key: &str) -> Result<(), StoreError> {
        self.0.forget(key).await
    }
    async fn claim(&self, key: &str, now: Timestamp, lease: Duration) -> Result<Claim, StoreError> {
        self.0.claim(key, now, lease).await
    }
    async fn settle(&self, _: &str, _: Timestamp, _: Duration) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Overwrites outcomes instead of keeping the first.
#[derive(Default)]
struct OverwritingOutbox(MemoryOutbox);

#[async_trait]
impl Outbox for OverwritingOutbox {
    async fn record(&self, record: &OutcomeRecord) -> Result<Recorded, StoreError> {
        let _ = self.0.record(record).await?;
        Ok(Recorded::New)
    }
    async fn finish(&self, record: &OutcomeRecord) -> Result<(), StoreError> {
        self.0.finish(record).await
    }
    async fn get(
        &self,
        c: &CampaignId,
        id: &ContactId,
    ) -> Result<Option<OutcomeRecord>, StoreError> {
        self.0.get(c, id).await
    }
    async fn list(
        &self,
        c: &CampaignId,
        after: Option<&ContactId>,
        limit: usize,
    ) -> Result<Vec<OutcomeRecord>, StoreError> {
        self.0.list(c, after, limit).await
    }
    async fn forget_contact(&self, id: &ContactId) -> Result<usize, StoreError> {
        self.0.forget_contact(id).await
    }
}

/// Lets `finish` overwrite a final outcome (a resumed campaign could then rewrite history).
#[derive(Default)]
struct RefinishingOutbox(MemoryOutbox);

#[async_trait]
impl Outbox for RefinishingOutbox {
    async fn record(&self, record: &OutcomeRecord) -> Result<Recorded, StoreError> {
        self.0.record(record).await
    }
    async fn finish(&self, record: &OutcomeRecord) -> Result<(), StoreError> {
        match self.0.finish(record).await {
            Err(StoreError::Conflict { .. }) => Ok(()),
            other => other,
        }
    }
    async fn get(
        &self,
        c: &CampaignId,
        id: &ContactId,
    ) -> Result<Option<OutcomeRecord>, StoreError> {
        self.0.get(c, id).await
    }
    async fn list(
        &self,
        c: &CampaignId,
        after: Option<&ContactId>,
        limit: usize,
    ) -> Result<Vec<OutcomeRecord>, StoreError> {
        self.0.list(c, after, limit).await
    }
    async fn forget_contact(&self, id: &ContactId) -> Result<usize, StoreError> {
        self.0.forget_contact(id).await
    }
}

/// Lets a late delivery receipt turn a read message back into a delivered one.
#[derive(Default)]
struct BackwardsInbox(MemoryInbox);

#[async_trait]
impl Inbox for BackwardsInbox {
    async fn annotate(
        &self,
        contact: &tidings::ContactId,
        annotation: tidings::inbox::Annotation,
    ) -> Result<Option<tidings::inbox::EntryId>, tidings::StoreError> {
        self.0.annotate(contact, annotation).await
    }

    async fn record_incoming(
        &self,
        c: &ContactId,
        at: Timestamp,
        e: Incoming,
    ) -> Result<EntryId, StoreError> {
        self.0.record_incoming(c, at, e).await
    }
    async fn record_outgoing(
        &self,
        c: &ContactId,
        at: Timestamp,
        e: Outgoing,
    ) -> Result<EntryId, StoreError> {
        self.0.record_outgoing(c, at, e).await
    }
    async fn update_status(&self, update: &StatusUpdate) -> Result<usize, StoreError> {
        // Claims a change for every update, as a naive SQL UPDATE without a status guard would.
        let _ = self.0.update_status(update).await?;
        Ok(1)
    }
    async fn conversation(&self, c: &ContactId, limit: usize) -> Result<Vec<Entry>, StoreError> {
        self.0.conversation(c, limit).await
    }
    async fn reassign(&self, from: &ContactId, into: &ContactId) -> Result<usize, StoreError> {
        self.0.reassign(from, into).await
    }
    async fn forget_contact(&self, c: &ContactId) -> Result<usize, StoreError> {
        self.0.forget_contact(c).await
    }
    async fn conversations(
        &self,
        after: Option<&tidings::inbox::ConversationCursor>,
        limit: usize,
    ) -> Result<tidings::inbox::ConversationPage, StoreError> {
        self.0.conversations(after, limit).await
    }
    async fn mark_read(&self, c: &ContactId, up_to: Timestamp) -> Result<(), StoreError> {
        self.0.mark_read(c, up_to).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "mark_seen: a marked key is refused")]
async fn a_seen_store_that_never_remembers_fails() {
    conformance::seen_events(Arc::new(AmnesiacSeen)).await;
}

#[tokio::test]
#[should_panic(expected = "settle: a settled key is done, past the lease")]
async fn a_seen_store_whose_claims_never_settle_fails() {
    conformance::seen_events(Arc::new(UnsettledSeen::default())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "record: a second outcome changes nothing")]
async fn an_outbox_that_overwrites_fails() {
    conformance::outbox(Arc::new(OverwritingOutbox::default())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "finish: a final outcome is never replaced")]
async fn an_outbox_that_refinishes_fails() {
    conformance::outbox(Arc::new(RefinishingOutbox::default())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "update_status: repeating a status moves nothing")]
async fn an_inbox_whose_statuses_move_backwards_fails() {
    conformance::inbox(Arc::new(BackwardsInbox::default())).await;
}

/// Treats the read watermark as exclusive: the message at the watermark stays unread.
#[derive(Default)]
struct ExclusiveWatermarkInbox(MemoryInbox);

#[async_trait]
impl Inbox for ExclusiveWatermarkInbox {
    async fn annotate(
        &self,
        contact: &tidings::ContactId,
        annotation: tidings::inbox::Annotation,
    ) -> Result<Option<tidings::inbox::EntryId>, tidings::StoreError> {
        self.0.annotate(contact, annotation).await
    }

    async fn record_incoming(
        &self,
        c: &ContactId,
        at: Timestamp,
        e: Incoming,
    ) -> Result<EntryId, StoreError> {
        self.0.record_incoming(c, at, e).await
    }
    async fn record_outgoing(
        &self,
        c: &ContactId,
        at: Timestamp,
        e: Outgoing,
    ) -> Result<EntryId, StoreError> {
        self.0.record_outgoing(c, at, e).await
    }
    async fn update_status(&self, update: &StatusUpdate) -> Result<usize, StoreError> {
        match update {
            StatusUpdate::UpTo {
                contact,
                channel,
                watermark,
                status,
            } => {
                let earlier = StatusUpdate::UpTo {
                    contact: contact.clone(),
                    channel: channel.clone(),
                    watermark: Timestamp::from_millis(watermark.as_millis() - 1),
                    status: *status,
                };
                self.0.update_status(&earlier).await
            }
            other => self.0.update_status(other).await,
        }
    }
    async fn conversation(&self, c: &ContactId, limit: usize) -> Result<Vec<Entry>, StoreError> {
        self.0.conversation(c, limit).await
    }
    async fn reassign(&self, from: &ContactId, into: &ContactId) -> Result<usize, StoreError> {
        self.0.reassign(from, into).await
    }
    async fn forget_contact(&self, c: &ContactId) -> Result<usize, StoreError> {
        self.0.forget_contact(c).await
    }
    async fn conversations(
        &self,
        after: Option<&tidings::inbox::ConversationCursor>,
        limit: usize,
    ) -> Result<tidings::inbox::ConversationPage, StoreError> {
        self.0.conversations(after, limit).await
    }
    async fn mark_read(&self, c: &ContactId, up_to: Timestamp) -> Result<(), StoreError> {
        self.0.mark_read(c, up_to).await
    }
}

/// Lets a finished instance run again, so two instances of one flow run for one contact.
#[derive(Default)]
struct RevivingProcessStore(tidings::store::memory::MemoryProcessStore);

#[async_trait]
impl ProcessStore for RevivingProcessStore {
    async fn insert(&self, i: &ProcessInstance) -> Result<(), StoreError> {
        self.0.insert(i).await
    }
    async fn get(&self, id: &InstanceId) -> Result<Option<ProcessInstance>, StoreError> {
        self.0.get(id).await
    }
    async fn active_for(&self, c: &ContactId) -> Result<Vec<ProcessInstance>, StoreError> {
        self.0.active_for(c).await
    }
    async fn update(&self, i: &ProcessInstance) -> Result<u64, StoreError> {
        match self.0.update(i).await {
            // A naive store that only checks the revision accepts the write.
            Err(StoreError::Invalid { .. }) => Ok(i.revision + 1),
            other => other,
        }
    }
    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<ProcessInstance>, StoreError> {
        self.0.due(now, limit).await
    }
    async fn forget_contact(&self, c: &ContactId) -> Result<usize, StoreError> {
        self.0.forget_contact(c).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "a watermark moves what was sent before it and at it")]
async fn an_inbox_with_an_exclusive_watermark_fails() {
    conformance::inbox(Arc::new(ExclusiveWatermarkInbox::default())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "update: a finished instance cannot run again")]
async fn a_process_store_that_revives_finished_instances_fails() {
    conformance::process_store(Arc::new(RevivingProcessStore::default())).await;
}

/// An outbox whose `forget_contact` removes nothing, as a default implementation would.
#[derive(Default)]
struct UnforgettingOutbox(MemoryOutbox);

#[async_trait]
impl Outbox for UnforgettingOutbox {
    async fn record(&self, record: &OutcomeRecord) -> Result<Recorded, StoreError> {
        self.0.record(record).await
    }
    async fn finish(&self, record: &OutcomeRecord) -> Result<(), StoreError> {
        self.0.finish(record).await
    }
    async fn get(
        &self,
        c: &CampaignId,
        id: &ContactId,
    ) -> Result<Option<OutcomeRecord>, StoreError> {
        self.0.get(c, id).await
    }
    async fn list(
        &self,
        c: &CampaignId,
        after: Option<&ContactId>,
        limit: usize,
    ) -> Result<Vec<OutcomeRecord>, StoreError> {
        self.0.list(c, after, limit).await
    }
    async fn forget_contact(&self, _: &ContactId) -> Result<usize, StoreError> {
        Ok(0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "forget_contact: returns how many records went")]
async fn an_outbox_that_forgets_nothing_fails() {
    conformance::outbox(Arc::new(UnforgettingOutbox::default())).await;
}

/// Keeps its own de-duplication table of incoming message ids and never clears it, so the
/// entries go but their message ids stay (a forgotten index table).
#[derive(Default)]
struct LeakyDedupeInbox {
    inner: MemoryInbox,
    seen: std::sync::Mutex<std::collections::HashMap<(String, String), EntryId>>,
}

#[async_trait]
impl Inbox for LeakyDedupeInbox {
    async fn annotate(
        &self,
        contact: &tidings::ContactId,
        annotation: tidings::inbox::Annotation,
    ) -> Result<Option<tidings::inbox::EntryId>, tidings::StoreError> {
        self.inner.annotate(contact, annotation).await
    }

    async fn record_incoming(
        &self,
        c: &ContactId,
        at: Timestamp,
        e: Incoming,
    ) -> Result<EntryId, StoreError> {
        let key = e.message_id.clone().map(|mid| (e.channel.to_string(), mid));
        if let Some(id) = key
            .as_ref()
            .and_then(|k| self.seen.lock().unwrap().get(k).cloned())
        {
            return Ok(id);
        }
        let id = self.inner.record_incoming(c, at, e).await?;
        if let Some(k) = key {
            self.seen.lock().unwrap().insert(k, id.clone());
        }
        Ok(id)
    }
    async fn record_outgoing(
        &self,
        c: &ContactId,
        at: Timestamp,
        e: Outgoing,
    ) -> Result<EntryId, StoreError> {
        self.inner.record_outgoing(c, at, e).await
    }
    async fn update_status(&self, update: &StatusUpdate) -> Result<usize, StoreError> {
        self.inner.update_status(update).await
    }
    async fn conversation(&self, c: &ContactId, limit: usize) -> Result<Vec<Entry>, StoreError> {
        self.inner.conversation(c, limit).await
    }
    async fn reassign(&self, from: &ContactId, into: &ContactId) -> Result<usize, StoreError> {
        self.inner.reassign(from, into).await
    }
    async fn forget_contact(&self, c: &ContactId) -> Result<usize, StoreError> {
        self.inner.forget_contact(c).await
    }
    async fn conversations(
        &self,
        after: Option<&tidings::inbox::ConversationCursor>,
        limit: usize,
    ) -> Result<tidings::inbox::ConversationPage, tidings::StoreError> {
        self.inner.conversations(after, limit).await
    }
    async fn mark_read(
        &self,
        contact: &tidings::ContactId,
        up_to: tidings::Timestamp,
    ) -> Result<(), tidings::StoreError> {
        self.inner.mark_read(contact, up_to).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "a forgotten incoming message id is recorded as a new entry")]
async fn an_inbox_that_keeps_forgotten_message_ids_fails() {
    conformance::inbox(Arc::new(LeakyDedupeInbox::default())).await;
}

/// Keeps instances inserted as finished in an archive of their own that `forget_contact`
/// misses, as `DELETE ... WHERE contact_id = ? AND active = 1` would.
#[derive(Default)]
struct ActiveOnlyForgetStore {
    inner: tidings::store::memory::MemoryProcessStore,
    archive: std::sync::Mutex<std::collections::HashMap<InstanceId, ProcessInstance>>,
}

#[async_trait]
impl ProcessStore for ActiveOnlyForgetStore {
    async fn insert(&self, i: &ProcessInstance) -> Result<(), StoreError> {
        if i.is_finished() {
            self.archive.lock().unwrap().insert(i.id.clone(), i.clone());
            return Ok(());
        }
        self.inner.insert(i).await
    }
    async fn get(&self, id: &InstanceId) -> Result<Option<ProcessInstance>, StoreError> {
        match self.inner.get(id).await? {
            Some(i) => Ok(Some(i)),
            None => Ok(self.archive.lock().unwrap().get(id).cloned()),
        }
    }
    async fn active_for(&self, c: &ContactId) -> Result<Vec<ProcessInstance>, StoreError> {
        self.inner.active_for(c).await
    }
    async fn update(&self, i: &ProcessInstance) -> Result<u64, StoreError> {
        self.inner.update(i).await
    }
    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<ProcessInstance>, StoreError> {
        self.inner.due(now, limit).await
    }
    async fn forget_contact(&self, c: &ContactId) -> Result<usize, StoreError> {
        self.inner.forget_contact(c).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "finished and failed ones included")]
async fn a_process_store_that_forgets_only_active_instances_fails() {
    conformance::process_store(Arc::new(ActiveOnlyForgetStore::default())).await;
}

/// Drops a reaction or an edit whose target is not recorded yet (what an inbox that stores
/// annotations by entry id does).
#[derive(Default)]
struct DropsEarlyAnnotations(MemoryInbox);

#[async_trait]
impl Inbox for DropsEarlyAnnotations {
    async fn annotate(
        &self,
        contact: &ContactId,
        annotation: tidings::inbox::Annotation,
    ) -> Result<Option<EntryId>, StoreError> {
        let known = self.0.conversation(contact, usize::MAX).await?;
        if !known.iter().any(|e| e.is_target_of(&annotation)) {
            return Ok(None);
        }
        self.0.annotate(contact, annotation).await
    }
    async fn record_incoming(
        &self,
        c: &ContactId,
        at: Timestamp,
        e: Incoming,
    ) -> Result<EntryId, StoreError> {
        self.0.record_incoming(c, at, e).await
    }
    async fn record_outgoing(
        &self,
        c: &ContactId,
        at: Timestamp,
        e: Outgoing,
    ) -> Result<EntryId, StoreError> {
        self.0.record_outgoing(c, at, e).await
    }
    async fn update_status(&self, update: &StatusUpdate) -> Result<usize, StoreError> {
        self.0.update_status(update).await
    }
    async fn conversation(&self, c: &ContactId, limit: usize) -> Result<Vec<Entry>, StoreError> {
        self.0.conversation(c, limit).await
    }
    async fn reassign(&self, from: &ContactId, into: &ContactId) -> Result<usize, StoreError> {
        self.0.reassign(from, into).await
    }
    async fn forget_contact(&self, c: &ContactId) -> Result<usize, StoreError> {
        self.0.forget_contact(c).await
    }
    async fn conversations(
        &self,
        after: Option<&tidings::inbox::ConversationCursor>,
        limit: usize,
    ) -> Result<tidings::inbox::ConversationPage, StoreError> {
        self.0.conversations(after, limit).await
    }
    async fn mark_read(&self, c: &ContactId, up_to: Timestamp) -> Result<(), StoreError> {
        self.0.mark_read(c, up_to).await
    }
}

#[tokio::test]
#[should_panic(expected = "the early reaction and two edits")]
async fn the_suite_catches_an_inbox_that_drops_early_annotations() {
    conformance::inbox(Arc::new(DropsEarlyAnnotations::default())).await;
}
