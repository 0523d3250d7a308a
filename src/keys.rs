//! The signing keys behind every MAC the crate makes: connect and login tokens
//! ([`Tokens`](crate::token::Tokens)) and flow answer payloads
//! ([`AnswerPayload`](crate::process::payload::AnswerPayload)).
//!
//! A [`SigningKey`] is a secret of at least [`MIN_KEY_LEN`] bytes with a one-byte id that
//! travels in everything it signs. A [`KeyRing`] signs with its current key and verifies with
//! any key it holds, which is how keys rotate: make the new key current, keep the old one with
//! [`KeyRing::accept`] while what it signed may still come back (an unexpired token, a
//! question not yet answered), then drop it.
//!
//! One ring may serve tokens and payloads alike: each format authenticates different bytes
//! (a payload's MAC covers a domain label first, a token's starts with its version byte), so a
//! MAC made for one is never accepted by the other.
//!
//! ```
//! use tidings::{keys::{KeyError, KeyRing, SigningKey}, secrecy::SecretSlice};
//!
//! let old = SigningKey::new(1, SecretSlice::from(vec![1u8; 32]))?;
//! let new = SigningKey::new(2, SecretSlice::from(vec![2u8; 32]))?;
//! let ring = KeyRing::new(new).accept(old)?;
//! assert_eq!(ring.current_id(), 2);
//! assert_eq!(ring.ids().collect::<Vec<_>>(), [2, 1]);
//!
//! let again = SigningKey::new(2, SecretSlice::from(vec![3u8; 32]))?;
//! assert_eq!(ring.accept(again).unwrap_err(), KeyError::DuplicateKeyId(2));
//! # Ok::<(), KeyError>(())
//! ```

use std::fmt;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Shortest secret accepted for a [`SigningKey`], in bytes.
pub const MIN_KEY_LEN: usize = 32;

/// Why a key or a ring could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The secret is shorter than [`MIN_KEY_LEN`] bytes. Holds its length.
    #[error("a signing key secret must be at least {MIN_KEY_LEN} bytes, got {0}")]
    WeakKey(usize),
    /// Two keys of one ring share an id.
    #[error("two signing keys share id {0}")]
    DuplicateKeyId(u8),
}

/// A secret with its id. The secret is kept only as keyed HMAC-SHA256 state and never printed.
#[derive(Clone)]
pub struct SigningKey {
    id: u8,
    mac: HmacSha256,
}

impl SigningKey {
    /// A key with id `id`; the secret must be at least [`MIN_KEY_LEN`] random bytes.
    pub fn new(id: u8, secret: SecretSlice<u8>) -> Result<Self, KeyError> {
        let bytes = secret.expose_secret();
        if bytes.len() < MIN_KEY_LEN {
            return Err(KeyError::WeakKey(bytes.len()));
        }
        let mac = HmacSha256::new_from_slice(bytes).map_err(|_| KeyError::WeakKey(bytes.len()))?;
        Ok(SigningKey { id, mac })
    }

    /// The key's id.
    pub fn id(&self) -> u8 {
        self.id
    }

    /// The MAC state keyed with this secret, ready for the bytes to authenticate.
    pub(crate) fn mac(&self) -> HmacSha256 {
        self.mac.clone()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// The current key and the older keys still accepted; see the [module docs](self).
#[derive(Clone)]
pub struct KeyRing {
    current: SigningKey,
    accepted: Vec<SigningKey>,
}

impl KeyRing {
    /// A ring that signs with `current` and accepts nothing else yet.
    pub fn new(current: SigningKey) -> Self {
        KeyRing {
            current,
            accepted: Vec::new(),
        }
    }

    /// Also accepts what `key` signed (an older key during rotation). Refused when the ring
    /// already holds a key with that id: which of the two verifies would be a guess.
    pub fn accept(mut self, key: SigningKey) -> Result<Self, KeyError> {
        if self.get(key.id).is_some() {
            return Err(KeyError::DuplicateKeyId(key.id));
        }
        self.accepted.push(key);
        Ok(self)
    }

    /// The id of the key that signs.
    pub fn current_id(&self) -> u8 {
        self.current.id
    }

    /// Every id the ring verifies with, the current one first.
    pub fn ids(&self) -> impl Iterator<Item = u8> + '_ {
        std::iter::once(&self.current)
            .chain(&self.accepted)
            .map(SigningKey::id)
    }

    /// The key that signs.
    pub(crate) fn current(&self) -> &SigningKey {
        &self.current
    }

    /// The key with id `id`, if the ring holds it.
    pub(crate) fn get(&self, id: u8) -> Option<&SigningKey> {
        std::iter::once(&self.current)
            .chain(&self.accepted)
            .find(|k| k.id == id)
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("current_key", &self.current.id)
            .field(
                "accepted_keys",
                &self.accepted.iter().map(|k| k.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl From<SigningKey> for KeyRing {
    fn from(current: SigningKey) -> Self {
        KeyRing::new(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u8, fill: u8) -> SigningKey {
        SigningKey::new(id, SecretSlice::from(vec![fill; MIN_KEY_LEN])).unwrap()
    }

    #[test]
    fn a_short_secret_is_refused_with_its_length() {
        let short = SigningKey::new(1, SecretSlice::from(vec![0u8; MIN_KEY_LEN - 1]));
        assert_eq!(short.unwrap_err(), KeyError::WeakKey(MIN_KEY_LEN - 1));
    }

    #[test]
    fn a_ring_finds_each_key_by_id_and_refuses_a_second_key_with_one() {
        let ring = KeyRing::new(key(3, 1)).accept(key(1, 2)).unwrap();
        assert_eq!(ring.current().id(), 3);
        assert_eq!(ring.get(1).map(SigningKey::id), Some(1));
        assert_eq!(ring.get(3).map(SigningKey::id), Some(3));
        assert!(ring.get(2).is_none());
        assert_eq!(
            ring.clone().accept(key(3, 9)).unwrap_err(),
            KeyError::DuplicateKeyId(3)
        );
        assert_eq!(
            ring.accept(key(1, 9)).unwrap_err(),
            KeyError::DuplicateKeyId(1)
        );
    }

    #[test]
    fn debug_shows_ids_and_never_a_secret() {
        let ring = KeyRing::from(key(7, b's')).accept(key(5, b's')).unwrap();
        let text = format!("{ring:?} {:?}", key(7, b's'));
        assert_eq!(
            text,
            "KeyRing { current_key: 7, accepted_keys: [5] } \
             SigningKey { id: 7, secret: \"[redacted]\" }"
        );
    }
}
