//! [`MessengerTransport`]: the Send API client, as a [`Transport`].
//!
//! A send goes through, in order, with every refusal made before any HTTP call:
//!
//! 1. the address must be a Messenger address of a Page the [`PageResolver`] knows;
//! 2. the message must render within Messenger's limits ([`render`](super::render));
//! 3. the [`Policy`] must allow it, given when the person last wrote ([`LastInbound`]);
//! 4. each part waits for the Page's rate limiter (and for a cooldown after a rate-limit
//!    error), then is posted; retryable failures are retried with exponential backoff and
//!    jitter up to the configured budget.
//!
//! The access token travels in the query string, as in Meta's own examples, with
//! `appsecret_proof` when an app secret is configured. Errors never carry the URL.
//!
//! ```no_run
//! use std::sync::Arc;
//! use tidings::{
//!     contact::Address,
//!     message::Message,
//!     messenger::{MessengerTransport, PageAccessToken, PageConfig, StaticPages},
//!     store::memory::MemoryLastInbound,
//!     transport::{SendContext, Transport},
//! };
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let pages = StaticPages::new([PageConfig::new(
//!     "104812345678901",
//!     PageAccessToken::new(std::env::var("PAGE_ACCESS_TOKEN")?),
//! )]);
//! let messenger = MessengerTransport::builder(Arc::new(pages), Arc::new(MemoryLastInbound::new())).build()?;
//! let to = Address::messenger("104812345678901", "6789012345678901")?;
//! messenger.send(&to, &Message::text("Welcome!")?, &SendContext::reply()).await?;
//! # Ok(()) }
//! ```

use std::{
    collections::HashMap,
    fmt,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};
use tracing::Instrument;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{
    error::MessengerError,
    pages::{PageConfig, PageResolver},
    policy::{MessagingType, Policy},
    render::{OutgoingMessage, messenger_len, render},
    secret::AppSecret,
};
use crate::{
    activity::LastInbound,
    clock::{SharedClock, SystemClock},
    contact::{Address, Channel},
    message::{Message, Receipt},
    sync::lock,
    transport::{Capabilities, DeliveryError, SendContext, Transport, ensure_channel},
};

/// The Graph API version used unless another is configured.
pub const DEFAULT_API_VERSION: &str = "v25.0";
/// The Graph API host used unless another is configured.
pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";
/// Longest Messenger greeting text.
pub const GREETING_MAX: usize = 160;

/// Why a [`MessengerTransport`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The base URL is not an absolute http(s) URL.
    #[error("invalid Graph API base URL {0:?}")]
    InvalidBaseUrl(String),
    /// The API version is not of the form `v<major>.<minor>`.
    #[error("invalid Graph API version {0:?} (expected like \"v25.0\")")]
    InvalidVersion(String),
    /// The HTTP client could not be built (TLS backend).
    #[error("HTTP client could not be built")]
    Http(#[source] reqwest::Error),
}

/// A sender action: typing indicators and read receipts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SenderAction {
    /// Shows the typing indicator.
    TypingOn,
    /// Hides the typing indicator.
    TypingOff,
    /// Marks the person's last message as seen.
    MarkSeen,
}

impl SenderAction {
    fn as_str(self) -> &'static str {
        match self {
            SenderAction::TypingOn => "typing_on",
            SenderAction::TypingOff => "typing_off",
            SenderAction::MarkSeen => "mark_seen",
        }
    }
}

/// How retryable failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: no retry).
    pub max_retries: usize,
    /// The first backoff delay; it doubles per retry, with jitter.
    pub min_delay: Duration,
    /// The longest backoff delay.
    pub max_delay: Duration,
    /// How long a Page pauses after a rate-limit error.
    pub rate_limit_pause: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            rate_limit_pause: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// Sets the number of retries.
    pub fn with_max_retries(mut self, n: usize) -> Self {
        self.max_retries = n;
        self
    }

    /// Sets the backoff range.
    pub fn with_delays(mut self, min: Duration, max: Duration) -> Self {
        self.min_delay = min;
        self.max_delay = max.max(min);
        self
    }

    /// Sets the pause after a rate-limit error.
    pub fn with_rate_limit_pause(mut self, pause: Duration) -> Self {
        self.rate_limit_pause = pause;
        self
    }
}

/// Builds a [`MessengerTransport`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct MessengerTransportBuilder {
    pages: Arc<dyn PageResolver>,
    last_inbound: Arc<dyn LastInbound>,
    base_url: String,
    version: String,
    timeout: Duration,
    app_secret: Option<AppSecret>,
    clock: SharedClock,
    policy: Policy,
    retry: RetryPolicy,
    rate_per_second: Option<NonZeroU32>,
    budget: Option<Arc<crate::budget::Pacer>>,
}

impl fmt::Debug for MessengerTransportBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessengerTransportBuilder")
            .field("base_url", &self.base_url)
            .field("version", &self.version)
            .field("timeout", &self.timeout)
            .field("app_secret", &self.app_secret)
            .field("policy", &self.policy)
            .field("retry", &self.retry)
            .field("rate_per_second", &self.rate_per_second)
            .finish_non_exhaustive()
    }
}

impl MessengerTransportBuilder {
    /// Sends to another Graph API host (a test server, a proxy).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Uses Graph API `version` (like `"v25.0"`).
    pub fn api_version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Sets the per-request timeout (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends `appsecret_proof` with every call.
    pub fn app_secret(mut self, secret: AppSecret) -> Self {
        self.app_secret = Some(secret);
        self
    }

    /// Reads time (for the messaging window) from `clock`.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the messaging policy.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets how retryable failures are retried.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Caps requests per second per Page (default 250, under Messenger's 300 for text);
    /// `None` removes the cap.
    pub fn rate_limit(mut self, per_second: Option<u32>) -> Self {
        self.rate_per_second = per_second.and_then(NonZeroU32::new);
        self
    }

    /// Also waits for a slot of `budget` before every request, keyed by Page id: a rate the
    /// transports of several processes share (Meta's cap is per Page, whoever sends), on top
    /// of this transport's own [`rate_limit`](Self::rate_limit). Slots are reserved 8 at a
    /// time. A budget that cannot be read fails the send as retryable, with nothing sent.
    pub fn shared_budget(mut self, budget: Arc<dyn crate::budget::SendBudget>) -> Self {
        self.budget = Some(Arc::new(crate::budget::Pacer::new(budget, 8)));
        self
    }

    /// Builds the transport.
    pub fn build(self) -> Result<MessengerTransport, BuildError> {
        let base = self.base_url.trim_end_matches('/');
        let parsed =
            url::Url::parse(base).map_err(|_| BuildError::InvalidBaseUrl(self.base_url.clone()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(BuildError::InvalidBaseUrl(self.base_url.clone()));
        }
        let valid_version = self
            .version
            .strip_prefix('v')
            .and_then(|v| v.split_once('.'))
            .is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
            });
        if !valid_version {
            return Err(BuildError::InvalidVersion(self.version));
        }
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .pool_max_idle_per_host(256)
            .build()
            .map_err(BuildError::Http)?;
        let mac = self
            .app_secret
            .as_ref()
            .and_then(|s| Hmac::<Sha256>::new_from_slice(s.secret().as_bytes()).ok());
        Ok(MessengerTransport {
            inner: Arc::new(Inner {
                http,
                graph: format!("{base}/{}", self.version),
                proof_mac: mac,
                pages: self.pages,
                last_inbound: self.last_inbound,
                clock: self.clock,
                policy: self.policy,
                retry: self.retry,
                rate_per_second: self.rate_per_second,
                budget: self.budget,
                page_state: Mutex::new(HashMap::new()),
                channel: Channel::Messenger,
            }),
        })
    }
}

/// Per-Page state: the prepared URL, the rate limiter, the cooldown.
struct PageState {
    token_fingerprint: [u8; 32],
    messages_url: Arc<str>,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    cooldown_until: Option<tokio::time::Instant>,
}

struct Inner {
    http: reqwest::Client,
    graph: String,
    proof_mac: Option<Hmac<Sha256>>,
    pages: Arc<dyn PageResolver>,
    last_inbound: Arc<dyn LastInbound>,
    clock: SharedClock,
    policy: Policy,
    retry: RetryPolicy,
    rate_per_second: Option<NonZeroU32>,
    budget: Option<Arc<crate::budget::Pacer>>,
    page_state: Mutex<HashMap<String, PageState>>,
    channel: Channel,
}

/// The Messenger Send API as a [`Transport`]; see the [module docs](self). Cheap to clone.
#[derive(Clone)]
pub struct MessengerTransport {
    inner: Arc<Inner>,
}

impl fmt::Debug for MessengerTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessengerTransport")
            .field("graph", &self.inner.graph)
            .field("appsecret_proof", &self.inner.proof_mac.is_some())
            .field("policy", &self.inner.policy)
            .field("retry", &self.inner.retry)
            .field("rate_per_second", &self.inner.rate_per_second)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Recipient<'a> {
    id: &'a str,
}

#[derive(Serialize)]
struct SendBody<'a> {
    recipient: Recipient<'a>,
    messaging_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<&'static str>,
    message: &'a OutgoingMessage,
}

#[derive(Serialize)]
struct ActionBody<'a> {
    recipient: Recipient<'a>,
    sender_action: &'static str,
}

#[derive(Deserialize)]
struct SendResponse {
    #[serde(default)]
    message_id: Option<String>,
}

impl MessengerTransport {
    /// Starts building a transport over the host's Pages and last-inbound record.
    pub fn builder(
        pages: Arc<dyn PageResolver>,
        last_inbound: Arc<dyn LastInbound>,
    ) -> MessengerTransportBuilder {
        MessengerTransportBuilder {
            pages,
            last_inbound,
            base_url: DEFAULT_BASE_URL.to_owned(),
            version: DEFAULT_API_VERSION.to_owned(),
            timeout: Duration::from_secs(10),
            app_secret: None,
            clock: SystemClock::shared(),
            policy: Policy::default(),
            retry: RetryPolicy::default(),
            rate_per_second: NonZeroU32::new(250),
            budget: None,
        }
    }

    /// Shows or hides the typing indicator, or marks the last message seen.
    pub async fn sender_action(
        &self,
        to: &Address,
        action: SenderAction,
    ) -> Result<(), DeliveryError> {
        let (page, psid) = self.page_of(to).await?;
        let url = self.prepare(&page)?;
        let body = ActionBody {
            recipient: Recipient { id: psid },
            sender_action: action.as_str(),
        };
        self.post_with_retry(&page.page_id, &url, &body)
            .await
            .map(|_| ())
    }

    /// Sets the Get Started button's payload (m.me refs reach new threads only through it).
    pub async fn set_get_started(&self, page_id: &str, payload: &str) -> Result<(), DeliveryError> {
        if payload.is_empty() || messenger_len(payload) > super::render::PAYLOAD_MAX {
            return Err(DeliveryError::invalid_message(
                "the Get Started payload must be 1 to 1000 characters",
            ));
        }
        let body = serde_json::json!({ "get_started": { "payload": payload } });
        self.set_profile(page_id, &body).await
    }

    /// Sets the default greeting shown before a person's first message.
    pub async fn set_greeting(&self, page_id: &str, text: &str) -> Result<(), DeliveryError> {
        let len = messenger_len(text);
        if text.trim().is_empty() || len > GREETING_MAX {
            return Err(DeliveryError::invalid_message(format!(
                "the greeting must be 1 to {GREETING_MAX} characters, got {len}"
            )));
        }
        let body = serde_json::json!({ "greeting": [{ "locale": "default", "text": text }] });
        self.set_profile(page_id, &body).await
    }

    async fn set_profile(
        &self,
        page_id: &str,
        body: &serde_json::Value,
    ) -> Result<(), DeliveryError> {
        let page = self.resolve(page_id).await?;
        let url = format!(
            "{}/me/messenger_profile?{}",
            self.inner.graph,
            self.auth_query(&page)
        );
        self.post_with_retry(&page.page_id, &url, body)
            .await
            .map(|_| ())
    }

    async fn resolve(&self, page_id: &str) -> Result<PageConfig, DeliveryError> {
        self.inner
            .pages
            .page(page_id)
            .await
            .map_err(|e| {
                DeliveryError::retryable("the Page settings could not be read").with_source(e)
            })?
            .ok_or_else(|| DeliveryError::unauthorized(format!("no settings for Page {page_id}")))
    }

    async fn page_of<'a>(&self, to: &'a Address) -> Result<(PageConfig, &'a str), DeliveryError> {
        ensure_channel(&self.inner.channel, to)?;
        let page_id = to.scope().ok_or_else(|| {
            DeliveryError::invalid_message("a Messenger address needs its Page id")
        })?;
        Ok((self.resolve(page_id).await?, to.id()))
    }

    fn auth_query(&self, page: &PageConfig) -> String {
        let token = page.access_token.secret();
        let mut query = format!("access_token={}", urlencode(token));
        if let Some(mac) = &self.inner.proof_mac {
            let mut mac = mac.clone();
            mac.update(token.as_bytes());
            query.push_str("&appsecret_proof=");
            query.push_str(&const_hex::encode(mac.finalize().into_bytes()));
        }
        query
    }

    /// The messages URL of `page`, prepared once per Page and token.
    fn prepare(&self, page: &PageConfig) -> Result<Arc<str>, DeliveryError> {
        let fingerprint: [u8; 32] = {
            use sha2::Digest;
            Sha256::digest(page.access_token.secret().as_bytes()).into()
        };
        let mut states = lock(&self.inner.page_state);
        if let Some(state) = states.get(&page.page_id) {
            if state.token_fingerprint == fingerprint {
                return Ok(state.messages_url.clone());
            }
        }
        let url: Arc<str> = format!(
            "{}/{}/messages?{}",
            self.inner.graph,
            urlencode(&page.page_id),
            self.auth_query(page)
        )
        .into();
        let limiter = self
            .inner
            .rate_per_second
            .map(|r| Arc::new(RateLimiter::direct(Quota::per_second(r))));
        let previous = states.insert(
            page.page_id.clone(),
            PageState {
                token_fingerprint: fingerprint,
                messages_url: url.clone(),
                limiter,
                cooldown_until: None,
            },
        );
        // A rotated token keeps the Page's limiter and cooldown.
        if let (Some(prev), Some(state)) = (previous, states.get_mut(&page.page_id)) {
            state.limiter = prev.limiter;
            state.cooldown_until = prev.cooldown_until;
        }
        Ok(url)
    }

    /// Waits for the Page's cooldown, rate limiter and shared budget.
    async fn pace(&self, page_id: &str) -> Result<(), MessengerError> {
        let (limiter, cooldown) = {
            let states = lock(&self.inner.page_state);
            match states.get(page_id) {
                Some(s) => (s.limiter.clone(), s.cooldown_until),
                None => (None, None),
            }
        };
        if let Some(until) = cooldown {
            tokio::time::sleep_until(until).await;
        }
        if let Some(limiter) = limiter {
            limiter.until_ready().await;
        }
        if let Some(budget) = &self.inner.budget {
            budget.wait(page_id).await.map_err(MessengerError::Budget)?;
        }
        Ok(())
    }

    fn cool_down(&self, page_id: &str) {
        let until = tokio::time::Instant::now() + self.inner.retry.rate_limit_pause;
        if let Some(state) = lock(&self.inner.page_state).get_mut(page_id) {
            state.cooldown_until = Some(state.cooldown_until.map_or(until, |u| u.max(until)));
        }
    }

    async fn post_once<B: Serialize + ?Sized>(
        &self,
        page_id: &str,
        url: &str,
        body: &B,
    ) -> Result<SendResponse, MessengerError> {
        self.pace(page_id).await?;
        let response = self
            .inner
            .http
            .post(url)
            .json(body)
            .send()
            .await
            .map_err(MessengerError::http)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(MessengerError::http)?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|_| unexpected(status.as_u16(), &bytes));
        }
        let error = match super::error::GraphError::from_body(&bytes) {
            Some(graph) => MessengerError::Graph(graph),
            None => unexpected(status.as_u16(), &bytes),
        };
        if error.is_rate_limit() {
            self.cool_down(page_id);
        }
        Err(error)
    }

    async fn post_with_retry<B: Serialize + ?Sized + Sync>(
        &self,
        page_id: &str,
        url: &str,
        body: &B,
    ) -> Result<SendResponse, DeliveryError> {
        let retry = self.inner.retry;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(retry.min_delay)
            .with_max_delay(retry.max_delay)
            .with_max_times(retry.max_retries)
            .with_jitter();
        let attempts = std::sync::atomic::AtomicU32::new(0);
        (|| {
            let attempt = attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            // The URL carries the Page token: never a span field.
            self.post_once(page_id, url, body).instrument(tracing::info_span!(
                "send_attempt",
                channel = "messenger",
                page_id,
                attempt
            ))
        })
        .retry(backoff)
            .when(MessengerError::may_auto_retry)
            .notify(|e: &MessengerError, after: Duration| {
                tracing::warn!(page_id, error = %e, retry_in = ?after, "Messenger send failed, retrying");
            })
            .await
            .map_err(|e| e.into_delivery_error(retry.rate_limit_pause))
    }
}

fn unexpected(status: u16, body: &[u8]) -> MessengerError {
    let text = String::from_utf8_lossy(body);
    let cut: String = text.chars().take(512).collect();
    MessengerError::UnexpectedResponse {
        status,
        body: cut.into_boxed_str(),
    }
}

/// Percent-encodes a query value (tokens are URL-safe in practice; this keeps them so).
fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[async_trait]
impl Transport for MessengerTransport {
    fn channel(&self) -> &Channel {
        &self.inner.channel
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::text_only()
            .with_max_text_len(super::render::TEXT_MAX)
            .with_choices(
                super::render::QUICK_REPLIES_MAX,
                Some(super::render::TITLE_MAX),
            )
            .with_buttons(super::render::BUTTONS_MAX)
    }

    async fn send(
        &self,
        to: &Address,
        message: &Message,
        ctx: &SendContext,
    ) -> Result<Receipt, DeliveryError> {
        let (page, psid) = self.page_of(to).await?;
        let parts = render(message)
            .map_err(|e| DeliveryError::invalid_message(e.to_string()).with_source(e))?;
        let last = self.inner.last_inbound.last(to).await.map_err(|e| {
            DeliveryError::retryable("the last inbound time could not be read").with_source(e)
        })?;
        let messaging: MessagingType =
            self.inner
                .policy
                .decide(ctx.intent, last, self.inner.clock.now())?;
        let url = self.prepare(&page)?;

        let mut message_ids = Vec::with_capacity(parts.len());
        let total = parts.len();
        for (i, part) in parts.iter().enumerate() {
            let body = SendBody {
                recipient: Recipient { id: psid },
                messaging_type: messaging.as_str(),
                tag: messaging.tag().map(|t| t.as_str()),
                message: part,
            };
            match self.post_with_retry(&page.page_id, &url, &body).await {
                Ok(SendResponse {
                    message_id: Some(id),
                }) => message_ids.push(id),
                Ok(SendResponse { message_id: None }) => {
                    return Err(DeliveryError::other(
                        "the Graph API accepted the message without a message id",
                    ));
                }
                Err(e) if i > 0 => {
                    let sent = message_ids.join(", ");
                    let detail = format!(
                        "part {} of {total} failed after parts [{sent}] were sent: {}",
                        i + 1,
                        e.detail()
                    );
                    return Err(DeliveryError::other(detail)
                        .with_source(e)
                        .with_sent_ids(message_ids));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Receipt::new(
            Channel::Messenger,
            message_ids,
            self.inner.clock.now(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{messenger::StaticPages, store::memory::MemoryLastInbound};

    fn builder() -> MessengerTransportBuilder {
        MessengerTransport::builder(
            Arc::new(StaticPages::default()),
            Arc::new(MemoryLastInbound::new()),
        )
    }

    #[test]
    fn build_refuses_bad_urls_and_versions() {
        assert!(matches!(
            builder().base_url("not a url").build(),
            Err(BuildError::InvalidBaseUrl(_))
        ));
        assert!(matches!(
            builder().base_url("ftp://x.example").build(),
            Err(BuildError::InvalidBaseUrl(_))
        ));
        for v in ["25.0", "v25", "v25.x", "v.0", ""] {
            assert!(
                matches!(
                    builder().api_version(v).build(),
                    Err(BuildError::InvalidVersion(_))
                ),
                "{v}"
            );
        }
        assert!(
            builder()
                .api_version("v19.0")
                .base_url("http://127.0.0.1:9/")
                .build()
                .is_ok()
        );
    }

    #[test]
    fn debug_never_shows_secrets() {
        let t = builder()
            .app_secret(AppSecret::new("app-secret-value"))
            .build()
            .unwrap();
        let shown = format!(
            "{t:?} {:?}",
            builder().app_secret(AppSecret::new("app-secret-value"))
        );
        assert!(!shown.contains("app-secret-value"), "{shown}");
    }

    fn _assert_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<MessengerTransport>();
    }
}
