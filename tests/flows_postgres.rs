//! Two worker processes tick the same 10,000 due flow instances on one PostgreSQL database:
//! each instance moves once, with one message each, and the workers share them out rather
//! than racing for the same ones.
//!
//! The test binary runs itself again as the workers (tests/support/child.rs). The fake Graph
//! API runs in the parent and its record of every send is the ground truth. Skipped (saying
//! so) without `TIDINGS_POSTGRES_URL`.

#![cfg(unix)]

#[path = "support/child.rs"]
mod child;
#[path = "support/postgres.rs"]
mod support;

use std::{collections::HashMap, sync::Arc, time::Duration};

use child::{ChildProcess, env, is_child, report};
use serde_json::{Value, json};
use tidings::{
    clock::{Clock, SystemClock},
    contact::ContactId,
    keys::{KeyRing, SigningKey},
    messenger::{MessengerTransport, PageAccessToken, PageConfig, StaticPages},
    process::{
        FlowEngine, FlowId, InstanceId, InstanceStatus, ProcessInstance, ProcessStore, StepRecord,
        flow::Flow,
    },
    secrecy::SecretSlice,
    store::postgres::PostgresStores,
    testkit::graph::FakeGraph,
};

const PAGE: &str = "104812345678901";
const PAGE_TOKEN: &str = "flows-page-token";
const DB: &str = "TIDINGS_FLOWS_DB";
const GRAPH: &str = "TIDINGS_FLOWS_GRAPH";
/// When the workers start ticking (milliseconds since the epoch), so both are under way at
/// once whichever started first.
const START_AT: &str = "TIDINGS_FLOWS_START_AT";
/// Due instances.
const INSTANCES: usize = 10_000;
const WORKERS: usize = 2;
/// A child left alive this long exits on its own.
const WATCHDOG: Duration = Duration::from_secs(240);

fn flow() -> Flow {
    Flow::builder(FlowId::new("drip").unwrap(), 1)
        .wait("wait", Duration::from_secs(3_600), "lesson")
        .send(
            "lesson",
            "Hi {{ first_name | default('there') }}, lesson 2 is open.",
            "done",
        )
        .end("done")
        .build()
}

fn contact(i: usize) -> ContactId {
    ContactId::new(format!("c{i:05}")).unwrap()
}

fn psid(i: usize) -> String {
    (7_200_000_000_000_000u64 + i as u64).to_string()
}

// ---------------------------------------------------------------------------------------------
// Child side.

/// A worker: ticks until nothing is due, then reports what its ticks did.
#[ignore = "a worker child: runs only when re-executed by its parent test (see the module docs)"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_ticker() {
    if !is_child("child_ticker", WATCHDOG) {
        return;
    }
    let stores = PostgresStores::open(&env(DB)).await.unwrap();
    let pages = Arc::new(StaticPages::new([PageConfig::new(
        PAGE,
        PageAccessToken::new(PAGE_TOKEN),
    )]));
    let messenger = MessengerTransport::builder(pages, stores.last_inbound())
        .base_url(env(GRAPH))
        .rate_limit(None)
        .build()
        .unwrap();
    let keys = KeyRing::new(SigningKey::new(1, SecretSlice::from(vec![7u8; 32])).unwrap());
    let engine = FlowEngine::builder(stores.processes(), stores.directory(), keys)
        .transport(Arc::new(messenger))
        .tick_batch(50)
        .build();
    engine.define(flow()).unwrap();

    let start: i64 = env(START_AT).parse().unwrap();
    let wait = start - SystemClock.now().as_millis();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
    let (mut waits, mut skipped, mut failures, mut ticks) = (0, 0, 0, 0);
    let mut idle = 0;
    // Done when two ticks in a row, a little apart, find nothing (the other worker may still
    // hold claims it is moving).
    while idle < 2 {
        let tick = engine.tick(SystemClock.now()).await.unwrap();
        ticks += 1;
        waits += tick.waits;
        skipped += tick.skipped;
        failures += tick.failures.len();
        if tick.waits == 0 && !tick.more {
            idle += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        } else {
            idle = 0;
        }
    }
    report(
        "REPORT",
        json!({"waits": waits, "skipped": skipped, "failures": failures, "ticks": ticks}),
    );
}

// ---------------------------------------------------------------------------------------------
// Parent side.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_tick_the_same_due_instances_and_each_moves_once() {
    let Some(db) = support::TestDatabase::create("flows").await else {
        return;
    };
    let stores = db.stores().await;
    let now = SystemClock.now();
    for sql in [
        "INSERT INTO contacts (id, first_name) \
         SELECT 'c' || lpad(i::text, 5, '0'), 'Name' || i FROM generate_series(0, $1 - 1) i",
        "INSERT INTO contact_addresses (contact_id, channel, scope, address) \
         SELECT 'c' || lpad(i::text, 5, '0'), 'messenger', $2, (7200000000000000 + i)::text \
         FROM generate_series(0, $1 - 1) i",
        "INSERT INTO last_inbound (channel, scope, address, at) \
         SELECT 'messenger', $2, (7200000000000000 + i)::text, $3 \
         FROM generate_series(0, $1 - 1) i",
    ] {
        sqlx::query(sql)
            .bind(i32::try_from(INSTANCES).unwrap())
            .bind(PAGE)
            .bind(now.saturating_sub(Duration::from_secs(600)).as_millis())
            .execute(stores.pool())
            .await
            .unwrap();
    }
    // The instances, through the store: each waited an hour, and the wait is over.
    let processes = stores.processes();
    let mut ids = Vec::with_capacity(INSTANCES);
    let mut inserts = tokio::task::JoinSet::new();
    for chunk in (0..INSTANCES).collect::<Vec<_>>().chunks(INSTANCES / 16) {
        let processes = processes.clone();
        let chunk = chunk.to_vec();
        inserts.spawn(async move {
            for i in chunk {
                let started = now.saturating_sub(Duration::from_secs(3_601));
                let mut instance = ProcessInstance::new(
                    InstanceId::new(format!("i{i:05}")).unwrap(),
                    FlowId::new("drip").unwrap(),
                    1,
                    contact(i),
                    "wait",
                );
                instance.status = InstanceStatus::Waiting;
                instance.due_at = Some(
                    started
                        .saturating_add(Duration::from_secs(3_600))
                        .saturating_add(Duration::from_millis(i as u64 % 500)),
                );
                instance.history.push(StepRecord::new("wait", started));
                processes.insert(&instance).await.unwrap();
            }
        });
    }
    inserts.join_all().await;
    for i in 0..INSTANCES {
        ids.push(InstanceId::new(format!("i{i:05}")).unwrap());
    }
    sqlx::query("ANALYZE").execute(stores.pool()).await.unwrap();
    assert_eq!(
        processes
            .due(SystemClock.now(), INSTANCES + 1)
            .await
            .unwrap()
            .len(),
        INSTANCES,
        "every instance is due before the workers start"
    );

    let graph = FakeGraph::builder()
        .page(PAGE, PAGE_TOKEN)
        .enforce_window(false)
        .start()
        .await
        .unwrap();
    let base = graph.base_url();
    let start_at = (SystemClock.now().as_millis() + 1_500).to_string();
    let mut workers: Vec<ChildProcess> = (0..WORKERS)
        .map(|i| {
            ChildProcess::spawn(
                "child_ticker",
                format!("ticker-{i}"),
                &[(DB, &db.url), (GRAPH, &base), (START_AT, &start_at)],
            )
        })
        .collect();
    let mut reports = Vec::new();
    for worker in &mut workers {
        let line = worker.line("REPORT", Duration::from_secs(200)).await;
        reports.push(serde_json::from_str::<Value>(&line).unwrap());
    }
    let field = |r: &Value, key: &str| r[key].as_u64().unwrap();

    // The fake's record: one message per instance, to its contact.
    let sent = graph.sent();
    let mut copies: HashMap<&str, usize> = HashMap::new();
    for request in &sent {
        *copies.entry(request.recipient.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent twice: {twice:?}");
    assert_eq!(sent.len(), INSTANCES, "one lesson per instance");
    assert!((0..INSTANCES).all(|i| copies.contains_key(psid(i).as_str())));
    let first = sent.iter().find(|r| r.recipient == psid(0)).unwrap();
    assert_eq!(
        first.text(),
        Some("Hi Name0, lesson 2 is open."),
        "the send block's template, with the contact's fields"
    );

    // Each instance moved once: finished, through the lesson once.
    for id in &ids {
        let instance = processes.get(id).await.unwrap().unwrap();
        let steps: Vec<&str> = instance.history.iter().map(|s| s.step.as_str()).collect();
        assert_eq!(
            (instance.status, steps.as_slice()),
            (
                InstanceStatus::Finished,
                ["wait", "lesson", "done"].as_slice()
            ),
            "instance {id}"
        );
    }

    // The workers shared the instances out: every wait ended once, by one of them, none lost
    // a race for an instance the other had claimed, and both did part of the work.
    let waits: Vec<u64> = reports.iter().map(|r| field(r, "waits")).collect();
    assert_eq!(waits.iter().sum::<u64>(), INSTANCES as u64, "{reports:?}");
    assert!(
        waits.iter().all(|w| *w > 0),
        "both workers moved instances: {reports:?}"
    );
    for r in &reports {
        assert_eq!(field(r, "skipped"), 0, "no worker lost a race: {reports:?}");
        assert_eq!(field(r, "failures"), 0, "{reports:?}");
    }
    eprintln!(
        "{INSTANCES} instances, {WORKERS} workers: {}",
        Value::from(reports.clone())
    );
    for worker in &mut workers {
        assert!(worker.exit(Duration::from_secs(30)).await.success());
    }
}
