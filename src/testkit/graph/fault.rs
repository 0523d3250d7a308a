//! Graph API error answers: the faults a test injects and the refusals the fake's rules give.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};

/// A Graph API error answer: the HTTP status and the `error` object's `code`, `error_subcode`
/// and `message`.
///
/// Inject one with [`FakeGraph::fail_next`](super::FakeGraph::fail_next) or
/// [`FakeGraph::fail_every`](super::FakeGraph::fail_every); the fake answers with
/// `{"error":{"message":..,"type":"OAuthException","code":..,"error_subcode":..,"fbtrace_id":..}}`
/// (`error_subcode` only when set), the shape a Send API client has to parse. The constructors
/// give the errors a client most needs to classify: which to retry, which to surface.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GraphFault {
    /// The HTTP status (an invalid one is answered as 500).
    pub status: u16,
    /// The Graph error `code`.
    pub code: i64,
    /// The Graph `error_subcode`, when there is one.
    pub subcode: Option<i64>,
    /// The error `message`.
    pub message: String,
}

impl GraphFault {
    /// Any Graph error answer.
    pub fn new(status: u16, code: i64, subcode: Option<i64>, message: impl Into<String>) -> Self {
        GraphFault {
            status,
            code,
            subcode,
            message: message.into(),
        }
    }

    /// Code 1200, HTTP 400: a temporary send failure. Retryable with backoff.
    pub fn temporary() -> Self {
        Self::new(
            400,
            1200,
            None,
            "Temporary send message failure. Please try again later",
        )
    }

    /// Code 613, HTTP 400: the API's rate limit. Retryable after backoff.
    pub fn rate_limited() -> Self {
        Self::new(
            400,
            613,
            None,
            "Calls to this API have exceeded the rate limit",
        )
    }

    /// Code 32, HTTP 400: the Page's request limit. Retryable after backoff.
    pub fn page_rate_limited() -> Self {
        Self::new(400, 32, None, "Page request limit reached")
    }

    /// Code 2, HTTP 503: the service is temporarily unavailable. Retryable, a limited number of
    /// times.
    pub fn server_error() -> Self {
        Self::new(503, 2, None, "Service temporarily unavailable")
    }

    /// Code 551, subcode 1545041, HTTP 400: the person blocked the Page, deactivated or declined.
    /// Permanent: the recipient is undeliverable.
    pub fn unavailable_user() -> Self {
        Self::new(
            400,
            551,
            Some(1_545_041),
            "This person isn't available right now",
        )
    }

    /// Code 190, subcode 463, HTTP 400: the access token expired. Permanent until the host
    /// gets a new token.
    pub fn expired_token() -> Self {
        Self::new(
            400,
            190,
            Some(463),
            "Error validating access token: Session has expired",
        )
    }

    /// Code 190, HTTP 400: a missing, unknown or foreign access token.
    pub(super) fn invalid_token() -> Self {
        Self::new(400, 190, None, "Invalid OAuth access token")
    }

    /// Code 100, HTTP 400: a request the Graph API refuses as a bad parameter.
    pub(super) fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, 100, None, message)
    }

    /// The HTTP answer, carrying `fbtrace_id`.
    pub(super) fn into_response(self, fbtrace_id: String) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut error = Map::new();
        error.insert("message".into(), Value::String(self.message));
        error.insert("type".into(), json!("OAuthException"));
        error.insert("code".into(), json!(self.code));
        if let Some(subcode) = self.subcode {
            error.insert("error_subcode".into(), json!(subcode));
        }
        error.insert("fbtrace_id".into(), Value::String(fbtrace_id));
        (status, Json(json!({ "error": error }))).into_response()
    }
}
