//! Answer payloads: what a button or quick reply of a flow's question sends back.
//!
//! A payload names the flow instance, the *visit* (the position of the question's step in
//! the instance's history, so a question asked twice in a loop has two visits) and the option,
//! and carries a MAC so that a payload the engine did not make is refused before anything in
//! it is believed.
//!
//! # Format (version 1)
//!
//! `tdf1.` followed by base64url (no padding) of
//! `key_id:u8 | visit:u32be | option:u8 | instance id bytes | mac:[u8;12]`, where `mac` is
//! HMAC-SHA256 over `"tidings.flow-answer.v1" | everything before the mac`, truncated to 96
//! bits. With the engine's 22-character instance ids a payload is 59 characters; with the
//! longest instance id (255 bytes) it stays under 400, well within Messenger's 1000.
//!
//! Payloads do not expire: an answer to a question asked a week ago is still the contact's
//! answer. Whether it still counts is the engine's call (the visit must be the current one).
//!
//! ```
//! use tidings::{
//!     process::{InstanceId, payload::{AnswerPayload, PayloadError, PayloadKey, PayloadKeys}},
//!     secrecy::SecretSlice,
//! };
//!
//! let keys = PayloadKeys::new(PayloadKey::new(1, SecretSlice::from(vec![7u8; 32]))?);
//! let answer = AnswerPayload::new(InstanceId::new("i-42")?, 3, 1);
//! let text = keys.sign(&answer);
//! assert!(text.starts_with("tdf1."));
//! assert_eq!(keys.verify(&text)?, answer);
//!
//! assert_eq!(keys.verify("GET_STARTED"), Err(PayloadError::NotOurs));
//! let forger = PayloadKeys::new(PayloadKey::new(1, SecretSlice::from(vec![8u8; 32]))?);
//! assert_eq!(keys.verify(&forger.sign(&answer)), Err(PayloadError::Forged));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;

use super::InstanceId;

type HmacSha256 = Hmac<Sha256>;

/// What every payload of this format starts with.
pub const PREFIX: &str = "tdf1.";
const DOMAIN: &[u8] = b"tidings.flow-answer.v1";
const MAC_LEN: usize = 12;
const FIXED_LEN: usize = 1 + 4 + 1 + MAC_LEN;
/// Shortest secret accepted for a [`PayloadKey`], in bytes.
pub const MIN_KEY_LEN: usize = 32;
/// Length of the longest payload a key signs (an instance id of the longest length), which is
/// the longest text [`PayloadKeys::verify`] reads: anything longer is refused unread as
/// [`PayloadError::TooLong`].
pub const MAX_PAYLOAD_LEN: usize =
    PREFIX.len() + (4 * (FIXED_LEN + crate::error::MAX_ID_LEN)).div_ceil(3);

/// Why a payload was refused, or a key could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// Not a flow answer (the host's own buttons, Get Started): route it on.
    #[error("not a flow answer payload")]
    NotOurs,
    /// It claims to be a flow answer but is malformed, names an unknown key, or its MAC does
    /// not match: forged or altered.
    #[error("flow answer payload is forged or altered")]
    Forged,
    /// It claims to be a flow answer but is longer than any payload ([`MAX_PAYLOAD_LEN`]): it
    /// was refused without being decoded. Holds the text's length.
    #[error("a flow answer payload is at most {MAX_PAYLOAD_LEN} characters, this one has {0}")]
    TooLong(usize),
    /// A key secret shorter than [`MIN_KEY_LEN`] bytes.
    #[error("payload key must be at least {MIN_KEY_LEN} bytes, got {0}")]
    WeakKey(usize),
    /// Two keys with one id.
    #[error("two payload keys share id {0}")]
    DuplicateKeyId(u8),
}

/// The answer a payload stands for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct AnswerPayload {
    /// The flow instance asked.
    pub instance: InstanceId,
    /// The visit of the question step (its position in the instance's history).
    pub visit: u32,
    /// The chosen option (0-based).
    pub option: u8,
}

impl AnswerPayload {
    /// The answer `option` to the question at `visit` of `instance`.
    pub fn new(instance: InstanceId, visit: u32, option: u8) -> Self {
        AnswerPayload {
            instance,
            visit,
            option,
        }
    }
}

/// A key that signs answer payloads; its secret is kept only as keyed HMAC state and never
/// printed.
#[derive(Clone)]
pub struct PayloadKey {
    id: u8,
    mac: HmacSha256,
}

impl PayloadKey {
    /// A key with id `id`; the secret must be at least [`MIN_KEY_LEN`] random bytes.
    pub fn new(id: u8, secret: SecretSlice<u8>) -> Result<Self, PayloadError> {
        let bytes = secret.expose_secret();
        if bytes.len() < MIN_KEY_LEN {
            return Err(PayloadError::WeakKey(bytes.len()));
        }
        let mut mac =
            HmacSha256::new_from_slice(bytes).map_err(|_| PayloadError::WeakKey(bytes.len()))?;
        mac.update(DOMAIN);
        Ok(PayloadKey { id, mac })
    }

    /// The key's id.
    pub fn id(&self) -> u8 {
        self.id
    }

    fn tag(&self, signed: &[u8]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(signed);
        mac
    }
}

impl fmt::Debug for PayloadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PayloadKey")
            .field("id", &self.id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// Signs payloads with the current key and verifies them with any key held (rotation: keep the
/// old key with [`accept`](PayloadKeys::accept) while questions it signed may still be
/// answered).
#[derive(Clone)]
pub struct PayloadKeys {
    current: PayloadKey,
    accepted: Vec<PayloadKey>,
}

impl fmt::Debug for PayloadKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PayloadKeys")
            .field("current_key", &self.current.id)
            .field(
                "accepted_keys",
                &self.accepted.iter().map(|k| k.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl PayloadKeys {
    /// Keys that sign with `current`.
    pub fn new(current: PayloadKey) -> Self {
        PayloadKeys {
            current,
            accepted: Vec::new(),
        }
    }

    /// Also accepts payloads signed with `key`.
    pub fn accept(mut self, key: PayloadKey) -> Result<Self, PayloadError> {
        if key.id == self.current.id || self.accepted.iter().any(|k| k.id == key.id) {
            return Err(PayloadError::DuplicateKeyId(key.id));
        }
        self.accepted.push(key);
        Ok(self)
    }

    /// The payload text for `answer`.
    pub fn sign(&self, answer: &AnswerPayload) -> String {
        let instance = answer.instance.as_str().as_bytes();
        let mut buf = Vec::with_capacity(FIXED_LEN + instance.len());
        buf.push(self.current.id);
        buf.extend_from_slice(&answer.visit.to_be_bytes());
        buf.push(answer.option);
        buf.extend_from_slice(instance);
        let tag = self.current.tag(&buf).finalize().into_bytes();
        buf.extend_from_slice(&tag[..MAC_LEN]);
        let mut text = String::with_capacity(PREFIX.len() + buf.len() * 4 / 3 + 4);
        text.push_str(PREFIX);
        URL_SAFE_NO_PAD.encode_string(&buf, &mut text);
        text
    }

    /// The answer `text` stands for, if this engine signed it. The MAC is checked in constant
    /// time before anything in the payload is read.
    pub fn verify(&self, text: &str) -> Result<AnswerPayload, PayloadError> {
        let Some(body) = text.strip_prefix(PREFIX) else {
            return Err(PayloadError::NotOurs);
        };
        if text.len() > MAX_PAYLOAD_LEN {
            return Err(PayloadError::TooLong(text.len()));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| PayloadError::Forged)?;
        if bytes.len() <= FIXED_LEN {
            return Err(PayloadError::Forged);
        }
        let key = std::iter::once(&self.current)
            .chain(&self.accepted)
            .find(|k| k.id == bytes[0])
            .ok_or(PayloadError::Forged)?;
        let (signed, tag) = bytes.split_at(bytes.len() - MAC_LEN);
        key.tag(signed)
            .verify_truncated_left(tag)
            .map_err(|_| PayloadError::Forged)?;
        let visit = u32::from_be_bytes([signed[1], signed[2], signed[3], signed[4]]);
        let option = signed[5];
        let instance = std::str::from_utf8(&signed[6..])
            .ok()
            .and_then(|s| InstanceId::new(s).ok())
            .ok_or(PayloadError::Forged)?;
        Ok(AnswerPayload {
            instance,
            visit,
            option,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(fill: u8, id: u8) -> PayloadKeys {
        PayloadKeys::new(PayloadKey::new(id, SecretSlice::from(vec![fill; 32])).unwrap())
    }

    fn answer() -> AnswerPayload {
        AnswerPayload::new(InstanceId::new("i0123456789abcdefghijk").unwrap(), 7, 2)
    }

    #[test]
    fn payloads_are_short_and_round_trip() {
        let k = keys(1, 1);
        let text = k.sign(&answer());
        assert_eq!(text.len(), 59, "{text}");
        assert_eq!(k.verify(&text), Ok(answer()));
        let longest = AnswerPayload::new(InstanceId::new("x".repeat(255)).unwrap(), u32::MAX, 2);
        let text = k.sign(&longest);
        // The longest payload is exactly as long as verify reads, and well under Messenger's
        // 1,000-character payload limit.
        assert_eq!(text.len(), MAX_PAYLOAD_LEN);
        assert!(text.len() < 400, "{}", text.len());
        assert_eq!(k.verify(&text), Ok(longest));
        // One character more is refused by its length alone, before any decoding.
        let one_more = format!("{text}A");
        assert_eq!(
            k.verify(&one_more),
            Err(PayloadError::TooLong(text.len() + 1))
        );
        assert!(
            PayloadError::TooLong(text.len() + 1)
                .to_string()
                .contains(&MAX_PAYLOAD_LEN.to_string())
        );
    }

    #[test]
    fn any_change_is_refused_as_forged() {
        let k = keys(1, 1);
        let text = k.sign(&answer());
        let mut bytes = URL_SAFE_NO_PAD.decode(&text[PREFIX.len()..]).unwrap();
        for i in 0..bytes.len() {
            bytes[i] ^= 0x01;
            let altered = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(&bytes));
            assert_eq!(k.verify(&altered), Err(PayloadError::Forged), "byte {i}");
            bytes[i] ^= 0x01;
        }
        for bad in ["tdf1.", "tdf1.!!!", "tdf1.AAAA"] {
            assert_eq!(k.verify(bad), Err(PayloadError::Forged), "{bad}");
        }
        let long = format!("{PREFIX}{}", "A".repeat(2000));
        assert_eq!(k.verify(&long), Err(PayloadError::TooLong(2005)));
        assert_eq!(k.verify("YES"), Err(PayloadError::NotOurs));
    }

    #[test]
    fn rotation_keeps_old_payloads_valid() {
        let old = keys(1, 1);
        let text = old.sign(&answer());
        let rotated = keys(2, 2)
            .accept(PayloadKey::new(1, SecretSlice::from(vec![1; 32])).unwrap())
            .unwrap();
        assert_eq!(rotated.verify(&text), Ok(answer()));
        assert_eq!(keys(2, 2).verify(&text), Err(PayloadError::Forged));
        assert!(matches!(
            PayloadKey::new(1, SecretSlice::from(vec![1; 31])),
            Err(PayloadError::WeakKey(31))
        ));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let k = keys(0x41, 1);
        let debug = format!("{k:?} {:?}", k.current);
        assert!(
            !debug.contains("AAAA") && !debug.contains("65, 65"),
            "{debug}"
        );
        assert!(debug.contains("[redacted]"));
    }
}
