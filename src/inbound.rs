//! What a transport could not turn into [`Inbound`](crate::message::Inbound) events: events
//! it could not read ([`Dropped`]) and notices about the business account itself ([`Notice`]).
//!
//! Neither is ever lost silently: a transport reports each one with its raw content, so a
//! host can log, store or replay what the crate did not interpret, while every readable event
//! of the same request goes on.

use serde::{Deserialize, Serialize};

use crate::{clock::Timestamp, contact::Channel};

/// An event (or a part of a request) a transport could not read as an event, kept with why
/// and what it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Dropped {
    /// The business account the event was addressed to (Messenger: the Page id), or empty
    /// when it could not be read either.
    pub page_id: String,
    /// The event kind (Messenger: the webhook field name, `entry` for a whole unreadable
    /// entry, the object name for another product's events).
    pub kind: String,
    /// Why it was dropped.
    pub reason: String,
    /// The event as the transport sent it (Messenger: its JSON text), when there was one to
    /// keep. It may hold personal data: store it as carefully as messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

impl Dropped {
    /// A dropped event of `kind` on `page_id`, for `reason`, without raw content.
    pub fn new(
        page_id: impl Into<String>,
        kind: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Dropped {
            page_id: page_id.into(),
            kind: kind.into(),
            reason: reason.into(),
            raw: None,
        }
    }

    /// Keeps `raw`, the event as the transport sent it.
    pub fn with_raw(mut self, raw: impl Into<String>) -> Self {
        self.raw = Some(raw.into());
        self
    }
}

/// What a [`Notice`] says about the business account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum NoticeKind {
    /// The transport blocked the account from messaging (Messenger: `policy_enforcement`
    /// with `block`): sends will fail until it is lifted.
    Blocked {
        /// The transport's reason, if given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A block was lifted.
    Unblocked {
        /// The transport's reason, if given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The roles of apps on the account changed (Messenger: `app_roles`): which app receives
    /// conversations first.
    AppRoles {
        /// Each app id with its roles.
        roles: Vec<(String, Vec<String>)>,
    },
    /// Another notice, by the transport's name.
    Other {
        /// The transport's name for it.
        kind: String,
    },
}

/// A notice about the business account itself (no person is involved): a block by the
/// transport's policy, a change of app roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Notice {
    /// The channel it came by.
    pub channel: Channel,
    /// The business account (Messenger: the Page id).
    pub page_id: String,
    /// When the transport says it happened.
    pub at: Timestamp,
    /// What it says.
    pub kind: NoticeKind,
    /// The notice as the transport sent it, when there was one to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

impl Notice {
    /// A notice of `kind` about `page_id` on `channel`, at `at`.
    pub fn new(
        channel: Channel,
        page_id: impl Into<String>,
        at: Timestamp,
        kind: NoticeKind,
    ) -> Self {
        Notice {
            channel,
            page_id: page_id.into(),
            at,
            kind,
            raw: None,
        }
    }

    /// Keeps `raw`, the notice as the transport sent it.
    pub fn with_raw(mut self, raw: impl Into<String>) -> Self {
        self.raw = Some(raw.into());
        self
    }
}
