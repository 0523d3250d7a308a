//! The typed model of Messenger webhook bodies.
//!
//! Forward compatible by construction: unknown fields are ignored, an unknown event kind
//! becomes [`EventKind::Unknown`] with its field name (never an error for the whole batch),
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
//! assert!(matches!(&events[1].kind, EventKind::Unknown(name) if name == "brand_new_event"));
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::fmt;

use serde::{
    Deserialize, Deserializer,
    de::{self, IgnoredAny, MapAccess, Visitor},
};

use crate::clock::Timestamp;

/// A webhook body: `{"object": "page", "entry": [...]}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct WebhookBody {
    /// The subscribed object (`"page"` for Messenger).
    pub object: String,
    /// The entries, one or more per Page.
    #[serde(default)]
    pub entry: Vec<Entry>,
}

/// One entry of a batch: events of one Page.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Entry {
    /// The Page id.
    pub id: String,
    /// When Meta sent the entry.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub time: Option<Timestamp>,
    /// Events of threads this app owns.
    #[serde(default)]
    pub messaging: Vec<Event>,
    /// Events of threads another app owns (handover protocol): read-only for this app.
    #[serde(default)]
    pub standby: Vec<Event>,
}

/// A party of an event: a page-scoped id, or a `user_ref` (checkbox plugin).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Party {
    /// The PSID (or the Page id).
    #[serde(default, deserialize_with = "opt_id")]
    pub id: Option<String>,
    /// A `user_ref`, for people known only through a plugin.
    #[serde(default)]
    pub user_ref: Option<String>,
}

/// One event.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Event {
    /// Who sent it (the Page for echoes).
    pub sender: Party,
    /// Who received it.
    pub recipient: Party,
    /// When it happened.
    pub timestamp: Option<Timestamp>,
    /// What it is.
    pub kind: EventKind,
}

/// What an event is.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EventKind {
    /// A message (`is_echo` set for messages the Page sent). Boxed, like the other large
    /// variants, so an event stays small while it moves through parsing.
    Message(Box<MessageEvent>),
    /// A postback button, Get Started, or persistent menu tap.
    Postback(Postback),
    /// An m.me link, ad or code opened on an existing thread.
    Referral(Referral),
    /// An opt-in (plugins, notification requests).
    OptIn(OptIn),
    /// Messages delivered.
    Delivery(Delivery),
    /// Messages read.
    Read(Read),
    /// A reaction added or removed.
    Reaction(Reaction),
    /// A thread-control change (handover protocol).
    Handover(Handover),
    /// Account linking or unlinking.
    AccountLinking(AccountLinking),
    /// An event kind this crate does not know, by its field name.
    Unknown(String),
}

impl EventKind {
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
            EventKind::Handover(h) => h.kind.as_str(),
            EventKind::AccountLinking(_) => "account_linking",
            EventKind::Unknown(name) => name,
        }
    }
}

/// A message, or an echo of one the Page sent.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct MessageEvent {
    /// The message id.
    #[serde(default)]
    pub mid: Option<String>,
    /// The text.
    #[serde(default)]
    pub text: Option<String>,
    /// The quick reply tapped, if any.
    #[serde(default)]
    pub quick_reply: Option<QuickReplyPayload>,
    /// The message this one replies to.
    #[serde(default)]
    pub reply_to: Option<ReplyTo>,
    /// Attachments.
    #[serde(default)]
    pub attachments: Vec<AttachmentEvent>,
    /// Whether the Page sent it (an echo).
    #[serde(default)]
    pub is_echo: bool,
    /// For echoes: the app that sent it (Page Inbox is 263902037430900).
    #[serde(default, deserialize_with = "opt_id")]
    pub app_id: Option<String>,
    /// For echoes: the metadata the sender attached.
    #[serde(default)]
    pub metadata: Option<String>,
    /// A referral carried by the message (click-to-Messenger ads). Boxed: rare, and it would
    /// double the size of every event.
    #[serde(default)]
    pub referral: Option<Box<Referral>>,
}

/// The payload of a tapped quick reply.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct QuickReplyPayload {
    /// The payload.
    pub payload: String,
}

/// The message a message replies to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct ReplyTo {
    /// Its id.
    pub mid: String,
}

/// An attachment of a message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct AttachmentEvent {
    /// `image`, `audio`, `video`, `file`, `location`, `fallback`, `template`, `reel`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The payload (absent on some `fallback` attachments).
    #[serde(default)]
    pub payload: Option<AttachmentPayload>,
}

/// The payload of an attachment.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct AttachmentPayload {
    /// Where the file is served (these URLs expire).
    #[serde(default)]
    pub url: Option<String>,
    /// Set when an image is a sticker.
    #[serde(default, deserialize_with = "opt_id")]
    pub sticker_id: Option<String>,
    /// A title, for some kinds.
    #[serde(default)]
    pub title: Option<String>,
}

/// A postback.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Postback {
    /// The id of the postback (since Graph v11.0).
    #[serde(default)]
    pub mid: Option<String>,
    /// The title of the button tapped.
    #[serde(default)]
    pub title: Option<String>,
    /// The payload of the button.
    #[serde(default)]
    pub payload: Option<String>,
    /// The m.me referral, when Get Started was tapped on a new thread opened from a link.
    #[serde(default)]
    pub referral: Option<Box<Referral>>,
}

/// A referral: the `ref` of an m.me link, an ad, or a code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Referral {
    /// The `ref` parameter.
    #[serde(default, rename = "ref")]
    pub reference: Option<String>,
    /// `SHORTLINK`, `ADS`, `MESSENGER_CODE`, ... (an open set).
    #[serde(default)]
    pub source: Option<String>,
    /// `OPEN_THREAD`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The page the link was on, for chat plugins.
    #[serde(default)]
    pub referer_uri: Option<String>,
    /// The ad, for ad referrals.
    #[serde(default, deserialize_with = "opt_id")]
    pub ad_id: Option<String>,
}

/// An opt-in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct OptIn {
    /// The plugin's `data-ref`.
    #[serde(default, rename = "ref")]
    pub reference: Option<String>,
    /// The checkbox plugin's `user_ref`.
    #[serde(default)]
    pub user_ref: Option<String>,
    /// The kind of opt-in (`notification_messages`, ...).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The opt-in's payload.
    #[serde(default)]
    pub payload: Option<String>,
    /// A token to message the person later (marketing messages).
    #[serde(default)]
    pub notification_messages_token: Option<String>,
}

/// Delivered messages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Delivery {
    /// The delivered message ids, where listed.
    #[serde(default)]
    pub mids: Vec<String>,
    /// Everything sent before this time was delivered.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub watermark: Option<Timestamp>,
}

/// Read messages.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Read {
    /// Everything sent before this time was read.
    #[serde(deserialize_with = "timestamp")]
    pub watermark: Timestamp,
}

/// A reaction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Reaction {
    /// The message reacted to.
    #[serde(default)]
    pub mid: Option<String>,
    /// `react` or `unreact`.
    #[serde(default)]
    pub action: Option<String>,
    /// The reaction's name (`love`, `like`, ...).
    #[serde(default)]
    pub reaction: Option<String>,
    /// The emoji.
    #[serde(default)]
    pub emoji: Option<String>,
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
    /// The app's roles changed.
    AppRoles,
}

impl HandoverKind {
    /// The webhook field name.
    pub fn as_str(self) -> &'static str {
        match self {
            HandoverKind::PassThreadControl => "pass_thread_control",
            HandoverKind::TakeThreadControl => "take_thread_control",
            HandoverKind::RequestThreadControl => "request_thread_control",
            HandoverKind::AppRoles => "app_roles",
        }
    }
}

/// A thread-control change.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Handover {
    /// Which change.
    pub kind: HandoverKind,
    /// The app that owns the thread now, where given.
    pub new_owner_app_id: Option<String>,
    /// The app that owned it before, where given.
    pub previous_owner_app_id: Option<String>,
    /// Metadata passed with the change.
    pub metadata: Option<String>,
}

#[derive(Deserialize)]
struct HandoverRepr {
    #[serde(default, deserialize_with = "opt_id")]
    new_owner_app_id: Option<String>,
    #[serde(default, deserialize_with = "opt_id")]
    previous_owner_app_id: Option<String>,
    #[serde(default, deserialize_with = "opt_id")]
    requested_owner_app_id: Option<String>,
    #[serde(default)]
    metadata: Option<String>,
}

/// Account linking.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct AccountLinking {
    /// `linked` or `unlinked`.
    #[serde(default)]
    pub status: Option<String>,
    /// The host's authorization code, when linked.
    #[serde(default)]
    pub authorization_code: Option<String>,
}

enum Field {
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
    Handover(HandoverKind),
    AccountLinking,
    Other(String),
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(match v {
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
                    "app_roles" => Field::Handover(HandoverKind::AppRoles),
                    "account_linking" => Field::AccountLinking,
                    other => Field::Other(other.to_owned()),
                })
            }
        }
        d.deserialize_identifier(FieldVisitor)
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EventVisitor;
        impl<'de> Visitor<'de> for EventVisitor {
            type Value = Event;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Messenger webhook event")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event, A::Error> {
                let mut sender = None;
                let mut recipient = None;
                let mut timestamp = None;
                let mut kind = None;
                let mut unknown = None;
                while let Some(field) = map.next_key::<Field>()? {
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
                        Field::AccountLinking => EventKind::AccountLinking(map.next_value()?),
                        Field::Handover(kind) => {
                            let r: HandoverRepr = map.next_value()?;
                            EventKind::Handover(Handover {
                                kind,
                                new_owner_app_id: r.new_owner_app_id.or(r.requested_owner_app_id),
                                previous_owner_app_id: r.previous_owner_app_id,
                                metadata: r.metadata,
                            })
                        }
                        Field::Other(name) => {
                            map.next_value::<IgnoredAny>()?;
                            unknown.get_or_insert(name);
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
                    kind: kind.unwrap_or_else(|| {
                        EventKind::Unknown(unknown.unwrap_or_else(|| "empty".to_owned()))
                    }),
                })
            }
        }
        d.deserialize_map(EventVisitor)
    }
}

/// A timestamp given as a number (milliseconds) or a string of digits.
struct TimestampValue(Option<Timestamp>);

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

fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
    TimestampValue::deserialize(d)?
        .0
        .ok_or_else(|| de::Error::custom("timestamp is null"))
}

/// An id given as a string or a number; kept as a string.
fn opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct IdVisitor;
    impl Visitor<'_> for IdVisitor {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an id as a string or a number")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<String>, E> {
            Ok(Some(v.to_owned()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Option<String>, E> {
            Ok(Some(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<String>, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<String>, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Option<String>, E> {
            Ok(None)
        }
    }
    d.deserialize_any(IdVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(body: &str) -> Vec<Event> {
        let parsed: WebhookBody = serde_json::from_str(body).unwrap();
        parsed
            .entry
            .into_iter()
            .flat_map(|e| e.messaging.into_iter().chain(e.standby))
            .collect()
    }

    fn one(event_json: &str) -> Event {
        let body = format!(
            r#"{{"object":"page","entry":[{{"id":"P","time":1,"messaging":[{event_json}]}}]}}"#
        );
        events(&body).remove(0)
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
        assert!(serde_json::from_str::<WebhookBody>(r#"{"object":"page","entry":[{"id":"P","messaging":[{"timestamp":"soon","message":{}}]}]}"#).is_err());
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
        assert_eq!(empty.kind, EventKind::Unknown("empty".into()));
    }

    #[test]
    fn standby_events_parse_like_messaging_events() {
        let body = r#"{"object":"page","entry":[{"id":"P","time":1,"standby":[{"sender":{"id":"P"},"recipient":{"id":"U"},"timestamp":2,"message":{"mid":"e","is_echo":true,"app_id":263902037430900,"text":"human"}}]}]}"#;
        let parsed: WebhookBody = serde_json::from_str(body).unwrap();
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
