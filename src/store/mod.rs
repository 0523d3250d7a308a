//! Reference implementations of the store traits.
//!
//! | module | feature | for |
//! |---|---|---|
//! | [`memory`] | `memory` (default) | tests, examples, single-process hosts that can lose state on restart |
//! | [`sqlite`] | `sqlite` | one process (or a few on one machine) that keeps its state across restarts |
//! | [`postgres`] | `postgres` | several app instances and workers on one PostgreSQL database |
//!
//! Each store trait lives in the module of its concern
//! ([`Directory`](crate::identity::Directory), [`Inbox`](crate::inbox::Inbox),
//! [`SegmentQuery`](crate::segment::SegmentQuery), [`Outbox`](crate::newsletter::Outbox),
//! [`ProcessStore`](crate::process::ProcessStore), [`SeenEvents`](crate::seen::SeenEvents));
//! a host implements the same traits over its own database and checks them with the
//! conformance suite of the `testkit` feature.
//!
//! [`Stores`] holds every store of one backend as trait objects and [`Stores::open`] picks the
//! backend from a URL (`postgres://...`, a SQLite path, `memory:`).

#[cfg(feature = "memory")]
#[cfg_attr(docsrs, doc(cfg(feature = "memory")))]
pub mod memory;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;

#[cfg(any(feature = "memory", feature = "sqlite", feature = "postgres"))]
mod stores;
#[cfg(any(feature = "memory", feature = "sqlite", feature = "postgres"))]
pub use stores::{OpenError, Stores};

#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite;

#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
