//! Key rotation as an operator does it: the current key signs, older keys (several at once,
//! each with its own id) still verify what they signed, and a key id given twice is refused at
//! configuration time rather than shadowing another key. For both key rings: connect/login
//! tokens and the answer payloads of flow questions.

use std::time::Duration;

use tidings::{
    clock::{ManualClock, Timestamp},
    process::{
        InstanceId,
        payload::{AnswerPayload, PayloadError, PayloadKey, PayloadKeys},
    },
    secrecy::SecretSlice,
    token::{Purpose, TokenError, TokenKey, Tokens},
};

fn token_key(id: u8) -> TokenKey {
    TokenKey::new(
        id,
        SecretSlice::from(vec![id.wrapping_mul(7).wrapping_add(1); 32]),
    )
    .unwrap()
}

fn payload_key(id: u8) -> PayloadKey {
    PayloadKey::new(
        id,
        SecretSlice::from(vec![id.wrapping_mul(5).wrapping_add(3); 32]),
    )
    .unwrap()
}

#[test]
fn tokens_of_every_accepted_key_verify_and_a_repeated_id_is_refused() {
    let clock = ManualClock::new(Timestamp::from_secs(1_718_000_000));
    let ttl = Duration::from_secs(600);
    let signed_by = |id: u8| {
        Tokens::new(token_key(id))
            .with_clock(clock.shared())
            .issue(&Purpose::CONNECT, "contact-1", ttl)
            .unwrap()
    };
    let (one, two, three) = (signed_by(1), signed_by(2), signed_by(3));

    // Key 3 signs now; keys 1 and 2 are still accepted during the rotation.
    let ring = Tokens::new(token_key(3))
        .accept(token_key(1))
        .unwrap()
        .accept(token_key(2))
        .unwrap()
        .with_clock(clock.shared());
    for (token, id) in [(&one, 1), (&two, 2), (&three, 3)] {
        let claims = ring
            .verify(token.expose_secret(), &Purpose::CONNECT)
            .unwrap();
        assert_eq!((claims.key_id(), claims.subject()), (id, "contact-1"));
    }
    let fresh = ring.issue(&Purpose::CONNECT, "contact-2", ttl).unwrap();
    assert_eq!(
        ring.verify(fresh.expose_secret(), &Purpose::CONNECT)
            .unwrap()
            .key_id(),
        3,
        "the current key signs"
    );

    // An id given twice, among the older keys or as the current one, is a configuration error.
    let repeated = Tokens::new(token_key(3))
        .accept(token_key(1))
        .unwrap()
        .accept(token_key(1));
    assert_eq!(repeated.map(|_| ()), Err(TokenError::DuplicateKeyId(1)));
    assert_eq!(
        Tokens::new(token_key(3)).accept(token_key(3)).map(|_| ()),
        Err(TokenError::DuplicateKeyId(3))
    );
    // A key no longer accepted refuses its tokens by id.
    let dropped = Tokens::new(token_key(3))
        .accept(token_key(2))
        .unwrap()
        .with_clock(clock.shared());
    assert_eq!(
        dropped.verify(one.expose_secret(), &Purpose::CONNECT),
        Err(TokenError::UnknownKey(1))
    );
}

#[test]
fn payloads_of_every_accepted_key_verify_and_a_repeated_id_is_refused() {
    let answer = AnswerPayload::new(InstanceId::new("instance-1").unwrap(), 4, 2);
    let (one, two, three) = (
        PayloadKeys::new(payload_key(1)).sign(&answer),
        PayloadKeys::new(payload_key(2)).sign(&answer),
        PayloadKeys::new(payload_key(3)).sign(&answer),
    );
    let ring = PayloadKeys::new(payload_key(3))
        .accept(payload_key(1))
        .unwrap()
        .accept(payload_key(2))
        .unwrap();
    for payload in [&one, &two, &three] {
        assert_eq!(ring.verify(payload).unwrap(), answer);
    }
    assert_eq!(
        PayloadKeys::new(payload_key(3))
            .accept(payload_key(1))
            .unwrap()
            .accept(payload_key(1))
            .map(|_| ()),
        Err(PayloadError::DuplicateKeyId(1))
    );
    assert_eq!(
        PayloadKeys::new(payload_key(3))
            .accept(payload_key(3))
            .map(|_| ()),
        Err(PayloadError::DuplicateKeyId(3))
    );
    let dropped = PayloadKeys::new(payload_key(3))
        .accept(payload_key(2))
        .unwrap();
    assert!(dropped.verify(&one).is_err(), "key 1 is no longer accepted");
    assert_eq!(dropped.verify(&two).unwrap(), answer);
}

/// What an operator sees of keys and tokens: the key's id (to tell which key signed), never
/// its secret; a token only as "redacted"; the owned token text is the text itself.
#[test]
fn keys_and_tokens_show_ids_but_no_secrets() {
    let key = token_key(3);
    assert_eq!(key.id(), 3);
    let shown = format!("{key:?}");
    assert!(
        shown.contains("id: 3") && shown.contains("redacted"),
        "{shown}"
    );
    let token = Tokens::new(key)
        .issue(&Purpose::CONNECT, "contact-1", Duration::from_secs(60))
        .unwrap();
    let text = token.expose_secret().to_owned();
    let shown = format!("{token:?}");
    assert!(
        !shown.contains(&text) && shown.contains("redacted"),
        "{shown}"
    );
    assert_eq!(token.into_string(), text);
}

/// The same for the answer-payload ring: each key tells its id, and the ring shows which key
/// signs and which are still accepted, by id, never a secret.
#[test]
fn payload_keys_show_ids_but_no_secrets() {
    let key = payload_key(4);
    assert_eq!(key.id(), 4);
    assert_eq!(payload_key(9).id(), 9);
    let ring = PayloadKeys::new(key)
        .accept(payload_key(2))
        .unwrap()
        .accept(payload_key(7))
        .unwrap();
    let shown = format!("{ring:?}");
    assert!(
        shown.contains("current_key: 4") && shown.contains("accepted_keys: [2, 7]"),
        "{shown}"
    );
    let secret_byte = format!("{}", 4u8.wrapping_mul(5).wrapping_add(3));
    assert!(!shown.contains(&secret_byte), "{shown}");
}
