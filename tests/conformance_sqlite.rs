//! The SQLite stores pass the published conformance suite, on a real file.

use tidings::{
    clock::{ManualClock, Timestamp},
    store::sqlite::{SqliteOptions, SqliteStores},
    testkit::conformance,
};

async fn stores(dir: &tempfile::TempDir) -> SqliteStores {
    SqliteStores::open(dir.path().join("tidings.db").to_str().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_directory_keeps_the_directory_contract() {
    let dir = tempfile::tempdir().unwrap();
    conformance::directory(stores(&dir).await.directory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_directory_keeps_the_segment_query_contract() {
    let dir = tempfile::tempdir().unwrap();
    let directory = stores(&dir).await.directory();
    conformance::segment_query(directory.clone(), directory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_directory_evaluates_activity_segments() {
    let dir = tempfile::tempdir().unwrap();
    let now = Timestamp::from_secs(1_800_000_000);
    let stores = SqliteStores::open_with(
        SqliteOptions::new(dir.path().join("tidings.db").to_str().unwrap())
            .clock(ManualClock::new(now).shared()),
    )
    .await
    .unwrap();
    let directory = stores.directory();
    conformance::segment_activity(directory.clone(), directory, stores.last_inbound(), now).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_inbox_keeps_the_inbox_contract() {
    let dir = tempfile::tempdir().unwrap();
    conformance::inbox(stores(&dir).await.inbox()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_outbox_keeps_the_outbox_contract() {
    let dir = tempfile::tempdir().unwrap();
    conformance::outbox(stores(&dir).await.outbox()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_process_store_keeps_the_process_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    conformance::process_store(stores(&dir).await.processes()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_seen_events_keeps_the_seen_events_contract() {
    let dir = tempfile::tempdir().unwrap();
    conformance::seen_events(stores(&dir).await.seen()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_last_inbound_keeps_the_last_inbound_contract() {
    let dir = tempfile::tempdir().unwrap();
    conformance::last_inbound(stores(&dir).await.last_inbound()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_opt_ins_keep_the_opt_ins_contract() {
    let dir = tempfile::tempdir().unwrap();
    conformance::opt_ins(stores(&dir).await.opt_ins()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_thread_owners_keep_the_thread_owners_contract() {
    let dir = tempfile::tempdir().unwrap();
    conformance::thread_owners(stores(&dir).await.thread_owners()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_suite_can_run_twice_against_one_database() {
    let dir = tempfile::tempdir().unwrap();
    let stores = stores(&dir).await;
    for _ in 0..2 {
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
async fn an_in_memory_database_keeps_the_contracts_too() {
    let stores = SqliteStores::open(":memory:").await.unwrap();
    let directory = stores.directory();
    conformance::directory(directory.clone()).await;
    conformance::segment_query(directory.clone(), directory).await;
    conformance::inbox(stores.inbox()).await;
    conformance::outbox(stores.outbox()).await;
    conformance::process_store(stores.processes()).await;
    conformance::seen_events(stores.seen()).await;
    conformance::last_inbound(stores.last_inbound()).await;
}
