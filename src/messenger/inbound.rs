//! Turning Messenger webhook events into channel-neutral [`Inbound`] events.
//!
//! | Messenger event | [`InboundKind`] |
//! |---|---|
//! | message with text | `Text` |
//! | message with a quick reply | `Answer` (payload, title) |
//! | message with attachments (stickers included) | `Attachments` |
//! | echo (`is_echo`) | `Echo` |
//! | postback with a referral (Get Started from an m.me link) | `Referral` |
//! | other postback | `Answer` (payload, button title) |
//! | referral | `Referral` |
//! | delivery | `Delivered` |
//! | read (a watermark, or the Instagram-style `mid`) | `Read` |
//! | reaction | `Reaction` |
//! | message_edit | `Edit` |
//! | optin (plugins; Marketing Messages `notification_messages`) | `OptIn` |
//! | pass / take / request thread control | `ThreadControl` |
//! | policy_enforcement, app_roles (no person) | a [`Notice`] about the Page |
//! | account_linking, game_play, payment, ... and future kinds | `Unknown`, with the raw JSON |
//!
//! The address is the Page (the entry's id) plus the person's PSID: the sender, or the
//! recipient for echoes. A person known only by a plugin `user_ref` (in `sender`, or in the
//! `optin` of a checkbox opt-in that names no sender) gets the id `user_ref:<ref>`, which
//! cannot collide with a numeric PSID.
//!
//! Each event gets a stable key for de-duplication: `messenger:<mid>` when it has a message id
//! of its own (an edit: the edited message's id and the edit's number), otherwise its kind,
//! Page, person, time and a short hash of its payload, as Meta redelivers the same event with
//! the same content.

use std::borrow::Cow;

use sha2::{Digest, Sha256};

use super::event::{Event, EventKind, HandoverKind, MessageEvent, OptIn};
use crate::{
    clock::Timestamp,
    contact::{Address, AddressScope, Channel},
    inbound::{Notice, NoticeKind},
    message::{
        Attachment, AttachmentKind, Inbound, InboundKind, NotificationOptIn, ReactionAction,
        Reference, ThreadChange,
    },
};

pub use crate::inbound::Dropped;

/// What one webhook event became.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Converted {
    /// An event of a person.
    Event(Inbound),
    /// A notice about the Page itself.
    Notice(Notice),
    /// An event that could not be read as either.
    Dropped(Dropped),
}

/// Converts one event of Page `page_id` (from `standby` when `standby`).
///
/// `fallback_at` is used when neither the event nor its entry carries a time.
pub fn to_inbound(
    page_id: &str,
    event: Event<'_>,
    standby: bool,
    fallback_at: Timestamp,
) -> Converted {
    let scope = AddressScope::new(Channel::Messenger, page_id).ok();
    to_inbound_on(
        Page::new(page_id, scope.as_ref()),
        event,
        standby,
        fallback_at,
    )
}

/// The Page of an entry, for converting its events.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Page<'p> {
    id: &'p str,
    /// Its address scope, checked once for all its events; `None` when the id is not a valid
    /// scope (each event is then dropped with the reason).
    scope: Option<&'p AddressScope>,
}

impl<'p> Page<'p> {
    /// Page `id`, whose scope is `scope` (`AddressScope::new(Channel::Messenger, id).ok()`).
    pub(crate) fn new(id: &'p str, scope: Option<&'p AddressScope>) -> Self {
        Page { id, scope }
    }

    /// The Page id.
    pub(crate) fn id(&self) -> &'p str {
        self.id
    }
}

/// [`to_inbound`] with the Page's scope checked beforehand.
pub(crate) fn to_inbound_on(
    page: Page<'_>,
    event: Event<'_>,
    standby: bool,
    fallback_at: Timestamp,
) -> Converted {
    let page_id = page.id;
    let at = event.timestamp.unwrap_or(fallback_at);
    // Page notices name no person: they are about the Page.
    let notice = match &event.kind {
        EventKind::PolicyEnforcement(p) => {
            let reason = p.reason.as_deref().map(str::to_owned);
            Some(match p.action.as_deref() {
                Some("block") => NoticeKind::Blocked { reason },
                Some("unblock") => NoticeKind::Unblocked { reason },
                _ => NoticeKind::Other {
                    kind: "policy_enforcement".to_owned(),
                },
            })
        }
        EventKind::AppRoles(roles) => Some(NoticeKind::AppRoles {
            roles: roles
                .iter()
                .map(|(app, roles)| {
                    (
                        app.clone().into_owned(),
                        roles.iter().map(|r| r.clone().into_owned()).collect(),
                    )
                })
                .collect(),
        }),
        _ => None,
    };
    if let Some(kind) = notice {
        return Converted::Notice(Notice::new(Channel::Messenger, page_id, at, kind));
    }
    let echo = matches!(&event.kind, EventKind::Message(m) if m.is_echo);
    let person = if echo { event.recipient } else { event.sender };
    let drop = |kind: &str, reason: &str| Converted::Dropped(Dropped::new(page_id, kind, reason));
    // A checkbox opt-in names the person only in the opt-in itself.
    let optin_ref = match &event.kind {
        EventKind::OptIn(o) => o.user_ref.as_deref(),
        _ => None,
    };
    let person_id = match (person.id, person.user_ref, optin_ref) {
        (Some(id), _, _) => id,
        (None, Some(user_ref), _) => Cow::Owned(format!("user_ref:{user_ref}")),
        (None, None, Some(user_ref)) => Cow::Owned(format!("user_ref:{user_ref}")),
        (None, None, None) => return drop(event.kind.name(), "the event names no person"),
    };
    let from = match page.scope {
        Some(scope) => scope.address(&person_id),
        None => Address::messenger(page_id, person_id),
    };
    let from = match from {
        Ok(from) => from,
        Err(e) => return drop(event.kind.name(), &e.to_string()),
    };
    let keyed = |name: &str, mid: Option<&str>, detail: &str| match mid {
        Some(mid) if !mid.is_empty() => {
            let mut key = String::with_capacity("messenger:".len() + mid.len());
            key.push_str("messenger:");
            key.push_str(mid);
            key
        }
        _ => format!(
            "messenger:{name}:{}:{}:{}:{}",
            page_id,
            from.id(),
            at.as_millis(),
            short_hash(detail)
        ),
    };

    let (key, kind) = match event.kind {
        EventKind::Message(m) if m.is_echo => {
            let key = keyed(
                "message_echo",
                m.mid.as_deref(),
                m.text.as_deref().unwrap_or(""),
            );
            let MessageEvent {
                mid, text, app_id, ..
            } = *m;
            (
                key,
                InboundKind::Echo {
                    message_id: owned_or_empty(mid),
                    text: text.map(Cow::into_owned),
                    app_id: app_id.map(Cow::into_owned),
                },
            )
        }
        EventKind::Message(m) => {
            let key = keyed("message", m.mid.as_deref(), m.text.as_deref().unwrap_or(""));
            let message_id = owned_or_empty(m.mid);
            let kind = if let Some(qr) = m.quick_reply {
                InboundKind::Answer {
                    message_id: Some(message_id),
                    payload: qr.payload.into_owned(),
                    text: m.text.map(Cow::into_owned),
                }
            } else if !m.attachments.is_empty() {
                let attachments = m
                    .attachments
                    .into_iter()
                    .map(|a| {
                        let sticker = a.payload.as_ref().is_some_and(|p| p.sticker_id.is_some());
                        let kind = if sticker {
                            AttachmentKind::Sticker
                        } else {
                            attachment_kind(&a.kind)
                        };
                        Attachment::new(kind, a.payload.and_then(|p| p.url).map(Cow::into_owned))
                    })
                    .collect();
                InboundKind::Attachments {
                    message_id,
                    text: m.text.map(Cow::into_owned),
                    attachments,
                }
            } else if let Some(text) = m.text {
                InboundKind::Text {
                    message_id,
                    text: text.into_owned(),
                }
            } else {
                InboundKind::unknown("message")
            };
            (key, kind)
        }
        EventKind::Postback(p) => {
            let detail = format!(
                "{}|{}",
                p.payload.as_deref().unwrap_or(""),
                p.referral
                    .as_ref()
                    .and_then(|r| r.reference.as_deref())
                    .unwrap_or("")
            );
            let key = keyed("postback", p.mid.as_deref(), &detail);
            let kind = match p.referral.and_then(|r| {
                let r = *r;
                r.reference.map(|reference| (reference, r.source))
            }) {
                Some((reference, source)) => InboundKind::Referral {
                    reference: Reference::new(reference.into_owned()),
                    source: source.map(Cow::into_owned),
                },
                None => match p.payload {
                    Some(payload) => InboundKind::Answer {
                        message_id: p.mid.map(Cow::into_owned),
                        payload: payload.into_owned(),
                        text: p.title.map(Cow::into_owned),
                    },
                    None => InboundKind::unknown("postback"),
                },
            };
            (key, kind)
        }
        EventKind::Referral(r) => {
            let key = keyed("referral", None, r.reference.as_deref().unwrap_or(""));
            let kind = match r.reference {
                Some(reference) => InboundKind::Referral {
                    reference: Reference::new(reference.into_owned()),
                    source: r.source.map(Cow::into_owned),
                },
                None => InboundKind::unknown("referral"),
            };
            (key, kind)
        }
        EventKind::Delivery(d) => {
            let detail = format!(
                "{}|{:?}",
                d.mids.join(","),
                d.watermark.map(Timestamp::as_millis)
            );
            let key = keyed("delivery", None, &detail);
            (
                key,
                InboundKind::Delivered {
                    message_ids: d.mids.into_iter().map(Cow::into_owned).collect(),
                    watermark: d.watermark,
                },
            )
        }
        EventKind::Read(r) => {
            if r.watermark.is_none() && r.mid.is_none() {
                return drop("read", "a read names neither a watermark nor a message");
            }
            let detail = format!(
                "{:?}|{}",
                r.watermark.map(Timestamp::as_millis),
                r.mid.as_deref().unwrap_or("")
            );
            (
                keyed("read", None, &detail),
                InboundKind::Read {
                    watermark: r.watermark,
                    message_id: r.mid.map(Cow::into_owned),
                },
            )
        }
        EventKind::Reaction(r) => {
            let Some(mid) = r.mid.filter(|m| !m.is_empty()) else {
                return drop("reaction", "a reaction names no message");
            };
            let action = match r.action.as_deref() {
                Some("unreact") => ReactionAction::Unreact,
                _ => ReactionAction::React,
            };
            // A reaction names the message it touches, so its key is not that message's:
            // the action and the reaction tell a change of mind from a redelivery.
            let detail = format!(
                "{mid}|{:?}|{}|{}",
                action,
                r.reaction.as_deref().unwrap_or(""),
                r.emoji.as_deref().unwrap_or("")
            );
            (
                keyed("reaction", None, &detail),
                InboundKind::Reaction {
                    message_id: mid.into_owned(),
                    action,
                    emoji: r.emoji.map(Cow::into_owned),
                    name: r.reaction.map(Cow::into_owned),
                },
            )
        }
        EventKind::MessageEdit(e) => {
            let (Some(mid), Some(text)) = (e.mid.filter(|m| !m.is_empty()), e.text) else {
                return drop("message_edit", "an edit names no message or no text");
            };
            let edit_count = e.num_edit.unwrap_or(1);
            let key = format!("messenger:{mid}:edit:{edit_count}");
            (
                key,
                InboundKind::Edit {
                    message_id: mid.into_owned(),
                    text: text.into_owned(),
                    edit_count,
                },
            )
        }
        EventKind::OptIn(o) => {
            let detail = format!(
                "{}|{}|{}|{}",
                o.reference.as_deref().unwrap_or(""),
                o.user_ref.as_deref().unwrap_or(""),
                o.notification_messages_token.as_deref().unwrap_or(""),
                o.notification_messages_status.as_deref().unwrap_or("")
            );
            (keyed("optin", None, &detail), optin_kind(o))
        }
        EventKind::Handover(h) => {
            let change = match h.kind {
                HandoverKind::PassThreadControl => ThreadChange::Passed,
                HandoverKind::TakeThreadControl => ThreadChange::Taken,
                HandoverKind::RequestThreadControl => ThreadChange::Requested,
            };
            let detail = format!(
                "{:?}|{}|{}",
                change,
                h.new_owner_app_id.as_deref().unwrap_or(""),
                h.previous_owner_app_id.as_deref().unwrap_or("")
            );
            (
                keyed(h.kind.as_str(), None, &detail),
                InboundKind::ThreadControl {
                    change,
                    new_owner: h.new_owner_app_id.map(Cow::into_owned),
                    previous_owner: h.previous_owner_app_id.map(Cow::into_owned),
                    metadata: h.metadata.map(Cow::into_owned),
                },
            )
        }
        EventKind::Unknown { name, raw } => {
            let raw = raw.map(str::to_owned);
            let detail = raw.as_deref().unwrap_or(&name);
            (
                keyed(&name, None, detail),
                InboundKind::Unknown {
                    kind: name.into_owned(),
                    raw,
                },
            )
        }
        // Notices were handled above.
        other @ (EventKind::PolicyEnforcement(_) | EventKind::AppRoles(_)) => {
            let name = other.name();
            (keyed(name, None, name), InboundKind::unknown(name))
        }
    };
    Converted::Event(Inbound::new(key, from, at, kind).with_standby(standby))
}

/// An opt-in's kind: a notification subscription when it carries a token.
fn optin_kind(o: OptIn<'_>) -> InboundKind {
    let owned = |c: Option<Cow<'_, str>>| c.map(Cow::into_owned);
    let notifications = o.notification_messages_token.map(|token| {
        let mut n = NotificationOptIn::new(token.into_owned());
        n.frequency = owned(o.notification_messages_frequency);
        n.timezone = owned(o.notification_messages_timezone);
        n.expires_at = o.token_expiry_timestamp;
        n.status = owned(o.notification_messages_status);
        n.token_status = owned(o.user_token_status);
        n.topic = owned(o.title);
        n.payload = owned(o.payload.clone());
        Box::new(n)
    });
    InboundKind::OptIn {
        reference: owned(o.reference).or_else(|| {
            // A plain opt-in's payload stands for its reference.
            if notifications.is_none() {
                owned(o.payload)
            } else {
                None
            }
        }),
        user_ref: owned(o.user_ref),
        notifications,
    }
}

/// The id, or an empty string when there is none.
fn owned_or_empty(id: Option<Cow<'_, str>>) -> String {
    id.map(Cow::into_owned).unwrap_or_default()
}

fn attachment_kind(kind: &str) -> AttachmentKind {
    match kind {
        "image" => AttachmentKind::Image,
        "audio" => AttachmentKind::Audio,
        "video" => AttachmentKind::Video,
        "file" => AttachmentKind::File,
        "location" => AttachmentKind::Location,
        other => AttachmentKind::Other(other.to_owned()),
    }
}

/// 16 hex digits of SHA-256: enough to tell payloads apart, short enough for a key, and it
/// keeps tokens carried in refs out of the seen-events store.
fn short_hash(detail: &str) -> String {
    let digest = Sha256::digest(detail.as_bytes());
    const_hex::encode(&digest[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messenger::event::WebhookBody;

    fn convert(event_json: &str) -> Result<Inbound, Dropped> {
        let body = format!(
            r#"{{"object":"page","entry":[{{"id":"P","time":9,"messaging":[{event_json}]}}]}}"#
        );
        let mut parsed: WebhookBody<'_> = serde_json::from_str(&body).unwrap();
        let mut entry = parsed.entry.remove(0);
        let event = entry.messaging.remove(0);
        // As the webhook does: the entry's time is the fallback.
        match to_inbound(
            "P",
            event,
            false,
            entry.time.unwrap_or(Timestamp::from_millis(1)),
        ) {
            Converted::Event(inbound) => Ok(inbound),
            Converted::Dropped(dropped) => Err(dropped),
            Converted::Notice(notice) => panic!("a notice: {notice:?}"),
        }
    }

    #[test]
    fn messages_become_text_answers_or_attachments() {
        let text = convert(r#"{"sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":5,"message":{"mid":"m1","text":"hi"}}"#).unwrap();
        assert_eq!(text.key, "messenger:m1");
        assert_eq!(text.from, Address::messenger("P", "U").unwrap());
        assert_eq!(text.at, Timestamp::from_millis(5));
        assert_eq!(
            text.kind,
            InboundKind::Text {
                message_id: "m1".into(),
                text: "hi".into()
            }
        );

        let qr = convert(r#"{"sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":5,"message":{"mid":"m2","text":"Yes","quick_reply":{"payload":"Y"}}}"#).unwrap();
        assert_eq!(
            qr.kind,
            InboundKind::Answer {
                message_id: Some("m2".into()),
                payload: "Y".into(),
                text: Some("Yes".into())
            }
        );

        let att = convert(r#"{"sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":5,"message":{"mid":"m3","attachments":[{"type":"image","payload":{"url":"https://x/y.png"}},{"type":"fallback"}]}}"#).unwrap();
        match att.kind {
            InboundKind::Attachments { attachments, .. } => {
                assert_eq!(
                    attachments[0],
                    Attachment::new(AttachmentKind::Image, Some("https://x/y.png".into()))
                );
                assert_eq!(
                    attachments[1].kind,
                    AttachmentKind::Other("fallback".into())
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn echoes_are_addressed_to_the_person_and_marked() {
        let echo = convert(r#"{"sender":{"id":"P"},"recipient":{"id":"U"},"timestamp":5,"message":{"mid":"m4","is_echo":true,"app_id":263902037430900,"text":"agent"}}"#).unwrap();
        assert_eq!(echo.from.id(), "U");
        assert_eq!(
            echo.kind,
            InboundKind::Echo {
                message_id: "m4".into(),
                text: Some("agent".into()),
                app_id: Some("263902037430900".into())
            }
        );
    }

    #[test]
    fn get_started_with_a_ref_is_a_referral_and_plain_postbacks_are_answers() {
        let gs = convert(r#"{"sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":5,"postback":{"mid":"m5","title":"Get Started","payload":"GET_STARTED","referral":{"ref":"tok","source":"SHORTLINK","type":"OPEN_THREAD"}}}"#).unwrap();
        assert_eq!(
            gs.kind,
            InboundKind::Referral {
                reference: Reference::new("tok"),
                source: Some("SHORTLINK".into())
            }
        );
        let pb = convert(r#"{"sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":5,"postback":{"title":"Later","payload":"L3_LATER"}}"#).unwrap();
        assert_eq!(
            pb.kind,
            InboundKind::Answer {
                message_id: None,
                payload: "L3_LATER".into(),
                text: Some("Later".into())
            }
        );
        assert!(
            pb.key.starts_with("messenger:postback:P:U:5:"),
            "{}",
            pb.key
        );
    }

    #[test]
    fn keys_without_a_mid_are_stable_and_tell_payloads_apart() {
        let r1 = convert(r#"{"sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":5,"referral":{"ref":"a","source":"SHORTLINK"}}"#).unwrap();
        let r1_again = convert(r#"{"sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":5,"referral":{"ref":"a","source":"SHORTLINK"}}"#).unwrap();
        let r2 = convert(r#"{"sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":5,"referral":{"ref":"b","source":"SHORTLINK"}}"#).unwrap();
        assert_eq!(r1.key, r1_again.key);
        assert_ne!(r1.key, r2.key);
        assert!(!r1.key.contains(":a"), "refs stay out of keys: {}", r1.key);
        let read = convert(
            r#"{"sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":5,"read":{"watermark":4}}"#,
        )
        .unwrap();
        assert_eq!(
            read.kind,
            InboundKind::Read {
                watermark: Some(Timestamp::from_millis(4)),
                message_id: None,
            }
        );
        let delivery = convert(r#"{"sender":{"id":"U"},"recipient":{"id":"P"},"delivery":{"mids":["o1"],"watermark":4}}"#).unwrap();
        assert_eq!(
            delivery.at,
            Timestamp::from_millis(9),
            "falls back to the entry time"
        );
        assert_ne!(read.key, delivery.key);
    }

    #[test]
    fn reactions_edits_optins_and_thread_control_are_typed() {
        let base = r#""sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":5"#;
        let event = |fields: &str| convert(&format!("{{{base},{fields}}}")).unwrap();
        let react =
            event(r#""reaction":{"mid":"m1","action":"react","reaction":"love","emoji":"\u2764"}"#);
        assert_eq!(
            react.kind,
            InboundKind::Reaction {
                message_id: "m1".into(),
                action: ReactionAction::React,
                emoji: Some("\u{2764}".into()),
                name: Some("love".into()),
            }
        );
        let unreact = event(r#""reaction":{"mid":"m1","action":"unreact"}"#);
        assert!(matches!(
            unreact.kind,
            InboundKind::Reaction {
                action: ReactionAction::Unreact,
                ..
            }
        ));
        assert_ne!(
            react.key, unreact.key,
            "a change of mind is not a redelivery"
        );
        let edit = event(r#""message_edit":{"mid":"m1","text":"fixed","num_edit":2}"#);
        assert_eq!(
            edit.kind,
            InboundKind::Edit {
                message_id: "m1".into(),
                text: "fixed".into(),
                edit_count: 2
            }
        );
        assert_eq!(edit.key, "messenger:m1:edit:2");
        let optin = event(
            r#""optin":{"type":"notification_messages","payload":"news","notification_messages_token":"TOKEN-1","notification_messages_frequency":"WEEKLY","notification_messages_timezone":"Europe/Berlin","token_expiry_timestamp":1900000000000,"user_token_status":"NOT_REFRESHED","notification_messages_status":"RESUME_NOTIFICATIONS","title":"Course news"}"#,
        );
        let InboundKind::OptIn {
            notifications: Some(n),
            reference,
            ..
        } = &optin.kind
        else {
            panic!("{:?}", optin.kind)
        };
        assert_eq!(reference, &None);
        assert_eq!(n.token, "TOKEN-1");
        assert_eq!(n.frequency.as_deref(), Some("WEEKLY"));
        assert_eq!(
            n.expires_at,
            Some(Timestamp::from_millis(1_900_000_000_000))
        );
        assert_eq!(n.topic.as_deref(), Some("Course news"));
        assert!(!n.is_stopped());
        assert!(
            !format!("{optin:?}").contains("TOKEN-1"),
            "the token is redacted"
        );
        assert!(!optin.key.contains("TOKEN-1"));
        let pass = event(
            r#""pass_thread_control":{"new_owner_app_id":"123","previous_owner_app_id":null,"metadata":"m"}"#,
        );
        assert_eq!(
            pass.kind,
            InboundKind::ThreadControl {
                change: ThreadChange::Passed,
                new_owner: Some("123".into()),
                previous_owner: None,
                metadata: Some("m".into()),
            }
        );
    }

    #[test]
    fn checkbox_optins_without_a_sender_are_addressed_by_their_user_ref() {
        let plugin = convert(
            r#"{"recipient":{"id":"P"},"timestamp":5,"optin":{"ref":"cart","user_ref":"abc"}}"#,
        )
        .unwrap();
        assert_eq!(plugin.from.id(), "user_ref:abc");
        assert_eq!(
            plugin.kind,
            InboundKind::OptIn {
                reference: Some("cart".into()),
                user_ref: Some("abc".into()),
                notifications: None
            }
        );
    }

    #[test]
    fn reads_by_mid_stories_and_stickers_are_read() {
        let read = convert(
            r#"{"sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":5,"read":{"mid":"m7"}}"#,
        )
        .unwrap();
        assert_eq!(
            read.kind,
            InboundKind::Read {
                watermark: None,
                message_id: Some("m7".into())
            }
        );
        let story = convert(r#"{"sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":5,"message":{"mid":"m8","text":"nice","reply_to":{"story":{"id":"s1","url":"https://x/s"}}}}"#).unwrap();
        assert!(matches!(story.kind, InboundKind::Text { ref text, .. } if text == "nice"));
        let sticker = convert(r#"{"sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":5,"message":{"mid":"m9","attachments":[{"type":"sticker","payload":{"url":"https://x/s.png","sticker_id":1}},{"type":"image","payload":{"url":"https://x/t.png","sticker_id":369239263222822}},{"type":"image","payload":{"url":"https://x/p.png"}}]}}"#).unwrap();
        let InboundKind::Attachments { attachments, .. } = sticker.kind else {
            panic!("attachments")
        };
        let kinds: Vec<&AttachmentKind> = attachments.iter().map(|a| &a.kind).collect();
        assert_eq!(
            kinds,
            [
                &AttachmentKind::Sticker,
                &AttachmentKind::Sticker,
                &AttachmentKind::Image
            ]
        );
    }

    #[test]
    fn other_kinds_keep_their_raw_json_and_nameless_events_are_dropped() {
        let linking = convert(r#"{"sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":5,"account_linking":{"status":"linked","authorization_code":"c"}}"#).unwrap();
        assert_eq!(
            linking.kind,
            InboundKind::Unknown {
                kind: "account_linking".into(),
                raw: Some(r#"{"status":"linked","authorization_code":"c"}"#.into()),
            }
        );
        let future =
            convert(r#"{"sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":5,"brand_new":{}}"#)
                .unwrap();
        assert_eq!(
            future.kind,
            InboundKind::Unknown {
                kind: "brand_new".into(),
                raw: Some("{}".into()),
            }
        );
        let plugin = convert(r#"{"sender":{"user_ref":"abc"},"recipient":{"id":"P"},"timestamp":5,"optin":{"ref":"x","user_ref":"abc"}}"#).unwrap();
        assert_eq!(plugin.from.id(), "user_ref:abc");
        let nobody =
            convert(r#"{"recipient":{"id":"P"},"timestamp":5,"message":{"mid":"m9","text":"?"}}"#)
                .unwrap_err();
        assert_eq!(nobody.kind, "message");
    }
}
