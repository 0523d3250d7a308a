//! What goes out ([`Message`]) and what comes in ([`Inbound`]), in channel-neutral terms.
//!
//! A [`Message`] is text plus up to [`Message::MAX_CHOICES`] answer [`Choice`]s and some
//! [`Link`]s. Each transport renders it as it can (Messenger: quick replies or a button
//! template) and refuses what it cannot render; see
//! [`Capabilities`](crate::transport::Capabilities).
//!
//! ```
//! use tidings::message::{ChoiceStyle, Message};
//!
//! let question = Message::builder("Did the lesson help?")
//!     .choice("Yes", "LESSON_7_YES")
//!     .choice("Not really", "LESSON_7_NO")
//!     .style(ChoiceStyle::Buttons)
//!     .link("https://school.example/lessons/7", Some("Open lesson"))
//!     .build()?;
//! assert_eq!(question.choices().len(), 2);
//!
//! let too_many = (0..14).fold(Message::builder("Pick one"), |b, i| {
//!     b.choice(format!("Option {i}"), format!("P{i}"))
//! });
//! assert!(too_many.build().is_err());
//! # Ok::<(), tidings::message::MessageError>(())
//! ```

use serde::{Deserialize, Serialize};
use url::Url;

use crate::{
    clock::Timestamp,
    contact::{Address, Channel},
};

/// Why a message or one of its parts was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The text is empty or only whitespace.
    #[error("message text is empty")]
    EmptyText,
    /// More choices than [`Message::MAX_CHOICES`].
    #[error("{count} choices given, at most {max} are allowed")]
    TooManyChoices {
        /// How many were given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A choice label is empty.
    #[error("choice {index} has an empty label")]
    EmptyChoiceLabel {
        /// Position of the choice (0-based).
        index: usize,
    },
    /// A choice payload is empty.
    #[error("choice {index} has an empty payload")]
    EmptyChoicePayload {
        /// Position of the choice (0-based).
        index: usize,
    },
    /// Two choices share a payload, so an answer could not tell them apart.
    #[error("choices {first} and {second} have the same payload")]
    DuplicateChoicePayload {
        /// Position of the first choice.
        first: usize,
        /// Position of the second choice.
        second: usize,
    },
    /// A link is not an absolute `http` or `https` URL.
    #[error("link {url:?} is not an absolute http(s) URL")]
    InvalidLink {
        /// The link as given.
        url: String,
    },
}

/// How a transport should present the choices of a message, where it has a choice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChoiceStyle {
    /// Let the transport decide (Messenger: buttons when they fit, quick replies otherwise).
    #[default]
    Auto,
    /// Quick replies: chips under the message that disappear once one is tapped.
    QuickReplies,
    /// Buttons that stay attached to the message.
    Buttons,
}

/// One answer option: what the user sees and what comes back when they choose it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Choice {
    label: String,
    payload: String,
}

impl Choice {
    /// The text shown to the user.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The value reported back when the user picks this choice.
    pub fn payload(&self) -> &str {
        &self.payload
    }
}

/// A link carried by a message (Messenger renders it as a URL button where that fits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "LinkRepr")]
pub struct Link {
    url: Url,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    title: Option<String>,
}

#[derive(Deserialize)]
struct LinkRepr {
    url: String,
    #[serde(default)]
    title: Option<String>,
}

impl TryFrom<LinkRepr> for Link {
    type Error = MessageError;
    fn try_from(r: LinkRepr) -> Result<Self, Self::Error> {
        Link::new(&r.url, r.title)
    }
}

impl Link {
    /// Validates and builds a link: the URL must be absolute `http` or `https`.
    pub fn new(url: &str, title: Option<String>) -> Result<Self, MessageError> {
        let invalid = || MessageError::InvalidLink {
            url: url.to_owned(),
        };
        let parsed = Url::parse(url).map_err(|_| invalid())?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(invalid());
        }
        Ok(Link { url: parsed, title })
    }

    /// The target URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The title to show, if any.
    pub fn title(&self) -> Option<&str> {
        self.title.as_deref()
    }
}

/// A message to send: text, answer choices, links.
///
/// Built with [`Message::builder`] or [`Message::text`]; always valid once built (deserializing
/// runs the same checks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "MessageRepr")]
pub struct Message {
    text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    choices: Vec<Choice>,
    #[serde(default, skip_serializing_if = "is_auto")]
    style: ChoiceStyle,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    links: Vec<Link>,
}

fn is_auto(style: &ChoiceStyle) -> bool {
    *style == ChoiceStyle::Auto
}

#[derive(Deserialize)]
struct MessageRepr {
    text: String,
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    style: ChoiceStyle,
    #[serde(default)]
    links: Vec<Link>,
}

impl TryFrom<MessageRepr> for Message {
    type Error = MessageError;
    fn try_from(r: MessageRepr) -> Result<Self, Self::Error> {
        let m = Message {
            text: r.text,
            choices: r.choices,
            style: r.style,
            links: r.links,
        };
        m.validate()?;
        Ok(m)
    }
}

impl Message {
    /// The most choices a message may carry: the most any built-in transport can show
    /// (Messenger's 13 quick replies). Transports with fewer refuse the excess at send time.
    pub const MAX_CHOICES: usize = 13;

    /// A plain text message.
    pub fn text(text: impl Into<String>) -> Result<Self, MessageError> {
        Message::builder(text).build()
    }

    /// Starts building a message with the given text.
    pub fn builder(text: impl Into<String>) -> MessageBuilder {
        MessageBuilder {
            text: text.into(),
            choices: Vec::new(),
            style: ChoiceStyle::Auto,
            links: Vec::new(),
        }
    }

    /// The text.
    pub fn text_body(&self) -> &str {
        &self.text
    }

    /// The answer choices, in order.
    pub fn choices(&self) -> &[Choice] {
        &self.choices
    }

    /// How the choices should be presented.
    pub fn style(&self) -> ChoiceStyle {
        self.style
    }

    /// The links, in order.
    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// The choice whose payload is `payload`, if any.
    pub fn choice_by_payload(&self, payload: &str) -> Option<&Choice> {
        self.choices.iter().find(|c| c.payload == payload)
    }

    fn validate(&self) -> Result<(), MessageError> {
        if self.text.trim().is_empty() {
            return Err(MessageError::EmptyText);
        }
        if self.choices.len() > Self::MAX_CHOICES {
            return Err(MessageError::TooManyChoices {
                count: self.choices.len(),
                max: Self::MAX_CHOICES,
            });
        }
        for (index, c) in self.choices.iter().enumerate() {
            if c.label.trim().is_empty() {
                return Err(MessageError::EmptyChoiceLabel { index });
            }
            if c.payload.is_empty() {
                return Err(MessageError::EmptyChoicePayload { index });
            }
            if let Some(first) = self.choices[..index]
                .iter()
                .position(|p| p.payload == c.payload)
            {
                return Err(MessageError::DuplicateChoicePayload {
                    first,
                    second: index,
                });
            }
        }
        Ok(())
    }
}

/// Builds a [`Message`]; [`build`](MessageBuilder::build) checks everything at once.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct MessageBuilder {
    text: String,
    choices: Vec<Choice>,
    style: ChoiceStyle,
    links: Vec<(String, Option<String>)>,
}

impl MessageBuilder {
    /// Adds an answer choice.
    pub fn choice(mut self, label: impl Into<String>, payload: impl Into<String>) -> Self {
        self.choices.push(Choice {
            label: label.into(),
            payload: payload.into(),
        });
        self
    }

    /// Sets how choices are presented.
    pub fn style(mut self, style: ChoiceStyle) -> Self {
        self.style = style;
        self
    }

    /// Adds a link (checked by [`build`](MessageBuilder::build)).
    pub fn link(mut self, url: impl Into<String>, title: Option<&str>) -> Self {
        self.links.push((url.into(), title.map(str::to_owned)));
        self
    }

    /// Checks and builds the message.
    pub fn build(self) -> Result<Message, MessageError> {
        let links = self
            .links
            .into_iter()
            .map(|(url, title)| Link::new(&url, title))
            .collect::<Result<Vec<_>, _>>()?;
        let m = Message {
            text: self.text,
            choices: self.choices,
            style: self.style,
            links,
        };
        m.validate()?;
        Ok(m)
    }
}

/// The kind of an attachment a user sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AttachmentKind {
    /// A picture.
    Image,
    /// A sticker (Messenger: the `sticker` type, or an image that carries a `sticker_id`,
    /// such as the thumbs-up).
    Sticker,
    /// A sound recording.
    Audio,
    /// A video.
    Video,
    /// Any other file.
    File,
    /// A shared location.
    Location,
    /// A kind the crate does not know, with the transport's name for it.
    Other(String),
}

/// A reference to something a user sent (the crate never downloads it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Attachment {
    /// What it is.
    pub kind: AttachmentKind,
    /// Where the transport serves it, if it gave a URL (Messenger's URLs expire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl Attachment {
    /// An attachment of `kind` at `url`.
    pub fn new(kind: AttachmentKind, url: Option<String>) -> Self {
        Attachment { kind, url }
    }
}

/// The reference an inbound referral carries: often a signed connect token, so `Debug` shows
/// only its length.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Reference(String);

impl Reference {
    /// Wraps a reference.
    pub fn new(text: impl Into<String>) -> Self {
        Reference(text.into())
    }

    /// The reference text.
    ///
    /// # Security Warning
    ///
    /// It may be a bearer token: verify it, do not log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reference([redacted, {} bytes])", self.0.len())
    }
}

/// What an inbound event says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum InboundKind {
    /// The user wrote text.
    Text {
        /// The transport's id of the message.
        message_id: String,
        /// What they wrote.
        text: String,
    },
    /// The user picked one of the choices of an earlier message.
    Answer {
        /// The transport's id of the answering message, if it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_id: Option<String>,
        /// The payload of the chosen [`Choice`].
        payload: String,
        /// The text shown for the choice, if the transport reports it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    /// The user arrived through a link that carries a reference (an m.me `ref`).
    Referral {
        /// The reference carried by the link.
        #[serde(rename = "ref")]
        reference: Reference,
        /// Where the link was (Messenger: `SHORTLINK`, `ADS`, ...), if reported.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
    },
    /// The user sent attachments, possibly with text.
    Attachments {
        /// The transport's id of the message.
        message_id: String,
        /// Text sent along, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// The attachments.
        attachments: Vec<Attachment>,
    },
    /// Messages sent to the user were delivered.
    Delivered {
        /// The transport's ids of the delivered messages, where it lists them.
        #[serde(default)]
        message_ids: Vec<String>,
        /// Everything sent before this time was delivered, where the transport says so.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        watermark: Option<Timestamp>,
    },
    /// The user read messages: everything sent before `watermark`, or the one message
    /// `message_id` (the shape some transports use instead), or both.
    Read {
        /// Everything sent before this time was read, where the transport says so.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        watermark: Option<Timestamp>,
        /// The message read, where the transport names one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_id: Option<String>,
    },
    /// The user reacted to a message (theirs or one sent to them), or took a reaction back.
    Reaction {
        /// The transport's id of the message reacted to.
        message_id: String,
        /// Added or taken back.
        action: ReactionAction,
        /// The emoji, where the transport reports it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        emoji: Option<String>,
        /// The transport's name of the reaction (Messenger: `love`, `like`, ...), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// The user edited a message they sent.
    Edit {
        /// The transport's id of the edited message.
        message_id: String,
        /// The text as it reads now.
        text: String,
        /// Which edit this is (1 for the first), as the transport counts them.
        edit_count: u32,
    },
    /// The user opted in: through a plugin (a reference, a plugin user ref) or to a stream of
    /// notifications the business may send later (Messenger's Marketing Messages).
    OptIn {
        /// The plugin's reference (`data-ref`), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// The plugin's user reference, when the person is known only through it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_ref: Option<String>,
        /// The notification subscription, for an opt-in to notifications.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        notifications: Option<Box<NotificationOptIn>>,
    },
    /// Who may answer the conversation changed (Messenger's thread control): the Hub never
    /// answers a conversation another app owns.
    ThreadControl {
        /// What happened.
        change: ThreadChange,
        /// The app that owns the conversation now (or asks for it), where given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        new_owner: Option<String>,
        /// The app that owned it before, where given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_owner: Option<String>,
        /// Metadata passed with the change.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metadata: Option<String>,
    },
    /// A message the business side sent, seen through the transport (Messenger "echoes"):
    /// our own sends, or a human replying from another tool such as the Page Inbox.
    Echo {
        /// The transport's id of the message.
        message_id: String,
        /// Its text, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// The id of the app that sent it, where the transport reports it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        app_id: Option<String>,
    },
    /// An event the crate does not interpret, kept so that nothing is silently lost.
    Unknown {
        /// The transport's name for the event kind.
        kind: String,
        /// The event's content as the transport sent it (Messenger: the JSON value of the
        /// event's kind field), for the host to store or interpret.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        raw: Option<String>,
    },
}

impl InboundKind {
    /// An [`InboundKind::Unknown`] of `kind` without content.
    pub fn unknown(kind: impl Into<String>) -> Self {
        InboundKind::Unknown {
            kind: kind.into(),
            raw: None,
        }
    }
}

/// Whether a reaction was added or taken back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReactionAction {
    /// Added (or changed).
    React,
    /// Taken back.
    Unreact,
}

/// A change of who owns a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ThreadChange {
    /// Control was passed from one app to another.
    Passed,
    /// An app took control.
    Taken,
    /// An app asked for control.
    Requested,
}

/// An opt-in to notifications the business may send later, outside the messaging window
/// (Messenger's Marketing Messages). The token addresses the person for those sends.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NotificationOptIn {
    /// The token that addresses the person for these notifications. It lets anyone holding
    /// it message the person: never logged, redacted in `Debug`.
    pub token: String,
    /// How often the person agreed to hear (Messenger: `DAILY`, `WEEKLY`, `MONTHLY`), if
    /// given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency: Option<String>,
    /// The person's time zone, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// When the token expires, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// The subscription's status as the transport says it (Messenger:
    /// `STOP_NOTIFICATIONS`, `RESUME_NOTIFICATIONS`), if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The token's status as the transport says it, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_status: Option<String>,
    /// The topic the person opted in to (the request's title), if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// The payload of the request message, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
}

impl NotificationOptIn {
    /// An opt-in with `token` and nothing else known.
    pub fn new(token: impl Into<String>) -> Self {
        NotificationOptIn {
            token: token.into(),
            frequency: None,
            timezone: None,
            expires_at: None,
            status: None,
            token_status: None,
            topic: None,
            payload: None,
        }
    }

    /// Whether the person stopped these notifications.
    pub fn is_stopped(&self) -> bool {
        self.status.as_deref().is_some_and(|s| {
            s.replace(' ', "_")
                .eq_ignore_ascii_case("STOP_NOTIFICATIONS")
        })
    }
}

impl std::fmt::Debug for NotificationOptIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationOptIn")
            .field("token", &"[redacted]")
            .field("frequency", &self.frequency)
            .field("timezone", &self.timezone)
            .field("expires_at", &self.expires_at)
            .field("status", &self.status)
            .field("token_status", &self.token_status)
            .field("topic", &self.topic)
            .field("payload", &self.payload)
            .finish()
    }
}

/// An event from a transport: who, when, and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Inbound {
    /// A key unique to this event within its transport, used to drop redeliveries.
    pub key: String,
    /// Who it came from.
    pub from: Address,
    /// When the transport says it happened.
    pub at: Timestamp,
    /// What happened.
    pub kind: InboundKind,
    /// Whether the conversation belongs to another app at the moment (Messenger's handover
    /// protocol delivers such events as "standby"): record it, do not answer it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub standby: bool,
}

impl Inbound {
    /// An inbound event.
    pub fn new(key: impl Into<String>, from: Address, at: Timestamp, kind: InboundKind) -> Self {
        Inbound {
            key: key.into(),
            from,
            at,
            kind,
            standby: false,
        }
    }

    /// Marks the event as observed on a conversation another app owns.
    pub fn with_standby(mut self, standby: bool) -> Self {
        self.standby = standby;
        self
    }

    /// The channel the event came by.
    pub fn channel(&self) -> &Channel {
        self.from.channel()
    }

    /// Whether the user wrote or chose something (as opposed to a receipt or an unknown event).
    pub fn is_user_message(&self) -> bool {
        matches!(
            self.kind,
            InboundKind::Text { .. } | InboundKind::Answer { .. } | InboundKind::Attachments { .. }
        )
    }
}

/// Proof that a transport accepted a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Receipt {
    /// The channel that carried it.
    pub channel: Channel,
    /// The transport's ids of what was sent, in order (a long text may go as several messages).
    pub message_ids: Vec<String>,
    /// When the transport accepted it.
    pub at: Timestamp,
}

impl Receipt {
    /// A receipt for messages accepted on `channel` at `at`.
    pub fn new(channel: Channel, message_ids: Vec<String>, at: Timestamp) -> Self {
        Receipt {
            channel,
            message_ids,
            at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_validates_every_part() {
        assert_eq!(Message::text("  "), Err(MessageError::EmptyText));
        assert_eq!(
            Message::builder("q").choice("", "P").build(),
            Err(MessageError::EmptyChoiceLabel { index: 0 })
        );
        assert_eq!(
            Message::builder("q")
                .choice("a", "P")
                .choice("b", "")
                .build(),
            Err(MessageError::EmptyChoicePayload { index: 1 })
        );
        assert_eq!(
            Message::builder("q")
                .choice("a", "P")
                .choice("b", "P")
                .build(),
            Err(MessageError::DuplicateChoicePayload {
                first: 0,
                second: 1
            })
        );
        for bad in [
            "not a url",
            "ftp://x.example/f",
            "/relative",
            "mailto:a@b.c",
        ] {
            assert!(
                matches!(
                    Message::builder("q").link(bad, None).build(),
                    Err(MessageError::InvalidLink { .. })
                ),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn the_choice_limit_is_inclusive() {
        let build = |n: usize| {
            (0..n)
                .fold(Message::builder("q"), |b, i| {
                    b.choice(format!("c{i}"), format!("p{i}"))
                })
                .build()
        };
        assert_eq!(
            build(Message::MAX_CHOICES).map(|m| m.choices().len()),
            Ok(13)
        );
        assert_eq!(
            build(Message::MAX_CHOICES + 1),
            Err(MessageError::TooManyChoices { count: 14, max: 13 })
        );
    }

    #[test]
    fn message_round_trips_and_deserialization_validates() {
        let m = Message::builder("Hello")
            .choice("Yes", "Y")
            .style(ChoiceStyle::QuickReplies)
            .link("https://example.org/a", Some("A"))
            .build()
            .unwrap();
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Message>(&json).unwrap(), m);
        assert_eq!(m.choice_by_payload("Y").map(Choice::label), Some("Yes"));

        assert!(serde_json::from_str::<Message>(r#"{"text":""}"#).is_err());
        assert!(
            serde_json::from_str::<Message>(r#"{"text":"q","links":[{"url":"ftp://x.y/z"}]}"#)
                .is_err()
        );
        let dup =
            r#"{"text":"q","choices":[{"label":"a","payload":"p"},{"label":"b","payload":"p"}]}"#;
        assert!(serde_json::from_str::<Message>(dup).is_err());
    }

    #[test]
    fn inbound_serializes_with_a_type_tag() {
        let from = Address::messenger("p", "u").unwrap();
        let ev = Inbound::new(
            "m_1",
            from,
            Timestamp::from_millis(5),
            InboundKind::Referral {
                reference: Reference::new("abc"),
                source: Some("SHORTLINK".into()),
            },
        );
        assert!(!format!("{ev:?}").contains("\"abc\""), "refs never print");
        let json = serde_json::to_value(&ev).unwrap();
        assert_eq!(json["kind"]["type"], "referral");
        assert_eq!(json["kind"]["ref"], "abc");
        assert_eq!(serde_json::from_value::<Inbound>(json).unwrap(), ev);
        assert!(!ev.is_user_message());
    }
}
