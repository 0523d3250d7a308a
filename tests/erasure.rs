//! `Erasure::forget` over the memory stores and the SQLite stores (on a real file): nothing of
//! the forgotten contact is left, nobody else loses anything, a run that failed halfway is
//! finished by running it again, and what other tasks write during the erasure goes too.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use async_trait::async_trait;
use tidings::{
    activity::LastInbound,
    clock::Timestamp,
    contact::{Address, Channel, Contact, ContactId, NewContact},
    erasure::{Erasure, ErasureReport},
    error::StoreError,
    identity::Directory,
    inbox::{Annotation, Change},
    inbox::{DeliveryRecord, Entry, EntryId, Inbox, Incoming, Outgoing, StatusUpdate},
    message::{Message, NotificationOptIn, ReactionAction},
    newsletter::{CampaignId, Outbox, Outcome, OutcomeRecord, Recorded, SkipReason},
    optin::{OptInRecord, OptIns},
    process::{FlowId, InstanceId, InstanceStatus, ProcessInstance, ProcessStore},
    store::memory::{
        MemoryDirectory, MemoryInbox, MemoryLastInbound, MemoryOptIns, MemoryOutbox,
        MemoryProcessStore, MemoryThreadOwners,
    },
    threads::{ThreadOwner, ThreadOwners},
};

/// One set of stores, as the rest of the crate would share them.
#[derive(Clone)]
struct Stores {
    directory: Arc<dyn Directory>,
    inbox: Arc<dyn Inbox>,
    outbox: Arc<dyn Outbox>,
    processes: Arc<dyn ProcessStore>,
    last: Arc<dyn LastInbound>,
    opt_ins: Arc<dyn OptIns>,
    threads: Arc<dyn ThreadOwners>,
}

impl Stores {
    fn memory() -> Stores {
        Stores {
            directory: Arc::new(MemoryDirectory::new()),
            inbox: Arc::new(MemoryInbox::new()),
            outbox: Arc::new(MemoryOutbox::new()),
            processes: Arc::new(MemoryProcessStore::new()),
            last: Arc::new(MemoryLastInbound::new()),
            opt_ins: Arc::new(MemoryOptIns::new()),
            threads: Arc::new(MemoryThreadOwners::new()),
        }
    }

    fn erasure(&self) -> Erasure {
        Erasure::new(
            self.directory.clone(),
            self.inbox.clone(),
            self.outbox.clone(),
            self.processes.clone(),
            self.last.clone(),
        )
        .with_opt_ins(self.opt_ins.clone())
        .with_thread_owners(self.threads.clone())
    }
}

const CAMPAIGNS: [&str; 2] = ["lesson-4", "black-friday"];

fn t(s: i64) -> Timestamp {
    Timestamp::from_secs(1_764_000_000 + s)
}

/// A contact with a Messenger and an e-mail address, and data in every store: two activity
/// records, a conversation of two entries, an outcome in each campaign, a running and a
/// finished flow instance.
async fn seed(s: &Stores, name: &str) -> Contact {
    let contact = s
        .directory
        .create(
            NewContact::new()
                .with_name(name, "Lee")
                .with_email(format!("{name}@example.org"))
                .with_tag("pro")
                .with_field("city", "Lyon")
                .with_address(Address::messenger("page-1", format!("psid-{name}")).unwrap())
                .with_address(Address::email(format!("{name}@example.org")).unwrap()),
        )
        .await
        .unwrap();
    for address in &contact.addresses {
        s.last.record(address, t(10)).await.unwrap();
    }
    let mut optin = NotificationOptIn::new(format!("nm-token-{name}"));
    optin.topic = Some("news".into());
    s.opt_ins
        .record(OptInRecord::new(
            contact.id.clone(),
            Channel::Messenger,
            t(10),
            optin,
        ))
        .await
        .unwrap();
    s.threads
        .set(
            &contact.addresses[0],
            ThreadOwner::Other { app_id: None },
            t(10),
        )
        .await
        .unwrap();
    s.inbox
        .record_incoming(
            &contact.id,
            t(10),
            Incoming::new(Channel::Messenger)
                .with_message_id(format!("m-in-{name}"))
                .with_text("I live at 3 rue Victor Hugo"),
        )
        .await
        .unwrap();
    s.inbox
        .record_outgoing(
            &contact.id,
            t(20),
            Outgoing::new(Message::text("Thanks, noted").unwrap())
                .with_author("agent-7")
                .with_delivery(DeliveryRecord::sent(
                    Channel::Messenger,
                    vec![format!("m-out-{name}")],
                )),
        )
        .await
        .unwrap();
    s.inbox
        .annotate(
            &contact.id,
            Annotation::new(
                Channel::Messenger,
                format!("m-out-{name}"),
                t(25),
                Change::Reaction {
                    action: ReactionAction::React,
                    emoji: Some("❤".into()),
                    name: Some("love".into()),
                },
            )
            .with_event_key(format!("messenger:reaction-{name}")),
        )
        .await
        .unwrap();
    for campaign in CAMPAIGNS {
        s.outbox
            .record(&OutcomeRecord::new(
                CampaignId::new(campaign).unwrap(),
                contact.id.clone(),
                Outcome::Skipped {
                    reason: SkipReason::OptedOut,
                },
                t(30),
            ))
            .await
            .unwrap();
    }
    for (n, status) in [(1, InstanceStatus::Waiting), (2, InstanceStatus::Finished)] {
        let mut instance = ProcessInstance::new(
            instance_of(&contact.id, n),
            FlowId::new("check-in").unwrap(),
            1,
            contact.id.clone(),
            "ask",
        );
        instance.status = status;
        instance.due_at = Some(t(40));
        instance.vars.insert("answer".into(), "too fast".into());
        s.processes.insert(&instance).await.unwrap();
    }
    contact
}

fn instance_of(contact: &ContactId, n: u32) -> InstanceId {
    InstanceId::new(format!("{contact}-flow-{n}")).unwrap()
}

/// The report of erasing a contact made by [`seed`] in one complete run.
fn everything() -> ErasureReport {
    let mut report = ErasureReport::default();
    report.contact_found = true;
    report.addresses = 2;
    report.inbox_entries = 2;
    report.outcomes = 2;
    report.flow_instances = 2;
    report.activity_records = 2;
    report.opt_ins = 1;
    report.thread_records = 1;
    report
}

/// Nothing of `contact` is found through any read of any store.
async fn assert_forgotten(s: &Stores, contact: &Contact) {
    assert_eq!(s.directory.get(&contact.id).await.unwrap(), None);
    for address in &contact.addresses {
        assert_eq!(s.directory.find_by_address(address).await.unwrap(), None);
        assert_eq!(s.last.last(address).await.unwrap(), None, "{address}");
        assert_eq!(s.threads.get(address).await.unwrap(), None, "{address}");
    }
    assert!(s.opt_ins.list(&contact.id).await.unwrap().is_empty());
    assert!(
        s.inbox
            .conversation(&contact.id, 100)
            .await
            .unwrap()
            .is_empty()
    );
    for campaign in CAMPAIGNS {
        let campaign = CampaignId::new(campaign).unwrap();
        assert_eq!(s.outbox.get(&campaign, &contact.id).await.unwrap(), None);
        assert!(
            s.outbox
                .list(&campaign, None, 100)
                .await
                .unwrap()
                .iter()
                .all(|r| r.contact != contact.id)
        );
    }
    for n in [1, 2] {
        let id = instance_of(&contact.id, n);
        assert_eq!(s.processes.get(&id).await.unwrap(), None);
    }
    assert!(
        s.processes
            .active_for(&contact.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.processes
            .due(t(1000), 100)
            .await
            .unwrap()
            .iter()
            .all(|i| i.contact != contact.id)
    );
}

/// Everything [`seed`] made for `contact` is still there.
async fn assert_intact(s: &Stores, contact: &Contact) {
    assert_eq!(
        s.directory.get(&contact.id).await.unwrap().as_ref(),
        Some(contact)
    );
    for address in &contact.addresses {
        assert_eq!(
            s.directory
                .find_by_address(address)
                .await
                .unwrap()
                .map(|c| c.id),
            Some(contact.id.clone())
        );
        assert_eq!(s.last.last(address).await.unwrap(), Some(t(10)));
    }
    assert!(
        s.threads
            .get(&contact.addresses[0])
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(s.opt_ins.list(&contact.id).await.unwrap().len(), 1);
    let conversation = s.inbox.conversation(&contact.id, 100).await.unwrap();
    assert_eq!(conversation.len(), 2);
    assert_eq!(conversation[1].annotations.len(), 1, "the reaction is kept");
    for campaign in CAMPAIGNS {
        let campaign = CampaignId::new(campaign).unwrap();
        assert!(
            s.outbox
                .get(&campaign, &contact.id)
                .await
                .unwrap()
                .is_some()
        );
    }
    for n in [1, 2] {
        let id = instance_of(&contact.id, n);
        assert!(s.processes.get(&id).await.unwrap().is_some());
    }
    assert_eq!(s.processes.active_for(&contact.id).await.unwrap().len(), 1);
}

async fn forgets_one_contact_and_nobody_else(s: Stores) {
    let ann = seed(&s, "ann").await;
    let bob = seed(&s, "bob").await;
    let erasure = s.erasure();

    assert_eq!(erasure.forget(&ann.id).await.unwrap(), everything());
    assert_forgotten(&s, &ann).await;
    assert_intact(&s, &bob).await;
    // A status update for one of Ann's messages finds nothing to move.
    let read = StatusUpdate::Message {
        channel: Channel::Messenger,
        message_id: "m-out-ann".into(),
        status: tidings::inbox::DeliveryStatus::Read,
    };
    assert_eq!(s.inbox.update_status(&read).await.unwrap(), 0);

    // Running it again removes nothing and is not an error; neither is an unknown contact.
    assert!(erasure.forget(&ann.id).await.unwrap().nothing_removed());
    let nobody = ContactId::new("nobody").unwrap();
    assert!(erasure.forget(&nobody).await.unwrap().nothing_removed());
    assert_intact(&s, &bob).await;
}

/// An outbox whose `forget_contact` fails the first time, as a database going away halfway
/// through an erasure would.
struct FailsOnce {
    inner: Arc<dyn Outbox>,
    failed: AtomicBool,
}

#[async_trait]
impl Outbox for FailsOnce {
    async fn record(&self, record: &OutcomeRecord) -> Result<Recorded, StoreError> {
        self.inner.record(record).await
    }
    async fn finish(&self, record: &OutcomeRecord) -> Result<(), StoreError> {
        self.inner.finish(record).await
    }
    async fn get(
        &self,
        campaign: &CampaignId,
        contact: &ContactId,
    ) -> Result<Option<OutcomeRecord>, StoreError> {
        self.inner.get(campaign, contact).await
    }
    async fn list(
        &self,
        campaign: &CampaignId,
        after: Option<&ContactId>,
        limit: usize,
    ) -> Result<Vec<OutcomeRecord>, StoreError> {
        self.inner.list(campaign, after, limit).await
    }
    async fn forget_contact(&self, contact: &ContactId) -> Result<usize, StoreError> {
        if !self.failed.swap(true, Ordering::SeqCst) {
            return Err(StoreError::backend(std::io::Error::other(
                "connection reset",
            )));
        }
        self.inner.forget_contact(contact).await
    }
}

async fn a_failed_run_is_finished_by_running_it_again(s: Stores) {
    let ann = seed(&s, "ann").await;
    let bob = seed(&s, "bob").await;
    let flaky = Stores {
        outbox: Arc::new(FailsOnce {
            inner: s.outbox.clone(),
            failed: AtomicBool::new(false),
        }),
        ..s.clone()
    };
    let erasure = flaky.erasure();

    erasure.forget(&ann.id).await.unwrap_err();
    // Halfway: the directory record is still there, so the next run finds the addresses.
    assert_eq!(s.directory.get(&ann.id).await.unwrap().as_ref(), Some(&ann));
    for address in &ann.addresses {
        assert_eq!(s.last.last(address).await.unwrap(), None);
    }
    assert!(s.inbox.conversation(&ann.id, 100).await.unwrap().is_empty());

    let mut rest = everything();
    rest.activity_records = 0;
    rest.inbox_entries = 0;
    rest.thread_records = 0;
    assert_eq!(erasure.forget(&ann.id).await.unwrap(), rest);
    assert_forgotten(&s, &ann).await;
    assert_intact(&s, &bob).await;
    assert!(erasure.forget(&ann.id).await.unwrap().nothing_removed());
}

/// An inbox where a message from the contact arrives while the erasure runs: right after the
/// first `forget_contact` (as the Hub would record one routed before the address went).
struct ArrivesDuringErasure {
    inner: Arc<dyn Inbox>,
    arrived: AtomicBool,
}

#[async_trait]
impl Inbox for ArrivesDuringErasure {
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
        self.inner.record_incoming(c, at, e).await
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
    async fn reassign(&self, from: &ContactId, into: &ContactId) -> Result<usize, StoreError> {
        self.inner.reassign(from, into).await
    }
    async fn conversation(&self, c: &ContactId, limit: usize) -> Result<Vec<Entry>, StoreError> {
        self.inner.conversation(c, limit).await
    }
    async fn forget_contact(&self, c: &ContactId) -> Result<usize, StoreError> {
        let removed = self.inner.forget_contact(c).await?;
        if !self.arrived.swap(true, Ordering::SeqCst) {
            self.inner
                .record_incoming(
                    c,
                    t(50),
                    Incoming::new(Channel::Messenger).with_text("are you there?"),
                )
                .await?;
        }
        Ok(removed)
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

async fn what_arrives_during_the_erasure_goes_too(s: Stores) {
    let ann = seed(&s, "ann").await;
    let racing = Stores {
        inbox: Arc::new(ArrivesDuringErasure {
            inner: s.inbox.clone(),
            arrived: AtomicBool::new(false),
        }),
        ..s.clone()
    };
    let mut report = everything();
    report.inbox_entries = 3;
    assert_eq!(racing.erasure().forget(&ann.id).await.unwrap(), report);
    assert_forgotten(&s, &ann).await;
}

#[tokio::test]
async fn memory_stores_forget_one_contact_and_nobody_else() {
    forgets_one_contact_and_nobody_else(Stores::memory()).await;
}

#[tokio::test]
async fn memory_stores_finish_a_failed_erasure_when_it_runs_again() {
    a_failed_run_is_finished_by_running_it_again(Stores::memory()).await;
}

#[tokio::test]
async fn memory_stores_lose_what_arrives_during_the_erasure() {
    what_arrives_during_the_erasure_goes_too(Stores::memory()).await;
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use tidings::store::sqlite::SqliteStores;

    use super::*;

    fn file(dir: &tempfile::TempDir) -> String {
        dir.path().join("tidings.db").to_str().unwrap().to_owned()
    }

    fn stores(sqlite: &SqliteStores) -> Stores {
        Stores {
            directory: sqlite.directory(),
            inbox: sqlite.inbox(),
            outbox: sqlite.outbox(),
            processes: sqlite.processes(),
            last: sqlite.last_inbound(),
            opt_ins: sqlite.opt_ins(),
            threads: sqlite.thread_owners(),
        }
    }

    #[tokio::test]
    async fn sqlite_stores_forget_one_contact_and_nobody_else() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStores::open(&file(&dir)).await.unwrap();
        forgets_one_contact_and_nobody_else(stores(&sqlite)).await;
    }

    #[tokio::test]
    async fn sqlite_stores_finish_a_failed_erasure_when_it_runs_again() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStores::open(&file(&dir)).await.unwrap();
        a_failed_run_is_finished_by_running_it_again(stores(&sqlite)).await;
    }

    #[tokio::test]
    async fn sqlite_stores_lose_what_arrives_during_the_erasure() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStores::open(&file(&dir)).await.unwrap();
        what_arrives_during_the_erasure_goes_too(stores(&sqlite)).await;
    }

    /// Rows that still mention Ann, per table, read with SQL beside the stores.
    async fn rows_of_ann(sqlite: &SqliteStores, ann: &ContactId) -> Vec<(&'static str, i64)> {
        let by_contact = [
            "contacts WHERE id = ?1",
            "contact_addresses WHERE contact_id = ?1",
            "contact_tags WHERE contact_id = ?1",
            "inbox_entries WHERE contact_id = ?1",
            "inbox_deliveries WHERE contact_id = ?1",
            "inbox_message_ids WHERE message_id LIKE '%-ann'",
            "campaign_outcomes WHERE contact_id = ?1",
            "process_instances WHERE contact_id = ?1",
            "last_inbound WHERE address IN ('psid-ann', 'ann@example.org')",
            "inbox_annotations WHERE contact_id = ?1",
            "opt_ins WHERE contact_id = ?1",
            "thread_owners WHERE address = 'psid-ann'",
        ];
        let mut counts = Vec::new();
        for from in by_contact {
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {from}"))
                .bind(ann.as_str())
                .fetch_one(sqlite.pool())
                .await
                .unwrap();
            counts.push((from, n));
        }
        counts
    }

    #[tokio::test]
    async fn no_row_of_the_contact_is_left_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStores::open(&file(&dir)).await.unwrap();
        let s = stores(&sqlite);
        let ann = seed(&s, "ann").await;
        let bob = seed(&s, "bob").await;
        let before = rows_of_ann(&sqlite, &ann.id).await;
        assert!(before.iter().all(|(_, n)| *n > 0), "seeded: {before:?}");

        s.erasure().forget(&ann.id).await.unwrap();
        sqlite.close().await;

        // Read back from the file, as the next process would.
        let sqlite = SqliteStores::open(&file(&dir)).await.unwrap();
        let after = rows_of_ann(&sqlite, &ann.id).await;
        assert!(after.iter().all(|(_, n)| *n == 0), "left: {after:?}");
        assert_intact(&stores(&sqlite), &bob).await;
    }

    #[tokio::test]
    async fn forgetting_finished_instances_reads_an_index() {
        let sqlite = SqliteStores::open(":memory:").await.unwrap();
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as("EXPLAIN QUERY PLAN DELETE FROM process_instances WHERE contact_id = ?")
                .bind("ann")
                .fetch_all(sqlite.pool())
                .await
                .unwrap();
        let detail: Vec<&str> = plan.iter().map(|(_, _, _, d)| d.as_str()).collect();
        assert!(
            detail
                .iter()
                .any(|d| d.contains("INDEX process_instances_by_contact")),
            "{detail:?}"
        );
    }
}

#[cfg(feature = "postgres")]
#[path = "support/postgres.rs"]
mod support;

#[cfg(feature = "postgres")]
mod postgres {
    use tidings::store::postgres::PostgresStores;

    use super::{support::TestDatabase, *};

    fn stores(pg: &PostgresStores) -> Stores {
        Stores {
            directory: pg.directory(),
            inbox: pg.inbox(),
            outbox: pg.outbox(),
            processes: pg.processes(),
            last: pg.last_inbound(),
            opt_ins: pg.opt_ins(),
            threads: pg.thread_owners(),
        }
    }

    #[tokio::test]
    async fn postgres_stores_forget_one_contact_and_nobody_else() {
        let Some(db) = TestDatabase::create("erase_one").await else {
            return;
        };
        forgets_one_contact_and_nobody_else(stores(&db.stores().await)).await;
    }

    #[tokio::test]
    async fn postgres_stores_finish_a_failed_erasure_when_it_runs_again() {
        let Some(db) = TestDatabase::create("erase_again").await else {
            return;
        };
        a_failed_run_is_finished_by_running_it_again(stores(&db.stores().await)).await;
    }

    #[tokio::test]
    async fn postgres_stores_lose_what_arrives_during_the_erasure() {
        let Some(db) = TestDatabase::create("erase_during").await else {
            return;
        };
        what_arrives_during_the_erasure_goes_too(stores(&db.stores().await)).await;
    }

    #[tokio::test]
    async fn no_row_of_the_contact_is_left_in_the_database() {
        let Some(db) = TestDatabase::create("erase_rows").await else {
            return;
        };
        let pg = db.stores().await;
        let s = stores(&pg);
        let ann = seed(&s, "ann").await;
        let bob = seed(&s, "bob").await;
        let by_contact = [
            "contacts WHERE id = $1",
            "contact_addresses WHERE contact_id = $1",
            "contact_tags WHERE contact_id = $1",
            "inbox_entries WHERE contact_id = $1",
            "inbox_deliveries WHERE contact_id = $1",
            "inbox_message_ids WHERE message_id LIKE '%-ann' AND $1 <> ''",
            "campaign_outcomes WHERE contact_id = $1",
            "process_instances WHERE contact_id = $1",
            "last_inbound WHERE address IN ('psid-ann', 'ann@example.org') AND $1 <> ''",
            "inbox_annotations WHERE contact_id = $1",
            "opt_ins WHERE contact_id = $1",
            "thread_owners WHERE address = 'psid-ann' AND $1 <> ''",
        ];
        let rows = |pg: PostgresStores| {
            let ann = ann.id.clone();
            async move {
                let mut counts = Vec::new();
                for from in by_contact {
                    let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {from}"))
                        .bind(ann.as_str())
                        .fetch_one(pg.pool())
                        .await
                        .unwrap();
                    counts.push((from, n));
                }
                counts
            }
        };
        let before = rows(pg.clone()).await;
        assert!(before.iter().all(|(_, n)| *n > 0), "seeded: {before:?}");
        s.erasure().forget(&ann.id).await.unwrap();
        pg.close().await;
        // Read back through a new pool, as another process would.
        let pg = db.stores().await;
        let after = rows(pg.clone()).await;
        assert!(after.iter().all(|(_, n)| *n == 0), "left: {after:?}");
        assert_intact(&stores(&pg), &bob).await;
    }
}
