//! The agent API on a real loopback server over the SQLite stores, with the Messenger
//! transport talking to the fake Graph API: a user writes, an agent reads and replies with
//! "facebook" ticked, receipts move the delivery record, live updates stream, campaigns run
//! and resume; and nothing answers without the agent token.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use serde_json::{Value, json};
use tidings::{
    axum::{AgentApi, BearerToken, WebhookRouter},
    clock::{SystemClock, Timestamp},
    contact::{Address, Channel},
    hub::Hub,
    identity::{ConnectPolicy, Connector, Directory},
    inbox::Support,
    keys::SigningKey,
    messenger::{
        AppSecret, MessengerTransport, PageAccessToken, PageConfig, Policy, StaticPages,
        VerifyToken, Webhook,
    },
    newsletter::{CampaignId, CampaignRunner, Outbox, Outcome, OutcomeRecord},
    secrecy::SecretSlice,
    store::sqlite::SqliteStores,
    testkit::{graph::FakeGraph, user::FakeUser},
    token::Tokens,
    transport::{SharedTransport, TransportSet},
};

const PAGE: &str = "104812345678901";
const SECRET: &str = "agent-test-app-secret";
const TOKEN: &str = "agent-token-for-tests-0123456789";
const PSID: &str = "6789012345678901";

struct Desk {
    base: String,
    graph: FakeGraph,
    stores: SqliteStores,
    client: reqwest::Client,
    dir: Arc<tempfile::TempDir>,
}

async fn desk() -> Desk {
    desk_in(Arc::new(tempfile::tempdir().unwrap())).await
}

/// A desk on the database in `dir`: a second one on the same directory is the service
/// restarted.
async fn desk_in(dir: Arc<tempfile::TempDir>) -> Desk {
    desk_with(dir, Policy::new()).await
}

/// A desk whose Messenger transport (and agent API) follow `policy`.
async fn desk_with(dir: Arc<tempfile::TempDir>, policy: Policy) -> Desk {
    let stores = SqliteStores::open(dir.path().join("desk.db").to_str().unwrap())
        .await
        .unwrap();
    let graph = FakeGraph::builder()
        .page(PAGE, "page-token")
        .enforce_window(false)
        .start()
        .await
        .unwrap();
    let page = PageConfig::new(PAGE, PageAccessToken::new("page-token")).with_username("school");
    let pages = Arc::new(StaticPages::new([page.clone()]));
    let messenger: SharedTransport = Arc::new(
        MessengerTransport::builder(pages.clone(), stores.last_inbound())
            .base_url(graph.base_url())
            .policy(policy)
            .build()
            .unwrap(),
    );
    let tokens = Tokens::new(SigningKey::new(1, SecretSlice::from(vec![9u8; 32])).unwrap());
    let connector = Connector::builder(stores.directory(), stores.seen(), tokens)
        .policy(ConnectPolicy::new().with_auto_register(true))
        .build();
    let hub = Arc::new(
        Hub::builder(connector.clone(), stores.directory(), stores.inbox())
            .transport(messenger.clone())
            .build(),
    );
    let webhook = Arc::new(
        Webhook::builder(
            AppSecret::new(SECRET),
            VerifyToken::new("verify"),
            pages,
            stores.seen(),
            stores.last_inbound(),
        )
        .build(),
    );
    let support = Support::builder(stores.directory(), stores.inbox())
        .transport(messenger.clone())
        .build();
    let mut transports = TransportSet::new();
    transports.insert(messenger);
    let runner = CampaignRunner::builder(stores.directory(), stores.outbox())
        .transports(transports)
        .build();
    let agents = AgentApi::builder(
        BearerToken::new(TOKEN, "agent-ann"),
        support,
        stores.inbox(),
        stores.directory(),
    )
    .last_inbound(stores.last_inbound())
    .messenger_policy(policy)
    .connect_links(connector, page)
    .campaigns(runner, None)
    .build();
    let app: axum::Router = axum::Router::new()
        .nest(
            "/webhook",
            WebhookRouter::new(hub, webhook)
                .observer(agents.webhook_observer())
                .into_router(),
        )
        .nest("/api", agents.router());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Desk {
        base,
        graph,
        stores,
        client: reqwest::Client::new(),
        dir,
    }
}

impl Desk {
    async fn user_posts(&self, body: &Value) {
        let (status, _) = FakeUser::post(
            &format!("{}/webhook", self.base),
            body,
            &AppSecret::new(SECRET),
        )
        .await
        .unwrap();
        assert_eq!(status, 200);
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}/api{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}/api{path}", self.base))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn contact_id(&self) -> String {
        self.stores
            .directory()
            .find_by_address(&Address::messenger(PAGE, PSID).unwrap())
            .await
            .unwrap()
            .unwrap()
            .id
            .to_string()
    }
}

fn now() -> Timestamp {
    use tidings::clock::Clock;
    SystemClock.now()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_reads_replies_with_facebook_ticked_and_sees_the_receipts() {
    let d = desk().await;
    let ann = FakeUser::new(PAGE, PSID);
    d.user_posts(&ann.text("m_1", "Where is lesson 4?", now()))
        .await;
    let id = d.contact_id().await;

    let (status, list) = d.get("/conversations").await;
    assert_eq!(status, 200);
    let first = &list["conversations"][0];
    assert_eq!(first["contact"]["id"], json!(id));
    assert_eq!(first["last_text"], json!("Where is lesson 4?"));
    assert_eq!(first["unread"], json!(1));
    assert_eq!(first["contact"]["technical"], json!(true));

    let (status, conv) = d.get(&format!("/conversations/{id}")).await;
    assert_eq!(status, 200);
    let transports = conv["transports"].as_array().unwrap();
    let messenger = transports
        .iter()
        .find(|t| t["channel"] == "messenger")
        .unwrap();
    assert_eq!(messenger["available"], json!(true));
    assert_eq!(messenger["note"], Value::Null, "inside the 24 h window");
    assert_eq!(conv["entries"][0]["direction"], json!("incoming"));

    let (status, sent) = d
        .post(
            &format!("/conversations/{id}/reply"),
            r#"{"text": "It opens on Monday.", "channels": ["messenger"]}"#,
        )
        .await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["deliveries"][0]["status"], json!("sent"));
    let mid = sent["deliveries"][0]["message_ids"][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(d.graph.sent().len(), 1);
    assert_eq!(d.graph.sent()[0].text(), Some("It opens on Monday."));

    // Receipts move the record: delivered, then read.
    d.user_posts(&ann.delivery(&[&mid], now())).await;
    let status_of_reply = || async {
        let (_, conv) = d.get(&format!("/conversations/{id}")).await;
        let reply = conv["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["direction"] == "outgoing")
            .cloned()
            .unwrap();
        assert_eq!(reply["author"], json!("agent-ann"));
        reply["deliveries"][0]["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(status_of_reply().await, "delivered");
    d.user_posts(&ann.read(now().saturating_add(Duration::from_secs(1))))
        .await;
    assert_eq!(status_of_reply().await, "read");

    // Reading the conversation clears its unread count.
    let (status, _) = d
        .post(
            &format!("/conversations/{id}/read"),
            &json!({"up_to": now().as_millis() + 5000}).to_string(),
        )
        .await;
    assert_eq!(status, 204);
    let (_, list) = d.get("/conversations").await;
    assert_eq!(list["conversations"][0]["unread"], json!(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_message_streams_to_the_desk_without_a_reload() {
    let d = desk().await;
    let response = d
        .client
        .get(format!("{}/api/events", d.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mut response = response;
    d.user_posts(&FakeUser::new(PAGE, PSID).text("m_live", "hello <b>desk</b>", now()))
        .await;
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = response.chunk().await.unwrap() {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("event: message") && seen.contains("hello <b>desk</b>") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "stream so far: {seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_answers_without_the_agent_token_and_nothing_is_touched() {
    let d = desk().await;
    d.user_posts(&FakeUser::new(PAGE, PSID).text("m_1", "hi", now()))
        .await;
    let id = d.contact_id().await;
    let routes: Vec<(&str, String)> = vec![
        ("GET", "/conversations".into()),
        ("GET", format!("/conversations/{id}")),
        ("POST", format!("/conversations/{id}/read")),
        ("POST", format!("/conversations/{id}/reply")),
        ("POST", "/connect-links".into()),
        ("POST", "/flows/onboarding/start".into()),
        ("POST", "/campaigns".into()),
        ("GET", "/campaigns/spring".into()),
        ("GET", "/events".into()),
    ];
    for (method, path) in &routes {
        for auth in [
            None,
            Some("Bearer wrong-token"),
            Some(&format!("Basic {TOKEN}")[..]),
        ] {
            let mut request = d
                .client
                .request(method.parse().unwrap(), format!("{}/api{path}", d.base))
                .header("content-type", "application/json")
                .body(r#"{"text": "sneaky", "channels": ["messenger"], "contact_id": "c1", "up_to": 9999999999999}"#);
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status().as_u16(),
                401,
                "{method} {path} with {auth:?}"
            );
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["code"], json!("unauthorized"));
        }
    }
    assert!(d.graph.sent().is_empty(), "no reply went out");
    let (_, list) = d.get("/conversations").await;
    assert_eq!(
        list["conversations"][0]["unread"],
        json!(1),
        "no read mark moved"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reply_box_says_what_a_closed_window_means_for_a_reply() {
    const HOUR: i64 = 3600;
    // A Page approved for the Human Agent feature.
    let d = desk_with(
        Arc::new(tempfile::tempdir().unwrap()),
        Policy::new().with_human_agent(true),
    )
    .await;
    let ago = |hours: i64| Timestamp::from_secs(now().as_secs() - hours * HOUR);
    // Bob wrote 30 hours ago, Cy 8 days ago.
    d.user_posts(&FakeUser::new(PAGE, "7001").text("m_bob", "Bob here", ago(30)))
        .await;
    d.user_posts(&FakeUser::new(PAGE, "7002").text("m_cy", "Cy here", ago(8 * 24)))
        .await;
    let (_, list) = d.get("/conversations").await;
    let id_of = |text: &str| {
        list["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["last_text"] == json!(text))
            .map(|c| c["contact"]["id"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let (bob, cy) = (id_of("Bob here"), id_of("Cy here"));
    let note = |conv: &Value| {
        conv["transports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["channel"] == "messenger")
            .map(|t| t["note"].as_str().unwrap_or_default().to_owned())
            .unwrap()
    };
    let (_, conv) = d.get(&format!("/conversations/{bob}")).await;
    let bob_note = note(&conv);
    assert!(
        bob_note.contains("closed 6 h ago") && bob_note.contains("HUMAN_AGENT"),
        "{bob_note}"
    );
    let (_, conv) = d.get(&format!("/conversations/{cy}")).await;
    let cy_note = note(&conv);
    assert!(
        cy_note.contains("over 7 days") && cy_note.contains("use e-mail"),
        "{cy_note}"
    );
    // What the note says is what the reply meets: Bob's goes with the HUMAN_AGENT tag.
    let (status, sent) = d
        .post(
            &format!("/conversations/{bob}/reply"),
            r#"{"text": "Sorry for the wait.", "channels": ["messenger"]}"#,
        )
        .await;
    assert_eq!(status, 200, "{sent}");
    let out = d.graph.sent();
    assert_eq!(out.len(), 1, "{sent}");
    assert_eq!(out[0].tag.as_deref(), Some("HUMAN_AGENT"), "{:?}", out[0]);

    // Without the feature, the note says the reply will be refused, and it is.
    let d = desk().await;
    d.user_posts(&FakeUser::new(PAGE, "7001").text("m_bob", "Bob here", ago(30)))
        .await;
    let (_, list) = d.get("/conversations").await;
    let bob = list["conversations"][0]["contact"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, conv) = d.get(&format!("/conversations/{bob}")).await;
    let bob_note = note(&conv);
    assert!(
        bob_note.contains("closed 6 h ago") && bob_note.contains("will refuse"),
        "{bob_note}"
    );
    let (status, sent) = d
        .post(
            &format!("/conversations/{bob}/reply"),
            r#"{"text": "Sorry for the wait.", "channels": ["messenger"]}"#,
        )
        .await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["deliveries"][0]["status"], json!("refused"), "{sent}");
    assert!(d.graph.sent().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors() {
    let d = desk().await;
    d.user_posts(&FakeUser::new(PAGE, PSID).text("m_1", "hi", now()))
        .await;
    let id = d.contact_id().await;
    let reply = format!("/conversations/{id}/reply");
    for (body, needle) in [
        ("{not json", "invalid JSON"),
        (r#"{"text": "x"}"#, "invalid JSON"),
        (r#"{"text": "x", "channels": []}"#, "at least one"),
        (r#"{"text": "x", "channels": ["fax"]}"#, "channels"),
        (r#"{"text": "", "channels": ["messenger"]}"#, "text"),
    ] {
        let (status, error) = d.post(&reply, body).await;
        assert_eq!(status, 400, "{body}: {error}");
        assert_eq!(error["code"], json!("bad_request"));
        assert!(
            error["error"].as_str().unwrap().contains(needle),
            "{body}: {error}"
        );
    }
    let (status, error) = d
        .post(
            "/conversations/nobody/reply",
            r#"{"text": "x", "channels": ["messenger"]}"#,
        )
        .await;
    assert_eq!((status, error["code"].clone()), (404, json!("not_found")));
    assert_eq!(d.get("/conversations/nobody").await.0, 404);
    assert_eq!(d.get("/campaigns/never-started").await.0, 404);
    // Every route that takes a body says so when the body is not its JSON.
    for route in [
        format!("/conversations/{id}/read"),
        "/connect-links".to_owned(),
        "/campaigns".to_owned(),
        "/flows/onboarding/start".to_owned(),
    ] {
        for body in ["{not json", "[1, 2]", r#"{"unexpected": true}"#] {
            let (status, error) = d.post(&route, body).await;
            assert_eq!(status, 400, "{route} {body}: {error}");
            assert_eq!(error["code"], json!("bad_request"), "{route} {body}");
            assert!(
                error["error"].as_str().unwrap().contains("invalid JSON"),
                "{route} {body}: {error}"
            );
        }
    }
    // A read mark or a connect link for nobody is refused.
    for (route, body) in [
        ("/conversations/nobody/read", json!({"up_to": 1})),
        ("/connect-links", json!({"contact_id": "nobody"})),
    ] {
        let (status, error) = d.post(route, &body.to_string()).await;
        assert_eq!(
            (status, error["code"].clone()),
            (404, json!("not_found")),
            "{route}: {error}"
        );
    }
    let (_, list) = d.get("/conversations").await;
    assert_eq!(list["conversations"].as_array().unwrap().len(), 1, "{list}");
    let (status, error) = d
        .post(
            "/flows/onboarding/start",
            &json!({"contact_id": id}).to_string(),
        )
        .await;
    assert_eq!(
        (status, error["code"].clone()),
        (501, json!("not_configured"))
    );
    assert!(d.graph.sent().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_link_names_the_page_and_a_signed_ref() {
    let d = desk().await;
    let contact = d
        .stores
        .directory()
        .create(tidings::contact::NewContact::new().with_email("ann@example.org"))
        .await
        .unwrap();
    let (status, link) = d
        .post(
            "/connect-links",
            &json!({"contact_id": contact.id}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{link}");
    let url = link["url"].as_str().unwrap();
    assert!(url.starts_with("https://m.me/school?ref="), "{url}");
    assert!(link["expires_at"].as_i64().unwrap() > now().as_millis());
    // The user taps it: Messenger reports the ref, and the address is linked to Ann.
    let reference = url.split("ref=").nth(1).unwrap();
    d.user_posts(&FakeUser::new(PAGE, "5550001").referral(reference, now()))
        .await;
    let linked = d
        .stores
        .directory()
        .find_by_address(&Address::messenger(PAGE, "5550001").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(linked.id, contact.id);
    assert_eq!(
        linked.address_on(&Channel::Messenger).map(|a| a.id()),
        Some("5550001")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_runs_reports_progress_and_resumes_without_resending() {
    let d = desk().await;
    for i in 0..5 {
        d.user_posts(&FakeUser::new(PAGE, format!("70{i}")).text(&format!("m_{i}"), "hi", now()))
            .await;
    }
    let body = json!({
        "id": "spring",
        "segment": {"has_address": "messenger"},
        "text": "Spring lessons are open!",
        "channels": ["messenger"],
    })
    .to_string();
    let (status, started) = d.post("/campaigns", &body).await;
    assert_eq!(status, 202, "{started}");
    let finished = async {
        loop {
            let (_, run) = d.get("/campaigns/spring").await;
            if run["state"] == "finished" {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let run = tokio::time::timeout(Duration::from_secs(20), finished)
        .await
        .unwrap();
    assert_eq!(run["report"]["total"]["sent"], json!(5), "{run}");
    assert_eq!(run["progress"]["done"], json!(5));
    assert_eq!(d.graph.sent().len(), 5);
    // Posting the same id again resumes: everyone has an outcome, nobody is sent to twice.
    let (status, _) = d.post("/campaigns", &body).await;
    assert_eq!(status, 202);
    let run = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let (_, run) = d.get("/campaigns/spring").await;
            if run["state"] == "finished" {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(run["report"]["this_run"]["sent"], json!(0), "{run}");
    assert_eq!(d.graph.sent().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_is_still_reported_after_a_restart() {
    let d = desk().await;
    for i in 0..3 {
        d.user_posts(&FakeUser::new(PAGE, format!("80{i}")).text(&format!("m_{i}"), "hi", now()))
            .await;
    }
    let body = json!({
        "id": "autumn",
        "segment": {"has_address": "messenger"},
        "text": "Autumn lessons are open!",
        "channels": ["messenger"],
    })
    .to_string();
    assert_eq!(d.post("/campaigns", &body).await.0, 202);
    tokio::time::timeout(Duration::from_secs(20), async {
        while d.get("/campaigns/autumn").await.1["state"] != "finished" {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    d.stores.close().await;

    // The service restarts on the same file: the run is gone, the outcomes are not.
    let again = desk_in(d.dir.clone()).await;
    let (status, run) = again.get("/campaigns/autumn").await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["state"], "recorded", "{run}");
    assert_eq!(run["report"]["total"]["sent"], json!(3), "{run}");
    assert_eq!(
        run["report"]["total"]["sent_by_channel"]["messenger"],
        json!(3),
        "{run}"
    );
    let (status, missing) = again.get("/campaigns/never-ran").await;
    assert_eq!(status, 404, "{missing}");

    // A run killed between claim and send left a pending claim: reported as interrupted.
    again
        .stores
        .outbox()
        .record(&OutcomeRecord::new(
            CampaignId::new("autumn").unwrap(),
            tidings::ContactId::new("c-killed").unwrap(),
            Outcome::Pending,
            now(),
        ))
        .await
        .unwrap();
    let (_, run) = again.get("/campaigns/autumn").await;
    assert_eq!(run["state"], "interrupted", "{run}");
    assert_eq!(run["report"]["total"]["uncertain"], json!(1), "{run}");
}

/// A host guard that looks the session cookie up in the host's own (async) session store.
struct Sessions(tokio::sync::RwLock<std::collections::HashMap<String, String>>);

#[async_trait::async_trait]
impl tidings::axum::AgentAuth for Sessions {
    async fn authorize(
        &self,
        headers: &axum::http::HeaderMap,
    ) -> Option<tidings::axum::AgentIdentity> {
        let cookie = headers.get("cookie")?.to_str().ok()?;
        let session = cookie
            .split("; ")
            .find_map(|c| c.strip_prefix("admin_session="))?;
        let agent = self.0.read().await.get(session).cloned()?;
        Some(tidings::axum::AgentIdentity(agent))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_guard_may_await_its_session_store() {
    use tidings::store::memory::{MemoryDirectory, MemoryInbox};
    let directory = Arc::new(MemoryDirectory::new());
    let inbox = Arc::new(MemoryInbox::new());
    let support = Support::builder(directory.clone(), inbox.clone()).build();
    let sessions = Sessions(tokio::sync::RwLock::new(
        [("s-123".to_owned(), "agent-bo".to_owned())].into(),
    ));
    let agents = AgentApi::builder(sessions, support, inbox, directory).build();
    let app: axum::Router = axum::Router::new().nest("/api", agents.router());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let base = format!("http://{}/api", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();
    let status = |cookie: Option<&'static str>| {
        let mut request = client.get(format!("{base}/conversations"));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(Some("theme=dark; admin_session=s-123")).await, 200);
    assert_eq!(status(Some("admin_session=s-999")).await, 401);
    assert_eq!(status(None).await, 401);
}
