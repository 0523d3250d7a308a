//! The Messenger webhook: subscription handshake, signature check, parsing, de-duplication.
//!
//! Framework-agnostic: requests and responses are `http` types with `bytes::Bytes` bodies, so
//! a handler in axum, actix, hyper or warp is a few lines.
//!
//! | request | response |
//! |---|---|
//! | `GET` with `hub.mode=subscribe`, the right `hub.verify_token` | 200, `hub.challenge` echoed |
//! | `GET` with a wrong token or mode | 403 |
//! | `POST` over the body size limit (default 1 MiB) | 413, before anything else |
//! | `POST` without `X-Hub-Signature-256`, or with a wrong one | 403, nothing parsed |
//! | `POST` that is not JSON, or not an envelope (`object` and an `entry` list) | 400 |
//! | `POST` that is | 200 `EVENT_RECEIVED`, with the events, the Page notices and the dropped events |
//! | `POST` holding an event that another request is handling right now | 503 once the others are handled, so Meta delivers again later |
//! | a store failure while de-duplicating | 500, so Meta delivers the batch again |
//!
//! # Security
//!
//! The signature is HMAC-SHA256 of the **raw body bytes** under the app secret, checked in
//! constant time (`hmac`'s `verify_slice`) before a single byte is parsed: re-serialized JSON
//! would not match (Meta escapes non-ASCII and `/`), and parsing unauthenticated input is
//! exposure for nothing. The hex digest is accepted in either case. The verify token is
//! compared in constant time too.
//!
//! # Two ways to use it
//!
//! - [`Webhook::handle`] does everything and marks events seen at once: simple, but an event
//!   whose routing then fails is not redelivered.
//! - [`Webhook::receive`] verifies, parses, drops what was already handled, *claims* each
//!   new event for a lease ([`WebhookBuilder::claim_lease`], 60 seconds by default) and records
//!   when each person last wrote; [`Webhook::commit`] marks one event handled after it was
//!   routed, [`Webhook::release`] gives it back after routing failed: nothing lost, nothing
//!   done twice. The Hub works this way.
//!
//! # Deliveries that overlap
//!
//! Meta delivers a batch again when the first delivery was not answered in time, even while
//! it is still being handled. The claim makes every event go to exactly one request: an event
//! another request holds is left out of the batch and counted in [`Batch::in_flight`], and the
//! request is answered 503 so that Meta delivers it again later, when it is either handled
//! (and dropped as a duplicate) or, if its holder crashed, free again once the lease ended.
//! The lease must outlast the handling of a batch; see [`SeenEvents`]' claims.
//!
//! Events of a Page the [`PageResolver`] does not know are acknowledged and reported in
//! [`Batch::unknown_pages`], never processed with another Page's settings.
//!
//! # One odd event never costs the batch
//!
//! An event or entry that cannot be read (a field of the wrong type, no person, an entry of
//! Page feed `changes`, the entries of another `object` such as `instagram`) becomes a
//! [`Dropped`](crate::inbound::Dropped) in [`Batch::dropped`](InboundBatch::dropped), with its reason and its raw JSON, logged as a warning;
//! every other event of the body goes on, exactly as it would without it, and the body is
//! answered 200 (a 400 would make Meta redeliver the good events for 36 hours and then drop
//! them). Only a body that is not JSON, or not an envelope at all, is a 400. See the tolerant
//! reader's table in the `tolerant` module's docs for what becomes what.

use std::{fmt, hash::BuildHasher, sync::Arc, time::Duration};

use bytes::Bytes;
use foldhash::fast::RandomState;
use hashbrown::{HashTable, hash_table::Entry};
use hmac::{Hmac, Mac};
use http::{Method, Request, Response, StatusCode};
use sha2::Sha256;
use smallvec::SmallVec;
use subtle::ConstantTimeEq;

use super::{
    pages::PageResolver,
    secret::{AppSecret, VerifyToken},
    stream::{self, Parsed, Span},
};
use crate::{
    activity::LastInbound,
    clock::{SharedClock, SystemClock},
    error::StoreError,
    inbound::{InboundBatch, InboundSource, Outcome, Reception, default_response, plain_response},
    message::{Inbound, InboundKind},
    seen::{Claim, SeenEvents},
};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// [`SIGNATURE_HEADER`] as a header name, built at compile time.
static SIGNATURE_NAME: http::HeaderName = http::HeaderName::from_static(SIGNATURE_HEADER);
/// The default body size limit.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;
/// How long handled events are remembered: Meta retries for up to 36 hours.
pub const DEFAULT_DEDUPE_TTL: Duration = Duration::from_secs(48 * 3600);
/// How long a received event stays claimed before it is committed or released: three times
/// the 20 seconds Meta waits for an answer.
pub const DEFAULT_CLAIM_LEASE: Duration = Duration::from_secs(60);

/// Why a webhook request was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// Neither GET nor POST.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The body is over the size limit.
    #[error("body of {len} bytes is over the {limit}-byte limit")]
    BodyTooLarge {
        /// The body's size.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// No `X-Hub-Signature-256` header.
    #[error("missing X-Hub-Signature-256 header")]
    MissingSignature,
    /// The signature header is malformed or does not match the body.
    #[error("signature does not match the body")]
    BadSignature,
    /// The body is not a webhook body.
    #[error("malformed webhook body: {0}")]
    Malformed(String),
    /// The subscription handshake is not `hub.mode=subscribe` with a challenge.
    #[error("invalid subscription request")]
    BadSubscription,
    /// The handshake's verify token is wrong.
    #[error("verify token does not match")]
    WrongVerifyToken,
    /// A store failed; Meta should deliver again.
    #[error("store failed while handling the webhook")]
    Store(#[from] StoreError),
}

impl WebhookError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            WebhookError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            WebhookError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            WebhookError::MissingSignature
            | WebhookError::BadSignature
            | WebhookError::WrongVerifyToken => StatusCode::FORBIDDEN,
            WebhookError::BadSubscription => StatusCode::FORBIDDEN,
            WebhookError::Malformed(_) => StatusCode::BAD_REQUEST,
            WebhookError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The response to send for this error (the body names the problem, never a secret).
    pub fn to_response(&self) -> Response<Bytes> {
        plain_response(self.status(), Bytes::from(self.to_string()))
    }
}

/// What a verified webhook body held: the core's [`InboundBatch`], whose `unknown_pages` are
/// Page ids.
pub type Batch = InboundBatch;

/// The outcome of [`Webhook::handle`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Handled {
    /// The response to send.
    pub response: Response<Bytes>,
    /// The events, for a POST that was accepted.
    pub batch: Option<Batch>,
}

/// Builds a [`Webhook`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct WebhookBuilder {
    webhook: Webhook,
}

impl fmt::Debug for WebhookBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookBuilder")
            .field("webhook", &self.webhook)
            .finish()
    }
}

impl WebhookBuilder {
    /// Sets the body size limit (default 1 MiB).
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.webhook.max_body = bytes;
        self
    }

    /// Reads time from `clock`.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.webhook.clock = clock;
        self
    }

    /// Sets how long handled events are remembered (default 48 hours).
    pub fn dedupe_ttl(mut self, ttl: Duration) -> Self {
        self.webhook.dedupe_ttl = ttl;
        self
    }

    /// Sets how long [`Webhook::receive`] claims each new event before it must be committed
    /// or released (default [`DEFAULT_CLAIM_LEASE`]). Longer than the handling of a batch
    /// takes, so that an overlapping delivery never routes an event twice; short enough that
    /// an event whose handler crashed is routed by a delivery soon after.
    pub fn claim_lease(mut self, lease: Duration) -> Self {
        self.webhook.claim_lease = lease;
        self
    }

    /// Builds the webhook.
    pub fn build(self) -> Webhook {
        self.webhook
    }
}

/// The Messenger webhook endpoint; see the [module docs](self).
///
/// ```
/// use std::sync::Arc;
/// use tidings::{
///     messenger::{AppSecret, PageAccessToken, PageConfig, StaticPages, VerifyToken, Webhook},
///     store::memory::{MemoryLastInbound, MemorySeenEvents},
/// };
/// use hmac::{Hmac, Mac};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let pages = Arc::new(StaticPages::new([PageConfig::new(
///     "104812345678901",
///     PageAccessToken::new("page-token"),
/// )]));
/// let webhook = Webhook::builder(
///     AppSecret::new("app-secret"),
///     VerifyToken::new("verify-me"),
///     pages,
///     Arc::new(MemorySeenEvents::new()),
///     Arc::new(MemoryLastInbound::new()),
/// )
/// .build();
///
/// // The subscription handshake: echo the challenge for the right verify token only.
/// let query = "hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444";
/// assert_eq!(webhook.verify_subscription(query)?, "1158201444");
/// assert!(webhook.verify_subscription("hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1").is_err());
///
/// // A POST: signed by Meta with the app secret over the raw body.
/// let body = br#"{"object":"page","entry":[{"id":"104812345678901","time":1764000000000,
///   "messaging":[{"sender":{"id":"6789012345678901"},"recipient":{"id":"104812345678901"},
///   "timestamp":1764000000000,"message":{"mid":"m_1","text":"Hello"}}]}]}"#;
/// let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"app-secret")?;
/// mac.update(body);
/// let digest: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
/// let mut headers = http::HeaderMap::new();
/// headers.insert("x-hub-signature-256", format!("sha256={digest}").parse()?);
///
/// let batch = webhook.receive(&headers, body).await?;
/// assert_eq!(batch.events.len(), 1);
/// // Routed (by the Hub, or by hand): settle it, so a redelivery is a duplicate.
/// webhook.commit_all(&batch.events).await?;
/// assert_eq!(webhook.receive(&headers, body).await?.duplicates, 1);
///
/// // A forged body is refused before anything is read.
/// assert!(webhook.receive(&headers, br#"{"object":"page","entry":[]}"#).await.is_err());
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run()).unwrap();
/// ```
pub struct Webhook {
    mac: Hmac<Sha256>,
    verify_token: VerifyToken,
    pages: Arc<dyn PageResolver>,
    seen: Arc<dyn SeenEvents>,
    last_inbound: Arc<dyn LastInbound>,
    max_body: usize,
    clock: SharedClock,
    dedupe_ttl: Duration,
    claim_lease: Duration,
    /// Hashes keys to find repeats inside one batch (seeded per webhook).
    batch_hasher: RandomState,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("app_secret", &"[redacted]")
            .field("verify_token", &self.verify_token)
            .field("max_body", &self.max_body)
            .field("dedupe_ttl", &self.dedupe_ttl)
            .field("claim_lease", &self.claim_lease)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// Starts building a webhook.
    ///
    /// - `app_secret` checks signatures; `verify_token` answers the subscription handshake;
    /// - `pages` says which Pages are served;
    /// - `seen` remembers handled events; `last_inbound` is fed the time of each person's
    ///   last message (the messaging window).
    pub fn builder(
        app_secret: AppSecret,
        verify_token: VerifyToken,
        pages: Arc<dyn PageResolver>,
        seen: Arc<dyn SeenEvents>,
        last_inbound: Arc<dyn LastInbound>,
    ) -> WebhookBuilder {
        // HMAC takes keys of any length (long ones are hashed), so keying cannot fail; the
        // fallback keeps this path free of panics all the same.
        let mac = Hmac::<Sha256>::new_from_slice(app_secret.secret().as_bytes())
            .unwrap_or_else(|_| <Hmac<Sha256> as hmac::digest::KeyInit>::new(&Default::default()));
        WebhookBuilder {
            webhook: Webhook {
                mac,
                verify_token,
                pages,
                seen,
                last_inbound,
                max_body: DEFAULT_MAX_BODY,
                clock: SystemClock::shared(),
                dedupe_ttl: DEFAULT_DEDUPE_TTL,
                claim_lease: DEFAULT_CLAIM_LEASE,
                batch_hasher: RandomState::default(),
            },
        }
    }

    /// The largest body accepted, in bytes ([`WebhookBuilder::max_body`]).
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// Answers the subscription handshake: the challenge to echo, given the request's query
    /// string.
    pub fn verify_subscription(&self, query: &str) -> Result<String, WebhookError> {
        let (mut mode, mut token, mut challenge) = (None, None, None);
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            match &*k {
                "hub.mode" => mode = Some(v),
                "hub.verify_token" => token = Some(v),
                "hub.challenge" => challenge = Some(v),
                _ => {}
            }
        }
        let token = token.ok_or(WebhookError::WrongVerifyToken)?;
        let expected = self.verify_token.secret().as_bytes();
        if !bool::from(token.as_bytes().ct_eq(expected)) {
            return Err(WebhookError::WrongVerifyToken);
        }
        match (mode.as_deref(), challenge) {
            (Some("subscribe"), Some(challenge)) if !challenge.is_empty() => {
                Ok(challenge.into_owned())
            }
            _ => Err(WebhookError::BadSubscription),
        }
    }

    /// Checks `X-Hub-Signature-256` (`header`, the raw header value) against the raw body.
    pub fn verify_signature(&self, header: Option<&[u8]>, body: &[u8]) -> Result<(), WebhookError> {
        let header = header.ok_or(WebhookError::MissingSignature)?;
        let hex_digest = header
            .strip_prefix(b"sha256=")
            .ok_or(WebhookError::BadSignature)?;
        // Exactly 64 hex digits: no `0x` prefix (which the decoder would skip), no padding.
        if hex_digest.len() != 64 {
            return Err(WebhookError::BadSignature);
        }
        let mut digest = [0u8; 32];
        const_hex::decode_to_slice(hex_digest, &mut digest)
            .map_err(|_| WebhookError::BadSignature)?;
        let mut mac = self.mac.clone();
        mac.update(body);
        mac.verify_slice(&digest)
            .map_err(|_| WebhookError::BadSignature)
    }

    /// Verifies and parses a POST, drops what was already handled, claims each new event, and
    /// records when each person last wrote (the messaging window; a fact, safe to record
    /// again).
    ///
    /// The events returned are the caller's until the claim lease ends: call
    /// [`commit`](Webhook::commit) for each once it is routed, or [`release`](Webhook::release)
    /// if routing failed. Events another request holds are only counted, in
    /// [`Batch::in_flight`].
    pub async fn receive(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<Batch, WebhookError> {
        if body.len() > self.max_body {
            return Err(WebhookError::BodyTooLarge {
                len: body.len(),
                limit: self.max_body,
            });
        }
        self.verify_signature(headers.get(&SIGNATURE_NAME).map(|v| v.as_bytes()), body)?;
        let now = self.clock.now();
        let Parsed {
            mut events,
            mut dropped,
            mut notices,
            orphans,
            spans,
            ..
        } = stream::parse(body, now).map_err(|e| WebhookError::Malformed(e.to_string()))?;
        let mut batch = Batch::default();

        // Resolve each Page once, without copying ids: spans join consecutive entries of a
        // Page, and a batch names few Pages (looked up in a table once there are many, so a
        // body of thousands of distinct Pages costs the same per entry).
        let mut served: SmallVec<[bool; 4]> = SmallVec::with_capacity(spans.len());
        let mut pages = PageTable::default();
        for span in &spans {
            let serves = match pages.get(&span.page_id, &self.batch_hasher) {
                Some(serves) => serves,
                None => {
                    let serves = self.pages.contains(&span.page_id).await?;
                    pages.insert(&span.page_id, serves, &self.batch_hasher);
                    serves
                }
            };
            served.push(serves);
        }
        if served.iter().any(|serves| !serves) {
            // Events of Pages not served were converted while parsing; nothing else sees them.
            let mut reported = PageTable::default();
            for (span, _) in spans.iter().zip(&served).filter(|(_, serves)| !**serves) {
                if reported.get(&span.page_id, &self.batch_hasher).is_none() {
                    reported.insert(&span.page_id, true, &self.batch_hasher);
                    tracing::warn!(page_id = %span.page_id, "webhook event for a Page that is not configured");
                    batch.unknown_pages.push(span.page_id.clone().into_owned());
                }
            }
            retain_served(&mut events, &spans, &served, |s| s.events_end);
            retain_served(&mut dropped, &spans, &served, |s| s.dropped_end);
            retain_served(&mut notices, &spans, &served, |s| s.notices_end);
        }
        drop(pages);
        dropped.extend(orphans);
        for d in &dropped {
            tracing::warn!(page_id = %d.page_id, kind = %d.kind, reason = %d.reason, "webhook event dropped");
        }
        for n in &notices {
            tracing::warn!(page_id = %n.page_id, notice = ?n.kind, "notice about a Page");
        }
        batch.dropped = dropped;
        batch.notices = notices;

        // Drop repeats inside the batch first: small batches compare keys; larger ones look
        // each key up among the kept ones in a table (hashed once, compared exactly, the kept
        // event's index stored). In place.
        let small = events.len() <= 8;
        let mut firsts: HashTable<(u64, usize)> =
            HashTable::with_capacity(if small { 0 } else { events.len() });
        let mut kept = 0;
        for i in 0..events.len() {
            let key = events[i].key.as_str();
            let repeated = if small {
                events[..kept].iter().any(|e| e.key == key)
            } else {
                let hash = self.batch_hasher.hash_one(key);
                match firsts.entry(hash, |&(_, j)| events[j].key == key, |&(h, _)| h) {
                    Entry::Occupied(_) => true,
                    Entry::Vacant(slot) => {
                        // Kept: it moves to index `kept` below.
                        slot.insert((hash, kept));
                        false
                    }
                }
            };
            if repeated {
                batch.duplicates += 1;
            } else {
                if kept != i {
                    events.swap(kept, i);
                }
                kept += 1;
            }
        }
        events.truncate(kept);
        drop(firsts);
        // Then claim the distinct keys: one store round trip for the whole batch (none for a
        // batch without events); a single event, the common case, claims without building
        // lists.
        let claims: SmallVec<[Claim; 8]> = match events.as_slice() {
            [] => SmallVec::new(),
            [event] => {
                smallvec::smallvec![self.seen.claim(&event.key, now, self.claim_lease).await?]
            }
            events => {
                let keys: SmallVec<[&str; 8]> = events.iter().map(|e| e.key.as_str()).collect();
                SmallVec::from_vec(self.seen.claim_many(&keys, now, self.claim_lease).await?)
            }
        };
        let mut claims = claims.into_iter();
        events.retain(|event| match claims.next() {
            Some(Claim::Acquired) => true,
            Some(Claim::Held { until }) => {
                tracing::info!(key = %event.key, held_until = %until, "event is being handled by another request; Meta will deliver it again");
                batch.in_flight += 1;
                false
            }
            // Handled before (or a store that answered for fewer keys than asked).
            _ => {
                batch.duplicates += 1;
                false
            }
        });
        // When each person last wrote is a fact, safe to record again on a redelivery; recording
        // it now lets the router answer inside the window it opened.
        let mut windows: SmallVec<[(&crate::contact::Address, crate::clock::Timestamp); 8]> =
            SmallVec::with_capacity(events.len());
        windows.extend(
            events
                .iter()
                .filter(|e| opens_window(&e.kind) && !e.standby)
                .map(|e| (&e.from, e.at)),
        );
        if !windows.is_empty() {
            self.last_inbound.record_many(&windows).await?;
        }
        drop(windows);
        batch.events = events;
        Ok(batch)
    }

    /// Marks every event of `events` handled, with one store round trip; see
    /// [`commit`](Webhook::commit).
    pub async fn commit_all(&self, events: &[Inbound]) -> Result<(), StoreError> {
        let now = self.clock.now();
        match events {
            [] => Ok(()),
            [event] => self.seen.settle(&event.key, now, self.dedupe_ttl).await,
            events => {
                let keys: SmallVec<[&str; 8]> = events.iter().map(|e| e.key.as_str()).collect();
                self.seen.settle_many(&keys, now, self.dedupe_ttl).await
            }
        }
    }

    /// Marks `event` handled: its claim becomes a mark that drops every redelivery for the
    /// dedupe ttl ([`WebhookBuilder::dedupe_ttl`]).
    pub async fn commit(&self, event: &Inbound) -> Result<(), StoreError> {
        self.seen
            .settle(&event.key, self.clock.now(), self.dedupe_ttl)
            .await
    }

    /// Gives back the claims of `events`, whose routing failed or never happened: a
    /// redelivery routes them at once instead of waiting for the lease to end.
    pub async fn release(&self, events: &[Inbound]) -> Result<(), StoreError> {
        for event in events {
            self.seen.forget(&event.key).await?;
        }
        Ok(())
    }

    /// Handles a whole request: the handshake for GET; for POST, [`receive`](Webhook::receive)
    /// then [`commit`](Webhook::commit) of every event before answering.
    pub async fn handle(&self, request: &Request<Bytes>) -> Handled {
        let result = match *request.method() {
            Method::GET => match self.verify_subscription(request.uri().query().unwrap_or("")) {
                Ok(challenge) => {
                    return Handled {
                        response: plain_response(StatusCode::OK, Bytes::from(challenge)),
                        batch: None,
                    };
                }
                Err(e) => Err(e),
            },
            Method::POST => {
                self.receive_and_commit(request.headers(), request.body())
                    .await
            }
            _ => Err(WebhookError::MethodNotAllowed),
        };
        match result {
            Ok(batch) if batch.in_flight > 0 => Handled {
                response: default_response(Outcome::InFlight),
                batch: Some(batch),
            },
            Ok(batch) => Handled {
                response: InboundSource::respond(self, Outcome::Handled),
                batch: Some(batch),
            },
            Err(e) => {
                if e.status().is_server_error() {
                    tracing::error!(error = %e, "webhook failed; Meta will deliver again");
                } else {
                    tracing::warn!(error = %e, status = %e.status(), "webhook request refused");
                }
                Handled {
                    response: e.to_response(),
                    batch: None,
                }
            }
        }
    }

    async fn receive_and_commit(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<Batch, WebhookError> {
        let batch = self.receive(headers, body).await?;
        self.commit_all(&batch.events).await?;
        Ok(batch)
    }
}

/// The Hub drives the webhook through the core's seam: `GET` is the handshake, `POST` is
/// [`Webhook::receive`]; Meta's answers are `EVENT_RECEIVED`, 503 and 500.
#[async_trait::async_trait]
impl InboundSource for Webhook {
    async fn receive(&self, request: &Request<Bytes>) -> Reception {
        if request.method() != Method::POST {
            return Reception::Answered {
                response: self.handle(request).await.response,
                error: None,
            };
        }
        match Webhook::receive(self, request.headers(), request.body()).await {
            Ok(batch) => Reception::Batch(batch),
            Err(e) => {
                tracing::warn!(error = %e, status = %e.status(), "webhook request refused");
                let response = e.to_response();
                let error = match e {
                    WebhookError::Store(s) => Some(s),
                    _ => None,
                };
                Reception::Answered { response, error }
            }
        }
    }

    async fn commit(&self, event: &Inbound) -> Result<(), StoreError> {
        Webhook::commit(self, event).await
    }

    async fn release(&self, events: &[Inbound]) -> Result<(), StoreError> {
        Webhook::release(self, events).await
    }

    fn max_body(&self) -> usize {
        self.max_body
    }

    fn respond(&self, outcome: Outcome) -> Response<Bytes> {
        match outcome {
            // Meta's documented acknowledgement.
            Outcome::Handled => plain_response(StatusCode::OK, "EVENT_RECEIVED"),
            other => default_response(other),
        }
    }
}

/// Page ids of a batch and whether each is served: a list while there are few, a table once
/// there are many.
#[derive(Default)]
struct PageTable<'a> {
    few: SmallVec<[(&'a str, bool); 4]>,
    many: HashTable<(u64, &'a str, bool)>,
}

impl<'a> PageTable<'a> {
    const FEW: usize = 8;

    fn get(&self, id: &str, hasher: &RandomState) -> Option<bool> {
        if self.many.is_empty() {
            // The last one answered is checked first: entries of one Page come together.
            return self
                .few
                .iter()
                .rev()
                .find(|(p, _)| *p == id)
                .map(|&(_, s)| s);
        }
        self.many
            .find(hasher.hash_one(id), |&(_, p, _)| p == id)
            .map(|&(_, _, s)| s)
    }

    fn insert(&mut self, id: &'a str, serves: bool, hasher: &RandomState) {
        if self.many.is_empty() && self.few.len() < Self::FEW {
            self.few.push((id, serves));
            return;
        }
        for (p, s) in self.few.drain(..) {
            let hash = hasher.hash_one(p);
            self.many.insert_unique(hash, (hash, p, s), |&(h, _, _)| h);
        }
        let hash = hasher.hash_one(id);
        self.many
            .insert_unique(hash, (hash, id, serves), |&(h, _, _)| h);
    }
}

/// Keeps the items of `items` whose span is served; `end` gives where a span's items end.
fn retain_served<T>(
    items: &mut Vec<T>,
    spans: &[Span<'_>],
    served: &[bool],
    end: impl Fn(&Span<'_>) -> usize,
) {
    let mut index = 0;
    let mut span = 0;
    items.retain(|_| {
        while spans.get(span).is_some_and(|s| index >= end(s)) {
            span += 1;
        }
        index += 1;
        served.get(span).copied().unwrap_or(false)
    });
}

/// Whether the event is something the person did, which opens Messenger's window.
fn opens_window(kind: &InboundKind) -> bool {
    matches!(
        kind,
        InboundKind::Text { .. }
            | InboundKind::Answer { .. }
            | InboundKind::Attachments { .. }
            | InboundKind::Referral { .. }
    )
}

#[cfg(test)]
mod page_table_tests {
    use super::*;

    #[test]
    fn finds_every_page_whether_few_or_many() {
        let hasher = RandomState::default();
        let ids: Vec<String> = (0..40).map(|i| format!("p{i}")).collect();
        let mut table = PageTable::default();
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(table.get(id, &hasher), None);
            table.insert(id, i % 3 == 0, &hasher);
            // A list for the first few Pages, a table from the one after.
            assert_eq!(table.many.is_empty(), i < PageTable::FEW, "after {i}");
            for (j, seen) in ids[..=i].iter().enumerate() {
                assert_eq!(
                    table.get(seen, &hasher),
                    Some(j % 3 == 0),
                    "{seen} after {i}"
                );
            }
        }
        assert_eq!(table.get("other", &hasher), None);
        // Past a few Pages the lookups are hashed, so a body naming thousands of Pages costs
        // the same per entry.
        assert!(table.few.is_empty() && table.many.len() == ids.len());
        assert!(ids.len() > PageTable::FEW);
    }
}
