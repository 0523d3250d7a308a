//! The logs, through a real `fmt` subscriber installed for this whole test binary (its own
//! process, so no other test's threads race the subscriber's callsite registration): a span
//! per webhook request (with its event count and status), per routed event (its key) and per
//! send attempt (its Page and attempt number), and no secret in any of them.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tidings::{
    clock::SystemClock,
    contact::NewContact,
    hub::Hub,
    identity::{Connector, Directory},
    keys::SigningKey,
    message::Message,
    messenger::{
        AppSecret, MessengerTransport, PageAccessToken, PageConfig, StaticPages, VerifyToken,
        Webhook,
    },
    secrecy::SecretSlice,
    store::memory::{MemoryDirectory, MemoryInbox, MemoryLastInbound, MemorySeenEvents},
    testkit::{graph::FakeGraph, user::FakeUser},
    token::Tokens,
};

const PAGE: &str = "104812345678901";
const SECRET: &str = "spans-test-app-secret";
const PAGE_TOKEN: &str = "spans-page-token";

/// Collects what the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn logs_have_a_span_per_request_per_event_and_per_send_attempt() {
    let captured = Captured::default();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .finish(),
    )
    .unwrap();

    let graph = FakeGraph::builder()
        .page(PAGE, PAGE_TOKEN)
        .enforce_window(false)
        .start()
        .await
        .unwrap();
    let directory = Arc::new(MemoryDirectory::new());
    let seen = Arc::new(MemorySeenEvents::new());
    let last = Arc::new(MemoryLastInbound::new());
    let pages = Arc::new(StaticPages::new([PageConfig::new(
        PAGE,
        PageAccessToken::new(PAGE_TOKEN),
    )]));
    let messenger = MessengerTransport::builder(pages.clone(), last.clone())
        .base_url(graph.base_url())
        .build()
        .unwrap();
    let connector = Connector::builder(
        directory.clone(),
        seen.clone(),
        Tokens::new(SigningKey::new(1, SecretSlice::from(vec![7u8; 32])).unwrap()),
    )
    .build();
    let hub = Hub::builder(
        connector.clone(),
        directory.clone(),
        Arc::new(MemoryInbox::new()),
    )
    .transport(Arc::new(messenger))
    .confirmation(Message::text("Connected.").unwrap())
    .build();
    let webhook = Webhook::builder(
        AppSecret::new(SECRET),
        VerifyToken::new("verify"),
        pages,
        seen,
        last,
    )
    .build();

    let ann = directory
        .create(NewContact::new().with_email("ann@example.org"))
        .await
        .unwrap();
    let token = connector.connect_token(&ann.id, Some(PAGE)).unwrap();
    let body = FakeUser::new(PAGE, "100").referral(token.expose_secret(), {
        use tidings::clock::Clock;
        SystemClock.now()
    });
    let bytes = serde_json::to_vec(&body).unwrap();
    let request = http::Request::post("/webhook")
        .header(
            "X-Hub-Signature-256",
            FakeUser::sign(&bytes, &AppSecret::new(SECRET)),
        )
        .body(Bytes::from(bytes))
        .unwrap();
    let handled = hub.handle(&webhook, &request).await;
    assert_eq!(handled.response.status(), 200);
    assert_eq!(graph.sent().len(), 1, "the confirmation went out");

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("webhook_request{events=1 status=200}"),
        "{logs}"
    );
    assert!(logs.contains("route{key=messenger:referral:"), "{logs}");
    assert!(
        logs.contains(&format!(
            "send_attempt{{channel=\"messenger\" page_id=\"{PAGE}\" attempt=1}}"
        )),
        "{logs}"
    );
    for secret in [PAGE_TOKEN, SECRET, token.expose_secret()] {
        assert!(!logs.contains(secret), "a secret in the logs: {logs}");
    }
}
