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
//! Payloads are signed with a [`KeyRing`]: its current key signs, any key it holds verifies
//! (rotation: keep the old key while questions it signed may still be answered).
//!
//! ```
//! use tidings::{
//!     keys::{KeyRing, SigningKey},
//!     process::{InstanceId, payload::{AnswerPayload, PayloadError}},
//!     secrecy::SecretSlice,
//! };
//!
//! let keys = KeyRing::new(SigningKey::new(1, SecretSlice::from(vec![7u8; 32]))?);
//! let answer = AnswerPayload::new(InstanceId::new("i-42")?, 3, 1);
//! let text = answer.sign(&keys);
//! assert!(text.starts_with("tdf1."));
//! assert_eq!(AnswerPayload::verify(&text, &keys)?, answer);
//!
//! assert_eq!(AnswerPayload::verify("GET_STARTED", &keys), Err(PayloadError::NotOurs));
//! let forger = KeyRing::new(SigningKey::new(1, SecretSlice::from(vec![8u8; 32]))?);
//! assert_eq!(AnswerPayload::verify(&answer.sign(&forger), &keys), Err(PayloadError::Forged));
//! # Ok::<(), tidings::Error>(())
//! ```

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::Mac;

use super::InstanceId;
use crate::keys::{HmacSha256, KeyRing, SigningKey};

/// What every payload of this format starts with.
pub const PREFIX: &str = "tdf1.";
const DOMAIN: &[u8] = b"tidings.flow-answer.v1";
const MAC_LEN: usize = 12;
const FIXED_LEN: usize = 1 + 4 + 1 + MAC_LEN;
/// Length of the longest payload a key signs (an instance id of the longest length), which is
/// the longest text [`AnswerPayload::verify`] reads: anything longer is refused unread as
/// [`PayloadError::TooLong`].
pub const MAX_PAYLOAD_LEN: usize =
    PREFIX.len() + (4 * (FIXED_LEN + crate::error::MAX_ID_LEN)).div_ceil(3);

/// Why a payload was refused.
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

/// The MAC state of `key` over the domain label and `signed`.
fn tag(key: &SigningKey, signed: &[u8]) -> HmacSha256 {
    let mut mac = key.mac();
    mac.update(DOMAIN);
    mac.update(signed);
    mac
}

impl AnswerPayload {
    /// The payload text for this answer, signed with the current key of `keys`.
    pub fn sign(&self, keys: &KeyRing) -> String {
        let key = keys.current();
        let instance = self.instance.as_str().as_bytes();
        let mut buf = Vec::with_capacity(FIXED_LEN + instance.len());
        buf.push(key.id());
        buf.extend_from_slice(&self.visit.to_be_bytes());
        buf.push(self.option);
        buf.extend_from_slice(instance);
        let mac = tag(key, &buf).finalize().into_bytes();
        buf.extend_from_slice(&mac[..MAC_LEN]);
        let mut text = String::with_capacity(PREFIX.len() + buf.len() * 4 / 3 + 4);
        text.push_str(PREFIX);
        URL_SAFE_NO_PAD.encode_string(&buf, &mut text);
        text
    }

    /// The answer `text` stands for, if a key of `keys` signed it. The MAC is checked in
    /// constant time before anything in the payload is read.
    pub fn verify(text: &str, keys: &KeyRing) -> Result<AnswerPayload, PayloadError> {
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
        let key = keys.get(bytes[0]).ok_or(PayloadError::Forged)?;
        let (signed, mac) = bytes.split_at(bytes.len() - MAC_LEN);
        tag(key, signed)
            .verify_truncated_left(mac)
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
    use secrecy::SecretSlice;

    fn key(fill: u8, id: u8) -> SigningKey {
        SigningKey::new(id, SecretSlice::from(vec![fill; 32])).unwrap()
    }

    fn keys(fill: u8, id: u8) -> KeyRing {
        KeyRing::new(key(fill, id))
    }

    /// The ring's view of payloads, as the engine uses it.
    trait Payloads {
        fn sign(&self, answer: &AnswerPayload) -> String;
        fn verify(&self, text: &str) -> Result<AnswerPayload, PayloadError>;
    }

    impl Payloads for KeyRing {
        fn sign(&self, answer: &AnswerPayload) -> String {
            answer.sign(self)
        }
        fn verify(&self, text: &str) -> Result<AnswerPayload, PayloadError> {
            AnswerPayload::verify(text, self)
        }
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
        let rotated = keys(2, 2).accept(key(1, 1)).unwrap();
        assert_eq!(rotated.verify(&text), Ok(answer()));
        // The ring signs with its current key: the new key alone verifies what it signs.
        assert_eq!(keys(2, 2).verify(&rotated.sign(&answer())), Ok(answer()));
        assert_eq!(keys(2, 2).verify(&text), Err(PayloadError::Forged));
    }

    #[test]
    fn a_mac_without_the_domain_label_is_refused() {
        // What a token signer sharing this ring would make over the same bytes.
        let k = keys(1, 1);
        let mut bytes = URL_SAFE_NO_PAD
            .decode(&k.sign(&answer())[PREFIX.len()..])
            .unwrap();
        let signed = bytes.len() - MAC_LEN;
        let mut mac = k.current().mac();
        mac.update(&bytes[..signed]);
        let undomained = mac.finalize().into_bytes();
        bytes[signed..].copy_from_slice(&undomained[..MAC_LEN]);
        let text = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(&bytes));
        assert_eq!(k.verify(&text), Err(PayloadError::Forged));
    }
}
