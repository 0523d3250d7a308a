//! Quickstart: a platform connects a user's Messenger through an m.me link, the Hub routes what
//! they write into the support inbox, an agent answers with choices through the Messenger
//! transport, and a later notice falls back to e-mail once Messenger's window has closed.
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
    contact::{Address, Channel, NewContact},
    hub::{Hub, Routed},
    identity::{ConnectOutcome, ConnectPolicy, Connector, Directory},
    inbox::{DeliveryRecord, EntryContent, Inbox, Outgoing},
    message::{Message, Receipt},
    messenger::{
        AppSecret, MessengerTransport, PageAccessToken, PageConfig, StaticPages, VerifyToken,
        Webhook, link::connect_link,
    },
    secrecy::SecretSlice,
    store::memory::{MemoryDirectory, MemoryInbox, MemoryLastInbound, MemorySeenEvents},
    testkit::{graph::FakeGraph, user::FakeUser},
    token::{TokenKey, Tokens},
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

/// Posts a simulated user's webhook body, signed like Meta signs it, to the Hub.
async fn deliver(
    hub: &Hub,
    webhook: &Webhook,
    body: &serde_json::Value,
    secret: &AppSecret,
) -> Result<(), Box<dyn Error>> {
    let bytes = serde_json::to_vec(body)?;
    let request = http::Request::post("/webhook")
        .header("X-Hub-Signature-256", FakeUser::sign(&bytes, secret))
        .body(Bytes::from(bytes))?;
    let handled = hub.handle(webhook, &request).await;
    println!("   webhook answered {}", handled.response.status());
    for (_, routed) in &handled.routed {
        println!("   routed: {}", describe(routed));
    }
    Ok(())
}

fn describe(routed: &Routed) -> String {
    match routed {
        Routed::Connected(ConnectOutcome::Linked { contact }) => {
            format!("linked to contact {}", contact.id)
        }
        Routed::Connected(other) => format!("connect: {other:?}"),
        Routed::Inbox { contact, entry, .. } => format!("inbox entry {entry} of contact {contact}"),
        other => format!("{other:?}"),
    }
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
    let directory = Arc::new(MemoryDirectory::new());
    let inbox = Arc::new(MemoryInbox::new());
    let seen = Arc::new(MemorySeenEvents::new());
    let last_inbound = Arc::new(MemoryLastInbound::new());
    let page =
        PageConfig::new(PAGE, PageAccessToken::new("page-token")).with_username("rustschool");
    let pages = Arc::new(StaticPages::new([page.clone()]));
    let messenger = MessengerTransport::builder(pages.clone(), last_inbound.clone())
        .base_url(graph.base_url())
        .app_secret(app_secret.clone())
        .clock(clock.shared())
        .build()?;
    let webhook = Webhook::builder(
        app_secret.clone(),
        VerifyToken::new("verify-me"),
        pages,
        seen.clone(),
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

    let messenger: SharedTransport = Arc::new(messenger);
    let connector = Connector::new(
        directory.clone(),
        seen.clone(),
        tokens,
        clock.shared(),
        ConnectPolicy::new(),
    );
    let hub = Hub::builder(connector.clone(), directory.clone(), inbox.clone())
        .reply_transport(messenger.clone())
        .confirmation(Message::text(
            "You're connected: your school's messages will arrive here.",
        )?)
        .build();

    println!("1. The platform knows Ann by e-mail and shows her a connect link.");
    let ann = directory
        .create(
            NewContact::new()
                .with_email("ann@example.org")
                .with_name("Ann", "Lee"),
        )
        .await?;
    let token = connector.connect_token(&ann.id, Some(PAGE))?;
    println!("   {}", connect_link(&page, &token));

    println!("2. She taps it on her phone: Messenger sends the ref with Get Started.");
    // Meta's side sees the tap, which opens the 24-hour window.
    graph.user_wrote(PAGE, PSID, clock.now());
    let body = ann_on_messenger.get_started_with_ref("m_gs1", token.expose_secret(), clock.now());
    deliver(&hub, &webhook, &body, &app_secret).await?;
    if let Some(text) = graph
        .sent()
        .last()
        .and_then(|s| s.text().map(str::to_owned))
    {
        println!("   the Hub confirmed on Messenger: {text:?}");
    }

    println!("3. She writes; the Hub puts it in the support inbox.");
    clock.advance(Duration::from_secs(60));
    graph.user_wrote(PAGE, PSID, clock.now());
    let body = ann_on_messenger.text("m_1", "Is lesson 3 out yet?", clock.now());
    deliver(&hub, &webhook, &body, &app_secret).await?;

    println!("4. An agent answers with choices; Messenger delivers it.");
    let ann = directory.get(&ann.id).await?.ok_or("Ann vanished")?;
    let mut addresses = ann.addresses.clone();
    addresses.push(Address::email(ann.email.clone().unwrap_or_default())?);
    let transports: [SharedTransport; 2] = [messenger, mailer];
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
