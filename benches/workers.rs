//! Several workers on one database, PostgreSQL and SQLite side by side in one run: campaign
//! fan-out with 1, 2 and 4 workers, outcomes written per second, inbound events committed per
//! second.
//!
//! `TIDINGS_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --all-features --bench workers`
//! (a filter after `--` runs a part: `fan_out`, `outcomes`, `inbound`). Without the variable the
//! PostgreSQL half is skipped, saying so. Each run creates a PostgreSQL database of its own and
//! drops it; the SQLite file lives in a temp dir.
//!
//! - `workers/fan_out_<backend>/<n>_workers`: one campaign of [`RECIPIENTS`] to the fake Graph
//!   API (its own runtime, rate limiter off), run by `n` workers at once with
//!   `CampaignRunner::run_shared`, each with stores of its own (its own pool, as a process of
//!   its own would have) and 16 sends in flight. PostgreSQL workers share batches through
//!   `PgCampaignBatches`; SQLite workers share one file and an in-process batch list. The
//!   `ratio` lines give each count of workers as a share of one worker: that is the scaling.
//! - `workers/outcomes_<backend>/claim_finish_32_tasks`: `Outbox::claim` then `Outbox::finish`
//!   from 32 tasks, as the runner writes each recipient's outcome.
//! - `workers/inbound_<backend>/batch_100_4_tasks`: signed 100-event batches (100 known
//!   senders) through `Hub::handle` (verify, parse, claim, route to the inbox, commit) from 4
//!   tasks at once, as an app instance under load handles them.
//!
//! On this 2-core machine every worker, the fake Graph API and the database server share the
//! same two cores, so fan-out stops scaling once they are busy: the ratios say where.
//!
//! Measured on this 2-core machine (2026-12-03, release build, medians):
//!
//! | part | SQLite | PostgreSQL |
//! |---|---|---|
//! | fan-out, 1 worker | 6,198 messages/s | 997 messages/s |
//! | fan-out, 2 workers | 6,596 (106 % of 1) | 1,677 (168 % of 1) |
//! | fan-out, 4 workers | 4,474 (72 % of 1) | 2,322 (233 % of 1) |
//! | outcomes, 32 tasks | 14,561 outcomes/s | 1,102 outcomes/s |
//! | inbound, 4 tasks | 4,682 events/s | 2,981 events/s |
//!
//! SQLite stops scaling at two workers: every worker's writes queue for the one write lock of
//! the file (four pools meeting on it wait in SQLite's busy handler). PostgreSQL keeps
//! scaling to four workers, where the workers, the fake and the server fill both cores. Its
//! outcome writes are bound by the WAL flush of each commit: with `synchronous_commit = off`
//! (`?options=-c%20synchronous_commit%3Doff` in the URL) the same run writes 8,536 outcomes/s.
//! Do not run the stores so: a claim lost in a crash after its send went out would let the
//! recipient be claimed and sent to again.
//!
//! `cargo test` runs each variant once on small data and prints no verdicts.

#[path = "support/measure.rs"]
mod measure;
#[path = "../tests/support/postgres.rs"]
mod pg;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use measure::{Compare, Interleave, Variant, full, measure, report, runtime};
use sha2::Sha256;
use tidings::{
    clock::{Clock, SystemClock},
    contact::{Address, Channel, ContactId, NewContact},
    hub::Hub,
    identity::{ConnectPolicy, Connector},
    keys::SigningKey,
    messenger::{
        AppSecret, MessengerTransport, PageAccessToken, PageConfig, StaticPages, VerifyToken,
        Webhook,
    },
    newsletter::{
        Campaign, CampaignId, CampaignRunner, Outcome, OutcomeRecord, RunControl,
        batches::{CampaignBatches, WorkerId},
    },
    secrecy::SecretSlice,
    segment::Segment,
    store::{Stores, memory::MemoryCampaignBatches},
    testkit::graph::FakeGraph,
    token::Tokens,
    transport::{SharedTransport, TransportSet},
};

/// The Page of the fixture batches, and of the campaign.
const PAGE: &str = "104857600123456";
const SECRET: &str = "perf-bench-app-secret-0123456789abcdef";
/// Recipients of each fan-out campaign (fewer under `cargo test`).
const RECIPIENTS: usize = 1_000;
const WORKER_COUNTS: [usize; 3] = [1, 2, 4];
const OUTBOX_TASKS: usize = 32;
const INBOUND_TASKS: usize = 4;

fn recipients() -> usize {
    if full() { RECIPIENTS } else { 40 }
}

/// One backend under measurement.
struct Backend {
    name: &'static str,
    /// Stores for each worker of the biggest count: the first also serves the single-store
    /// parts.
    stores: Vec<Stores>,
    /// What the workers share batches through.
    batches: Arc<dyn CampaignBatches>,
    _db: Option<pg::TestDatabase>,
    _dir: Option<tempfile::TempDir>,
}

fn psid(i: usize) -> String {
    (6_543_210_987_650_000u64 + i as u64).to_string()
}

/// The recipients, each with a Messenger address whose window is open.
async fn seed(stores: &Stores, n: usize) {
    let wrote = SystemClock.now().saturating_sub(Duration::from_secs(3_600));
    let mut tasks = tokio::task::JoinSet::new();
    for part in 0..8 {
        let stores = stores.clone();
        tasks.spawn(async move {
            for i in (part..n).step_by(8) {
                let address = Address::messenger(PAGE, psid(i)).expect("address");
                let mut new = NewContact::default();
                new.first_name = Some(format!("Name{i}"));
                new.addresses.push(address.clone());
                stores.directory.create(new).await.expect("create");
                stores
                    .last_inbound
                    .record(&address, wrote)
                    .await
                    .expect("record");
            }
        });
    }
    tasks.join_all().await;
}

async fn backends(n: usize) -> Vec<Backend> {
    let workers = WORKER_COUNTS[WORKER_COUNTS.len() - 1];
    let mut out = Vec::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("workers.db");
    let path = path.to_str().expect("path").to_owned();
    let mut stores = Vec::new();
    for _ in 0..workers {
        stores.push(Stores::open(&path).await.expect("sqlite"));
    }
    seed(&stores[0], n).await;
    out.push(Backend {
        name: "sqlite",
        stores,
        batches: Arc::new(MemoryCampaignBatches::new()),
        _db: None,
        _dir: Some(dir),
    });
    if let Some(db) = pg::TestDatabase::create("bench_workers").await {
        let mut stores = Vec::new();
        for _ in 0..workers {
            stores.push(Stores::open(&db.url).await.expect("postgres"));
        }
        seed(&stores[0], n).await;
        let pool = stores[0].postgres().expect("postgres").pool().clone();
        sqlx::query("ANALYZE")
            .execute(&pool)
            .await
            .expect("analyze");
        let batches = stores[0].campaign_batches.clone();
        out.push(Backend {
            name: "postgres",
            stores,
            batches,
            _db: Some(db),
            _dir: None,
        });
    }
    out
}

// Fan-out ------------------------------------------------------------------------------------

fn transports(fake: &FakeGraph, stores: &Stores) -> TransportSet {
    let messenger = MessengerTransport::builder(
        Arc::new(StaticPages::new([PageConfig::new(
            PAGE,
            PageAccessToken::new("token-a"),
        )])),
        stores.last_inbound.clone(),
    )
    .base_url(fake.base_url())
    .rate_limit(None)
    .build()
    .expect("transport");
    let mut transports = TransportSet::new();
    transports.insert(Arc::new(messenger) as SharedTransport);
    transports
}

static CAMPAIGNS: AtomicU64 = AtomicU64::new(0);

fn campaign() -> Campaign {
    let n = CAMPAIGNS.fetch_add(1, Ordering::Relaxed);
    Campaign::builder(
        CampaignId::new(format!("bench-{n}")).expect("id"),
        Segment::has_address(Channel::Messenger),
        "Hi {{ first_name | default('friend') }}, lesson 5 is open.",
    )
    .channels([Channel::Messenger])
    .build()
    .expect("campaign")
}

/// `iters` campaigns, each run by the `runners` at once; the time until the fake Graph API
/// had every send of each. (A worker left without a batch to open looks again within a second
/// to see the campaign done; that wait holds no sends and is left out.)
fn fan_out(
    client: &tokio::runtime::Runtime,
    fake: &FakeGraph,
    runners: &[CampaignRunner],
    batches: &Arc<dyn CampaignBatches>,
    recipients: usize,
    iters: u64,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let campaign = Arc::new(campaign());
        let (took, sent) = client.block_on(async {
            let goal = fake.request_count() + recipients;
            let started = tokio::time::Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for (i, runner) in runners.iter().enumerate() {
                let (runner, campaign, batches) =
                    (runner.clone(), campaign.clone(), batches.clone());
                tasks.spawn(async move {
                    let worker = WorkerId::new(format!("worker-{i}")).expect("worker id");
                    runner
                        .run_shared(&campaign, &RunControl::new(), batches.as_ref(), &worker)
                        .await
                        .expect("run")
                        .this_run
                        .sent
                });
            }
            while fake.request_count() < goal {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let took = started.elapsed();
            let sent: u64 = tasks.join_all().await.into_iter().sum();
            (took, sent)
        });
        total += took;
        assert_eq!(sent, recipients as u64, "every recipient sent to once");
    }
    total
}

fn bench_fan_out(c: &mut Criterion, client: &tokio::runtime::Runtime, backends: &[Backend]) {
    let server = runtime("fake-graph", 1);
    let fake = server
        .block_on(
            FakeGraph::builder()
                .page(PAGE, "token-a")
                .enforce_window(false)
                .keep_sent(false)
                .start(),
        )
        .expect("fake graph");
    let n = recipients();
    for backend in backends {
        let variants: Vec<Variant<'_>> = WORKER_COUNTS
            .iter()
            .map(|&workers| {
                let runners: Vec<CampaignRunner> = backend.stores[..workers]
                    .iter()
                    .map(|stores| {
                        CampaignRunner::builder(stores.segments.clone(), stores.outbox.clone())
                            .transports(transports(&fake, stores))
                            .concurrency(16)
                            .page_size(100)
                            .build()
                    })
                    .collect();
                let batches = backend.batches.clone();
                let fake = &fake;
                Variant::new(format!("{workers}_workers"), n as u64, move |iters| {
                    fan_out(client, fake, &runners, &batches, n, iters)
                })
            })
            .collect();
        let group = format!("workers/fan_out_{}", backend.name);
        measure(
            c,
            &group,
            |g| {
                g.throughput(Throughput::Elements(n as u64))
                    .sampling_mode(SamplingMode::Flat)
                    .sample_size(10);
            },
            &variants,
            &Interleave {
                rounds: 3,
                slice: Duration::from_secs(1),
            },
        );
        for workers in &WORKER_COUNTS[1..] {
            report(Compare {
                group: &group,
                subject: &format!("{workers}_workers"),
                baselines: &["1_workers"],
                unit: "messages",
                min_rate: None,
                min_ratio: None,
            });
        }
        report(Compare {
            group: &group,
            subject: "1_workers",
            baselines: &[],
            unit: "messages",
            min_rate: None,
            min_ratio: None,
        });
    }
    compare_backends("fan_out", "4_workers", "messages");
}

/// The PostgreSQL figure of `part` as a share of SQLite's.
fn compare_backends(part: &str, variant: &str, unit: &str) {
    let (Some(pg), Some(lite)) = (
        measure::rate(&format!("workers/{part}_postgres/{variant}")),
        measure::rate(&format!("workers/{part}_sqlite/{variant}")),
    ) else {
        return;
    };
    println!(
        "ratio workers/{part}/{variant}: postgres {pg:.0} {unit}/s = {:.1} % of sqlite {lite:.0} {unit}/s",
        100.0 * pg / lite
    );
}

// Outcomes -----------------------------------------------------------------------------------

static SERIAL: AtomicU64 = AtomicU64::new(0);

/// `iters` claims and finishes from [`OUTBOX_TASKS`] tasks; their time.
fn outcomes(client: &tokio::runtime::Runtime, stores: &Stores, iters: u64) -> Duration {
    let campaign = CampaignId::new("bench-outcomes").expect("id");
    let at = SystemClock.now();
    let contacts: Vec<Vec<ContactId>> = (0..OUTBOX_TASKS)
        .map(|task| {
            (task as u64..iters)
                .step_by(OUTBOX_TASKS)
                .map(|_| {
                    let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
                    ContactId::new(format!("r{serial:010}")).expect("id")
                })
                .collect()
        })
        .collect();
    client.block_on(async {
        let started = tokio::time::Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for share in contacts {
            let (outbox, campaign) = (stores.outbox.clone(), campaign.clone());
            tasks.spawn(async move {
                for contact in share {
                    outbox.claim(&campaign, &contact, at).await.expect("claim");
                    let sent = OutcomeRecord::new(
                        campaign.clone(),
                        contact,
                        Outcome::Sent {
                            channel: Channel::Messenger,
                            message_ids: vec!["m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM".to_owned()],
                        },
                        at,
                    );
                    outbox.finish(&sent).await.expect("finish");
                }
            });
        }
        tasks.join_all().await;
        started.elapsed()
    })
}

/// Measures one variant, `label`, of `part` on `backend`: `elements` a run, in `unit`.
fn measure_one(
    c: &mut Criterion,
    part: &str,
    backend: &Backend,
    variant: Variant<'_>,
    elements: u64,
    unit: &str,
) {
    let group = format!("workers/{part}_{}", backend.name);
    let label = variant.label().to_owned();
    measure(
        c,
        &group,
        |g| {
            g.throughput(Throughput::Elements(elements));
        },
        &[variant],
        &Interleave {
            rounds: 3,
            slice: Duration::from_millis(500),
        },
    );
    report(Compare {
        group: &group,
        subject: &label,
        baselines: &[],
        unit,
        min_rate: None,
        min_ratio: None,
    });
}

fn bench_outcomes(c: &mut Criterion, client: &tokio::runtime::Runtime, backends: &[Backend]) {
    for backend in backends {
        let stores = &backend.stores[0];
        let variant = Variant::new("claim_finish_32_tasks", 1, |iters| {
            outcomes(client, stores, iters)
        });
        measure_one(c, "outcomes", backend, variant, 1, "outcomes");
    }
    compare_backends("outcomes", "claim_finish_32_tasks", "outcomes");
}

// Inbound ------------------------------------------------------------------------------------

/// A Hub and its webhook over `stores`, with the fixture's 100 senders registered.
struct Inbound {
    hub: Hub,
    webhook: Webhook,
    template: String,
}

impl Inbound {
    async fn new(stores: &Stores) -> Inbound {
        let tokens =
            Tokens::new(SigningKey::new(1, SecretSlice::from(vec![1u8; 32])).expect("key"));
        let connector = Connector::builder(stores.directory.clone(), stores.seen.clone(), tokens)
            .policy(ConnectPolicy::new().with_auto_register(true))
            .build();
        let hub = Hub::builder(connector, stores.directory.clone(), stores.inbox.clone()).build();
        let pages = Arc::new(StaticPages::new([PageConfig::new(
            PAGE,
            PageAccessToken::new("t"),
        )]));
        let webhook = Webhook::builder(
            AppSecret::new(SECRET),
            VerifyToken::new("v"),
            pages,
            stores.seen.clone(),
            stores.last_inbound.clone(),
        )
        .build();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/fixtures");
        let template = std::fs::read_to_string(format!("{dir}/body_100.json")).expect("fixture");
        let inbound = Inbound {
            hub,
            webhook,
            template,
        };
        // The first batch registers the 100 senders.
        let first = inbound
            .hub
            .handle(&inbound.webhook, &inbound.request())
            .await;
        assert_eq!(first.response.status(), 200);
        inbound
    }

    /// The fixture with fresh message ids, signed.
    fn request(&self) -> http::Request<Bytes> {
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        let body = self
            .template
            .replace("m_AG5Hz2Uq7tuwNEhXfY", &format!("m_{serial:018}"));
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
        mac.update(body.as_bytes());
        let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        http::Request::post("/webhook")
            .header("x-hub-signature-256", sig)
            .body(Bytes::from(body))
            .expect("request")
    }
}

/// `iters` batches from [`INBOUND_TASKS`] tasks; their time.
fn inbound(client: &tokio::runtime::Runtime, inbound: &Arc<Inbound>, iters: u64) -> Duration {
    let requests: Vec<Vec<http::Request<Bytes>>> = (0..INBOUND_TASKS)
        .map(|task| {
            (task as u64..iters)
                .step_by(INBOUND_TASKS)
                .map(|_| inbound.request())
                .collect()
        })
        .collect();
    client.block_on(async {
        let started = tokio::time::Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for share in requests {
            let inbound = inbound.clone();
            tasks.spawn(async move {
                for request in share {
                    let handled = inbound.hub.handle(&inbound.webhook, &request).await;
                    assert_eq!(
                        handled.routed.len(),
                        100,
                        "every event routed: {} {:?}",
                        handled.response.status(),
                        handled.error
                    );
                }
            });
        }
        tasks.join_all().await;
        started.elapsed()
    })
}

fn bench_inbound(c: &mut Criterion, client: &tokio::runtime::Runtime, backends: &[Backend]) {
    for backend in backends {
        let hub = Arc::new(client.block_on(Inbound::new(&backend.stores[0])));
        let variant = Variant::new("batch_100_4_tasks", 100, |iters| {
            inbound(client, &hub, iters)
        });
        measure_one(c, "inbound", backend, variant, 100, "events");
    }
    compare_backends("inbound", "batch_100_4_tasks", "events");
}

fn benches(c: &mut Criterion) {
    let client = runtime("workers", 2);
    let backends = client.block_on(backends(recipients()));
    if backends.len() == 1 {
        println!(
            "workers: PostgreSQL skipped ({} is not set); SQLite only",
            pg::URL_VAR
        );
    }
    bench_fan_out(c, &client, &backends);
    bench_outcomes(c, &client, &backends);
    bench_inbound(c, &client, &backends);
    client.block_on(async {
        for backend in &backends {
            for stores in &backend.stores {
                stores.close().await;
            }
        }
    });
    drop(backends);
}

criterion_group! {
    name = workers;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(workers);
