//! Checks that a store implementation keeps its trait's contract.
//!
//! One async function per store trait. Each runs the contract documented on the trait's module
//! against the implementation it is given and panics, naming the clause, on the first
//! violation, so it reads like any failing test. The crate runs the same functions against its
//! own stores.
//!
//! The checks create their own records under random ids, tags and keys, so they can run against
//! a database that holds other data, and several times. Concurrency clauses spawn tasks, so run
//! the checks on a multi-threaded Tokio runtime to exercise real parallelism.
//!
//! ```no_run
//! use std::sync::Arc;
//! use tidings::{store::memory::MemoryDirectory, testkit::conformance};
//!
//! #[tokio::test(flavor = "multi_thread")]
//! async fn my_directory_keeps_the_contract() {
//!     let directory = Arc::new(MemoryDirectory::new()); // your implementation here
//!     conformance::directory(directory.clone()).await;
//!     conformance::segment_query(directory.clone(), directory).await;
//! }
//! # fn main() {}
//! ```

use std::{collections::BTreeSet, sync::Arc, time::Duration};

mod batches;
mod conversation;

pub use batches::campaign_batches;
pub use conversation::{opt_ins, thread_owners};

use serde_json::json;

use crate::{
    activity::LastInbound,
    clock::Timestamp,
    contact::{Address, Channel, ContactId, NewContact},
    error::StoreError,
    identity::Directory,
    inbox::{
        DeliveryRecord, DeliveryStatus, EntryContent, Inbox, Incoming, Outgoing, StatusUpdate,
    },
    message::Message,
    newsletter::{CampaignId, Outbox, Outcome, OutcomeRecord, Recorded, SkipReason},
    process::{FlowId, InstanceId, InstanceStatus, ProcessInstance, ProcessStore},
    seen::{Claim, SeenEvents},
    segment::{Cursor, Segment, SegmentQuery},
};

/// How many tasks race in the concurrency clauses.
const RACERS: usize = 8;

fn unique(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    // A fixed suffix still works on an empty store; randomness only keeps reruns apart.
    let _ = getrandom::fill(&mut bytes);
    format!("{prefix}-{}", u64::from_le_bytes(bytes))
}

fn id(text: &str) -> ContactId {
    ContactId::new(text)
        .unwrap_or_else(|e| panic!("conformance bug: invalid contact id {text:?}: {e}"))
}

fn campaign_id(text: impl Into<String>) -> CampaignId {
    CampaignId::new(text).unwrap_or_else(|e| panic!("conformance bug: {e}"))
}

fn flow_id(text: impl Into<String>) -> FlowId {
    FlowId::new(text).unwrap_or_else(|e| panic!("conformance bug: {e}"))
}

fn instance_id(text: impl Into<String>) -> InstanceId {
    InstanceId::new(text).unwrap_or_else(|e| panic!("conformance bug: {e}"))
}

fn messenger(psid: &str) -> Address {
    Address::messenger("conformance-page", psid)
        .unwrap_or_else(|e| panic!("conformance bug: invalid address: {e}"))
}

/// Runs `RACERS` copies of `op` at once, each on its own task, and returns their results.
async fn race<T, F, Fut>(op: F) -> Vec<Result<T, StoreError>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = (0..RACERS).map(|i| tokio::spawn(op(i))).collect();
    let mut results = Vec::with_capacity(RACERS);
    for task in tasks {
        results.push(
            task.await
                .unwrap_or_else(|e| panic!("a racing task failed: {e}")),
        );
    }
    results
}

/// How many racers succeeded; losers must fail with a conflict.
fn winners<T: std::fmt::Debug>(clause: &str, results: Vec<Result<T, StoreError>>) -> usize {
    results
        .into_iter()
        .filter(|r| match r {
            Ok(_) => true,
            Err(e) if e.is_conflict() => false,
            Err(e) => panic!("{clause}: unexpected error {e:?}"),
        })
        .count()
}

fn ok<T>(clause: &str, result: Result<T, StoreError>) -> T {
    result.unwrap_or_else(|e| panic!("{clause}: unexpected store error: {e:?}"))
}

fn expect_conflict<T: std::fmt::Debug>(clause: &str, result: Result<T, StoreError>) {
    match result {
        Err(e) if e.is_conflict() => {}
        other => panic!("{clause}: expected StoreError::Conflict, got {other:?}"),
    }
}

fn expect_invalid<T: std::fmt::Debug>(clause: &str, result: Result<T, StoreError>) {
    match result {
        Err(StoreError::Invalid { .. }) => {}
        other => panic!("{clause}: expected StoreError::Invalid, got {other:?}"),
    }
}

fn expect_not_found<T: std::fmt::Debug>(clause: &str, result: Result<T, StoreError>) {
    match result {
        Err(e) if e.is_not_found() => {}
        other => panic!("{clause}: expected StoreError::NotFound, got {other:?}"),
    }
}

/// Runs the [`Directory`] contract.
pub async fn directory(dir: Arc<dyn Directory>) {
    let a = messenger(&unique("psid-a"));
    let b = messenger(&unique("psid-b"));
    let c = messenger(&unique("psid-c"));

    // create links the addresses and get / find_by_address return the contact.
    let ann = ok(
        "create",
        dir.create(
            NewContact::new()
                .with_email("ann@example.org")
                .with_name("Ann", "Lee")
                .with_address(a.clone()),
        )
        .await,
    );
    assert_eq!(
        ann.addresses,
        vec![a.clone()],
        "create: the new contact lists its address"
    );
    assert_eq!(
        ann.email.as_deref(),
        Some("ann@example.org"),
        "create: keeps the e-mail"
    );
    let got = ok("get", dir.get(&ann.id).await);
    assert_eq!(got.as_ref(), Some(&ann), "get: returns the created contact");
    let found = ok("find_by_address", dir.find_by_address(&a).await);
    assert_eq!(
        found.map(|c| c.id),
        Some(ann.id.clone()),
        "find_by_address: finds the owner"
    );
    assert_eq!(
        ok("get unknown", dir.get(&id(&unique("nobody"))).await),
        None,
        "get: unknown id is None"
    );
    assert!(
        ok(
            "find unknown",
            dir.find_by_address(&messenger(&unique("nobody"))).await
        )
        .is_none(),
        "find_by_address: unlinked address is None"
    );

    // create with a linked address conflicts and creates nothing.
    expect_conflict(
        "create with an address linked to another contact",
        dir.create(
            NewContact::new()
                .with_address(a.clone())
                .with_address(b.clone()),
        )
        .await,
    );
    assert!(
        ok("find after refused create", dir.find_by_address(&b).await).is_none(),
        "create: a refused create links none of its addresses"
    );

    // link is idempotent for the owner and conflicts for anyone else.
    ok("link", dir.link(&ann.id, &b).await);
    ok(
        "link again to the same contact",
        dir.link(&ann.id, &b).await,
    );
    let ann_now = ok("get after link", dir.get(&ann.id).await)
        .unwrap_or_else(|| panic!("get after link: contact vanished"));
    assert_eq!(
        ann_now.addresses.iter().filter(|x| **x == b).count(),
        1,
        "link: linking twice lists the address once"
    );
    let bob = ok(
        "create second",
        dir.create(
            NewContact::new()
                .with_email("bob@example.org")
                .with_address(c.clone()),
        )
        .await,
    );
    assert_ne!(bob.id, ann.id, "create: assigns distinct ids");
    expect_conflict(
        "link an address owned by another contact",
        dir.link(&bob.id, &b).await,
    );
    expect_not_found(
        "link to a missing contact",
        dir.link(&id(&unique("ghost")), &messenger(&unique("x")))
            .await,
    );

    // unlink returns the owner once.
    assert_eq!(
        ok("unlink", dir.unlink(&b).await),
        Some(ann.id.clone()),
        "unlink: returns the owner"
    );
    assert_eq!(
        ok("unlink again", dir.unlink(&b).await),
        None,
        "unlink: a second unlink finds nothing"
    );
    assert!(
        ok("find after unlink", dir.find_by_address(&b).await).is_none(),
        "unlink: address is free"
    );
    let ann_now = ok("get after unlink", dir.get(&ann.id).await)
        .unwrap_or_else(|| panic!("contact vanished"));
    assert!(
        !ann_now.addresses.contains(&b),
        "unlink: the contact no longer lists the address"
    );
    ok(
        "link a freed address elsewhere",
        dir.link(&bob.id, &b).await,
    );

    // merge moves addresses, keeps the target's data, fills what it lacks.
    let tech = ok(
        "create technical contact",
        dir.create(
            NewContact::new()
                .with_email("fb.123@users.invalid")
                .with_name("Tech", "Contact")
                .with_field("source", "messenger")
                .with_address(messenger(&unique("psid-t"))),
        )
        .await,
    );
    let tech_address = tech.addresses[0].clone();
    let merged = ok("merge", dir.merge(&tech.id, &ann.id).await);
    assert_eq!(merged.id, ann.id, "merge: returns the target");
    assert_eq!(
        merged.email.as_deref(),
        Some("ann@example.org"),
        "merge: keeps the target's e-mail"
    );
    assert_eq!(
        merged.first_name.as_deref(),
        Some("Ann"),
        "merge: keeps the target's name"
    );
    assert_eq!(
        merged.fields.get("source"),
        Some(&json!("messenger")),
        "merge: fills missing fields"
    );
    assert!(
        merged.addresses.contains(&tech_address) && merged.addresses.contains(&a),
        "merge: moves addresses"
    );
    let owner = ok("find after merge", dir.find_by_address(&tech_address).await).map(|c| c.id);
    assert_eq!(
        owner,
        Some(ann.id.clone()),
        "merge: moved addresses resolve to the target"
    );
    let before = ok("get before a merge into itself", dir.get(&ann.id).await);
    expect_conflict(
        "merge a contact into itself",
        dir.merge(&ann.id, &ann.id).await,
    );
    assert_eq!(
        ok("get after a merge into itself", dir.get(&ann.id).await),
        before,
        "merge: merging a contact into itself changes nothing"
    );
    expect_not_found(
        "merge a missing contact",
        dir.merge(&id(&unique("ghost")), &ann.id).await,
    );
    expect_not_found(
        "merge into a missing contact",
        dir.merge(&ann.id, &id(&unique("ghost"))).await,
    );
    assert_eq!(
        ok("get after a merge into nobody", dir.get(&ann.id).await),
        before,
        "merge: a merge into a missing contact changes nothing"
    );

    // Racing creates for one new sender create one contact.
    let racer = messenger(&unique("psid-race"));
    let created = winners(
        "racing create",
        race(|_| {
            let (dir, racer) = (dir.clone(), racer.clone());
            async move { dir.create(NewContact::new().with_address(racer)).await }
        })
        .await,
    );
    assert_eq!(
        created, 1,
        "create: racing creates with one address create exactly one contact"
    );

    directory_forget(&dir).await;
}

/// Runs the [`SegmentQuery`] contract; contacts are created through `dir`, which must be the
/// directory `query` reads.
///
/// A table of segments covering every operator (missing fields, nulls, arrays, `not`) is
/// resolved page by page and compared with [`Segment::matches`] over the same contacts, which
/// is what catches a SQL translation with three-valued-logic mistakes.
pub async fn segment_query(dir: Arc<dyn Directory>, query: Arc<dyn SegmentQuery>) {
    let tag = unique("cohort");
    let mut ours = Vec::new();
    for i in 0..24_i64 {
        let mut new = NewContact::new()
            .with_tag(tag.clone())
            .with_field("lesson", i);
        if i % 3 == 0 {
            new = new.with_address(messenger(&unique("psid-seg")));
        }
        if i % 4 == 0 {
            new = new.with_field("plan", if i % 8 == 0 { "pro" } else { "free" });
        }
        if i % 5 == 0 {
            new = new.with_field("courses", json!(["rust", format!("c{i}")]));
        }
        if i == 7 {
            new = new.with_field("plan", serde_json::Value::Null);
        }
        if i % 2 == 0 {
            new = new
                .with_email(format!("user{i}@example.org"))
                .with_name(format!("N{i:02}"), "Doe");
        }
        ours.push(ok("create for segment", dir.create(new).await));
    }
    let _outsider = ok(
        "create outsider",
        dir.create(NewContact::new().with_field("lesson", 99)).await,
    );

    let cases = [
        json!({"tag": tag}),
        json!({"all":[{"tag": tag},{"any":[{"has_address":"messenger"},{"field":{"name":"lesson","op":"gt","value":19}}]}]}),
        json!({"all":[{"tag": tag},{"field":{"name":"plan","op":"ne","value":"pro"}}]}),
        json!({"all":[{"tag": tag},{"field":{"name":"plan","op":"exists"}}]}),
        json!({"all":[{"tag": tag},{"not":{"field":{"name":"plan","op":"eq","value":"free"}}}]}),
        json!({"all":[{"tag": tag},{"field":{"name":"courses","op":"contains","value":"rust"}}]}),
        json!({"all":[{"tag": tag},{"field":{"name":"email","op":"contains","value":"user1"}}]}),
        json!({"all":[{"tag": tag},{"field":{"name":"first_name","op":"lt","value":"N10"}}]}),
        json!({"all":[{"tag": tag},{"field":{"name":"lesson","op":"lt","value":3.5}}]}),
        json!({"all":[{"tag": tag},{"not":{"has_address":"messenger"}},{"field":{"name":"lesson","op":"eq","value":4}}]}),
    ];
    for case in cases {
        let segment = Segment::from_json(&case.to_string())
            .unwrap_or_else(|e| panic!("conformance bug: {e}"));
        let expected: BTreeSet<ContactId> = ours
            .iter()
            .filter(|c| segment.matches(c))
            .map(|c| c.id.clone())
            .collect();
        let mut seen = BTreeSet::new();
        let mut after: Option<Cursor> = None;
        let mut pages = 0;
        loop {
            let page = ok("page", query.page(&segment, after.as_ref(), 4).await);
            pages += 1;
            assert!(
                page.contacts.len() <= 4,
                "page: holds at most `limit` contacts"
            );
            for c in &page.contacts {
                assert!(
                    seen.insert(c.id.clone()),
                    "page: returns each contact once ({}) for {case}",
                    c.id
                );
            }
            match page.next {
                Some(next) => {
                    assert!(
                        !page.contacts.is_empty(),
                        "page: a page with a next cursor is not empty"
                    );
                    after = Some(next);
                }
                None => break,
            }
            assert!(pages < 100, "page: paging never ends");
        }
        assert_eq!(
            seen, expected,
            "page: following the cursors yields exactly the matching contacts for {case}"
        );
        if let Some(n) = ok("count", query.count(&segment).await) {
            assert_eq!(
                n,
                expected.len() as u64,
                "count: a store that counts counts exactly the matching contacts for {case}"
            );
        }
    }

    let any = Segment::from_json(&json!({"tag": tag}).to_string())
        .unwrap_or_else(|e| panic!("conformance bug: {e}"));
    assert!(
        matches!(
            query
                .page(&any, Some(&Cursor::new("\u{1}not a cursor")), 4)
                .await,
            Err(StoreError::Invalid { .. })
        ),
        "page: a cursor the store did not issue is refused as invalid"
    );
    assert!(
        matches!(
            query.page(&any, None, 0).await,
            Err(StoreError::Invalid { .. })
        ),
        "page: a limit of 0 is refused as invalid"
    );
}

/// Runs the `active_within` part of the [`SegmentQuery`] contract: a store that evaluates
/// activity segments reads `last` (the host's [`LastInbound`] record) and evaluates them at
/// `now`, which the host fixes for the run (give the store a
/// [`ManualClock`](crate::clock::ManualClock) at `now`).
pub async fn segment_activity(
    dir: Arc<dyn Directory>,
    query: Arc<dyn SegmentQuery>,
    last: Arc<dyn LastInbound>,
    now: Timestamp,
) {
    let tag = unique("active");
    let hours_ago = |h: u64| now.saturating_sub(Duration::from_secs(h * 3600));
    // (hours since the last message on Messenger, or none; an e-mail address that wrote?)
    let people: [(Option<u64>, bool); 6] = [
        (Some(1), false),
        (Some(23), false),
        (Some(25), false),
        (None, true),
        (Some(100), true),
        (None, false),
    ];
    let mut everyone = BTreeSet::new();
    let mut recent = BTreeSet::new();
    let mut within_week = BTreeSet::new();
    let mut email_recent = BTreeSet::new();
    for (ago, email) in people {
        let psid = messenger(&unique("psid-active"));
        let mut new = NewContact::new()
            .with_tag(tag.clone())
            .with_address(psid.clone());
        let mail = Address::email(format!("{}@example.org", unique("active")))
            .unwrap_or_else(|e| panic!("conformance bug: {e}"));
        if email {
            new = new.with_address(mail.clone());
        }
        let contact = ok("create for activity", dir.create(new).await);
        everyone.insert(contact.id.clone());
        if let Some(h) = ago {
            ok("record activity", last.record(&psid, hours_ago(h)).await);
            if h <= 24 {
                recent.insert(contact.id.clone());
            }
            if h <= 168 {
                within_week.insert(contact.id.clone());
            }
        }
        if email {
            ok(
                "record e-mail activity",
                last.record(&mail, hours_ago(2)).await,
            );
            email_recent.insert(contact.id.clone());
        }
    }
    let inactive: BTreeSet<ContactId> = everyone.difference(&recent).cloned().collect();
    let cases = [
        (
            json!({"all":[{"tag": tag},{"active_within":{"channel":"messenger","hours":24}}]}),
            recent,
        ),
        (
            json!({"all":[{"tag": tag},{"active_within":{"channel":"messenger","hours":168}}]}),
            within_week,
        ),
        (
            json!({"all":[{"tag": tag},{"active_within":{"channel":"email","hours":24}}]}),
            email_recent,
        ),
        (
            json!({"all":[{"tag": tag},{"not":{"active_within":{"channel":"messenger","hours":24}}}]}),
            inactive,
        ),
    ];
    for (case, expected) in cases {
        let segment = Segment::from_json(&case.to_string())
            .unwrap_or_else(|e| panic!("conformance bug: {e}"));
        let got: BTreeSet<ContactId> = ok("page", query.page(&segment, None, 100).await)
            .contacts
            .into_iter()
            .map(|c| c.id)
            .collect();
        if let Some(n) = ok("count", query.count(&segment).await) {
            assert_eq!(
                n,
                expected.len() as u64,
                "count: counts active_within segments as the pages read them ({case})"
            );
        }
        assert_eq!(
            got, expected,
            "active_within: a contact is active when its last inbound on the channel is at most N hours before now ({case})"
        );
    }
}

/// Runs the [`LastInbound`] contract.
pub async fn last_inbound(store: Arc<dyn LastInbound>) {
    let a = messenger(&unique("psid-last"));
    let b = messenger(&unique("psid-last"));
    let t = |s: i64| Timestamp::from_secs(1_700_000_000 + s);
    assert_eq!(
        ok("last unknown", store.last(&a).await),
        None,
        "last: an address never recorded has no time"
    );
    ok("record", store.record(&a, t(10)).await);
    assert_eq!(
        ok("last", store.last(&a).await),
        Some(t(10)),
        "last: returns the recorded time"
    );
    ok("record earlier", store.record(&a, t(5)).await);
    assert_eq!(
        ok("last", store.last(&a).await),
        Some(t(10)),
        "record: an earlier time never moves the last activity back"
    );
    ok("record later", store.record(&a, t(20)).await);
    assert_eq!(
        ok("last", store.last(&a).await),
        Some(t(20)),
        "record: a later time moves it forward"
    );
    assert_eq!(
        ok("last other", store.last(&b).await),
        None,
        "record: addresses are independent"
    );
    ok(
        "record_many",
        store
            .record_many(&[(&a, t(15)), (&b, t(30)), (&b, t(25))])
            .await,
    );
    assert_eq!(
        ok("last", store.last(&a).await),
        Some(t(20)),
        "record_many: keeps the later time like record"
    );
    assert_eq!(
        ok("last", store.last(&b).await),
        Some(t(30)),
        "record_many: records every pair"
    );
    let same_psid_other_page = Address::messenger("another-page", a.id())
        .unwrap_or_else(|e| panic!("conformance bug: {e}"));
    assert_eq!(
        ok("last other page", store.last(&same_psid_other_page).await),
        None,
        "record: the same PSID on another Page is another address"
    );

    last_inbound_forget(&store).await;
}

/// Runs the [`Inbox`] contract.
pub async fn inbox(inbox: Arc<dyn Inbox>) {
    let contact = id(&unique("inbox-contact"));
    let other = id(&unique("inbox-other"));
    let t = |ms: i64| Timestamp::from_millis(1_700_000_000_000 + ms);
    let text = |s: &str| Message::text(s).unwrap_or_else(|e| panic!("conformance bug: {e}"));
    let mid = |s: &str| format!("{s}-{}", contact.as_str());

    // Out-of-order arrival still reads in transport-time order.
    let late = ok(
        "record incoming",
        inbox
            .record_incoming(
                &contact,
                t(3000),
                Incoming::new(Channel::Messenger)
                    .with_message_id(mid("m2"))
                    .with_text("second"),
            )
            .await,
    );
    ok(
        "record incoming",
        inbox
            .record_incoming(
                &contact,
                t(1000),
                Incoming::new(Channel::Messenger)
                    .with_message_id(mid("m1"))
                    .with_text("first"),
            )
            .await,
    );
    let again = ok(
        "record incoming twice",
        inbox
            .record_incoming(
                &contact,
                t(3000),
                Incoming::new(Channel::Messenger)
                    .with_message_id(mid("m2"))
                    .with_text("second"),
            )
            .await,
    );
    assert_eq!(
        again, late,
        "record_incoming: a redelivered message returns the existing entry"
    );
    ok(
        "record for another contact",
        inbox
            .record_incoming(
                &other,
                t(1500),
                Incoming::new(Channel::Email).with_text("hi"),
            )
            .await,
    );

    let reply = Outgoing::new(text("reply"))
        .with_author("agent-7")
        .with_delivery(DeliveryRecord::sent(Channel::Messenger, vec![mid("o1")]))
        .with_delivery(DeliveryRecord::refused(Channel::Email, "no e-mail address"));
    ok(
        "record outgoing",
        inbox.record_outgoing(&contact, t(2000), reply).await,
    );

    let conv = ok("conversation", inbox.conversation(&contact, 100).await);
    let order: Vec<i64> = conv
        .iter()
        .map(|e| e.at.as_millis() - t(0).as_millis())
        .collect();
    assert_eq!(
        order,
        vec![1000, 2000, 3000],
        "conversation: ordered by transport time, duplicates dropped"
    );
    assert!(
        conv.iter().all(|e| e.contact == contact),
        "conversation: only the contact's entries"
    );
    match &conv[1].content {
        EntryContent::Outgoing(out) => {
            assert_eq!(
                out.author.as_deref(),
                Some("agent-7"),
                "record_outgoing: keeps the author"
            );
            assert_eq!(
                out.deliveries.len(),
                2,
                "record_outgoing: keeps every delivery record"
            );
        }
        other => panic!("conversation: expected the outgoing entry second, got {other:?}"),
    }
    let last_two = ok(
        "conversation with limit",
        inbox.conversation(&contact, 2).await,
    );
    assert_eq!(
        last_two.iter().map(|e| e.at).collect::<Vec<_>>(),
        vec![t(2000), t(3000)],
        "conversation: `limit` keeps the latest entries, oldest first"
    );

    // Statuses only move forward.
    let by_id = |status| StatusUpdate::Message {
        channel: Channel::Messenger,
        message_id: mid("o1"),
        status,
    };
    assert_eq!(
        ok(
            "delivered",
            inbox.update_status(&by_id(DeliveryStatus::Delivered)).await
        ),
        1,
        "update_status: sent → delivered"
    );
    assert_eq!(
        ok(
            "delivered twice",
            inbox.update_status(&by_id(DeliveryStatus::Delivered)).await
        ),
        0,
        "update_status: repeating a status moves nothing"
    );
    assert_eq!(
        ok(
            "read",
            inbox.update_status(&by_id(DeliveryStatus::Read)).await
        ),
        1,
        "update_status: delivered → read"
    );
    assert_eq!(
        ok(
            "late delivery",
            inbox.update_status(&by_id(DeliveryStatus::Delivered)).await
        ),
        0,
        "update_status: never moves back"
    );
    let unknown = StatusUpdate::Message {
        channel: Channel::Messenger,
        message_id: unique("nope"),
        status: DeliveryStatus::Read,
    };
    assert_eq!(
        ok("unknown id", inbox.update_status(&unknown).await),
        0,
        "update_status: an unknown message id moves nothing"
    );
    let statuses = |conv: &[crate::inbox::Entry]| -> Vec<Vec<DeliveryStatus>> {
        conv.iter()
            .filter_map(|e| match &e.content {
                EntryContent::Outgoing(o) => Some(o.deliveries.iter().map(|d| d.status).collect()),
                _ => None,
            })
            .collect()
    };
    let conv = ok("conversation", inbox.conversation(&contact, 100).await);
    assert_eq!(
        statuses(&conv),
        vec![vec![DeliveryStatus::Read, DeliveryStatus::Refused]],
        "update_status: the refused record is untouched"
    );

    // Watermarks cover what was sent up to and including them, on their channel, for their
    // contact only.
    let sent_on = |channel: Channel, m: &str| {
        Outgoing::new(text(m)).with_delivery(DeliveryRecord::sent(channel, vec![mid(m)]))
    };
    for (ms, channel, m) in [
        (4000, Channel::Messenger, "o2"),
        (4500, Channel::Email, "o2-mail"),
        (5000, Channel::Messenger, "o2-at-watermark"),
        (6000, Channel::Messenger, "o3"),
    ] {
        ok(
            "record outgoing",
            inbox
                .record_outgoing(&contact, t(ms), sent_on(channel, m))
                .await,
        );
    }
    ok(
        "record outgoing for another contact",
        inbox
            .record_outgoing(&other, t(3000), sent_on(Channel::Messenger, "o-other"))
            .await,
    );
    let watermark = StatusUpdate::UpTo {
        contact: contact.clone(),
        channel: Channel::Messenger,
        watermark: t(5000),
        status: DeliveryStatus::Read,
    };
    assert_eq!(
        ok("watermark", inbox.update_status(&watermark).await),
        2,
        "update_status: a watermark moves what was sent before it and at it"
    );
    let conv = ok("conversation", inbox.conversation(&contact, 100).await);
    assert_eq!(
        statuses(&conv),
        vec![
            vec![DeliveryStatus::Read, DeliveryStatus::Refused],
            vec![DeliveryStatus::Read],
            vec![DeliveryStatus::Sent],
            vec![DeliveryStatus::Read],
            vec![DeliveryStatus::Sent]
        ],
        "update_status: other channels and entries after the watermark keep their status"
    );
    let other_conv = ok("conversation", inbox.conversation(&other, 100).await);
    assert_eq!(
        statuses(&other_conv),
        vec![vec![DeliveryStatus::Sent]],
        "update_status: a watermark never touches another contact's messages"
    );

    // Entries without a transport id are never merged, and keep recording order at equal times.
    for word in ["first", "second"] {
        ok(
            "record without id",
            inbox
                .record_incoming(
                    &other,
                    t(2500),
                    Incoming::new(Channel::Email).with_text(word),
                )
                .await,
        );
    }
    let texts: Vec<Option<String>> = ok("conversation", inbox.conversation(&other, 100).await)
        .into_iter()
        .filter_map(|e| match e.content {
            EntryContent::Incoming(i) if i.message_id.is_none() => Some(i.text),
            _ => None,
        })
        .collect();
    assert_eq!(
        texts,
        vec![
            Some("hi".to_owned()),
            Some("first".to_owned()),
            Some("second".to_owned())
        ],
        "record_incoming: entries without a message id are all kept, equal times in recording order"
    );

    // Reassigning moves a conversation and merges it in time order.
    let merged_into = id(&unique("inbox-merged"));
    ok(
        "record for the target",
        inbox
            .record_incoming(
                &merged_into,
                t(2600),
                Incoming::new(Channel::Email).with_text("target's own"),
            )
            .await,
    );
    let moved = ok("reassign", inbox.reassign(&other, &merged_into).await);
    assert_eq!(moved, 4, "reassign: returns how many entries moved");
    assert!(
        ok("conversation", inbox.conversation(&other, 100).await).is_empty(),
        "reassign: the old conversation is empty"
    );
    let times: Vec<i64> = ok("conversation", inbox.conversation(&merged_into, 100).await)
        .iter()
        .map(|e| e.at.as_millis() - t(0).as_millis())
        .collect();
    assert_eq!(
        times,
        vec![1500, 2500, 2500, 2600, 3000],
        "reassign: the merged conversation is in time order"
    );
    assert_eq!(
        ok(
            "reassign nothing",
            inbox.reassign(&other, &merged_into).await
        ),
        0,
        "reassign: nothing left to move"
    );

    // De-duplication is per channel: the same id on another channel is another message.
    let before = ok("conversation", inbox.conversation(&contact, 100).await).len();
    ok(
        "record same id on another channel",
        inbox
            .record_incoming(
                &contact,
                t(7000),
                Incoming::new(Channel::Email)
                    .with_message_id(mid("m2"))
                    .with_text("mail"),
            )
            .await,
    );
    assert_eq!(
        ok("conversation", inbox.conversation(&contact, 100).await).len(),
        before + 1,
        "record_incoming: de-duplication is per (channel, message id)"
    );
    inbox_event_keys(&inbox, &contact).await;
    conversation::inbox_annotations(&inbox).await;

    inbox_forget(&inbox).await;
    inbox_listing(&inbox).await;
}

/// The conversation list: newest activity first, each once across pages, unread counts and
/// read marks that only move forward, marks following a reassign and going with an erasure.
async fn inbox_listing(inbox: &Arc<dyn Inbox>) {
    use crate::inbox::{ConversationCursor, ConversationSummary};
    // Far in the future and apart from other runs, so these are the newest conversations.
    let mut salt = [0u8; 4];
    let _ = getrandom::fill(&mut salt);
    let base = 4_000_000_000_000 + i64::from(u32::from_le_bytes(salt) % 1_000_000) * 1000;
    let t = |ms: i64| Timestamp::from_millis(base + ms);
    let (a, b, c) = (
        id(&unique("list-a")),
        id(&unique("list-b")),
        id(&unique("list-c")),
    );
    let write = |contact: &ContactId, at: i64, text: &str| {
        let inbox = inbox.clone();
        let contact = contact.clone();
        let entry = Incoming::new(Channel::Messenger)
            .with_message_id(unique("list-mid"))
            .with_text(text);
        async move {
            ok(
                "record",
                inbox.record_incoming(&contact, t(at), entry).await,
            )
        }
    };
    write(&a, 10, "a1").await;
    write(&b, 20, "b1").await;
    write(&c, 15, "c1").await;
    write(&a, 30, "a2").await;
    // Newest activity first: a (30), b (20), c (15), read two per page.
    let mut seen: Vec<ConversationSummary> = Vec::new();
    let mut after: Option<ConversationCursor> = None;
    loop {
        let page = ok(
            "conversations",
            inbox.conversations(after.as_ref(), 2).await,
        );
        assert!(
            page.conversations.len() <= 2,
            "conversations: a page holds at most `limit`"
        );
        seen.extend(page.conversations);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
        if seen
            .iter()
            .filter(|s| [&a, &b, &c].contains(&&s.contact))
            .count()
            == 3
        {
            break;
        }
    }
    let ours: Vec<&ConversationSummary> = seen
        .iter()
        .filter(|s| [&a, &b, &c].contains(&&s.contact))
        .collect();
    let order: Vec<&ContactId> = ours.iter().map(|s| &s.contact).collect();
    assert_eq!(
        order,
        vec![&a, &b, &c],
        "conversations: newest activity first, each conversation once"
    );
    assert_eq!(
        ours[0].last.at,
        t(30),
        "conversations: each comes with its newest entry"
    );
    assert_eq!(
        ours[0].unread, 2,
        "conversations: without a mark, every incoming entry is unread"
    );
    // A mark moves forward only.
    ok("mark_read", inbox.mark_read(&a, t(10)).await);
    ok("mark_read", inbox.mark_read(&a, t(5)).await);
    let unread = |contact: ContactId| {
        let inbox = inbox.clone();
        async move {
            let mut after: Option<ConversationCursor> = None;
            loop {
                let page = ok(
                    "conversations",
                    inbox.conversations(after.as_ref(), 50).await,
                );
                if let Some(s) = page.conversations.iter().find(|s| s.contact == contact) {
                    return s.unread;
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => panic!("conversations: {contact} is not listed"),
                }
            }
        }
    };
    assert_eq!(
        unread(a.clone()).await,
        1,
        "mark_read: only entries later than the mark are unread, and marks never move back"
    );
    // Reassigning keeps the later mark.
    ok("mark_read", inbox.mark_read(&b, t(20)).await);
    ok("reassign", inbox.reassign(&b, &a).await);
    assert_eq!(
        unread(a.clone()).await,
        1,
        "reassign: the merged conversation keeps the later read mark"
    );
    // Erasure takes the mark: a new conversation of the same id starts all unread.
    ok("forget_contact", inbox.forget_contact(&a).await);
    write(&a, 40, "a3").await;
    assert_eq!(
        unread(a.clone()).await,
        1,
        "forget_contact: the read mark goes with the conversation"
    );
    expect_invalid(
        "conversations: a limit of 0",
        inbox.conversations(None, 0).await,
    );
    expect_invalid(
        "conversations: a foreign cursor",
        inbox
            .conversations(Some(&ConversationCursor::new("page=2")), 5)
            .await,
    );
}

/// Runs the [`Outbox`] contract.
pub async fn outbox(outbox: Arc<dyn Outbox>) {
    let campaign = campaign_id(unique("campaign"));
    let at = Timestamp::from_secs(1_700_000_000);
    let sent = |c: &ContactId| {
        OutcomeRecord::new(
            campaign.clone(),
            c.clone(),
            Outcome::Sent {
                channel: Channel::Messenger,
                message_ids: vec!["m1".into()],
            },
            at,
        )
    };
    let first = id("outbox-a");
    assert_eq!(
        ok("record", outbox.record(&sent(&first)).await),
        Recorded::New,
        "record: the first outcome is new"
    );
    let skipped = OutcomeRecord::new(
        campaign.clone(),
        first.clone(),
        Outcome::Skipped {
            reason: SkipReason::WindowClosed,
        },
        at,
    );
    assert_eq!(
        ok("record again", outbox.record(&skipped).await),
        Recorded::Existing(sent(&first)),
        "record: a second outcome changes nothing and returns the stored one"
    );
    assert_eq!(
        ok("get", outbox.get(&campaign, &first).await),
        Some(sent(&first)),
        "get: returns the stored outcome"
    );
    let elsewhere = campaign_id(unique("other-campaign"));
    assert_eq!(
        ok("get other campaign", outbox.get(&elsewhere, &first).await),
        None,
        "get: outcomes are per campaign"
    );

    for name in ["outbox-d", "outbox-b", "outbox-e", "outbox-c"] {
        ok("record", outbox.record(&sent(&id(name))).await);
    }
    let page1 = ok("list", outbox.list(&campaign, None, 2).await);
    let page2 = ok(
        "list",
        outbox
            .list(&campaign, page1.last().map(|r| &r.contact), 2)
            .await,
    );
    let page3 = ok(
        "list",
        outbox
            .list(&campaign, page2.last().map(|r| &r.contact), 2)
            .await,
    );
    let names: Vec<&str> = page1
        .iter()
        .chain(&page2)
        .chain(&page3)
        .map(|r| r.contact.as_str())
        .collect();
    assert_eq!(
        names,
        ["outbox-a", "outbox-b", "outbox-c", "outbox-d", "outbox-e"],
        "list: pages in contact-id order"
    );
    assert!(
        ok("list empty", outbox.list(&elsewhere, None, 10).await).is_empty(),
        "list: an unknown campaign is empty"
    );

    // Racing records for one pair store one outcome.
    let racer = id(&unique("outbox-racer"));
    let new = race(|i| {
        let outbox = outbox.clone();
        let record = OutcomeRecord::new(
            campaign.clone(),
            racer.clone(),
            if i % 2 == 0 {
                Outcome::Skipped {
                    reason: SkipReason::OptedOut,
                }
            } else {
                Outcome::Pending
            },
            at,
        );
        async move { outbox.record(&record).await }
    })
    .await
    .into_iter()
    .filter(|r| match r {
        Ok(recorded) => *recorded == Recorded::New,
        Err(e) => panic!("racing record: unexpected error {e:?}"),
    })
    .count();
    assert_eq!(
        new, 1,
        "record: racing records for one recipient store exactly one outcome"
    );

    // Claim, then finish once.
    let claimed = id(&unique("outbox-claimed"));
    let final_record = |outcome| OutcomeRecord::new(campaign.clone(), claimed.clone(), outcome, at);
    assert!(
        matches!(
            outbox
                .finish(&final_record(Outcome::Skipped {
                    reason: SkipReason::NoAddress
                }))
                .await,
            Err(StoreError::NotFound { .. })
        ),
        "finish: without a claim it is NotFound"
    );
    assert_eq!(
        ok("claim", outbox.claim(&campaign, &claimed, at).await),
        Recorded::New,
        "claim: the first claim is new"
    );
    assert_eq!(
        ok("claim again", outbox.claim(&campaign, &claimed, at).await),
        Recorded::Existing(final_record(Outcome::Pending)),
        "claim: a second claim returns the pending record"
    );
    assert!(
        matches!(
            outbox.finish(&final_record(Outcome::Pending)).await,
            Err(StoreError::Invalid { .. })
        ),
        "finish: a pending outcome is refused"
    );
    let done = final_record(Outcome::Sent {
        channel: Channel::Email,
        message_ids: vec!["e1".into()],
    });
    ok("finish", outbox.finish(&done).await);
    assert_eq!(
        ok("get finished", outbox.get(&campaign, &claimed).await),
        Some(done.clone()),
        "finish: replaces the pending record"
    );
    assert!(
        matches!(
            outbox
                .finish(&final_record(Outcome::Skipped {
                    reason: SkipReason::OptedOut
                }))
                .await,
            Err(StoreError::Conflict { .. })
        ),
        "finish: a final outcome is never replaced"
    );
    assert_eq!(
        ok(
            "claim finished",
            outbox.claim(&campaign, &claimed, at).await
        ),
        Recorded::Existing(done),
        "claim: a finished recipient cannot be claimed again"
    );

    // Racing claims: one wins.
    let raced = id(&unique("outbox-raced-claim"));
    let wins = race(|_| {
        let outbox = outbox.clone();
        let campaign = campaign.clone();
        let raced = raced.clone();
        async move { outbox.claim(&campaign, &raced, at).await }
    })
    .await
    .into_iter()
    .filter(|r| matches!(r, Ok(Recorded::New)))
    .count();
    assert_eq!(
        wins, 1,
        "claim: racing claims for one recipient: exactly one wins"
    );

    outbox_forget(&outbox).await;
}

/// Runs the [`ProcessStore`] contract.
pub async fn process_store(store: Arc<dyn ProcessStore>) {
    let contact = id(&unique("flow-contact"));
    let flow = flow_id(unique("onboarding"));
    let now = Timestamp::from_secs(1_700_000_000);
    let instance = |name: &str| {
        ProcessInstance::new(
            instance_id(unique(name)),
            flow.clone(),
            1,
            contact.clone(),
            "start",
        )
    };

    let first = instance("i1");
    ok("insert", store.insert(&first).await);
    expect_conflict("insert an existing id", store.insert(&first).await);
    expect_conflict(
        "insert a second unfinished instance of the same flow",
        store.insert(&instance("i2")).await,
    );
    assert_eq!(
        ok("get", store.get(&first.id).await).as_ref(),
        Some(&first),
        "get: returns the inserted instance"
    );
    assert_eq!(
        ok("get unknown", store.get(&instance_id(unique("none"))).await),
        None,
        "get: unknown id is None"
    );
    let active = ok("active_for", store.active_for(&contact).await);
    assert_eq!(
        active.iter().map(|i| &i.id).collect::<Vec<_>>(),
        vec![&first.id],
        "active_for: lists the running instance"
    );

    // Compare-and-swap on the revision.
    let mut moved = first.clone();
    moved.step = "question".into();
    moved.status = InstanceStatus::Waiting;
    moved.due_at = Some(now.saturating_sub(Duration::from_secs(1)));
    assert_eq!(
        ok("update", store.update(&moved).await),
        1,
        "update: returns the next revision"
    );
    expect_conflict("update from a stale revision", store.update(&moved).await);
    let stored =
        ok("get", store.get(&first.id).await).unwrap_or_else(|| panic!("instance vanished"));
    assert_eq!(
        (stored.step.as_str(), stored.revision),
        ("question", 1),
        "update: stores the instance at the next revision"
    );
    expect_not_found(
        "update a missing instance",
        store.update(&instance("ghost")).await,
    );

    // Racing updates from one read move the instance once.
    let won = winners(
        "racing update",
        race(|i| {
            let store = store.clone();
            let mut next = stored.clone();
            next.step = format!("answer-{i}");
            async move { store.update(&next).await }
        })
        .await,
    );
    assert_eq!(
        won, 1,
        "update: racing updates from one revision succeed exactly once"
    );

    // due finds what is due, earliest first.
    let other_contact = id(&unique("flow-contact-2"));
    let mut later = ProcessInstance::new(
        instance_id(unique("i3")),
        flow.clone(),
        1,
        other_contact.clone(),
        "wait",
    );
    later.status = InstanceStatus::Waiting;
    later.due_at = Some(now.saturating_sub(Duration::from_secs(10)));
    ok("insert", store.insert(&later).await);
    let mut future = ProcessInstance::new(
        instance_id(unique("i4")),
        flow_id(unique("f")),
        1,
        other_contact.clone(),
        "wait",
    );
    future.due_at = Some(now.saturating_add(Duration::from_secs(60)));
    ok("insert", store.insert(&future).await);
    let ours = [first.id.clone(), later.id.clone(), future.id.clone()];
    let due: Vec<InstanceId> = ok("due", store.due(now, 10_000).await)
        .into_iter()
        .map(|i| i.id)
        .filter(|i| ours.contains(i))
        .collect();
    assert_eq!(
        due,
        vec![later.id.clone(), first.id.clone()],
        "due: due instances, earliest first, not the future one"
    );

    let first_due = ok("due with limit", store.due(now, 1).await);
    assert!(
        first_due.len() <= 1,
        "due: returns at most `limit` instances"
    );
    if let Some(i) = first_due.first() {
        assert!(
            i.due_at.is_some_and(|d| d <= later.due_at.unwrap_or(now)),
            "due: the limit keeps the earliest due instances"
        );
    }

    // `due` follows updates: an instance whose due time moves to the future, or goes, is no
    // longer due; the step history and flow fields round-trip.
    let mut rescheduled =
        ok("get", store.get(&later.id).await).unwrap_or_else(|| panic!("instance vanished"));
    rescheduled.due_at = Some(now.saturating_add(Duration::from_secs(3600)));
    rescheduled
        .history
        .push(crate::process::StepRecord::new("wait", now));
    rescheduled
        .vars
        .insert("level".to_owned(), json!("advanced"));
    ok("reschedule", store.update(&rescheduled).await);
    assert!(
        !ok("due", store.due(now, 10_000).await)
            .iter()
            .any(|i| i.id == later.id),
        "due: an instance rescheduled to the future is not due"
    );
    let stored =
        ok("get", store.get(&later.id).await).unwrap_or_else(|| panic!("instance vanished"));
    assert_eq!(
        (&stored.history, &stored.vars),
        (&rescheduled.history, &rescheduled.vars),
        "update: history and vars are stored as given"
    );
    let mut failed = stored;
    failed.due_at = Some(now);
    failed.status = InstanceStatus::Failed;
    ok("fail", store.update(&failed).await);
    assert!(
        !ok("due", store.due(now, 10_000).await)
            .iter()
            .any(|i| i.id == later.id),
        "due: failed instances are never due"
    );
    assert!(
        !ok("active_for", store.active_for(&other_contact).await)
            .iter()
            .any(|i| i.id == later.id),
        "active_for: failed instances are not active"
    );
    failed = ok("get", store.get(&later.id).await).unwrap_or_else(|| panic!("instance vanished"));
    failed.status = InstanceStatus::Waiting;
    assert!(
        matches!(store.update(&failed).await, Err(StoreError::Invalid { .. })),
        "update: a finished instance cannot run again (failed counts as finished)"
    );

    // A finished instance leaves the active set and frees its (contact, flow).
    let mut done =
        ok("get", store.get(&first.id).await).unwrap_or_else(|| panic!("instance vanished"));
    done.status = InstanceStatus::Finished;
    ok("finish", store.update(&done).await);
    assert!(
        ok("active_for", store.active_for(&contact).await).is_empty(),
        "active_for: finished instances are not active"
    );
    let due = ok("due", store.due(now, 10_000).await);
    assert!(
        !due.iter().any(|i| i.id == first.id),
        "due: finished instances are never due"
    );
    ok("insert after finish", store.insert(&instance("i5")).await);

    // A finished instance stays finished.
    let mut revived =
        ok("get", store.get(&first.id).await).unwrap_or_else(|| panic!("instance vanished"));
    revived.status = InstanceStatus::Waiting;
    revived.due_at = Some(now);
    assert!(
        matches!(
            store.update(&revived).await,
            Err(StoreError::Invalid { .. })
        ),
        "update: a finished instance cannot run again"
    );
    let mut archived = instance("archived");
    archived.status = InstanceStatus::Finished;
    ok(
        "insert a finished instance beside a running one",
        store.insert(&archived).await,
    );

    process_store_forget(&store).await;
    process_store_claims(&store).await;
}

/// [`ProcessStore::claim_due`]: claims take due instances earliest first, hold them until the
/// claim's time, and racing claimers never take one instance twice.
async fn process_store_claims(store: &Arc<dyn ProcessStore>) {
    // Long before every other clause's times, so only this clause's instances are due.
    let base = Timestamp::from_secs(1_000_000);
    let flow = flow_id(unique("claim-flow"));
    let make = |seconds_before: u64| {
        let mut i = ProcessInstance::new(
            instance_id(unique("claim-i")),
            flow.clone(),
            1,
            id(&unique("claim-contact")),
            "wait",
        );
        i.status = InstanceStatus::Waiting;
        i.due_at = Some(base.saturating_sub(Duration::from_secs(seconds_before)));
        i
    };
    let mut five = Vec::new();
    for before in (1..=5).rev() {
        let i = make(before);
        ok("insert", store.insert(&i).await);
        five.push(i);
    }
    let until = base.saturating_add(Duration::from_secs(60));
    let claimed = ok("claim_due", store.claim_due(base, 2, until).await);
    assert_eq!(
        claimed.iter().map(|i| &i.id).collect::<Vec<_>>(),
        vec![&five[0].id, &five[1].id],
        "claim_due: claims up to `limit` due instances, earliest first"
    );
    for c in &claimed {
        let stored = ok("get", store.get(&c.id).await)
            .unwrap_or_else(|| panic!("claimed instance vanished"));
        assert_eq!(
            (stored.due_at, stored.revision),
            (Some(until), 1),
            "claim_due: a claimed instance is stored due at the claim's end, at the next revision"
        );
        assert_eq!(&stored, c, "claim_due: returns the instance as stored");
    }
    let rest = ok("claim_due", store.claim_due(base, 10, until).await);
    assert_eq!(
        rest.iter().map(|i| &i.id).collect::<Vec<_>>(),
        five[2..].iter().map(|i| &i.id).collect::<Vec<_>>(),
        "claim_due: a second claim passes the claimed instances by"
    );
    assert!(
        ok("claim_due", store.claim_due(base, 10, until).await).is_empty(),
        "claim_due: nothing left to claim while the claims hold"
    );
    let after = base.saturating_add(Duration::from_secs(61));
    let again = ok(
        "claim_due after the claims ended",
        store
            .claim_due(after, 10, after.saturating_add(Duration::from_secs(60)))
            .await,
    );
    assert_eq!(
        again.len(),
        5,
        "claim_due: an instance whose claim ended (its claimer died) is claimed again"
    );
    let moved = ok("claim_due", store.claim_due(base, 10, until).await);
    assert!(moved.is_empty(), "claim_due: re-claimed instances hold too");
    finish_all(store, five.iter().map(|i| &i.id)).await;

    // Racing claimers share the due instances out: none is claimed twice. (Earlier than the
    // instances above, which are due again from 1,000,121 s.)
    let base = Timestamp::from_secs(500_000);
    let mut racing = Vec::new();
    for _ in 0..24 {
        let mut i = make(0);
        i.due_at = Some(base.saturating_sub(Duration::from_secs(1)));
        ok("insert", store.insert(&i).await);
        racing.push(i.id);
    }
    let until = base.saturating_add(Duration::from_secs(60));
    let results = race(|_| {
        let store = store.clone();
        async move { store.claim_due(base, 4, until).await }
    })
    .await;
    let mut taken: Vec<InstanceId> = results
        .into_iter()
        .flat_map(|r| ok("racing claim_due", r))
        .map(|i| i.id)
        .filter(|i| racing.contains(i))
        .collect();
    let total = taken.len();
    taken.sort();
    taken.dedup();
    assert_eq!(
        taken.len(),
        total,
        "claim_due: racing claimers never claim one instance twice"
    );
    assert!(
        total > 0,
        "claim_due: racing claimers claim the due instances"
    );
    finish_all(store, racing.iter()).await;
}

/// Finishes the instances `ids`, so that a later run of the suite on the same store finds
/// none of them due.
async fn finish_all(store: &Arc<dyn ProcessStore>, ids: impl Iterator<Item = &InstanceId>) {
    for id in ids {
        let mut i = ok("get", store.get(id).await).unwrap_or_else(|| panic!("instance vanished"));
        i.status = InstanceStatus::Finished;
        i.due_at = None;
        ok("finish", store.update(&i).await);
    }
}

/// The event-key clause of [`Inbox::record_incoming`]: an entry without a message id is
/// recorded once per (channel, event key).
async fn inbox_event_keys(inbox: &Arc<dyn Inbox>, contact: &ContactId) {
    let t = Timestamp::from_millis(1_700_000_009_000);
    let key = unique("messenger:postback");
    let postback = || {
        Incoming::new(Channel::Messenger)
            .with_choice("START")
            .with_event_key(key.as_str())
    };
    let before = ok("conversation", inbox.conversation(contact, 1000).await).len();
    let first = ok(
        "record keyed",
        inbox.record_incoming(contact, t, postback()).await,
    );
    let again = ok(
        "record keyed again",
        inbox.record_incoming(contact, t, postback()).await,
    );
    assert_eq!(
        again, first,
        "record_incoming: an event recorded again by its key returns the existing entry"
    );
    ok(
        "record keyed on another channel",
        inbox
            .record_incoming(
                contact,
                t,
                Incoming::new(Channel::Email)
                    .with_text("same key, other channel")
                    .with_event_key(key.as_str()),
            )
            .await,
    );
    let entries = ok("conversation", inbox.conversation(contact, 1000).await);
    assert_eq!(
        entries.len(),
        before + 2,
        "record_incoming: de-duplication is per (channel, event key)"
    );
    let kept = entries
        .iter()
        .find(|e| e.id == first)
        .unwrap_or_else(|| panic!("record_incoming: the keyed entry is listed"));
    assert!(
        matches!(&kept.content, EntryContent::Incoming(i) if i.event_key.as_deref() == Some(key.as_str()) && i.message_id.is_none()),
        "record_incoming: the entry keeps its event key and no message id: {kept:?}"
    );
}

/// Runs the [`SeenEvents`] contract.
pub async fn seen_events(seen: Arc<dyn SeenEvents>) {
    let now = Timestamp::from_secs(1_700_000_000);
    let ttl = Duration::from_secs(36 * 3600);
    let key = unique("messenger:mid");
    assert!(
        !ok("is_seen", seen.is_seen(&key, now).await),
        "is_seen: an unknown key is not seen"
    );
    assert!(
        !ok("is_seen", seen.is_seen(&key, now).await),
        "is_seen: does not mark"
    );
    assert!(
        ok("mark_seen", seen.mark_seen(&key, now, ttl).await),
        "mark_seen: a new key is marked"
    );
    assert!(
        !ok("mark_seen twice", seen.mark_seen(&key, now, ttl).await),
        "mark_seen: a marked key is refused"
    );
    let almost = now.saturating_add(ttl - Duration::from_millis(1));
    assert!(
        ok("is_seen", seen.is_seen(&key, almost).await),
        "is_seen: marked until the ttl ends"
    );
    let after = now.saturating_add(ttl);
    assert!(
        !ok("is_seen expired", seen.is_seen(&key, after).await),
        "is_seen: an expired mark counts as absent"
    );
    let other = unique("nonce");
    ok(
        "mark_seen",
        seen.mark_seen(&other, now, Duration::from_secs(1)).await,
    );
    assert!(
        ok("purge", seen.purge_expired(after).await) >= 2,
        "purge_expired: removes expired marks"
    );
    assert!(
        ok("mark after expiry", seen.mark_seen(&key, after, ttl).await),
        "mark_seen: an expired key can be marked again"
    );

    // forget releases a mark.
    let released = unique("claim");
    assert!(
        ok("mark", seen.mark_seen(&released, now, ttl).await),
        "mark_seen: a new key is marked"
    );
    ok("forget", seen.forget(&released).await);
    assert!(
        !ok("is_seen", seen.is_seen(&released, now).await),
        "forget: the key is no longer seen"
    );
    assert!(
        ok("mark again", seen.mark_seen(&released, now, ttl).await),
        "forget: the key can be marked again"
    );
    ok("forget unknown", seen.forget(&unique("never")).await);

    // The batch forms agree with the single ones.
    let fresh = unique("batch");
    let keys = [key.as_str(), fresh.as_str(), fresh.as_str()];
    let later = after.saturating_add(Duration::from_secs(1));
    assert_eq!(
        ok("seen_many", seen.seen_many(&keys, later).await),
        vec![true, false, false],
        "seen_many: answers like is_seen, in order"
    );
    assert_eq!(
        ok("mark_many", seen.mark_many(&keys, later, ttl).await),
        vec![false, true, false],
        "mark_many: marks like mark_seen, in order (a repeated key is marked once)"
    );
    assert!(
        ok("is_seen", seen.is_seen(&fresh, later).await),
        "mark_many: the keys are marked"
    );
    // A batch as large as a busy webhook's (stores may take another path for it).
    let many: Vec<String> = (0..20).map(|i| unique(&format!("many-{i}"))).collect();
    let mut keys: Vec<&str> = many.iter().map(String::as_str).collect();
    keys.extend([many[3].as_str(), key.as_str()]);
    let mut expected = vec![false; 20];
    expected.extend([false, true]);
    assert_eq!(
        ok("seen_many", seen.seen_many(&keys, later).await),
        expected,
        "seen_many: a large batch answers like is_seen, in order"
    );
    let mut expected = vec![true; 20];
    expected.extend([false, false]);
    assert_eq!(
        ok("mark_many", seen.mark_many(&keys, later, ttl).await),
        expected,
        "mark_many: a large batch marks like mark_seen, in order"
    );
    assert_eq!(
        ok("seen_many", seen.seen_many(&keys, later).await),
        vec![true; 22],
        "mark_many: every key of a large batch is marked"
    );

    let racer = unique("race");
    let first = race(|_| {
        let (seen, racer) = (seen.clone(), racer.clone());
        async move { seen.mark_seen(&racer, now, ttl).await }
    })
    .await
    .into_iter()
    .filter(|r| match r {
        Ok(marked) => *marked,
        Err(e) => panic!("racing mark: unexpected error {e:?}"),
    })
    .count();
    assert_eq!(
        first, 1,
        "mark_seen: racing marks of one key succeed exactly once"
    );

    seen_claims(&seen).await;
}

/// The claim clauses of [`SeenEvents`]: a claim is held for its lease, settles into a mark,
/// is released by `forget`, expires when its holder crashed, and races to one winner.
async fn seen_claims(seen: &Arc<dyn SeenEvents>) {
    let now = Timestamp::from_secs(1_700_100_000);
    let lease = Duration::from_secs(60);
    let ttl = Duration::from_secs(36 * 3600);
    let key = unique("messenger:claimed");
    assert_eq!(
        ok("claim", seen.claim(&key, now, lease).await),
        Claim::Acquired,
        "claim: a new key is acquired"
    );
    let held = Claim::Held {
        until: now.saturating_add(lease),
    };
    let soon = now.saturating_add(Duration::from_secs(1));
    assert_eq!(
        ok("claim held", seen.claim(&key, soon, lease).await),
        held,
        "claim: a claimed key is held until the lease ends"
    );
    assert!(
        ok("is_seen held", seen.is_seen(&key, soon).await),
        "is_seen: a held key is seen"
    );
    assert!(
        !ok("mark_seen held", seen.mark_seen(&key, soon, ttl).await),
        "mark_seen: a held key is refused"
    );
    ok("settle", seen.settle(&key, soon, ttl).await);
    let later = now.saturating_add(2 * lease);
    assert_eq!(
        ok("claim settled", seen.claim(&key, later, lease).await),
        Claim::Done,
        "settle: a settled key is done, past the lease, until the ttl ends"
    );
    assert_eq!(
        ok(
            "claim after ttl",
            seen.claim(&key, soon.saturating_add(ttl), lease).await
        ),
        Claim::Acquired,
        "settle: the mark lasts the ttl from the settling"
    );

    // A holder that crashed: its lease ends and the next claim acquires.
    let crashed = unique("messenger:crashed");
    ok("claim", seen.claim(&crashed, now, lease).await);
    assert_eq!(
        ok(
            "claim before the lease ends",
            seen.claim(
                &crashed,
                now.saturating_add(lease - Duration::from_millis(1)),
                lease
            )
            .await
        ),
        held,
        "claim: held until the last millisecond of the lease"
    );
    let expired = now.saturating_add(lease);
    assert_eq!(
        ok(
            "claim after the lease",
            seen.claim(&crashed, expired, lease).await
        ),
        Claim::Acquired,
        "claim: an expired claim is acquired again"
    );
    assert_eq!(
        ok("claim renewed", seen.claim(&crashed, expired, lease).await),
        Claim::Held {
            until: expired.saturating_add(lease)
        },
        "claim: the new claim has a lease of its own"
    );

    // A failed holder gives the key back.
    let released = unique("messenger:released");
    ok("claim", seen.claim(&released, now, lease).await);
    ok("forget", seen.forget(&released).await);
    assert_eq!(
        ok("claim released", seen.claim(&released, now, lease).await),
        Claim::Acquired,
        "forget: a released claim is acquired at once"
    );

    // Settling without a claim, and marks made by mark_seen, are done.
    let direct = unique("messenger:direct");
    ok("settle unclaimed", seen.settle(&direct, now, ttl).await);
    assert_eq!(
        ok("claim", seen.claim(&direct, now, lease).await),
        Claim::Done,
        "settle: a key settled without a claim is done"
    );
    let marked = unique("messenger:marked");
    ok("mark_seen", seen.mark_seen(&marked, now, ttl).await);
    assert_eq!(
        ok("claim marked", seen.claim(&marked, soon, lease).await),
        Claim::Done,
        "claim: a key marked with mark_seen is done"
    );

    // The batch forms agree with the single ones, small and large (stores may take another
    // path for a large batch), a repeated key included.
    for size in [2, 20] {
        let fresh: Vec<String> = (0..size)
            .map(|i| unique(&format!("messenger:fresh-{i}")))
            .collect();
        let holder = unique("messenger:holder");
        ok("claim", seen.claim(&holder, now, lease).await);
        let mut keys: Vec<&str> = fresh.iter().map(String::as_str).collect();
        keys.extend([holder.as_str(), marked.as_str(), fresh[0].as_str()]);
        let mut expected = vec![Claim::Acquired; size];
        expected.extend([
            held,
            Claim::Done,
            Claim::Held {
                until: soon.saturating_add(lease),
            },
        ]);
        assert_eq!(
            ok("claim_many", seen.claim_many(&keys, soon, lease).await),
            expected,
            "claim_many: claims like claim, in order ({size} fresh keys)"
        );
        ok(
            "settle_many",
            seen.settle_many(&keys[..size], soon, ttl).await,
        );
        assert_eq!(
            ok(
                "claim_many settled",
                seen.claim_many(&keys[..size], later, lease).await
            ),
            vec![Claim::Done; size],
            "settle_many: settles like settle ({size} keys)"
        );
    }

    // Concurrent claims of one key: one acquires, the others see it held.
    let racer = unique("messenger:claim-race");
    let claims: Vec<Claim> = race(|_| {
        let (seen, racer) = (seen.clone(), racer.clone());
        async move { seen.claim(&racer, now, lease).await }
    })
    .await
    .into_iter()
    .map(|r| r.unwrap_or_else(|e| panic!("racing claim: unexpected error {e:?}")))
    .collect();
    assert_eq!(
        claims.iter().filter(|c| c.is_acquired()).count(),
        1,
        "claim: racing claims of one key acquire it exactly once"
    );
    assert!(
        claims.iter().all(|c| c.is_acquired() || *c == held),
        "claim: the racers that lost see the key held: {claims:?}"
    );
}

/// The [`Directory::forget_contact`] clause: the contact and its addresses go, nobody else's.
async fn directory_forget(dir: &Arc<dyn Directory>) {
    let x1 = messenger(&unique("psid-forget"));
    let x2 = Address::email(format!("{}@example.org", unique("forget")))
        .unwrap_or_else(|e| panic!("conformance bug: invalid address: {e}"));
    let k = messenger(&unique("psid-keep"));
    let gone = ok(
        "create the contact to forget",
        dir.create(
            NewContact::new()
                .with_email("gone@example.org")
                .with_name("Gone", "Person")
                .with_field("plan", "pro")
                .with_tag(unique("forget-tag"))
                .with_address(x1.clone())
                .with_address(x2.clone()),
        )
        .await,
    );
    let kept = ok(
        "create the contact to keep",
        dir.create(
            NewContact::new()
                .with_email("kept@example.org")
                .with_address(k.clone()),
        )
        .await,
    );
    let stored = ok("get", dir.get(&gone.id).await);
    assert_eq!(
        ok("forget_contact", dir.forget_contact(&gone.id).await),
        stored,
        "forget_contact: returns the contact as it was, with its addresses"
    );
    assert_eq!(
        ok("get forgotten", dir.get(&gone.id).await),
        None,
        "forget_contact: get no longer finds the contact"
    );
    for address in [&x1, &x2] {
        assert!(
            ok("find forgotten", dir.find_by_address(address).await).is_none(),
            "forget_contact: no address of the contact finds anyone ({address})"
        );
    }
    assert_eq!(
        ok("get kept", dir.get(&kept.id).await),
        Some(kept.clone()),
        "forget_contact: other contacts are untouched"
    );
    assert_eq!(
        ok("find kept", dir.find_by_address(&k).await).map(|c| c.id),
        Some(kept.id.clone()),
        "forget_contact: other contacts keep their addresses"
    );
    assert_eq!(
        ok("forget again", dir.forget_contact(&gone.id).await),
        None,
        "forget_contact: forgetting again finds nothing (an erasure can be run again)"
    );
    assert_eq!(
        ok(
            "forget unknown",
            dir.forget_contact(&id(&unique("nobody"))).await
        ),
        None,
        "forget_contact: an unknown contact is None, not an error"
    );
    // The addresses are free: nothing of the link is left behind.
    ok(
        "link a forgotten address to another contact",
        dir.link(&kept.id, &x1).await,
    );
    let newcomer = ok(
        "create with a forgotten address",
        dir.create(NewContact::new().with_address(x2.clone())).await,
    );
    assert_ne!(
        newcomer.id, gone.id,
        "forget_contact: a forgotten contact's id is not assigned again (signed tokens name it)"
    );
    assert!(
        newcomer.email.is_none() && newcomer.tags.is_empty() && newcomer.fields.is_empty(),
        "forget_contact: a new contact inherits nothing of the forgotten one"
    );
}

/// The [`LastInbound::forget`] clause.
async fn last_inbound_forget(store: &Arc<dyn LastInbound>) {
    let gone = messenger(&unique("psid-forget"));
    let kept = messenger(&unique("psid-keep"));
    let t = |s: i64| Timestamp::from_secs(1_700_000_000 + s);
    ok(
        "record_many",
        store.record_many(&[(&gone, t(100)), (&kept, t(50))]).await,
    );
    assert!(
        ok("forget", store.forget(&gone).await),
        "forget: reports that there was a record"
    );
    assert_eq!(
        ok("last forgotten", store.last(&gone).await),
        None,
        "forget: the address has no time any more"
    );
    assert_eq!(
        ok("last kept", store.last(&kept).await),
        Some(t(50)),
        "forget: other addresses are untouched"
    );
    assert!(
        !ok("forget again", store.forget(&gone).await),
        "forget: forgetting again reports no record"
    );
    assert!(
        !ok(
            "forget unknown",
            store.forget(&messenger(&unique("nobody"))).await
        ),
        "forget: an address never recorded reports no record"
    );
    ok("record after forget", store.record(&gone, t(10)).await);
    assert_eq!(
        ok("last", store.last(&gone).await),
        Some(t(10)),
        "forget: nothing of the old time is left (an earlier time after forget is kept)"
    );
}

/// The [`Inbox::forget_contact`] clause.
async fn inbox_forget(inbox: &Arc<dyn Inbox>) {
    let gone = id(&unique("inbox-forget"));
    let kept = id(&unique("inbox-keep"));
    let t = |ms: i64| Timestamp::from_millis(1_700_000_000_000 + ms);
    let mid = |s: &str, c: &ContactId| format!("{s}-{}", c.as_str());
    let text = |s: &str| Message::text(s).unwrap_or_else(|e| panic!("conformance bug: {e}"));
    for c in [&gone, &kept] {
        ok(
            "record incoming",
            inbox
                .record_incoming(
                    c,
                    t(1000),
                    Incoming::new(Channel::Messenger)
                        .with_message_id(mid("in", c))
                        .with_text("my phone number is 555"),
                )
                .await,
        );
        ok(
            "record incoming without id",
            inbox
                .record_incoming(c, t(1500), Incoming::new(Channel::Email).with_text("hi"))
                .await,
        );
        ok(
            "record outgoing",
            inbox
                .record_outgoing(
                    c,
                    t(2000),
                    Outgoing::new(text("reply"))
                        .with_author("agent-7")
                        .with_delivery(DeliveryRecord::sent(
                            Channel::Messenger,
                            vec![mid("out", c)],
                        ))
                        .with_delivery(DeliveryRecord::failed(Channel::Email, "bounced")),
                )
                .await,
        );
    }
    let kept_before = ok("conversation", inbox.conversation(&kept, 100).await);
    assert_eq!(
        ok("forget_contact", inbox.forget_contact(&gone).await),
        3,
        "forget_contact: returns how many entries went"
    );
    assert!(
        ok("conversation", inbox.conversation(&gone, 100).await).is_empty(),
        "forget_contact: the conversation is empty"
    );
    assert_eq!(
        ok(
            "status by a forgotten message id",
            inbox
                .update_status(&StatusUpdate::Message {
                    channel: Channel::Messenger,
                    message_id: mid("out", &gone),
                    status: DeliveryStatus::Read,
                })
                .await
        ),
        0,
        "forget_contact: a status update naming a forgotten message id moves nothing"
    );
    assert_eq!(
        ok(
            "watermark for the forgotten contact",
            inbox
                .update_status(&StatusUpdate::UpTo {
                    contact: gone.clone(),
                    channel: Channel::Messenger,
                    watermark: t(10_000),
                    status: DeliveryStatus::Read,
                })
                .await
        ),
        0,
        "forget_contact: a watermark for the forgotten contact moves nothing"
    );
    assert_eq!(
        ok("conversation", inbox.conversation(&kept, 100).await),
        kept_before,
        "forget_contact: other conversations are untouched"
    );
    assert_eq!(
        ok("forget again", inbox.forget_contact(&gone).await),
        0,
        "forget_contact: forgetting again removes nothing"
    );
    assert_eq!(
        ok(
            "forget unknown",
            inbox.forget_contact(&id(&unique("nobody"))).await
        ),
        0,
        "forget_contact: a contact without entries gives 0"
    );
    // The de-duplication record went too: a redelivery is recorded afresh.
    ok(
        "record a forgotten message again",
        inbox
            .record_incoming(
                &gone,
                t(3000),
                Incoming::new(Channel::Messenger).with_message_id(mid("in", &gone)),
            )
            .await,
    );
    let again = ok("conversation", inbox.conversation(&gone, 100).await);
    assert_eq!(
        again.iter().map(|e| e.at).collect::<Vec<_>>(),
        vec![t(3000)],
        "forget_contact: a forgotten incoming message id is recorded as a new entry"
    );
    assert_eq!(
        ok("forget", inbox.forget_contact(&gone).await),
        1,
        "forget_contact: removes entries recorded after an earlier forget"
    );
}

/// The [`Outbox::forget_contact`] clause.
async fn outbox_forget(outbox: &Arc<dyn Outbox>) {
    let first = campaign_id(unique("campaign-forget"));
    let second = campaign_id(unique("campaign-forget"));
    let at = Timestamp::from_secs(1_700_000_000);
    // The contact to forget sorts between two others, so `list` shows a gap if one is left.
    let base = unique("outbox-forget");
    let [before, gone, after] = ["a", "b", "c"].map(|s| id(&format!("{base}-{s}")));
    for c in [&before, &gone, &after] {
        ok(
            "record",
            outbox
                .record(&OutcomeRecord::new(
                    first.clone(),
                    c.clone(),
                    Outcome::Skipped {
                        reason: SkipReason::OptedOut,
                    },
                    at,
                ))
                .await,
        );
        ok("claim", outbox.claim(&second, c, at).await);
    }
    let kept = ok("list", outbox.list(&first, None, 100).await);
    assert_eq!(
        ok("forget_contact", outbox.forget_contact(&gone).await),
        2,
        "forget_contact: returns how many records went, pending claims included"
    );
    for campaign in [&first, &second] {
        assert_eq!(
            ok("get forgotten", outbox.get(campaign, &gone).await),
            None,
            "forget_contact: no campaign has a record of the contact"
        );
        let listed: Vec<ContactId> = ok("list", outbox.list(campaign, None, 100).await)
            .into_iter()
            .map(|r| r.contact)
            .collect();
        assert_eq!(
            listed,
            vec![before.clone(), after.clone()],
            "forget_contact: list skips the contact and keeps everyone else"
        );
    }
    assert_eq!(
        ok("list", outbox.list(&first, None, 100).await),
        kept.into_iter()
            .filter(|r| r.contact != gone)
            .collect::<Vec<_>>(),
        "forget_contact: other recipients' records are untouched"
    );
    assert_eq!(
        ok("forget again", outbox.forget_contact(&gone).await),
        0,
        "forget_contact: forgetting again removes nothing"
    );
    assert_eq!(
        ok(
            "forget unknown",
            outbox.forget_contact(&id(&unique("nobody"))).await
        ),
        0,
        "forget_contact: a contact without records gives 0"
    );
}

/// The [`ProcessStore::forget_contact`] clause.
async fn process_store_forget(store: &Arc<dyn ProcessStore>) {
    let gone = id(&unique("flow-forget"));
    let kept = id(&unique("flow-keep"));
    let now = Timestamp::from_secs(1_700_000_000);
    let flow = flow_id(unique("forget-flow"));
    let make = |contact: &ContactId, flow: &FlowId, status: InstanceStatus, due: bool| {
        let mut i = ProcessInstance::new(
            instance_id(unique("forget-i")),
            flow.clone(),
            1,
            contact.clone(),
            "ask",
        );
        i.status = status;
        i.due_at = due.then(|| now.saturating_sub(Duration::from_secs(5)));
        i.history.push(crate::process::StepRecord::new("ask", now));
        i.vars.insert("answer".to_owned(), json!("private"));
        i
    };
    let gone_instances = [
        make(&gone, &flow, InstanceStatus::Waiting, true),
        make(&gone, &flow_id(unique("f")), InstanceStatus::Running, false),
        make(&gone, &flow, InstanceStatus::Finished, false),
        make(&gone, &flow, InstanceStatus::Failed, false),
    ];
    let kept_instance = make(&kept, &flow, InstanceStatus::Waiting, true);
    for i in gone_instances.iter().chain([&kept_instance]) {
        ok("insert", store.insert(i).await);
    }
    assert_eq!(
        ok("forget_contact", store.forget_contact(&gone).await),
        gone_instances.len(),
        "forget_contact: returns how many instances went, finished and failed ones included"
    );
    for i in &gone_instances {
        assert_eq!(
            ok("get forgotten", store.get(&i.id).await),
            None,
            "forget_contact: get finds none of the contact's instances ({:?})",
            i.status
        );
    }
    assert!(
        ok("active_for", store.active_for(&gone).await).is_empty(),
        "forget_contact: the contact has no active instance"
    );
    let due = ok("due", store.due(now, 10_000).await);
    assert!(
        !due.iter().any(|i| i.contact == gone),
        "forget_contact: none of the contact's instances is due"
    );
    assert!(
        due.iter().any(|i| i.id == kept_instance.id),
        "forget_contact: other contacts' instances stay due"
    );
    assert_eq!(
        ok("get kept", store.get(&kept_instance.id).await).as_ref(),
        Some(&kept_instance),
        "forget_contact: other contacts' instances are untouched"
    );
    assert_eq!(
        ok("forget again", store.forget_contact(&gone).await),
        0,
        "forget_contact: forgetting again removes nothing"
    );
    assert_eq!(
        ok(
            "forget unknown",
            store.forget_contact(&id(&unique("nobody"))).await
        ),
        0,
        "forget_contact: a contact without instances gives 0"
    );
    ok(
        "start the flow again after forget",
        store
            .insert(&make(&gone, &flow, InstanceStatus::Running, false))
            .await,
    );
    assert_eq!(
        ok("forget", store.forget_contact(&gone).await),
        1,
        "forget_contact: removes instances started after an earlier forget"
    );
}
