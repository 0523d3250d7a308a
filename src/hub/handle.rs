//! [`Hub::handle`]: one webhook request of any [`InboundSource`], end to end.

use bytes::Bytes;
use http::{Request, Response};
use tracing::Instrument;

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
        let span = tracing::info_span!(
            "webhook_request",
            events = tracing::field::Empty,
            status = tracing::field::Empty
        );
        let out = self
            .handle_in_span(source, request, &span)
            .instrument(span.clone())
            .await;
        span.record("status", out.response.status().as_u16());
        out
    }

    async fn handle_in_span<S>(
        &self,
        source: &S,
        request: &Request<Bytes>,
        span: &tracing::Span,
    ) -> HubResponse
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
        let events = batch.events;
        span.record("events", events.len());
        let routed = self.route_all(source, &events).await;
        out.routed.reserve(events.len());
        let mut unrouted = Vec::new();
        for (event, result) in events.into_iter().zip(routed) {
            match result {
                Some(Ok(r)) => out.routed.push((event, r)),
                Some(Err(e)) => {
                    tracing::error!(error = %e, key = %event.key, "routing failed; the transport will deliver the batch again");
                    out.error.get_or_insert(e);
                    unrouted.push(event);
                }
                None => unrouted.push(event),
            }
        }
        if !unrouted.is_empty() {
            // Claimed and not committed: give them back, so the redelivery routes them at once.
            if let Err(release) = source.release(&unrouted).await {
                tracing::warn!(error = %release, "releasing the claims failed; the redelivery routes them once the lease ends");
            }
            out.response = source.respond(Outcome::Failed);
            return out;
        }
        if out.in_flight > 0 {
            out.response = source.respond(Outcome::InFlight);
        }
        out
    }
}

impl Hub {
    /// Routes and commits `events`: those of one sender in order, one after the other, and
    /// the senders side by side, so that a store that batches concurrent writes (the SQLite
    /// stores' group commit, a connection pool) takes a batch of many people in a few
    /// transactions. Each event's result is at its index; `None` for an event not routed
    /// because an earlier event of the same sender failed.
    async fn route_all<S>(
        &self,
        source: &S,
        events: &[Inbound],
    ) -> Vec<Option<Result<Routed, HubError>>>
    where
        S: InboundSource + ?Sized,
    {
        let mut results: Vec<Option<Result<Routed, HubError>>> =
            std::iter::repeat_with(|| None).take(events.len()).collect();
        let route_group = |group: Vec<usize>| async move {
            let mut done = Vec::with_capacity(group.len());
            for i in group {
                let event = &events[i];
                let result = async {
                    let routed = self.route(event).await?;
                    source.commit(event).await?;
                    Ok::<_, HubError>(routed)
                }
                .instrument(
                    tracing::info_span!("route", key = %event.key, channel = %event.channel()),
                )
                .await;
                let failed = result.is_err();
                done.push((i, result));
                if failed {
                    // The sender's later events wait for the redelivery, in order.
                    break;
                }
            }
            done
        };
        let done =
            futures_util::future::join_all(by_sender(events).into_iter().map(route_group)).await;
        for (i, result) in done.into_iter().flatten() {
            results[i] = Some(result);
        }
        results
    }
}

/// The indexes of `events` grouped by sender, each group in request order, the groups in the
/// order of their first event.
fn by_sender(events: &[Inbound]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut index: std::collections::HashMap<&crate::contact::Address, usize> =
        std::collections::HashMap::new();
    for (i, event) in events.iter().enumerate() {
        match index.get(&event.from) {
            Some(&g) => groups[g].push(i),
            None => {
                index.insert(&event.from, groups.len());
                groups.push(vec![i]);
            }
        }
    }
    groups
}
