//! Several worker processes on one PostgreSQL database: one campaign run by four workers,
//! one of them killed with SIGKILL mid-run.
//!
//! The test binary runs itself again as the workers (tests/support/child.rs), configured
//! through `TIDINGS_WORKER_*` variables. The fake Graph API runs in the parent, so its record
//! of every send survives the killed worker and is the ground truth. Skipped (saying so) without `TIDINGS_POSTGRES_URL`.

#![cfg(unix)]

#[path = "support/child.rs"]
mod child;
#[path = "support/postgres.rs"]
mod support;

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use child::{ChildProcess, env, is_child, report};
use tidings::{
    clock::{Clock, SystemClock},
    contact::Channel,
    messenger::{MessengerTransport, PageAccessToken, PageConfig, StaticPages},
    newsletter::{
        Campaign, CampaignId, CampaignRunner, Outcome, OutcomeRecord, RunControl, batches::WorkerId,
    },
    segment::Segment,
    store::postgres::PostgresStores,
    testkit::graph::FakeGraph,
    transport::{SharedTransport, TransportSet},
};

const PAGE: &str = "104812345678901";
const PAGE_TOKEN: &str = "workers-page-token";
const DB: &str = "TIDINGS_WORKER_DB";
const GRAPH: &str = "TIDINGS_WORKER_GRAPH";
const NAME: &str = "TIDINGS_WORKER_NAME";

/// Recipients of the campaign unless `TIDINGS_WORKERS_RECIPIENTS` says otherwise: 20,000 keeps
/// the test near a minute in CI's debug build on two cores;
/// `TIDINGS_WORKERS_RECIPIENTS=100000` runs the full size (about three minutes).
const RECIPIENTS: usize = 20_000;
/// Workers running it at once.
const WORKERS: usize = 4;
/// Sends in flight per worker.
const CONCURRENCY: usize = 16;
/// The Page's hard ceiling in this test (Meta's is about 300 a second): no one-second window of
/// the fake's record may hold more sends.
const CEILING: usize = 420;
/// The send budget all workers share, sends a second: below what four workers reach here
/// unpaced (so the budget is what holds them back), and 10 % under the ceiling, as the budget's
/// docs advise. The budget spaces the sends' *slots* exactly; when each request reaches the fake
/// also depends on the reservation's round trip, the senders' timers and the loopback, which on
/// this loaded 2-core machine add up to a few tens of milliseconds (with a budget of 400 the
/// busiest window measured 416 and 425).
const BUDGET: u32 = 380;
/// A worker's lease on a batch: a killed worker's batch is taken over this long after.
const LEASE: Duration = Duration::from_secs(3);
/// A child left alive this long exits on its own.
const WATCHDOG: Duration = Duration::from_secs(300);

fn campaign() -> Campaign {
    Campaign::builder(
        CampaignId::new("workers").unwrap(),
        Segment::everyone(),
        "Hi {{ first_name | default('friend') }}, lesson 5 is open.",
    )
    .channels([Channel::Messenger])
    .build()
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Child side.

/// A worker: runs its share of the campaign until every batch is completed.
#[ignore = "a worker child: runs only when re-executed by its parent test (see the module docs)"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_worker() {
    if !is_child("child_worker", WATCHDOG) {
        return;
    }
    let var = env;
    let stores = PostgresStores::open(&var(DB)).await.unwrap();
    let pages = Arc::new(StaticPages::new([PageConfig::new(
        PAGE,
        PageAccessToken::new(PAGE_TOKEN),
    )]));
    let messenger = MessengerTransport::builder(pages, stores.last_inbound())
        .base_url(var(GRAPH))
        .rate_limit(None)
        .shared_budget(stores.send_budget(BUDGET))
        .build()
        .unwrap();
    let mut transports = TransportSet::new();
    transports.insert(Arc::new(messenger) as SharedTransport);
    let runner = CampaignRunner::builder(stores.directory(), stores.outbox())
        .transports(transports)
        .concurrency(CONCURRENCY)
        .page_size(250)
        .lease(LEASE)
        .build();
    let worker = WorkerId::new(var(NAME)).unwrap();
    report("STARTED", &worker);
    let done = runner
        .run_shared(
            &campaign(),
            &RunControl::new(),
            stores.campaign_batches().as_ref(),
            &worker,
        )
        .await
        .unwrap();
    report("REPORT", serde_json::to_string(&done).unwrap());
}

// ---------------------------------------------------------------------------------------------
// Parent side.

async fn outcomes(stores: &PostgresStores, campaign: &CampaignId) -> Vec<OutcomeRecord> {
    let mut all: Vec<OutcomeRecord> = Vec::new();
    loop {
        let page = stores
            .outbox()
            .list(campaign, all.last().map(|r| &r.contact), 5_000)
            .await
            .unwrap();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

use tidings::newsletter::Outbox;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_share_a_campaign_and_a_killed_one_costs_nobody_a_second_copy() {
    let Some(db) = support::TestDatabase::create("workers").await else {
        return;
    };
    let recipients: usize = std::env::var("TIDINGS_WORKERS_RECIPIENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(RECIPIENTS);
    // Worker 0 is killed once the fake has seen a quarter of the sends.
    let kill_after_sends = recipients / 4;
    let stores = db.stores().await;
    // The contacts, each with a Messenger address and an open window, seeded in SQL.
    let wrote = SystemClock.now().as_millis() - 3_600_000;
    for sql in [
        "INSERT INTO contacts (id, first_name) \
         SELECT 'r' || lpad(i::text, 6, '0'), 'Name' || i FROM generate_series(1, $1) i",
        "INSERT INTO contact_addresses (contact_id, channel, scope, address) \
         SELECT 'r' || lpad(i::text, 6, '0'), 'messenger', $2, (7100000000000000 + i)::text \
         FROM generate_series(1, $1) i",
        "INSERT INTO last_inbound (channel, scope, address, at) \
         SELECT 'messenger', $2, (7100000000000000 + i)::text, $3 FROM generate_series(1, $1) i",
    ] {
        sqlx::query(sql)
            .bind(i32::try_from(recipients).unwrap())
            .bind(PAGE)
            .bind(wrote)
            .execute(stores.pool())
            .await
            .unwrap();
    }
    // Fresh statistics, as after any bulk import: without them the planner reads the new
    // tables as empty and scans them.
    sqlx::query("ANALYZE").execute(stores.pool()).await.unwrap();
    let graph = FakeGraph::builder()
        .page(PAGE, PAGE_TOKEN)
        .enforce_window(false)
        .start()
        .await
        .unwrap();
    let base = graph.base_url();

    let mut workers: Vec<ChildProcess> = (0..WORKERS)
        .map(|i| {
            let name = format!("worker-{i}");
            ChildProcess::spawn(
                "child_worker",
                &name,
                &[(DB, &db.url), (GRAPH, &base), (NAME, &name)],
            )
        })
        .collect();
    // Kill worker 0 mid-run, while it has sends in flight.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    while graph.request_count() < kill_after_sends {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the workers never got going"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    workers[0].kill();

    let mut reports = Vec::new();
    for worker in &mut workers[1..] {
        let line = worker.line("REPORT", Duration::from_secs(240)).await;
        reports.push(serde_json::from_str::<serde_json::Value>(&line).unwrap());
    }

    // The fake's record: nobody got the campaign twice.
    let sent = graph.sent();
    let mut copies: HashMap<&str, usize> = HashMap::new();
    for request in &sent {
        *copies.entry(request.recipient.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent twice: {twice:?}");

    // Every recipient has one outcome; only the killed worker's sends in flight are pending.
    let records = outcomes(&stores, campaign().id()).await;
    assert_eq!(records.len(), recipients, "one outcome per recipient");
    let pending: Vec<_> = records.iter().filter(|r| r.outcome.is_pending()).collect();
    assert!(
        pending.len() <= CONCURRENCY,
        "at most the killed worker's {CONCURRENCY} sends in flight are uncertain: {}",
        pending.len()
    );
    let sent_records = records
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Sent { .. }))
        .count();
    assert!(
        records
            .iter()
            .all(|r| matches!(r.outcome, Outcome::Sent { .. } | Outcome::Pending)),
        "everyone else was sent to"
    );
    // Counts add up: the fake saw every recorded send, plus some of the uncertain ones.
    assert!(
        sent.len() >= sent_records && sent.len() <= sent_records + pending.len(),
        "fake saw {}, outbox has {sent_records} sent and {} uncertain",
        sent.len(),
        pending.len()
    );
    // The surviving workers' reports name the uncertain recipients (a takeover met them).
    let reported_uncertain: u64 = reports
        .iter()
        .map(|r| r["total"]["uncertain"].as_u64().unwrap())
        .sum();
    assert_eq!(reported_uncertain, pending.len() as u64, "{reports:?}");
    let reported_sent: u64 = reports
        .iter()
        .map(|r| r["this_run"]["sent"].as_u64().unwrap())
        .sum();
    assert!(
        reported_sent < sent_records as u64,
        "worker 0 sent some before it died"
    );

    // The Page's budget held across the workers together, in every one-second window.
    let mut times: Vec<i64> = sent.iter().map(|r| r.at.as_millis()).collect();
    times.sort_unstable();
    let mut busiest = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end] - times[start] >= 1_000 {
            start += 1;
        }
        busiest = busiest.max(end - start + 1);
    }
    let mut per_second: BTreeMap<i64, usize> = BTreeMap::new();
    for t in &times {
        *per_second.entry(t / 1_000).or_default() += 1;
    }
    eprintln!(
        "{recipients} recipients, {WORKERS} workers: {} sends in {:.1} s; busiest one-second window {busiest} (budget {BUDGET}); per second: {:?}",
        sent.len(),
        (times.last().unwrap() - times[0]) as f64 / 1000.0,
        per_second.values().collect::<Vec<_>>()
    );
    assert!(
        busiest <= CEILING,
        "the busiest one-second window held {busiest} sends, over the ceiling of {CEILING} \
         (budget {BUDGET})"
    );
    // Over the whole run the workers together kept to the budget itself.
    let seconds = (times.last().unwrap() - times[0]) as f64 / 1000.0;
    assert!(
        sent.len() as f64 <= f64::from(BUDGET) * (seconds + 1.0),
        "{} sends in {seconds:.1} s is over {BUDGET} a second",
        sent.len()
    );
}
