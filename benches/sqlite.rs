//! The SQLite stores against a raw sqlx baseline measured in the same run: every figure is
//! printed as a ratio, so what it shows is the crate's overhead, not the machine.
//!
//! `cargo bench --features sqlite,testkit --bench sqlite -- --warm-up-time 1 --measurement-time 3`
//! (a filter after `--` runs a part: `unit`, `inbound`, `outbox`, `segment`, `fan_out`).
//!
//! The baseline (`raw`) is hand-written sqlx on a SQLite file of its own, created with the
//! crate's own migration (same tables and indexes), opened with the same pragmas (WAL,
//! `synchronous = NORMAL`, foreign keys, 5 s busy timeout) and the same pool size (8), doing the
//! same statements in the same transaction shape and binding the same JSON text. Files live in
//! a temp dir, never `:memory:`. After each group a `ratio` line gives the rates (the median
//! over criterion's samples), the subject's share of each baseline and the targets.
//! Besides `raw`, some groups have baselines that show where the time goes:
//! `raw_1_connection` (a pool of one: writers queue in the pool instead of meeting on SQLite's
//! write lock, whose busy handler sleeps), `raw_no_ping` (the pool without sqlx's ping of a
//! connection before handing it out, `test_before_acquire(false)`) and floors of batch-shaped
//! writes the traits do not offer (`raw_one_tx`, `raw_multi_row`, `raw_batched_32`; on a pool
//! of one connection, so that their transactions queue in the pool and not on the write lock).
//!
//! - `sqlite/unit`: one statement through the pool, through the pool without the checkout
//!   ping, on a connection already held; an upsert committed alone and inside a transaction.
//!   The price list the other figures are made of.
//! - `sqlite/inbound/*`: what the webhook path writes, as it writes it: the claims of a
//!   batch's events (`SeenEvents::claim_many`) and the last-inbound records
//!   (`LastInbound::record_many`), one call each as `Webhook::receive` makes them; then per
//!   sender side by side, each sender's events in order, as `Hub::handle` routes them, the inbox
//!   entry (`Inbox::record_incoming`) and the settled mark (`SeenEvents::settle`, as
//!   `Webhook::commit` does). Batches of 1 and of 100 events, from 1 task and from 4 concurrent
//!   tasks. Targets: at least 20,000 events/s and at least 50 % of raw. `raw` is the same
//!   statements written one after the other by hand (the claims and the windows in a
//!   transaction each, each entry and each settle on its own); `raw_one_tx` writes a whole
//!   batch in one transaction; `raw_multi_row` writes the windows, entries and marks with one
//!   multi-row `INSERT` per store and no settles (a floor).
//! - `sqlite/outbox/claim_finish_32_tasks`: `Outbox::claim` then `Outbox::finish` from 32
//!   concurrent tasks, as the campaign runner does. Target: at least 20,000 per second.
//!   `raw_batched_32` claims 32 recipients in one transaction and finishes them in another.
//! - `sqlite/segment_<n>/{everyone,selective}`: pages of 500 through `SegmentQuery::page`,
//!   following the cursor (and starting over at the end), over 1,000,000 contacts seeded once per
//!   process with `SqliteDirectory::insert_many`. `selective` is a tag and a custom field
//!   (`vip` and `lesson = 3`: 1 contact in 84). The baseline runs the same keyset `SELECT` by
//!   hand on the same file and keeps the rows as sqlx decodes them; `raw_json_extract` is the
//!   selective page with `json_extract` instead of the crate's `json_each` translation. Memory:
//!   the peak of live bytes while reading a whole segment must not grow with it (100,000 vs
//!   1,000,000 contacts).
//! - `sqlite/fan_out/<n>_recipients`: a campaign to the fake Graph API (rate limiter off) with
//!   directory, outbox and last inbound from `SqliteStores`, against the same campaign on the
//!   memory stores (`memory`), as benches/newsletter.rs runs it. Target: at least 15,000
//!   messages/s; working memory independent of the recipients (10,000 vs 100,000).
//!
//! Memory figures count what Rust allocates (a counting global allocator, as in
//! benches/newsletter.rs); SQLite's own page cache is allocated by the bundled C library and is
//! bounded by its `cache_size` (2 MB a connection by default), not by the data.
//!
//! `cargo test` runs every bench once on small data (3,000 contacts instead of 1,000,000) and
//! prints no verdicts. `TIDINGS_BENCH_CONTACTS=100000` reads segment pages from a smaller
//! directory (a quicker run, or a profile).

#[path = "support/measure.rs"]
mod measure;

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::{Cell, OnceCell, RefCell},
    collections::BTreeMap,
    hint::black_box,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use measure::{Compare, INTERLEAVE, Interleave, Variant, full, measure, rate, report, runtime};
use sqlx::{
    SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use tidings::{
    activity::LastInbound,
    clock::{Clock, SystemClock, Timestamp},
    contact::{Address, Channel, Contact, ContactId},
    inbox::{EntryContent, Inbox, Incoming},
    messenger::{MessengerTransport, PageAccessToken, PageConfig, StaticPages},
    newsletter::{
        Campaign, CampaignId, CampaignRunner, Outbox, Outcome, OutcomeRecord, Recorded, RunControl,
    },
    seen::SeenEvents,
    segment::{Cursor, FieldOp, Segment, SegmentQuery},
    store::{
        memory::{MemoryDirectory, MemoryLastInbound, MemoryOutbox},
        sqlite::{SqliteDirectory, SqliteStores},
    },
    testkit::graph::FakeGraph,
    transport::{SharedTransport, TransportSet},
};

// Memory ---------------------------------------------------------------------------------------

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
            // A read first: most allocations do not raise the peak, and a read does not take
            // the cache line from the other threads.
            if live > PEAK.load(Ordering::Relaxed) {
                PEAK.fetch_max(live, Ordering::Relaxed);
            }
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

/// Runs `f` and returns its result with the peak of live bytes above the level before it.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(before))
}

// Databases ------------------------------------------------------------------------------------

const PAGE: &str = "104812345678901";
/// The crate's schema, for the baseline's own file: the same tables and indexes, every
/// migration in order.
const SCHEMA: [&str; 6] = [
    include_str!("../src/store/sqlite/migrations/0001_stores.sql"),
    include_str!("../src/store/sqlite/migrations/0002_erasure.sql"),
    include_str!("../src/store/sqlite/migrations/0003_inbox_read_marks.sql"),
    include_str!("../src/store/sqlite/migrations/0004_seen_claims.sql"),
    include_str!("../src/store/sqlite/migrations/0005_inbox_event_keys.sql"),
    include_str!("../src/store/sqlite/migrations/0006_annotations_optins_threads.sql"),
];
const SEGMENT_PAGE: usize = 500;

/// The pragmas `SqliteStores::open` sets, for the baseline.
fn raw_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .create_if_missing(true)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5))
        .synchronous(SqliteSynchronous::Normal)
}

/// A pool as the stores' (8 connections; sqlx's defaults otherwise).
fn pool_options() -> SqlitePoolOptions {
    SqlitePoolOptions::new().max_connections(8)
}

/// A pool on `path` with the stores' pragmas.
async fn raw_pool(path: &Path, options: SqlitePoolOptions) -> SqlitePool {
    options
        .connect_with(raw_options(path))
        .await
        .expect("raw pool")
}

/// A new baseline database with the crate's schema.
async fn raw_database(path: &Path, options: SqlitePoolOptions) -> SqlitePool {
    let pool = raw_pool(path, options).await;
    for migration in SCHEMA {
        sqlx::raw_sql(migration)
            .execute(&pool)
            .await
            .expect("schema");
    }
    pool
}

/// The baselines' pools, each on a file of its own: as the stores' (`raw`), of one connection
/// (writers queue in the pool instead of meeting on SQLite's write lock, whose busy handler
/// sleeps), and without sqlx's ping of a connection before handing it out
/// (`test_before_acquire(false)`; sqlx also pings when a connection comes back).
struct RawPools {
    raw: SqlitePool,
    one: SqlitePool,
    no_ping: SqlitePool,
    /// For the floors of batch-shaped writes: one connection, so that their transactions
    /// queue in the pool rather than on the write lock.
    floor: SqlitePool,
}

async fn raw_pools(dir: &Path) -> RawPools {
    RawPools {
        raw: raw_database(&dir.join("raw.db"), pool_options()).await,
        one: raw_database(&dir.join("raw_1.db"), pool_options().max_connections(1)).await,
        no_ping: raw_database(
            &dir.join("raw_no_ping.db"),
            pool_options().test_before_acquire(false),
        )
        .await,
        floor: raw_database(&dir.join("raw_floor.db"), pool_options().max_connections(1)).await,
    }
}

async fn open_stores(path: &Path) -> SqliteStores {
    SqliteStores::open(path.to_str().expect("utf-8 temp path"))
        .await
        .expect("stores")
}

fn psid(i: usize) -> String {
    format!("{}", 7_000_000_000_000_000u64 + i as u64)
}

fn contact_id(i: usize) -> ContactId {
    ContactId::new(format!("u{i:07}")).expect("id")
}

/// Contact `i` of the seeded directories: one Messenger address, a tag or two, two fields.
fn contact(i: usize) -> Contact {
    let mut contact = Contact::new(contact_id(i));
    contact.email = Some(format!("u{i}@school.example"));
    contact.first_name = (i % 3 != 0).then(|| format!("Name{i}"));
    contact
        .fields
        .insert("lesson".into(), serde_json::json!(i % 12));
    contact.fields.insert(
        "plan".into(),
        serde_json::json!(if i % 4 == 0 { "pro" } else { "basic" }),
    );
    contact.tags.insert("student".into());
    if i % 7 == 0 {
        contact.tags.insert("vip".into());
    }
    contact
        .addresses
        .push(Address::messenger(PAGE, psid(i)).expect("address"));
    contact
}

/// A seeded database, kept for the whole process.
struct Seeded {
    _dir: tempfile::TempDir,
    stores: SqliteStores,
    directory: Arc<SqliteDirectory>,
    /// A raw pool on the same file, for the hand-written reads.
    raw: SqlitePool,
    contacts: usize,
}

/// Seeds `n` contacts in chunks (and, with `windows`, a last inbound message an hour ago for
/// each, so campaigns may write to them).
async fn seed(n: usize, windows: bool) -> Seeded {
    const CHUNK: usize = 10_000;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("seeded.db");
    let stores = open_stores(&path).await;
    let directory = stores.directory();
    let last = stores.last_inbound();
    let wrote = SystemClock.now().saturating_sub(Duration::from_secs(3600));
    let started = tokio::time::Instant::now();
    for start in (0..n).step_by(CHUNK) {
        let chunk: Vec<Contact> = (start..n.min(start + CHUNK)).map(contact).collect();
        directory.insert_many(&chunk).await.expect("seed contacts");
        if windows {
            let records: Vec<(&Address, Timestamp)> =
                chunk.iter().map(|c| (&c.addresses[0], wrote)).collect();
            last.record_many(&records).await.expect("seed last inbound");
        }
    }
    let took = started.elapsed();
    println!(
        "seed/{n}: {n} contacts{} in {:.1} s ({:.0} contacts/s through insert_many)",
        if windows { " and last inbound" } else { "" },
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    let raw = raw_pool(&path, pool_options()).await;
    Seeded {
        _dir: dir,
        stores,
        directory,
        raw,
        contacts: n,
    }
}

/// `TIDINGS_BENCH_CONTACTS`: the size of the directory segment pages are read from, instead
/// of 1,000,000 (quicker runs, profiling).
fn big_size() -> Option<usize> {
    std::env::var("TIDINGS_BENCH_CONTACTS").ok()?.parse().ok()
}

/// The seeded databases, each made when a bench first needs it (a filtered run seeds only
/// what it reads).
struct Datasets {
    big: OnceCell<Seeded>,
    mid: OnceCell<Seeded>,
    small: OnceCell<Seeded>,
    sizes: [usize; 3],
}

impl Datasets {
    fn new() -> Self {
        Datasets {
            big: OnceCell::new(),
            mid: OnceCell::new(),
            small: OnceCell::new(),
            sizes: if full() {
                [big_size().unwrap_or(1_000_000), 100_000, 10_000]
            } else {
                [big_size().unwrap_or(3_000), 1_000, 300]
            },
        }
    }

    /// The directory of segment reads (1,000,000 contacts), without last inbound records.
    fn big(&self, rt: &tokio::runtime::Runtime) -> &Seeded {
        self.big
            .get_or_init(|| rt.block_on(seed(self.sizes[0], false)))
    }

    /// 100,000 contacts with last inbound records: the second segment size and the larger
    /// campaign.
    fn mid(&self, rt: &tokio::runtime::Runtime) -> &Seeded {
        self.mid
            .get_or_init(|| rt.block_on(seed(self.sizes[1], true)))
    }

    /// 10,000 contacts with last inbound records: the smaller campaign.
    fn small(&self, rt: &tokio::runtime::Runtime) -> &Seeded {
        self.small
            .get_or_init(|| rt.block_on(seed(self.sizes[2], true)))
    }
}

// 0. Unit costs -------------------------------------------------------------------------------

/// What one statement costs through sqlx on this machine, for reading the figures below: a
/// round trip through the pool (checkout with a ping, the statement, a ping when the connection
/// comes back), the same without the checkout ping, a round trip on a connection already held,
/// and a write committed on its own vs inside a transaction.
fn bench_unit(c: &mut Criterion) {
    let rt = runtime("unit", 2);
    let dir = tempfile::tempdir().expect("temp dir");
    let raw = rt.block_on(raw_pools(dir.path()));
    let name = "sqlite/unit";
    let select = "SELECT 1";
    let through = |pool: &SqlitePool, iters: u64| {
        rt.block_on(async {
            let started = tokio::time::Instant::now();
            for _ in 0..iters {
                let one: i64 = sqlx::query_scalar(select)
                    .fetch_one(pool)
                    .await
                    .expect("select");
                black_box(one);
            }
            started.elapsed()
        })
    };
    let held = RefCell::new(rt.block_on(raw.floor.acquire()).expect("connection"));
    let now = SystemClock.now().as_millis();
    let marks = |in_tx: bool, iters: u64| {
        let keys: Vec<String> = (0..iters)
            .map(|_| format!("unit:{}", SERIAL.fetch_add(1, Ordering::Relaxed)))
            .collect();
        let mut held = held.borrow_mut();
        rt.block_on(async {
            let started = tokio::time::Instant::now();
            if in_tx {
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut **held)
                    .await
                    .expect("begin");
            }
            for key in &keys {
                sqlx::query(RAW_MARK)
                    .bind(key)
                    .bind(now + 60_000)
                    .bind(now)
                    .execute(&mut **held)
                    .await
                    .expect("mark");
            }
            if in_tx {
                sqlx::query("COMMIT")
                    .execute(&mut **held)
                    .await
                    .expect("commit");
            }
            started.elapsed()
        })
    };
    let variants = [
        Variant::new("select_1_pool", 1, |iters| through(&raw.raw, iters)),
        Variant::new("select_1_pool_no_ping", 1, |iters| {
            through(&raw.no_ping, iters)
        }),
        Variant::new("select_1_held", 1, |iters| {
            let mut held = held.borrow_mut();
            rt.block_on(async {
                let started = tokio::time::Instant::now();
                for _ in 0..iters {
                    let one: i64 = sqlx::query_scalar(select)
                        .fetch_one(&mut **held)
                        .await
                        .expect("select");
                    black_box(one);
                }
                started.elapsed()
            })
        }),
        Variant::new("mark_autocommit_held", 1, |iters| marks(false, iters)),
        Variant::new("mark_in_tx_held", 1, |iters| marks(true, iters)),
    ];
    measure(
        c,
        name,
        |g| {
            g.throughput(Throughput::Elements(1));
        },
        &variants,
        &INTERLEAVE,
    );
    drop(variants);
    // Returning a connection spawns a task: inside the runtime.
    {
        let _runtime = rt.enter();
        drop(held);
    }
    let us = |label: &str| rate(&format!("{name}/{label}")).map_or(f64::NAN, |r| 1e6 / r);
    if rate(&format!("{name}/select_1_pool")).is_some() {
        println!(
            "unit: SELECT 1 through the pool {:.1} us, without the checkout ping {:.1} us, on a \
             held connection {:.1} us; an upsert committed alone {:.1} us, inside a transaction \
             {:.1} us",
            us("select_1_pool"),
            us("select_1_pool_no_ping"),
            us("select_1_held"),
            us("mark_autocommit_held"),
            us("mark_in_tx_held"),
        );
    }
}

// 1. Inbound events ---------------------------------------------------------------------------

/// Events are numbered across the process so that each is new to every store.
static SERIAL: AtomicU64 = AtomicU64::new(0);
/// People writing: the same ones write again, as in production.
const SENDERS: usize = 1_000;
const TEXT: &str = "Hi! I'd like to know when the next lesson about the course opens, and whether \
     the recorded sessions stay available after the live ones. Thanks a lot!";
const DEDUPE_TTL: Duration = tidings::messenger::webhook::DEFAULT_DEDUPE_TTL;

/// One inbound message as the webhook hands it over: what the stores are given.
struct Event {
    key: String,
    address: Address,
    contact: ContactId,
    incoming: Incoming,
    at: Timestamp,
}

fn batch(events: usize, at: Timestamp) -> Vec<Event> {
    (0..events)
        .map(|_| {
            let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
            let sender = (serial % SENDERS as u64) as usize;
            // The length of a real message id (96 characters).
            let mid = format!("m_{serial:020}AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlqLP_5cgX");
            Event {
                key: format!("messenger:{mid}"),
                address: Address::messenger(PAGE, psid(sender)).expect("address"),
                contact: contact_id(sender),
                incoming: Incoming::new(Channel::Messenger)
                    .with_message_id(mid)
                    .with_text(TEXT),
                at,
            }
        })
        .collect()
}

/// The crate's stores of the inbound path, as the webhook and the hub hold them.
#[derive(Clone)]
struct InboundStores {
    last: Arc<dyn LastInbound>,
    inbox: Arc<dyn Inbox>,
    seen: Arc<dyn SeenEvents>,
}

/// What the webhook and the hub write for a batch, as they write it: the claims of its events
/// (`SeenEvents::claim_many`, in `Webhook::receive`) and the windows (`LastInbound::record_many`),
/// one call each; then, for each sender side by side and each sender's events in order (as
/// `Hub::handle` routes them), the inbox entry (`Inbox::record_incoming`) and the settled mark
/// (`SeenEvents::settle`, in `Webhook::commit`).
async fn tidings_batch(stores: &InboundStores, events: Vec<Event>, now: Timestamp) {
    let keys: Vec<&str> = events.iter().map(|e| e.key.as_str()).collect();
    let claims = stores
        .seen
        .claim_many(&keys, now, tidings::messenger::webhook::DEFAULT_CLAIM_LEASE)
        .await
        .expect("claims");
    debug_assert!(
        claims
            .iter()
            .all(|c| matches!(c, tidings::seen::Claim::Acquired))
    );
    drop(keys);
    let windows: Vec<(&Address, Timestamp)> = events.iter().map(|e| (&e.address, e.at)).collect();
    stores.last.record_many(&windows).await.expect("windows");
    drop(windows);
    let mut by_sender: BTreeMap<ContactId, Vec<Event>> = BTreeMap::new();
    for event in events {
        by_sender
            .entry(event.contact.clone())
            .or_default()
            .push(event);
    }
    futures_util::future::join_all(by_sender.into_values().map(|events| async move {
        for event in events {
            stores
                .inbox
                .record_incoming(&event.contact, event.at, event.incoming)
                .await
                .expect("inbox");
            stores
                .seen
                .settle(&event.key, now, DEDUPE_TTL)
                .await
                .expect("settle");
        }
    }))
    .await;
}

const RAW_WINDOW: &str = "INSERT INTO last_inbound (channel, scope, address, at) VALUES (?, ?, ?, ?) \
     ON CONFLICT (channel, scope, address) DO UPDATE SET at = max(at, excluded.at)";
const RAW_INBOX: &str = "INSERT INTO inbox_entries \
     (contact_id, at, incoming, channel, message_id, content) \
     VALUES (?, ?, 1, ?, ?, ?) RETURNING seq";
const RAW_MARK: &str = "INSERT INTO seen_events (key, expires_at) VALUES (?, ?) \
     ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at \
     WHERE seen_events.expires_at <= ?";
const RAW_SETTLE: &str = "UPDATE seen_events SET settled = 1, expires_at = ? WHERE key = ?";

fn raw_window(
    event: &Event,
) -> sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'_>> {
    sqlx::query(RAW_WINDOW)
        .bind("messenger")
        .bind(PAGE)
        .bind(event.address.id())
        .bind(event.at.as_millis())
}

/// The same statements by hand, in the same transactions: one for the windows and one for the
/// marks of a batch of several, none for one event; each inbox entry on its own.
async fn raw_batch(pool: &SqlitePool, events: Vec<Event>, now: Timestamp) {
    if let [event] = events.as_slice() {
        raw_window(event).execute(pool).await.expect("window");
    } else {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
        for event in &events {
            raw_window(event).execute(&mut *tx).await.expect("window");
        }
        tx.commit().await.expect("commit");
    }
    let expires = now.saturating_add(DEDUPE_TTL).as_millis();
    let mut keys = Vec::with_capacity(events.len());
    for event in events {
        let message_id = event.incoming.message_id.clone();
        let content =
            serde_json::to_string(&EntryContent::Incoming(event.incoming)).expect("content");
        let seq: i64 = sqlx::query_scalar(RAW_INBOX)
            .bind(event.contact.as_str())
            .bind(event.at.as_millis())
            .bind("messenger")
            .bind(message_id)
            .bind(content)
            .fetch_one(pool)
            .await
            .expect("inbox");
        black_box(seq);
        keys.push(event.key);
    }
    let mark = |key| {
        sqlx::query(RAW_MARK)
            .bind(key)
            .bind(expires)
            .bind(now.as_millis())
    };
    if let [key] = keys.as_slice() {
        mark(key.as_str()).execute(pool).await.expect("mark");
    } else {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
        for key in &keys {
            mark(key.as_str()).execute(&mut *tx).await.expect("mark");
        }
        tx.commit().await.expect("commit");
    }
    // Each event settled once routed, on its own.
    for key in &keys {
        sqlx::query(RAW_SETTLE)
            .bind(expires)
            .bind(key.as_str())
            .execute(pool)
            .await
            .expect("settle");
    }
}

/// The same statements, the whole batch in one transaction on one connection: what SQLite
/// does with them when a batch is one commit and one pool checkout (a shape the store traits do
/// not offer: three stores take part).
async fn one_tx_batch(pool: &SqlitePool, events: Vec<Event>, now: Timestamp) {
    let expires = now.saturating_add(DEDUPE_TTL).as_millis();
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
    for event in &events {
        raw_window(event).execute(&mut *tx).await.expect("window");
    }
    for event in events {
        let message_id = event.incoming.message_id.clone();
        let content =
            serde_json::to_string(&EntryContent::Incoming(event.incoming)).expect("content");
        let seq: i64 = sqlx::query_scalar(RAW_INBOX)
            .bind(event.contact.as_str())
            .bind(event.at.as_millis())
            .bind("messenger")
            .bind(message_id)
            .bind(content)
            .fetch_one(&mut *tx)
            .await
            .expect("inbox");
        black_box(seq);
        sqlx::query(RAW_MARK)
            .bind(&event.key)
            .bind(expires)
            .bind(now.as_millis())
            .execute(&mut *tx)
            .await
            .expect("mark");
        sqlx::query(RAW_SETTLE)
            .bind(expires)
            .bind(&event.key)
            .execute(&mut *tx)
            .await
            .expect("settle");
    }
    tx.commit().await.expect("commit");
}

/// The same rows with one statement per store and batch: one multi-row `INSERT` for the
/// windows, one for the inbox entries, one for the marks, each its own transaction as now. The
/// shape `record_many` and `mark_many` could have without changing the traits; the inbox would
/// need a batch method.
async fn multi_row_batch(pool: &SqlitePool, events: Vec<Event>, now: Timestamp) {
    let rows = |n: usize, row: &str| vec![row; n].join(", ");
    let n = events.len();
    let sql = format!(
        "INSERT INTO last_inbound (channel, scope, address, at) VALUES {} \
         ON CONFLICT (channel, scope, address) DO UPDATE SET at = max(at, excluded.at)",
        rows(n, "(?, ?, ?, ?)")
    );
    let mut windows = sqlx::query(&sql);
    for event in &events {
        windows = windows
            .bind("messenger")
            .bind(PAGE)
            .bind(event.address.id())
            .bind(event.at.as_millis());
    }
    windows.execute(pool).await.expect("windows");
    let sql = format!(
        "INSERT INTO inbox_entries (contact_id, at, incoming, channel, message_id, content) \
         VALUES {} RETURNING seq",
        rows(n, "(?, ?, 1, ?, ?, ?)")
    );
    let mut keys = Vec::with_capacity(n);
    let mut inbox = sqlx::query_scalar::<_, i64>(&sql);
    for event in events {
        let message_id = event.incoming.message_id.clone();
        let content =
            serde_json::to_string(&EntryContent::Incoming(event.incoming)).expect("content");
        inbox = inbox
            .bind(event.contact.as_str().to_owned())
            .bind(event.at.as_millis())
            .bind("messenger")
            .bind(message_id)
            .bind(content);
        keys.push(event.key);
    }
    let seqs = inbox.fetch_all(pool).await.expect("inbox");
    assert_eq!(seqs.len(), n);
    let sql = format!(
        "INSERT INTO seen_events (key, expires_at) VALUES {} \
         ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at \
         WHERE seen_events.expires_at <= ? RETURNING key",
        rows(n, "(?, ?)")
    );
    let expires = now.saturating_add(DEDUPE_TTL).as_millis();
    let mut marks = sqlx::query_scalar::<_, String>(&sql);
    for key in keys {
        marks = marks.bind(key).bind(expires);
    }
    let fresh = marks
        .bind(now.as_millis())
        .fetch_all(pool)
        .await
        .expect("marks");
    assert_eq!(fresh.len(), n);
}

#[derive(Clone)]
enum InboundPath {
    Tidings(InboundStores),
    Raw(SqlitePool),
    OneTx(SqlitePool),
    MultiRow(SqlitePool),
}

impl InboundPath {
    async fn run(&self, events: Vec<Event>, now: Timestamp) {
        match self {
            InboundPath::Tidings(stores) => tidings_batch(stores, events, now).await,
            InboundPath::Raw(pool) => raw_batch(pool, events, now).await,
            InboundPath::OneTx(pool) => one_tx_batch(pool, events, now).await,
            InboundPath::MultiRow(pool) => multi_row_batch(pool, events, now).await,
        }
    }
}

/// `iters` rounds in which each of `tasks` tasks writes one batch of `size`, the batches built
/// before the clock starts. Returns the wall time.
fn inbound_rounds(
    rt: &tokio::runtime::Runtime,
    path: &InboundPath,
    tasks: usize,
    size: usize,
    iters: u64,
) -> Duration {
    let now = SystemClock.now();
    let inputs: Vec<Vec<Vec<Event>>> = (0..tasks)
        .map(|_| (0..iters).map(|_| batch(size, now)).collect())
        .collect();
    rt.block_on(async {
        let started = tokio::time::Instant::now();
        let handles: Vec<_> = inputs
            .into_iter()
            .map(|batches| {
                let path = path.clone();
                tokio::spawn(async move {
                    for events in batches {
                        path.run(events, now).await;
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.expect("task");
        }
        started.elapsed()
    })
}

fn bench_inbound(c: &mut Criterion) {
    let rt = runtime("inbound", 2);
    let dir = tempfile::tempdir().expect("temp dir");
    let (stores, raw) = rt.block_on(async {
        (
            open_stores(&dir.path().join("tidings.db")).await,
            raw_pools(dir.path()).await,
        )
    });
    let paths = [
        (
            "tidings",
            InboundPath::Tidings(InboundStores {
                last: stores.last_inbound(),
                inbox: stores.inbox(),
                seen: stores.seen(),
            }),
        ),
        ("raw", InboundPath::Raw(raw.raw)),
        ("raw_1_connection", InboundPath::Raw(raw.one)),
        ("raw_no_ping", InboundPath::Raw(raw.no_ping)),
        ("raw_one_tx", InboundPath::OneTx(raw.floor.clone())),
        ("raw_multi_row", InboundPath::MultiRow(raw.floor)),
    ];
    for (tasks, size) in [(1, 1), (1, 100), (4, 1), (4, 100)] {
        let name = if tasks == 1 {
            format!("sqlite/inbound/batch_{size}")
        } else {
            format!("sqlite/inbound/{tasks}_tasks_batch_{size}")
        };
        let events = (tasks * size) as u64;
        let variants: Vec<Variant<'_>> = paths
            .iter()
            // For one task, a pool of one is the pool of eight; for one event, multi-row
            // statements are the same statements.
            .filter(|(label, _)| match *label {
                "raw_1_connection" => tasks > 1,
                "raw_multi_row" => size > 1,
                _ => true,
            })
            .map(|(label, path)| {
                let rt = &rt;
                Variant::new(*label, events, move |iters| {
                    inbound_rounds(rt, path, tasks, size, iters)
                })
            })
            .collect();
        measure(
            c,
            &name,
            |g| {
                g.throughput(Throughput::Elements(events));
                if size > 1 {
                    g.sample_size(20);
                }
            },
            &variants,
            &INTERLEAVE,
        );
        report(Compare {
            group: &name,
            subject: "tidings",
            baselines: &[
                "raw",
                "raw_1_connection",
                "raw_no_ping",
                "raw_one_tx",
                "raw_multi_row",
            ],
            unit: "events",
            min_rate: Some(20_000.0),
            min_ratio: Some(0.5),
        });
    }
}

// 2. Campaign outcomes ------------------------------------------------------------------------

const OUTBOX_TASKS: usize = 32;

/// A recipient to claim and the outcome to finish it with.
struct Claim {
    contact: ContactId,
    sent: Outcome,
}

fn claims(n: u64) -> Vec<Claim> {
    (0..n)
        .map(|_| {
            let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
            Claim {
                contact: ContactId::new(format!("r{serial:010}")).expect("id"),
                sent: Outcome::Sent {
                    channel: Channel::Messenger,
                    message_ids: vec![format!(
                        "m_{serial:020}AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlqLP"
                    )],
                },
            }
        })
        .collect()
}

const RAW_CLAIM: &str = "INSERT INTO campaign_outcomes (campaign, contact_id, pending, outcome, at) \
     VALUES (?, ?, 1, ?, ?) ON CONFLICT (campaign, contact_id) DO NOTHING";
const RAW_FINISH: &str = "UPDATE campaign_outcomes SET pending = 0, outcome = ?, at = ? \
     WHERE campaign = ? AND contact_id = ? AND pending = 1";
/// Recipients per transaction of the batched floor.
const OUTBOX_BATCH: usize = 32;

#[derive(Clone)]
enum OutboxPath {
    Tidings(Arc<dyn Outbox>),
    Raw(SqlitePool),
    /// The floor of a batched shape: a task claims [`OUTBOX_BATCH`] recipients in one
    /// transaction, then finishes them in another (an API the `Outbox` trait does not have; it
    /// would also delay each finish until its batch is sent).
    Batched(SqlitePool),
}

impl OutboxPath {
    /// Claims and finishes every recipient of `share`, as one task of the runner.
    async fn run(&self, campaign: &CampaignId, share: Vec<Claim>, at: Timestamp) {
        match self {
            OutboxPath::Tidings(outbox) => {
                for claim in share {
                    let claimed = outbox
                        .claim(campaign, &claim.contact, at)
                        .await
                        .expect("claim");
                    assert_eq!(claimed, Recorded::New);
                    outbox
                        .finish(&OutcomeRecord::new(
                            campaign.clone(),
                            claim.contact,
                            claim.sent,
                            at,
                        ))
                        .await
                        .expect("finish");
                }
            }
            OutboxPath::Raw(pool) => {
                for claim in share {
                    let pending = serde_json::to_string(&Outcome::Pending).expect("json");
                    let claimed = sqlx::query(RAW_CLAIM)
                        .bind(campaign.as_str())
                        .bind(claim.contact.as_str())
                        .bind(pending)
                        .bind(at.as_millis())
                        .execute(pool)
                        .await
                        .expect("claim");
                    assert_eq!(claimed.rows_affected(), 1);
                    let sent = serde_json::to_string(&claim.sent).expect("json");
                    let finished = sqlx::query(RAW_FINISH)
                        .bind(sent)
                        .bind(at.as_millis())
                        .bind(campaign.as_str())
                        .bind(claim.contact.as_str())
                        .execute(pool)
                        .await
                        .expect("finish");
                    assert_eq!(finished.rows_affected(), 1);
                }
            }
            OutboxPath::Batched(pool) => {
                for chunk in share.chunks(OUTBOX_BATCH) {
                    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
                    for claim in chunk {
                        let pending = serde_json::to_string(&Outcome::Pending).expect("json");
                        sqlx::query(RAW_CLAIM)
                            .bind(campaign.as_str())
                            .bind(claim.contact.as_str())
                            .bind(pending)
                            .bind(at.as_millis())
                            .execute(&mut *tx)
                            .await
                            .expect("claim");
                    }
                    tx.commit().await.expect("commit");
                    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
                    for claim in chunk {
                        let sent = serde_json::to_string(&claim.sent).expect("json");
                        sqlx::query(RAW_FINISH)
                            .bind(sent)
                            .bind(at.as_millis())
                            .bind(campaign.as_str())
                            .bind(claim.contact.as_str())
                            .execute(&mut *tx)
                            .await
                            .expect("finish");
                    }
                    tx.commit().await.expect("commit");
                }
            }
        }
    }
}

/// `iters` claims and finishes shared out among the tasks, built before the clock starts.
fn outbox_run(rt: &tokio::runtime::Runtime, path: &OutboxPath, iters: u64) -> Duration {
    let campaign = CampaignId::new("bench-outbox").expect("id");
    let at = SystemClock.now();
    let mut shares: Vec<Vec<Claim>> = (0..OUTBOX_TASKS).map(|_| Vec::new()).collect();
    for (i, claim) in claims(iters).into_iter().enumerate() {
        shares[i % OUTBOX_TASKS].push(claim);
    }
    rt.block_on(async {
        let started = tokio::time::Instant::now();
        let handles: Vec<_> = shares
            .into_iter()
            .map(|share| {
                let (path, campaign) = (path.clone(), campaign.clone());
                tokio::spawn(async move { path.run(&campaign, share, at).await })
            })
            .collect();
        for handle in handles {
            handle.await.expect("task");
        }
        started.elapsed()
    })
}

fn bench_outbox(c: &mut Criterion) {
    let rt = runtime("outbox", 2);
    let dir = tempfile::tempdir().expect("temp dir");
    let (stores, raw) = rt.block_on(async {
        (
            open_stores(&dir.path().join("tidings.db")).await,
            raw_pools(dir.path()).await,
        )
    });
    let name = format!("sqlite/outbox/claim_finish_{OUTBOX_TASKS}_tasks");
    let paths = [
        ("tidings", OutboxPath::Tidings(stores.outbox())),
        ("raw", OutboxPath::Raw(raw.raw)),
        ("raw_1_connection", OutboxPath::Raw(raw.one)),
        ("raw_no_ping", OutboxPath::Raw(raw.no_ping)),
        ("raw_batched_32", OutboxPath::Batched(raw.floor)),
    ];
    let variants: Vec<Variant<'_>> = paths
        .iter()
        .map(|(label, path)| {
            let rt = &rt;
            Variant::new(*label, 1, move |iters| outbox_run(rt, path, iters))
        })
        .collect();
    measure(
        c,
        &name,
        |g| {
            g.throughput(Throughput::Elements(1));
        },
        &variants,
        &INTERLEAVE,
    );
    report(Compare {
        group: &name,
        subject: "tidings",
        baselines: &["raw", "raw_1_connection", "raw_no_ping", "raw_batched_32"],
        unit: "claims+finishes",
        min_rate: Some(20_000.0),
        min_ratio: None,
    });
}

// 3. Segment pages ----------------------------------------------------------------------------

/// `c.id, c.email, ...`: the columns the crate reads a contact from, written out by hand.
const RAW_COLUMNS: &str = "c.id, c.email, c.first_name, c.last_name, c.fields, \
     (SELECT json_group_array(json_array(a.channel, a.scope, a.address) ORDER BY a.seq) \
        FROM contact_addresses a WHERE a.contact_id = c.id), \
     (SELECT json_group_array(t.tag ORDER BY t.tag) FROM contact_tags t WHERE t.contact_id = c.id)";

type RawRow = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
);

/// A segment, and the same keyset query by hand with its values.
struct Query {
    name: &'static str,
    segment: Segment,
    /// Hand-written `SELECT`s: (label, SQL after `c.id > ?`, binds).
    raw: Vec<(&'static str, String, Vec<RawBind>)>,
}

#[derive(Clone)]
enum RawBind {
    Text(&'static str),
    Real(f64),
    Int(i64),
}

fn queries() -> Vec<Query> {
    let selective = Segment::all(vec![
        Segment::tag("vip").expect("tag"),
        Segment::field("lesson", FieldOp::Eq, Some(serde_json::json!(3))).expect("field"),
    ])
    .expect("segment");
    vec![
        Query {
            name: "everyone",
            segment: Segment::everyone(),
            raw: vec![("raw", String::new(), vec![])],
        },
        Query {
            name: "selective",
            segment: selective,
            raw: vec![
                (
                    "raw",
                    // What the crate's translation produces.
                    " AND EXISTS (SELECT 1 FROM contact_tags t WHERE t.contact_id = c.id AND t.tag = ?) \
                     AND EXISTS (SELECT 1 FROM json_each(c.fields) f WHERE f.key = ? \
                       AND (f.type IN ('integer', 'real') AND f.value = ?))"
                        .to_owned(),
                    vec![
                        RawBind::Text("vip"),
                        RawBind::Text("lesson"),
                        RawBind::Real(3.0),
                    ],
                ),
                (
                    "raw_json_extract",
                    " AND EXISTS (SELECT 1 FROM contact_tags t WHERE t.contact_id = c.id AND t.tag = ?) \
                     AND json_extract(c.fields, '$.lesson') = ?"
                        .to_owned(),
                    vec![RawBind::Text("vip"), RawBind::Int(3)],
                ),
            ],
        },
    ]
}

/// Reads `pages` pages through the crate, resuming at `cursor` (and starting over after the
/// last page). Returns the contacts read.
async fn tidings_pages(
    directory: &SqliteDirectory,
    segment: &Segment,
    cursor: &RefCell<Option<Cursor>>,
    pages: u64,
) -> usize {
    let mut read = 0;
    for _ in 0..pages {
        let after = cursor.borrow_mut().take();
        let page = directory
            .page(segment, after.as_ref(), SEGMENT_PAGE)
            .await
            .expect("page");
        read += page.contacts.len();
        *cursor.borrow_mut() = page.next;
        black_box(page.contacts);
    }
    read
}

/// The same with the hand-written `SELECT`, rows kept as sqlx decoded them.
async fn raw_pages(
    pool: &SqlitePool,
    sql: &str,
    binds: &[RawBind],
    after: &RefCell<String>,
    pages: u64,
) -> usize {
    let mut read = 0;
    for _ in 0..pages {
        let mut query = sqlx::query_as::<_, RawRow>(sql).bind(after.borrow().clone());
        for bind in binds {
            query = match bind {
                RawBind::Text(s) => query.bind(*s),
                RawBind::Real(r) => query.bind(*r),
                RawBind::Int(i) => query.bind(*i),
            };
        }
        let mut rows = query
            .bind(SEGMENT_PAGE as i64 + 1)
            .fetch_all(pool)
            .await
            .expect("page");
        let more = rows.len() > SEGMENT_PAGE;
        rows.truncate(SEGMENT_PAGE);
        read += rows.len();
        *after.borrow_mut() = match rows.last() {
            Some(last) if more => last.0.clone(),
            _ => String::new(),
        };
        black_box(rows);
    }
    read
}

/// Reads all of `segment` page by page; returns (contacts, time, peak live bytes).
fn read_whole(
    rt: &tokio::runtime::Runtime,
    seeded: &Seeded,
    segment: &Segment,
) -> (usize, Duration, usize) {
    // Warm: the statement cache and the pool's connections.
    let cursor = RefCell::new(None);
    rt.block_on(tidings_pages(&seeded.directory, segment, &cursor, 2));
    let ((count, took), peak) = peak_of(|| {
        rt.block_on(async {
            let started = tokio::time::Instant::now();
            let mut count = 0;
            let mut after: Option<Cursor> = None;
            loop {
                let page = seeded
                    .directory
                    .page(segment, after.as_ref(), SEGMENT_PAGE)
                    .await
                    .expect("page");
                count += page.contacts.len();
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            (count, started.elapsed())
        })
    });
    (count, took, peak)
}

fn bench_segment(c: &mut Criterion, data: &Datasets, rt: &tokio::runtime::Runtime) {
    let n = data.sizes[0];
    let memory_reported = Cell::new(false);
    for query in queries() {
        let name = format!("sqlite/segment_{n}/{}", query.name);
        let cursor = RefCell::new(None);
        let mut variants = vec![Variant::new("tidings", 1, |iters| {
            let seeded = data.big(rt);
            if !memory_reported.replace(true) {
                report_segment_memory(rt, data);
            }
            let started = tokio::time::Instant::now();
            let read = rt.block_on(tidings_pages(
                &seeded.directory,
                &query.segment,
                &cursor,
                iters,
            ));
            black_box(read);
            started.elapsed()
        })];
        for (label, filter, binds) in &query.raw {
            let sql = format!(
                "SELECT {RAW_COLUMNS} FROM contacts c WHERE c.id > ?{filter} ORDER BY c.id LIMIT ?"
            );
            let after = RefCell::new(String::new());
            variants.push(Variant::new(*label, 1, move |iters| {
                let seeded = data.big(rt);
                let started = tokio::time::Instant::now();
                let read = rt.block_on(raw_pages(&seeded.raw, &sql, binds, &after, iters));
                black_box(read);
                started.elapsed()
            }));
        }
        measure(
            c,
            &name,
            |g| {
                g.throughput(Throughput::Elements(1));
                if query.name == "selective" {
                    g.sample_size(10);
                }
            },
            &variants,
            &INTERLEAVE,
        );
        report(Compare {
            group: &name,
            subject: "tidings",
            baselines: &query.raw.iter().map(|(l, _, _)| *l).collect::<Vec<_>>(),
            unit: "pages",
            min_rate: None,
            min_ratio: None,
        });
    }
}

/// Prints the peak of live bytes while reading the whole `everyone` segment of the 100,000 and
/// the 1,000,000 contact directories: it must not grow with the segment.
fn report_segment_memory(rt: &tokio::runtime::Runtime, data: &Datasets) {
    let mut peaks = Vec::new();
    for seeded in [data.mid(rt), data.big(rt)] {
        let (count, took, peak) = read_whole(rt, seeded, &Segment::everyone());
        assert_eq!(count, seeded.contacts);
        println!(
            "segment/memory/{count}: whole segment in pages of {SEGMENT_PAGE} in {:.1} s \
             ({:.0} contacts/s), peak {peak} B above the start",
            took.as_secs_f64(),
            count as f64 / took.as_secs_f64()
        );
        peaks.push(peak);
    }
    println!(
        "segment/memory: peak at {} contacts / peak at {} = {:.2} (flat: about 1)",
        data.sizes[0],
        data.sizes[1],
        peaks[1] as f64 / peaks[0].max(1) as f64
    );
}

// 4. Campaign fan-out -------------------------------------------------------------------------

/// The stores a campaign runs on.
enum Backend {
    Memory,
    Sqlite(SqliteStores),
}

struct FanOut {
    _fake: FakeGraph,
    segments: Arc<dyn SegmentQuery>,
    transports: TransportSet,
    backend: Backend,
    recipients: usize,
}

impl FanOut {
    fn outbox(&self) -> Arc<dyn Outbox> {
        match &self.backend {
            Backend::Memory => Arc::new(MemoryOutbox::new()),
            Backend::Sqlite(stores) => stores.outbox(),
        }
    }

    /// Forgets the outcomes of earlier runs (outside the timed part).
    async fn reset(&self) {
        if let Backend::Sqlite(stores) = &self.backend {
            sqlx::query("DELETE FROM campaign_outcomes")
                .execute(stores.pool())
                .await
                .expect("reset outbox");
        }
    }

    fn runner(&self, outbox: Arc<dyn Outbox>) -> CampaignRunner {
        CampaignRunner::builder(self.segments.clone(), outbox)
            .transports(self.transports.clone())
            .concurrency(64)
            .page_size(1000)
            .build()
    }
}

async fn fake_graph(server: &tokio::runtime::Runtime) -> FakeGraph {
    server
        .spawn(
            FakeGraph::builder()
                .page(PAGE, "token-a")
                .enforce_window(false)
                .keep_sent(false)
                .start(),
        )
        .await
        .expect("fake task")
        .expect("fake graph")
}

fn transports(fake: &FakeGraph, last: Arc<dyn LastInbound>) -> TransportSet {
    let messenger = MessengerTransport::builder(
        Arc::new(StaticPages::new([PageConfig::new(
            PAGE,
            PageAccessToken::new("token-a"),
        )])),
        last,
    )
    .base_url(fake.base_url())
    .rate_limit(None)
    .build()
    .expect("transport");
    let mut transports = TransportSet::new();
    transports.insert(Arc::new(messenger) as SharedTransport);
    transports
}

/// The memory stores with the same contacts as the seeded files.
async fn memory_fan_out(server: &tokio::runtime::Runtime, n: usize) -> FanOut {
    let fake = fake_graph(server).await;
    let last = Arc::new(MemoryLastInbound::new());
    let directory = Arc::new(MemoryDirectory::new());
    let wrote = SystemClock.now().saturating_sub(Duration::from_secs(3600));
    for i in 0..n {
        let contact = contact(i);
        last.record(&contact.addresses[0], wrote)
            .await
            .expect("record");
        directory.insert(contact).expect("insert");
    }
    let transports = transports(&fake, last);
    FanOut {
        _fake: fake,
        segments: directory,
        transports,
        backend: Backend::Memory,
        recipients: n,
    }
}

async fn sqlite_fan_out(server: &tokio::runtime::Runtime, seeded: &Seeded) -> FanOut {
    let fake = fake_graph(server).await;
    let transports = transports(&fake, seeded.stores.last_inbound());
    FanOut {
        _fake: fake,
        segments: seeded.directory.clone(),
        transports,
        backend: Backend::Sqlite(seeded.stores.clone()),
        recipients: seeded.contacts,
    }
}

fn campaign(id: u64) -> Campaign {
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

static CAMPAIGNS: AtomicU64 = AtomicU64::new(0);

/// Runs one campaign; returns its time.
fn run_campaign(client: &tokio::runtime::Runtime, setup: &FanOut) -> Duration {
    client.block_on(setup.reset());
    let runner = setup.runner(setup.outbox());
    let campaign = campaign(CAMPAIGNS.fetch_add(1, Ordering::Relaxed));
    let started = tokio::time::Instant::now();
    let report = client
        .block_on(runner.run(&campaign, &RunControl::new()))
        .expect("run");
    let took = started.elapsed();
    assert_eq!(report.this_run.sent, setup.recipients as u64, "{report:?}");
    took
}

/// Runs one campaign and returns (peak, retained) live bytes above the level before it.
fn fan_out_memory(client: &tokio::runtime::Runtime, setup: &FanOut) -> (usize, usize) {
    client.block_on(setup.reset());
    let outbox = setup.outbox();
    let runner = setup.runner(outbox.clone());
    let campaign = campaign(CAMPAIGNS.fetch_add(1, Ordering::Relaxed));
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let report = client
        .block_on(runner.run(&campaign, &RunControl::new()))
        .expect("run");
    black_box(&report);
    drop(report);
    drop(runner);
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    let retained = LIVE.load(Ordering::Relaxed).saturating_sub(before);
    drop(outbox);
    (peak, retained)
}

fn bench_fan_out(c: &mut Criterion, data: &Datasets, client: &tokio::runtime::Runtime) {
    let server = runtime("fake-graph", 1);
    let working: RefCell<BTreeMap<&str, Vec<(usize, usize)>>> = RefCell::new(BTreeMap::new());
    for (n, larger) in [(data.sizes[2], false), (data.sizes[1], true)] {
        let name = format!("sqlite/fan_out/{n}_recipients");
        let variants: Vec<Variant<'_>> = ["sqlite", "memory"]
            .into_iter()
            .map(|label| {
                let setup = OnceCell::new();
                let (server, working) = (&server, &working);
                Variant::new(label, n as u64, move |iters| {
                    let setup = setup.get_or_init(|| {
                        let setup = match label {
                            "sqlite" => {
                                let seeded = if larger {
                                    data.mid(client)
                                } else {
                                    data.small(client)
                                };
                                client.block_on(sqlite_fan_out(server, seeded))
                            }
                            _ => client.block_on(memory_fan_out(server, n)),
                        };
                        // Warm up: connections and pools that live as long as the transport.
                        let _ = fan_out_memory(client, &setup);
                        let (peak, retained) = fan_out_memory(client, &setup);
                        println!(
                            "fan_out/memory/{label}/{n}: peak {peak} B, retained {retained} B \
                             ({} B/recipient), working {} B",
                            retained / n,
                            peak.saturating_sub(retained)
                        );
                        working
                            .borrow_mut()
                            .entry(label)
                            .or_default()
                            .push((n, peak.saturating_sub(retained)));
                        setup
                    });
                    (0..iters).map(|_| run_campaign(client, setup)).sum()
                })
            })
            .collect();
        measure(
            c,
            &name,
            |g| {
                g.throughput(Throughput::Elements(n as u64));
                g.sample_size(10);
                g.sampling_mode(SamplingMode::Flat);
                g.warm_up_time(Duration::from_millis(100));
            },
            &variants,
            // One campaign a slice.
            &Interleave {
                rounds: if larger { 2 } else { 4 },
                slice: Duration::ZERO,
            },
        );
        report(Compare {
            group: &name,
            subject: "sqlite",
            baselines: &["memory"],
            unit: "msgs",
            min_rate: Some(15_000.0),
            min_ratio: None,
        });
    }
    for (label, sizes) in working.borrow().iter() {
        if let [(small, a), (large, b)] = sizes.as_slice() {
            println!(
                "fan_out/memory/{label}: working {b} B at {large} vs {a} B at {small} = {:.2} \
                 (flat: about 1)",
                *b as f64 / (*a).max(1) as f64
            );
        }
    }
}

fn benches(c: &mut Criterion) {
    bench_unit(c);
    bench_inbound(c);
    bench_outbox(c);
    let data = Datasets::new();
    let client = runtime("campaign", 1);
    bench_segment(c, &data, &client);
    bench_fan_out(c, &data, &client);
}

criterion_group!(sqlite, benches);
criterion_main!(sqlite);
