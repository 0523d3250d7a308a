//! Send API throughput against the fake Graph API on loopback, next to plain reqwest against
//! the same server in the same run (target: the transport at least 80 % of plain reqwest).
//!
//! `cargo bench --bench send`
//!
//! Both clients POST one text message and read the answer; the transport also resolves the
//! Page, renders, applies the messaging policy and builds the authenticated URL. The rate
//! limiter is off, as the comparison is about the client's own cost.

use std::{sync::Arc, time::Duration};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tidings::{
    activity::LastInbound,
    clock::{SystemClock, Timestamp},
    contact::Address,
    message::Message,
    messenger::{MessengerTransport, PageAccessToken, PageConfig, StaticPages},
    store::memory::MemoryLastInbound,
    testkit::graph::FakeGraph,
    transport::{SendContext, Transport},
};

const PAGE: &str = "104812345678901";
const PSID: &str = "6789012345678901";

async fn run<F, Fut>(iters: u64, concurrency: u64, send: F) -> Duration
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let send = Arc::new(send);
    let started = tokio::time::Instant::now();
    let per_task = iters.div_ceil(concurrency);
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let send = send.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    send().await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("send task");
    }
    started.elapsed()
}

fn runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("runtime")
}

fn bench_send(c: &mut Criterion) {
    // As in shared/bench-anchors/rust-http: the server and the client get one worker each.
    let server_rt = runtime("fake-graph");
    let client_rt = runtime("client");
    let fake = server_rt.block_on(async {
        FakeGraph::builder()
            .page(PAGE, "token")
            .enforce_window(false)
            .start()
            .await
            .expect("fake")
    });
    let (messenger, plain) = client_rt.block_on(async {
        let pages = StaticPages::new([PageConfig::new(PAGE, PageAccessToken::new("token"))]);
        let last = Arc::new(MemoryLastInbound::new());
        let to = Address::messenger(PAGE, PSID).expect("address");
        last.record(&to, Timestamp::from_millis(i64::MAX / 2))
            .await
            .expect("record");
        let messenger = MessengerTransport::builder(Arc::new(pages), last)
            .base_url(fake.base_url())
            .clock(SystemClock::shared())
            .rate_limit(None)
            .build()
            .expect("transport");
        (messenger, reqwest::Client::new())
    });
    let url = format!(
        "{}/v25.0/{PAGE}/messages?access_token=token",
        fake.base_url()
    );
    let to = Address::messenger(PAGE, PSID).expect("address");
    let message = Message::text("Lesson 3 is open: https://school.example/l/3").expect("message");
    let body = serde_json::json!({
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {"text": "Lesson 3 is open: https://school.example/l/3"},
    });

    for concurrency in [1u64, 64] {
        let mut group = c.benchmark_group(format!("send/concurrency_{concurrency}"));
        group.throughput(Throughput::Elements(1));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(5));
        group.bench_function("plain_reqwest", |b| {
            b.iter_custom(|iters| {
                let (plain, url, body) = (plain.clone(), url.clone(), body.clone());
                client_rt.block_on(run(iters, concurrency, move || {
                    let (plain, url, body) = (plain.clone(), url.clone(), body.clone());
                    async move {
                        let answer: serde_json::Value = plain
                            .post(&url)
                            .json(&body)
                            .send()
                            .await
                            .expect("send")
                            .json()
                            .await
                            .expect("json");
                        assert!(answer["message_id"].is_string());
                    }
                }))
            })
        });
        group.bench_function("tidings_transport", |b| {
            b.iter_custom(|iters| {
                let (messenger, to, message) = (messenger.clone(), to.clone(), message.clone());
                client_rt.block_on(run(iters, concurrency, move || {
                    let (messenger, to, message) = (messenger.clone(), to.clone(), message.clone());
                    async move {
                        let receipt = messenger
                            .send(&to, &message, &SendContext::reply())
                            .await
                            .expect("send");
                        assert_eq!(receipt.message_ids.len(), 1);
                    }
                }))
            })
        });
        group.finish();
    }
    drop(fake);
}

criterion_group!(benches, bench_send);
criterion_main!(benches);
