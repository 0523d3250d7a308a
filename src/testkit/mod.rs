//! Test helpers for hosts and for the crate's own tests (feature `testkit`).
//!
//! - [`conformance`]: checks that a store implementation keeps its trait's contract.
//!
//! Later issues add a fake Graph API that runs on loopback.

pub mod conformance;
