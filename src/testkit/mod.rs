//! Test helpers for hosts and for the crate's own tests.
//!
//! - [`conformance`] (feature `conformance`, or `testkit`): checks that a store implementation
//!   keeps its trait's contract. It needs nothing else of the crate's features, so a host
//!   testing its own stores pulls in no HTTP server.
//! - `graph` (feature `testkit`): a fake Meta Graph API (Send API and Messenger Profile) on
//!   loopback, with the real API's rules, messaging window and error answers, plus fault
//!   injection and latency.
//! - `user` (feature `testkit`): plays a Messenger user: builds webhook bodies in Meta's shape
//!   and signs and posts them to the host's webhook.

pub mod conformance;
#[cfg(feature = "testkit")]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub mod graph;
#[cfg(feature = "testkit")]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub mod user;
