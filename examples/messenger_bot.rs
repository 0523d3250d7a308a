//! A complete bot for a real Facebook Page: the webhook, the agent API and the support desk,
//! on SQLite or PostgreSQL (`DATABASE_URL`), with graceful shutdown and Prometheus metrics.
//! Several instances may share one PostgreSQL database: each webhook event is routed once
//! whichever instance Meta gives it to, and the Page's send rate is shared.
//!
//! ```sh
//! # No Facebook account: the fake Graph API runs inside the process, demo values are printed.
//! cargo run --example messenger_bot --features axum,sqlite,testkit,email -- --fake-graph
//!
//! # A real Page (see examples/README.md for every variable):
//! PAGE_ACCESS_TOKEN=... APP_SECRET=... VERIFY_TOKEN=... PAGE_ID=... PAGE_USERNAME=... \
//! AGENT_TOKEN=... cargo run --example messenger_bot --features axum,sqlite,testkit,email
//!
//! # Several instances on one PostgreSQL database:
//! DATABASE_URL=postgres://tidings@db.internal/tidings ... \
//! cargo run --example messenger_bot --features axum,sqlite,postgres,testkit,email
//! ```
//!
//! Routes: `GET`/`POST /webhook`, `GET /healthz`, `GET /metrics`, `GET /` (the desk),
//! `GET`/`POST /login` (where "authorize on click" links in campaigns lead, with `LOGIN_URL`)
//! and the agent API under `/api/` (bearer `AGENT_TOKEN`). Flows: the built-in `check-in` flow,
//! plus one per JSON file in `FLOW_FILES`.

use std::{env, error::Error, fmt, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::RawQuery,
    http::{
        StatusCode,
        header::{CONTENT_TYPE, LOCATION, REFERRER_POLICY},
    },
    response::{Html, IntoResponse, Response},
    routing::get,
};
use hmac::{Hmac, Mac};
use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use sha2::Sha256;
use tidings::{
    axum::{AgentApi, BearerToken, WebhookRouter},
    clock::{Clock, SystemClock},
    email::{EmailTransport, SmtpCredentials, TlsMode},
    hub::{Hub, HubResponse, Routed},
    identity::{ConnectPolicy, Connector},
    inbox::Support,
    keys::{KeyRing, SigningKey},
    message::Message,
    messenger::{
        AppSecret, MessengerTransport, PageAccessToken, PageConfig, Policy, StaticPages,
        VerifyToken, Webhook,
    },
    newsletter::{
        CampaignRunner,
        login::{LoginLinks, LoginRefusal},
    },
    process::{Flow, FlowEngine, FlowId},
    secrecy::SecretSlice,
    store::Stores,
    testkit::graph::FakeGraph,
    token::Tokens,
    transport::{SharedTransport, TransportSet},
};

/// The bot's transports, counted: each send by channel and outcome (`sent`, or the kind of
/// the delivery error: `window_closed`, `retryable`, ...), for `/metrics`.
struct Metered {
    inner: SharedTransport,
    sends: Family<Vec<(&'static str, String)>, Counter>,
}

#[async_trait::async_trait]
impl tidings::transport::Transport for Metered {
    fn channel(&self) -> &tidings::Channel {
        self.inner.channel()
    }

    fn capabilities(&self) -> tidings::transport::Capabilities {
        self.inner.capabilities()
    }

    async fn send(
        &self,
        to: &tidings::Address,
        message: &Message,
        ctx: &tidings::transport::SendContext,
    ) -> Result<tidings::message::Receipt, tidings::transport::DeliveryError> {
        let result = self.inner.send(to, message, ctx).await;
        use tidings::transport::DeliveryErrorKind as Kind;
        let outcome = match &result {
            Ok(_) => "sent",
            Err(e) => match e.kind() {
                Kind::Retryable => "retryable",
                Kind::WindowClosed => "window_closed",
                Kind::Unreachable => "unreachable",
                Kind::InvalidMessage => "invalid_message",
                Kind::Unauthorized => "unauthorized",
                _ => "other",
            },
        };
        self.sends
            .get_or_create(&vec![
                ("channel", self.inner.channel().to_string()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
        result
    }
}

/// A configuration problem, naming the variable.
#[derive(Debug)]
struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for ConfigError {}

/// Everything the bot reads from the environment.
struct Config {
    page_access_token: String,
    app_secret: String,
    verify_token: String,
    page_id: String,
    page_username: Option<String>,
    listen: SocketAddr,
    database_url: String,
    send_rate: u32,
    agent_token: String,
    graph_api_url: Option<String>,
    auto_register: bool,
    human_agent: bool,
    smtp: Option<EmailTransport>,
    login_url: Option<url::Url>,
    flow_files: Vec<PathBuf>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("page_id", &self.page_id)
            .field("page_username", &self.page_username)
            .field("listen", &self.listen)
            .field("database_url", &"<redacted>")
            .field("send_rate", &self.send_rate)
            .field("graph_api_url", &self.graph_api_url)
            .field("auto_register", &self.auto_register)
            .field("human_agent", &self.human_agent)
            .field("smtp", &self.smtp)
            .field("login_url", &self.login_url.as_ref().map(url::Url::as_str))
            .field("flow_files", &self.flow_files)
            .finish_non_exhaustive()
    }
}

fn var(name: &str) -> Option<String> {
    env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A random value for demo secrets, printed at start.
fn demo_secret() -> String {
    let mut bytes = [0u8; 18];
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Config {
    /// Reads the environment; every missing or malformed variable is named, all at once.
    fn from_env(fake_graph: bool) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let mut required = |name: &str, demo: &dyn Fn() -> String| match var(name) {
            Some(v) => v,
            None if fake_graph => demo(),
            None => {
                problems.push(format!("{name} is not set"));
                String::new()
            }
        };
        let page_access_token = required("PAGE_ACCESS_TOKEN", &|| "demo-page-token".into());
        let app_secret = required("APP_SECRET", &demo_secret);
        let verify_token = required("VERIFY_TOKEN", &demo_secret);
        let page_id = required("PAGE_ID", &|| "104812345678901".into());
        let agent_token = required("AGENT_TOKEN", &demo_secret);
        if !page_id.is_empty() && !page_id.bytes().all(|b| b.is_ascii_digit()) {
            problems.push(format!(
                "PAGE_ID must be the Page's numeric id, got {page_id:?}"
            ));
        }
        if !agent_token.is_empty() && agent_token.len() < 16 {
            problems.push("AGENT_TOKEN must be at least 16 characters".into());
        }
        let listen = var("LISTEN_ADDR").unwrap_or_else(|| "127.0.0.1:3000".into());
        let listen = match listen.parse() {
            Ok(a) => a,
            Err(_) => {
                problems.push(format!("LISTEN_ADDR must be host:port, got {listen:?}"));
                SocketAddr::from(([127, 0, 0, 1], 3000))
            }
        };
        let database_url = var("DATABASE_URL").unwrap_or_else(|| "tidings.db".into());
        let send_rate = match var("SEND_RATE").map(|r| r.parse::<u32>()) {
            None => 250,
            Some(Ok(rate)) if rate > 0 => rate,
            Some(_) => {
                problems.push("SEND_RATE must be a positive number of sends a second".into());
                250
            }
        };
        let graph_api_url = var("GRAPH_API_URL");
        if let Some(url) = &graph_api_url {
            if url::Url::parse(url).is_err() {
                problems.push(format!("GRAPH_API_URL is not a URL: {url:?}"));
            }
        }
        let mut switch = |name: &str, default: bool| match var(name).as_deref() {
            None => default,
            Some("1" | "on" | "true" | "yes") => true,
            Some("0" | "off" | "false" | "no") => false,
            Some(other) => {
                problems.push(format!("{name} must be on or off, got {other:?}"));
                default
            }
        };
        let auto_register = switch("AUTO_REGISTER", true);
        // Only for a Page approved for Meta's Human Agent feature.
        let human_agent = switch("HUMAN_AGENT", false);
        let login_url = match var("LOGIN_URL") {
            Some(url) => match url::Url::parse(&url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
                _ => {
                    problems.push(format!("LOGIN_URL is not an http(s) URL: {url:?}"));
                    None
                }
            },
            // The bot's own demo endpoint.
            None if fake_graph => url::Url::parse(&format!("http://{listen}/login")).ok(),
            None => None,
        };
        let flow_files: Vec<PathBuf> = var("FLOW_FILES")
            .map(|v| v.split(',').map(|p| PathBuf::from(p.trim())).collect())
            .unwrap_or_default();
        let smtp = match smtp_from_env() {
            Ok(smtp) => smtp,
            Err(problem) => {
                problems.push(problem);
                None
            }
        };
        if !problems.is_empty() {
            return Err(ConfigError(format!(
                "cannot start: {}\n(see examples/README.md; --fake-graph runs with demo values)",
                problems.join("; ")
            )));
        }
        Ok(Config {
            page_access_token,
            app_secret,
            verify_token,
            page_id,
            page_username: var("PAGE_USERNAME"),
            listen,
            database_url,
            send_rate,
            agent_token,
            graph_api_url,
            auto_register,
            human_agent,
            smtp,
            login_url,
            flow_files,
        })
    }

    /// A key derived from the app secret for `purpose`, so that links and buttons survive a
    /// restart without one more secret to keep.
    fn derived_key(&self, purpose: &[u8]) -> Result<Vec<u8>, Box<dyn Error>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.app_secret.as_bytes())?;
        mac.update(purpose);
        Ok(mac.finalize().into_bytes().to_vec())
    }

    /// The key of connect tokens.
    fn token_key(&self) -> Result<SigningKey, Box<dyn Error>> {
        let key = self.derived_key(b"tidings connect tokens v1")?;
        Ok(SigningKey::new(1, SecretSlice::from(key))?)
    }

    /// The key of login links ("authorize on click").
    fn login_key(&self) -> Result<SigningKey, Box<dyn Error>> {
        let key = self.derived_key(b"tidings login tokens v1")?;
        Ok(SigningKey::new(1, SecretSlice::from(key))?)
    }

    /// The key that signs the answer buttons of flow questions.
    fn payload_keys(&self) -> Result<KeyRing, Box<dyn Error>> {
        let key = self.derived_key(b"tidings answer payloads v1")?;
        Ok(KeyRing::new(SigningKey::new(1, SecretSlice::from(key))?))
    }
}

/// The e-mail fallback, when `SMTP_HOST` is set: `SMTP_PORT`, `SMTP_TLS` (`starttls`, the
/// default, `implicit` or `none`), `SMTP_USER` and `SMTP_PASSWORD`, `SMTP_FROM`.
fn smtp_from_env() -> Result<Option<EmailTransport>, String> {
    let Some(host) = var("SMTP_HOST") else {
        return Ok(None);
    };
    let tls = match var("SMTP_TLS").as_deref() {
        None | Some("starttls") => TlsMode::StartTls,
        Some("implicit") => TlsMode::Implicit,
        Some("none") => TlsMode::None,
        Some(other) => {
            return Err(format!(
                "SMTP_TLS must be starttls, implicit or none, got {other:?}"
            ));
        }
    };
    let from = var("SMTP_FROM").ok_or("SMTP_FROM is not set (needed with SMTP_HOST)")?;
    let mut builder = EmailTransport::builder(host, from).tls(tls);
    if let Some(port) = var("SMTP_PORT") {
        let port = port
            .parse()
            .map_err(|_| format!("SMTP_PORT must be a port number, got {port:?}"))?;
        builder = builder.port(port);
    }
    match (var("SMTP_USER"), var("SMTP_PASSWORD")) {
        (Some(user), Some(password)) => {
            builder = builder.credentials(SmtpCredentials::new(user, password));
        }
        (None, None) => {}
        _ => return Err("SMTP_USER and SMTP_PASSWORD go together".into()),
    }
    builder
        .build()
        .map(Some)
        .map_err(|e| format!("SMTP settings: {e}"))
}

/// What `/metrics` shows, in Prometheus' text format.
struct Metrics {
    registry: Registry,
    requests: Counter,
    received: Counter,
    events: Family<Vec<(&'static str, &'static str)>, Counter>,
    sends: Family<Vec<(&'static str, String)>, Counter>,
    campaigns: Family<Vec<(&'static str, String)>, Gauge>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("tidings");
        let requests = Counter::default();
        registry.register(
            "webhook_requests",
            "Webhook POSTs handled",
            requests.clone(),
        );
        let received = Counter::default();
        registry.register(
            "webhook_events_received",
            "Webhook events read from the requests (routed, dropped, duplicate or left to \
             another delivery)",
            received.clone(),
        );
        let events = Family::default();
        registry.register(
            "events",
            "Webhook events by outcome (routed to inbox, receipt, ...; dropped; duplicate)",
            events.clone(),
        );
        let sends = Family::default();
        registry.register(
            "sends",
            "Messages sent through each transport (replies, campaigns, the Hub's answers), by channel and outcome",
            sends.clone(),
        );
        let campaigns = Family::default();
        registry.register(
            "campaign_recipients",
            "Progress of each campaign run by the agent API: recipients by count (total once \
             known, done, sent, skipped, failed, earlier)",
            campaigns.clone(),
        );
        Metrics {
            registry,
            requests,
            received,
            events,
            sends,
            campaigns,
        }
    }

    /// Follows the agent API's campaign progress updates into the `campaign_recipients` gauges.
    fn follow_campaigns(
        self: &Arc<Self>,
        mut updates: tokio::sync::broadcast::Receiver<tidings::axum::LiveEvent>,
    ) {
        let metrics = self.clone();
        tokio::spawn(async move {
            loop {
                let event = match updates.recv().await {
                    Ok(event) => event,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                if event.name() != "campaign" {
                    continue;
                }
                let data = event.data();
                let (Some(id), Some(progress)) = (data["id"].as_str(), data.get("progress")) else {
                    continue;
                };
                for count in ["total", "done", "sent", "skipped", "failed", "earlier"] {
                    if let Some(n) = progress[count].as_i64() {
                        metrics
                            .campaigns
                            .get_or_create(&vec![
                                ("campaign", id.to_owned()),
                                ("count", count.to_owned()),
                            ])
                            .set(n);
                    }
                }
            }
        });
    }

    /// `transport`, its sends counted.
    fn metered(&self, transport: SharedTransport) -> SharedTransport {
        Arc::new(Metered {
            inner: transport,
            sends: self.sends.clone(),
        })
    }

    fn observe(&self, response: &HubResponse) {
        self.requests.inc();
        let count = |outcome: &'static str, n: usize| {
            self.events
                .get_or_create(&vec![("outcome", outcome)])
                .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
        };
        let received = response.routed.len()
            + response.dropped.len()
            + response.duplicates
            + response.in_flight;
        self.received
            .inc_by(u64::try_from(received).unwrap_or(u64::MAX));
        count("dropped", response.dropped.len());
        count("duplicate", response.duplicates);
        for (_, routed) in &response.routed {
            count(
                match routed {
                    Routed::Inbox { .. } => "inbox",
                    Routed::Receipt { .. } => "receipt",
                    Routed::Connected(_) => "connected",
                    Routed::Process { .. } => "process",
                    _ => "other",
                },
                1,
            );
        }
        if response.error.is_some() {
            count("failed", 1);
        }
    }

    fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tidings=info".into()),
        )
        .init();
    let fake_graph = env::args().any(|a| a == "--fake-graph");
    let config = match Config::from_env(fake_graph) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };

    // The Graph API: Meta's, the one in GRAPH_API_URL, or the fake inside this process.
    let fake = if fake_graph && config.graph_api_url.is_none() {
        Some(
            FakeGraph::builder()
                .page(&config.page_id, &config.page_access_token)
                .enforce_window(false)
                .start()
                .await?,
        )
    } else {
        None
    };
    let graph_url = fake
        .as_ref()
        .map(FakeGraph::base_url)
        .or_else(|| config.graph_api_url.clone());

    // A SQLite path or a postgres:// URL.
    let stores = Stores::open(&config.database_url).await?;
    let mut page = PageConfig::new(
        &config.page_id,
        PageAccessToken::new(&config.page_access_token),
    );
    if let Some(username) = &config.page_username {
        page = page.with_username(username);
    }
    let pages = Arc::new(StaticPages::new([page.clone()]));
    // The Page's send rate, shared by every instance on the database (PostgreSQL), or this
    // process's own.
    let policy = Policy::new().with_human_agent(config.human_agent);
    let mut messenger = MessengerTransport::builder(pages.clone(), stores.last_inbound.clone())
        .shared_budget(stores.send_budget(config.send_rate))
        .policy(policy);
    if let Some(url) = &graph_url {
        messenger = messenger.base_url(url);
    }
    let metrics = Arc::new(Metrics::new());
    let messenger = metrics.metered(Arc::new(messenger.build()?));
    let email = config
        .smtp
        .clone()
        .map(|email| metrics.metered(Arc::new(email)));

    // Flows: the built-in check-in and those of FLOW_FILES; what they send shows in the inbox.
    let mut flows = FlowEngine::builder(
        stores.processes.clone(),
        stores.directory.clone(),
        config.payload_keys()?,
    )
    .transport(messenger.clone());
    if let Some(email) = &email {
        // When Messenger's window has closed (a reminder days later).
        flows = flows.transport(email.clone());
    }
    let flows = flows.record_in(stores.inbox.clone()).build();
    flows.define(check_in()?)?;
    for path in &config.flow_files {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("FLOW_FILES: cannot read {}: {e}", path.display()))?;
        let flow =
            Flow::from_json(&text).map_err(|e| format!("FLOW_FILES: {}: {e}", path.display()))?;
        flows
            .define(flow)
            .map_err(|e| format!("FLOW_FILES: {}: {e}", path.display()))?;
    }
    // Waits and answer timeouts move on the ticks.
    let ticker = {
        let flows = flows.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(FLOW_TICK);
            loop {
                every.tick().await;
                if let Err(e) = flows.tick(SystemClock.now()).await {
                    tracing::warn!(error = %e, "flows: a tick failed");
                }
            }
        })
    };
    // "Authorize on click" links in campaigns, single use, leading to LOGIN_URL.
    let login = match &config.login_url {
        Some(url) => Some(
            LoginLinks::new(Tokens::new(config.login_key()?), url.clone())?
                .allow_http(url.scheme() == "http")
                .single_use(stores.seen.clone()),
        ),
        None => None,
    };
    let connector = Connector::builder(
        stores.directory.clone(),
        stores.seen.clone(),
        Tokens::new(config.token_key()?),
    )
    .policy(ConnectPolicy::new().with_auto_register(config.auto_register))
    .build();
    let hub = Arc::new(
        Hub::builder(
            connector.clone(),
            stores.directory.clone(),
            stores.inbox.clone(),
        )
        .opt_ins(stores.opt_ins.clone())
        .thread_owners(stores.thread_owners.clone())
        .transport(messenger.clone())
        .processes(Arc::new(flows.clone()))
        .confirmation(Message::text(
            "Your Messenger is now connected to your account.",
        )?)
        .please_authorize(Message::text(
            "Please connect your account first: use the link in your profile.",
        )?)
        .build(),
    );
    let webhook = Arc::new(
        Webhook::builder(
            AppSecret::new(&config.app_secret),
            VerifyToken::new(&config.verify_token),
            pages,
            stores.seen.clone(),
            stores.last_inbound.clone(),
        )
        .build(),
    );
    // Messenger first, then e-mail when configured: replies and campaigns offer them in this
    // order.
    let transports: TransportSet = std::iter::once(messenger).chain(email).collect();
    let support = Support::builder(stores.directory.clone(), stores.inbox.clone())
        .transports(transports.clone())
        .build();
    // What a campaign sends shows in each recipient's conversation, with its receipts.
    // In flight at once: about a tenth of a second of the send rate. More would only wait for
    // the rate, and a stop (SIGTERM) waits for every recipient in flight.
    let concurrency = usize::try_from(config.send_rate / 10)
        .unwrap_or(1)
        .clamp(1, 32);
    let runner = CampaignRunner::builder(stores.segments.clone(), stores.outbox.clone())
        .transports(transports)
        .concurrency(concurrency)
        .record_in(stores.inbox.clone())
        .build();
    let agents = AgentApi::builder(
        BearerToken::new(&config.agent_token, "agent"),
        support,
        stores.inbox.clone(),
        stores.directory.clone(),
    )
    .last_inbound(stores.last_inbound.clone())
    .messenger_policy(policy)
    .connect_links(connector, page)
    .processes(Arc::new(flows))
    .campaigns(runner, login.clone())
    .build();
    metrics.follow_campaigns(agents.subscribe());

    let observer = {
        let (metrics, live) = (metrics.clone(), agents.webhook_observer());
        move |response: &HubResponse| {
            metrics.observe(response);
            tidings::axum::WebhookObserver::observe(&live, response);
        }
    };
    let app = Router::new()
        .nest(
            "/webhook",
            WebhookRouter::new(hub, webhook)
                .observer(observer)
                .into_router(),
        )
        .nest("/api", agents.router())
        .merge(tidings::axum::desk_router())
        .route("/healthz", get(|| async { "ok" }))
        .route("/login", {
            let (page, submit) = (login.clone(), login);
            get(move |query: RawQuery| login_page(page.clone(), query))
                .post(move |query: RawQuery| login_submit(submit.clone(), query))
        })
        .route(
            "/metrics",
            get({
                let metrics = metrics.clone();
                move || async move {
                    (
                        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
                        metrics.render(),
                    )
                        .into_response()
                }
            }),
        );

    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let address = listener.local_addr()?;
    println!(
        "tidings bot listening on http://{address}  ({} stores)",
        stores.backend()
    );
    if fake_graph {
        println!("  fake Graph API:  {}", graph_url.as_deref().unwrap_or("-"));
        println!("  PAGE_ID:         {}", config.page_id);
        println!("  APP_SECRET:      {}", config.app_secret);
        println!("  VERIFY_TOKEN:    {}", config.verify_token);
        println!("  AGENT_TOKEN:     {}", config.agent_token);
    }
    tracing::info!(?config, ?stores, %address, "started");
    let (draining, drained) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown({
        let agents = agents.clone();
        async move {
            shutdown_signal().await;
            // Ends the desk's live streams (the server waits for every connection) and stops
            // the campaigns at a recorded point; requests in flight then finish.
            agents.shutdown().await;
            let _ = draining.send(());
        }
    });
    let server = std::future::IntoFuture::into_future(server);
    tokio::select! {
        served = server => served?,
        () = async {
            match drained.await {
                Ok(()) => tokio::time::sleep(DRAIN).await,
                Err(_) => std::future::pending().await,
            }
        } => tracing::warn!("requests still open {} s after the shutdown began: stopping anyway", DRAIN.as_secs()),
    }
    ticker.abort();
    stores.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// How often flows move on (waits that ended, answer timeouts).
const FLOW_TICK: Duration = Duration::from_secs(5);

/// How long a shutdown waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(10);

/// The built-in flow: a check-in question with three answers, each its own branch, and a
/// nudge two days later for whoever did not answer.
fn check_in() -> Result<Flow, Box<dyn Error>> {
    Ok(Flow::builder(FlowId::new("check-in")?, 1)
        .question("ask", "How is the course going?", |q| {
            q.option("Great", "great")
                .option("Too fast", "slow")
                .option("I'm stuck", "stuck")
                .timeout(Duration::from_secs(2 * 86_400), "nudge")
        })
        .send("great", "Wonderful! Lesson 4 is open.", "done")
        .send(
            "slow",
            "Take your time. I'll check in again next week.",
            "done",
        )
        .handover("stuck", Some("A tutor will answer you here."), "done")
        .send("nudge", "We miss you! Reply any time.", "done")
        .end("done")
        .build())
}

/// `GET /login?t=..&to=..`: where a login link leads. Link previews and mail scanners fetch
/// links before people click, so a `GET` starts nothing: it shows a button that posts the same
/// query back.
async fn login_page(login: Option<LoginLinks>, RawQuery(query): RawQuery) -> Response {
    if login.is_none() || query.is_none() {
        return (StatusCode::NOT_FOUND, "no login link here").into_response();
    }
    (
        [(REFERRER_POLICY, "no-referrer")],
        Html(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign in</title></head>\
             <body><form method=\"post\"><p>Continue to the page this link leads to, signed \
             in.</p><button type=\"submit\">Continue</button></form></body></html>",
        ),
    )
        .into_response()
}

/// `POST /login?t=..&to=..`: verifies the link and sends the person on to its target. A real
/// platform starts the contact's session here; the bot logs who it would be.
async fn login_submit(login: Option<LoginLinks>, RawQuery(query): RawQuery) -> Response {
    let (Some(login), Some(query)) = (login, query) else {
        return (StatusCode::NOT_FOUND, "no login link here").into_response();
    };
    match login.verify_query(&query).await {
        Ok(verified) => {
            tracing::info!(contact = %verified.contact, campaign = %verified.campaign, "login link used");
            (
                StatusCode::SEE_OTHER,
                [
                    (LOCATION, verified.target.to_string()),
                    (REFERRER_POLICY, "no-referrer".to_owned()),
                ],
            )
                .into_response()
        }
        Err(e @ LoginRefusal::Store(_)) => {
            tracing::warn!(error = %e, "login link check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "try again in a moment").into_response()
        }
        Err(refusal) => (StatusCode::FORBIDDEN, refusal.to_string()).into_response(),
    }
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutting down: finishing requests in flight");
}
