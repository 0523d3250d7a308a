//! The webhook path: verify + parse + convert + de-duplicate, against the raw Rust baseline
//! measured in the same run.
//!
//! `cargo bench --bench webhook`
//!
//! - `baseline_*`: HMAC-SHA256 (keyed per call) + a minimal typed serde parse + extracting
//!   (sender, text): the shape of `shared/bench-anchors/rust-baseline`, the ceiling to compare
//!   with (target: tidings at least 80 % of it). `baseline_verify_parse_extract` parses one
//!   body over and over, as the anchor does; `baseline_fresh` is fed the same fresh bodies as
//!   `tidings_receive_commit_warm`, built the same way: the like-for-like figure.
//! - `hmac/*`: raw HMAC-SHA256 of the body vs `Webhook::verify_signature` (target: 90 %).
//! - `tidings_receive_commit_warm`: `Webhook::receive` then `Webhook::commit_all` on a
//!   long-lived webhook whose stores are warm, fed never-seen events (the fixture with fresh
//!   message ids, re-signed outside the timed part): signature, parse, conversion to `Inbound`,
//!   Page check, de-duplication and the last-inbound record, as in production. This is the
//!   figure compared with the baseline.
//! - `tidings_receive_commit_cold`: the same into empty stores each time (map growth included).
//! - `tidings_receive_only`, `tidings_parse_only`: the parts, for finding where time goes.
//!   `tidings_parse_only` parses the public `WebhookBody` model; `Webhook::receive` does not
//!   build it but converts each event while parsing.
//!
//! Fixtures are `shared/bench-anchors/fixtures` (body_1: 596 B, 1 event; body_100: 57,107 B,
//! 100 events), so the figures compare with the peers measured by its `run.sh`.

use std::{
    cell::Cell,
    future::Future,
    hint::black_box,
    pin::pin,
    sync::Arc,
    task::{Context, Poll, Waker},
};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use tidings::{
    clock::{ManualClock, Timestamp},
    messenger::{AppSecret, PageAccessToken, PageConfig, StaticPages, VerifyToken, Webhook},
    store::memory::{MemoryLastInbound, MemorySeenEvents},
};

const SECRET: &str = "perf-bench-app-secret-0123456789abcdef";
/// Fresh inputs are built (untimed) this many at a time.
const FRESH_BATCH: u64 = 64;

/// Polls a future that completes without waiting (in-memory stores) to its end, so the bench
/// measures the webhook and not an executor.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

// Parsed like the anchor baseline, which reads only (sender, text) of what it parses.
#[allow(dead_code)]
mod baseline {
    use super::*;

    #[derive(Deserialize)]
    pub struct Body {
        pub object: String,
        pub entry: Vec<Entry>,
    }
    #[derive(Deserialize)]
    pub struct Entry {
        pub id: String,
        pub time: u64,
        #[serde(default)]
        pub messaging: Vec<Messaging>,
    }
    #[derive(Deserialize)]
    pub struct Messaging {
        pub sender: Id,
        pub recipient: Id,
        pub timestamp: u64,
        pub message: Option<Message>,
    }
    #[derive(Deserialize)]
    pub struct Id {
        pub id: String,
    }
    #[derive(Deserialize)]
    pub struct Message {
        pub mid: String,
        pub text: Option<String>,
        pub quick_reply: Option<QuickReply>,
    }
    #[derive(Deserialize)]
    pub struct QuickReply {
        pub payload: String,
    }

    pub fn verify(body: &[u8], header: &str) -> bool {
        let Some(hex_sig) = header.strip_prefix("sha256=") else {
            return false;
        };
        let mut sig = [0u8; 32];
        if hex::decode_to_slice(hex_sig, &mut sig).is_err() {
            return false;
        }
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()) else {
            return false;
        };
        mac.update(body);
        mac.verify_slice(&sig).is_ok()
    }

    pub fn e2e(body: &[u8], header: &str) -> Vec<(String, String)> {
        assert!(verify(body, header));
        let parsed: Body = serde_json::from_slice(body).expect("fixture parses");
        let mut out = Vec::new();
        for e in parsed.entry {
            for m in e.messaging {
                if let Some(text) = m.message.and_then(|msg| msg.text) {
                    out.push((m.sender.id, text));
                }
            }
        }
        out
    }
}

fn webhook() -> Webhook {
    webhook_with(tidings::clock::SystemClock::shared())
}

fn webhook_with(clock: tidings::clock::SharedClock) -> Webhook {
    let pages = StaticPages::new([PageConfig::new(
        "104857600123456",
        PageAccessToken::new("t"),
    )]);
    Webhook::builder(
        AppSecret::new(SECRET),
        VerifyToken::new("v"),
        Arc::new(pages),
        Arc::new(MemorySeenEvents::new()),
        Arc::new(MemoryLastInbound::new()),
    )
    .clock(clock)
    .build()
}

fn fixture(name: &str) -> (Vec<u8>, String) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/fixtures");
    let body = std::fs::read(format!("{dir}/{name}")).expect("fixture");
    let sig = std::fs::read_to_string(format!("{dir}/{name}.sig256")).expect("signature");
    (body, sig.trim().to_owned())
}

fn bench_webhook(c: &mut Criterion) {
    for (name, events) in [("body_1", 1u64), ("body_100", 100)] {
        let (body, sig) = fixture(&format!("{name}.json"));
        let mut headers = http::HeaderMap::new();
        headers.insert("x-hub-signature-256", sig.parse().expect("header"));

        // Sanity: both paths see every event.
        assert_eq!(baseline::e2e(&body, &sig).len() as u64, events);
        let batch = block_on(webhook().receive(&headers, &body)).expect("receive");
        assert_eq!(batch.events.len() as u64, events);

        let mut group = c.benchmark_group(format!("webhook/{name}"));
        group.throughput(Throughput::Elements(events));
        // The anchor's way: the same body, hot in cache, every time.
        group.bench_function("baseline_verify_parse_extract", |b| {
            b.iter(|| baseline::e2e(black_box(&body), black_box(&sig)))
        });
        // Steady state: one long-lived webhook with warm stores, fed never-seen events: the
        // fixture with fresh message ids, re-signed, built outside the timed part in batches of
        // FRESH_BATCH (so a body is in cache as it is after being read from the socket, not
        // evicted by megabytes of other inputs). The same people write again, as they do in
        // production. Time moves so that marks expire: about 1,000 requests' events stay live
        // (rate x TTL), 1,000 marks for body_1 and 100,000 for body_100.
        // `baseline_fresh` is the baseline fed exactly the same inputs the same way: the ratio
        // compares like with like.
        let template = String::from_utf8(body.clone()).expect("utf-8 fixture");
        let fresh = Cell::new(0u64);
        let clock = ManualClock::new(Timestamp::from_secs(1_718_000_000));
        let step = tidings::messenger::webhook::DEFAULT_DEDUPE_TTL / 1000;
        let variant = || {
            let serial = fresh.get() + 1;
            fresh.set(serial);
            let variant = template.replace("m_AG5Hz2Uq7tuwNEhXfY", &format!("m_{serial:018}"));
            let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
            mac.update(variant.as_bytes());
            let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
            let mut h = http::HeaderMap::new();
            h.insert("x-hub-signature-256", sig.parse().expect("header"));
            (variant.into_bytes(), h)
        };
        group.bench_function("baseline_fresh", |b| {
            b.iter_batched_ref(
                variant,
                |(variant, h)| {
                    let sig = h
                        .get("x-hub-signature-256")
                        .and_then(|v| v.to_str().ok())
                        .expect("signature");
                    // Its output is dropped inside the timed part, as the anchor's loop does
                    // and as the tidings batch is below.
                    baseline::e2e(variant, sig).len()
                },
                BatchSize::NumIterations(FRESH_BATCH),
            )
        });
        let warm = webhook_with(clock.shared());
        group.bench_function("tidings_receive_commit_warm", |b| {
            b.iter_batched_ref(
                variant,
                |(variant, h)| {
                    clock.advance(step);
                    block_on(async {
                        let batch = warm.receive(h, variant).await.expect("receive");
                        warm.commit_all(&batch.events).await.expect("commit");
                        debug_assert_eq!(batch.events.len() as u64, events);
                        batch.events.len()
                    })
                },
                BatchSize::NumIterations(FRESH_BATCH),
            )
        });
        group.bench_function("tidings_parse_only", |b| {
            b.iter(|| {
                serde_json::from_slice::<tidings::messenger::event::WebhookBody>(black_box(&body))
                    .expect("parse")
            })
        });
        // receive() changes no state, so one webhook serves every iteration.
        let reader = webhook();
        group.bench_function("tidings_receive_only", |b| {
            b.iter(|| {
                block_on(reader.receive(black_box(&headers), black_box(&body))).expect("receive")
            })
        });
        group.bench_function("tidings_receive_commit_cold", |b| {
            b.iter_batched_ref(
                webhook,
                |w| {
                    block_on(async {
                        let batch = w
                            .receive(black_box(&headers), black_box(&body))
                            .await
                            .expect("receive");
                        for event in &batch.events {
                            w.commit(event).await.expect("commit");
                        }
                        batch.events.len()
                    })
                },
                BatchSize::SmallInput,
            )
        });
        group.finish();

        let mut group = c.benchmark_group(format!("hmac/{name}"));
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function("raw_hmac_sha256", |b| {
            b.iter(|| {
                let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
                mac.update(black_box(&body));
                mac.finalize().into_bytes()
            })
        });
        let w = webhook();
        group.bench_function("tidings_verify_signature", |b| {
            b.iter(|| w.verify_signature(Some(black_box(sig.as_bytes())), black_box(&body)))
        });
        group.finish();
    }
}

criterion_group!(benches, bench_webhook);
criterion_main!(benches);
