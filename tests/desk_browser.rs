//! The support desk page in a real headless Chromium, driven over WebDriver (chromedriver).
//!
//! STUB PHASE: the agent API is a small in-test axum stub of the contract until the real
//! router lands; the page is the real one (`tidings::axum::desk_router`).

use std::{
    collections::HashMap,
    net::{SocketAddr, TcpListener as StdListener},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::{get, post},
};
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::stream;
use serde_json::{Value, json};
use tokio::sync::broadcast;

const TOKEN: &str = "agent-token-for-the-browser-test";

// ---- the browser ---------------------------------------------------------------------------

/// chromedriver on a free loopback port and one Chromium session with a fresh profile.
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn find_program(env: &str, names: &[&str]) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "{} not found (set {env}, or `apt-get install -y chromium chromium-driver`)",
        names[0]
    );
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    async fn start() -> Browser {
        let chromium = find_program("CHROMIUM", &["chromium", "chromium-browser"]);
        let chromedriver = find_program("CHROMEDRIVER", &["chromedriver"]);
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            match reqwest::get(format!("{url}/status")).await {
                Ok(r) if r.status().is_success() => break,
                _ if started.elapsed() > Duration::from_secs(20) => {
                    panic!("chromedriver did not answer on {url}")
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let profile = tempfile::tempdir().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--window-size=1280,860",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&url)
            .await
            .unwrap();
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Runs `script` (a function body) in the page and returns its value.
    async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Waits until `script` returns a truthy value, and returns it.
    async fn until(&self, what: &str, script: &str) -> Value {
        let started = Instant::now();
        loop {
            let value = self.js(script).await;
            if truthy(&value) {
                return value;
            }
            if started.elapsed() > Duration::from_secs(15) {
                let shot = self.client.screenshot().await.unwrap_or_default();
                let path = shots_dir().join("failure.png");
                let _ = std::fs::write(&path, shot);
                panic!(
                    "timed out waiting for {what} (last value {value}); screenshot {}",
                    path.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn css(&self, selector: &str) -> fantoccini::elements::Element {
        self.client.find(Locator::Css(selector)).await.unwrap()
    }

    async fn click(&self, selector: &str) {
        self.css(selector).await.click().await.unwrap();
    }

    async fn type_into(&self, selector: &str, text: &str) {
        let field = self.css(selector).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::write(shots_dir().join(name), &png).unwrap();
        if std::env::var_os("TIDINGS_DESK_SCREENSHOTS").is_some() {
            let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs");
            std::fs::create_dir_all(&docs).unwrap();
            std::fs::write(docs.join(name), &png).unwrap();
        }
    }
}

/// JavaScript's truthiness, for the values a script can return.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

fn shots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("desk-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---- the stub agent API --------------------------------------------------------------------

#[derive(Default)]
struct Stub {
    contacts: Vec<Value>,
    transports: HashMap<String, Value>,
    entries: HashMap<String, Vec<Value>>,
    read: HashMap<String, i64>,
    campaigns: HashMap<String, Value>,
    next_id: u64,
}

#[derive(Clone)]
struct App {
    stub: Arc<Mutex<Stub>>,
    events: broadcast::Sender<(String, Value)>,
}

fn now_ms() -> i64 {
    tidings::clock::Clock::now(&tidings::clock::SystemClock).as_millis()
}

impl App {
    fn emit(&self, name: &str, data: Value) {
        let _ = self.events.send((name.to_owned(), data));
    }

    fn add_contact(&self, contact: Value, transports: Value) {
        let mut stub = self.stub.lock().unwrap();
        let id = contact["id"].as_str().unwrap().to_owned();
        stub.contacts.push(contact);
        stub.transports.insert(id, transports);
    }

    fn push(&self, contact: &str, mut entry: Value) -> Value {
        let entry = {
            let mut stub = self.stub.lock().unwrap();
            stub.next_id += 1;
            entry["id"] = json!(format!("e{}", stub.next_id));
            stub.entries
                .entry(contact.to_owned())
                .or_default()
                .push(entry.clone());
            entry
        };
        self.emit("message", json!({"contact_id": contact, "entry": entry}));
        entry
    }

    fn incoming(&self, contact: &str, text: &str) -> Value {
        self.push(
            contact,
            json!({"at": now_ms(), "direction": "incoming", "text": text, "choice": null,
                   "attachments": [], "author": null, "deliveries": []}),
        )
    }

    fn receipt(&self, contact: &str, status: &str) {
        {
            let mut stub = self.stub.lock().unwrap();
            for entry in stub.entries.get_mut(contact).into_iter().flatten() {
                for d in entry["deliveries"].as_array_mut().into_iter().flatten() {
                    if d["channel"] == "messenger" {
                        d["status"] = json!(status);
                    }
                }
            }
        }
        self.emit("receipt", json!({"contact_id": contact}));
    }
}

fn authorized(headers: &HeaderMap) -> Result<(), Response> {
    let ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"));
    if ok {
        Ok(())
    } else {
        Err((
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "a bearer token is needed", "code": "unauthorized"})),
        )
            .into_response())
    }
}

fn stub_router(app: App) -> Router {
    async fn list(State(app): State<App>, headers: HeaderMap) -> Response {
        if let Err(r) = authorized(&headers) {
            return r;
        }
        let stub = app.stub.lock().unwrap();
        let mut rows: Vec<Value> = stub
            .contacts
            .iter()
            .filter_map(|c| {
                let id = c["id"].as_str()?;
                let entries = stub.entries.get(id)?;
                let last = entries.last()?;
                let mark = stub.read.get(id).copied().unwrap_or(i64::MIN);
                let unread = entries
                    .iter()
                    .filter(|e| e["direction"] == "incoming" && e["at"].as_i64() > Some(mark))
                    .count();
                Some(
                    json!({"contact": c, "last_at": last["at"], "last_text": last["text"],
                            "last_direction": last["direction"], "unread": unread}),
                )
            })
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r["last_at"].as_i64()));
        Json(json!({"conversations": rows, "next": null})).into_response()
    }
    async fn one(State(app): State<App>, Path(id): Path<String>, headers: HeaderMap) -> Response {
        if let Err(r) = authorized(&headers) {
            return r;
        }
        let stub = app.stub.lock().unwrap();
        match stub.contacts.iter().find(|c| c["id"] == id.as_str()) {
            None => (
                StatusCode::NOT_FOUND,
                Json(json!({"error": format!("unknown contact {id}"), "code": "not_found"})),
            )
                .into_response(),
            Some(contact) => Json(json!({
                "contact": contact,
                "transports": stub.transports.get(&id),
                "entries": stub.entries.get(&id).cloned().unwrap_or_default(),
            }))
            .into_response(),
        }
    }
    async fn read(
        State(app): State<App>,
        Path(id): Path<String>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> Response {
        if let Err(r) = authorized(&headers) {
            return r;
        }
        let up_to = body["up_to"].as_i64().unwrap_or(0);
        let mut stub = app.stub.lock().unwrap();
        let mark = stub.read.entry(id).or_insert(i64::MIN);
        *mark = (*mark).max(up_to);
        StatusCode::NO_CONTENT.into_response()
    }
    async fn reply(
        State(app): State<App>,
        Path(id): Path<String>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> Response {
        if let Err(r) = authorized(&headers) {
            return r;
        }
        let deliveries: Vec<Value> = body["channels"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| json!({"channel": c, "status": "sent", "message_ids": ["m_out_1"], "reason": null}))
            .collect();
        let entry = app.push(
            &id,
            json!({"at": now_ms(), "direction": "outgoing", "text": body["text"], "choice": null,
                   "attachments": [], "author": "agent", "deliveries": deliveries}),
        );
        Json(json!({"entry": entry["id"], "deliveries": deliveries})).into_response()
    }
    async fn campaign_start(
        State(app): State<App>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> Response {
        if let Err(r) = authorized(&headers) {
            return r;
        }
        let id = body["id"].as_str().unwrap_or("c").to_owned();
        app.stub.lock().unwrap().campaigns.insert(
            id.clone(),
            json!({"id": id, "state": "running", "progress": {"total": null, "done": 0, "sent": 0,
                   "skipped": 0, "failed": 0, "rate": 0.0}, "report": null}),
        );
        let task = app.clone();
        let cid = id.clone();
        tokio::spawn(async move {
            for done in 1..=4u64 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let progress = json!({"total": 4, "done": done, "sent": done.min(3),
                                      "skipped": done.saturating_sub(3), "failed": 0, "rate": 3.3});
                task.stub.lock().unwrap().campaigns.get_mut(&cid).unwrap()["progress"] =
                    progress.clone();
                task.emit("campaign", json!({"id": cid, "progress": progress}));
            }
            let mut stub = task.stub.lock().unwrap();
            let c = stub.campaigns.get_mut(&cid).unwrap();
            c["state"] = json!("finished");
            c["report"] = json!({"campaign": cid, "this_run": {"sent": 3, "skipped": {"no_address": 1},
                "failed": 0, "uncertain": 0, "sent_by_channel": {"messenger": 3}},
                "uncertain": [], "cancelled": false, "elapsed": {"secs": 1, "nanos": 200000000}});
        });
        (
            StatusCode::ACCEPTED,
            Json(json!({"id": id, "state": "running"})),
        )
            .into_response()
    }
    async fn campaign_get(
        State(app): State<App>,
        Path(id): Path<String>,
        headers: HeaderMap,
    ) -> Response {
        if let Err(r) = authorized(&headers) {
            return r;
        }
        match app.stub.lock().unwrap().campaigns.get(&id) {
            Some(c) => Json(c.clone()).into_response(),
            None => (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "unknown campaign", "code": "not_found"})),
            )
                .into_response(),
        }
    }
    async fn events(State(app): State<App>, headers: HeaderMap) -> Response {
        if let Err(r) = authorized(&headers) {
            return r;
        }
        let rx = app.events.subscribe();
        let stream = stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok((name, data)) => {
                        let event = Event::default().event(name).data(data.to_string());
                        return Some((Ok::<_, std::convert::Infallible>(event), rx));
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        Sse::new(stream)
            .keep_alive(KeepAlive::default())
            .into_response()
    }
    Router::new()
        .route("/conversations", get(list))
        .route("/conversations/{id}", get(one))
        .route("/conversations/{id}/read", post(read))
        .route("/conversations/{id}/reply", post(reply))
        .route("/campaigns", post(campaign_start))
        .route("/campaigns/{id}", get(campaign_get))
        .route("/events", get(events))
        .with_state(app)
}

async fn serve(app: App) -> String {
    let router = Router::new()
        .merge(tidings::axum::desk_router())
        .nest("/api", stub_router(app));
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

fn contact(id: &str, first: &str, last: &str, email: &str, technical: bool) -> Value {
    json!({"id": id, "email": email, "first_name": first, "last_name": last, "technical": technical})
}

fn transport(channel: &str, available: bool, note: Option<&str>) -> Value {
    json!({"channel": channel, "available": available, "note": note})
}

// ---- the scenario --------------------------------------------------------------------------

const HOSTILE: &str = r#"<img src=x onerror="alert('xss')"> <script>alert('xss')</script> <a href="javascript:alert('xss')">click</a> javascript:alert('xss')"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_follows_a_conversation_live_and_replies_by_facebook() {
    let (events, _) = broadcast::channel(64);
    let app = App {
        stub: Arc::default(),
        events,
    };
    app.add_contact(
        contact("ann", "Ann", "Lee", "ann@example.org", false),
        json!([
            transport("messenger", true, None),
            transport("email", true, None)
        ]),
    );
    app.add_contact(
        contact("tech", "", "", "fb.6789@users.invalid", true),
        json!([
            transport(
                "messenger",
                true,
                Some("The 24 h window is closed: the reply goes with the HUMAN_AGENT tag.")
            ),
            transport("email", false, None)
        ]),
    );
    app.incoming("tech", "Hi from a desktop client");
    let url = serve(app.clone()).await;
    let b = Browser::start().await;
    b.client.goto(&url).await.unwrap();

    // Sign in once.
    b.until(
        "the sign-in form",
        "return !document.getElementById('login').hidden",
    )
    .await;
    b.type_into("#token", TOKEN).await;
    b.click("#login-form button[type=submit]").await;
    b.until(
        "the live stream",
        "return document.getElementById('live').dataset.state === 'on'",
    )
    .await;

    // Ann writes: her conversation appears on top with one unread, without a reload.
    app.incoming("ann", "Where is lesson 4? https://example.org/l/4.");
    b.until(
        "Ann's conversation on top with 1 unread",
        "const b = document.querySelector('#conversations .summary'); \
         return b && b.dataset.contact === 'ann' && b.querySelector('.unread')?.textContent === '1'",
    )
    .await;
    b.click("#conversations .summary[data-contact=ann]").await;
    b.until(
        "Ann's message",
        "return [...document.querySelectorAll('#entries .entry.incoming .text')].map(e => e.textContent).join('|')",
    )
    .await;
    b.until(
        "the unread count to drop",
        "return !document.querySelector('.summary[data-contact=ann] .unread')",
    )
    .await;

    // Both transports reach Ann; the agent ticks facebook and replies.
    b.click("#reply-transports input[value=messenger]").await;
    b.type_into("#reply-text", "It opens on Monday.").await;
    b.click("#reply-send").await;
    b.until(
        "facebook sent under the reply",
        "const d = document.querySelector('#entries .entry.outgoing .delivery[data-channel=messenger]'); \
         return d && d.dataset.status === 'sent' && d.textContent.startsWith('facebook')",
    )
    .await;
    app.receipt("ann", "delivered");
    b.until(
        "delivered",
        "return document.querySelector('#entries .entry.outgoing .delivery')?.dataset.status === 'delivered'",
    )
    .await;
    app.receipt("ann", "read");
    b.until(
        "read",
        "return document.querySelector('#entries .entry.outgoing .delivery')?.dataset.status === 'read'",
    )
    .await;

    // A hostile message renders inert and literal.
    b.js("window.__csp = []; document.addEventListener('securitypolicyviolation', e => window.__csp.push(e.violatedDirective));").await;
    app.incoming("ann", HOSTILE);
    let shown = b
        .until(
            "the hostile message",
            "const t = [...document.querySelectorAll('#entries .entry.incoming .text')].pop(); \
             return t && t.textContent.includes('onerror') && t.textContent",
        )
        .await;
    assert_eq!(shown, json!(HOSTILE), "shown literally");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(b.client.get_alert_text().await.is_err(), "no alert opened");
    assert_eq!(
        b.js(
            "return [document.querySelectorAll('#entries img, #entries script').length, \
              [...document.querySelectorAll('#entries a')].map(a => a.href), window.__csp]"
        )
        .await,
        json!([0, ["https://example.org/l/4"], []]),
        "no element was made of the message, only the http(s) link is a link, nothing was blocked"
    );
    b.screenshot("desk-conversation.png").await;

    // A contact with only a technical e-mail: no email box, the note for facebook.
    b.click("#conversations .summary[data-contact=tech]").await;
    b.until(
        "tech's transports",
        "return document.querySelector('#reply-transports [data-channel=email]')",
    )
    .await;
    assert_eq!(
        b.js("return [...document.querySelectorAll('#reply-transports input')].map(i => i.value)")
            .await,
        json!(["messenger"])
    );
    assert!(
        b.js("return document.getElementById('reply-transports').textContent")
            .await
            .as_str()
            .unwrap()
            .contains("HUMAN_AGENT")
    );

    // A campaign: progress, then the report.
    b.click("#tab-campaigns").await;
    b.type_into("#campaign-id", "lesson-4").await;
    b.click("#campaign-form button[type=submit]").await;
    b.until(
        "the finished campaign's report",
        "return document.getElementById('campaign-state').textContent === 'finished' && \
                document.getElementById('campaign-report').textContent.includes('sent by channel')",
    )
    .await;
    assert_eq!(
        b.js("const p = document.getElementById('campaign-bar'); return [p.value, p.max]")
            .await,
        json!([4, 4])
    );
    b.screenshot("desk-campaign.png").await;
}
