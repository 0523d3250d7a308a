//! Errors shared across the crate.
//!
//! Each module has its own error enum for what can go wrong there ([`ContactError`],
//! [`MessageError`], [`TokenError`], [`SegmentError`], [`DeliveryError`]). Store traits share
//! the small [`StoreError`], whose backend error (SQLite, the host's database) is kept as its
//! `source()`. [`crate::Error`] gathers them all for callers that just want one type to `?`
//! into; it lives apart (`src/any_error.rs`), so that this module, which every store imports,
//! imports nothing of the crate back.
//!
//! [`ContactError`]: crate::contact::ContactError
//! [`MessageError`]: crate::message::MessageError
//! [`TokenError`]: crate::token::TokenError
//! [`SegmentError`]: crate::segment::SegmentError
//! [`DeliveryError`]: crate::transport::DeliveryError

/// A boxed error that can cross tasks: what backends put in `source()`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Longest id accepted for flows, instances, campaigns and inbox entries, in bytes.
pub const MAX_ID_LEN: usize = 255;

/// An id (flow, instance, campaign, inbox entry) that is empty, too long, or contains a control
/// character.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} id: {reason}")]
pub struct InvalidId {
    /// The kind of id ("flow", "campaign", ...).
    pub kind: &'static str,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl InvalidId {
    /// Checks `id` as an id of `kind`.
    pub fn check(kind: &'static str, id: &str) -> Result<(), InvalidId> {
        let reason = if id.is_empty() {
            "empty"
        } else if id.len() > MAX_ID_LEN {
            "longer than 255 bytes"
        } else if id.chars().any(char::is_control) {
            "contains a control character"
        } else {
            return Ok(());
        };
        Err(InvalidId { kind, reason })
    }
}

/// What a store (the crate's or the host's) reports when an operation cannot be done.
///
/// Every store trait returns this one type so that stores stay usable as `Arc<dyn ...>` and the
/// caller can tell a missing record and a conflicting write apart from a backend failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The record the operation needs does not exist.
    #[error("{entity} {id:?} not found")]
    NotFound {
        /// The kind of record ("contact", "process instance", ...).
        entity: &'static str,
        /// The id that was looked up.
        id: String,
    },
    /// The write conflicts with what is stored: a unique key is taken, a write-once record
    /// exists, or a revision check failed.
    #[error("conflict: {reason}")]
    Conflict {
        /// What conflicted, for logs and for the host.
        reason: String,
    },
    /// The request itself is invalid for this store (a cursor it did not issue, say).
    #[error("invalid store request: {reason}")]
    Invalid {
        /// What is wrong with the request.
        reason: String,
    },
    /// The backend failed (I/O, connection, corrupt data). The operation may succeed later.
    #[error("store backend failed: {0}")]
    Backend(#[source] BoxError),
    /// The database failed in a way the store could tell: `failure` says what, and whether
    /// trying again may help ([`DbFailure::is_retryable`]); the database's own error is the
    /// `source()`.
    #[error("store database failed: {failure}")]
    Database {
        /// What failed.
        failure: DbFailure,
        /// The database driver's error.
        #[source]
        source: BoxError,
    },
}

/// What kind of database failure a [`StoreError::Database`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DbFailure {
    /// Another writer held the database longer than the busy timeout.
    Busy,
    /// A constraint the store does not map to a [`StoreError::Conflict`] (a foreign key, a
    /// check): a bug or a database changed by hand.
    Constraint,
    /// The file is not a database, or its content is damaged.
    Corrupt,
    /// Reading or writing the file failed.
    Io,
    /// The disk (or the database's page limit) is full.
    Full,
    /// The database or its directory is read-only.
    ReadOnly,
    /// The database file cannot be opened or created (a missing or read-only directory,
    /// permissions).
    CannotOpen,
    /// The connection to the database was lost or could not be made (pool timeout included).
    Connection,
    /// Anything else the driver reported.
    Other,
}

impl DbFailure {
    /// Whether the same operation may succeed if tried again later without anyone acting
    /// (busy, a transient I/O error, a lost connection). A full disk, a read-only file, a
    /// corrupt database or a constraint need someone to act first.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            DbFailure::Busy | DbFailure::Io | DbFailure::Connection
        )
    }

    /// The failure in words.
    pub fn as_str(self) -> &'static str {
        match self {
            DbFailure::Busy => "database busy (another writer held it past the busy timeout)",
            DbFailure::Constraint => "database constraint violated",
            DbFailure::Corrupt => "file is not a database or is corrupt",
            DbFailure::Io => "database I/O error",
            DbFailure::Full => "database or disk is full",
            DbFailure::ReadOnly => "database is read-only",
            DbFailure::CannotOpen => "database file cannot be opened or created",
            DbFailure::Connection => "no connection to the database",
            DbFailure::Other => "database error",
        }
    }
}

impl std::fmt::Display for DbFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl StoreError {
    /// A [`StoreError::NotFound`] for `entity` with the given id.
    pub fn not_found(entity: &'static str, id: impl Into<String>) -> Self {
        StoreError::NotFound {
            entity,
            id: id.into(),
        }
    }

    /// A [`StoreError::Conflict`] with the given reason.
    pub fn conflict(reason: impl Into<String>) -> Self {
        StoreError::Conflict {
            reason: reason.into(),
        }
    }

    /// A [`StoreError::Invalid`] with the given reason.
    pub fn invalid(reason: impl Into<String>) -> Self {
        StoreError::Invalid {
            reason: reason.into(),
        }
    }

    /// A [`StoreError::Backend`] wrapping the backend's own error.
    pub fn backend(source: impl Into<BoxError>) -> Self {
        StoreError::Backend(source.into())
    }

    /// Whether the record was missing.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }

    /// Whether the write conflicted with stored data.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }

    /// Whether trying the same operation again later may succeed: a backend failure the store
    /// could not classify ([`StoreError::Backend`]), or a [`StoreError::Database`] failure
    /// that [`DbFailure::is_retryable`]. Not found, conflicts and invalid requests are final.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Backend(_) => true,
            StoreError::Database { failure, .. } => failure.is_retryable(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn errors_cross_tasks() {
        assert_send_sync::<crate::Error>();
        assert_send_sync::<StoreError>();
    }

    #[test]
    fn a_backend_failure_says_what_failed_and_keeps_its_cause() {
        // The backend's error is all a host's log line has to go on, so it is in the text
        // (as lettre's errors do), and still the source for code that downcasts it.
        let e = StoreError::backend(std::io::Error::other("disk on fire"));
        assert_eq!(e.to_string(), "store backend failed: disk on fire");
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("disk on fire"));
    }

    #[test]
    fn ids_are_validated_on_construction_and_deserialization() {
        use crate::{newsletter::CampaignId, process::FlowId};
        assert_eq!(
            FlowId::new(""),
            Err(InvalidId {
                kind: "flow",
                reason: "empty"
            })
        );
        assert!(CampaignId::new("x".repeat(256)).is_err());
        assert!(CampaignId::new("spring\nsale").is_err());
        assert_eq!(
            CampaignId::new("spring-sale").map(|c| c.to_string()),
            Ok("spring-sale".into())
        );
        assert!(serde_json::from_str::<FlowId>("\"\"").is_err());
        assert_eq!(
            serde_json::from_str::<FlowId>("\"onboarding\"").ok(),
            FlowId::new("onboarding").ok()
        );
    }

    #[test]
    fn predicates_tell_kinds_apart() {
        assert!(StoreError::not_found("contact", "c1").is_not_found());
        assert!(StoreError::conflict("taken").is_conflict());
        assert!(!StoreError::conflict("taken").is_not_found());
    }

    #[test]
    fn database_failures_say_what_failed_and_whether_to_retry() {
        let busy = StoreError::Database {
            failure: DbFailure::Busy,
            source: std::io::Error::other("database is locked").into(),
        };
        assert!(busy.to_string().contains("database busy"));
        assert!(busy.is_retryable());
        let full = StoreError::Database {
            failure: DbFailure::Full,
            source: std::io::Error::other("disk full").into(),
        };
        assert!(!full.is_retryable());
        assert!(!StoreError::conflict("taken").is_retryable());
        assert!(StoreError::backend(std::io::Error::other("x")).is_retryable());
    }
}
