//! Signed, expiring, URL-safe tokens for m.me `ref`s and login links.
//!
//! A token carries a small set of [`Claims`] — a [`Purpose`], a subject (the contact), an expiry,
//! a random nonce and optional data — signed with HMAC-SHA256 under one of several keys. It is
//! base64url without padding, so it can sit in an m.me `ref` or a query string as is, and it is
//! short: a "connect" token for a 20-character contact id is 87 characters, under the 150 that
//! Messenger's strictest ref form allows.
//!
//! # Verification
//!
//! [`Tokens::verify`] refuses, each with its own [`TokenError`] variant: malformed text, an
//! unsupported format version, a key id it does not know, a signature that does not match (any
//! change to the token), a token made for another purpose, and an expired token. The signature
//! is checked in constant time (`hmac`'s `verify_truncated_left`) before any claim is read, so
//! nothing from a forged token is ever interpreted.
//!
//! Tokens are stateless: making one single-use is the caller's job, by remembering
//! [`Claims::nonce`] until [`Claims::expires_at`] (the identity and login-link code does this).
//!
//! # Key rotation
//!
//! Each key has a one-byte id that travels in the token. [`Tokens`] signs with the current key
//! of its [`KeyRing`] and verifies with any key the ring holds: make the new key current, keep
//! the old one with [`KeyRing::accept`] until the tokens it signed have expired, then drop it.
//!
//! # Format (version 1)
//!
//! `version:u8 | key_id:u8 | purpose_len:u8 | purpose | subject_len:u8 | subject |
//! expires_at_secs:u64be | nonce:[u8;8] | data_len:u16be | data | mac:[u8;16]`, where `mac` is the
//! HMAC-SHA256 of everything before it, truncated to its first 128 bits (RFC 2104 §5 allows
//! truncation to no less than half the output).
//!
//! ```
//! use std::time::Duration;
//! use tidings::{
//!     clock::{ManualClock, Timestamp},
//!     keys::SigningKey,
//!     secrecy::SecretSlice,
//!     token::{Purpose, TokenError, Tokens},
//! };
//!
//! let clock = ManualClock::new(Timestamp::from_secs(1_718_000_000));
//! let key = SigningKey::new(1, SecretSlice::from(b"a 32-byte or longer random secret".to_vec()))?;
//! let tokens = Tokens::new(key).with_clock(clock.shared());
//!
//! let token = tokens.issue(&Purpose::CONNECT, "user-42", Duration::from_secs(15 * 60))?;
//! let claims = tokens.verify(&token, &Purpose::CONNECT)?;
//! assert_eq!(claims.subject(), "user-42");
//!
//! assert!(matches!(tokens.verify(&token, &Purpose::LOGIN), Err(TokenError::WrongPurpose { .. })));
//! clock.advance(Duration::from_secs(16 * 60));
//! assert!(matches!(tokens.verify(&token, &Purpose::CONNECT), Err(TokenError::Expired { .. })));
//! # Ok::<(), tidings::Error>(())
//! ```

use std::{borrow::Cow, fmt, time::Duration};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::Mac;

use crate::{
    clock::{SharedClock, SystemClock, Timestamp},
    keys::KeyRing,
};

const VERSION: u8 = 1;
const MAC_LEN: usize = 16;
const NONCE_LEN: usize = 8;
/// Fixed bytes: version, key id, two length bytes, expiry, nonce, data length, mac.
const FIXED_LEN: usize = 1 + 1 + 1 + 1 + 8 + NONCE_LEN + 2 + MAC_LEN;

/// Longest purpose, in bytes.
pub const MAX_PURPOSE_LEN: usize = 32;
/// Longest subject, in bytes.
pub const MAX_SUBJECT_LEN: usize = 255;
/// Longest data, in bytes.
pub const MAX_DATA_LEN: usize = u16::MAX as usize;
/// Length of the longest token the issuer can make (every field at its maximum), which is the
/// longest text [`Tokens::verify`] reads: anything longer is refused unread as
/// [`TokenError::TooLong`].
pub const MAX_TOKEN_LEN: usize =
    (4 * (FIXED_LEN + MAX_PURPOSE_LEN + MAX_SUBJECT_LEN + MAX_DATA_LEN)).div_ceil(3);

/// Why a token could not be issued, or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The text is not a token: empty, wrong alphabet, wrong length, or inconsistent structure.
    #[error("malformed token")]
    Malformed,
    /// The text is longer than any token ([`MAX_TOKEN_LEN`]); it was refused without being
    /// decoded. Holds the text's length.
    #[error("a token is at most {MAX_TOKEN_LEN} characters, this text has {0}")]
    TooLong(usize),
    /// The token was made by a format version this code does not read.
    #[error("unsupported token version {0}")]
    UnsupportedVersion(u8),
    /// The token names a key id this verifier does not hold (rotated out, or forged).
    #[error("token signed with unknown key id {0}")]
    UnknownKey(u8),
    /// The signature does not match: the token was altered or forged.
    #[error("token signature does not match (tampered or forged)")]
    Tampered,
    /// The token was made for another purpose.
    #[error("token made for purpose {found:?}, expected {expected:?}")]
    WrongPurpose {
        /// The purpose the verifier asked for.
        expected: String,
        /// The purpose in the token.
        found: String,
    },
    /// The token's lifetime is over.
    #[error("token expired at {expired_at}")]
    Expired {
        /// When it expired.
        expired_at: Timestamp,
    },
    /// A purpose is empty, too long, or not made of `a-z`, `0-9`, `_`, `-` and `.`.
    #[error("invalid purpose {0:?}")]
    InvalidPurpose(String),
    /// The subject to sign is empty or longer than [`MAX_SUBJECT_LEN`] bytes.
    #[error("token subject must be 1 to {MAX_SUBJECT_LEN} bytes, got {0}")]
    InvalidSubject(usize),
    /// The data to sign is longer than [`MAX_DATA_LEN`] bytes.
    #[error("token data must be at most {MAX_DATA_LEN} bytes, got {0}")]
    DataTooLong(usize),
    /// The operating system could not provide randomness for the nonce.
    #[error("no randomness available for the token nonce")]
    Randomness,
}

/// What a token is for. A token made for one purpose is refused for any other.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Purpose(Cow<'static, str>);

impl Purpose {
    /// Linking a Messenger address to a contact through an m.me `ref`.
    pub const CONNECT: Purpose = Purpose(Cow::Borrowed("connect"));
    /// Logging a contact in from a link ("authorize on click").
    pub const LOGIN: Purpose = Purpose(Cow::Borrowed("login"));
    /// Answering "connect this address to that account?" before a link that moves history.
    pub const CONNECT_CONFIRM: Purpose = Purpose(Cow::Borrowed("connect-confirm"));

    /// A purpose of the host's own: 1 to 32 of `a-z`, `0-9`, `_`, `-` and `.`.
    pub fn new(name: impl Into<Cow<'static, str>>) -> Result<Self, TokenError> {
        let name = name.into();
        let valid = !name.is_empty()
            && name.len() <= MAX_PURPOSE_LEN
            && name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
            });
        if valid {
            Ok(Purpose(name))
        } else {
            Err(TokenError::InvalidPurpose(name.into_owned()))
        }
    }

    /// The purpose's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Purpose({:?})", self.0)
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The random nonce of a token: remember it to make the token single-use.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nonce([u8; NONCE_LEN]);

impl Nonce {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; NONCE_LEN] {
        &self.0
    }
}

impl fmt::Display for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nonce({self})")
    }
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    purpose: Purpose,
    subject: String,
    expires_at: Timestamp,
    nonce: Nonce,
    data: String,
    key_id: u8,
}

impl Claims {
    /// What the token is for.
    pub fn purpose(&self) -> &Purpose {
        &self.purpose
    }

    /// Whom the token names (a contact id).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// When the token expires (second precision).
    pub fn expires_at(&self) -> Timestamp {
        self.expires_at
    }

    /// The token's random nonce.
    pub fn nonce(&self) -> Nonce {
        self.nonce
    }

    /// The extra data signed with the token (empty if none).
    pub fn data(&self) -> &str {
        &self.data
    }

    /// The id of the key that signed the token.
    pub fn key_id(&self) -> u8 {
        self.key_id
    }
}

/// An issued token: the text to put in a link.
///
/// `Debug` prints `SignedToken([redacted])`: until it is used or expires, a token is a bearer
/// credential (a connect token links whoever presents it), so it must not reach logs. The text
/// is reached through [`SignedToken::expose_secret`] or by dereferencing to `&str`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SignedToken(String);

impl SignedToken {
    /// The token text.
    ///
    /// # Security Warning
    ///
    /// Put it in the link it was made for; do not log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// The token text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::ops::Deref for SignedToken {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SignedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SignedToken([redacted])")
    }
}

/// Issues and verifies tokens; see the [module docs](self).
#[derive(Clone)]
pub struct Tokens {
    keys: KeyRing,
    clock: SharedClock,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// Tokens signed with the current key of `keys` (a [`KeyRing`], or one
    /// [`SigningKey`](crate::keys::SigningKey)) and verified with any key of it, read from the
    /// system clock.
    pub fn new(keys: impl Into<KeyRing>) -> Self {
        Tokens {
            keys: keys.into(),
            clock: SystemClock::shared(),
        }
    }

    /// The keys tokens are signed and verified with.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// Reads the time from `clock`.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// A token for `purpose` naming `subject`, valid for `ttl` from now.
    pub fn issue(
        &self,
        purpose: &Purpose,
        subject: &str,
        ttl: Duration,
    ) -> Result<SignedToken, TokenError> {
        self.issue_with_data(purpose, subject, ttl, "")
    }

    /// Like [`issue`](Tokens::issue), also signing `data` (a campaign and target URL, say).
    pub fn issue_with_data(
        &self,
        purpose: &Purpose,
        subject: &str,
        ttl: Duration,
        data: &str,
    ) -> Result<SignedToken, TokenError> {
        if subject.is_empty() || subject.len() > MAX_SUBJECT_LEN {
            return Err(TokenError::InvalidSubject(subject.len()));
        }
        if data.len() > MAX_DATA_LEN {
            return Err(TokenError::DataTooLong(data.len()));
        }
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| TokenError::Randomness)?;
        let expires = self.clock.now().saturating_add(ttl).as_millis();
        // Round up to whole seconds so a token never expires before its ttl.
        let expires_secs =
            u64::try_from(expires.div_euclid(1000) + i64::from(expires.rem_euclid(1000) != 0))
                .unwrap_or(0);

        let purpose = purpose.as_str().as_bytes();
        let mut buf = Vec::with_capacity(FIXED_LEN + purpose.len() + subject.len() + data.len());
        buf.push(VERSION);
        let key = self.keys.current();
        buf.push(key.id());
        buf.push(len_u8(purpose.len()));
        buf.extend_from_slice(purpose);
        buf.push(len_u8(subject.len()));
        buf.extend_from_slice(subject.as_bytes());
        buf.extend_from_slice(&expires_secs.to_be_bytes());
        buf.extend_from_slice(&nonce);
        buf.extend_from_slice(&u16::try_from(data.len()).unwrap_or(u16::MAX).to_be_bytes());
        buf.extend_from_slice(data.as_bytes());
        let mut mac = key.mac();
        mac.update(&buf);
        let tag = mac.finalize().into_bytes();
        buf.extend_from_slice(&tag[..MAC_LEN]);
        Ok(SignedToken(URL_SAFE_NO_PAD.encode(&buf)))
    }

    /// Checks `token` and returns its claims if it is authentic, unexpired and made for
    /// `purpose`.
    pub fn verify(&self, token: &str, purpose: &Purpose) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLong(token.len()));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| TokenError::Malformed)?;
        if bytes.len() < FIXED_LEN + 2 {
            return Err(TokenError::Malformed);
        }
        if bytes[0] != VERSION {
            return Err(TokenError::UnsupportedVersion(bytes[0]));
        }
        let key_id = bytes[1];
        let key = self
            .keys
            .get(key_id)
            .ok_or(TokenError::UnknownKey(key_id))?;
        let (signed, tag) = bytes.split_at(bytes.len() - MAC_LEN);
        let mut mac = key.mac();
        mac.update(signed);
        mac.verify_truncated_left(tag)
            .map_err(|_| TokenError::Tampered)?;

        // Authentic from here on; structure is still checked rather than trusted.
        let claims = parse_claims(signed, key_id).ok_or(TokenError::Malformed)?;
        if claims.purpose != *purpose {
            return Err(TokenError::WrongPurpose {
                expected: purpose.as_str().to_owned(),
                found: claims.purpose.as_str().to_owned(),
            });
        }
        if self.clock.now() >= claims.expires_at {
            return Err(TokenError::Expired {
                expired_at: claims.expires_at,
            });
        }
        Ok(claims)
    }
}

fn len_u8(len: usize) -> u8 {
    u8::try_from(len).unwrap_or(u8::MAX)
}

/// Reads the claims of a signed token body (everything before the MAC).
fn parse_claims(signed: &[u8], key_id: u8) -> Option<Claims> {
    let mut r = Reader(signed.get(2..)?);
    let purpose_len = usize::from(r.u8()?);
    let purpose = std::str::from_utf8(r.take(purpose_len)?).ok()?;
    let purpose = Purpose::new(purpose.to_owned()).ok()?;
    let subject_len = usize::from(r.u8()?);
    let subject = std::str::from_utf8(r.take(subject_len)?).ok()?.to_owned();
    let expires_secs = u64::from_be_bytes(r.take(8)?.try_into().ok()?);
    let nonce = Nonce(r.take(NONCE_LEN)?.try_into().ok()?);
    let data_len = usize::from(u16::from_be_bytes(r.take(2)?.try_into().ok()?));
    let data = std::str::from_utf8(r.take(data_len)?).ok()?.to_owned();
    if !r.0.is_empty() || subject.is_empty() {
        return None;
    }
    Some(Claims {
        purpose,
        subject,
        expires_at: Timestamp::from_secs(i64::try_from(expires_secs).ok()?),
        nonce,
        data,
        key_id,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*first)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        clock::{Clock, ManualClock},
        keys::SigningKey,
    };
    use secrecy::SecretSlice;

    fn key(id: u8, fill: u8) -> SigningKey {
        SigningKey::new(id, SecretSlice::from(vec![fill; 32])).unwrap()
    }

    fn setup() -> (ManualClock, Tokens) {
        let clock = ManualClock::new(Timestamp::from_secs(1_718_000_000));
        let tokens = Tokens::new(key(1, 7)).with_clock(clock.shared());
        (clock, tokens)
    }

    const TTL: Duration = Duration::from_secs(900);

    #[test]
    fn a_connect_token_fits_the_strictest_ref_limit() {
        let (_, tokens) = setup();
        let t = tokens
            .issue(&Purpose::CONNECT, "user-000000000000042", TTL)
            .unwrap();
        assert_eq!(t.len(), 87);
        let uuid = "0b9f6f2e-6a55-4c1e-9d3b-3f0f8f1c2a11";
        let t = tokens.issue(&Purpose::CONNECT, uuid, TTL).unwrap();
        assert!(t.len() < 150, "{} chars", t.len());
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }

    #[test]
    fn claims_round_trip() {
        let (clock, tokens) = setup();
        let t = tokens
            .issue_with_data(&Purpose::LOGIN, "c1", TTL, "campaign=7 https://x.example/a")
            .unwrap();
        let c = tokens.verify(&t, &Purpose::LOGIN).unwrap();
        assert_eq!(c.subject(), "c1");
        assert_eq!(c.data(), "campaign=7 https://x.example/a");
        assert_eq!(c.purpose(), &Purpose::LOGIN);
        assert_eq!(c.key_id(), 1);
        assert_eq!(c.expires_at(), clock.now().saturating_add(TTL));
    }

    #[test]
    fn two_tokens_for_the_same_claims_differ_by_nonce() {
        let (_, tokens) = setup();
        let a = tokens.issue(&Purpose::CONNECT, "c1", TTL).unwrap();
        let b = tokens.issue(&Purpose::CONNECT, "c1", TTL).unwrap();
        assert_ne!(a, b);
        let na = tokens.verify(&a, &Purpose::CONNECT).unwrap().nonce();
        let nb = tokens.verify(&b, &Purpose::CONNECT).unwrap().nonce();
        assert_ne!(na, nb);
        assert_eq!(na.to_string().len(), 16);
    }

    #[test]
    fn expiry_is_exact_to_the_second_and_never_early() {
        let (clock, tokens) = setup();
        clock.advance(Duration::from_millis(400));
        let t = tokens.issue(&Purpose::CONNECT, "c1", TTL).unwrap();
        clock.advance(TTL - Duration::from_millis(1));
        assert!(tokens.verify(&t, &Purpose::CONNECT).is_ok());
        clock.advance(Duration::from_millis(601));
        assert!(matches!(
            tokens.verify(&t, &Purpose::CONNECT),
            Err(TokenError::Expired { .. })
        ));
    }

    /// Signs `body` (everything before the MAC) with the current key, as the issuer would.
    fn sign_raw(tokens: &Tokens, body: &[u8]) -> String {
        let mut mac = tokens.keys().current().mac();
        mac.update(body);
        let tag = mac.finalize().into_bytes();
        let mut bytes = body.to_vec();
        bytes.extend_from_slice(&tag[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A body as `issue_with_data` lays it out, with `subject` unchecked and `tail` after it.
    fn body(subject: &str, tail: &[u8]) -> Vec<u8> {
        let purpose = Purpose::CONNECT.as_str().as_bytes();
        let mut b = vec![VERSION, 1, len_u8(purpose.len())];
        b.extend_from_slice(purpose);
        b.push(len_u8(subject.len()));
        b.extend_from_slice(subject.as_bytes());
        b.extend_from_slice(&4_000_000_000u64.to_be_bytes());
        b.extend_from_slice(&[7; NONCE_LEN]);
        b.extend_from_slice(&0u16.to_be_bytes());
        b.extend_from_slice(tail);
        b
    }

    /// The structure is checked even behind a good MAC (a future issuer bug, or a key that
    /// leaked to another program, must not yield claims the issuer would never make): trailing
    /// bytes and an empty subject are each malformed on their own.
    #[test]
    fn an_authentic_body_the_issuer_would_never_make_is_malformed() {
        let (_, tokens) = setup();
        let good = sign_raw(&tokens, &body("c1", &[]));
        assert_eq!(
            tokens.verify(&good, &Purpose::CONNECT).unwrap().subject(),
            "c1"
        );
        let trailing = sign_raw(&tokens, &body("c1", &[0]));
        assert_eq!(
            tokens.verify(&trailing, &Purpose::CONNECT),
            Err(TokenError::Malformed)
        );
        let empty_subject = sign_raw(&tokens, &body("", &[]));
        assert_eq!(
            tokens.verify(&empty_subject, &Purpose::CONNECT),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn each_refusal_has_its_own_variant() {
        let (_, tokens) = setup();
        let t = tokens.issue(&Purpose::CONNECT, "c1", TTL).unwrap();
        assert_eq!(
            tokens.verify("", &Purpose::CONNECT),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            tokens.verify("!!!", &Purpose::CONNECT),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            tokens.verify("AAAA", &Purpose::CONNECT),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            tokens.verify(&"A".repeat(MAX_TOKEN_LEN + 1), &Purpose::CONNECT),
            Err(TokenError::TooLong(MAX_TOKEN_LEN + 1))
        );
        assert!(matches!(
            tokens.verify(&t, &Purpose::LOGIN),
            Err(TokenError::WrongPurpose { .. })
        ));

        let mut bytes = URL_SAFE_NO_PAD.decode(t.expose_secret()).unwrap();
        bytes[1] = 9;
        assert_eq!(
            tokens.verify(&URL_SAFE_NO_PAD.encode(&bytes), &Purpose::CONNECT),
            Err(TokenError::UnknownKey(9))
        );
        bytes[1] = 1;
        bytes[0] = 2;
        assert_eq!(
            tokens.verify(&URL_SAFE_NO_PAD.encode(&bytes), &Purpose::CONNECT),
            Err(TokenError::UnsupportedVersion(2))
        );
        bytes[0] = 1;
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(
            tokens.verify(&URL_SAFE_NO_PAD.encode(&bytes), &Purpose::CONNECT),
            Err(TokenError::Tampered)
        );
    }

    #[test]
    fn a_token_signed_by_another_secret_under_the_same_id_is_tampered() {
        let (clock, tokens) = setup();
        let forger = Tokens::new(key(1, 8)).with_clock(clock.shared());
        let forged = forger.issue(&Purpose::CONNECT, "victim", TTL).unwrap();
        assert_eq!(
            tokens.verify(&forged, &Purpose::CONNECT),
            Err(TokenError::Tampered)
        );
    }

    #[test]
    fn rotation_accepts_old_keys_and_signs_with_the_new_one() {
        let (clock, old) = setup();
        let old_token = old.issue(&Purpose::CONNECT, "c1", TTL).unwrap();
        let rotated = Tokens::new(KeyRing::new(key(2, 9)).accept(key(1, 7)).unwrap())
            .with_clock(clock.shared());
        assert_eq!(
            rotated
                .verify(&old_token, &Purpose::CONNECT)
                .unwrap()
                .key_id(),
            1
        );
        let new_token = rotated.issue(&Purpose::CONNECT, "c1", TTL).unwrap();
        assert_eq!(
            rotated
                .verify(&new_token, &Purpose::CONNECT)
                .unwrap()
                .key_id(),
            2
        );
        // After the old key is dropped, its tokens are refused by id.
        let dropped = Tokens::new(key(2, 9)).with_clock(clock.shared());
        assert_eq!(
            dropped.verify(&old_token, &Purpose::CONNECT),
            Err(TokenError::UnknownKey(1))
        );
    }

    #[test]
    fn bad_inputs_to_issue_are_refused() {
        let (_, tokens) = setup();
        assert_eq!(
            tokens.issue(&Purpose::CONNECT, "", TTL),
            Err(TokenError::InvalidSubject(0))
        );
        assert_eq!(
            tokens.issue(&Purpose::CONNECT, &"x".repeat(256), TTL),
            Err(TokenError::InvalidSubject(256))
        );
        assert_eq!(
            tokens.issue_with_data(&Purpose::LOGIN, "c", TTL, &"d".repeat(MAX_DATA_LEN + 1)),
            Err(TokenError::DataTooLong(MAX_DATA_LEN + 1))
        );
        assert!(Purpose::new("Connect").is_err());
        assert!(Purpose::new("").is_err());
        assert!(Purpose::new("x".repeat(33)).is_err());
        assert_eq!(Purpose::new("invite.v2").unwrap().as_str(), "invite.v2");
    }

    #[test]
    fn debug_never_shows_key_material() {
        let (_, tokens) = setup();
        let shown = format!("{tokens:?} {:?}", key(3, 0x41));
        assert!(
            !shown.contains("AAAA") && !shown.contains("65, 65"),
            "{shown}"
        );
        assert!(shown.contains("[redacted]") || shown.contains("current_key"));
    }
}
