//! Campaign fan-out: recipients from the memory segment store to the fake Graph API on
//! loopback, through the whole pipeline (segment page, claim, render, policy, Send API call,
//! finish), with the rate limiter off.
//!
//! `cargo bench --bench newsletter` (targets, issue 6: at least 20,000 messages/s on a 2-core
//! machine for 100,000 recipients; the run's working memory independent of the segment size).
//!
//! Memory: a counting allocator tracks live bytes. For 10,000 and 100,000 recipients the bench
//! prints the peak of live bytes above the level before the run (`peak`), what stays allocated
//! after it (`retained`: the outbox's records, which are the campaign's result), and the
//! difference (`working`): the pipeline's own memory, which must not grow with the segment.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    hint::black_box,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tidings::{
    activity::LastInbound,
    clock::{Clock, SystemClock},
    contact::{Address, Channel, Contact, ContactId},
    messenger::{MessengerTransport, PageAccessToken, PageConfig, StaticPages},
    newsletter::{Campaign, CampaignId, CampaignRunner, RunControl},
    segment::Segment,
    store::memory::{MemoryDirectory, MemoryLastInbound, MemoryOutbox},
    testkit::graph::FakeGraph,
    transport::{SharedTransport, TransportSet},
};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: defers to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const PAGE: &str = "104812345678901";

fn runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("runtime")
}

struct Setup {
    _fake: FakeGraph,
    directory: Arc<MemoryDirectory>,
    transports: TransportSet,
}

async fn setup(server: &tokio::runtime::Runtime, recipients: usize) -> Setup {
    let fake = server
        .spawn(
            FakeGraph::builder()
                .page(PAGE, "token-a")
                .enforce_window(false)
                .keep_sent(false)
                .start(),
        )
        .await
        .expect("fake task")
        .expect("fake graph");
    let last = Arc::new(MemoryLastInbound::new());
    let messenger = MessengerTransport::builder(
        Arc::new(StaticPages::new([PageConfig::new(
            PAGE,
            PageAccessToken::new("token-a"),
        )])),
        last.clone(),
    )
    .base_url(fake.base_url())
    .rate_limit(None)
    .build()
    .expect("transport");
    let mut transports = TransportSet::new();
    transports.insert(Arc::new(messenger) as SharedTransport);

    let directory = Arc::new(MemoryDirectory::new());
    let wrote = SystemClock.now().saturating_sub(Duration::from_secs(3600));
    for i in 0..recipients {
        let mut contact = Contact::new(ContactId::new(format!("u{i:07}")).expect("id"));
        contact.first_name = (i % 3 != 0).then(|| format!("Name{i}"));
        contact
            .fields
            .insert("lesson".into(), serde_json::json!(i % 12));
        let address = Address::messenger(PAGE, format!("{}", 7_000_000_000_000_000u64 + i as u64))
            .expect("address");
        last.record(&address, wrote).await.expect("record");
        contact.addresses.push(address);
        directory.insert(contact).expect("insert");
    }
    Setup {
        _fake: fake,
        directory,
        transports,
    }
}

fn campaign(id: usize) -> Campaign {
    Campaign::builder(
        CampaignId::new(format!("bench-{id}")).expect("id"),
        Segment::has_address(Channel::Messenger),
        "Hi {{ first_name | default('friend') }}, lesson {{ fields.lesson }} is open: \
         https://school.example/lessons/{{ fields.lesson }}",
    )
    .channels([Channel::Messenger])
    .build()
    .expect("campaign")
}

fn runner(setup: &Setup, outbox: Arc<MemoryOutbox>) -> CampaignRunner {
    CampaignRunner::builder(setup.directory.clone(), outbox)
        .transports(setup.transports.clone())
        .concurrency(64)
        .page_size(1000)
        .build()
}

/// Runs one campaign and returns (peak, retained) live bytes above the level before it.
fn measure_memory(client: &tokio::runtime::Runtime, setup: &Setup, id: usize) -> (usize, usize) {
    let outbox = Arc::new(MemoryOutbox::new());
    let runner = runner(setup, outbox.clone());
    let campaign = campaign(id);
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let report = client
        .block_on(runner.run(&campaign, &RunControl::new()))
        .expect("run");
    black_box(&report);
    drop(report);
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    let retained = LIVE.load(Ordering::Relaxed).saturating_sub(before);
    drop(outbox);
    (peak, retained)
}

fn bench_fan_out(c: &mut Criterion) {
    // `cargo test` runs benches once in test mode: keep that run small.
    let full = std::env::args().any(|a| a == "--bench");
    let sizes: &[usize] = if full {
        &[10_000, 100_000]
    } else {
        &[500, 2_000]
    };
    let server = runtime("fake-graph");
    let client = runtime("campaign");

    let mut ids = 0;
    for &n in sizes {
        let setup = client.block_on(setup(&server, n));
        // Warm up: connections and pools that live as long as the transport.
        ids += 1;
        let _ = measure_memory(&client, &setup, ids);
        let (peak, retained) = measure_memory(&client, &setup, {
            ids += 1;
            ids
        });
        println!(
            "newsletter/memory/{n}: peak {peak} B, retained {retained} B ({} B/recipient), working {} B",
            retained / n,
            peak.saturating_sub(retained)
        );

        let mut group = c.benchmark_group("newsletter/fan_out");
        group.throughput(Throughput::Elements(n as u64));
        group.sample_size(10);
        group.warm_up_time(Duration::from_millis(100));
        group.measurement_time(Duration::from_secs(if n >= 100_000 { 40 } else { 10 }));
        group.bench_function(format!("{n}_recipients"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let outbox = Arc::new(MemoryOutbox::new());
                    let runner = runner(&setup, outbox);
                    ids += 1;
                    let campaign = campaign(ids);
                    let started = tokio::time::Instant::now();
                    let report = client
                        .block_on(runner.run(&campaign, &RunControl::new()))
                        .expect("run");
                    total += started.elapsed();
                    assert_eq!(report.this_run.sent, n as u64, "{report:?}");
                }
                total
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench_fan_out);
criterion_main!(benches);
