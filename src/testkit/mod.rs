//! Test helpers for hosts and for the crate's own tests (feature `testkit`).
//!
//! - [`conformance`]: checks that a store implementation keeps its trait's contract.
//! - [`graph`]: a fake Meta Graph API (Send API and Messenger Profile) on loopback, with the
//!   real API's rules, messaging window and error answers, plus fault injection and latency.
//! - [`user`]: plays a Messenger user: builds webhook bodies in Meta's shape and signs and
//!   posts them to the host's webhook.

pub mod conformance;
pub mod graph;
pub mod user;
