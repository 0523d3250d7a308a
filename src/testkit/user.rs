//! Plays a Messenger user: builds webhook bodies in Meta's shape, signs them and posts them to
//! the host's webhook.
//!
//! Each builder method returns a whole webhook body for one event,
//! `{"object":"page","entry":[{"id":PAGE,"time":MS,"messaging":[{"sender":{"id":PSID},"recipient":{"id":PAGE},"timestamp":MS,..}]}]}`;
//! [`FakeUser::batch`] merges several into one delivery, as Meta batches them.
//! [`FakeUser::post`] sends a body the way Meta does: compact JSON, signed in
//! `X-Hub-Signature-256`.
//!
//! ```
//! use tidings::{
//!     clock::Timestamp,
//!     messenger::AppSecret,
//!     testkit::user::FakeUser,
//! };
//!
//! let ann = FakeUser::new("104812345678901", "6789012345678901");
//! let at = Timestamp::from_millis(1_718_000_000_001);
//! let body = FakeUser::batch([
//!     ann.get_started_with_ref("m_1", "ticket-4411", at),
//!     ann.text("m_2", "Hi, I need help with order 4411", at),
//! ]);
//! assert_eq!(body["entry"].as_array().map(Vec::len), Some(2));
//!
//! let secret = AppSecret::new("0123456789abcdef0123456789abcdef");
//! let signature = FakeUser::sign(body.to_string().as_bytes(), &secret);
//! assert!(signature.starts_with("sha256="));
//! // In an async test: `FakeUser::post(&webhook_url, &body, &secret).await?`.
//! ```

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::{clock::Timestamp, messenger::AppSecret};

/// The payload the Get Started button carries in [`FakeUser::get_started_with_ref`].
pub const GET_STARTED_PAYLOAD: &str = "GET_STARTED";

/// How long [`FakeUser::post`] waits for the webhook: Meta gives up after 20 seconds.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(20);

/// A Messenger user (`psid`) talking to a Page (`page_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeUser {
    page_id: String,
    psid: String,
}

impl FakeUser {
    /// The user `psid` of Page `page_id`.
    pub fn new(page_id: impl Into<String>, psid: impl Into<String>) -> Self {
        FakeUser {
            page_id: page_id.into(),
            psid: psid.into(),
        }
    }

    /// The Page's id.
    pub fn page_id(&self) -> &str {
        &self.page_id
    }

    /// The user's page-scoped id.
    pub fn psid(&self) -> &str {
        &self.psid
    }

    /// A `messages` event: the user wrote `text`.
    pub fn text(&self, mid: &str, text: &str, at: Timestamp) -> Value {
        self.event(at, Some(at), "message", json!({ "mid": mid, "text": text }))
    }

    /// A `messages` event for a tapped quick reply: `text` is the reply's title.
    pub fn quick_reply(&self, mid: &str, text: &str, payload: &str, at: Timestamp) -> Value {
        self.event(
            at,
            Some(at),
            "message",
            json!({ "mid": mid, "text": text, "quick_reply": { "payload": payload } }),
        )
    }

    /// A `messaging_postbacks` event: the user tapped a postback button titled `title`.
    pub fn postback(&self, mid: &str, title: &str, payload: &str, at: Timestamp) -> Value {
        self.event(
            at,
            Some(at),
            "postback",
            json!({ "mid": mid, "title": title, "payload": payload }),
        )
    }

    /// The Get Started postback of a new thread opened through `m.me/<page>?ref=<link_ref>`:
    /// payload [`GET_STARTED_PAYLOAD`] and
    /// `referral {ref, source: "SHORTLINK", type: "OPEN_THREAD"}`.
    pub fn get_started_with_ref(&self, mid: &str, link_ref: &str, at: Timestamp) -> Value {
        self.event(
            at,
            Some(at),
            "postback",
            json!({
                "mid": mid,
                "title": "Get Started",
                "payload": GET_STARTED_PAYLOAD,
                "referral": shortlink(link_ref),
            }),
        )
    }

    /// A `messaging_referrals` event: the user opened an existing thread through
    /// `m.me/<page>?ref=<link_ref>`.
    pub fn referral(&self, link_ref: &str, at: Timestamp) -> Value {
        self.event(at, Some(at), "referral", shortlink(link_ref))
    }

    /// A `message_deliveries` event: every message sent before `watermark` was delivered.
    ///
    /// As in Meta's example the event has no `timestamp`; the entry's `time` is the
    /// watermark.
    pub fn delivery(&self, mids: &[&str], watermark: Timestamp) -> Value {
        self.event(
            watermark,
            None,
            "delivery",
            json!({ "mids": mids, "watermark": watermark.as_millis() }),
        )
    }

    /// A `message_reads` event: every message sent at or before `watermark` was read. The
    /// event's `timestamp` and the entry's `time` are the watermark.
    pub fn read(&self, watermark: Timestamp) -> Value {
        self.event(
            watermark,
            Some(watermark),
            "read",
            json!({ "watermark": watermark.as_millis() }),
        )
    }

    /// One webhook body holding every entry of `bodies`, in order, as Meta batches several
    /// events (of several users and Pages) into one POST. Values without an `entry` array add
    /// nothing.
    pub fn batch(bodies: impl IntoIterator<Item = Value>) -> Value {
        let entries: Vec<Value> = bodies
            .into_iter()
            .filter_map(|mut body| match body.get_mut("entry")?.take() {
                Value::Array(entries) => Some(entries),
                _ => None,
            })
            .flatten()
            .collect();
        json!({ "object": "page", "entry": entries })
    }

    /// The `X-Hub-Signature-256` value for `body`: `sha256=` and the lowercase hex
    /// HMAC-SHA256 of the exact bytes, keyed by the app secret.
    pub fn sign(body: &[u8], secret: &AppSecret) -> String {
        // HMAC hashes or pads a key of any length, so this cannot fail.
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.secret().as_bytes())
            .expect("HMAC-SHA256 takes keys of any length");
        mac.update(body);
        format!("sha256={}", const_hex::encode(mac.finalize().into_bytes()))
    }

    /// Posts `body` to the webhook at `url` as Meta does: compact JSON, `Content-Type:
    /// application/json` and a valid `X-Hub-Signature-256`. Answers the status and the response
    /// body; gives up after [`WEBHOOK_TIMEOUT`].
    pub async fn post(
        url: &str,
        body: &Value,
        secret: &AppSecret,
    ) -> Result<(u16, String), reqwest::Error> {
        let bytes = body.to_string();
        let signature = Self::sign(bytes.as_bytes(), secret);
        let response = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .build()?
            .post(url)
            .header("X-Hub-Signature-256", signature)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(bytes)
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await?))
    }

    /// A one-event body; `timestamp` is left out when `None`.
    fn event(
        &self,
        time: Timestamp,
        timestamp: Option<Timestamp>,
        kind: &str,
        data: Value,
    ) -> Value {
        let mut event = json!({
            "sender": { "id": self.psid },
            "recipient": { "id": self.page_id },
        });
        if let Some(timestamp) = timestamp {
            event["timestamp"] = json!(timestamp.as_millis());
        }
        event[kind] = data;
        json!({
            "object": "page",
            "entry": [{ "id": self.page_id, "time": time.as_millis(), "messaging": [event] }],
        })
    }
}

fn shortlink(link_ref: &str) -> Value {
    json!({ "ref": link_ref, "source": "SHORTLINK", "type": "OPEN_THREAD" })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    const TV1: &str = r#"{"object":"page","entry":[{"id":"104812345678901","time":1718000000123,"messaging":[{"sender":{"id":"6789012345678901"},"recipient":{"id":"104812345678901"},"timestamp":1718000000001,"message":{"mid":"m_AbCdEf0123456789","text":"Hi, I need help with order 4411"}}]}]}"#;
    const TV2: &str = r#"{"object":"page","entry":[{"id":"104812345678901","time":1718000100456,"messaging":[{"sender":{"id":"6789012345678901"},"recipient":{"id":"104812345678901"},"timestamp":1718000100321,"postback":{"mid":"m_PbX9876543210","title":"Get Started","payload":"GET_STARTED","referral":{"ref":"ticket-4411","source":"SHORTLINK","type":"OPEN_THREAD"}}}]}]}"#;
    const TV3: &str = r#"{"object":"page","entry":[{"id":"104812345678901","time":1718000200789,"messaging":[{"sender":{"id":"6789012345678901"},"recipient":{"id":"104812345678901"},"timestamp":1718000200700,"referral":{"ref":"ticket-4412","source":"SHORTLINK","type":"OPEN_THREAD"}}]}]}"#;

    fn user() -> FakeUser {
        FakeUser::new("104812345678901", "6789012345678901")
    }

    fn parsed(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    /// Sets an entry's `time`, which the vectors give apart from the event's `timestamp`.
    fn with_entry_time(mut body: Value, time: i64) -> Value {
        body["entry"][0]["time"] = json!(time);
        body
    }

    #[test]
    fn sign_matches_the_digest_vectors() {
        let secret = AppSecret::new(SECRET);
        assert_eq!(
            FakeUser::sign(TV1.as_bytes(), &secret),
            "sha256=e4e278057d6b7aa160f27e9702eb2f7f96d88209ae4bfa1c9f749d15cdd26a46"
        );
        assert_eq!(
            FakeUser::sign(TV2.as_bytes(), &secret),
            "sha256=0fa26ddf7f79f05594221b969eda495d44d24f982260885098fd73259c93e44e"
        );
    }

    #[test]
    fn bodies_have_the_digest_shape() {
        let text = user().text(
            "m_AbCdEf0123456789",
            "Hi, I need help with order 4411",
            Timestamp::from_millis(1_718_000_000_001),
        );
        assert_eq!(with_entry_time(text, 1_718_000_000_123), parsed(TV1));

        let get_started = user().get_started_with_ref(
            "m_PbX9876543210",
            "ticket-4411",
            Timestamp::from_millis(1_718_000_100_321),
        );
        assert_eq!(with_entry_time(get_started, 1_718_000_100_456), parsed(TV2));

        let referral = user().referral("ticket-4412", Timestamp::from_millis(1_718_000_200_700));
        assert_eq!(with_entry_time(referral, 1_718_000_200_789), parsed(TV3));
    }

    #[test]
    fn delivery_has_no_timestamp_and_read_has_one() {
        let watermark = Timestamp::from_millis(1_718_000_299_000);
        let delivery = user().delivery(&["m_Out0001"], watermark);
        let event = &delivery["entry"][0]["messaging"][0];
        assert_eq!(
            event["delivery"],
            json!({ "mids": ["m_Out0001"], "watermark": 1_718_000_299_000_i64 })
        );
        assert!(event.get("timestamp").is_none());

        let read = user().read(watermark);
        let event = &read["entry"][0]["messaging"][0];
        assert_eq!(event["read"]["watermark"], json!(1_718_000_299_000_i64));
        assert_eq!(event["timestamp"], json!(1_718_000_299_000_i64));
    }

    #[test]
    fn quick_reply_and_postback_carry_their_payloads() {
        let at = Timestamp::from_millis(5);
        let qr = user().quick_reply("m_1", "Yes", "CSAT_YES", at);
        assert_eq!(
            qr["entry"][0]["messaging"][0]["message"],
            json!({ "mid": "m_1", "text": "Yes", "quick_reply": { "payload": "CSAT_YES" } })
        );
        let pb = user().postback("m_2", "Start", "L3_START", at);
        assert_eq!(
            pb["entry"][0]["messaging"][0]["postback"],
            json!({ "mid": "m_2", "title": "Start", "payload": "L3_START" })
        );
    }
}
