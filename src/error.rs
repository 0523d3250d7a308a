//! Errors shared across the crate.
//!
//! Each module has its own error enum for what can go wrong there ([`ContactError`],
//! [`MessageError`], [`TokenError`], [`SegmentError`], [`DeliveryError`]). Store traits share
//! the small [`StoreError`], whose backend error (SQLite, the host's database) is kept as its
//! `source()`. [`Error`] gathers them all for callers that just want one type to `?` into.
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
    #[error("store backend failed")]
    Backend(#[source] BoxError),
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
}

/// Any error of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An invalid contact, contact id, channel or address.
    #[error("invalid contact data")]
    Contact(#[from] crate::contact::ContactError),
    /// An invalid message.
    #[error("invalid message")]
    Message(#[from] crate::message::MessageError),
    /// A token that could not be issued or was refused.
    #[error("token refused")]
    Token(#[from] crate::token::TokenError),
    /// An invalid segment filter.
    #[error("invalid segment")]
    Segment(#[from] crate::segment::SegmentError),
    /// A transport could not deliver a message.
    #[error("delivery failed")]
    Delivery(#[from] crate::transport::DeliveryError),
    /// An invalid flow, instance, campaign or entry id.
    #[error("invalid id")]
    Id(#[from] InvalidId),
    /// A store operation failed.
    #[error("store operation failed")]
    Store(#[from] StoreError),
    /// A process operation failed.
    #[error("process operation failed")]
    Process(#[from] crate::process::ProcessError),
    /// No route of a fallback delivered the message.
    #[error("message not delivered")]
    Undelivered(#[from] crate::transport::fallback::Undelivered),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn errors_cross_tasks() {
        assert_send_sync::<Error>();
        assert_send_sync::<StoreError>();
    }

    #[test]
    fn display_does_not_repeat_the_source() {
        let e = StoreError::backend(std::io::Error::other("disk on fire"));
        assert_eq!(e.to_string(), "store backend failed");
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
}
