//! Property: any change to a valid token is refused; nothing panics on arbitrary input.

use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use proptest::prelude::*;
use tidings::{
    clock::{ManualClock, Timestamp},
    keys::SigningKey,
    secrecy::SecretSlice,
    token::{Purpose, Tokens},
};

fn tokens() -> Tokens {
    let clock = ManualClock::new(Timestamp::from_secs(1_718_000_000));
    Tokens::new(
        SigningKey::new(
            3,
            SecretSlice::from(b"0123456789abcdef0123456789abcdef".to_vec()),
        )
        .unwrap(),
    )
    .with_clock(clock.shared())
}

const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ .é";

#[derive(Debug, Clone)]
enum Mutation {
    Replace(usize, char),
    Delete(usize),
    Insert(usize, char),
    Truncate(usize),
    Swap(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let ch = prop::sample::select(ALPHABET.chars().collect::<Vec<_>>());
    prop_oneof![
        (any::<usize>(), ch.clone()).prop_map(|(i, c)| Mutation::Replace(i, c)),
        any::<usize>().prop_map(Mutation::Delete),
        (any::<usize>(), ch).prop_map(|(i, c)| Mutation::Insert(i, c)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Mutation::Swap(i, j)),
    ]
}

fn apply(token: &str, m: &Mutation) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let n = chars.len();
    match *m {
        Mutation::Replace(i, c) => chars[i % n] = c,
        Mutation::Delete(i) => {
            chars.remove(i % n);
        }
        Mutation::Insert(i, c) => chars.insert(i % (n + 1), c),
        Mutation::Truncate(len) => chars.truncate(len % n),
        Mutation::Swap(i, j) => chars.swap(i % n, j % n),
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn any_textual_mutation_of_a_valid_token_is_refused(
        subject in "[a-zA-Z0-9_-]{1,40}",
        data in "[ -~]{0,30}",
        login in any::<bool>(),
        m in mutation(),
    ) {
        let tokens = tokens();
        let purpose = if login { Purpose::LOGIN } else { Purpose::CONNECT };
        let token = tokens.issue_with_data(&purpose, &subject, Duration::from_secs(900), &data).unwrap();
        let mutant = apply(&token, &m);
        prop_assume!(mutant != *token);
        prop_assert!(tokens.verify(&mutant, &purpose).is_err(), "accepted {mutant:?} from {token:?} by {m:?}");
    }

    #[test]
    fn any_bit_flip_in_the_decoded_token_is_refused(
        subject in "[a-z0-9]{1,36}",
        index in any::<usize>(),
        mask in 1u8..=255,
    ) {
        let tokens = tokens();
        let token = tokens.issue(&Purpose::CONNECT, &subject, Duration::from_secs(900)).unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(token.expose_secret()).unwrap();
        let i = index % bytes.len();
        bytes[i] ^= mask;
        let mutant = URL_SAFE_NO_PAD.encode(&bytes);
        prop_assert!(tokens.verify(&mutant, &Purpose::CONNECT).is_err());
    }

    #[test]
    fn arbitrary_text_never_verifies_and_never_panics(text in "\\PC{0,200}") {
        prop_assert!(tokens().verify(&text, &Purpose::CONNECT).is_err());
    }

    #[test]
    fn arbitrary_bytes_encoded_as_a_token_never_verify(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let text = URL_SAFE_NO_PAD.encode(&bytes);
        prop_assert!(tokens().verify(&text, &Purpose::CONNECT).is_err());
    }
}

/// The documented limits are the real ones: the longest subject (255 bytes) and data (65,535
/// bytes) with the longest purpose make a token that verifies, one byte more is refused when
/// issuing, and the smallest token (one-byte purpose and subject, no data) verifies too.
#[test]
fn tokens_at_the_documented_limits_verify() {
    use tidings::token::{
        MAX_DATA_LEN, MAX_PURPOSE_LEN, MAX_SUBJECT_LEN, MAX_TOKEN_LEN, TokenError,
    };
    let tokens = tokens();
    let ttl = Duration::from_secs(60);
    let purpose = Purpose::new("p".repeat(MAX_PURPOSE_LEN)).unwrap();
    let subject = "s".repeat(MAX_SUBJECT_LEN);
    let data = "d".repeat(MAX_DATA_LEN);
    let longest = tokens
        .issue_with_data(&purpose, &subject, ttl, &data)
        .unwrap();
    // The longest token is exactly as long as verify reads.
    assert_eq!(longest.expose_secret().len(), MAX_TOKEN_LEN);
    let claims = tokens.verify(longest.expose_secret(), &purpose).unwrap();
    assert_eq!(
        (claims.subject(), claims.data()),
        (subject.as_str(), data.as_str())
    );
    assert_eq!(
        tokens.issue_with_data(&purpose, &format!("{subject}s"), ttl, ""),
        Err(TokenError::InvalidSubject(MAX_SUBJECT_LEN + 1))
    );

    let short = Purpose::new("p").unwrap();
    let smallest = tokens.issue(&short, "s", ttl).unwrap();
    let claims = tokens.verify(smallest.expose_secret(), &short).unwrap();
    assert_eq!((claims.subject(), claims.data()), ("s", ""));
    // One byte shorter than the smallest token is no token.
    let bytes = URL_SAFE_NO_PAD.decode(smallest.expose_secret()).unwrap();
    let cut = URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() - 1]);
    assert_eq!(tokens.verify(&cut, &short), Err(TokenError::Malformed));
}

/// `verify` refuses a text longer than `MAX_TOKEN_LEN` before reading it: even made of a real
/// token and well-formed base64 after it, it is too long, not "tampered".
#[test]
fn a_text_longer_than_the_longest_token_is_refused_unread() {
    use tidings::token::{
        MAX_DATA_LEN, MAX_PURPOSE_LEN, MAX_SUBJECT_LEN, MAX_TOKEN_LEN, TokenError,
    };
    let tokens = tokens();
    let purpose = Purpose::new("p".repeat(MAX_PURPOSE_LEN)).unwrap();
    let longest = tokens
        .issue_with_data(
            &purpose,
            &"s".repeat(MAX_SUBJECT_LEN),
            Duration::from_secs(60),
            &"d".repeat(MAX_DATA_LEN),
        )
        .unwrap();
    let mut text = longest.expose_secret().to_owned();
    // Grow it past the limit to a length base64 can decode (never 1 mod 4).
    while text.len() <= MAX_TOKEN_LEN || text.len() % 4 == 1 {
        text.push('A');
    }
    assert!(URL_SAFE_NO_PAD.decode(&text).is_ok(), "well-formed base64");
    assert_eq!(
        tokens.verify(&text, &purpose),
        Err(TokenError::TooLong(text.len()))
    );
    // One character past the longest token is refused by its length alone.
    let one_more = format!("{}A", longest.expose_secret());
    assert_eq!(
        tokens.verify(&one_more, &purpose),
        Err(TokenError::TooLong(MAX_TOKEN_LEN + 1))
    );
    assert!(
        TokenError::TooLong(MAX_TOKEN_LEN + 1)
            .to_string()
            .contains(&MAX_TOKEN_LEN.to_string())
    );
}

/// What a refused or accepted link's claims show in a log: the purpose by name and the nonce
/// as the hex that single-use marks are keyed by.
#[test]
fn claims_show_their_purpose_and_nonce_in_debug() {
    let tokens = tokens();
    let token = tokens
        .issue(&Purpose::CONNECT, "contact-1", Duration::from_secs(60))
        .unwrap();
    let claims = tokens
        .verify(token.expose_secret(), &Purpose::CONNECT)
        .unwrap();
    let shown = format!("{claims:?}");
    assert!(
        shown.contains(&format!("{:?}", Purpose::CONNECT.as_str())),
        "{shown}"
    );
    assert!(shown.contains("Purpose("), "{shown}");
    assert!(
        shown.contains(&format!("Nonce({})", claims.nonce())),
        "{shown}"
    );
    assert_eq!(
        claims.nonce().to_string().len(),
        2 * claims.nonce().as_bytes().len()
    );
}
