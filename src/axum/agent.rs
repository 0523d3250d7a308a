//! The agent API: what a support desk needs, as JSON over HTTP.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Path, Query, Request, State},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    auth::{AgentAuth, AgentIdentity},
    live::{Live, LiveEvent},
};
use crate::{
    activity::LastInbound,
    clock::{SharedClock, SystemClock, Timestamp},
    contact::{Channel, Contact, ContactId},
    error::StoreError,
    identity::{Connector, Directory, connect::is_technical},
    inbox::{
        ConversationCursor, DeliveryRecord, Entry, EntryContent, Inbox, Reply, Support,
        SupportError,
    },
    message::{Attachment, Message},
    messenger::{PageConfig, link::connect_link},
    newsletter::{
        Campaign, CampaignId, CampaignRunner, Progress, Report, RunControl, RunState,
        login::LoginLinks,
    },
    process::{FlowId, ProcessEngine, ProcessError},
    segment::Segment,
    sync::lock,
    template::CampaignVars,
};

/// Most entries or conversations one request reads.
const MAX_LIMIT: usize = 500;

/// What an API error says, as JSON: `{"error": "...", "code": "..."}`.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub(super) fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong credentials (Authorization: Bearer <token>)",
        )
    }

    fn code(&self) -> &'static str {
        match self.status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::CONFLICT => "conflict",
            StatusCode::NOT_IMPLEMENTED => "not_configured",
            _ => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.message, "code": self.code()});
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::NotFound { .. } => ApiError::not_found(e.to_string()),
            StoreError::Conflict { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            StoreError::Invalid { .. } => ApiError::bad_request(e.to_string()),
            _ => {
                tracing::error!(error = %e, source = ?std::error::Error::source(&e), "agent API: store failed");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "a store failed")
            }
        }
    }
}

impl From<SupportError> for ApiError {
    fn from(e: SupportError) -> Self {
        match e {
            SupportError::UnknownContact(id) => {
                ApiError::not_found(format!("unknown contact {id}"))
            }
            SupportError::TooManyChoices(_) => ApiError::bad_request(e.to_string()),
            SupportError::Store(s) => s.into(),
        }
    }
}

/// The JSON body of a request, with a clear 400 for anything that is not it.
pub(super) struct Body<T>(T);

impl<S, T> axum::extract::FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("cannot read the body: {e}")))?;
        serde_json::from_slice(&bytes)
            .map(Body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}

fn contact_id(text: &str) -> Result<ContactId, ApiError> {
    ContactId::new(text).map_err(|e| ApiError::bad_request(format!("contact id: {e}")))
}

fn limit(requested: Option<usize>, default: usize) -> usize {
    requested.unwrap_or(default).clamp(1, MAX_LIMIT)
}

/// A contact as the desk shows it.
#[derive(Debug, Serialize)]
struct ContactView {
    id: ContactId,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    technical: bool,
}

impl ContactView {
    fn of(contact: &Contact) -> Self {
        ContactView {
            id: contact.id.clone(),
            email: contact.email.clone(),
            first_name: contact.first_name.clone(),
            last_name: contact.last_name.clone(),
            technical: is_technical(contact),
        }
    }

    fn unknown(id: ContactId) -> Self {
        ContactView {
            id,
            email: None,
            first_name: None,
            last_name: None,
            technical: false,
        }
    }
}

/// An inbox entry as the desk shows it.
#[derive(Debug, Serialize)]
pub(super) struct EntryView {
    id: String,
    at: i64,
    direction: &'static str,
    text: Option<String>,
    choice: Option<String>,
    attachments: Vec<Attachment>,
    author: Option<String>,
    deliveries: Vec<DeliveryRecord>,
}

impl EntryView {
    pub(super) fn of(entry: &Entry) -> Self {
        let (direction, text, choice, attachments, author, deliveries) = match &entry.content {
            EntryContent::Incoming(i) => (
                "incoming",
                i.text.clone(),
                i.choice.clone(),
                i.attachments.clone(),
                None,
                Vec::new(),
            ),
            EntryContent::Outgoing(o) => (
                "outgoing",
                Some(o.message.text_body().to_owned()),
                None,
                Vec::new(),
                o.author.clone(),
                o.deliveries.clone(),
            ),
        };
        EntryView {
            id: entry.id.to_string(),
            at: entry.at.as_millis(),
            direction,
            text,
            choice,
            attachments,
            author,
            deliveries,
        }
    }
}

/// What makes m.me connect links.
#[derive(Clone)]
struct ConnectLinks {
    connector: Connector,
    page: PageConfig,
}

/// A campaign started through the API, and what became of it.
struct CampaignRun {
    control: RunControl,
    result: Arc<Mutex<Option<Result<Report, String>>>>,
}

/// Campaigns the API runs.
struct Campaigns {
    runner: CampaignRunner,
    login: Option<LoginLinks>,
    runs: Mutex<HashMap<CampaignId, CampaignRun>>,
}

struct ApiState {
    auth: Arc<dyn AgentAuth>,
    support: Support,
    inbox: Arc<dyn Inbox>,
    directory: Arc<dyn Directory>,
    last_inbound: Option<Arc<dyn LastInbound>>,
    connect: Option<ConnectLinks>,
    processes: Option<Arc<dyn ProcessEngine>>,
    campaigns: Option<Campaigns>,
    live: Live,
    clock: SharedClock,
}

/// The agent API as an axum router: conversations, replies through the transports an agent
/// ticks, connect links, flows, campaigns and live updates. Every route asks the host's
/// [`AgentAuth`] first; a request it refuses gets 401 and touches nothing. The routes, their
/// JSON and their errors are listed in `examples/README.md`.
///
/// Build it with [`AgentApi::builder`], keep a clone to publish live updates
/// ([`AgentApi::webhook_observer`]), and mount [`AgentApi::router`] where the host wants it.
#[derive(Clone)]
pub struct AgentApi {
    state: Arc<ApiState>,
}

impl fmt::Debug for AgentApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentApi")
            .field("support", &self.state.support)
            .field("connect_links", &self.state.connect.is_some())
            .field("processes", &self.state.processes.is_some())
            .field("campaigns", &self.state.campaigns.is_some())
            .finish_non_exhaustive()
    }
}

/// Builds an [`AgentApi`].
pub struct AgentApiBuilder {
    state: ApiState,
}

impl fmt::Debug for AgentApiBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentApiBuilder").finish_non_exhaustive()
    }
}

impl AgentApiBuilder {
    /// Notes on the Messenger checkbox (window closed, HUMAN_AGENT tag) read each contact's
    /// last inbound message here.
    pub fn last_inbound(mut self, last: Arc<dyn LastInbound>) -> Self {
        self.state.last_inbound = Some(last);
        self
    }

    /// `POST /connect-links` makes m.me links to `page` with `connector`'s tokens.
    pub fn connect_links(mut self, connector: Connector, page: PageConfig) -> Self {
        self.state.connect = Some(ConnectLinks { connector, page });
        self
    }

    /// `POST /flows/{id}/start` starts flows on `engine`.
    pub fn processes(mut self, engine: Arc<dyn ProcessEngine>) -> Self {
        self.state.processes = Some(engine);
        self
    }

    /// `POST /campaigns` runs campaigns on `runner`; with `login`, a campaign may ask for
    /// "authorize on click" links.
    pub fn campaigns(mut self, runner: CampaignRunner, login: Option<LoginLinks>) -> Self {
        self.state.campaigns = Some(Campaigns {
            runner,
            login,
            runs: Mutex::new(HashMap::new()),
        });
        self
    }

    /// The clock for read marks and window notes. Default: system time.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.state.clock = clock;
        self
    }

    /// The API.
    pub fn build(self) -> AgentApi {
        AgentApi {
            state: Arc::new(self.state),
        }
    }
}

impl AgentApi {
    /// An API guarded by `auth`, replying through `support`, reading `inbox` and `directory`
    /// (the same stores `support` uses).
    pub fn builder(
        auth: impl AgentAuth,
        support: Support,
        inbox: Arc<dyn Inbox>,
        directory: Arc<dyn Directory>,
    ) -> AgentApiBuilder {
        AgentApiBuilder {
            state: ApiState {
                auth: Arc::new(auth),
                support,
                inbox,
                directory,
                last_inbound: None,
                connect: None,
                processes: None,
                campaigns: None,
                live: Live::new(),
                clock: SystemClock::shared(),
            },
        }
    }

    /// Publishes `event` to every open `GET /events` stream.
    pub fn publish(&self, event: LiveEvent) {
        self.state.live.publish(event);
    }

    /// A [`WebhookObserver`](super::WebhookObserver) that turns what the Hub routed into live
    /// updates (new messages, receipts), for [`WebhookRouter::observer`](super::WebhookRouter::observer).
    pub fn webhook_observer(&self) -> impl super::WebhookObserver {
        super::live::observer(
            self.state.live.clone(),
            self.state.directory.clone(),
            self.state.inbox.clone(),
        )
    }

    /// The router (routes at `/conversations`, ...: nest it under `/api`).
    pub fn router<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let state = self.state.clone();
        Router::new()
            .route("/conversations", get(list_conversations))
            .route("/conversations/{contact}", get(read_conversation))
            .route("/conversations/{contact}/read", post(mark_read))
            .route("/conversations/{contact}/reply", post(reply))
            .route("/connect-links", post(connect_link_for))
            .route("/flows/{flow}/start", post(start_flow))
            .route("/campaigns", post(start_campaign))
            .route("/campaigns/{id}", get(campaign_status))
            .route("/events", get(super::live::events))
            .route_layer(middleware::from_fn_with_state(state.clone(), guard))
            .with_state(ApiRef(state))
    }
}

/// The state handlers see.
#[derive(Clone)]
pub(super) struct ApiRef(Arc<ApiState>);

impl ApiRef {
    pub(super) fn live(&self) -> &Live {
        &self.0.live
    }
}

async fn guard(State(state): State<Arc<ApiState>>, mut request: Request, next: Next) -> Response {
    match state.auth.authorize(request.headers()) {
        Some(agent) => {
            request.extensions_mut().insert(agent);
            next.run(request).await
        }
        None => ApiError::unauthorized().into_response(),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<usize>,
    after: Option<String>,
}

async fn list_conversations(
    State(api): State<ApiRef>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let after = query.after.map(ConversationCursor::new);
    let page = api
        .0
        .inbox
        .conversations(after.as_ref(), limit(query.limit, 50))
        .await?;
    let mut out = Vec::with_capacity(page.conversations.len());
    for summary in &page.conversations {
        let contact = match api.0.directory.get(&summary.contact).await? {
            Some(c) => ContactView::of(&c),
            None => ContactView::unknown(summary.contact.clone()),
        };
        let last = EntryView::of(&summary.last);
        out.push(serde_json::json!({
            "contact": contact,
            "last_at": last.at,
            "last_text": last.text,
            "last_direction": last.direction,
            "unread": summary.unread,
        }));
    }
    Ok(Json(serde_json::json!({
        "conversations": out,
        "next": page.next.map(|c| c.as_str().to_owned()),
    })))
}

#[derive(Deserialize)]
struct LimitQuery {
    limit: Option<usize>,
}

async fn read_conversation(
    State(api): State<ApiRef>,
    Path(contact): Path<String>,
    Query(query): Query<LimitQuery>,
) -> Result<Json<Value>, ApiError> {
    let id = contact_id(&contact)?;
    let contact = api
        .0
        .directory
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("unknown contact {id}")))?;
    let entries = api
        .0
        .inbox
        .conversation(&id, limit(query.limit, 100))
        .await?;
    let mut transports = Vec::new();
    for option in api.0.support.transports_for(&id).await? {
        let note = match (&option.channel, &option.address) {
            (Channel::Messenger, Some(address)) => window_note(&api, address).await?,
            (Channel::Email, None) if contact.email.is_some() => {
                Some("only a technical e-mail address is known".to_owned())
            }
            _ => None,
        };
        transports.push(serde_json::json!({
            "channel": option.channel,
            "available": option.available(),
            "note": note,
        }));
    }
    Ok(Json(serde_json::json!({
        "contact": ContactView::of(&contact),
        "transports": transports,
        "entries": entries.iter().map(EntryView::of).collect::<Vec<_>>(),
    })))
}

/// What an agent reply over Messenger will meet: nothing inside the 24-hour window; the
/// HUMAN_AGENT tag up to 7 days; a refusal after that.
async fn window_note(
    api: &ApiRef,
    address: &crate::contact::Address,
) -> Result<Option<String>, ApiError> {
    const DAY: Duration = Duration::from_secs(24 * 3600);
    let Some(last) = &api.0.last_inbound else {
        return Ok(None);
    };
    let now = api.0.clock.now();
    Ok(match last.last(address).await? {
        None => {
            Some("no message from this person on record: Messenger may refuse the reply".into())
        }
        Some(at) => {
            let ago = now.saturating_duration_since(at);
            if ago <= DAY {
                None
            } else if ago <= 7 * DAY {
                Some(format!(
                    "the 24-hour window closed {} h ago: the reply goes with the HUMAN_AGENT tag",
                    ago.as_secs() / 3600 - 24
                ))
            } else {
                Some(
                    "last message over 7 days ago: Messenger will refuse the reply; use e-mail"
                        .into(),
                )
            }
        }
    })
}

#[derive(Deserialize)]
struct ReadBody {
    up_to: i64,
}

async fn mark_read(
    State(api): State<ApiRef>,
    Path(contact): Path<String>,
    Body(body): Body<ReadBody>,
) -> Result<StatusCode, ApiError> {
    let id = contact_id(&contact)?;
    api.0
        .inbox
        .mark_read(&id, Timestamp::from_millis(body.up_to))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct ReplyBody {
    text: String,
    channels: Vec<String>,
}

async fn reply(
    State(api): State<ApiRef>,
    Path(contact): Path<String>,
    axum::Extension(agent): axum::Extension<AgentIdentity>,
    Body(body): Body<ReplyBody>,
) -> Result<Json<Value>, ApiError> {
    let id = contact_id(&contact)?;
    if body.channels.is_empty() {
        return Err(ApiError::bad_request("tick at least one transport"));
    }
    let channels = body
        .channels
        .iter()
        .map(|c| c.parse::<Channel>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::bad_request(format!("channels: {e}")))?;
    let message =
        Message::text(body.text).map_err(|e| ApiError::bad_request(format!("text: {e}")))?;
    let report = api
        .0
        .support
        .reply(&id, Reply::new(message, channels).by(agent.0))
        .await?;
    if let Some(entry) = api
        .0
        .inbox
        .conversation(&id, 1)
        .await?
        .into_iter()
        .find(|e| e.id == report.entry)
    {
        api.0.live.publish(LiveEvent::message(&id, &entry));
    }
    Ok(Json(serde_json::json!({
        "entry": report.entry,
        "deliveries": report.deliveries,
    })))
}

#[derive(Deserialize)]
struct ConnectBody {
    contact_id: String,
}

async fn connect_link_for(
    State(api): State<ApiRef>,
    Body(body): Body<ConnectBody>,
) -> Result<Json<Value>, ApiError> {
    let connect = api.0.connect.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "connect links are not configured",
        )
    })?;
    let id = contact_id(&body.contact_id)?;
    if api.0.directory.get(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("unknown contact {id}")));
    }
    let token = connect
        .connector
        .connect_token(&id, Some(&connect.page.page_id))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("token: {e}")))?;
    let expires_at = api
        .0
        .clock
        .now()
        .saturating_add(connect.connector.policy().token_ttl);
    Ok(Json(serde_json::json!({
        "url": connect_link(&connect.page, &token),
        "expires_at": expires_at.as_millis(),
    })))
}

#[derive(Deserialize)]
struct StartFlowBody {
    contact_id: String,
}

async fn start_flow(
    State(api): State<ApiRef>,
    Path(flow): Path<String>,
    Body(body): Body<StartFlowBody>,
) -> Result<Json<Value>, ApiError> {
    let engine =
        api.0.processes.as_ref().ok_or_else(|| {
            ApiError::new(StatusCode::NOT_IMPLEMENTED, "flows are not configured")
        })?;
    let flow = FlowId::new(flow).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let contact = contact_id(&body.contact_id)?;
    match engine.start(&flow, &contact).await {
        Ok(instance) => Ok(Json(serde_json::json!({ "instance": instance }))),
        Err(e @ (ProcessError::UnknownFlow(_) | ProcessError::UnknownContact(_))) => {
            Err(ApiError::not_found(e.to_string()))
        }
        Err(e @ ProcessError::AlreadyRunning { .. }) => {
            Err(ApiError::new(StatusCode::CONFLICT, e.to_string()))
        }
        Err(e) => {
            tracing::warn!(error = %e, %flow, %contact, "agent API: starting a flow failed");
            Err(ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()))
        }
    }
}

#[derive(Deserialize)]
struct CampaignBody {
    id: String,
    segment: Segment,
    text: String,
    #[serde(default)]
    channels: Vec<String>,
    #[serde(default)]
    login_links: bool,
    #[serde(default)]
    vars: Option<Value>,
}

fn run_state(run: &CampaignRun) -> &'static str {
    if lock(&run.result).is_some() {
        return "finished";
    }
    match run.control.state() {
        RunState::Running => "running",
        RunState::Paused => "paused",
        RunState::Cancelled => "cancelled",
    }
}

async fn start_campaign(
    State(api): State<ApiRef>,
    Body(body): Body<CampaignBody>,
) -> Result<Response, ApiError> {
    let campaigns = api.0.campaigns.as_ref().ok_or_else(|| {
        ApiError::new(StatusCode::NOT_IMPLEMENTED, "campaigns are not configured")
    })?;
    let id = CampaignId::new(body.id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut builder = Campaign::builder(id.clone(), body.segment, body.text);
    if !body.channels.is_empty() {
        let channels = body
            .channels
            .iter()
            .map(|c| c.parse::<Channel>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiError::bad_request(format!("channels: {e}")))?;
        builder = builder.channels(channels);
    }
    if let Some(vars) = body.vars {
        builder = builder.vars(
            CampaignVars::from_json(vars)
                .map_err(|e| ApiError::bad_request(format!("vars: {e}")))?,
        );
    }
    if body.login_links {
        let login = campaigns.login.clone().ok_or_else(|| {
            ApiError::bad_request("login links are not configured on this server")
        })?;
        builder = builder.login_links(login);
    }
    let campaign = builder
        .build()
        .map_err(|e| ApiError::bad_request(format!("campaign: {e}")))?;
    let mut runs = lock(&campaigns.runs);
    if let Some(run) = runs.get(&id) {
        if lock(&run.result).is_none() {
            // Running: say so; posting again while it runs changes nothing.
            let state = run_state(run);
            return Ok((
                StatusCode::OK,
                Json(serde_json::json!({"id": id, "state": state})),
            )
                .into_response());
        }
    }
    // New, or finished before: run it (again). The outbox makes a second run a resume.
    let control = RunControl::new();
    let result = Arc::new(Mutex::new(None));
    let runner = campaigns.runner.clone();
    let (task_control, task_result, live) = (control.clone(), result.clone(), api.0.live.clone());
    let campaign_id = id.clone();
    tokio::spawn(async move {
        let mut progress = task_control.progress();
        let watch = {
            let (live, campaign_id) = (live.clone(), campaign_id.clone());
            tokio::spawn(async move {
                while progress.changed().await.is_ok() {
                    let snapshot = progress.borrow_and_update().clone();
                    live.publish(LiveEvent::campaign(&campaign_id, &snapshot));
                }
            })
        };
        let outcome = runner
            .run(&campaign, &task_control)
            .await
            .map_err(|e| e.to_string());
        if let Err(e) = &outcome {
            tracing::warn!(campaign = %campaign_id, error = %e, "campaign run stopped");
        }
        *lock(&task_result) = Some(outcome);
        watch.abort();
        live.publish(LiveEvent::campaign(
            &campaign_id,
            &task_control.progress().borrow(),
        ));
    });
    runs.insert(id.clone(), CampaignRun { control, result });
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"id": id, "state": "running"})),
    )
        .into_response())
}

async fn campaign_status(
    State(api): State<ApiRef>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let campaigns = api.0.campaigns.as_ref().ok_or_else(|| {
        ApiError::new(StatusCode::NOT_IMPLEMENTED, "campaigns are not configured")
    })?;
    let id = CampaignId::new(id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let runs = lock(&campaigns.runs);
    let run = runs
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("no campaign {id} was started here")))?;
    let progress: Progress = run.control.progress().borrow().clone();
    let report = match &*lock(&run.result) {
        Some(Ok(report)) => serde_json::to_value(report).unwrap_or(Value::Null),
        Some(Err(e)) => serde_json::json!({"error": e}),
        None => Value::Null,
    };
    Ok(Json(serde_json::json!({
        "id": id,
        "state": run_state(run),
        "progress": progress,
        "report": report,
    })))
}
