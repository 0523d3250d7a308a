//! The ready webhook router on a real loopback server, over the SQLite stores: the handshake,
//! signed events routed into the inbox, and Meta's status contract for bad requests.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use serde_json::json;
use tidings::{
    axum::WebhookRouter,
    clock::Timestamp,
    contact::{Address, Channel},
    hub::{Hub, HubResponse},
    identity::{ConnectPolicy, Connector, Directory},
    inbox::{EntryContent, Inbox},
    keys::SigningKey,
    messenger::{AppSecret, PageAccessToken, PageConfig, StaticPages, VerifyToken, Webhook},
    secrecy::SecretSlice,
    store::sqlite::SqliteStores,
    testkit::user::FakeUser,
    token::Tokens,
};

const PAGE: &str = "104812345678901";
const SECRET: &str = "router-test-app-secret";
const MAX_BODY: usize = 4096;

struct Server {
    url: String,
    stores: SqliteStores,
    posts: Arc<AtomicUsize>,
    routed: Arc<AtomicUsize>,
    /// The failure each observed response carried, if any.
    failures: Arc<std::sync::Mutex<Vec<Option<String>>>>,
    _dir: tempfile::TempDir,
}

async fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let stores = SqliteStores::open(dir.path().join("bot.db").to_str().unwrap())
        .await
        .unwrap();
    let pages = Arc::new(StaticPages::new([PageConfig::new(
        PAGE,
        PageAccessToken::new("page-token"),
    )]));
    let tokens = Tokens::new(SigningKey::new(1, SecretSlice::from(vec![7u8; 32])).unwrap());
    let connector = Connector::builder(stores.directory(), stores.seen(), tokens)
        .policy(ConnectPolicy::new().with_auto_register(true))
        .build();
    let hub = Arc::new(Hub::builder(connector, stores.directory(), stores.inbox()).build());
    let webhook = Arc::new(
        Webhook::builder(
            AppSecret::new(SECRET),
            VerifyToken::new("let-me-in"),
            pages,
            stores.seen(),
            stores.last_inbound(),
        )
        .max_body(MAX_BODY)
        .build(),
    );
    let (posts, routed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let observer = {
        let (posts, routed, failures) = (posts.clone(), routed.clone(), failures.clone());
        move |response: &HubResponse| {
            posts.fetch_add(1, Ordering::SeqCst);
            routed.fetch_add(response.routed.len(), Ordering::SeqCst);
            failures
                .lock()
                .unwrap()
                .push(response.error.as_ref().map(|e| e.to_string()));
        }
    };
    let app: axum::Router = axum::Router::new().nest(
        "/webhook",
        WebhookRouter::new(hub, webhook)
            .observer(observer)
            .into_router(),
    );
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let url = format!("http://{}/webhook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server {
        url,
        stores,
        posts,
        routed,
        failures,
        _dir: dir,
    }
}

async fn post_raw(url: &str, body: Vec<u8>, signature: Option<String>) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(signature) = signature {
        request = request.header("x-hub-signature-256", signature);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_echoes_the_challenge_only_for_the_right_token() {
    let s = server().await;
    let get = |query: &str| {
        let url = format!("{}?{query}", s.url);
        async move {
            let r = reqwest::get(url).await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(
        get("hub.mode=subscribe&hub.verify_token=let-me-in&hub.challenge=1158201444").await,
        (200, "1158201444".to_owned())
    );
    assert_eq!(
        get("hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1158201444")
            .await
            .0,
        403
    );
    assert_eq!(
        get("hub.mode=subscribe&hub.verify_token=let-me-in").await.0,
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_message_lands_in_the_inbox_of_the_auto_registered_sender() {
    let s = server().await;
    let ann = FakeUser::new(PAGE, "6789012345678901");
    let body = ann.text(
        "m_1",
        "Where is lesson 4?",
        Timestamp::from_secs(1_764_000_000),
    );
    let (status, text) = FakeUser::post(&s.url, &body, &AppSecret::new(SECRET))
        .await
        .unwrap();
    assert_eq!((status, text.as_str()), (200, "EVENT_RECEIVED"));
    let contact = s
        .stores
        .directory()
        .find_by_address(&Address::messenger(PAGE, "6789012345678901").unwrap())
        .await
        .unwrap()
        .expect("the sender was auto-registered");
    let conversation = s
        .stores
        .inbox()
        .conversation(&contact.id, 10)
        .await
        .unwrap();
    assert_eq!(conversation.len(), 1);
    match &conversation[0].content {
        EntryContent::Incoming(i) => {
            assert_eq!(i.text.as_deref(), Some("Where is lesson 4?"));
            assert_eq!(i.channel, Channel::Messenger);
        }
        other => panic!("expected an incoming entry, got {other:?}"),
    }
    // A redelivery is answered 200 and stores nothing new.
    let (status, _) = FakeUser::post(&s.url, &body, &AppSecret::new(SECRET))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        s.stores
            .inbox()
            .conversation(&contact.id, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(s.posts.load(Ordering::SeqCst), 2);
    assert_eq!(s.routed.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_metas_status_codes_and_store_nothing() {
    let s = server().await;
    let secret = AppSecret::new(SECRET);
    let body = FakeUser::new(PAGE, "1")
        .text("m_x", "hi", Timestamp::from_secs(1_764_000_000))
        .to_string()
        .into_bytes();
    // Unsigned, and signed with another secret: 403.
    assert_eq!(post_raw(&s.url, body.clone(), None).await.0, 403);
    let forged = FakeUser::sign(&body, &AppSecret::new("not-the-secret"));
    assert_eq!(post_raw(&s.url, body.clone(), Some(forged)).await.0, 403);
    // Signed but not a webhook body: 400.
    let junk = b"{\"object\":\"page\",\"entry\":".to_vec();
    let signed = FakeUser::sign(&junk, &secret);
    assert_eq!(post_raw(&s.url, junk, Some(signed)).await.0, 400);
    // Exactly the limit is read (and refused as a body, 400); one byte more is 413.
    let at_limit = vec![b' '; MAX_BODY];
    let signed = FakeUser::sign(&at_limit, &secret);
    assert_eq!(post_raw(&s.url, at_limit, Some(signed)).await.0, 400);
    let over = vec![b' '; MAX_BODY + 1];
    let signed = FakeUser::sign(&over, &secret);
    assert_eq!(post_raw(&s.url, over, Some(signed)).await.0, 413);
    // Another method: 405 with the allowed ones.
    let put = reqwest::Client::new().put(&s.url).send().await.unwrap();
    assert_eq!(put.status().as_u16(), 405);
    let allow = put.headers()["allow"].to_str().unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    assert!(
        s.stores
            .directory()
            .find_by_address(&Address::messenger(PAGE, "1").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(s.routed.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_fails_answers_500_so_meta_delivers_again() {
    let s = server().await;
    s.stores.close().await;
    let body = json!({"object": "page", "entry": [{"id": PAGE, "time": 1, "messaging": [{
        "sender": {"id": "42"}, "recipient": {"id": PAGE}, "timestamp": 1_764_000_000_000_i64,
        "message": {"mid": "m_42", "text": "hello"}
    }]}]});
    let (status, _) = FakeUser::post(&s.url, &body, &AppSecret::new(SECRET))
        .await
        .unwrap();
    assert_eq!(status, 500);
    // The host's observer (metrics, logs) is told what failed, not only the status.
    let failures = s.failures.lock().unwrap().clone();
    assert_eq!(failures.len(), 1, "{failures:?}");
    let failure = failures[0].as_deref().unwrap_or_default();
    assert!(failure.contains("store"), "{failure}");
}
