//! Turning Messenger webhook events into channel-neutral [`Inbound`] events.
//!
//! | Messenger event | [`InboundKind`] |
//! |---|---|
//! | message with text | `Text` |
//! | message with a quick reply | `Answer` (payload, title) |
//! | message with attachments | `Attachments` |
//! | echo (`is_echo`) | `Echo` |
//! | postback with a referral (Get Started from an m.me link) | `Referral` |
//! | other postback | `Answer` (payload, button title) |
//! | referral | `Referral` |
//! | delivery | `Delivered` |
//! | read | `Read` |
//! | opt-in, reaction, handover, account linking, unknown | `Unknown` (by name) |
//!
//! The address is the Page (the entry's id) plus the person's PSID: the sender, or the
//! recipient for echoes. A person known only by a plugin `user_ref` gets the id
//! `user_ref:<ref>`, which cannot collide with a numeric PSID.
//!
//! Each event gets a stable key for de-duplication: `messenger:<mid>` when it has a message id,
//! otherwise its kind, Page, person, time and a short hash of its payload, as Meta redelivers
//! the same event with the same content.

use std::borrow::Cow;

use sha2::{Digest, Sha256};

use super::event::{Event, EventKind, MessageEvent};
use crate::{
    clock::Timestamp,
    contact::{Address, MessengerScope},
    message::{Attachment, AttachmentKind, Inbound, InboundKind, Reference},
};

/// Why an event could not become an [`Inbound`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Dropped {
    /// The Page of the entry.
    pub page_id: String,
    /// The event kind.
    pub kind: String,
    /// Why.
    pub reason: String,
}

/// Converts one event of Page `page_id` (from `standby` when `standby`).
///
/// `fallback_at` is used when neither the event nor its entry carries a time.
pub fn to_inbound(
    page_id: &str,
    event: Event<'_>,
    standby: bool,
    fallback_at: Timestamp,
) -> Result<Inbound, Dropped> {
    let scope = MessengerScope::new(page_id).ok();
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
    scope: Option<&'p MessengerScope>,
}

impl<'p> Page<'p> {
    /// Page `id`, whose scope is `scope` (`MessengerScope::new(id).ok()`).
    pub(crate) fn new(id: &'p str, scope: Option<&'p MessengerScope>) -> Self {
        Page { id, scope }
    }
}

/// [`to_inbound`] with the Page's scope checked beforehand.
pub(crate) fn to_inbound_on(
    page: Page<'_>,
    event: Event<'_>,
    standby: bool,
    fallback_at: Timestamp,
) -> Result<Inbound, Dropped> {
    let page_id = page.id;
    let echo = matches!(&event.kind, EventKind::Message(m) if m.is_echo);
    let person = if echo { event.recipient } else { event.sender };
    let drop = |kind: &EventKind<'_>, reason: String| Dropped {
        page_id: page_id.to_owned(),
        kind: kind.name().to_owned(),
        reason,
    };
    let person_id = match (person.id, person.user_ref) {
        (Some(id), _) => id,
        (None, Some(user_ref)) => Cow::Owned(format!("user_ref:{user_ref}")),
        (None, None) => return Err(drop(&event.kind, "the event names no person".to_owned())),
    };
    let from = match page.scope {
        Some(scope) => scope.address(&person_id),
        None => Address::messenger(page_id, person_id),
    }
    .map_err(|e| drop(&event.kind, e.to_string()))?;
    let at = event.timestamp.unwrap_or(fallback_at);
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
                        Attachment::new(
                            attachment_kind(&a.kind),
                            a.payload.and_then(|p| p.url).map(Cow::into_owned),
                        )
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
                InboundKind::Unknown {
                    kind: "message".to_owned(),
                }
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
                    None => InboundKind::Unknown {
                        kind: "postback".to_owned(),
                    },
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
                None => InboundKind::Unknown {
                    kind: "referral".to_owned(),
                },
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
            let key = keyed("read", None, &r.watermark.as_millis().to_string());
            (
                key,
                InboundKind::Read {
                    watermark: r.watermark,
                },
            )
        }
        EventKind::Reaction(r) => {
            let detail = format!("{:?}|{:?}|{:?}", r.mid, r.action, r.reaction);
            (
                keyed("reaction", None, &detail),
                InboundKind::Unknown {
                    kind: "reaction".to_owned(),
                },
            )
        }
        other => {
            let name = other.name();
            (
                keyed(name, None, name),
                InboundKind::Unknown {
                    kind: name.to_owned(),
                },
            )
        }
    };
    Ok(Inbound::new(key, from, at, kind).with_standby(standby))
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
        to_inbound(
            "P",
            event,
            false,
            entry.time.unwrap_or(Timestamp::from_millis(1)),
        )
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
                watermark: Timestamp::from_millis(4)
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
    fn other_kinds_are_kept_as_unknown_and_nameless_events_are_dropped() {
        let reaction = convert(r#"{"sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":5,"reaction":{"mid":"m1","action":"react","reaction":"love"}}"#).unwrap();
        assert_eq!(
            reaction.kind,
            InboundKind::Unknown {
                kind: "reaction".into()
            }
        );
        let future =
            convert(r#"{"sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":5,"brand_new":{}}"#)
                .unwrap();
        assert_eq!(
            future.kind,
            InboundKind::Unknown {
                kind: "brand_new".into()
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
