//! Inbound, as the core sees it: the [`InboundSource`] seam a transport implements to hand
//! the [`Hub`](crate::hub::Hub) what one webhook request held, and what a transport could not
//! turn into [`Inbound`] events: events it could not read ([`Dropped`]) and notices about the
//! business account itself ([`Notice`]).
//!
//! # One seam for every transport
//!
//! A source turns one HTTP request into an [`InboundBatch`] ([`InboundSource::receive`]),
//! claiming each new event for the caller, then hears which events were routed
//! ([`commit`](InboundSource::commit)) or could not be ([`release`](InboundSource::release)).
//! [`Hub::handle`](crate::hub::Hub::handle) drives any source; the Messenger webhook is one
//! (`messenger::Webhook`), and a second transport (Telegram, WhatsApp) reaches the Hub by
//! implementing this trait, with no change to the core.
//!
//! Nothing is ever lost silently: a transport reports each event it could not read with its
//! raw content, so a host can log, store or replay what the crate did not interpret, while
//! every readable event of the same request goes on.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Request, Response, StatusCode, header::CONTENT_TYPE};
use serde::{Deserialize, Serialize};

use crate::{clock::Timestamp, contact::Channel, error::StoreError, message::Inbound};

/// What one request to an [`InboundSource`] held.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct InboundBatch {
    /// Events not handled before, in request order, each claimed for the caller: commit each
    /// once routed, or release it.
    pub events: Vec<Inbound>,
    /// How many events were dropped as already handled (redeliveries, repeats in the batch).
    pub duplicates: usize,
    /// How many events were left out because another request holds them (an overlapping
    /// delivery still handling them): the request must be answered so that the transport
    /// delivers it again ([`Outcome::InFlight`]).
    pub in_flight: usize,
    /// Business accounts the request named that are not configured (Messenger: Page ids);
    /// their events were not processed.
    pub unknown_pages: Vec<String>,
    /// What could not be read as an event, each with its reason and raw content.
    pub dropped: Vec<Dropped>,
    /// Notices about the served business accounts, in request order.
    pub notices: Vec<Notice>,
}

/// What an [`InboundSource`] made of a request.
#[derive(Debug)]
#[non_exhaustive]
pub enum Reception {
    /// The request carried events: route each, then commit or release it.
    Batch(InboundBatch),
    /// The request is answered without events: a subscription handshake, or a refusal (bad
    /// signature, body too large, not a webhook body) with its status.
    Answered {
        /// The response to send.
        response: Response<Bytes>,
        /// The store failure behind a 5xx answer, if that is what it was.
        error: Option<StoreError>,
    },
}

/// How the handling of a batch ended, for [`InboundSource::respond`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Every event was routed and committed: acknowledge.
    Handled,
    /// The events this request held were routed; others were held by an overlapping request:
    /// ask the transport to deliver again later.
    InFlight,
    /// Routing or committing failed: ask the transport to deliver again.
    Failed,
}

/// A transport's inbound webhook, as the Hub drives it; see the [module docs](self).
#[async_trait]
pub trait InboundSource: Send + Sync {
    /// Turns one request into a batch of claimed events, or answers it at once.
    async fn receive(&self, request: &Request<Bytes>) -> Reception;

    /// Marks `event` handled: no redelivery will bring it back.
    async fn commit(&self, event: &Inbound) -> Result<(), StoreError>;

    /// Gives back the claims of `events`, whose routing failed or never happened.
    async fn release(&self, events: &[Inbound]) -> Result<(), StoreError>;

    /// The largest request body accepted, in bytes (an HTTP glue refuses larger ones while
    /// reading them). 1 MiB unless the source says otherwise.
    fn max_body(&self) -> usize {
        1024 * 1024
    }

    /// The answer for a batch that ended with `outcome`: 200, 503 or 500 with a short text
    /// unless the transport expects another body.
    fn respond(&self, outcome: Outcome) -> Response<Bytes> {
        default_response(outcome)
    }
}

/// [`InboundSource::respond`]'s default answer for `outcome`: 200 `OK`, 503 or 500 with a
/// short text.
pub(crate) fn default_response(outcome: Outcome) -> Response<Bytes> {
    let (status, body) = match outcome {
        Outcome::Handled => (StatusCode::OK, "OK"),
        Outcome::InFlight => (
            StatusCode::SERVICE_UNAVAILABLE,
            "events are being handled by another request; deliver again later",
        ),
        Outcome::Failed => (StatusCode::INTERNAL_SERVER_ERROR, "routing failed"),
    };
    plain_response(status, body)
}

#[async_trait]
impl<S: InboundSource + ?Sized> InboundSource for Arc<S> {
    async fn receive(&self, request: &Request<Bytes>) -> Reception {
        (**self).receive(request).await
    }
    async fn commit(&self, event: &Inbound) -> Result<(), StoreError> {
        (**self).commit(event).await
    }
    async fn release(&self, events: &[Inbound]) -> Result<(), StoreError> {
        (**self).release(events).await
    }
    fn max_body(&self) -> usize {
        (**self).max_body()
    }
    fn respond(&self, outcome: Outcome) -> Response<Bytes> {
        (**self).respond(outcome)
    }
}

/// A `text/plain` response with `status` and `body`.
pub(crate) fn plain_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Bytes> {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

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
