//! Routing a webhook batch through the Hub: verify, parse, de-duplicate, route to the inbox,
//! commit. Meta waits 20 seconds for the answer; this shows how far inside that a batch stays.
//!
//! `cargo bench --all-features --bench hub`
//!
//! The fixture's 100 senders are linked contacts after the first batch (auto-registration is
//! on), so each batch after that is 100 messages of known contacts into warm memory stores.
//! Every batch carries fresh message ids and is signed outside the timed part.

use std::{
    future::Future,
    pin::pin,
    sync::Arc,
    task::{Context, Poll, Waker},
};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tidings::{
    clock::{ManualClock, Timestamp},
    hub::Hub,
    identity::{ConnectPolicy, Connector},
    keys::SigningKey,
    messenger::{AppSecret, PageAccessToken, PageConfig, StaticPages, VerifyToken, Webhook},
    secrecy::SecretSlice,
    store::memory::{MemoryDirectory, MemoryInbox, MemoryLastInbound, MemorySeenEvents},
    token::Tokens,
};

const SECRET: &str = "perf-bench-app-secret-0123456789abcdef";

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

fn bench_hub(c: &mut Criterion) {
    let clock = ManualClock::new(Timestamp::from_secs(1_718_000_000));
    let directory = Arc::new(MemoryDirectory::new());
    let seen = Arc::new(MemorySeenEvents::new());
    let last = Arc::new(MemoryLastInbound::new());
    let pages = Arc::new(StaticPages::new([PageConfig::new(
        "104857600123456",
        PageAccessToken::new("t"),
    )]));
    let tokens = Tokens::new(SigningKey::new(1, SecretSlice::from(vec![1u8; 32])).expect("key"))
        .with_clock(clock.shared());
    let connector = Connector::builder(directory.clone(), seen.clone(), tokens)
        .clock(clock.shared())
        .policy(ConnectPolicy::new().with_auto_register(true))
        .build();
    let hub = Hub::builder(connector, directory, Arc::new(MemoryInbox::new())).build();
    let webhook = Webhook::builder(
        AppSecret::new(SECRET),
        VerifyToken::new("v"),
        pages,
        seen,
        last,
    )
    .clock(clock.shared())
    .build();

    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/fixtures");
    let template = std::fs::read_to_string(format!("{dir}/body_100.json")).expect("fixture");
    let step = tidings::messenger::webhook::DEFAULT_DEDUPE_TTL / 1000;
    let mut serial = 0u64;
    let mut request = move || {
        serial += 1;
        clock.advance(step);
        let body = template.replace("m_AG5Hz2Uq7tuwNEhXfY", &format!("m_{serial:018}"));
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
        mac.update(body.as_bytes());
        let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        http::Request::post("/webhook")
            .header("x-hub-signature-256", sig)
            .body(Bytes::from(body))
            .expect("request")
    };
    // The first batch registers the 100 senders.
    let first = block_on(hub.handle(&webhook, &request()));
    assert_eq!(first.response.status(), 200);
    assert_eq!(first.routed.len(), 100);

    let mut group = c.benchmark_group("hub/body_100");
    group.throughput(Throughput::Elements(100));
    group.bench_function("handle_webhook_route_commit", |b| {
        b.iter_batched_ref(
            &mut request,
            |req| {
                let handled = block_on(hub.handle(&webhook, req));
                debug_assert_eq!(handled.routed.len(), 100);
                handled.routed.len()
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_hub);
criterion_main!(benches);
