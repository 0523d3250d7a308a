use std::{fmt, sync::Arc};

use axum::{
    Router,
    body::Body,
    extract::Request,
    response::{IntoResponse, Response},
    routing::get,
};

use crate::{
    hub::{Hub, HubResponse},
    inbound::InboundSource,
};

/// Something that wants to know what each webhook request did (metrics, live updates): it is
/// called once per POST with the Hub's full account, after the answer is decided.
pub trait WebhookObserver: Send + Sync + 'static {
    /// Called with what the Hub did with one request.
    fn observe(&self, response: &HubResponse);
}

impl<F: Fn(&HubResponse) + Send + Sync + 'static> WebhookObserver for F {
    fn observe(&self, response: &HubResponse) {
        self(response)
    }
}

/// The webhook endpoint of any [`InboundSource`] (the Messenger `Webhook` first) as an axum
/// router, through [`Hub::handle`]. For Messenger: `GET` answers Meta's subscription
/// handshake, `POST` verifies, parses, routes and commits the events, with Meta's status
/// contract: 200 once the events are handled,
/// 400 for a body that is not a webhook body, 403 for a bad signature or verify token, 413
/// for a body over [`InboundSource::max_body`] (refused while it is read, before it is buffered
/// whole), 500 when a store failed and 503 when an overlapping delivery is handling some of
/// the events (Meta delivers again either way).
#[derive(Clone)]
pub struct WebhookRouter {
    hub: Arc<Hub>,
    source: Arc<dyn InboundSource>,
    observer: Option<Arc<dyn WebhookObserver>>,
}

impl fmt::Debug for WebhookRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookRouter")
            .field("max_body", &self.source.max_body())
            .field("observer", &self.observer.is_some())
            .finish_non_exhaustive()
    }
}

impl WebhookRouter {
    /// A router handing the requests of `source` (an `Arc<Webhook>` for Messenger) to `hub`.
    pub fn new(hub: Arc<Hub>, source: Arc<dyn InboundSource>) -> Self {
        WebhookRouter {
            hub,
            source,
            observer: None,
        }
    }

    /// Calls `observer` with the Hub's account of every POST.
    pub fn observer(mut self, observer: impl WebhookObserver) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// The router, serving the endpoint at `/` (nest it where the host wants it).
    pub fn into_router<S>(self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let this = Arc::new(self);
        let (get_this, post_this) = (this.clone(), this);
        Router::new().route(
            "/",
            get(move |request: Request| async move { get_this.handle(request).await })
                .post(move |request: Request| async move { post_this.handle(request).await }),
        )
    }

    async fn handle(&self, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        // One byte over the limit is enough to know the body is too large.
        let limit = self.source.max_body();
        let bytes = match axum::body::to_bytes(body, limit.saturating_add(1)).await {
            Ok(bytes) => bytes,
            Err(_) => {
                let refusal = format!("body is over the {limit}-byte limit");
                tracing::warn!(limit, "webhook request refused: body too large");
                return (http::StatusCode::PAYLOAD_TOO_LARGE, refusal).into_response();
            }
        };
        let request = http::Request::from_parts(parts, bytes);
        let handled = self.hub.handle(&*self.source, &request).await;
        if request.method() == http::Method::POST {
            if let Some(observer) = &self.observer {
                observer.observe(&handled);
            }
        }
        let (parts, body) = handled.response.into_parts();
        Response::from_parts(parts, Body::from(body))
    }
}
