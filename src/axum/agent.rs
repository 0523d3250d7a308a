//! The agent API: what a support desk needs, as JSON over HTTP.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    extract::{Path, Query, Request, State},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::Value;

use super::{
    api_error::{ApiError, Body, contact_id, limit},
    auth::{AgentAuth, AgentIdentity},
    campaigns::{Campaigns, campaign_status, start_campaign},
    live::{Live, LiveEvent},
    views::{ContactView, EntryView},
};
use crate::{
    activity::LastInbound,
    clock::{SharedClock, SystemClock, Timestamp},
    contact::Channel,
    identity::{Connector, Directory},
    inbox::{ConversationCursor, Inbox, Reply, Support},
    message::Message,
    messenger::{
        PageConfig,
        link::connect_link,
        policy::{MessageTag, MessagingType, Policy, STANDARD_WINDOW},
    },
    newsletter::{CampaignRunner, login::LoginLinks},
    process::{FlowId, ProcessEngine, ProcessError},
    sync::lock,
    transport::Intent,
};

/// What makes m.me connect links.
#[derive(Clone)]
struct ConnectLinks {
    connector: Connector,
    page: PageConfig,
}

struct ApiState {
    auth: Arc<dyn AgentAuth>,
    support: Support,
    inbox: Arc<dyn Inbox>,
    directory: Arc<dyn Directory>,
    last_inbound: Option<Arc<dyn LastInbound>>,
    messenger_policy: Policy,
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

    /// The policy of the Messenger transport replies go through, so that the notes say what a
    /// reply outside the window will meet (with [`Policy::with_human_agent`], the HUMAN_AGENT
    /// tag up to 7 days; without it, a refusal). Default: [`Policy::new`], as the transport's.
    pub fn messenger_policy(mut self, policy: Policy) -> Self {
        self.state.messenger_policy = policy;
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
                messenger_policy: Policy::new(),
                connect: None,
                processes: None,
                campaigns: None,
                live: Live::new(),
                clock: SystemClock::shared(),
            },
        }
    }

    /// Gets the API ready for a graceful shutdown: ends every open `GET /events` stream (a
    /// desk keeps its stream open for good, and a server waits for its connections before it
    /// stops), refuses new campaigns with 503, and stops the running ones at a recorded point
    /// ([`stop_campaigns`](AgentApi::stop_campaigns)). Other routes go on answering until the
    /// server stops.
    ///
    /// Call it from the future given to `axum::serve(..).with_graceful_shutdown`, so that it
    /// runs when the shutdown starts, not after the server has drained.
    pub async fn shutdown(&self) {
        self.state.live.close();
        self.stop_campaigns().await;
    }

    /// Cancels every campaign this API runs and waits until each has recorded its sends in
    /// flight (for a graceful shutdown: posting the campaign again after a restart resumes it
    /// from what was recorded).
    pub async fn stop_campaigns(&self) {
        let Some(campaigns) = &self.state.campaigns else {
            return;
        };
        let tasks: Vec<_> = lock(&campaigns.runs)
            .values_mut()
            .filter_map(|run| {
                run.control.cancel();
                run.task.take()
            })
            .collect();
        if !tasks.is_empty() {
            tracing::info!(
                campaigns = tasks.len(),
                "stopping the running campaigns at a recorded point"
            );
        }
        for task in tasks {
            let _ = task.await;
        }
    }

    /// Every live update from now on, as `GET /events` streams them (new messages, receipts,
    /// campaign progress): for a host's own metrics or logs. A receiver that falls behind by
    /// more than 1,024 updates gets `Lagged` and goes on from the newest.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<LiveEvent> {
        self.state.live.subscribe()
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

    pub(super) fn campaigns(&self) -> Result<&Campaigns, ApiError> {
        self.0.campaigns.as_ref().ok_or_else(|| {
            ApiError::new(StatusCode::NOT_IMPLEMENTED, "campaigns are not configured")
        })
    }
}

async fn guard(State(state): State<Arc<ApiState>>, mut request: Request, next: Next) -> Response {
    match state.auth.authorize(request.headers()).await {
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

/// What an agent reply over Messenger will meet, in words: the Messenger policy's own
/// decision (so the note and the send can never disagree), explained for the agent.
async fn window_note(
    api: &ApiRef,
    address: &crate::contact::Address,
) -> Result<Option<String>, ApiError> {
    let Some(last) = &api.0.last_inbound else {
        return Ok(None);
    };
    let now = api.0.clock.now();
    let policy = api.0.messenger_policy;
    let last = last.last(address).await?;
    let closed = |at: Timestamp| {
        now.saturating_duration_since(at)
            .saturating_sub(STANDARD_WINDOW)
            .as_secs()
            / 3600
    };
    Ok(match (policy.decide(Intent::AgentReply, last, now), last) {
        (Ok(MessagingType::Response), _) => None,
        (Ok(MessagingType::Tagged(MessageTag::HumanAgent)), Some(at)) => Some(format!(
            "the 24-hour window closed {} h ago: the reply goes with the HUMAN_AGENT tag",
            closed(at)
        )),
        (Ok(other), _) => Some(format!(
            "the reply goes as {}{}",
            other.as_str(),
            other
                .tag()
                .map(|t| format!(" {}", t.as_str()))
                .unwrap_or_default()
        )),
        (Err(_), None) => Some(
            "no message from this person on record: Messenger will refuse the reply; use e-mail"
                .into(),
        ),
        // With the Human Agent feature on, only the 7 days can have run out.
        (Err(_), Some(_)) if policy.human_agent => {
            Some("last message over 7 days ago: Messenger will refuse the reply; use e-mail".into())
        }
        (Err(_), Some(at)) => Some(format!(
            "the 24-hour window closed {} h ago: Messenger will refuse the reply \
             (the HUMAN_AGENT tag is not enabled); use e-mail",
            closed(at)
        )),
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
    // A read mark for nobody would sit in the store for good.
    if api.0.directory.get(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("unknown contact {id}")));
    }
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
