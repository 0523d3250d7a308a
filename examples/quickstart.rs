//! Quickstart: a platform connects a user's Messenger, receives what they write through the
//! signed webhook, answers with choices through the Messenger transport, and falls back to
//! e-mail once Messenger's window has closed.
//!
//! No Facebook account needed: the Send API is the crate's fake Graph API on loopback, and a
//! simulated user posts signed webhook bodies.
//!
//! ```sh
//! cargo run --example quickstart --features testkit
//! ```

use std::{error::Error, sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use tidings::{
    clock::{Clock, ManualClock, Timestamp},
    contact::{Address, Channel, ContactId, NewContact},
    identity::Directory,
    inbox::{DeliveryRecord, EntryContent, Inbox, Incoming, Outgoing},
    message::{InboundKind, Message, Receipt},
    messenger::{
        AppSecret, MessengerTransport, PageAccessToken, PageConfig, StaticPages, VerifyToken,
        Webhook,
    },
    secrecy::SecretSlice,
    store::memory::{MemoryDirectory, MemoryInbox, MemoryLastInbound, MemorySeenEvents},
    testkit::{graph::FakeGraph, user::FakeUser},
    token::{Purpose, TokenKey, Tokens},
    transport::{
        Capabilities, DeliveryError, Fallback, SendContext, SharedTransport, Transport,
        ensure_channel, fallback::AttemptFailure,
    },
};

const PAGE: &str = "104812345678901";
const PSID: &str = "6789012345678901";

/// The host's mailer, plugged in as a transport (here it prints).
struct Mailer {
    channel: Channel,
    clock: ManualClock,
}

#[async_trait]
impl Transport for Mailer {
    fn channel(&self) -> &Channel {
        &self.channel
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::text_only()
    }

    async fn send(
        &self,
        to: &Address,
        message: &Message,
        _ctx: &SendContext,
    ) -> Result<Receipt, DeliveryError> {
        ensure_channel(&self.channel, to)?;
        println!("   [mail] to {}: {}", to.id(), message.text_body());
        Ok(Receipt::new(
            Channel::Email,
            vec!["mail-1".into()],
            self.clock.now(),
        ))
    }
}

/// Posts a simulated user's webhook body, signed like Meta signs it, to the webhook.
async fn deliver(
    webhook: &Webhook,
    body: &serde_json::Value,
    secret: &AppSecret,
) -> Result<Vec<tidings::Inbound>, Box<dyn Error>> {
    let bytes = serde_json::to_vec(body)?;
    let request = http::Request::post("/webhook")
        .header("X-Hub-Signature-256", FakeUser::sign(&bytes, secret))
        .body(Bytes::from(bytes))?;
    let handled = webhook.handle(&request).await;
    println!("   webhook answered {}", handled.response.status());
    Ok(handled.batch.map(|b| b.events).unwrap_or_default())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let clock = ManualClock::new(Timestamp::from_secs(1_764_000_000));
    let app_secret = AppSecret::new("quickstart-app-secret");

    // Meta's side, simulated: the Graph API on loopback and a Messenger user.
    let graph = FakeGraph::builder()
        .page(PAGE, "page-token")
        .app_secret(app_secret.clone())
        .clock(clock.shared())
        .start()
        .await?;
    let ann_on_messenger = FakeUser::new(PAGE, PSID);

    // The platform's side: stores, the Messenger transport and webhook, a mailer.
    let directory = MemoryDirectory::new();
    let inbox = MemoryInbox::new();
    let last_inbound = Arc::new(MemoryLastInbound::new());
    let pages = Arc::new(StaticPages::new([PageConfig::new(
        PAGE,
        PageAccessToken::new("page-token"),
    )
    .with_username("rustschool")]));
    let messenger = MessengerTransport::builder(pages.clone(), last_inbound.clone())
        .base_url(graph.base_url())
        .app_secret(app_secret.clone())
        .clock(clock.shared())
        .build()?;
    let webhook = Webhook::builder(
        app_secret.clone(),
        VerifyToken::new("verify-me"),
        pages,
        Arc::new(MemorySeenEvents::new()),
        last_inbound,
    )
    .clock(clock.shared())
    .build();
    let mailer = Arc::new(Mailer {
        channel: Channel::Email,
        clock: clock.clone(),
    });
    // In production the key comes from the host's secret store.
    let tokens = Tokens::new(TokenKey::new(
        1,
        SecretSlice::from(b"quickstart-demo-key-0123456789abcdef".to_vec()),
    )?)
    .with_clock(clock.shared());

    println!("1. The platform knows Ann by e-mail and shows her a connect link.");
    let ann = directory
        .create(
            NewContact::new()
                .with_email("ann@example.org")
                .with_name("Ann", "Lee"),
        )
        .await?;
    let token = tokens.issue(
        &Purpose::CONNECT,
        ann.id.as_str(),
        Duration::from_secs(15 * 60),
    )?;
    println!("   https://m.me/rustschool?ref={}", token.expose_secret());

    println!("2. She taps it on her phone: Messenger sends the ref with Get Started.");
    let body = ann_on_messenger.get_started_with_ref("m_gs1", token.expose_secret(), clock.now());
    for event in deliver(&webhook, &body, &app_secret).await? {
        if let InboundKind::Referral { reference, .. } = &event.kind {
            let claims = tokens.verify(reference.expose_secret(), &Purpose::CONNECT)?;
            directory
                .link(&ContactId::new(claims.subject())?, &event.from)
                .await?;
            println!("   linked {} to contact {}", event.from, claims.subject());
        }
    }

    println!("3. She writes; the message lands in the support inbox.");
    clock.advance(Duration::from_secs(60));
    graph.user_wrote(PAGE, PSID, clock.now());
    let body = ann_on_messenger.text("m_1", "Is lesson 3 out yet?", clock.now());
    for event in deliver(&webhook, &body, &app_secret).await? {
        let Some(contact) = directory.find_by_address(&event.from).await? else {
            continue;
        };
        if let InboundKind::Text { message_id, text } = &event.kind {
            inbox
                .record_incoming(
                    &contact.id,
                    event.at,
                    Incoming::new(Channel::Messenger)
                        .with_message_id(message_id)
                        .with_text(text),
                )
                .await?;
        }
    }

    println!("4. An agent answers with choices; Messenger delivers it.");
    let ann = directory.get(&ann.id).await?.ok_or("Ann vanished")?;
    let mut addresses = ann.addresses.clone();
    addresses.push(Address::email(ann.email.clone().unwrap_or_default())?);
    let transports: [SharedTransport; 2] = [Arc::new(messenger), mailer];
    let fallback = Fallback::new(transports);
    let reply = Message::builder("Yes! Start it now?")
        .choice("Start", "L3_START")
        .choice("Later", "L3_LATER")
        .build()?;
    let delivered = fallback
        .send(&addresses, &reply, &SendContext::agent_reply())
        .await?;
    let sent = graph.sent();
    println!(
        "   Graph received {} message(s), the last as {}",
        sent.len(),
        sent[sent.len() - 1]
            .messaging_type
            .as_deref()
            .unwrap_or("?")
    );
    inbox
        .record_outgoing(
            &ann.id,
            clock.now(),
            Outgoing::new(reply)
                .with_author("agent-7")
                .with_delivery(DeliveryRecord::sent(
                    delivered.receipt.channel,
                    delivered.receipt.message_ids,
                )),
        )
        .await?;

    println!("5. Eight days later Messenger's window is closed: the notice goes by e-mail.");
    clock.advance(Duration::from_secs(8 * 24 * 3600));
    let notice = Message::text("Lesson 4 is open.")?;
    let delivered = fallback
        .send(&addresses, &notice, &SendContext::update())
        .await?;
    let mut entry = Outgoing::new(notice);
    for attempt in &delivered.passed_over {
        if let AttemptFailure::Failed(e) = &attempt.failure {
            println!("   {} refused: {e}", attempt.channel);
            entry = entry.with_delivery(DeliveryRecord::refused(
                attempt.channel.clone(),
                e.to_string(),
            ));
        }
    }
    entry = entry.with_delivery(DeliveryRecord::sent(
        delivered.receipt.channel,
        delivered.receipt.message_ids,
    ));
    inbox.record_outgoing(&ann.id, clock.now(), entry).await?;

    println!("6. The conversation, with the transport of each message:");
    for e in inbox.conversation(&ann.id, 50).await? {
        match &e.content {
            EntryContent::Incoming(i) => println!(
                "   ann   via {}: {}",
                i.channel,
                i.text.as_deref().unwrap_or("")
            ),
            EntryContent::Outgoing(o) => {
                let routes: Vec<String> = o
                    .deliveries
                    .iter()
                    .map(|d| format!("{}={:?}", d.channel, d.status))
                    .collect();
                println!(
                    "   agent [{}]: {}",
                    routes.join(", "),
                    o.message.text_body()
                );
            }
            _ => {}
        }
    }
    Ok(())
}
