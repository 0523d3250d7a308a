//! The Hub's webhook glue for Messenger: one call for the host's webhook handler.
//!
//! [`Hub::handle_webhook`] lives here rather than in `hub`, which stays free of Messenger
//! specifics; see the [`hub`](crate::hub) module docs for how it keeps every event routed once.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};

use crate::hub::{Hub, HubError, Routed};
use crate::{
    inbound::{Dropped, Notice},
    message::Inbound,
    messenger::{Webhook, WebhookError},
};

/// The outcome of [`Hub::handle_webhook`].
#[derive(Debug)]
#[non_exhaustive]
pub struct HubResponse {
    /// The response to send to Meta.
    pub response: Response<Bytes>,
    /// Each event routed and committed, with what routing did.
    pub routed: Vec<(Inbound, Routed)>,
    /// The failure that made the response a 500, if any.
    pub error: Option<HubError>,
    /// Pages of the batch that are not configured (their events were not processed).
    pub unknown_pages: Vec<String>,
    /// What could not be read as events, each with its reason and raw JSON.
    pub dropped: Vec<Dropped>,
    /// Notices about the batch's Pages (policy enforcement, app roles).
    pub notices: Vec<Notice>,
    /// Events dropped as already handled.
    pub duplicates: usize,
    /// Events left to the overlapping delivery that is handling them; when there are any, the
    /// response is 503 so that Meta delivers again.
    pub in_flight: usize,
}

impl HubResponse {
    fn bare(response: Response<Bytes>, error: Option<HubError>) -> Self {
        HubResponse {
            response,
            routed: Vec::new(),
            error,
            unknown_pages: Vec::new(),
            dropped: Vec::new(),
            notices: Vec::new(),
            duplicates: 0,
            in_flight: 0,
        }
    }
}

impl Hub {
    /// Handles a webhook request end to end: the handshake for GET; for POST, verify,
    /// parse, drop what was handled, claim each new event, route it and commit it once routed.
    /// A routing or store failure answers 500 (the claims not committed are released) and
    /// events another delivery holds answer 503, so that Meta delivers again; see the
    /// [module docs](crate::hub) for why nothing is lost or done twice.
    pub async fn handle_webhook(&self, webhook: &Webhook, request: &Request<Bytes>) -> HubResponse {
        if request.method() != Method::POST {
            return HubResponse::bare(webhook.handle(request).await.response, None);
        }
        let batch = match webhook.receive(request.headers(), request.body()).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, status = %e.status(), "webhook request refused");
                let response = e.to_response();
                let error = match e {
                    WebhookError::Store(s) => Some(HubError::Store(s)),
                    _ => None,
                };
                return HubResponse::bare(response, error);
            }
        };
        let mut out = HubResponse::bare(plain(StatusCode::OK, "EVENT_RECEIVED"), None);
        out.unknown_pages = batch.unknown_pages;
        out.dropped = batch.dropped;
        out.notices = batch.notices;
        out.duplicates = batch.duplicates;
        out.in_flight = batch.in_flight;
        out.routed.reserve(batch.events.len());
        let mut events = batch.events.into_iter();
        while let Some(event) = events.next() {
            let result = match self.route(&event).await {
                Ok(r) => webhook
                    .commit(&event)
                    .await
                    .map(|()| r)
                    .map_err(HubError::from),
                Err(e) => Err(e),
            };
            match result {
                Ok(r) => out.routed.push((event, r)),
                Err(e) => {
                    tracing::error!(error = %e, key = %event.key, "routing failed; Meta will deliver the batch again");
                    // This event and the ones after it were claimed and not committed: give
                    // them back, so the redelivery routes them at once.
                    let unrouted: Vec<Inbound> = std::iter::once(event).chain(events).collect();
                    if let Err(release) = webhook.release(&unrouted).await {
                        tracing::warn!(error = %release, "releasing the claims failed; the redelivery routes them once the lease ends");
                    }
                    out.response = plain(StatusCode::INTERNAL_SERVER_ERROR, "routing failed");
                    out.error = Some(e);
                    return out;
                }
            }
        }
        if out.in_flight > 0 {
            out.response = crate::messenger::webhook::in_flight_response();
        }
        out
    }
}

fn plain(status: StatusCode, body: &'static str) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from_static(body.as_bytes()));
    *response.status_mut() = status;
    response
}
