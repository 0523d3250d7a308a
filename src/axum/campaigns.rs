//! Campaigns run through the agent API, and what became of them.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::Value;

use super::{
    agent::ApiRef,
    api_error::{ApiError, Body},
    live::LiveEvent,
};
use crate::{
    contact::Channel,
    newsletter::{
        Campaign, CampaignId, CampaignRunner, Progress, Report, RunControl, RunState,
        login::LoginLinks,
    },
    segment::Segment,
    sync::lock,
    template::CampaignVars,
};

/// A campaign started through the API, and what became of it.
pub(super) struct CampaignRun {
    pub(super) control: RunControl,
    pub(super) result: Arc<Mutex<Option<Result<Report, String>>>>,
    pub(super) task: Option<tokio::task::JoinHandle<()>>,
}

/// Campaigns the API runs.
pub(super) struct Campaigns {
    pub(super) runner: CampaignRunner,
    pub(super) login: Option<LoginLinks>,
    pub(super) runs: Mutex<HashMap<CampaignId, CampaignRun>>,
}

#[derive(Deserialize)]
pub(super) struct CampaignBody {
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
        RunState::Finished => "finished",
    }
}

pub(super) async fn start_campaign(
    State(api): State<ApiRef>,
    Body(body): Body<CampaignBody>,
) -> Result<Response, ApiError> {
    let campaigns = api.campaigns()?;
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
    // Checked under the lock `stop_campaigns` takes after closing: a campaign is either
    // refused here or inserted in time to be stopped.
    if api.live().is_closed() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down: post the campaign again once it is back",
        ));
    }
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
    let (task_control, task_result, live) = (control.clone(), result.clone(), api.live().clone());
    let campaign_id = id.clone();
    let task = tokio::spawn(async move {
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
    runs.insert(
        id.clone(),
        CampaignRun {
            control,
            result,
            task: Some(task),
        },
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"id": id, "state": "running"})),
    )
        .into_response())
}

pub(super) async fn campaign_status(
    State(api): State<ApiRef>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let campaigns = api.campaigns()?;
    let id = CampaignId::new(id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if !lock(&campaigns.runs).contains_key(&id) {
        return recorded_status(campaigns, id).await;
    }
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

/// A campaign no run of this process saw (it ran before a restart, or in another process):
/// what the outbox recorded. `recorded` when every recipient met has a final outcome,
/// `interrupted` when a run stopped with claims pending (uncertain: maybe sent, never resent;
/// posting the campaign again resumes it); 404 when the outbox holds nothing of it.
async fn recorded_status(campaigns: &Campaigns, id: CampaignId) -> Result<Json<Value>, ApiError> {
    let counts = campaigns.runner.recorded(&id).await?;
    if counts.recipients() == 0 {
        return Err(ApiError::not_found(format!("no campaign {id} is known")));
    }
    let state = if counts.uncertain > 0 {
        "interrupted"
    } else {
        "recorded"
    };
    Ok(Json(serde_json::json!({
        "id": id,
        "state": state,
        "progress": Value::Null,
        "report": {"total": counts},
    })))
}
