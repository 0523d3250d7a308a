//! A second transport reaches the Hub through the core's `InboundSource` seam alone: a toy
//! SMS gateway webhook, written here as a host would, served by the ready router on loopback.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tidings::{
    StoreError,
    axum::WebhookRouter,
    clock::Timestamp,
    contact::{Address, Channel, ContactId, CustomChannel, NewContact},
    hub::Hub,
    identity::{Connector, Directory},
    inbound::{InboundBatch, InboundSource, Outcome, Reception},
    inbox::{EntryContent, Inbox},
    keys::SigningKey,
    message::{Inbound, InboundKind},
    secrecy::SecretSlice,
    seen::{Claim, SeenEvents},
    store::memory::{MemoryDirectory, MemoryInbox, MemorySeenEvents},
    token::Tokens,
};

const LEASE: Duration = Duration::from_secs(60);
const TTL: Duration = Duration::from_secs(3600);

fn sms() -> Channel {
    Channel::Custom(CustomChannel::new("sms").unwrap())
}

/// The gateway posts `{"messages": [{"id", "from", "text"}]}`; a message that is not readable
/// is dropped, the rest go on.
struct SmsGateway {
    seen: Arc<MemorySeenEvents>,
}

#[async_trait]
impl InboundSource for SmsGateway {
    async fn receive(&self, request: &Request<Bytes>) -> Reception {
        let refuse = |status: StatusCode| Reception::Answered {
            response: Response::builder()
                .status(status)
                .body(Bytes::new())
                .unwrap(),
            error: None,
        };
        let Ok(body) = serde_json::from_slice::<Value>(request.body()) else {
            return refuse(StatusCode::BAD_REQUEST);
        };
        let Some(messages) = body["messages"].as_array() else {
            return refuse(StatusCode::BAD_REQUEST);
        };
        let mut batch = InboundBatch::default();
        let now = Timestamp::from_millis(1_764_000_000_000);
        for m in messages {
            let (Some(id), Some(from), Some(text)) =
                (m["id"].as_str(), m["from"].as_str(), m["text"].as_str())
            else {
                batch.dropped.push(tidings::inbound::Dropped::new(
                    "gateway",
                    "message",
                    "no id, sender or text",
                ));
                continue;
            };
            let key = format!("sms:{id}");
            match self.seen.claim(&key, now, LEASE).await {
                Ok(Claim::Acquired) => {}
                Ok(Claim::Done) => {
                    batch.duplicates += 1;
                    continue;
                }
                Ok(_) => {
                    batch.in_flight += 1;
                    continue;
                }
                Err(e) => {
                    return Reception::Answered {
                        response: self.respond(Outcome::Failed),
                        error: Some(e),
                    };
                }
            }
            batch.events.push(Inbound::new(
                key,
                Address::new(sms(), None, from).unwrap(),
                now,
                InboundKind::Text {
                    message_id: id.to_owned(),
                    text: text.to_owned(),
                },
            ));
        }
        Reception::Batch(batch)
    }

    async fn commit(&self, event: &Inbound) -> Result<(), StoreError> {
        let now = Timestamp::from_millis(1_764_000_000_000);
        self.seen.settle(&event.key, now, TTL).await
    }

    async fn release(&self, events: &[Inbound]) -> Result<(), StoreError> {
        for event in events {
            self.seen.forget(&event.key).await?;
        }
        Ok(())
    }
}

async fn serve(hub: Arc<Hub>, source: Arc<dyn InboundSource>) -> String {
    let app: axum::Router =
        axum::Router::new().nest("/sms", WebhookRouter::new(hub, source).into_router());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let url = format!("http://{}/sms", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn post(url: &str, body: &Value) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_host_transport_routes_into_the_inbox_through_the_core_seam() {
    let directory = Arc::new(MemoryDirectory::new());
    let inbox = Arc::new(MemoryInbox::new());
    let seen = Arc::new(MemorySeenEvents::new());
    let tokens = Tokens::new(SigningKey::new(1, SecretSlice::from(vec![9u8; 32])).unwrap());
    let connector = Connector::builder(directory.clone(), seen.clone(), tokens).build();
    let ann: ContactId = directory
        .create(NewContact::new().with_email("ann@example.org"))
        .await
        .unwrap()
        .id;
    directory
        .link(&ann, &Address::new(sms(), None, "+4915112345678").unwrap())
        .await
        .unwrap();
    let hub = Arc::new(Hub::builder(connector, directory.clone(), inbox.clone()).build());
    let gateway = Arc::new(SmsGateway { seen: seen.clone() });
    let url = serve(hub, gateway).await;

    let body = json!({"messages": [
        {"id": "s1", "from": "+4915112345678", "text": "hello by SMS"},
        {"id": "s2", "from": "+4915112345678"},
        {"id": "s3", "from": "+4915112345678", "text": "and again"},
    ]});
    assert_eq!(post(&url, &body).await, (200, "OK".to_owned()));
    let texts: Vec<String> = inbox
        .conversation(&ann, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| match e.content {
            EntryContent::Incoming(i) => {
                assert_eq!(i.channel, sms(), "the entry shows the transport it came by");
                i.text.unwrap()
            }
            other => panic!("only incoming entries: {other:?}"),
        })
        .collect();
    assert_eq!(
        texts,
        ["hello by SMS", "and again"],
        "the unreadable one cost nothing"
    );

    // The gateway delivers again: handled once, acknowledged.
    assert_eq!(post(&url, &body).await.0, 200);
    assert_eq!(inbox.conversation(&ann, 10).await.unwrap().len(), 2);

    // A message another request holds: the source's answer for it is the core's 503.
    let now = Timestamp::from_millis(1_764_000_000_000);
    seen.claim("sms:s4", now, LEASE).await.unwrap();
    let held = json!({"messages": [{"id": "s4", "from": "+4915112345678", "text": "held"}]});
    assert_eq!(post(&url, &held).await.0, 503);
    assert_eq!(post(&url, &json!({"nope": 1})).await.0, 400);
}
