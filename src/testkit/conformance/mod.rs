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

mod activity;
mod batches;
mod conversation;
mod directory;
mod inbox;
mod opt_ins;
mod outbox;
mod process;
mod seen;
mod segment;
mod threads;

pub use activity::last_inbound;
pub use batches::campaign_batches;
pub use directory::directory;
pub use inbox::inbox;
pub use opt_ins::opt_ins;
pub use outbox::outbox;
pub use process::process_store;
pub use seen::seen_events;
pub use segment::{segment_activity, segment_query};
pub use threads::thread_owners;

use crate::{
    contact::{Address, ContactId},
    error::StoreError,
    newsletter::CampaignId,
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

fn expect_not_found<T: std::fmt::Debug>(clause: &str, result: Result<T, StoreError>) {
    match result {
        Err(e) if e.is_not_found() => {}
        other => panic!("{clause}: expected StoreError::NotFound, got {other:?}"),
    }
}
