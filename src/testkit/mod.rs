//! Test helpers for hosts and for the crate's own tests (feature `testkit`).
//!
//! - [`conformance`]: checks that a store implementation keeps its trait's contract.
//! - [`graph`]: a fake Meta Graph API (Send API and Messenger Profile) on loopback, with the
//!   real API's rules, messaging window and error answers, plus fault injection and latency.

pub mod conformance;
pub mod graph;
