//! The support desk page in a real headless Chromium, driven over WebDriver (chromedriver on
//! a free loopback port), against the real stack: the page (`tidings::axum::desk_router`), the
//! agent API (`AgentApi`) and the webhook router over the Hub, on SQLite stores, with
//! Messenger going to the fake Graph API on loopback. Users are played by `FakeUser`: signed
//! webhooks posted over HTTP, as Meta posts them.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them when missing; set
//! `CHROMIUM` / `CHROMEDRIVER` to use others). Screenshots go to
//! `target/tmp/desk-screenshots/`; with `TIDINGS_DESK_SCREENSHOTS=1` also to `docs/`.

use std::{
    net::{SocketAddr, TcpListener as StdListener},
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tidings::{
    axum::{AgentApi, BearerToken, WebhookRouter, desk_router},
    clock::{Clock, SystemClock},
    contact::{Address, Channel, ContactId, NewContact},
    hub::Hub,
    identity::{ConnectPolicy, Connector, Directory},
    inbox::Support,
    keys::{KeyRing, SigningKey},
    messenger::{
        AppSecret, MessengerTransport, PageAccessToken, PageConfig, RetryPolicy, StaticPages,
        VerifyToken, Webhook,
    },
    newsletter::CampaignRunner,
    process::{FlowEngine, flow::Flow},
    secrecy::SecretSlice,
    store::sqlite::SqliteStores,
    testkit::{graph::FakeGraph, user::FakeUser},
    token::Tokens,
    transport::{SharedTransport, TransportSet, stub::StubTransport},
};

const TOKEN: &str = "agent-token-for-the-browser-test";
const PAGE: &str = "104812345678901";
const PAGE_TOKEN: &str = "desk-page-token";
const SECRET: &str = "desk-browser-app-secret";
const ANN: &str = "6789012345678901";
const DESKTOP_USER: &str = "6789012345670002";
const BO: &str = "6789012345670003";

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(100);

/// One browser at a time: two Chromiums on a small machine make every wait flaky.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---- the browser ---------------------------------------------------------------------------

/// chromedriver on a free loopback port and one Chromium session with a fresh profile.
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    /// Kills chromedriver and the Chromium it started: they run in a process group of their
    /// own, so a test that fails before [`Browser::quit`] leaves no browser behind either.
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
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
    /// Ends the session (chromedriver closes Chromium), then stops chromedriver.
    async fn quit(self) {
        let _ = self.client.clone().close().await;
    }

    async fn start() -> Browser {
        let chromium = find_program("CHROMIUM", &["chromium", "chromium-browser"]);
        let chromedriver = find_program("CHROMEDRIVER", &["chromedriver"]);
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        // Up to 20 s (200 tries, 100 ms apart).
        let mut tries = 0;
        loop {
            match reqwest::get(format!("{url}/status")).await {
                Ok(r) if r.status().is_success() => break,
                _ if tries >= 200 => panic!("chromedriver did not answer on {url}"),
                _ => tokio::time::sleep(POLL).await,
            }
            tries += 1;
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

    /// Waits (about 15 s at most) until `script` returns a truthy value, and returns it.
    async fn until(&self, what: &str, script: &str) -> Value {
        for tries in 0.. {
            let value = self.js(script).await;
            if truthy(&value) {
                return value;
            }
            if tries >= 150 {
                let shot = self.client.screenshot().await.unwrap_or_default();
                let path = shots_dir().join("failure.png");
                let _ = std::fs::write(&path, shot);
                panic!(
                    "timed out waiting for {what} (last value {value}); screenshot {}",
                    path.display()
                );
            }
            tokio::time::sleep(POLL).await;
        }
        unreachable!("the loop returns or panics")
    }

    async fn css(&self, selector: &str) -> fantoccini::elements::Element {
        self.client.find(Locator::Css(selector)).await.unwrap()
    }

    /// Clicks the element `selector` names. The page re-renders lists as updates arrive, so
    /// an element found just before a re-render is looked up again.
    async fn click(&self, selector: &str) {
        for _ in 0..20 {
            match self.css(selector).await.click().await {
                Ok(()) => return,
                Err(fantoccini::error::CmdError::Standard(e))
                    if e.error == fantoccini::error::ErrorStatus::StaleElementReference =>
                {
                    tokio::time::sleep(POLL).await;
                }
                Err(e) => panic!("clicking {selector}: {e}"),
            }
        }
        panic!("{selector} went stale 20 times in a row");
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

// ---- the server -----------------------------------------------------------------------------

/// The whole stack on loopback: `/` the desk, `/api` the agent API, `/webhook` the webhook.
struct Desk {
    url: String,
    graph: FakeGraph,
    stores: SqliteStores,
    ann: ContactId,
    _dir: tempfile::TempDir,
}

const WELCOME: &str = r#"{
  "id": "welcome", "version": 1, "start": "hello",
  "blocks": [
    {"id": "hello", "type": "send", "text": "Welcome aboard! Lesson 1 is open.", "next": "done"},
    {"id": "done", "type": "end"}
  ]
}"#;

impl Desk {
    async fn start() -> Desk {
        let dir = tempfile::tempdir().unwrap();
        let stores = SqliteStores::open(dir.path().join("desk.db").to_str().unwrap())
            .await
            .unwrap();
        let graph = FakeGraph::builder()
            .page(PAGE, PAGE_TOKEN)
            .start()
            .await
            .unwrap();
        let page = PageConfig::new(PAGE, PageAccessToken::new(PAGE_TOKEN));
        let pages = Arc::new(StaticPages::new([page.clone()]));
        let messenger: SharedTransport = Arc::new(
            MessengerTransport::builder(pages.clone(), stores.last_inbound())
                .base_url(graph.base_url())
                .retry(RetryPolicy::default().with_max_retries(0))
                .build()
                .unwrap(),
        );
        let mail: SharedTransport = Arc::new(StubTransport::new(Channel::Email));
        let tokens = Tokens::new(SigningKey::new(1, SecretSlice::from(vec![7u8; 32])).unwrap());
        let connector = Connector::builder(stores.directory(), stores.seen(), tokens)
            .policy(ConnectPolicy::new().with_auto_register(true))
            .build();
        let keys = KeyRing::new(SigningKey::new(1, SecretSlice::from(vec![9u8; 32])).unwrap());
        let engine = Arc::new(
            FlowEngine::builder(stores.processes(), stores.directory(), keys)
                .transport(messenger.clone())
                .build(),
        );
        engine
            .define(serde_json::from_str::<Flow>(WELCOME).unwrap())
            .unwrap();
        let hub = Arc::new(
            Hub::builder(connector.clone(), stores.directory(), stores.inbox())
                .processes(engine.clone())
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
            .transport(mail.clone())
            .build();
        let mut transports = TransportSet::new();
        transports.insert(messenger);
        transports.insert(mail);
        let runner = CampaignRunner::builder(stores.directory(), stores.outbox())
            .transports(transports)
            .build();
        let agents = AgentApi::builder(
            BearerToken::new(TOKEN, "agent-7"),
            support,
            stores.inbox(),
            stores.directory(),
        )
        .last_inbound(stores.last_inbound())
        .connect_links(connector, page)
        .processes(engine)
        .campaigns(runner, None)
        .build();
        let app: axum::Router = axum::Router::new()
            .merge(desk_router())
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
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        // Ann has a platform account with a real e-mail and has linked Messenger.
        let ann = stores
            .directory()
            .create(
                NewContact::new()
                    .with_name("Ann", "Lee")
                    .with_email("ann@example.org")
                    .with_address(Address::messenger(PAGE, ANN).unwrap()),
            )
            .await
            .unwrap()
            .id;
        Desk {
            url,
            graph,
            stores,
            ann,
            _dir: dir,
        }
    }

    /// Posts a signed webhook body as Meta does; the server must take it.
    async fn post(&self, body: &Value) {
        let (status, text) = FakeUser::post(
            &format!("{}/webhook", self.url),
            body,
            &AppSecret::new(SECRET),
        )
        .await
        .unwrap();
        assert_eq!((status, text.as_str()), (200, "EVENT_RECEIVED"));
    }

    /// `psid` writes `text` on Messenger now (the fake Graph API sees it too, for its window).
    async fn writes(&self, psid: &str, mid: &str, text: &str) {
        let now = SystemClock.now();
        self.graph.user_wrote(PAGE, psid, now);
        self.post(&FakeUser::new(PAGE, psid).text(mid, text, now))
            .await;
    }
}

/// Signs in on a fresh page and waits for the live stream.
async fn sign_in(b: &Browser, desk: &Desk) {
    b.client.goto(&desk.url).await.unwrap();
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
}

/// A script answering `[status, text]` of the last reply's Messenger delivery once its status
/// is `status`.
fn last_reply_is(status: &str) -> String {
    format!(
        "const d = [...document.querySelectorAll('#entries .entry.outgoing')].pop()?.querySelector('.delivery[data-channel=messenger]'); return d && d.dataset.status === {status:?} && [d.dataset.status, d.textContent]"
    )
}

// ---- the scenarios ---------------------------------------------------------------------------

const HOSTILE: &str = r#"<img src=x onerror="alert('xss')"> <script>alert('xss')</script> <a href="javascript:alert('xss')">click</a> javascript:alert('xss')"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_follows_a_conversation_live_and_replies_by_facebook() {
    let _one = ONE_BROWSER.lock().await;
    let desk = Desk::start().await;
    // Someone on a desktop client, whose link ref was lost: auto-registered, technical e-mail.
    desk.writes(DESKTOP_USER, "m_desk_1", "Hi, I can't find my login")
        .await;
    let b = Browser::start().await;
    sign_in(&b, &desk).await;
    b.until(
        "the desktop user's conversation",
        "return document.querySelectorAll('#conversations .summary').length === 1",
    )
    .await;

    // Ann writes: her conversation comes first with one unread, without a reload.
    desk.writes(
        ANN,
        "m_ann_1",
        "Where is lesson 4? https://example.org/l/4.",
    )
    .await;
    let ann = desk.ann.to_string();
    b.until(
        "Ann's conversation first with 1 unread",
        &format!(
            "const s = document.querySelector('#conversations .summary'); \
             return s && s.dataset.contact === {ann:?} && \
             s.querySelector('.unread')?.textContent === '1' && \
             s.querySelector('.who').textContent === 'Ann Lee'"
        ),
    )
    .await;
    b.click(&format!("#conversations .summary[data-contact={ann:?}]"))
        .await;
    assert_eq!(
        b.until(
            "Ann's message",
            "const es = [...document.querySelectorAll('#entries .entry.incoming')]; \
             return es.length > 0 && es.map(e => [e.querySelector('.direction').textContent, e.querySelector('.text').textContent])",
        )
        .await,
        json!([["incoming", "Where is lesson 4? https://example.org/l/4."]])
    );
    b.until(
        "the unread count to drop once the agent has seen it",
        &format!("return !document.querySelector('.summary[data-contact={ann:?}] .unread')"),
    )
    .await;

    // Messenger is linked and Ann has a real address: both boxes. The agent ticks facebook.
    assert_eq!(
        b.js("return [...document.querySelectorAll('#reply-transports input')].map(i => [i.value, i.parentElement.textContent])")
            .await,
        json!([["messenger", "facebook"], ["email", "email"]])
    );
    b.click("#reply-transports input[value=messenger]").await;
    b.type_into("#reply-text", "It opens on Monday.").await;
    b.click("#reply-send").await;
    assert_eq!(
        b.until("the reply with its transport", &last_reply_is("sent"))
            .await,
        json!(["sent", "facebook sent"])
    );
    let sent = desk.graph.sent();
    assert_eq!(sent.len(), 1, "one Send API call");
    assert_eq!(
        (sent[0].recipient.as_str(), sent[0].text()),
        (ANN, Some("It opens on Monday."))
    );
    let mid = sent[0].message_id.clone().unwrap();

    // Receipts come in: delivered, then read, each shown without a reload.
    let user = FakeUser::new(PAGE, ANN);
    desk.post(&user.delivery(&[&mid], SystemClock.now())).await;
    assert_eq!(
        b.until("delivered", &last_reply_is("delivered")).await,
        json!(["delivered", "facebook delivered"])
    );
    desk.post(&user.read(SystemClock.now())).await;
    assert_eq!(
        b.until("read", &last_reply_is("read")).await,
        json!(["read", "facebook read"])
    );

    // Ann edits her message and reacts to the reply: both show on their message, live.
    let change = |field: &str, value: Value| {
        let at = SystemClock.now().as_millis();
        json!({"object":"page","entry":[{"id":PAGE,"time":at,"messaging":[
            {"sender":{"id":ANN},"recipient":{"id":PAGE},"timestamp":at, field: value}]}]})
    };
    desk.post(&change(
        "message_edit",
        json!({"mid":"m_ann_1","text":"Where is lesson 5? https://example.org/l/5","num_edit":1}),
    ))
    .await;
    desk.post(&change(
        "reaction",
        json!({"mid": mid, "action":"react","emoji":"\u{1F44D}","reaction":"like"}),
    ))
    .await;
    assert_eq!(
        b.until(
            "the edit and the reaction",
            "const inc = document.querySelector('#entries .entry.incoming'); \
             const out = [...document.querySelectorAll('#entries .entry.outgoing')].pop(); \
             const r = out && out.querySelector('.reaction'); \
             return inc && r && inc.querySelector('.edited') && \
               [inc.querySelector('.text').textContent, inc.querySelector('.edit-history').textContent, r.textContent]",
        )
        .await,
        json!([
            "Where is lesson 5? https://example.org/l/5",
            "Where is lesson 4? https://example.org/l/4.",
            "\u{1F44D} like"
        ])
    );

    // A hostile message renders inert: shown literally, no element made of it, nothing ran.
    b.js("window.__csp = []; document.addEventListener('securitypolicyviolation', e => window.__csp.push(e.violatedDirective)); window.__title = document.title;")
        .await;
    desk.writes(ANN, "m_ann_2", HOSTILE).await;
    let shown = b
        .until(
            "the hostile message",
            "const t = [...document.querySelectorAll('#entries .entry.incoming .text')].pop(); \
             return t && t.textContent.includes('onerror') && t.textContent",
        )
        .await;
    assert_eq!(shown, json!(HOSTILE), "shown literally");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        b.client.get_alert_text().await.is_err(),
        "no alert was opened"
    );
    assert_eq!(
        b.js("return [document.querySelectorAll('#entries img, #entries script, #conversations img, #conversations script').length, \
         [...document.querySelectorAll('#entries a')].map(a => a.href), window.__csp, document.title === window.__title]")
            .await,
        json!([0, ["https://example.org/l/5"], [], true]),
        "no element was made of the message, only the http(s) URL became a link, nothing was blocked"
    );
    b.screenshot("desk-conversation.png").await;

    // The desktop user has only a technical e-mail: a facebook box, no email box.
    b.click("#conversations .summary:not([aria-current])").await;
    b.until(
        "the desktop user's transports",
        "return document.getElementById('contact-meta').textContent.includes('technical address') && \
         document.querySelector('#reply-transports [data-channel=email]')",
    )
    .await;
    assert_eq!(
        b.js("return [...document.querySelectorAll('#reply-transports input')].map(i => i.value)")
            .await,
        json!(["messenger"]),
        "no email checkbox for a technical address"
    );
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_runs_a_campaign_and_starts_a_flow() {
    let _one = ONE_BROWSER.lock().await;
    let desk = Desk::start().await;
    desk.writes(ANN, "m_ann_1", "Hello!").await;
    desk.writes(DESKTOP_USER, "m_desk_1", "Hi there").await;
    // Bo linked Messenger but never wrote: outside the window, the campaign skips him.
    desk.stores
        .directory()
        .create(
            NewContact::new()
                .with_name("Bo", "Ek")
                .with_address(Address::messenger(PAGE, BO).unwrap()),
        )
        .await
        .unwrap();
    let b = Browser::start().await;
    sign_in(&b, &desk).await;

    // Start a flow for Ann from her conversation: the flow's message goes out on Messenger.
    let ann = desk.ann.to_string();
    b.until(
        "Ann's conversation",
        &format!("return document.querySelector('.summary[data-contact={ann:?}]')"),
    )
    .await;
    b.click(&format!(".summary[data-contact={ann:?}]")).await;
    b.until("Ann's thread", "return !document.getElementById('thread').hidden && document.querySelector('#entries .entry')").await;
    b.type_into("#flow-id", "welcome").await;
    b.click("#flow-form button[type=submit]").await;
    b.until(
        "the flow's instance",
        "return document.getElementById('tool-result').textContent.startsWith('Flow welcome started: instance ')",
    )
    .await;
    assert!(
        desk.graph
            .sent()
            .iter()
            .any(|s| s.recipient == ANN && s.text() == Some("Welcome aboard! Lesson 1 is open.")),
        "the flow sent its message"
    );
    b.click("#connect-link").await;
    let link = b
        .until(
            "a connect link",
            "return document.querySelector('#tool-result a')?.href",
        )
        .await;
    assert!(
        link.as_str().unwrap().starts_with("https://m.me/"),
        "{link}"
    );

    // Bo never wrote: the API notes it, and a facebook reply is refused with the reason.
    let bo = desk
        .stores
        .directory()
        .find_by_address(&Address::messenger(PAGE, BO).unwrap())
        .await
        .unwrap()
        .unwrap()
        .id
        .to_string();
    b.client
        .goto(&format!("{}/#c/{bo}", desk.url))
        .await
        .unwrap();
    b.until(
        "Bo's note",
        "return document.querySelector('#reply-transports [data-channel=messenger] .transport-note')?.textContent.includes('no message from this person')",
    )
    .await;
    b.click("#reply-transports input[value=messenger]").await;
    b.type_into("#reply-text", "Hi Bo!").await;
    b.click("#reply-send").await;
    let refused = b
        .until(
            "the refusal under the reply",
            "const d = document.querySelector('#entries .entry.outgoing .delivery'); \
             return d && d.dataset.status === 'refused' && d.textContent",
        )
        .await;
    assert!(
        refused.as_str().unwrap().starts_with("facebook refused: "),
        "{refused}"
    );

    // A campaign to everyone on Messenger: a progress bar, then the final report.
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
        b.js("const p = document.getElementById('campaign-bar'); return [p.value, p.max, document.getElementById('campaign-counts').textContent.split(' · ').slice(0, 4)]")
            .await,
        json!([3, 3, ["3 of 3 done", "2 sent", "1 skipped", "0 failed"]])
    );
    let greeted: Vec<_> = desk
        .graph
        .sent()
        .iter()
        .filter_map(|s| {
            s.text()
                .filter(|t| t.contains("Lesson 4 is out"))
                .map(|t| (s.recipient.clone(), t.to_owned()))
        })
        .collect();
    assert_eq!(greeted.len(), 2, "{greeted:?}");
    assert!(
        greeted.contains(&(
            ANN.to_owned(),
            "Hi Ann, Lesson 4 is out: https://example.org/lessons/4".to_owned()
        )),
        "{greeted:?}"
    );
    b.screenshot("desk-campaign.png").await;

    // A bad segment is refused in the form, before anything is sent.
    b.type_into("#campaign-segment", "{\"has_address\": ").await;
    b.click("#campaign-form button[type=submit]").await;
    b.until(
        "the JSON error",
        "return document.getElementById('campaign-error').textContent.startsWith('The segment is not valid JSON')",
    )
    .await;
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_asked_once_per_tab_and_a_wrong_one_is_refused() {
    let _one = ONE_BROWSER.lock().await;
    let desk = Desk::start().await;
    let b = Browser::start().await;
    b.client.goto(&desk.url).await.unwrap();
    b.until(
        "the sign-in form",
        "return !document.getElementById('login').hidden",
    )
    .await;
    b.type_into("#token", "not-the-token").await;
    b.click("#login-form button[type=submit]").await;
    b.until(
        "the refusal",
        "return document.getElementById('login-error').textContent === 'The token was refused; sign in again.' && \
         !sessionStorage.getItem('tidings.desk.token')",
    )
    .await;
    sign_in(&b, &desk).await;
    b.client.refresh().await.unwrap();
    b.until(
        "the desk again, without asking",
        "return document.getElementById('login').hidden && document.getElementById('live').dataset.state === 'on'",
    )
    .await;
    b.click("#sign-out").await;
    assert_eq!(
        b.js("return [!document.getElementById('login').hidden, sessionStorage.getItem('tidings.desk.token')]")
            .await,
        json!([true, null])
    );
    b.quit().await;
}
