//! The typed model of Messenger webhook bodies.
//!
//! Forward compatible by construction: unknown fields are ignored, an unknown event kind
//! becomes [`EventKind::Unknown`] with its field name and raw JSON (never an error),
//! ids stay strings (an `app_id` sent as a number is read as its digits), and timestamps
//! accept numbers or strings.
//!
//! ```
//! use tidings::messenger::event::{EventKind, WebhookBody};
//!
//! let body = br#"{"object":"page","entry":[{"id":"1","time":1718000000123,"messaging":[
//!   {"sender":{"id":"2"},"recipient":{"id":"1"},"timestamp":"1718000000001",
//!    "message":{"mid":"m_1","text":"hi"}},
//!   {"sender":{"id":"2"},"recipient":{"id":"1"},"timestamp":1718000000002,"brand_new_event":{"x":1}}
//! ]}]}"#;
//! let parsed: WebhookBody = serde_json::from_slice(body)?;
//! let events = &parsed.entry[0].messaging;
//! assert!(matches!(&events[0].kind, EventKind::Message(m) if m.text.as_deref() == Some("hi")));
//! assert!(matches!(&events[1].kind, EventKind::Unknown { name, raw: Some(raw) }
//!     if name == "brand_new_event" && *raw == r#"{"x":1}"#));
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::{borrow::Cow, fmt};

use serde::{
    Deserialize, Deserializer,
    de::{self, IgnoredAny, MapAccess, Visitor},
};
use serde_json::value::RawValue;

use crate::clock::Timestamp;

/// A webhook body: `{"object": "page", "entry": [...]}`.
///
/// Strings borrow from the body where they can (no JSON escapes in them), so parsing copies
/// nothing that a caller does not keep. Parse with `serde_json::from_slice` /
/// `serde_json::from_str` over a body that outlives the result.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct WebhookBody<'a> {
    /// The subscribed object (`"page"` for Messenger).
    #[serde(borrow)]
    pub object: Cow<'a, str>,
    /// The entries, one or more per Page.
    #[serde(default, borrow)]
    pub entry: Vec<Entry<'a>>,
}

/// One entry of a batch: events of one Page.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Entry<'a> {
    /// The Page id.
    #[serde(borrow, deserialize_with = "id")]
    pub id: Cow<'a, str>,
    /// When Meta sent the entry.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub time: Option<Timestamp>,
    /// Events of threads this app owns.
    #[serde(default, borrow)]
    pub messaging: Vec<Event<'a>>,
    /// Events of threads another app owns (handover protocol): read-only for this app.
    #[serde(default, borrow)]
    pub standby: Vec<Event<'a>>,
}

/// A party of an event: a page-scoped id, or a `user_ref` (checkbox plugin).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Party<'a> {
    /// The PSID (or the Page id).
    #[serde(default, borrow, deserialize_with = "opt_id")]
    pub id: Option<Cow<'a, str>>,
    /// A `user_ref`, for people known only through a plugin.
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub user_ref: Option<Cow<'a, str>>,
}

/// One event.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Event<'a> {
    /// Who sent it (the Page for echoes).
    pub sender: Party<'a>,
    /// Who received it.
    pub recipient: Party<'a>,
    /// When it happened.
    pub timestamp: Option<Timestamp>,
    /// What it is.
    pub kind: EventKind<'a>,
}

/// What an event is.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EventKind<'a> {
    /// A message (`is_echo` set for messages the Page sent). Boxed, like the other large
    /// variants, so an event stays small while it moves through parsing.
    Message(Box<MessageEvent<'a>>),
    /// A postback button, Get Started, or persistent menu tap.
    Postback(Postback<'a>),
    /// An m.me link, ad or code opened on an existing thread.
    Referral(Referral<'a>),
    /// An opt-in (plugins, notification requests).
    OptIn(OptIn<'a>),
    /// Messages delivered.
    Delivery(Delivery<'a>),
    /// Messages read.
    Read(Read<'a>),
    /// A reaction added or removed.
    Reaction(Reaction<'a>),
    /// A message edited by its sender.
    MessageEdit(MessageEdit<'a>),
    /// A thread-control change (handover protocol).
    Handover(Handover<'a>),
    /// The roles of apps on the Page changed (no person: a Page notice).
    AppRoles(Vec<(Cow<'a, str>, Vec<Cow<'a, str>>)>),
    /// Meta's policy enforcement blocked or unblocked the Page (no person: a Page notice).
    PolicyEnforcement(PolicyEnforcement<'a>),
    /// An event kind this crate does not interpret (account linking, game plays, payments,
    /// and kinds Meta adds later), by its field name, with the JSON value of that field.
    Unknown {
        /// The field name (`empty` for an event with no kind field at all).
        name: Cow<'a, str>,
        /// The JSON value of the field, as sent.
        raw: Option<&'a str>,
    },
}

impl EventKind<'_> {
    /// The webhook field name of this kind.
    pub fn name(&self) -> &str {
        match self {
            EventKind::Message(m) if m.is_echo => "message_echo",
            EventKind::Message(_) => "message",
            EventKind::Postback(_) => "postback",
            EventKind::Referral(_) => "referral",
            EventKind::OptIn(_) => "optin",
            EventKind::Delivery(_) => "delivery",
            EventKind::Read(_) => "read",
            EventKind::Reaction(_) => "reaction",
            EventKind::MessageEdit(_) => "message_edit",
            EventKind::Handover(h) => h.kind.as_str(),
            EventKind::AppRoles(_) => "app_roles",
            EventKind::PolicyEnforcement(_) => "policy_enforcement",
            EventKind::Unknown { name, .. } => name,
        }
    }
}

/// A message, or an echo of one the Page sent.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct MessageEvent<'a> {
    /// The message id.
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub mid: Option<Cow<'a, str>>,
    /// The text.
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub text: Option<Cow<'a, str>>,
    /// The quick reply tapped, if any.
    #[serde(default, borrow)]
    pub quick_reply: Option<QuickReplyPayload<'a>>,
    /// The message this one replies to.
    #[serde(default, borrow)]
    pub reply_to: Option<ReplyTo<'a>>,
    /// Attachments.
    #[serde(default, borrow)]
    pub attachments: Vec<AttachmentEvent<'a>>,
    /// Whether the Page sent it (an echo).
    #[serde(default)]
    pub is_echo: bool,
    /// For echoes: the app that sent it (Page Inbox is 263902037430900).
    #[serde(default, borrow, deserialize_with = "opt_id")]
    pub app_id: Option<Cow<'a, str>>,
    /// For echoes: the metadata the sender attached.
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub metadata: Option<Cow<'a, str>>,
    /// A referral carried by the message (click-to-Messenger ads). Boxed: rare, and it would
    /// double the size of every event.
    #[serde(default, borrow)]
    pub referral: Option<Box<Referral<'a>>>,
}

/// The payload of a tapped quick reply.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct QuickReplyPayload<'a> {
    /// The payload.
    #[serde(borrow)]
    pub payload: Cow<'a, str>,
}

/// What a message replies to: another message, or a story (Instagram-style).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct ReplyTo<'a> {
    /// The id of the message replied to, if it is one.
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub mid: Option<Cow<'a, str>>,
    /// The story replied to, if it is one.
    #[serde(default, borrow)]
    pub story: Option<Story<'a>>,
}

/// A story a message replies to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Story<'a> {
    /// The story's id.
    #[serde(default, borrow, deserialize_with = "opt_id")]
    pub id: Option<Cow<'a, str>>,
    /// Where it is served (these URLs expire).
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub url: Option<Cow<'a, str>>,
}

/// An attachment of a message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct AttachmentEvent<'a> {
    /// `image`, `audio`, `video`, `file`, `location`, `fallback`, `template`, `reel`, ...
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    /// The payload (absent on some `fallback` attachments).
    #[serde(default, borrow)]
    pub payload: Option<AttachmentPayload<'a>>,
}

/// The payload of an attachment.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct AttachmentPayload<'a> {
    /// Where the file is served (these URLs expire).
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub url: Option<Cow<'a, str>>,
    /// Set when an image is a sticker.
    #[serde(default, borrow, deserialize_with = "opt_id")]
    pub sticker_id: Option<Cow<'a, str>>,
    /// A title, for some kinds.
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub title: Option<Cow<'a, str>>,
}

/// A postback.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Postback<'a> {
    /// The id of the postback (since Graph v11.0).
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub mid: Option<Cow<'a, str>>,
    /// The title of the button tapped.
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub title: Option<Cow<'a, str>>,
    /// The payload of the button.
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub payload: Option<Cow<'a, str>>,
    /// The m.me referral, when Get Started was tapped on a new thread opened from a link.
    #[serde(default, borrow)]
    pub referral: Option<Box<Referral<'a>>>,
}

/// A referral: the `ref` of an m.me link, an ad, or a code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Referral<'a> {
    /// The `ref` parameter.
    #[serde(default, rename = "ref", borrow, deserialize_with = "opt_str")]
    pub reference: Option<Cow<'a, str>>,
    /// `SHORTLINK`, `ADS`, `MESSENGER_CODE`, ... (an open set).
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub source: Option<Cow<'a, str>>,
    /// `OPEN_THREAD`.
    #[serde(default, rename = "type", borrow, deserialize_with = "opt_str")]
    pub kind: Option<Cow<'a, str>>,
    /// The page the link was on, for chat plugins.
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub referer_uri: Option<Cow<'a, str>>,
    /// The ad, for ad referrals.
    #[serde(default, borrow, deserialize_with = "opt_id")]
    pub ad_id: Option<Cow<'a, str>>,
}

/// An opt-in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct OptIn<'a> {
    /// The plugin's `data-ref`.
    #[serde(default, rename = "ref", borrow, deserialize_with = "opt_str")]
    pub reference: Option<Cow<'a, str>>,
    /// The checkbox plugin's `user_ref`.
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub user_ref: Option<Cow<'a, str>>,
    /// The kind of opt-in (`notification_messages`, ...).
    #[serde(default, rename = "type", borrow, deserialize_with = "opt_str")]
    pub kind: Option<Cow<'a, str>>,
    /// The opt-in's payload.
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub payload: Option<Cow<'a, str>>,
    /// A token to message the person later (marketing messages).
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub notification_messages_token: Option<Cow<'a, str>>,
    /// How often the person agreed to hear (`DAILY`, `WEEKLY`, `MONTHLY`).
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub notification_messages_frequency: Option<Cow<'a, str>>,
    /// The person's time zone.
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub notification_messages_timezone: Option<Cow<'a, str>>,
    /// `STOP_NOTIFICATIONS` or `RESUME_NOTIFICATIONS` (Meta has written both with a space).
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub notification_messages_status: Option<Cow<'a, str>>,
    /// When the token expires.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub token_expiry_timestamp: Option<Timestamp>,
    /// The token's status.
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub user_token_status: Option<Cow<'a, str>>,
    /// The topic of the opt-in request.
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub title: Option<Cow<'a, str>>,
}

/// Delivered messages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Delivery<'a> {
    /// The delivered message ids, where listed.
    #[serde(default, borrow, deserialize_with = "strs")]
    pub mids: Vec<Cow<'a, str>>,
    /// Everything sent before this time was delivered.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub watermark: Option<Timestamp>,
}

/// Read messages: a watermark (Messenger), or the one message read (the Instagram-style
/// shape, also seen on Messenger).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Read<'a> {
    /// Everything sent before this time was read.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub watermark: Option<Timestamp>,
    /// The message read.
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub mid: Option<Cow<'a, str>>,
}

/// An edit of a message by its sender.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct MessageEdit<'a> {
    /// The edited message.
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub mid: Option<Cow<'a, str>>,
    /// Its text now.
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub text: Option<Cow<'a, str>>,
    /// Which edit this is (Meta allows 5).
    #[serde(default)]
    pub num_edit: Option<u32>,
}

/// A policy-enforcement notice about the Page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct PolicyEnforcement<'a> {
    /// `block` or `unblock`.
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub action: Option<Cow<'a, str>>,
    /// Meta's reason.
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub reason: Option<Cow<'a, str>>,
}

/// A reaction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Reaction<'a> {
    /// The message reacted to.
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub mid: Option<Cow<'a, str>>,
    /// `react` or `unreact`.
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub action: Option<Cow<'a, str>>,
    /// The reaction's name (`love`, `like`, ...).
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub reaction: Option<Cow<'a, str>>,
    /// The emoji.
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub emoji: Option<Cow<'a, str>>,
}

/// Which thread-control change happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HandoverKind {
    /// Another app passed the thread to this one (or this one passed it away).
    PassThreadControl,
    /// The primary receiver took the thread.
    TakeThreadControl,
    /// A secondary receiver asked for the thread.
    RequestThreadControl,
}

impl HandoverKind {
    /// The webhook field name.
    pub fn as_str(self) -> &'static str {
        match self {
            HandoverKind::PassThreadControl => "pass_thread_control",
            HandoverKind::TakeThreadControl => "take_thread_control",
            HandoverKind::RequestThreadControl => "request_thread_control",
        }
    }
}

/// A thread-control change.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Handover<'a> {
    /// Which change.
    pub kind: HandoverKind,
    /// The app that owns the thread now, where given.
    pub new_owner_app_id: Option<Cow<'a, str>>,
    /// The app that owned it before, where given.
    pub previous_owner_app_id: Option<Cow<'a, str>>,
    /// Metadata passed with the change.
    pub metadata: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct HandoverRepr<'a> {
    #[serde(default, borrow, deserialize_with = "opt_id")]
    new_owner_app_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "opt_id")]
    previous_owner_app_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "opt_id")]
    requested_owner_app_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "opt_str")]
    metadata: Option<Cow<'a, str>>,
}

enum Field<'a> {
    Sender,
    Recipient,
    Timestamp,
    Message,
    Postback,
    Referral,
    OptIn,
    Delivery,
    Read,
    Reaction,
    MessageEdit,
    Handover(HandoverKind),
    AppRoles,
    PolicyEnforcement,
    Other(Cow<'a, str>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for FieldVisitor<'a> {
            type Value = Field<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Field<'a>, E> {
                Ok(Field::known(v).unwrap_or(Field::Other(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field<'a>, E> {
                Ok(Field::known(v).unwrap_or_else(|| Field::Other(Cow::Owned(v.to_owned()))))
            }
        }
        d.deserialize_identifier(FieldVisitor(std::marker::PhantomData))
    }
}

impl Field<'_> {
    /// The field of a known name.
    fn known(name: &str) -> Option<Self> {
        Some(match name {
            "sender" => Field::Sender,
            "recipient" => Field::Recipient,
            "timestamp" => Field::Timestamp,
            "message" => Field::Message,
            "postback" => Field::Postback,
            "referral" => Field::Referral,
            "optin" => Field::OptIn,
            "delivery" => Field::Delivery,
            "read" => Field::Read,
            "reaction" => Field::Reaction,
            "pass_thread_control" => Field::Handover(HandoverKind::PassThreadControl),
            "take_thread_control" => Field::Handover(HandoverKind::TakeThreadControl),
            "request_thread_control" => Field::Handover(HandoverKind::RequestThreadControl),
            "message_edit" => Field::MessageEdit,
            "app_roles" => Field::AppRoles,
            "policy_enforcement" => Field::PolicyEnforcement,
            _ => return None,
        })
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Event<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EventVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for EventVisitor<'a> {
            type Value = Event<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Messenger webhook event")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event<'a>, A::Error> {
                let mut sender = None;
                let mut recipient = None;
                let mut timestamp = None;
                let mut kind = None;
                let mut unknown = None;
                while let Some(field) = map.next_key::<Field<'a>>()? {
                    let k = match field {
                        Field::Sender => {
                            sender = Some(map.next_value()?);
                            continue;
                        }
                        Field::Recipient => {
                            recipient = Some(map.next_value()?);
                            continue;
                        }
                        Field::Timestamp => {
                            timestamp = map.next_value::<TimestampValue>()?.0;
                            continue;
                        }
                        Field::Message => EventKind::Message(Box::new(map.next_value()?)),
                        Field::Postback => EventKind::Postback(map.next_value()?),
                        Field::Referral => EventKind::Referral(map.next_value()?),
                        Field::OptIn => EventKind::OptIn(map.next_value()?),
                        Field::Delivery => EventKind::Delivery(map.next_value()?),
                        Field::Read => EventKind::Read(map.next_value()?),
                        Field::Reaction => EventKind::Reaction(map.next_value()?),
                        Field::MessageEdit => EventKind::MessageEdit(map.next_value()?),
                        Field::PolicyEnforcement => EventKind::PolicyEnforcement(map.next_value()?),
                        Field::AppRoles => {
                            EventKind::AppRoles(map.next_value::<AppRolesRepr<'a>>()?.0)
                        }
                        Field::Handover(kind) => {
                            let r: HandoverRepr<'a> = map.next_value()?;
                            EventKind::Handover(Handover {
                                kind,
                                new_owner_app_id: r.new_owner_app_id.or(r.requested_owner_app_id),
                                previous_owner_app_id: r.previous_owner_app_id,
                                metadata: r.metadata,
                            })
                        }
                        Field::Other(name) => {
                            if unknown.is_some() || kind.is_some() {
                                map.next_value::<IgnoredAny>()?;
                            } else {
                                let raw = map.next_value::<&'a RawValue>()?;
                                unknown = Some((name, raw.get()));
                            }
                            continue;
                        }
                    };
                    // The first known kind wins; a second one would be a new shape we do not read.
                    kind.get_or_insert(k);
                }
                Ok(Event {
                    sender: sender.unwrap_or_default(),
                    recipient: recipient.unwrap_or_default(),
                    timestamp,
                    kind: kind.unwrap_or(match unknown {
                        Some((name, raw)) => EventKind::Unknown {
                            name,
                            raw: Some(raw),
                        },
                        None => EventKind::Unknown {
                            name: Cow::Borrowed("empty"),
                            raw: None,
                        },
                    }),
                })
            }
        }
        d.deserialize_map(EventVisitor(std::marker::PhantomData))
    }
}

/// `{"<app id>": ["primary_receiver", ...], ...}`.
struct AppRolesRepr<'a>(Vec<(Cow<'a, str>, Vec<Cow<'a, str>>)>);

impl<'de: 'a, 'a> Deserialize<'de> for AppRolesRepr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RolesVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for RolesVisitor<'a> {
            type Value = AppRolesRepr<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("app ids with their roles")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut roles = Vec::new();
                while let Some(app) = map.next_key::<Str<'a>>()? {
                    let list = map.next_value::<Vec<Str<'a>>>()?;
                    roles.push((app.0, list.into_iter().map(|s| s.0).collect()));
                }
                Ok(AppRolesRepr(roles))
            }
        }
        d.deserialize_map(RolesVisitor(std::marker::PhantomData))
    }
}

/// A timestamp given as a number (milliseconds) or a string of digits; `null` is none.
pub(crate) struct TimestampValue(pub(crate) Option<Timestamp>);

impl<'de> Deserialize<'de> for TimestampValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TsVisitor;
        impl Visitor<'_> for TsVisitor {
            type Value = TimestampValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a timestamp in milliseconds, as a number or a string")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TimestampValue, E> {
                i64::try_from(v)
                    .map(|v| TimestampValue(Some(Timestamp::from_millis(v))))
                    .map_err(|_| E::custom("timestamp out of range"))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TimestampValue, E> {
                Ok(TimestampValue(Some(Timestamp::from_millis(v))))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<TimestampValue, E> {
                if v.is_finite() && v.abs() < 9.0e15 {
                    // Truncation to whole milliseconds is intended.
                    #[allow(clippy::cast_possible_truncation)]
                    Ok(TimestampValue(Some(Timestamp::from_millis(v as i64))))
                } else {
                    Err(E::custom("timestamp out of range"))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TimestampValue, E> {
                v.trim()
                    .parse::<i64>()
                    .map(|v| TimestampValue(Some(Timestamp::from_millis(v))))
                    .map_err(|_| E::custom("timestamp string is not a number"))
            }
            fn visit_unit<E: de::Error>(self) -> Result<TimestampValue, E> {
                Ok(TimestampValue(None))
            }
        }
        d.deserialize_any(TsVisitor)
    }
}

fn opt_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    Ok(TimestampValue::deserialize(d)?.0)
}

/// A required id, as a string or a number (see [`id`]).
pub(crate) struct IdValue<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for IdValue<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        id(d).map(IdValue)
    }
}

/// A string, borrowed from the body when it holds no escapes.
pub(crate) struct Str<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor { numbers: false })
            .map(|s| Str(s.unwrap_or_default()))
    }
}

/// Reads a string; with `numbers`, a number too (as its digits), and `null` as nothing.
struct StrVisitor {
    numbers: bool,
}

impl<'de> Visitor<'de> for StrVisitor {
    type Value = Option<Cow<'de, str>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.numbers {
            "an id as a string or a number"
        } else {
            "a string"
        })
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        if self.numbers {
            Ok(Some(Cow::Owned(v.to_string())))
        } else {
            Err(E::invalid_type(de::Unexpected::Unsigned(v), &self))
        }
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        if self.numbers {
            Ok(Some(Cow::Owned(v.to_string())))
        } else {
            Err(E::invalid_type(de::Unexpected::Signed(v), &self))
        }
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// An optional string, borrowed where it can be; `null` is none.
fn opt_str<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    d.deserialize_any(StrVisitor { numbers: false })
}

/// An id given as a string or a number; kept as a string, borrowed where it can be.
fn opt_id<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    d.deserialize_any(StrVisitor { numbers: true })
}

/// A required id, as a string or a number.
fn id<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Cow<'a, str>, D::Error> {
    opt_id(d)?.ok_or_else(|| de::Error::custom("id is null"))
}

/// A list of strings, each borrowed where it can be.
fn strs<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Vec<Cow<'a, str>>, D::Error> {
    Ok(Vec::<Str<'a>>::deserialize(d)?
        .into_iter()
        .map(|s| s.0)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(body: &str) -> Vec<Event<'_>> {
        let parsed: WebhookBody<'_> = serde_json::from_str(body).unwrap();
        parsed
            .entry
            .into_iter()
            .flat_map(|e| e.messaging.into_iter().chain(e.standby))
            .collect()
    }

    /// One event, parsed from a body that lives for the rest of the test run.
    fn one(event_json: &str) -> Event<'static> {
        let body = format!(
            r#"{{"object":"page","entry":[{{"id":"P","time":1,"messaging":[{event_json}]}}]}}"#
        );
        events(Box::leak(body.into_boxed_str())).remove(0)
    }

    #[test]
    fn every_event_kind_of_the_digest_parses() {
        let base = r#""sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":5"#;
        let cases = [
            (
                r#""message":{"mid":"m1","text":"hi","reply_to":{"mid":"m0"}}"#,
                "message",
            ),
            (
                r#""message":{"mid":"m1","text":"Café","quick_reply":{"payload":"Q"}}"#,
                "message",
            ),
            (
                r#""message":{"mid":"m1","attachments":[{"type":"image","payload":{"url":"https://x/y.png","sticker_id":369239263222822}},{"type":"fallback"}]}"#,
                "message",
            ),
            (
                r#""message":{"mid":"m1","is_echo":true,"app_id":263902037430900,"text":"agent"}"#,
                "message_echo",
            ),
            (
                r#""postback":{"mid":"m2","title":"Get Started","payload":"GET_STARTED","referral":{"ref":"r","source":"SHORTLINK","type":"OPEN_THREAD"}}"#,
                "postback",
            ),
            (
                r#""referral":{"ref":"r","source":"ADS","type":"OPEN_THREAD","ad_id":"123"}"#,
                "referral",
            ),
            (
                r#""optin":{"type":"notification_messages","payload":"p","notification_messages_token":"t"}"#,
                "optin",
            ),
            (r#""delivery":{"mids":["m1"],"watermark":4}"#, "delivery"),
            (r#""read":{"watermark":"4"}"#, "read"),
            (
                r#""reaction":{"mid":"m1","action":"react","reaction":"love","emoji":"❤"}"#,
                "reaction",
            ),
            (
                r#""pass_thread_control":{"new_owner_app_id":"123","previous_owner_app_id":456,"metadata":"m"}"#,
                "pass_thread_control",
            ),
            (
                r#""take_thread_control":{"previous_owner_app_id":"123"}"#,
                "take_thread_control",
            ),
            (
                r#""request_thread_control":{"requested_owner_app_id":123}"#,
                "request_thread_control",
            ),
            (r#""app_roles":{"123":["primary_receiver"]}"#, "app_roles"),
            (
                r#""account_linking":{"status":"linked","authorization_code":"c"}"#,
                "account_linking",
            ),
            (
                r#""messaging_feedback":{"feedback_screens":[]}"#,
                "messaging_feedback",
            ),
        ];
        for (fields, name) in cases {
            let e = one(&format!("{{{base},{fields}}}"));
            assert_eq!(e.kind.name(), name, "{fields}");
            assert_eq!(e.timestamp, Some(Timestamp::from_millis(5)));
        }
    }

    #[test]
    fn ids_and_timestamps_are_lenient() {
        let e = one(
            r#"{"sender":{"id":6789012345678901234},"recipient":{"id":"P"},"timestamp":"1718000000001","read":{"watermark":1718000000000}}"#,
        );
        assert_eq!(e.sender.id.as_deref(), Some("6789012345678901234"));
        assert_eq!(e.timestamp, Some(Timestamp::from_millis(1_718_000_000_001)));
        let e = one(
            r#"{"sender":{"user_ref":"ref-1"},"recipient":{"id":"P"},"timestamp":1.718e12,"optin":{"ref":"x"}}"#,
        );
        assert_eq!(e.sender.user_ref.as_deref(), Some("ref-1"));
        assert_eq!(e.timestamp, Some(Timestamp::from_millis(1_718_000_000_000)));
        assert!(serde_json::from_str::<WebhookBody<'_>>(r#"{"object":"page","entry":[{"id":"P","messaging":[{"timestamp":"soon","message":{}}]}]}"#).is_err());
    }

    #[test]
    fn unknown_fields_everywhere_are_ignored() {
        let e = one(
            r#"{"sender":{"id":"U","extra":1},"recipient":{"id":"P"},"timestamp":5,"future":{"a":[1,2]},
                      "message":{"mid":"m","text":"t","nlp":{"entities":{}},"commands":[{"name":"x"}]}}"#,
        );
        match e.kind {
            EventKind::Message(m) => assert_eq!(m.text.as_deref(), Some("t")),
            other => panic!("{other:?}"),
        }
        let empty = one(r#"{"sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":5}"#);
        assert_eq!(
            empty.kind,
            EventKind::Unknown {
                name: "empty".into(),
                raw: None
            }
        );
    }

    #[test]
    fn strings_borrow_from_the_body_unless_they_hold_escapes() {
        let e = one(
            r#"{"sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":5,
                "message":{"mid":"m1","text":"Caf\u00e9 \"ok\"","quick_reply":{"payload":"plain"}}}"#,
        );
        assert!(matches!(e.sender.id, Some(Cow::Borrowed("U"))));
        let EventKind::Message(m) = e.kind else {
            panic!("a message")
        };
        assert!(matches!(m.mid, Some(Cow::Borrowed("m1"))));
        assert_eq!(m.text.as_deref(), Some("Café \"ok\""));
        assert!(
            matches!(m.text, Some(Cow::Owned(_))),
            "unescaped into a copy"
        );
        assert!(matches!(
            m.quick_reply.map(|q| q.payload),
            Some(Cow::Borrowed("plain"))
        ));
        // Ids given as numbers become their digits; null is none.
        let e = one(
            r#"{"sender":{"id":123,"user_ref":null},"recipient":{"id":"P"},"timestamp":5,"delivery":{"mids":["a","b\u0041"]}}"#,
        );
        assert_eq!(e.sender.id.as_deref(), Some("123"));
        assert_eq!(e.sender.user_ref, None);
        let EventKind::Delivery(d) = e.kind else {
            panic!("a delivery")
        };
        assert_eq!(d.mids, ["a", "bA"]);
        // Other JSON types where a string belongs are refused, not coerced.
        let bad = r#"{"object":"page","entry":[{"id":"P","messaging":[{"sender":{"id":"U"},"message":{"text":5}}]}]}"#;
        assert!(serde_json::from_str::<WebhookBody<'_>>(bad).is_err());
    }

    #[test]
    fn standby_events_parse_like_messaging_events() {
        let body = r#"{"object":"page","entry":[{"id":"P","time":1,"standby":[{"sender":{"id":"P"},"recipient":{"id":"U"},"timestamp":2,"message":{"mid":"e","is_echo":true,"app_id":263902037430900,"text":"human"}}]}]}"#;
        let parsed: WebhookBody<'_> = serde_json::from_str(body).unwrap();
        assert!(parsed.entry[0].messaging.is_empty());
        assert_eq!(parsed.entry[0].standby.len(), 1);
        match &parsed.entry[0].standby[0].kind {
            EventKind::Message(m) => {
                assert!(m.is_echo);
                assert_eq!(m.app_id.as_deref(), Some("263902037430900"));
            }
            other => panic!("{other:?}"),
        }
    }
}
