//! Crash safety with real processes on the SQLite stores: a child process does the work and
//! is killed with SIGKILL mid-way, then a new process resumes on the same database file.
//!
//! # How the children run
//!
//! The test binary runs itself again (`std::env::current_exe()`) with
//! `--exact <child> --ignored --nocapture`, configured through `TIDINGS_CRASH_*` environment
//! variables (the SQLite path, the fake Graph API's URL, ...). The `child_*` tests are
//! `#[ignore]`d so that a normal `cargo test` does not run them on their own, and they return at
//! once unless they were started as children: run alone they do nothing. A child reports to
//! the parent with `CHILD-...` lines on stdout (tests/support/child.rs).
//!
//! The fake Graph API runs in the PARENT, so its record of what was sent survives the child's
//! death and is the ground truth the outbox is checked against. `Child::kill` sends SIGKILL on
//! Unix: no destructor, no flush, no graceful shutdown runs in the child.
//!
//! Every child also has a watchdog: it exits on its own after [`WATCHDOG`] if the parent
//! never killed it, so a failing parent leaves no process behind.
//!
//! # The scenarios
//!
//! 1. **Campaign**: 20,000 recipients, 32 sends in flight, killed once the fake has seen 5,000
//!    sends; a new process runs the same campaign id to the end. Nobody is sent to twice, every
//!    recipient has one record, only claims of sends in flight stay pending (uncertain) and the
//!    resumed run's report names them.
//! 2. **Flow**: killed while the instance waits for the answer to its 3-option question; a new
//!    process gets the answer twice (a redelivery, then a re-route as after a lost commit) and
//!    the instance takes the chosen branch once, with one follow-up send.
//! 3. **Webhook**: the Hub, served over HTTP, is killed in the middle of a 300-event batch at
//!    the worst moment, right after an event's inbox write and before it is committed as
//!    handled (the child's inbox stalls there, so the kill point is exact, not a race); a new
//!    process gets the batch again and each message is in the inbox once. An event without a
//!    `mid` caught at that moment is recorded twice: that test is ignored until issue 15.

#![cfg(unix)]

#[path = "support/child.rs"]
mod child;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use child::{ChildProcess, env, report};
use serde_json::{Value, json};
use tidings::{
    activity::LastInbound,
    clock::{Clock, SystemClock, Timestamp},
    contact::{Address, Channel, Contact, ContactId},
    error::StoreError,
    hub::{Hub, Routed},
    identity::Connector,
    inbox::{Entry, EntryContent, EntryId, Inbox, Incoming, Outgoing, StatusUpdate},
    keys::{KeyRing, SigningKey},
    messenger::{
        AppSecret, MessengerTransport, PageAccessToken, PageConfig, StaticPages, VerifyToken,
        Webhook,
    },
    newsletter::{
        Campaign, CampaignId, CampaignRunner, Outbox, Outcome, OutcomeRecord, RunControl,
    },
    process::{
        FlowEngine, FlowId, IgnoredAnswer, InstanceId, InstanceStatus, ProcessEngine, ProcessStore,
        flow::Flow,
    },
    secrecy::SecretSlice,
    segment::Segment,
    store::sqlite::SqliteStores,
    testkit::{graph::FakeGraph, user::FakeUser},
    token::Tokens,
    transport::{SharedTransport, TransportSet},
};

const PAGE: &str = "104812345678901";
const PAGE_TOKEN: &str = "crash-page-token";
const APP_SECRET: &str = "crash-test-app-secret";

const DB: &str = "TIDINGS_CRASH_DB";
const GRAPH: &str = "TIDINGS_CRASH_GRAPH";
const PAYLOAD: &str = "TIDINGS_CRASH_PAYLOAD";
const INSTANCE: &str = "TIDINGS_CRASH_INSTANCE";
const STALL_AFTER: &str = "TIDINGS_CRASH_STALL_AFTER";

/// A child left alive this long exits on its own.
const WATCHDOG: Duration = Duration::from_secs(120);

/// Whether this process was started to run the child test `name` (see tests/support/child.rs).
fn is_child(name: &str) -> bool {
    child::is_child(name, WATCHDOG)
}

fn messenger(stores: &SqliteStores, graph: &str) -> Arc<MessengerTransport> {
    Arc::new(
        MessengerTransport::builder(pages(), stores.last_inbound())
            .base_url(graph)
            .rate_limit(None)
            .build()
            .unwrap(),
    )
}

fn pages() -> Arc<StaticPages> {
    Arc::new(StaticPages::new([PageConfig::new(
        PAGE,
        PageAccessToken::new(PAGE_TOKEN),
    )]))
}

async fn open(db: &str) -> SqliteStores {
    SqliteStores::open(db).await.unwrap()
}

async fn fake_graph() -> FakeGraph {
    FakeGraph::builder()
        .page(PAGE, PAGE_TOKEN)
        .enforce_window(false)
        .start()
        .await
        .unwrap()
}

fn now() -> Timestamp {
    SystemClock.now()
}

// ---------------------------------------------------------------------------------------------
// 1. A campaign killed mid-run, resumed by a new process.

const RECIPIENTS: usize = 20_000;
const CONCURRENCY: usize = 32;
/// The fake has seen this many sends when the first child is killed.
const KILL_AFTER_SENDS: usize = 5_000;

fn campaign_contact_id(i: usize) -> ContactId {
    ContactId::new(format!("u{i:05}")).unwrap()
}

fn campaign_psid(i: usize) -> String {
    format!("{}", 7_100_000_000_000_000u64 + i as u64)
}

/// Every 50th contact has no address (skipped), the one before it no `lesson` field (its
/// render fails); the others are sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recipient {
    Sendable,
    NoAddress,
    RenderFails,
}

fn recipient(i: usize) -> Recipient {
    match i % 50 {
        49 => Recipient::NoAddress,
        48 => Recipient::RenderFails,
        _ => Recipient::Sendable,
    }
}

fn crash_campaign() -> Campaign {
    Campaign::builder(
        CampaignId::new("crash-20k").unwrap(),
        Segment::everyone(),
        "Hi {{ first_name | default('friend') }}, lesson {{ fields.lesson }} is open.",
    )
    .channels([Channel::Messenger])
    .build()
    .unwrap()
}

async fn seed_campaign(db: &str) {
    let stores = open(db).await;
    let mut contacts = Vec::with_capacity(RECIPIENTS);
    let mut addresses = Vec::with_capacity(RECIPIENTS);
    for i in 0..RECIPIENTS {
        let mut contact = Contact::new(campaign_contact_id(i));
        contact.first_name = (i % 3 != 0).then(|| format!("Name{i}"));
        if recipient(i) != Recipient::RenderFails {
            contact.fields.insert("lesson".into(), json!(i % 12));
        }
        if recipient(i) != Recipient::NoAddress {
            let address = Address::messenger(PAGE, campaign_psid(i)).unwrap();
            addresses.push(address.clone());
            contact.addresses.push(address);
        }
        contacts.push(contact);
    }
    stores.directory().insert_many(&contacts).await.unwrap();
    // Everyone wrote an hour ago: the 24-hour window is open.
    let wrote = now().saturating_sub(Duration::from_secs(3600));
    let windows: Vec<(&Address, Timestamp)> = addresses.iter().map(|a| (a, wrote)).collect();
    stores.last_inbound().record_many(&windows).await.unwrap();
    stores.close().await;
}

async fn outcomes(stores: &SqliteStores, campaign: &CampaignId) -> Vec<OutcomeRecord> {
    let outbox = stores.outbox();
    let mut all: Vec<OutcomeRecord> = Vec::new();
    loop {
        let page = outbox
            .list(campaign, all.last().map(|r| &r.contact), 2_000)
            .await
            .unwrap();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

/// Child: runs the campaign to its end and prints the report.
#[ignore = "a crash-test child: runs only when re-executed by its parent test (see the module docs)"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_campaign() {
    if !is_child("child_campaign") {
        return;
    }
    let stores = open(&env(DB)).await;
    let mut transports = TransportSet::new();
    transports.insert(messenger(&stores, &env(GRAPH)) as SharedTransport);
    let runner = CampaignRunner::builder(stores.directory(), stores.outbox())
        .transports(transports)
        .concurrency(CONCURRENCY)
        .page_size(500)
        .build();
    let done = runner
        .run(&crash_campaign(), &RunControl::new())
        .await
        .unwrap();
    report("REPORT", serde_json::to_string(&done).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_killed_mid_run_resumes_in_a_new_process_and_sends_nobody_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db").to_str().unwrap().to_owned();
    let started = tokio::time::Instant::now();
    seed_campaign(&db).await;
    let seeded = started.elapsed();
    let fake = fake_graph().await;
    // Sends take a few ms, so that the kill lands with sends in flight.
    fake.set_latency(Duration::from_millis(3));
    let graph = fake.base_url();
    let env = [(DB, db.as_str()), (GRAPH, graph.as_str())];
    let campaign = crash_campaign();

    let mut first = ChildProcess::spawn("child_campaign", "child_campaign", &env);
    tokio::time::timeout(Duration::from_secs(60), async {
        while fake.request_count() < KILL_AFTER_SENDS {
            assert!(first.running(), "the first run ended before the kill");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the first run reached the kill point");
    first.kill();
    let received_at_kill = fake.request_count();
    let killed = started.elapsed();

    let stores = open(&db).await;
    let after_kill = outcomes(&stores, campaign.id()).await;
    let pending_at_kill: BTreeSet<ContactId> = after_kill
        .iter()
        .filter(|r| r.outcome.is_pending())
        .map(|r| r.contact.clone())
        .collect();
    assert!(
        after_kill.len() >= received_at_kill && after_kill.len() < RECIPIENTS,
        "killed mid-campaign, every send that reached the fake claimed first: {} records, \
         {received_at_kill} sends",
        after_kill.len()
    );
    assert!(
        !pending_at_kill.is_empty() && pending_at_kill.len() <= CONCURRENCY,
        "the kill left the sends in flight pending, at most the concurrency: {}",
        pending_at_kill.len()
    );

    let mut second = ChildProcess::spawn("child_campaign", "child_campaign", &env);
    let report: Value =
        serde_json::from_str(&second.line("REPORT", Duration::from_secs(90)).await).unwrap();
    assert!(second.exit(Duration::from_secs(10)).await.success());
    let resumed = started.elapsed();

    // What the fake received, by recipient.
    let sent = fake.sent();
    let mut received: HashMap<&str, Vec<&str>> = HashMap::new();
    for s in &sent {
        received
            .entry(s.recipient.as_str())
            .or_default()
            .push(s.message_id.as_deref().unwrap_or_default());
    }
    let twice: Vec<_> = received.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(twice.is_empty(), "nobody is sent to twice: {twice:?}");

    // One record per recipient.
    let records = outcomes(&stores, campaign.id()).await;
    let ids: Vec<ContactId> = records.iter().map(|r| r.contact.clone()).collect();
    let everyone: Vec<ContactId> = (0..RECIPIENTS).map(campaign_contact_id).collect();
    assert_eq!(ids, everyone, "every recipient has exactly one record");

    let mut pending = BTreeSet::new();
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    let mut pending_received = 0;
    for (i, record) in records.iter().enumerate() {
        let psid = campaign_psid(i);
        let got = received.get(psid.as_str());
        match (&record.outcome, recipient(i)) {
            (Outcome::Sent { message_ids, .. }, Recipient::Sendable) => {
                *counts.entry("sent").or_default() += 1;
                let got = got.unwrap_or_else(|| panic!("{i}: recorded sent, the fake has nothing"));
                assert_eq!(
                    message_ids, got,
                    "{i}: the recorded message id is the fake's"
                );
            }
            (Outcome::Pending, Recipient::Sendable) => {
                *counts.entry("uncertain").or_default() += 1;
                pending.insert(record.contact.clone());
                pending_received += usize::from(got.is_some());
            }
            (Outcome::Skipped { .. }, Recipient::NoAddress) => {
                *counts.entry("skipped").or_default() += 1;
                assert!(got.is_none(), "{i}");
            }
            (Outcome::Failed { kind: None, reason }, Recipient::RenderFails) => {
                *counts.entry("failed").or_default() += 1;
                assert!(reason.contains("no value"), "{i}: {reason}");
                assert!(got.is_none(), "{i}");
            }
            (outcome, kind) => panic!("{i} ({kind:?}) ended as {outcome:?}"),
        }
    }
    assert_eq!(
        pending, pending_at_kill,
        "all records are final but the claims the kill left, which the resume left alone"
    );
    assert_eq!(
        received.len() as u64,
        counts["sent"] + pending_received as u64,
        "every recipient the fake received is recorded sent or pending"
    );

    // The resumed run's report adds up and names the uncertain recipients.
    let total = &report["total"];
    let n = |v: &Value| v.as_u64().unwrap();
    let skipped: u64 = total["skipped"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(n(&total["sent"]), counts["sent"]);
    assert_eq!(skipped, counts["skipped"]);
    assert_eq!(n(&total["failed"]), counts["failed"]);
    assert_eq!(n(&total["uncertain"]), pending.len() as u64);
    assert_eq!(
        n(&total["sent"]) + skipped + n(&total["failed"]) + n(&total["uncertain"]),
        RECIPIENTS as u64
    );
    let this_run = &report["this_run"];
    assert_eq!(
        n(&this_run["sent"])
            + n(&this_run["failed"])
            + this_run["skipped"]
                .as_object()
                .unwrap()
                .values()
                .map(|v| v.as_u64().unwrap())
                .sum::<u64>(),
        (RECIPIENTS - after_kill.len()) as u64,
        "the resume handled exactly the recipients without a record"
    );
    let named: Vec<ContactId> = serde_json::from_value(report["uncertain"].clone()).unwrap();
    assert_eq!(
        named,
        pending.iter().cloned().collect::<Vec<_>>(),
        "the report names the uncertain recipients"
    );
    eprintln!(
        "campaign crash: killed after {received_at_kill} sends reached the fake; {} records \
         then, {} pending (uncertain), {pending_received} of which had reached the fake; \
         resumed run: {} sent; seeded at {seeded:?}, killed at {killed:?}, resumed to the \
         end at {resumed:?}, checked at {:?}",
        after_kill.len(),
        pending.len(),
        n(&this_run["sent"]),
        started.elapsed(),
    );
}

// ---------------------------------------------------------------------------------------------
// 2. A flow killed while it waits for an answer; a new process gets the answer twice.

const FLOW_PSID: &str = "7200000000000001";

const FEEDBACK: &str = r#"{
  "id": "feedback",
  "version": 1,
  "start": "ask",
  "blocks": [
    {"id": "ask", "type": "question", "text": "How is the course going?",
     "options": [{"label": "Great", "next": "great"},
                 {"label": "Too fast", "next": "slow"},
                 {"label": "I'm stuck", "next": "stuck"}]},
    {"id": "great", "type": "send", "text": "Wonderful! Lesson 4 is open.", "next": "done"},
    {"id": "slow", "type": "send", "text": "Take your time.", "next": "done"},
    {"id": "stuck", "type": "send", "text": "A tutor will write to you.", "next": "done"},
    {"id": "done", "type": "end"}
  ]
}"#;

fn flow_contact() -> ContactId {
    ContactId::new("ann").unwrap()
}

fn payload_keys() -> KeyRing {
    KeyRing::new(SigningKey::new(1, SecretSlice::from(vec![11u8; 32])).unwrap())
}

fn flow_engine(stores: &SqliteStores, graph: &str) -> FlowEngine {
    let engine = FlowEngine::builder(stores.processes(), stores.directory(), payload_keys())
        .transport(messenger(stores, graph))
        .build();
    engine.define(Flow::from_json(FEEDBACK).unwrap()).unwrap();
    engine
}

fn connector(stores: &SqliteStores) -> Connector {
    let tokens = Tokens::new(SigningKey::new(1, SecretSlice::from(vec![42u8; 32])).unwrap());
    Connector::builder(stores.directory(), stores.seen(), tokens).build()
}

fn webhook(stores: &SqliteStores) -> Webhook {
    Webhook::builder(
        AppSecret::new(APP_SECRET),
        VerifyToken::new("verify"),
        pages(),
        stores.seen(),
        stores.last_inbound(),
    )
    // Short, so that the claims of a killed child end soon after the kill.
    .claim_lease(CLAIM_LEASE)
    .build()
}

/// The claim lease of the children's webhooks.
const CLAIM_LEASE: Duration = Duration::from_secs(2);

/// A signed webhook POST of `body`, as Meta sends it.
fn signed_post(body: &Value) -> http::Request<bytes::Bytes> {
    let bytes = body.to_string();
    let signature = FakeUser::sign(bytes.as_bytes(), &AppSecret::new(APP_SECRET));
    http::Request::post("/webhook")
        .header("X-Hub-Signature-256", signature)
        .header("Content-Type", "application/json")
        .body(bytes::Bytes::from(bytes))
        .unwrap()
}

/// Child: starts the flow (the question goes to the fake), then waits to be killed.
#[ignore = "a crash-test child: runs only when re-executed by its parent test (see the module docs)"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_flow_start() {
    if !is_child("child_flow_start") {
        return;
    }
    let stores = open(&env(DB)).await;
    let engine = flow_engine(&stores, &env(GRAPH));
    let instance = engine
        .start(&FlowId::new("feedback").unwrap(), &flow_contact())
        .await
        .unwrap();
    report("WAITING", instance);
    std::future::pending::<()>().await;
}

/// Child: a new process gets the answer, twice, and routes it through the Hub.
#[ignore = "a crash-test child: runs only when re-executed by its parent test (see the module docs)"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_flow_answer() {
    if !is_child("child_flow_answer") {
        return;
    }
    let stores = open(&env(DB)).await;
    let engine = flow_engine(&stores, &env(GRAPH));
    let hub = Hub::builder(connector(&stores), stores.directory(), stores.inbox())
        .processes(Arc::new(engine))
        .build();
    let webhook = webhook(&stores);
    let instance = InstanceId::new(env(INSTANCE)).unwrap();
    let body =
        FakeUser::new(PAGE, FLOW_PSID).postback("m-answer-1", "Too fast", &env(PAYLOAD), now());

    let first = hub.handle(&webhook, &signed_post(&body)).await;
    assert_eq!(first.response.status(), 200);
    let [(event, routed)] = &first.routed[..] else {
        panic!("one event routed: {first:?}")
    };
    assert_eq!(
        *routed,
        Routed::Process {
            contact: flow_contact(),
            instance: instance.clone()
        }
    );
    // Meta delivers the same body again (it did not see the 200): dropped as handled.
    let again = hub.handle(&webhook, &signed_post(&body)).await;
    assert_eq!(again.response.status(), 200);
    assert_eq!((again.routed.len(), again.duplicates), (0, 1));
    // As if the process had died between routing and committing the first copy: the
    // redelivery reaches routing again, and the engine does not move the instance twice.
    let rerouted = hub.route(event).await.unwrap();
    assert_eq!(
        rerouted,
        Routed::AnswerIgnored {
            contact: flow_contact(),
            instance: Some(instance),
            reason: IgnoredAnswer::Duplicate
        }
    );
    report("ANSWERED", "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_killed_while_waiting_moves_once_on_an_answer_delivered_twice_to_a_new_process() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flow.db").to_str().unwrap().to_owned();
    let stores = open(&db).await;
    let address = Address::messenger(PAGE, FLOW_PSID).unwrap();
    let mut ann = Contact::new(flow_contact());
    ann.first_name = Some("Ann".into());
    ann.addresses.push(address.clone());
    stores.directory().insert(&ann).await.unwrap();
    stores
        .last_inbound()
        .record(&address, now().saturating_sub(Duration::from_secs(60)))
        .await
        .unwrap();
    let fake = fake_graph().await;
    let graph = fake.base_url();

    let mut starter = ChildProcess::spawn(
        "child_flow_start",
        "child_flow_start",
        &[(DB, db.as_str()), (GRAPH, graph.as_str())],
    );
    let instance = starter.line("WAITING", Duration::from_secs(30)).await;
    starter.kill();

    let question = fake.sent();
    let [question] = &question[..] else {
        panic!("the question reached the fake: {question:?}")
    };
    assert_eq!(question.recipient, FLOW_PSID);
    let buttons = question.body["message"]["attachment"]["payload"]["buttons"]
        .as_array()
        .unwrap();
    let titles: Vec<&str> = buttons
        .iter()
        .map(|b| b["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Great", "Too fast", "I'm stuck"]);
    let payload = buttons[1]["payload"].as_str().unwrap().to_owned();
    let id = InstanceId::new(instance.clone()).unwrap();
    let waiting = stores.processes().get(&id).await.unwrap().unwrap();
    assert_eq!(
        (waiting.status, waiting.step.as_str()),
        (InstanceStatus::Waiting, "ask"),
        "the killed process left the instance waiting for the answer"
    );

    let mut answerer = ChildProcess::spawn(
        "child_flow_answer",
        "child_flow_answer",
        &[
            (DB, db.as_str()),
            (GRAPH, graph.as_str()),
            (PAYLOAD, payload.as_str()),
            (INSTANCE, instance.as_str()),
        ],
    );
    answerer.line("ANSWERED", Duration::from_secs(30)).await;
    assert!(answerer.exit(Duration::from_secs(10)).await.success());

    let done = stores.processes().get(&id).await.unwrap().unwrap();
    assert_eq!(done.status, InstanceStatus::Finished);
    let steps: Vec<&str> = done.history.iter().map(|s| s.step.as_str()).collect();
    assert_eq!(steps, ["ask", "slow", "done"], "the branch picked, once");
    assert_eq!(done.history[0].answer.as_deref(), Some("Too fast"));
    assert_eq!(done.history[0].choice, Some(1));
    let sent: Vec<Option<String>> = fake
        .sent()
        .iter()
        .filter(|s| s.recipient == FLOW_PSID)
        .map(|s| s.text().map(str::to_owned))
        .collect();
    assert_eq!(
        sent,
        [
            Some("How is the course going?".to_owned()),
            Some("Take your time.".to_owned())
        ],
        "the question, then exactly one follow-up"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. The Hub killed mid-batch; a new process gets the batch again.

/// Users writing in the batch.
const USERS: usize = 20;
/// Events in the batch.
const BATCH: usize = 300;

fn hub_contact_id(u: usize) -> ContactId {
    ContactId::new(format!("w{u:02}")).unwrap()
}

fn hub_psid(u: usize) -> String {
    format!("{}", 7_300_000_000_000_000u64 + u as u64)
}

/// Whether event `j` of the batch is a postback without a `mid` (older Graph versions send
/// postbacks without one); the others are texts with a `mid`.
fn mid_less(j: usize) -> bool {
    j % 25 == 12
}

/// The batch: event `j` is from user `j % USERS`.
fn hub_batch() -> Value {
    let start = now().as_millis() - 60_000;
    FakeUser::batch((0..BATCH).map(|j| {
        let user = FakeUser::new(PAGE, hub_psid(j % USERS));
        let at = Timestamp::from_millis(start + j as i64);
        if mid_less(j) {
            let mut body = user.postback("-", "Next lesson", &format!("NEXT-{j}"), at);
            if let Some(postback) = body["entry"][0]["messaging"][0]["postback"].as_object_mut() {
                postback.remove("mid");
            }
            body
        } else {
            user.text(&format!("m-crash-{j}"), &format!("message {j}"), at)
        }
    }))
}

/// An inbox that, after its `stall_after`-th incoming entry is written, reports it and never
/// returns: the event is routed but not committed when the parent kills the process, the
/// worst moment for exactly-once. The Hub routes senders side by side, so from then on every
/// write (of other senders, in flight or later) stalls too: the process is frozen there.
struct StallingInbox {
    inner: Arc<dyn Inbox>,
    written: AtomicUsize,
    stall_after: usize,
    stalled: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Inbox for StallingInbox {
    async fn annotate(
        &self,
        contact: &tidings::ContactId,
        annotation: tidings::inbox::Annotation,
    ) -> Result<Option<tidings::inbox::EntryId>, tidings::StoreError> {
        self.inner.annotate(contact, annotation).await
    }

    async fn record_incoming(
        &self,
        contact: &ContactId,
        at: Timestamp,
        entry: Incoming,
    ) -> Result<EntryId, StoreError> {
        if self.stalled.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let id = self.inner.record_incoming(contact, at, entry).await?;
        let n = self.written.fetch_add(1, Ordering::SeqCst) + 1;
        let stall = self.stall_after > 0 && n >= self.stall_after;
        if stall || self.stalled.load(Ordering::SeqCst) {
            if !self.stalled.swap(true, Ordering::SeqCst) {
                report("STALLED", self.stall_after);
            }
            std::future::pending::<()>().await;
        }
        Ok(id)
    }
    async fn record_outgoing(
        &self,
        contact: &ContactId,
        at: Timestamp,
        entry: Outgoing,
    ) -> Result<EntryId, StoreError> {
        self.inner.record_outgoing(contact, at, entry).await
    }
    async fn update_status(&self, update: &StatusUpdate) -> Result<usize, StoreError> {
        self.inner.update_status(update).await
    }
    async fn conversation(
        &self,
        contact: &ContactId,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        self.inner.conversation(contact, limit).await
    }
    async fn reassign(&self, from: &ContactId, into: &ContactId) -> Result<usize, StoreError> {
        self.inner.reassign(from, into).await
    }
    async fn forget_contact(&self, contact: &ContactId) -> Result<usize, StoreError> {
        self.inner.forget_contact(contact).await
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

/// Child: serves the Hub on the SQLite stores over HTTP; stalls after
/// `TIDINGS_CRASH_STALL_AFTER` inbox entries when that is set.
#[ignore = "a crash-test child: runs only when re-executed by its parent test (see the module docs)"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_hub() {
    if !is_child("child_hub") {
        return;
    }
    let stores = open(&env(DB)).await;
    let inbox = Arc::new(StallingInbox {
        inner: stores.inbox(),
        written: AtomicUsize::new(0),
        stall_after: std::env::var(STALL_AFTER)
            .ok()
            .map_or(0, |n| n.parse().unwrap()),
        stalled: std::sync::atomic::AtomicBool::new(false),
    });
    let hub = Arc::new(Hub::builder(connector(&stores), stores.directory(), inbox).build());
    let webhook = Arc::new(webhook(&stores));
    let app = axum::Router::new().route(
        "/webhook",
        axum::routing::post(move |request: axum::extract::Request| {
            let (hub, webhook) = (hub.clone(), webhook.clone());
            async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, 4 * 1024 * 1024).await.unwrap();
                let handled = hub
                    .handle(&webhook, &http::Request::from_parts(parts, body))
                    .await;
                report(
                    "HANDLED",
                    format!(
                        "{} {} {}",
                        handled.response.status().as_u16(),
                        handled.routed.len(),
                        handled.duplicates
                    ),
                );
                handled.response.map(axum::body::Body::from)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    report("PORT", listener.local_addr().unwrap().port());
    axum::serve(listener, app).await.unwrap();
}

/// Every inbox entry of the batch's users.
async fn hub_entries(stores: &SqliteStores) -> Vec<Incoming> {
    let inbox = stores.inbox();
    let mut all = Vec::new();
    for u in 0..USERS {
        for entry in inbox
            .conversation(&hub_contact_id(u), 10_000)
            .await
            .unwrap()
        {
            match entry.content {
                EntryContent::Incoming(incoming) => all.push(incoming),
                other => panic!("only incoming entries: {other:?}"),
            }
        }
    }
    all
}

/// Posts the batch to a Hub child that stalls after `stall_after` inbox entries, kills it
/// there, posts the batch again to a new child, and checks that each event is in the inbox
/// exactly once.
async fn hub_killed_after(stall_after: usize) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db").to_str().unwrap().to_owned();
    let stores = open(&db).await;
    let contacts: Vec<Contact> = (0..USERS)
        .map(|u| {
            let mut c = Contact::new(hub_contact_id(u));
            c.addresses
                .push(Address::messenger(PAGE, hub_psid(u)).unwrap());
            c
        })
        .collect();
    stores.directory().insert_many(&contacts).await.unwrap();
    let batch = hub_batch();
    let secret = AppSecret::new(APP_SECRET);
    let stall = stall_after.to_string();

    let mut first = ChildProcess::spawn(
        "child_hub",
        "child_hub",
        &[(DB, db.as_str()), (STALL_AFTER, stall.as_str())],
    );
    let url = format!(
        "http://127.0.0.1:{}/webhook",
        first.line("PORT", Duration::from_secs(30)).await
    );
    let post = tokio::spawn({
        let (url, batch, secret) = (url.clone(), batch.clone(), secret.clone());
        async move { FakeUser::post(&url, &batch, &secret).await }
    });
    first.line("STALLED", Duration::from_secs(30)).await;
    first.kill();
    // At least the entries routed before the stall are in the file (with those of other
    // senders whose writes were in flight at that moment).
    let written = hub_entries(&stores).await.len();
    assert!(
        written >= stall_after,
        "the entries routed before the kill are in the SQLite file: {written}"
    );
    assert!(
        post.await.unwrap().is_err(),
        "the killed process never answered the first delivery"
    );

    let mut second = ChildProcess::spawn("child_hub", "child_hub", &[(DB, db.as_str())]);
    let url = format!(
        "http://127.0.0.1:{}/webhook",
        second.line("PORT", Duration::from_secs(30)).await
    );
    // As Meta does: deliver again until the batch is acknowledged. Until the killed child's
    // claims end with their lease, the events it held are left to it and the answer is 503.
    let deadline = tokio::time::Instant::now() + 10 * CLAIM_LEASE;
    let handled = loop {
        let (status, body) = FakeUser::post(&url, &batch, &secret).await.unwrap();
        let handled = second.line("HANDLED", Duration::from_secs(5)).await;
        if status == 200 {
            assert_eq!(body, "EVENT_RECEIVED");
            break handled;
        }
        let counts: Vec<usize> = handled[4..]
            .split(' ')
            .map(|n| n.parse().unwrap())
            .collect();
        assert!(
            status == 503 && handled.starts_with("503 0 ") && counts[1] < written,
            "before the lease ends: nothing routed, the committed events are duplicates, \
             and the stalled one is not among them: {status} {handled}"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the claims of the killed child never ended"
        );
        tokio::time::sleep(CLAIM_LEASE / 4).await;
    };
    // The events committed before the kill are dropped as handled; those routed but not
    // committed (the stalled one at least), and those never routed, are routed again.
    let counts: Vec<usize> = handled[4..]
        .split(' ')
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(handled.starts_with("200 "), "{handled}");
    assert_eq!(
        counts[0] + counts[1],
        BATCH,
        "routed + duplicates: {handled}"
    );
    assert!(
        counts[1] < written,
        "the stalled event was routed again: {handled}"
    );

    let entries = hub_entries(&stores).await;
    let mut by_mid: HashMap<String, usize> = HashMap::new();
    let mut by_choice: HashMap<String, usize> = HashMap::new();
    for entry in &entries {
        match (&entry.message_id, &entry.choice) {
            (Some(mid), None) => *by_mid.entry(mid.clone()).or_default() += 1,
            (None, Some(choice)) => *by_choice.entry(choice.clone()).or_default() += 1,
            other => panic!("unexpected entry {other:?}"),
        }
    }
    for j in (0..BATCH).filter(|&j| !mid_less(j)) {
        assert_eq!(
            by_mid.get(&format!("m-crash-{j}")).copied(),
            Some(1),
            "message {j} (with a mid) is in the inbox exactly once"
        );
    }
    for j in (0..BATCH).filter(|&j| mid_less(j)) {
        assert_eq!(
            by_choice.get(&format!("NEXT-{j}")).copied(),
            Some(1),
            "postback {j} (without a mid) is in the inbox exactly once"
        );
    }
    assert_eq!(entries.len(), BATCH);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_killed_mid_batch_gets_the_batch_again_and_records_each_message_once() {
    // Killed right after the 150th event (a text with a mid) was written to the inbox and
    // before it was committed as handled.
    assert!(!mid_less(149));
    hub_killed_after(150).await;
}

/// The same kill, right after the inbox write of a postback WITHOUT a `mid`: the redelivery
/// routes it again, and the inbox finds the entry by the event's key instead of recording it
/// twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_killed_after_routing_a_mid_less_postback_records_it_once() {
    assert!(mid_less(137));
    hub_killed_after(138).await;
}
