//! A fake Meta Graph API on loopback: the Send API and the Messenger Profile API, with the real
//! API's body rules, messaging window and error answers, plus fault injection.
//!
//! Point the Messenger transport's base URL at [`FakeGraph::base_url`] and the whole send path
//! (HTTP, auth, retries, error classification) runs for real, offline and deterministically:
//!
//! ```
//! use std::time::Duration;
//! use serde_json::json;
//! use tidings::{
//!     clock::{Clock, ManualClock, Timestamp},
//!     testkit::graph::{FakeGraph, GraphFault},
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let clock = ManualClock::new(Timestamp::from_millis(1_718_000_000_000));
//! let fake = FakeGraph::builder()
//!     .page("104812345678901", "page-token")
//!     .clock(clock.shared())
//!     .start()
//!     .await?;
//! // The user wrote an hour ago, so the 24-hour window is open.
//! fake.user_wrote("104812345678901", "6789012345678901", clock.now());
//! clock.advance(Duration::from_secs(3600));
//!
//! let url = format!("{}/v25.0/me/messages?access_token=page-token", fake.base_url());
//! let body = json!({
//!     "recipient": {"id": "6789012345678901"},
//!     "messaging_type": "RESPONSE",
//!     "message": {"text": "Lesson 3 is open."},
//! });
//! let answer: serde_json::Value =
//!     reqwest::Client::new().post(&url).json(&body).send().await?.json().await?;
//! assert_eq!(answer["message_id"], "m_1");
//! assert_eq!(fake.sent()[0].text(), Some("Lesson 3 is open."));
//!
//! // The next send hits a rate limit, as a client under load would see it.
//! fake.fail_next(1, GraphFault::rate_limited());
//! let refused = reqwest::Client::new().post(&url).json(&body).send().await?;
//! assert_eq!(refused.status(), 400);
//! # Ok(()) }
//! ```
//!
//! # Routes
//!
//! The version segment is any `v<digits>.<digits>`. `{node}` is a Page id or `me` (the Page
//! whose token is given).
//!
//! | route | answers |
//! |---|---|
//! | `POST /{version}/{node}/messages` | `{"recipient_id","message_id"}`; sender actions `{"recipient_id"}` |
//! | `POST /{version}/{node}/messenger_profile` | `{"result":"success"}`, merging the given properties |
//! | `GET /{version}/{node}/messenger_profile?fields=a,b` | `{"data":[{..the stored ones..}]}` (`{"data":[]}` when none) |
//! | `DELETE /{version}/{node}/messenger_profile` with `{"fields":[..]}` | `{"result":"success"}` |
//!
//! Anything else is answered with a Graph error (code 2500 for an unknown path, 100 for an
//! unsupported method).
//!
//! # What it checks
//!
//! Every refusal is an HTTP 4xx/5xx with a Graph error body
//! `{"error":{"message","type":"OAuthException","code","error_subcode"?,"fbtrace_id"}}`.
//!
//! - **Token:** the `access_token` query parameter (or `Authorization: Bearer`). A missing or
//!   unknown token, or one of another Page than the path's, gives 190.
//! - **`appsecret_proof`**, when [an app secret is set](FakeGraphBuilder::app_secret): the
//!   lowercase hex HMAC-SHA256 of the token keyed by the app secret. Missing or wrong gives 100.
//! - **Send body:** `recipient` with exactly one of `id` or `user_ref`; `messaging_type`
//!   (required with a `message`); `tag` exactly when `MESSAGE_TAG`, and only a current one
//!   (retired tags such as `SHIPPING_UPDATE` are refused); exactly one of `message` or
//!   `sender_action`; `text` (1 to 2000 characters; empty gives 100/2018034) or `attachment`;
//!   at most 13 quick replies with titles up to 20 and payloads up to 1000 characters; button
//!   templates with text up to 640 characters and 1 to 3 buttons (titles up to 20, postback
//!   payloads up to 1000, `web_url` buttons with an absolute http(s) URL); generic templates
//!   with 1 to 10 elements whose titles are up to 80 characters. A body that is not a JSON
//!   object gives 100 "Invalid parameter". Lengths count characters, not bytes.
//! - **Messaging window** (unless [turned off](FakeGraphBuilder::enforce_window)), for PSID
//!   recipients: `RESPONSE`, `UPDATE` and sender actions need the user's last message (told
//!   through [`FakeGraph::user_wrote`]) to be at most 24 hours old, `HUMAN_AGENT` at most 7
//!   days; the other tags always pass. Outside: 10/2018278. A user never heard from is outside.
//!   `user_ref` recipients are not window-checked.
//! - **Known users** (when [asked for](FakeGraphBuilder::known_users_only)): a PSID never told
//!   through [`FakeGraph::user_wrote`] gives 100/2018001.
//!
//! # Faults and latency
//!
//! [`FakeGraph::fail_next`] and [`FakeGraph::fail_every`] make message sends fail with a
//! [`GraphFault`] before any check; [`FakeGraph::set_latency`] delays every answer. The
//! Messenger Profile routes are never faulted.
//!
//! The fake is cheap per request (one short lock, no logging), so it also serves throughput
//! benchmarks. It stops when the [`FakeGraph`] is dropped.

mod fault;
mod rules;

use std::{
    collections::HashMap,
    fmt,
    net::{Ipv4Addr, SocketAddr},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri, header::AUTHORIZATION},
    response::{IntoResponse, Response},
    serve::ListenerExt,
};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub use self::fault::GraphFault;
use self::rules::{Recipient, SendRequest};
use crate::{
    clock::{SharedClock, SystemClock, Timestamp},
    messenger::AppSecret,
};

/// How long after the user's last message `RESPONSE` and `UPDATE` sends are allowed.
pub const STANDARD_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// How long after the user's last message a `HUMAN_AGENT` tagged send is allowed.
pub const HUMAN_AGENT_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// Configures a [`FakeGraph`]; made by [`FakeGraph::builder`].
pub struct FakeGraphBuilder {
    pages: Vec<(String, String)>,
    app_secret: Option<AppSecret>,
    clock: SharedClock,
    enforce_window: bool,
    known_users_only: bool,
    keep_sent: bool,
    listen: Option<SocketAddr>,
}

impl FakeGraphBuilder {
    /// Serves the Page `page_id`, whose calls carry `access_token`. Repeat for several Pages; a
    /// token given twice belongs to the last Page it was given for.
    pub fn page(mut self, page_id: impl Into<String>, access_token: impl Into<String>) -> Self {
        self.pages.push((page_id.into(), access_token.into()));
        self
    }

    /// Requires every call to carry a valid `appsecret_proof` for this app secret.
    pub fn app_secret(mut self, secret: AppSecret) -> Self {
        self.app_secret = Some(secret);
        self
    }

    /// The clock the messaging window and the recorded send times are read from (default: the
    /// system clock). Pass a [`ManualClock`](crate::clock::ManualClock) to test the window
    /// without waiting.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Whether sends outside the messaging window are refused (default: `true`).
    pub fn enforce_window(mut self, enforce: bool) -> Self {
        self.enforce_window = enforce;
        self
    }

    /// Whether a PSID never told through [`FakeGraph::user_wrote`] is refused with 100/2018001
    /// "No matching user found" (default: `false`).
    pub fn known_users_only(mut self, known_only: bool) -> Self {
        self.known_users_only = known_only;
        self
    }

    /// Whether successful sends are kept for [`FakeGraph::sent`] (default: `true`). Turn it
    /// off for load tests, where the record would grow with every message;
    /// [`FakeGraph::request_count`] still counts.
    pub fn keep_sent(mut self, keep: bool) -> Self {
        self.keep_sent = keep;
        self
    }

    /// Serves on `addr` instead of a free port of 127.0.0.1 (for the fake as a process of
    /// its own that a bot is pointed at across restarts).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    /// Binds a free port on 127.0.0.1 (or the [`listen`](Self::listen) address) and starts
    /// serving on a Tokio task. Besides the Graph API paths it answers
    /// `GET /_testkit/requests`: every send it accepted, as JSON, for black-box tests.
    ///
    /// Must be called within a Tokio runtime; the server lives until the returned
    /// [`FakeGraph`] is dropped.
    pub async fn start(self) -> Result<FakeGraph, std::io::Error> {
        let bind = self
            .listen
            .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(self));
        let app = Router::new()
            .route("/_testkit/requests", axum::routing::get(list_sent))
            .fallback(handle)
            .with_state(shared.clone());
        let listener = listener.tap_io(|tcp| {
            // Small answers go out at once; a refusal only costs latency, never correctness.
            let _ = tcp.set_nodelay(true);
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(async {
                // A dropped sender stops the server as well as a sent signal.
                let _ = stopped.await;
            });
            // Serving on a bound listener only ends through the shutdown signal.
            let _ = server.await;
        });
        Ok(FakeGraph {
            addr,
            shared,
            stop: Some(stop),
            task,
        })
    }
}

impl fmt::Debug for FakeGraphBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeGraphBuilder")
            .field(
                "pages",
                &self.pages.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .field("access_tokens", &"[redacted]")
            .field("app_secret", &self.app_secret)
            .field("clock", &self.clock)
            .field("enforce_window", &self.enforce_window)
            .field("known_users_only", &self.known_users_only)
            .finish()
    }
}

/// `GET /_testkit/requests`: every accepted send, oldest first.
async fn list_sent(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let sent: Vec<Value> = shared
        .lock()
        .sent
        .iter()
        .map(SentRequest::to_json)
        .collect();
    Json(json!({ "requests": sent }))
}

/// One successful message send or sender action, as the fake recorded it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SentRequest {
    /// The Page that sent (resolved from the token for `me` paths).
    pub page_id: String,
    /// The recipient's PSID, or the `user_ref` when it was addressed by one.
    pub recipient: String,
    /// The `messaging_type`, when given.
    pub messaging_type: Option<String>,
    /// The message tag, for `MESSAGE_TAG` sends.
    pub tag: Option<String>,
    /// The whole JSON body as sent.
    pub body: Value,
    /// The `message_id` answered; `None` for a sender action.
    pub message_id: Option<String>,
    /// When the fake's clock says the send arrived.
    pub at: Timestamp,
}

impl SentRequest {
    /// The record as `GET /_testkit/requests` lists it.
    pub fn to_json(&self) -> Value {
        json!({
            "page_id": self.page_id,
            "recipient": self.recipient,
            "messaging_type": self.messaging_type,
            "tag": self.tag,
            "message": self.body.get("message"),
            "sender_action": self.body.get("sender_action"),
            "message_id": self.message_id,
            "at": self.at.as_millis(),
        })
    }

    /// The text the person reads: `message.text`, or the text of a button template.
    pub fn text(&self) -> Option<&str> {
        let message = self.body.get("message")?;
        message
            .get("text")
            .or_else(|| {
                let payload = message.get("attachment")?.get("payload")?;
                (payload.get("template_type")?.as_str()? == "button").then_some(())?;
                payload.get("text")
            })?
            .as_str()
    }

    /// The `sender_action`, when the send was one.
    pub fn sender_action(&self) -> Option<&str> {
        self.body.get("sender_action")?.as_str()
    }
}

/// A running fake Graph API on `127.0.0.1`. See the [module docs](self) for what it serves and
/// checks. Dropping it stops the server.
pub struct FakeGraph {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl FakeGraph {
    /// A builder with no Pages, no app secret, the system clock, the window enforced and any
    /// PSID accepted.
    pub fn builder() -> FakeGraphBuilder {
        FakeGraphBuilder {
            pages: Vec::new(),
            app_secret: None,
            clock: SystemClock::shared(),
            enforce_window: true,
            known_users_only: false,
            keep_sent: true,
            listen: None,
        }
    }

    /// The base URL to give a Graph API client, like `http://127.0.0.1:40123` (no trailing
    /// slash; paths start with the version, `/v25.0/...`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address the fake listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Records that user `psid` last wrote to Page `page_id` at `at`, which opens the messaging
    /// window from then on (and makes the PSID known). A later call replaces the time, even
    /// with an earlier one.
    ///
    /// This is the fake's side only: the crate's own record of the person's last message (the
    /// [`LastInbound`](crate::activity::LastInbound) the Messenger transport reads) is moved by
    /// the webhook. A test that sends without a webhook wants
    /// [`user_wrote_in`](FakeGraph::user_wrote_in), which moves both.
    pub fn user_wrote(&self, page_id: &str, psid: &str, at: Timestamp) {
        self.shared
            .lock()
            .last_inbound
            .entry(page_id.to_owned())
            .or_default()
            .insert(psid.to_owned(), at);
    }

    /// [`user_wrote`](FakeGraph::user_wrote), and the same message recorded in `last` as the
    /// webhook would record it: the fake and the crate's Messenger transport then agree that
    /// the window is open. Fails only when `last` does.
    pub async fn user_wrote_in(
        &self,
        last: &dyn crate::activity::LastInbound,
        page_id: &str,
        psid: &str,
        at: Timestamp,
    ) -> Result<(), crate::error::StoreError> {
        let address = crate::contact::Address::messenger(page_id, psid)
            .map_err(|e| crate::error::StoreError::invalid(e.to_string()))?;
        last.record(&address, at).await?;
        self.user_wrote(page_id, psid, at);
        Ok(())
    }

    /// The successful message sends and sender actions so far, in the order they were
    /// answered.
    pub fn sent(&self) -> Vec<SentRequest> {
        self.shared.lock().sent.clone()
    }

    /// How many message-send requests (`POST .../messages`) arrived, refused and faulted ones
    /// included. Messenger Profile calls are not counted.
    pub fn request_count(&self) -> usize {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Forgets the recorded sends and resets [`request_count`](Self::request_count). Users'
    /// last messages, profiles, faults and latency stay; message ids keep counting up.
    pub fn clear(&self) {
        let mut state = self.shared.lock();
        state.sent.clear();
        self.shared.requests.store(0, Ordering::Relaxed);
    }

    /// The Messenger Profile properties stored for `page_id`, merged over every successful
    /// `POST`, as a JSON object (`{}` when none).
    pub fn profile(&self, page_id: &str) -> Value {
        let state = self.shared.lock();
        Value::Object(state.profiles.get(page_id).cloned().unwrap_or_default())
    }

    /// Makes the next `n` message sends fail with `fault`, before any check. Replaces an
    /// earlier `fail_next`; `n == 0` cancels it. Takes precedence over [`fail_every`](Self::fail_every).
    pub fn fail_next(&self, n: usize, fault: GraphFault) {
        self.shared.lock().fail_next = (n > 0).then_some((n, fault));
    }

    /// Makes every `k`-th message send from now on fail with `fault` (the `k`-th, `2k`-th, ...,
    /// counting every send, however it is answered). Deterministic; `k == 0` turns it off.
    pub fn fail_every(&self, k: usize, fault: GraphFault) {
        self.shared.lock().fail_every = (k > 0).then_some(Every { k, fault, seen: 0 });
    }

    /// Delays every answer by `latency` (zero, the default, for none).
    pub fn set_latency(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.shared.latency_nanos.store(nanos, Ordering::Relaxed);
    }
}

impl fmt::Debug for FakeGraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut pages: Vec<&String> = self.shared.tokens.values().collect();
        pages.sort();
        pages.dedup();
        f.debug_struct("FakeGraph")
            .field("addr", &self.addr)
            .field("pages", &pages)
            .field("request_count", &self.request_count())
            .finish_non_exhaustive()
    }
}

impl Drop for FakeGraph {
    fn drop(&mut self) {
        // The signal closes open connections once their requests are answered; the abort drops
        // the listener, so new connections are refused.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

/// What the handlers share: the fixed configuration, counters, and the one lock.
struct Shared {
    /// Access token to Page id.
    tokens: HashMap<String, String>,
    app_secret: Option<AppSecret>,
    clock: SharedClock,
    enforce_window: bool,
    known_users_only: bool,
    keep_sent: bool,
    requests: AtomicUsize,
    latency_nanos: AtomicU64,
    traces: AtomicU64,
    state: Mutex<Records>,
}

#[derive(Default)]
struct Records {
    /// Page id to PSID to the time of the user's last message.
    last_inbound: HashMap<String, HashMap<String, Timestamp>>,
    sent: Vec<SentRequest>,
    next_message: u64,
    fail_next: Option<(usize, GraphFault)>,
    fail_every: Option<Every>,
    profiles: HashMap<String, Map<String, Value>>,
}

struct Every {
    k: usize,
    fault: GraphFault,
    seen: usize,
}

impl Records {
    /// The fault that answers this send, if any. Counts the send for `fail_every`.
    fn fault(&mut self) -> Option<GraphFault> {
        let every = self.fail_every.as_mut().and_then(|every| {
            every.seen += 1;
            (every.seen % every.k == 0).then(|| every.fault.clone())
        });
        match self.fail_next.take() {
            Some((n, fault)) => {
                if n > 1 {
                    self.fail_next = Some((n - 1, fault.clone()));
                }
                Some(fault)
            }
            None => every,
        }
    }
}

/// The parameters the fake reads from the query string.
#[derive(Default)]
struct Params {
    access_token: Option<String>,
    appsecret_proof: Option<String>,
    fields: Option<String>,
}

impl Params {
    fn parse(query: Option<&str>) -> Self {
        let mut params = Params::default();
        for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let slot = match &*key {
                "access_token" => &mut params.access_token,
                "appsecret_proof" => &mut params.appsecret_proof,
                "fields" => &mut params.fields,
                _ => continue,
            };
            *slot = Some(value.into_owned());
        }
        params
    }
}

/// The one handler: routes by hand so that every answer, even to a bad path, is Graph-shaped.
async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = shared.route(&method, &uri, &headers, &body);
    let latency = Duration::from_nanos(shared.latency_nanos.load(Ordering::Relaxed));
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match answer {
        Ok(body) => (StatusCode::OK, Json(body)).into_response(),
        Err(fault) => fault.into_response(shared.trace_id()),
    }
}

impl Shared {
    fn new(builder: FakeGraphBuilder) -> Self {
        let mut seed = [0u8; 8];
        // Trace ids only need to look random; a failed seed still gives distinct ids.
        let _ = getrandom::fill(&mut seed);
        Shared {
            tokens: builder
                .pages
                .into_iter()
                .map(|(page, token)| (token, page))
                .collect(),
            app_secret: builder.app_secret,
            clock: builder.clock,
            enforce_window: builder.enforce_window,
            known_users_only: builder.known_users_only,
            keep_sent: builder.keep_sent,
            requests: AtomicUsize::new(0),
            latency_nanos: AtomicU64::new(0),
            traces: AtomicU64::new(u64::from_le_bytes(seed)),
            state: Mutex::new(Records::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Records> {
        // Nothing panics while holding the lock, and the state stays consistent if it did.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn route(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Value, GraphFault> {
        let mut segments = uri.path().strip_prefix('/').unwrap_or_default().split('/');
        let (Some(version), Some(node), Some(edge), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(unknown_path());
        };
        if !is_version(version) {
            return Err(unknown_path());
        }
        let params = Params::parse(uri.query());
        match (edge, method) {
            ("messages", &Method::POST) => self.send(node, &params, headers, body),
            ("messenger_profile", &Method::POST) => self.set_profile(node, &params, headers, body),
            ("messenger_profile", &Method::GET) => self.get_profile(node, &params, headers),
            ("messenger_profile", &Method::DELETE) => {
                self.delete_profile(node, &params, headers, body)
            }
            ("messages" | "messenger_profile", _) => {
                Err(GraphFault::invalid(format!("Unsupported {method} request")))
            }
            _ => Err(unknown_path()),
        }
    }

    /// The Page the call acts for, after the token and `appsecret_proof` checks.
    fn authenticate(
        &self,
        node: &str,
        params: &Params,
        headers: &HeaderMap,
    ) -> Result<&str, GraphFault> {
        let token = params
            .access_token
            .as_deref()
            .or_else(|| bearer(headers))
            .ok_or_else(GraphFault::invalid_token)?;
        let page = self
            .tokens
            .get(token)
            .ok_or_else(GraphFault::invalid_token)?;
        if node != "me" && node != page {
            return Err(GraphFault::new(
                400,
                190,
                None,
                "Invalid OAuth access token: it does not belong to the Page in the path",
            ));
        }
        if let Some(secret) = &self.app_secret {
            check_proof(secret, token, params.appsecret_proof.as_deref())?;
        }
        Ok(page)
    }

    fn send(
        &self,
        node: &str,
        params: &Params,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Value, GraphFault> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        // The checks before the lock have no side effects, so answering an injected fault
        // first (inside the lock) is the same as faulting before validation.
        let checked = self.authenticate(node, params, headers).and_then(|page| {
            let body = rules::parse_object(body)?;
            let request = rules::check_send(&body)?;
            Ok((page, body, request))
        });
        let now = self.clock.now();
        let mut state = self.lock();
        if let Some(fault) = state.fault() {
            return Err(fault);
        }
        let (page, body, request) = checked?;
        let SendRequest {
            recipient,
            messaging_type,
            tag,
            is_action,
        } = request;
        let (recipient, recipient_id) = match recipient {
            Recipient::Psid(psid) => {
                let last = state
                    .last_inbound
                    .get(page)
                    .and_then(|users| users.get(&psid))
                    .copied();
                if self.known_users_only && last.is_none() {
                    return Err(GraphFault::new(
                        400,
                        100,
                        Some(2_018_001),
                        "No matching user found",
                    ));
                }
                let window = window_for(messaging_type.as_deref(), tag.as_deref());
                if self.enforce_window && !in_window(window, last, now) {
                    return Err(GraphFault::new(
                        400,
                        10,
                        Some(2_018_278),
                        "This message is sent outside of allowed window",
                    ));
                }
                (psid.clone(), Some(psid))
            }
            // The answer to a user_ref send names no recipient.
            Recipient::UserRef(user_ref) => (user_ref, None),
        };
        let message_id = (!is_action).then(|| {
            state.next_message += 1;
            format!("m_{}", state.next_message)
        });
        if self.keep_sent {
            state.sent.push(SentRequest {
                page_id: page.to_owned(),
                recipient,
                messaging_type,
                tag,
                body,
                message_id: message_id.clone(),
                at: now,
            });
        }
        drop(state);
        let mut answer = Map::new();
        if let Some(psid) = recipient_id {
            answer.insert("recipient_id".into(), Value::String(psid));
        }
        if let Some(id) = message_id {
            answer.insert("message_id".into(), Value::String(id));
        }
        Ok(Value::Object(answer))
    }

    fn set_profile(
        &self,
        node: &str,
        params: &Params,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Value, GraphFault> {
        let page = self.authenticate(node, params, headers)?;
        let body = rules::parse_object(body)?;
        rules::check_profile(&body)?;
        if let Value::Object(properties) = body {
            let mut state = self.lock();
            let stored = state.profiles.entry(page.to_owned()).or_default();
            stored.extend(properties);
        }
        Ok(json!({ "result": "success" }))
    }

    fn get_profile(
        &self,
        node: &str,
        params: &Params,
        headers: &HeaderMap,
    ) -> Result<Value, GraphFault> {
        let page = self.authenticate(node, params, headers)?;
        let fields = params.fields.as_deref().unwrap_or_default();
        let fields: Vec<&str> = fields
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .collect();
        if fields.is_empty() {
            return Err(GraphFault::invalid(
                "(#100) The parameter fields is required",
            ));
        }
        let state = self.lock();
        let found: Map<String, Value> = state
            .profiles
            .get(page)
            .map(|stored| {
                fields
                    .iter()
                    .filter_map(|&f| Some((f.to_owned(), stored.get(f)?.clone())))
                    .collect()
            })
            .unwrap_or_default();
        drop(state);
        let data = if found.is_empty() {
            Vec::new()
        } else {
            vec![Value::Object(found)]
        };
        Ok(json!({ "data": data }))
    }

    fn delete_profile(
        &self,
        node: &str,
        params: &Params,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Value, GraphFault> {
        let page = self.authenticate(node, params, headers)?;
        let body = rules::parse_object(body)?;
        let fields = body
            .get("fields")
            .and_then(Value::as_array)
            .filter(|fields| !fields.is_empty())
            .ok_or_else(|| GraphFault::invalid("(#100) The parameter fields is required"))?;
        let mut state = self.lock();
        if let Some(stored) = state.profiles.get_mut(page) {
            for field in fields.iter().filter_map(Value::as_str) {
                stored.remove(field);
            }
        }
        Ok(json!({ "result": "success" }))
    }

    /// A fresh, random-looking `fbtrace_id`, 11 characters like Graph's.
    fn trace_id(&self) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
        // splitmix64: consecutive counter values give unrelated-looking ids.
        let mut x = self
            .traces
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        (0..11)
            .map(|i| char::from(ALPHABET[((x >> (i * 6)) & 63) as usize]))
            .collect()
    }
}

/// How long after the user's last message this kind of send may go out; `None` for always.
fn window_for(messaging_type: Option<&str>, tag: Option<&str>) -> Option<Duration> {
    match (messaging_type, tag) {
        (Some("MESSAGE_TAG"), Some("HUMAN_AGENT")) => Some(HUMAN_AGENT_WINDOW),
        (Some("MESSAGE_TAG"), _) => None,
        _ => Some(STANDARD_WINDOW),
    }
}

fn in_window(window: Option<Duration>, last: Option<Timestamp>, now: Timestamp) -> bool {
    match (window, last) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(window), Some(last)) => now.saturating_duration_since(last) <= window,
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

fn check_proof(secret: &AppSecret, token: &str, proof: Option<&str>) -> Result<(), GraphFault> {
    let invalid = || GraphFault::invalid("Invalid appsecret_proof provided in the API argument");
    let proof = proof.ok_or_else(invalid)?;
    // 64 hex digits, as Graph takes them (the decoder alone would also skip a `0x` prefix).
    if proof.len() != 64 {
        return Err(invalid());
    }
    let proof = const_hex::decode(proof).map_err(|_| invalid())?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.secret().as_bytes()).map_err(|_| invalid())?;
    mac.update(token.as_bytes());
    // Constant time, like a real check should be.
    mac.verify_slice(&proof).map_err(|_| invalid())
}

/// `v<digits>.<digits>`.
fn is_version(segment: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    segment
        .strip_prefix('v')
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(major, minor)| digits(major) && digits(minor))
}

fn unknown_path() -> GraphFault {
    GraphFault::new(400, 2500, None, "Unknown path components")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fake_can_be_shared_across_tasks() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<FakeGraph>();
        send_sync::<FakeGraphBuilder>();
        send_sync::<GraphFault>();
        send_sync::<SentRequest>();
    }

    #[test]
    fn versions_are_v_digits_dot_digits() {
        assert!(is_version("v25.0"));
        assert!(is_version("v2.6"));
        for bad in ["25.0", "v25", "v.0", "v25.", "v25.0.1", "va.b", ""] {
            assert!(!is_version(bad), "{bad}");
        }
    }

    #[test]
    fn fail_next_wins_and_fail_every_counts_every_send() {
        let mut state = Records {
            fail_every: Some(Every {
                k: 2,
                fault: GraphFault::server_error(),
                seen: 0,
            }),
            fail_next: Some((1, GraphFault::temporary())),
            ..Records::default()
        };
        assert_eq!(state.fault(), Some(GraphFault::temporary()));
        assert_eq!(state.fault(), Some(GraphFault::server_error()));
        assert_eq!(state.fault(), None);
        assert_eq!(state.fault(), Some(GraphFault::server_error()));
    }

    #[test]
    fn windows_by_kind() {
        let t0 = Timestamp::from_secs(1_000_000);
        let at = |h: u64| t0.saturating_add(Duration::from_secs(h * 3600));
        let response = window_for(Some("RESPONSE"), None);
        assert!(in_window(response, Some(t0), at(24)));
        assert!(!in_window(response, Some(t0), at(25)));
        assert!(!in_window(response, None, t0));
        let human = window_for(Some("MESSAGE_TAG"), Some("HUMAN_AGENT"));
        assert!(in_window(human, Some(t0), at(7 * 24)));
        assert!(!in_window(human, Some(t0), at(7 * 24 + 1)));
        assert!(in_window(
            window_for(Some("MESSAGE_TAG"), Some("ACCOUNT_UPDATE")),
            None,
            t0
        ));
        // Sender actions carry no messaging type and follow the standard window.
        assert_eq!(window_for(None, None), Some(STANDARD_WINDOW));
    }

    #[test]
    fn trace_ids_are_eleven_chars_and_vary() {
        let shared = Shared::new(FakeGraph::builder());
        let (a, b) = (shared.trace_id(), shared.trace_id());
        assert_eq!(a.len(), 11);
        assert_ne!(a, b);
    }

    #[test]
    fn debug_hides_tokens_and_secret() {
        let builder = FakeGraph::builder()
            .page("p1", "tok-secret")
            .app_secret(AppSecret::new("app-secret"));
        let shown = format!("{builder:?}");
        assert!(!shown.contains("tok-secret") && !shown.contains("app-secret"));
        assert!(shown.contains("p1"));
    }
}
