//! [`Hub::handle`]: one webhook request of any [`InboundSource`], end to end.

use bytes::Bytes;
use http::{Request, Response};

use super::{Hub, HubError, Routed};
use crate::{
    inbound::{Dropped, InboundSource, Notice, Outcome, Reception},
    message::Inbound,
};

/// The outcome of [`Hub::handle`].
#[derive(Debug)]
#[non_exhaustive]
pub struct HubResponse {
    /// The response to send to the transport.
    pub response: Response<Bytes>,
    /// Each event routed and committed, with what routing did.
    pub routed: Vec<(Inbound, Routed)>,
    /// The failure that made the response a 5xx, if any.
    pub error: Option<HubError>,
    /// Business accounts of the request that are not configured (Messenger: Pages); their
    /// events were not processed.
    pub unknown_pages: Vec<String>,
    /// What could not be read as events, each with its reason and raw content.
    pub dropped: Vec<Dropped>,
    /// Notices about the request's business accounts (policy enforcement, app roles).
    pub notices: Vec<Notice>,
    /// Events dropped as already handled.
    pub duplicates: usize,
    /// Events left to the overlapping delivery that is handling them; when there are any, the
    /// response asks the transport to deliver again (503).
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
    /// Handles one webhook request of `source` end to end: what the source answers itself
    /// (a handshake, a refusal) is passed on; otherwise each new event, claimed by
    /// [`InboundSource::receive`], is routed and committed once routed. A routing or store
    /// failure answers 500 (the claims not committed are released) and events another
    /// delivery holds answer 503, so that the transport delivers again; see the
    /// [module docs](crate::hub) for why nothing is lost or done twice.
    pub async fn handle<S>(&self, source: &S, request: &Request<Bytes>) -> HubResponse
    where
        S: InboundSource + ?Sized,
    {
        let batch = match source.receive(request).await {
            Reception::Batch(batch) => batch,
            Reception::Answered { response, error } => {
                return HubResponse::bare(response, error.map(HubError::Store));
            }
        };
        let mut out = HubResponse::bare(source.respond(Outcome::Handled), None);
        out.unknown_pages = batch.unknown_pages;
        out.dropped = batch.dropped;
        out.notices = batch.notices;
        out.duplicates = batch.duplicates;
        out.in_flight = batch.in_flight;
        out.routed.reserve(batch.events.len());
        let mut events = batch.events.into_iter();
        while let Some(event) = events.next() {
            let result = async {
                let routed = self.route(&event).await?;
                source.commit(&event).await?;
                Ok::<_, HubError>(routed)
            }
            .await;
            match result {
                Ok(r) => out.routed.push((event, r)),
                Err(e) => {
                    tracing::error!(error = %e, key = %event.key, "routing failed; the transport will deliver the batch again");
                    // This event and the ones after it were claimed and not committed: give
                    // them back, so the redelivery routes them at once.
                    let unrouted: Vec<Inbound> = std::iter::once(event).chain(events).collect();
                    if let Err(release) = source.release(&unrouted).await {
                        tracing::warn!(error = %release, "releasing the claims failed; the redelivery routes them once the lease ends");
                    }
                    out.response = source.respond(Outcome::Failed);
                    out.error = Some(e);
                    return out;
                }
            }
        }
        if out.in_flight > 0 {
            out.response = source.respond(Outcome::InFlight);
        }
        out
    }
}
