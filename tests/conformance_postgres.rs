//! The PostgreSQL stores pass the published conformance suite, each test on a database of
//! its own (see tests/support/postgres.rs; skipped, saying so, without TIDINGS_POSTGRES_URL).

#[path = "support/postgres.rs"]
mod support;

use support::TestDatabase;
use tidings::{
    activity::LastInbound,
    clock::{ManualClock, Timestamp},
    contact::Address,
    seen::SeenEvents,
    store::postgres::{OpenError, PostgresOptions, PostgresStores},
    testkit::conformance,
};

macro_rules! database {
    ($name:literal) => {
        match TestDatabase::create($name).await {
            Some(db) => db,
            None => return,
        }
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_directory_keeps_the_directory_contract() {
    let db = database!("directory");
    conformance::directory(db.stores().await.directory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_directory_keeps_the_segment_query_contract() {
    let db = database!("segments");
    let directory = db.stores().await.directory();
    conformance::segment_query(directory.clone(), directory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_directory_evaluates_activity_segments() {
    let db = database!("activity");
    let now = Timestamp::from_secs(1_800_000_000);
    let stores = PostgresStores::open_with(
        PostgresOptions::new(&db.url).clock(ManualClock::new(now).shared()),
    )
    .await
    .unwrap();
    let directory = stores.directory();
    conformance::segment_activity(directory.clone(), directory, stores.last_inbound(), now).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_inbox_keeps_the_inbox_contract() {
    let db = database!("inbox");
    conformance::inbox(db.stores().await.inbox()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_outbox_keeps_the_outbox_contract() {
    let db = database!("outbox");
    conformance::outbox(db.stores().await.outbox()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_process_store_keeps_the_process_store_contract() {
    let db = database!("processes");
    conformance::process_store(db.stores().await.processes()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_seen_events_keeps_the_seen_events_contract() {
    let db = database!("seen");
    conformance::seen_events(db.stores().await.seen()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_last_inbound_keeps_the_last_inbound_contract() {
    let db = database!("last_inbound");
    conformance::last_inbound(db.stores().await.last_inbound()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_opt_ins_keep_the_opt_ins_contract() {
    let db = database!("opt_ins");
    conformance::opt_ins(db.stores().await.opt_ins()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_thread_owners_keep_the_thread_owners_contract() {
    let db = database!("thread_owners");
    conformance::thread_owners(db.stores().await.thread_owners()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_suite_can_run_twice_against_one_database_from_two_pools() {
    let db = database!("twice");
    // Two pools on one database: what two app instances see.
    for stores in [db.stores().await, db.stores().await] {
        let directory = stores.directory();
        conformance::directory(directory.clone()).await;
        conformance::segment_query(directory.clone(), directory).await;
        conformance::inbox(stores.inbox()).await;
        conformance::seen_events(stores.seen()).await;
        conformance::process_store(stores.processes()).await;
        conformance::outbox(stores.outbox()).await;
        conformance::last_inbound(stores.last_inbound()).await;
        conformance::opt_ins(stores.opt_ins()).await;
        conformance::thread_owners(stores.thread_owners()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stores_in_a_schema_of_their_own_keep_the_contracts_beside_other_tables() {
    let db = database!("schema");
    let open =
        |schema: &str| PostgresStores::open_with(PostgresOptions::new(&db.url).schema(schema));
    let a = open("school_a").await.unwrap();
    let b = open("school_b").await.unwrap();
    conformance::directory(a.directory()).await;
    conformance::inbox(b.inbox()).await;
    // Each schema has its own tables: what one holds, the other does not.
    let in_a: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM contacts")
        .fetch_one(a.pool())
        .await
        .unwrap();
    let in_b: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM contacts")
        .fetch_one(b.pool())
        .await
        .unwrap();
    assert!(in_a > 0);
    assert_eq!(in_b, 0);
    let hostile = PostgresStores::open_with(PostgresOptions::new(&db.url).schema("x\"; DROP"))
        .await
        .unwrap_err();
    assert!(
        matches!(hostile, OpenError::InvalidLocation { .. }),
        "{hostile}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_newer_than_the_code_is_refused_naming_both_versions() {
    let db = database!("too_new");
    let stores = db.stores().await;
    let code = tidings::store::postgres::schema_version();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ($1, 'from the future', TRUE, '\\x00', 0)",
    )
    .bind(code + 1)
    .execute(stores.pool())
    .await
    .unwrap();
    stores.close().await;
    let err = PostgresStores::open(&db.url).await.unwrap_err();
    assert!(
        matches!(err, OpenError::SchemaTooNew { database, code: c, .. } if database == code + 1 && c == code),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&(code + 1).to_string()) && text.contains(&code.to_string()),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opening_twice_migrates_once_and_keeps_what_was_written() {
    let db = database!("reopen");
    let (first, second) =
        tokio::join!(PostgresStores::open(&db.url), PostgresStores::open(&db.url));
    let (first, second) = (first.unwrap(), second.unwrap());
    use tidings::{contact::NewContact, identity::Directory};
    let ann = first
        .directory()
        .create(NewContact::new().with_email("ann@example.org"))
        .await
        .unwrap();
    first.close().await;
    assert_eq!(second.directory().get(&ann.id).await.unwrap(), Some(ann));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_store_names_itself_and_its_server_in_debug_but_never_the_password() {
    let db = database!("debug");
    // The same server, reached with a password in the URL (under trust authentication the
    // server never asks for it; a server that does is configured with its own, kept).
    let (scheme, rest) = db.url.split_once("://").unwrap();
    let (url, password) = match rest.split_once('@') {
        Some((user, host)) if !user.contains(':') => (
            format!("{scheme}://{user}:s3cret@{host}"),
            "s3cret".to_owned(),
        ),
        Some((user, _)) => (db.url.clone(), user.split_once(':').unwrap().1.to_owned()),
        None => (
            format!("{scheme}://postgres:s3cret@{rest}"),
            "s3cret".to_owned(),
        ),
    };
    let stores = PostgresStores::open(&url).await.unwrap();
    let shown = [
        ("PostgresStores", format!("{stores:?}")),
        ("PgDirectory", format!("{:?}", stores.directory())),
        ("PgInbox", format!("{:?}", stores.inbox())),
        ("PgOutbox", format!("{:?}", stores.outbox())),
        ("PgProcessStore", format!("{:?}", stores.processes())),
        ("PgSeenEvents", format!("{:?}", stores.seen())),
        ("PgLastInbound", format!("{:?}", stores.last_inbound())),
        ("PgOptIns", format!("{:?}", stores.opt_ins())),
        ("PgThreadOwners", format!("{:?}", stores.thread_owners())),
        (
            "PgCampaignBatches",
            format!("{:?}", stores.campaign_batches()),
        ),
        ("PgPages", format!("{:?}", stores.pages())),
        ("PgSendBudget", format!("{:?}", stores.send_budget(10))),
    ];
    for (name, text) in shown {
        assert!(
            text.starts_with(name) && text.contains('@') && !text.contains(&password),
            "{name}: {text}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_server_is_a_connection_error_without_the_password() {
    let err = PostgresStores::open_with(
        PostgresOptions::new("postgres://ann:s3cret@127.0.0.1:1/nothing")
            .acquire_timeout(std::time::Duration::from_secs(2)),
    )
    .await
    .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(matches!(err, OpenError::Connect { .. }), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    let source = std::error::Error::source(&err).unwrap();
    assert!(
        matches!(
            source.downcast_ref::<tidings::error::StoreError>(),
            Some(e) if e.is_retryable()
        ),
        "{source:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_campaign_batches_keep_the_campaign_batches_contract() {
    let db = database!("batches");
    conformance::campaign_batches(db.stores().await.campaign_batches()).await;
}

/// Two app instances handling overlapping batches at once write the same rows in one
/// statement each: whatever order the events came in, they must wait for each other, never
/// deadlock (PostgreSQL would abort one with 40P01 and the batch would fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overlapping_batch_writes_from_many_connections_never_deadlock() {
    let db = database!("no_deadlock");
    let stores = db.stores().await;
    let addresses: Vec<Address> = (0..200)
        .map(|i| Address::messenger("104812345678901", format!("{}", 7_000 + i)).unwrap())
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..8usize {
        let (last, seen) = (stores.last_inbound(), stores.seen());
        let addresses = addresses.clone();
        tasks.spawn(async move {
            for round in 0..25usize {
                // Each task and round in an order of its own.
                let mut order: Vec<&Address> = addresses.iter().collect();
                let turn = (task * 37 + round * 11) % order.len();
                order.rotate_left(turn);
                if (task + round) % 2 == 1 {
                    order.reverse();
                }
                let at = Timestamp::from_millis(1_700_000_000_000 + round as i64);
                let records: Vec<(&Address, Timestamp)> = order.iter().map(|a| (*a, at)).collect();
                last.record_many(&records).await.expect("record_many");
                let keys: Vec<String> = order
                    .iter()
                    .map(|a| format!("event-{round}-{}", a.id()))
                    .collect();
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                seen.claim_many(&keys, at, std::time::Duration::from_secs(60))
                    .await
                    .expect("claim_many");
                seen.settle_many(&keys, at, std::time::Duration::from_secs(60))
                    .await
                    .expect("settle_many");
            }
        });
    }
    tasks.join_all().await;
    let latest = stores.last_inbound().last(&addresses[0]).await.unwrap();
    assert_eq!(latest, Some(Timestamp::from_millis(1_700_000_000_024)));
}
