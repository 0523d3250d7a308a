//! The in-memory stores pass the published conformance suite.

use std::sync::Arc;

use tidings::{
    store::memory::{
        MemoryDirectory, MemoryInbox, MemoryLastInbound, MemoryOptIns, MemoryOutbox,
        MemoryProcessStore, MemorySeenEvents, MemoryThreadOwners,
    },
    testkit::conformance,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_directory_keeps_the_directory_contract() {
    conformance::directory(Arc::new(MemoryDirectory::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_directory_keeps_the_segment_query_contract() {
    let dir = Arc::new(MemoryDirectory::new());
    conformance::segment_query(dir.clone(), dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_directory_evaluates_activity_segments() {
    use tidings::clock::{ManualClock, Timestamp};
    let now = Timestamp::from_secs(1_800_000_000);
    let last = Arc::new(MemoryLastInbound::new());
    let dir = Arc::new(
        MemoryDirectory::new().with_activity(last.clone(), ManualClock::new(now).shared()),
    );
    conformance::segment_activity(dir.clone(), dir, last, now).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_inbox_keeps_the_inbox_contract() {
    conformance::inbox(Arc::new(MemoryInbox::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_outbox_keeps_the_outbox_contract() {
    conformance::outbox(Arc::new(MemoryOutbox::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_process_store_keeps_the_process_store_contract() {
    conformance::process_store(Arc::new(MemoryProcessStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_seen_events_keeps_the_seen_events_contract() {
    conformance::seen_events(Arc::new(MemorySeenEvents::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_last_inbound_keeps_the_last_inbound_contract() {
    conformance::last_inbound(Arc::new(MemoryLastInbound::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_opt_ins_keep_the_opt_ins_contract() {
    conformance::opt_ins(Arc::new(MemoryOptIns::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_thread_owners_keep_the_thread_owners_contract() {
    conformance::thread_owners(Arc::new(MemoryThreadOwners::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_suite_can_run_twice_against_one_store() {
    let dir = Arc::new(MemoryDirectory::new());
    let inbox = Arc::new(MemoryInbox::new());
    let seen = Arc::new(MemorySeenEvents::new());
    let processes = Arc::new(MemoryProcessStore::new());
    let outbox = Arc::new(MemoryOutbox::new());
    let last = Arc::new(MemoryLastInbound::new());
    let opt_ins = Arc::new(MemoryOptIns::new());
    let threads = Arc::new(MemoryThreadOwners::new());
    for _ in 0..2 {
        conformance::directory(dir.clone()).await;
        conformance::segment_query(dir.clone(), dir.clone()).await;
        conformance::inbox(inbox.clone()).await;
        conformance::seen_events(seen.clone()).await;
        conformance::process_store(processes.clone()).await;
        conformance::outbox(outbox.clone()).await;
        conformance::last_inbound(last.clone()).await;
        conformance::opt_ins(opt_ins.clone()).await;
        conformance::thread_owners(threads.clone()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_campaign_batches_keep_the_campaign_batches_contract() {
    conformance::campaign_batches(Arc::new(
        tidings::store::memory::MemoryCampaignBatches::new(),
    ))
    .await;
}
