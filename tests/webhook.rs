//! The Messenger webhook against the digest's known-answer vectors and bad input.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use proptest::prelude::*;
use tidings::{
    activity::LastInbound,
    clock::{ManualClock, Timestamp},
    contact::Address,
    message::InboundKind,
    messenger::{
        AppSecret, PageAccessToken, PageConfig, StaticPages, VerifyToken, Webhook, WebhookError,
        webhook::DEFAULT_CLAIM_LEASE,
    },
    store::memory::{MemoryLastInbound, MemorySeenEvents},
};

const SECRET: &str = "0123456789abcdef0123456789abcdef";
const PAGE: &str = "104812345678901";
const PSID: &str = "6789012345678901";

struct Setup {
    webhook: Webhook,
    last: Arc<MemoryLastInbound>,
    seen: Arc<MemorySeenEvents>,
    clock: ManualClock,
}

fn setup_with(max_body: usize) -> Setup {
    let pages = StaticPages::new([PageConfig::new(PAGE, PageAccessToken::new("token"))]);
    let last = Arc::new(MemoryLastInbound::new());
    let seen = Arc::new(MemorySeenEvents::new());
    let clock = ManualClock::new(Timestamp::from_millis(1_718_000_500_000));
    let webhook = Webhook::builder(
        AppSecret::new(SECRET),
        VerifyToken::new("s3cret-verify"),
        Arc::new(pages),
        seen.clone(),
        last.clone(),
    )
    .max_body(max_body)
    .clock(clock.shared())
    .build();
    Setup {
        webhook,
        last,
        seen,
        clock,
    }
}

fn setup() -> Setup {
    setup_with(1024 * 1024)
}

fn vector(n: u8) -> (Vec<u8>, String) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let body = std::fs::read(format!("{dir}/tv{n}.json")).unwrap();
    let sig = std::fs::read_to_string(format!("{dir}/tv{n}.json.sig256")).unwrap();
    (body, sig)
}

/// Posts known-answer vector `n` with its signature and returns the accepted events.
async fn events_of(s: &Setup, n: u8) -> Vec<tidings::Inbound> {
    let (body, sig) = vector(n);
    s.webhook
        .handle(&post(&body, Some(&sig)))
        .await
        .batch
        .unwrap()
        .events
}

fn sign(body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn post(body: &[u8], signature: Option<&str>) -> Request<Bytes> {
    let mut builder = Request::builder().method(Method::POST).uri("/webhook");
    if let Some(sig) = signature {
        builder = builder.header("X-Hub-Signature-256", sig);
    }
    builder.body(Bytes::copy_from_slice(body)).unwrap()
}

#[test]
fn the_five_vectors_verify_against_their_signatures() {
    let s = setup();
    for n in 1..=5 {
        let (body, sig) = vector(n);
        assert!(
            s.webhook
                .verify_signature(Some(sig.as_bytes()), &body)
                .is_ok(),
            "TV{n}"
        );
    }
}

#[test]
fn the_negative_signature_cases_are_refused() {
    let s = setup();
    let (body, sig) = vector(5);
    let check = |header: Option<&str>, body: &[u8]| {
        s.webhook.verify_signature(header.map(str::as_bytes), body)
    };

    // Re-serialized JSON (raw UTF-8 instead of Meta's escapes) is the classic trap.
    let reserialized = r#"{"object":"page","entry":[{"id":"104812345678901","time":1718000400000,"messaging":[{"sender":{"id":"6789012345678901"},"recipient":{"id":"104812345678901"},"timestamp":1718000399999,"message":{"mid":"m_Qr0003","text":"Café ☕ / yes","quick_reply":{"payload":"CSAT_YES"}}}]}]}"#;
    assert_eq!(reserialized.len(), 278);
    assert!(matches!(
        check(Some(&sig), reserialized.as_bytes()),
        Err(WebhookError::BadSignature)
    ));

    assert!(matches!(
        check(None, &body),
        Err(WebhookError::MissingSignature)
    ));
    let sha1_prefix = sig.replace("sha256=", "sha1=");
    assert!(matches!(
        check(Some(&sha1_prefix), &body),
        Err(WebhookError::BadSignature)
    ));
    let mut flipped = body.clone();
    flipped[40] ^= 0x01;
    assert!(matches!(
        check(Some(&sig), &flipped),
        Err(WebhookError::BadSignature)
    ));
    let mut trailing = body.clone();
    trailing.push(b'\n');
    assert!(matches!(
        check(Some(&sig), &trailing),
        Err(WebhookError::BadSignature)
    ));
    assert!(matches!(
        check(Some("sha256=zz"), &body),
        Err(WebhookError::BadSignature)
    ));
    assert!(matches!(
        check(Some(&sig[..sig.len() - 2]), &body),
        Err(WebhookError::BadSignature)
    ));

    // Exactly the 64 digits: no `0x` prefix, no whitespace around them, no second digest.
    let digits = &sig["sha256=".len()..];
    for malformed in [
        format!("sha256=0x{digits}"),
        format!("sha256=0x{}", &digits[2..]),
        format!("sha256= {digits}"),
        format!("sha256={digits} "),
        format!("sha256={digits}{digits}"),
        format!("sha256={}g", &digits[1..]),
    ] {
        assert!(
            matches!(
                check(Some(&malformed), &body),
                Err(WebhookError::BadSignature)
            ),
            "{malformed}"
        );
    }

    // Decided explicitly: the hex digest is accepted in either case.
    let upper = format!("sha256={}", sig["sha256=".len()..].to_uppercase());
    assert!(check(Some(&upper), &body).is_ok());
}

#[tokio::test]
async fn get_handshake_echoes_the_challenge_or_refuses() {
    let s = setup();
    let get = |q: &str| {
        Request::builder()
            .uri(format!("/webhook?{q}"))
            .body(Bytes::new())
            .unwrap()
    };
    let ok = s
        .webhook
        .handle(&get(
            "hub.mode=subscribe&hub.verify_token=s3cret-verify&hub.challenge=1158201444",
        ))
        .await;
    assert_eq!(ok.response.status(), StatusCode::OK);
    assert_eq!(ok.response.body().as_ref(), b"1158201444");
    for q in [
        "hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
        "hub.mode=unsubscribe&hub.verify_token=s3cret-verify&hub.challenge=1",
        "hub.mode=subscribe&hub.challenge=1",
        "",
    ] {
        assert_eq!(
            s.webhook.handle(&get(q)).await.response.status(),
            StatusCode::FORBIDDEN,
            "{q}"
        );
    }
}

#[tokio::test]
async fn each_vector_becomes_the_expected_inbound_events() {
    let s = setup();
    let me = Address::messenger(PAGE, PSID).unwrap();

    let (body, sig) = vector(1);
    let handled = s.webhook.handle(&post(&body, Some(&sig))).await;
    assert_eq!(handled.response.status(), StatusCode::OK);
    let events = handled.batch.unwrap().events;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].from, me);
    assert_eq!(events[0].key, "messenger:m_AbCdEf0123456789");
    assert_eq!(events[0].at, Timestamp::from_millis(1_718_000_000_001));
    assert_eq!(
        events[0].kind,
        InboundKind::Text {
            message_id: "m_AbCdEf0123456789".into(),
            text: "Hi, I need help with order 4411".into()
        }
    );
    assert_eq!(
        s.last.last(&me).await.unwrap(),
        Some(Timestamp::from_millis(1_718_000_000_001)),
        "a message opens the window"
    );

    let events = events_of(&s, 2).await;
    match &events[0].kind {
        InboundKind::Referral { reference, source } => {
            assert_eq!(reference.expose_secret(), "ticket-4411");
            assert_eq!(source.as_deref(), Some("SHORTLINK"));
        }
        other => panic!("TV2 should be a referral, got {other:?}"),
    }

    let events = events_of(&s, 3).await;
    assert!(
        matches!(&events[0].kind, InboundKind::Referral { reference, .. } if reference.expose_secret() == "ticket-4412")
    );
    assert_eq!(
        s.last.last(&me).await.unwrap(),
        Some(Timestamp::from_millis(1_718_000_200_700)),
        "a referral opens the window"
    );

    let events = events_of(&s, 4).await;
    assert_eq!(events.len(), 3);
    assert_eq!(
        events[0].kind,
        InboundKind::Delivered {
            message_ids: vec!["m_Out0001".into()],
            watermark: Some(Timestamp::from_millis(1_718_000_299_000))
        }
    );
    assert_eq!(
        events[0].at,
        Timestamp::from_millis(1_718_000_300_000),
        "no timestamp: the entry's time"
    );
    assert_eq!(
        events[1].kind,
        InboundKind::Read {
            watermark: Some(Timestamp::from_millis(1_718_000_299_500)),
            message_id: None,
        }
    );
    assert!(
        events[2].standby,
        "the Page Inbox echo came through standby"
    );
    assert_eq!(events[2].from, me, "an echo is addressed to the person");
    assert!(
        matches!(&events[2].kind, InboundKind::Echo { app_id: Some(app), .. } if app == "263902037430900")
    );
    assert_eq!(
        s.last.last(&me).await.unwrap(),
        Some(Timestamp::from_millis(1_718_000_200_700)),
        "receipts and echoes do not open the window"
    );

    let events = events_of(&s, 5).await;
    assert_eq!(
        events[0].kind,
        InboundKind::Answer {
            message_id: Some("m_Qr0003".into()),
            payload: "CSAT_YES".into(),
            text: Some("Café ☕ / yes".into())
        }
    );
}

#[tokio::test]
async fn redelivered_events_are_dropped_once_committed() {
    let s = setup();
    let (body, sig) = vector(4);
    let first = s
        .webhook
        .handle(&post(&body, Some(&sig)))
        .await
        .batch
        .unwrap();
    assert_eq!((first.events.len(), first.duplicates), (3, 0));
    let again = s.webhook.handle(&post(&body, Some(&sig))).await;
    assert_eq!(
        again.response.status(),
        StatusCode::OK,
        "a redelivery is acknowledged"
    );
    let again = again.batch.unwrap();
    assert_eq!((again.events.len(), again.duplicates), (0, 3));
}

#[tokio::test]
async fn a_received_event_is_claimed_until_committed_released_or_its_lease_ends() {
    let s = setup();
    let (body, sig) = vector(1);
    let mut headers = http::HeaderMap::new();
    headers.insert("x-hub-signature-256", sig.parse().unwrap());
    let batch = s.webhook.receive(&headers, &body).await.unwrap();
    assert_eq!((batch.events.len(), batch.in_flight), (1, 0));

    // An overlapping delivery leaves the claimed event to its holder, and is answered 503.
    let overlapping = s.webhook.receive(&headers, &body).await.unwrap();
    assert_eq!(
        (
            overlapping.events.len(),
            overlapping.in_flight,
            overlapping.duplicates
        ),
        (0, 1, 0)
    );
    let answered = s.webhook.handle(&post(&body, Some(&sig))).await;
    assert_eq!(answered.response.status(), StatusCode::SERVICE_UNAVAILABLE);

    // Routing failed: released, the redelivery brings the event back at once.
    s.webhook.release(&batch.events).await.unwrap();
    let again = s.webhook.receive(&headers, &body).await.unwrap();
    assert_eq!(again.events, batch.events);

    // Its holder crashed: once the lease ends, a delivery claims it again.
    s.clock
        .advance(DEFAULT_CLAIM_LEASE - Duration::from_millis(1));
    assert_eq!(
        s.webhook.receive(&headers, &body).await.unwrap().in_flight,
        1
    );
    s.clock.advance(Duration::from_millis(1));
    let after_crash = s.webhook.receive(&headers, &body).await.unwrap();
    assert_eq!(after_crash.events, batch.events);

    // Committed: every later delivery drops it, long after the lease.
    s.webhook.commit(&after_crash.events[0]).await.unwrap();
    s.clock.advance(Duration::from_secs(3600));
    let redelivered = s.webhook.receive(&headers, &body).await.unwrap();
    assert_eq!(
        (
            redelivered.events.len(),
            redelivered.in_flight,
            redelivered.duplicates
        ),
        (0, 0, 1)
    );
    assert_eq!(s.seen.len(), 1);
}

#[tokio::test]
async fn bad_requests_get_their_status_and_nothing_is_recorded() {
    let s = setup_with(300);
    let (body, sig) = vector(4); // 628 bytes
    assert_eq!(
        s.webhook
            .handle(&post(&body, Some(&sig)))
            .await
            .response
            .status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let (body, _) = vector(1);
    assert_eq!(
        s.webhook.handle(&post(&body, None)).await.response.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        s.webhook
            .handle(&post(&body, Some("sha256=00")))
            .await
            .response
            .status(),
        StatusCode::FORBIDDEN
    );

    // Authentic but not an envelope: 400.
    for bad in [
        &b"not json"[..],
        b"{\"entry\":[{\"messaging\":[]}]}",
        b"{\"object\":\"page\",\"entry\":{}}",
        b"[]",
    ] {
        let sig = sign(bad);
        assert_eq!(
            s.webhook
                .handle(&post(bad, Some(&sig)))
                .await
                .response
                .status(),
            StatusCode::BAD_REQUEST
        );
    }
    let put = Request::builder()
        .method(Method::PUT)
        .body(Bytes::new())
        .unwrap();
    assert_eq!(
        s.webhook.handle(&put).await.response.status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert!(s.seen.is_empty());
    let me = Address::messenger(PAGE, PSID).unwrap();
    assert_eq!(s.last.last(&me).await.unwrap(), None);
}

#[tokio::test]
async fn events_of_an_unknown_page_are_acknowledged_and_reported_not_processed() {
    let s = setup();
    // Pages interleaved; each has an event that names nobody (dropped, and reported only for
    // the served Page).
    let body = br#"{"object":"page","entry":[
        {"id":"999","time":1,"messaging":[{"sender":{"id":"u"},"recipient":{"id":"999"},"timestamp":2,"message":{"mid":"m_x","text":"hi"}},{"recipient":{"id":"999"},"timestamp":2,"message":{"mid":"m_x2"}}]},
        {"id":"104812345678901","time":1,"messaging":[{"sender":{"id":"u"},"recipient":{"id":"104812345678901"},"timestamp":3,"message":{"mid":"m_y","text":"hello"}}]},
        {"id":"999","time":1,"messaging":[{"sender":{"id":"u"},"recipient":{"id":"999"},"timestamp":4,"message":{"mid":"m_x3","text":"again"}}]},
        {"id":"104812345678901","time":1,"messaging":[{"recipient":{"id":"104812345678901"},"timestamp":5,"message":{"mid":"m_y2"}},{"sender":{"id":"u"},"recipient":{"id":"104812345678901"},"timestamp":6,"message":{"mid":"m_y3","text":"still here"}}]}
    ]}"#;
    let sig = sign(body);
    let handled = s.webhook.handle(&post(body, Some(&sig))).await;
    assert_eq!(handled.response.status(), StatusCode::OK);
    let batch = handled.batch.unwrap();
    assert_eq!(batch.unknown_pages, ["999"], "reported once");
    let keys: Vec<&str> = batch.events.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["messenger:m_y", "messenger:m_y3"]);
    assert!(batch.events.iter().all(|e| e.from.scope() == Some(PAGE)));
    assert_eq!(batch.dropped.len(), 1);
    assert_eq!(batch.dropped[0].page_id, PAGE);
    // Nothing of the other Page was marked or recorded.
    assert_eq!(s.seen.len(), 2);
    let stranger = Address::messenger("999", "u").unwrap();
    assert_eq!(s.last.last(&stranger).await.unwrap(), None);
}

#[tokio::test]
async fn unknown_event_kinds_and_fields_never_fail_the_batch() {
    let s = setup();
    let body = br#"{"object":"page","entry":[{"id":"104812345678901","time":1,"messaging":[
        {"sender":{"id":"u"},"recipient":{"id":"104812345678901"},"timestamp":2,"brand_new_kind":{"a":1}},
        {"sender":{"id":"u"},"recipient":{"id":"104812345678901"},"timestamp":"3","message":{"mid":"m_z","text":"ok","new_field":[1]}},
        {"recipient":{"id":"104812345678901"},"timestamp":4,"message":{"mid":"m_w","text":"who?"}}
    ],"new_list":[]}],"new_top":true}"#;
    let sig = sign(body);
    let batch = s
        .webhook
        .handle(&post(body, Some(&sig)))
        .await
        .batch
        .unwrap();
    assert_eq!(batch.events.len(), 2);
    assert!(matches!(
        &batch.events[0].kind,
        InboundKind::Unknown { kind, raw: Some(_) } if kind == "brand_new_kind"
    ));
    assert!(matches!(batch.events[1].kind, InboundKind::Text { .. }));
    assert_eq!(
        batch.dropped.len(),
        1,
        "an event naming no person is reported, not fatal"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the body, a signature that does not match means the body is never parsed:
    /// the answer is always the signature error, never a parse error.
    #[test]
    fn a_body_whose_signature_does_not_match_is_never_parsed(
        body in prop::collection::vec(any::<u8>(), 0..600),
        sig in "sha256=[0-9a-f]{64}",
    ) {
        let s = setup();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert("x-hub-signature-256", sig.parse().unwrap());
        let result = rt.block_on(s.webhook.receive(&headers, &body));
        prop_assert!(matches!(result, Err(WebhookError::BadSignature)), "{result:?}");
    }
}

#[tokio::test]
async fn repeats_inside_a_large_batch_are_dropped_once() {
    let s = setup();
    let event = |mid: &str| {
        format!(
            r#"{{"sender":{{"id":"{PSID}"}},"recipient":{{"id":"{PAGE}"}},"timestamp":1718000000001,"message":{{"mid":"{mid}","text":"t"}}}}"#
        )
    };
    let mut events: Vec<String> = (0..12).map(|i| event(&format!("m_big_{i:02}"))).collect();
    events.push(event("m_big_03"));
    events.push(event("m_big_11"));
    let body = format!(
        r#"{{"object":"page","entry":[{{"id":"{PAGE}","time":1,"messaging":[{}]}}]}}"#,
        events.join(",")
    );
    let batch = s
        .webhook
        .handle(&post(body.as_bytes(), Some(&sign(body.as_bytes()))))
        .await
        .batch
        .unwrap();
    assert_eq!((batch.events.len(), batch.duplicates), (12, 2));
    let keys: Vec<&str> = batch.events.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys[0], "messenger:m_big_00");
    assert_eq!(keys[11], "messenger:m_big_11", "order kept");
}

/// A repeat in the middle of a batch, small or large, costs only itself: every new event
/// after it is still routed, in order.
#[tokio::test]
async fn new_events_after_a_repeat_in_one_batch_are_all_kept_in_order() {
    let s = setup();
    let event = |mid: &str| {
        format!(
            r#"{{"sender":{{"id":"{PSID}"}},"recipient":{{"id":"{PAGE}"}},"timestamp":1718000000001,"message":{{"mid":"{mid}","text":"t"}}}}"#
        )
    };
    for size in [3usize, 12] {
        let mids: Vec<String> = (0..size).map(|i| format!("m_mid_{size}_{i:02}")).collect();
        // The first event repeated right after itself, then every other one.
        let mut events = vec![event(&mids[0]), event(&mids[0])];
        events.extend(mids[1..].iter().map(|m| event(m)));
        let body = format!(
            r#"{{"object":"page","entry":[{{"id":"{PAGE}","time":1,"messaging":[{}]}}]}}"#,
            events.join(",")
        );
        let batch = s
            .webhook
            .handle(&post(body.as_bytes(), Some(&sign(body.as_bytes()))))
            .await
            .batch
            .unwrap();
        let keys: Vec<String> = batch.events.iter().map(|e| e.key.to_string()).collect();
        let expected: Vec<String> = mids.iter().map(|m| format!("messenger:{m}")).collect();
        assert_eq!(keys, expected, "batch of {}", size + 1);
        assert_eq!(batch.duplicates, 1);
    }
}

/// A seen store that counts its calls, so a test can see the round trips.
#[derive(Default)]
struct CountingSeen {
    inner: MemorySeenEvents,
    calls: std::sync::Mutex<Vec<&'static str>>,
}

impl CountingSeen {
    fn took(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
    fn call(&self, name: &'static str) {
        self.calls.lock().unwrap().push(name);
    }
}

#[async_trait::async_trait]
impl tidings::seen::SeenEvents for CountingSeen {
    async fn is_seen(&self, key: &str, now: Timestamp) -> Result<bool, tidings::StoreError> {
        self.call("is_seen");
        self.inner.is_seen(key, now).await
    }
    async fn mark_seen(
        &self,
        key: &str,
        now: Timestamp,
        ttl: std::time::Duration,
    ) -> Result<bool, tidings::StoreError> {
        self.call("mark_seen");
        self.inner.mark_seen(key, now, ttl).await
    }
    async fn forget(&self, key: &str) -> Result<(), tidings::StoreError> {
        self.call("forget");
        self.inner.forget(key).await
    }
    async fn purge_expired(&self, now: Timestamp) -> Result<usize, tidings::StoreError> {
        self.call("purge_expired");
        self.inner.purge_expired(now).await
    }
    async fn seen_many(
        &self,
        keys: &[&str],
        now: Timestamp,
    ) -> Result<Vec<bool>, tidings::StoreError> {
        self.call("seen_many");
        self.inner.seen_many(keys, now).await
    }
    async fn mark_many(
        &self,
        keys: &[&str],
        now: Timestamp,
        ttl: std::time::Duration,
    ) -> Result<Vec<bool>, tidings::StoreError> {
        self.call("mark_many");
        self.inner.mark_many(keys, now, ttl).await
    }
    async fn claim(
        &self,
        key: &str,
        now: Timestamp,
        lease: std::time::Duration,
    ) -> Result<tidings::seen::Claim, tidings::StoreError> {
        self.call("claim");
        self.inner.claim(key, now, lease).await
    }
    async fn settle(
        &self,
        key: &str,
        now: Timestamp,
        ttl: std::time::Duration,
    ) -> Result<(), tidings::StoreError> {
        self.call("settle");
        self.inner.settle(key, now, ttl).await
    }
    async fn claim_many(
        &self,
        keys: &[&str],
        now: Timestamp,
        lease: std::time::Duration,
    ) -> Result<Vec<tidings::seen::Claim>, tidings::StoreError> {
        self.call("claim_many");
        self.inner.claim_many(keys, now, lease).await
    }
    async fn settle_many(
        &self,
        keys: &[&str],
        now: Timestamp,
        ttl: std::time::Duration,
    ) -> Result<(), tidings::StoreError> {
        self.call("settle_many");
        self.inner.settle_many(keys, now, ttl).await
    }
}

#[tokio::test]
async fn a_batch_costs_one_seen_store_round_trip_to_receive_and_one_to_commit() {
    use tidings::seen::SeenEvents as _;
    let seen = Arc::new(CountingSeen::default());
    let now = Timestamp::from_millis(1_718_000_500_000);
    let webhook = Webhook::builder(
        AppSecret::new(SECRET),
        VerifyToken::new("v"),
        Arc::new(StaticPages::new([PageConfig::new(
            PAGE,
            PageAccessToken::new("token"),
        )])),
        seen.clone(),
        Arc::new(MemoryLastInbound::new()),
    )
    .clock(ManualClock::new(now).shared())
    .build();
    // One event: the single-key calls; three: the batch calls. Either way one call each.
    for (vector_no, events, receive_call, commit_call) in [
        (1, 1, "claim", "settle"),
        (4, 3, "claim_many", "settle_many"),
    ] {
        let (body, sig) = vector(vector_no);
        let mut headers = http::HeaderMap::new();
        headers.insert("x-hub-signature-256", sig.parse().unwrap());
        let batch = webhook.receive(&headers, &body).await.unwrap();
        assert_eq!(batch.events.len(), events);
        assert_eq!(seen.took(), [receive_call]);
        webhook.commit_all(&batch.events).await.unwrap();
        assert_eq!(seen.took(), [commit_call]);
        for event in &batch.events {
            assert!(seen.inner.is_seen(&event.key, now).await.unwrap());
        }
        // The redelivery is dropped whole, after one lookup.
        let again = webhook.receive(&headers, &body).await.unwrap();
        assert_eq!((again.events.len(), again.duplicates), (0, events));
        assert_eq!(seen.took(), [receive_call]);
        webhook.commit_all(&again.events).await.unwrap();
        assert!(seen.took().is_empty(), "nothing to commit, no call");
    }
}

/// Meta retries a delivery for up to 36 hours; a batch handled once is still dropped as a
/// repeat when it comes again a day and a half later, with the default settings.
#[tokio::test]
async fn a_redelivery_a_day_and_a_half_later_is_still_a_repeat() {
    let s = setup();
    let (body, sig) = vector(4);
    let first = s
        .webhook
        .handle(&post(&body, Some(&sig)))
        .await
        .batch
        .unwrap();
    assert_eq!(first.events.len(), 3);
    s.clock.advance(Duration::from_secs(36 * 3600));
    let late = s
        .webhook
        .handle(&post(&body, Some(&sig)))
        .await
        .batch
        .unwrap();
    assert_eq!(
        (late.events.len(), late.duplicates),
        (0, 3),
        "36 hours later the events are still known"
    );
}

/// `max_body` is the largest body accepted: a body of exactly that size is read, one byte
/// more is refused with 413.
#[tokio::test]
async fn a_body_of_exactly_max_body_bytes_is_accepted() {
    let (body, sig) = vector(4);
    let exact = setup_with(body.len());
    assert_eq!(
        exact
            .webhook
            .handle(&post(&body, Some(&sig)))
            .await
            .response
            .status(),
        StatusCode::OK
    );
    let under = setup_with(body.len() - 1);
    assert_eq!(
        under
            .webhook
            .handle(&post(&body, Some(&sig)))
            .await
            .response
            .status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

/// A handshake whose challenge is empty is refused: there is nothing to echo that would prove
/// the endpoint answered this subscription.
#[tokio::test]
async fn a_handshake_with_an_empty_challenge_is_refused() {
    let s = setup();
    assert!(matches!(
        s.webhook.verify_subscription(
            "hub.mode=subscribe&hub.verify_token=s3cret-verify&hub.challenge="
        ),
        Err(WebhookError::BadSubscription)
    ));
    assert_eq!(
        s.webhook
            .verify_subscription(
                "hub.mode=subscribe&hub.verify_token=s3cret-verify&hub.challenge=42"
            )
            .unwrap(),
        "42"
    );
}

/// What a host logs of its webhook, built or half-built: the limits it runs with, never the app
/// secret or the verify token.
#[test]
fn the_webhook_reports_its_limits_and_its_debug_hides_the_secrets() {
    let builder = || {
        Webhook::builder(
            AppSecret::new(SECRET),
            VerifyToken::new("s3cret-verify"),
            Arc::new(StaticPages::new([PageConfig::new(
                PAGE,
                PageAccessToken::new("token"),
            )])),
            Arc::new(MemorySeenEvents::new()),
            Arc::new(MemoryLastInbound::new()),
        )
        .max_body(4096)
        .dedupe_ttl(Duration::from_secs(7200))
    };
    let webhook = builder().build();
    assert_eq!(webhook.max_body(), 4096);
    for shown in [format!("{:?}", builder()), format!("{webhook:?}")] {
        assert!(shown.contains("max_body: 4096"), "{shown}");
        assert!(shown.contains("7200"), "{shown}");
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(!shown.contains("s3cret-verify"), "{shown}");
    }
    // Without a limit of its own, the webhook reads bodies of up to 1 MiB, as documented.
    let default = Webhook::builder(
        AppSecret::new(SECRET),
        VerifyToken::new("s3cret-verify"),
        Arc::new(StaticPages::new([])),
        Arc::new(MemorySeenEvents::new()),
        Arc::new(MemoryLastInbound::new()),
    )
    .build();
    assert_eq!(default.max_body(), 1_048_576);
}
