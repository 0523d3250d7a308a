//! How the agent API answers a request it cannot serve, and reads the ones it can.

use axum::{
    Json,
    extract::Request,
    http::StatusCode,
    response::{IntoResponse, Response},
};

use crate::{contact::ContactId, error::StoreError, inbox::SupportError};

/// Most entries or conversations one request reads.
const MAX_LIMIT: usize = 500;

/// What an API error says, as JSON: `{"error": "...", "code": "..."}`.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub(super) fn not_found(message: impl Into<String>) -> Self {
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
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
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
pub(super) struct Body<T>(pub(super) T);

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

pub(super) fn contact_id(text: &str) -> Result<ContactId, ApiError> {
    ContactId::new(text).map_err(|e| ApiError::bad_request(format!("contact id: {e}")))
}

pub(super) fn limit(requested: Option<usize>, default: usize) -> usize {
    requested.unwrap_or(default).clamp(1, MAX_LIMIT)
}
