//! Live updates for the desk: a broadcast of what happened, as server-sent events.

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{
    extract::State,
    response::sse::{Event, KeepAlive, Sse},
};
use futures_util::Stream;
use serde_json::Value;
use tokio::sync::{broadcast, watch};

use super::{WebhookObserver, agent::ApiRef, views::EntryView};
use crate::{
    contact::ContactId,
    hub::{HubResponse, Routed},
    identity::Directory,
    inbox::{Entry, Inbox},
    newsletter::{CampaignId, Progress},
};

/// Events kept for a slow reader before it is told to reload.
const BUFFER: usize = 1024;

/// One live update, sent as a server-sent event named by its kind.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    name: &'static str,
    data: Value,
}

impl LiveEvent {
    /// A new entry in `contact`'s conversation (`message`).
    pub fn message(contact: &ContactId, entry: &Entry) -> Self {
        LiveEvent {
            name: "message",
            data: serde_json::json!({"contact_id": contact, "entry": EntryView::of(entry)}),
        }
    }

    /// Delivery statuses of `contact`'s conversation moved (`receipt`): read it again.
    pub fn receipt(contact: &ContactId) -> Self {
        LiveEvent {
            name: "receipt",
            data: serde_json::json!({"contact_id": contact}),
        }
    }

    /// A campaign's progress (`campaign`).
    pub fn campaign(id: &CampaignId, progress: &Progress) -> Self {
        LiveEvent {
            name: "campaign",
            data: serde_json::json!({"id": id, "progress": progress}),
        }
    }

    /// The event's name.
    pub fn name(&self) -> &str {
        self.name
    }

    /// The event's JSON data.
    pub fn data(&self) -> &Value {
        &self.data
    }
}

/// The broadcast every `GET /events` stream reads, and the switch that ends them all.
#[derive(Debug, Clone)]
pub(super) struct Live {
    events: broadcast::Sender<LiveEvent>,
    closed: watch::Sender<bool>,
}

impl Live {
    pub(super) fn new() -> Self {
        Live {
            events: broadcast::Sender::new(BUFFER),
            closed: watch::Sender::new(false),
        }
    }

    pub(super) fn publish(&self, event: LiveEvent) {
        // No reader is not an error: nobody has the desk open.
        let _ = self.events.send(event);
    }

    pub(super) fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.events.subscribe()
    }

    /// Ends every open stream, and every stream opened from now on at once: a server shutting
    /// down gracefully waits for its connections, and a desk keeps its stream open for good.
    pub(super) fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Whether [`close`](Live::close) was called.
    pub(super) fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }
}

/// `GET /events`: the live updates as server-sent events. A reader that falls behind gets a
/// `resync` event (reload everything) instead of a gap it cannot see.
pub(super) async fn events(
    State(api): State<ApiRef>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = api.live().subscribe();
    let closed = api.live().closed.subscribe();
    let stream = futures_util::stream::unfold(
        (receiver, closed),
        |(mut receiver, mut closed)| async move {
            let received = tokio::select! {
                biased;
                // Closed (or the sender gone with the API): the stream ends.
                _ = closed.wait_for(|closed| *closed) => return None,
                received = receiver.recv() => received,
            };
            let event = match received {
                Ok(e) => Event::default().event(e.name).data(e.data.to_string()),
                Err(broadcast::error::RecvError::Lagged(missed)) => Event::default()
                    .event("resync")
                    .data(serde_json::json!({"missed": missed}).to_string()),
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((Ok(event), (receiver, closed)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Turns what the Hub routed into live updates.
pub(super) fn observer(
    live: Live,
    directory: Arc<dyn Directory>,
    inbox: Arc<dyn Inbox>,
) -> impl WebhookObserver {
    move |response: &HubResponse| {
        let routed: Vec<_> = response
            .routed
            .iter()
            .filter(|(_, r)| {
                matches!(
                    r,
                    Routed::Inbox { .. }
                        | Routed::Standby { entry: Some(_) }
                        | Routed::Annotated { entry: Some(_), .. }
                ) || matches!(r, Routed::Receipt { updated } if *updated > 0)
            })
            .cloned()
            .collect();
        if routed.is_empty() {
            return;
        }
        let (live, directory, inbox) = (live.clone(), directory.clone(), inbox.clone());
        tokio::spawn(async move {
            for (event, routed) in routed {
                let (contact, entry) = match &routed {
                    Routed::Inbox { contact, entry, .. } => (Some(contact.clone()), Some(entry)),
                    // A reaction or an edit: the entry it changed, shown again.
                    Routed::Annotated {
                        contact,
                        entry: Some(entry),
                    } => (Some(contact.clone()), Some(entry)),
                    Routed::Standby { entry } => (None, entry.as_ref()),
                    _ => (None, None),
                };
                let contact = match contact {
                    Some(c) => c,
                    None => match directory.find_by_address(&event.from).await {
                        Ok(Some(c)) => c.id,
                        _ => continue,
                    },
                };
                match entry {
                    Some(entry) => {
                        let recent = inbox.conversation(&contact, 50).await.unwrap_or_default();
                        if let Some(e) = recent.iter().find(|e| &e.id == entry) {
                            live.publish(LiveEvent::message(&contact, e));
                        }
                    }
                    None => live.publish(LiveEvent::receipt(&contact)),
                }
            }
        });
    }
}
