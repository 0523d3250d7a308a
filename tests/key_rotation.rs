//! Key rotation as an operator does it: the current key signs, older keys (several at once,
//! each with its own id) still verify what they signed, and a key id given twice is refused at
//! configuration time rather than shadowing another key. One ring serves connect/login tokens
//! and the answer payloads of flow questions alike, and neither accepts the other's MAC.

use std::time::Duration;

use tidings::{
    clock::{ManualClock, Timestamp},
    keys::{KeyError, KeyRing, MIN_KEY_LEN, SigningKey},
    process::{
        InstanceId,
        payload::{AnswerPayload, PayloadError},
    },
    secrecy::SecretSlice,
    token::{Purpose, TokenError, Tokens},
};

fn key(id: u8) -> SigningKey {
    SigningKey::new(
        id,
        SecretSlice::from(vec![id.wrapping_mul(7).wrapping_add(1); 32]),
    )
    .unwrap()
}

/// Key 3 signs now; keys 1 and 2 are still accepted during the rotation.
fn rotating() -> KeyRing {
    KeyRing::new(key(3))
        .accept(key(1))
        .unwrap()
        .accept(key(2))
        .unwrap()
}

#[test]
fn tokens_of_every_accepted_key_verify_and_the_current_key_signs() {
    let clock = ManualClock::new(Timestamp::from_secs(1_718_000_000));
    let ttl = Duration::from_secs(600);
    let signed_by = |id: u8| {
        Tokens::new(key(id))
            .with_clock(clock.shared())
            .issue(&Purpose::CONNECT, "contact-1", ttl)
            .unwrap()
    };
    let (one, two, three) = (signed_by(1), signed_by(2), signed_by(3));

    let tokens = Tokens::new(rotating()).with_clock(clock.shared());
    for (token, id) in [(&one, 1), (&two, 2), (&three, 3)] {
        let claims = tokens
            .verify(token.expose_secret(), &Purpose::CONNECT)
            .unwrap();
        assert_eq!((claims.key_id(), claims.subject()), (id, "contact-1"));
    }
    let fresh = tokens.issue(&Purpose::CONNECT, "contact-2", ttl).unwrap();
    assert_eq!(
        tokens
            .verify(fresh.expose_secret(), &Purpose::CONNECT)
            .unwrap()
            .key_id(),
        3,
        "the current key signs"
    );
    // A key no longer accepted refuses its tokens by id.
    let dropped =
        Tokens::new(KeyRing::new(key(3)).accept(key(2)).unwrap()).with_clock(clock.shared());
    assert_eq!(
        dropped.verify(one.expose_secret(), &Purpose::CONNECT),
        Err(TokenError::UnknownKey(1))
    );
}

#[test]
fn payloads_of_every_accepted_key_verify_and_the_current_key_signs() {
    let answer = AnswerPayload::new(InstanceId::new("instance-1").unwrap(), 4, 2);
    let signed_by = |id: u8| answer.sign(&KeyRing::new(key(id)));
    let (one, two, three) = (signed_by(1), signed_by(2), signed_by(3));
    let ring = rotating();
    for payload in [&one, &two, &three] {
        assert_eq!(AnswerPayload::verify(payload, &ring).unwrap(), answer);
    }
    assert_eq!(answer.sign(&ring), three, "the current key signs");
    let dropped = KeyRing::new(key(3)).accept(key(2)).unwrap();
    assert_eq!(
        AnswerPayload::verify(&one, &dropped),
        Err(PayloadError::Forged),
        "key 1 is no longer accepted"
    );
    assert_eq!(AnswerPayload::verify(&two, &dropped).unwrap(), answer);
}

#[test]
fn a_repeated_key_id_or_a_short_secret_is_refused_when_the_ring_is_made() {
    // An id given twice, among the older keys or as the current one.
    assert_eq!(
        rotating().accept(key(1)).unwrap_err(),
        KeyError::DuplicateKeyId(1)
    );
    assert_eq!(
        rotating().accept(key(3)).unwrap_err(),
        KeyError::DuplicateKeyId(3)
    );
    let short = SigningKey::new(4, SecretSlice::from(vec![9u8; MIN_KEY_LEN - 1]));
    assert_eq!(short.unwrap_err(), KeyError::WeakKey(MIN_KEY_LEN - 1));
    // The crate-wide error says what was wrong.
    let e = tidings::Error::from(KeyError::DuplicateKeyId(1));
    assert!(e.to_string().contains("share id 1"), "{e}");
}

#[test]
fn one_ring_serves_tokens_and_payloads_and_neither_passes_for_the_other() {
    let ring = rotating();
    let tokens = Tokens::new(ring.clone());
    let token = tokens
        .issue(&Purpose::CONNECT, "contact-1", Duration::from_secs(60))
        .unwrap();
    let answer = AnswerPayload::new(InstanceId::new("instance-1").unwrap(), 4, 2);
    let payload = answer.sign(&ring);
    // A token dressed as a payload, and a payload's body presented as a token.
    let as_payload = format!("tdf1.{}", token.expose_secret());
    assert_eq!(
        AnswerPayload::verify(&as_payload, &ring),
        Err(PayloadError::Forged)
    );
    let as_token = payload.trim_start_matches("tdf1.");
    assert!(tokens.verify(as_token, &Purpose::CONNECT).is_err());
    // Each still verifies as what it is.
    assert!(
        tokens
            .verify(token.expose_secret(), &Purpose::CONNECT)
            .is_ok()
    );
    assert_eq!(AnswerPayload::verify(&payload, &ring).unwrap(), answer);
}

/// What an operator sees of keys, rings and tokens: ids (to tell which key signed), never a
/// secret; a token only as "redacted"; the owned token text is the text itself.
#[test]
fn keys_rings_and_tokens_show_ids_but_no_secrets() {
    let k = key(3);
    assert_eq!((k.id(), key(9).id()), (3, 9));
    let shown = format!("{k:?}");
    assert!(
        shown.contains("id: 3") && shown.contains("redacted"),
        "{shown}"
    );
    let ring = rotating();
    assert_eq!(ring.current_id(), 3);
    assert_eq!(ring.ids().collect::<Vec<_>>(), [3, 1, 2]);
    let tokens = Tokens::new(ring);
    let shown = format!("{tokens:?}");
    assert!(
        shown.contains("current_key: 3") && shown.contains("accepted_keys: [1, 2]"),
        "{shown}"
    );
    let secret_byte = format!("{}", 3u8.wrapping_mul(7).wrapping_add(1));
    assert!(!shown.contains(&format!("{secret_byte},")), "{shown}");
    let token = tokens
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
