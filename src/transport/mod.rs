//! The [`Transport`] trait: one way of reaching a contact, and the classified [`DeliveryError`]
//! every transport reports.
//!
//! Transports of different channels live side by side (support replies tick several,
//! campaigns fall back from Messenger to e-mail), so `send` returns the crate's
//! [`DeliveryError`], whose [`kind`](DeliveryError::kind) says what the caller can do about a
//! failure. A transport keeps its own rich error (a Graph API error, an SMTP reply) as the
//! `source()`.
//!
//! | module | channel | what it is |
//! |---|---|---|
//! | [`stub`] | any | records what it is given, answers as scripted; for tests and examples |
//! | [`fallback`] | several | tries transports in order where that makes sense |
//!
//! ```
//! use std::sync::Arc;
//! use tidings::{
//!     contact::{Address, Channel},
//!     message::Message,
//!     transport::{SendContext, Transport, stub::StubTransport},
//! };
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let email: Arc<dyn Transport> = Arc::new(StubTransport::new(Channel::Email));
//! let receipt = email
//!     .send(
//!         &Address::email("ann@example.org")?,
//!         &Message::text("Your course starts Monday")?,
//!         &SendContext::update(),
//!     )
//!     .await?;
//! assert_eq!(receipt.channel, Channel::Email);
//! # Ok(()) }
//! ```

use std::{borrow::Cow, error::Error as StdError, fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{
    contact::{Address, Channel},
    message::{Message, Receipt},
};

pub mod fallback;
pub mod set;
pub mod stub;

pub use fallback::Fallback;
pub use set::TransportSet;

/// What a transport can render. Callers check a message against it before sending, and a
/// transport refuses what exceeds it with [`DeliveryErrorKind::InvalidMessage`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Longest text of one message, in characters (`None`: no limit). Transports may split
    /// longer texts into several messages.
    pub max_text_len: Option<usize>,
    /// How many choices a message may carry on this transport (0: none).
    pub max_choices: usize,
    /// Longest choice label, in characters (`None`: no limit).
    pub max_choice_label_len: Option<usize>,
    /// Whether choices can be shown as buttons that stay attached to the message.
    pub buttons: bool,
    /// How many buttons (choices and link buttons together) one message can carry.
    pub max_buttons: usize,
    /// Whether links can be shown as buttons.
    pub link_buttons: bool,
}

impl Capabilities {
    /// Plain text only, of any length.
    pub fn text_only() -> Self {
        Capabilities {
            max_text_len: None,
            max_choices: 0,
            max_choice_label_len: None,
            buttons: false,
            max_buttons: 0,
            link_buttons: false,
        }
    }

    /// Sets the longest text.
    pub fn with_max_text_len(mut self, chars: usize) -> Self {
        self.max_text_len = Some(chars);
        self
    }

    /// Sets how many choices fit and how long their labels may be.
    pub fn with_choices(mut self, max: usize, max_label_len: Option<usize>) -> Self {
        self.max_choices = max;
        self.max_choice_label_len = max_label_len;
        self
    }

    /// Declares up to `max` buttons, for choices and for links.
    pub fn with_buttons(mut self, max: usize) -> Self {
        self.buttons = max > 0;
        self.max_buttons = max;
        self.link_buttons = max > 0;
        self
    }

    /// Checks the choices of `message` against these capabilities: their count, their labels,
    /// and, when the message asks for buttons, whether buttons exist and the choices fit.
    ///
    /// Text length is not checked here because transports may split long texts.
    pub fn check(&self, message: &Message) -> Result<(), DeliveryError> {
        let count = message.choices().len();
        if message.style() == crate::message::ChoiceStyle::Buttons && count > 0 {
            if !self.buttons {
                return Err(DeliveryError::invalid_message(
                    "this transport has no buttons",
                ));
            }
            if count > self.max_buttons {
                return Err(DeliveryError::invalid_message(format!(
                    "{count} choices as buttons, this transport shows at most {}",
                    self.max_buttons
                )));
            }
        }
        if count > self.max_choices {
            return Err(DeliveryError::invalid_message(format!(
                "{count} choices, this transport shows at most {}",
                self.max_choices
            )));
        }
        if let Some(max) = self.max_choice_label_len {
            if let Some(c) = message
                .choices()
                .iter()
                .find(|c| c.label().chars().count() > max)
            {
                return Err(DeliveryError::invalid_message(format!(
                    "choice label {:?} is longer than {max} characters",
                    c.label()
                )));
            }
        }
        Ok(())
    }
}

/// Why a message is sent. Transports map it onto their rules: Messenger picks `RESPONSE`,
/// `UPDATE` or a message tag from it and refuses what its policy does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Intent {
    /// An automated answer to something the user just did.
    Reply,
    /// A reply written by a human support agent.
    AgentReply,
    /// A proactive, non-promotional message.
    Update,
    /// Marketing: a newsletter or an offer.
    Promotional,
    /// A non-recurring change to the user's account (password, access, payment method).
    AccountUpdate,
    /// An update about a purchase (receipt, payment received, access granted).
    PostPurchase,
    /// A reminder or update about an event the user registered for (a live lesson).
    ConfirmedEvent,
}

/// Per-send context: why the message goes out, and how to make a retry safe.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendContext {
    /// Why the message is sent.
    pub intent: Intent,
    /// A key that identifies this send across retries, for transports that deduplicate.
    pub idempotency_key: Option<String>,
}

impl SendContext {
    /// A context with the given intent.
    pub fn new(intent: Intent) -> Self {
        SendContext {
            intent,
            idempotency_key: None,
        }
    }

    /// An automated reply.
    pub fn reply() -> Self {
        SendContext::new(Intent::Reply)
    }

    /// A human agent's reply.
    pub fn agent_reply() -> Self {
        SendContext::new(Intent::AgentReply)
    }

    /// A proactive, non-promotional update.
    pub fn update() -> Self {
        SendContext::new(Intent::Update)
    }

    /// Sets the idempotency key.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// What kind of failure a [`DeliveryError`] is, which decides what the caller does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeliveryErrorKind {
    /// Temporary (rate limit, timeout, server error): the same send may succeed later.
    Retryable,
    /// The transport's messaging window for this recipient is closed and the intent does not
    /// open it (Messenger's 24-hour rule).
    WindowClosed,
    /// The recipient cannot be reached on this transport (blocked the Page, unknown id,
    /// bounced address).
    Unreachable,
    /// The message cannot be rendered by this transport (too many choices, label too long).
    InvalidMessage,
    /// The transport's credentials are missing, wrong or expired.
    Unauthorized,
    /// Anything else; not retried automatically.
    Other,
}

impl DeliveryErrorKind {
    fn describe(self) -> &'static str {
        match self {
            DeliveryErrorKind::Retryable => "temporary failure",
            DeliveryErrorKind::WindowClosed => "messaging window closed",
            DeliveryErrorKind::Unreachable => "recipient unreachable",
            DeliveryErrorKind::InvalidMessage => "message invalid for this transport",
            DeliveryErrorKind::Unauthorized => "transport unauthorized",
            DeliveryErrorKind::Other => "delivery failed",
        }
    }
}

impl fmt::Display for DeliveryErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

type SharedSource = Arc<dyn StdError + Send + Sync + 'static>;

/// A classified delivery failure.
///
/// ```
/// use std::time::Duration;
/// use tidings::transport::{DeliveryError, DeliveryErrorKind};
///
/// let e = DeliveryError::retryable("Graph code 613").with_retry_after(Duration::from_secs(2));
/// assert!(e.is_retryable());
/// assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
/// assert_eq!(e.to_string(), "temporary failure: Graph code 613");
/// assert_eq!(DeliveryError::window_closed("last inbound 30 h ago").kind(), DeliveryErrorKind::WindowClosed);
/// ```
#[derive(Clone)]
pub struct DeliveryError {
    kind: DeliveryErrorKind,
    detail: Cow<'static, str>,
    retry_after: Option<Duration>,
    source: Option<SharedSource>,
    sent: Option<Arc<[String]>>,
}

impl DeliveryError {
    /// An error of `kind` with a human-readable detail.
    pub fn new(kind: DeliveryErrorKind, detail: impl Into<Cow<'static, str>>) -> Self {
        DeliveryError {
            kind,
            detail: detail.into(),
            retry_after: None,
            source: None,
            sent: None,
        }
    }

    /// A temporary failure.
    pub fn retryable(detail: impl Into<Cow<'static, str>>) -> Self {
        DeliveryError::new(DeliveryErrorKind::Retryable, detail)
    }

    /// The messaging window is closed.
    pub fn window_closed(detail: impl Into<Cow<'static, str>>) -> Self {
        DeliveryError::new(DeliveryErrorKind::WindowClosed, detail)
    }

    /// The recipient cannot be reached on this transport.
    pub fn unreachable(detail: impl Into<Cow<'static, str>>) -> Self {
        DeliveryError::new(DeliveryErrorKind::Unreachable, detail)
    }

    /// The message cannot be rendered by this transport.
    pub fn invalid_message(detail: impl Into<Cow<'static, str>>) -> Self {
        DeliveryError::new(DeliveryErrorKind::InvalidMessage, detail)
    }

    /// The transport's credentials were refused.
    pub fn unauthorized(detail: impl Into<Cow<'static, str>>) -> Self {
        DeliveryError::new(DeliveryErrorKind::Unauthorized, detail)
    }

    /// Any other failure.
    pub fn other(detail: impl Into<Cow<'static, str>>) -> Self {
        DeliveryError::new(DeliveryErrorKind::Other, detail)
    }

    /// Sets how long to wait before retrying.
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Keeps the transport's own error as the `source()`.
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// Records the transport's ids of what did go out before the failure (the first parts of
    /// a message the transport split).
    pub fn with_sent_ids(mut self, ids: Vec<String>) -> Self {
        self.sent = (!ids.is_empty()).then(|| ids.into());
        self
    }

    /// The transport's ids of what went out before the failure; empty if nothing did.
    pub fn sent_ids(&self) -> &[String] {
        self.sent.as_deref().unwrap_or_default()
    }

    /// The kind of failure.
    pub fn kind(&self) -> DeliveryErrorKind {
        self.kind
    }

    /// What went wrong, in words.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// How long the transport asked to wait before a retry, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Whether the same send may succeed if retried later.
    pub fn is_retryable(&self) -> bool {
        self.kind == DeliveryErrorKind::Retryable
    }

    /// Whether trying the next transport makes sense: this one cannot reach the recipient
    /// ([`Unreachable`](DeliveryErrorKind::Unreachable)) or not now
    /// ([`WindowClosed`](DeliveryErrorKind::WindowClosed)).
    pub fn allows_fallback(&self) -> bool {
        matches!(
            self.kind,
            DeliveryErrorKind::Unreachable | DeliveryErrorKind::WindowClosed
        )
    }
}

impl fmt::Debug for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("DeliveryError");
        d.field("kind", &self.kind).field("detail", &self.detail);
        if let Some(after) = self.retry_after {
            d.field("retry_after", &after);
        }
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        if let Some(sent) = &self.sent {
            d.field("sent", sent);
        }
        d.finish()
    }
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() {
            f.write_str(self.kind.describe())
        } else {
            write!(f, "{}: {}", self.kind.describe(), self.detail)
        }
    }
}

impl StdError for DeliveryError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

/// One way of reaching contacts: Messenger, e-mail, SMS, ...
///
/// Implementations are shared as `Arc<dyn Transport>` ([`SharedTransport`]). `send` delivers one
/// message to one address of the transport's channel and reports either a [`Receipt`] or a
/// classified [`DeliveryError`]. A transport checks what it can before any network call and
/// refuses an address of another channel with [`DeliveryErrorKind::InvalidMessage`].
#[async_trait]
pub trait Transport: Send + Sync {
    /// The channel this transport serves.
    fn channel(&self) -> &Channel;

    /// What this transport can render.
    fn capabilities(&self) -> Capabilities;

    /// Sends `message` to `to`.
    async fn send(
        &self,
        to: &Address,
        message: &Message,
        ctx: &SendContext,
    ) -> Result<Receipt, DeliveryError>;
}

/// A transport shared across tasks and services.
pub type SharedTransport = Arc<dyn Transport>;

#[async_trait]
impl<T: Transport + ?Sized> Transport for Arc<T> {
    fn channel(&self) -> &Channel {
        (**self).channel()
    }

    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }

    async fn send(
        &self,
        to: &Address,
        message: &Message,
        ctx: &SendContext,
    ) -> Result<Receipt, DeliveryError> {
        (**self).send(to, message, ctx).await
    }
}

/// Refuses an address of another channel than `channel`, for transport implementations.
pub fn ensure_channel(channel: &Channel, to: &Address) -> Result<(), DeliveryError> {
    if to.channel() == channel {
        Ok(())
    } else {
        Err(DeliveryError::invalid_message(format!(
            "a {channel} transport cannot send to a {} address",
            to.channel()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn _object_safe(_: &dyn Transport) {}

    fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}

    #[test]
    fn delivery_error_is_cheap_to_pass_around() {
        assert_send_sync_clone::<DeliveryError>();
        assert!(std::mem::size_of::<DeliveryError>() <= 80);
    }

    #[test]
    fn only_unreachable_and_window_closed_allow_fallback() {
        use DeliveryErrorKind::*;
        for kind in [
            Retryable,
            WindowClosed,
            Unreachable,
            InvalidMessage,
            Unauthorized,
            Other,
        ] {
            let e = DeliveryError::new(kind, "x");
            assert_eq!(
                e.allows_fallback(),
                matches!(kind, WindowClosed | Unreachable)
            );
            assert_eq!(e.is_retryable(), kind == Retryable);
        }
    }

    #[test]
    fn source_is_kept_and_not_repeated_in_display() {
        let e = DeliveryError::unauthorized("token expired")
            .with_source(std::io::Error::other("Graph code 190"));
        assert_eq!(e.to_string(), "transport unauthorized: token expired");
        assert_eq!(
            e.source().map(ToString::to_string).as_deref(),
            Some("Graph code 190")
        );
        assert!(format!("{e:?}").contains("Graph code 190"));
    }

    #[test]
    fn capabilities_refuse_what_does_not_fit() {
        let caps = Capabilities::text_only().with_choices(3, Some(20));
        let ok = Message::builder("q").choice("Yes", "Y").build().unwrap();
        assert!(caps.check(&ok).is_ok());
        let four = (0..4)
            .fold(Message::builder("q"), |b, i| {
                b.choice(format!("c{i}"), format!("p{i}"))
            })
            .build()
            .unwrap();
        assert_eq!(
            caps.check(&four).map_err(|e| e.kind()),
            Err(DeliveryErrorKind::InvalidMessage)
        );
        let long = Message::builder("q")
            .choice("x".repeat(21), "P")
            .build()
            .unwrap();
        assert!(caps.check(&long).is_err());
        let exact = Message::builder("q")
            .choice("é".repeat(20), "P")
            .build()
            .unwrap();
        assert!(
            caps.check(&exact).is_ok(),
            "labels are counted in characters, not bytes"
        );

        let as_buttons = |n: usize| {
            (0..n)
                .fold(
                    Message::builder("q").style(crate::message::ChoiceStyle::Buttons),
                    |b, i| b.choice(format!("c{i}"), format!("p{i}")),
                )
                .build()
                .unwrap()
        };
        assert!(
            caps.check(&as_buttons(1)).is_err(),
            "no buttons on this transport"
        );
        let with_buttons = Capabilities::text_only()
            .with_choices(13, Some(20))
            .with_buttons(3);
        assert!(with_buttons.check(&as_buttons(3)).is_ok());
        assert!(
            with_buttons.check(&as_buttons(4)).is_err(),
            "13 quick replies but only 3 buttons"
        );
    }

    #[test]
    fn ensure_channel_refuses_foreign_addresses() {
        let fb = Address::messenger("p", "u").unwrap();
        assert!(ensure_channel(&Channel::Messenger, &fb).is_ok());
        assert_eq!(
            ensure_channel(&Channel::Email, &fb).map_err(|e| e.kind()),
            Err(DeliveryErrorKind::InvalidMessage)
        );
    }
}
