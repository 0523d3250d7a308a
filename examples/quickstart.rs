//! Quickstart: connect a user's Messenger, message them with answer choices, fall back to
//! e-mail when Messenger cannot deliver, and read the conversation back. Runs offline: the
//! transports here print instead of calling the Graph API or a mail server.
//!
//! ```sh
//! cargo run --example quickstart
//! ```

use std::{error::Error, sync::Arc, time::Duration};

use async_trait::async_trait;
use tidings::{
    clock::{Clock, ManualClock, Timestamp},
    contact::{Address, Channel, NewContact},
    identity::Directory,
    inbox::{DeliveryRecord, EntryContent, Inbox, Incoming, Outgoing},
    message::{Message, Receipt},
    secrecy::SecretSlice,
    segment::{Segment, SegmentQuery},
    store::memory::{MemoryDirectory, MemoryInbox},
    token::{Purpose, TokenKey, Tokens},
    transport::{
        Capabilities, DeliveryError, Fallback, SendContext, SharedTransport, Transport,
        ensure_channel, fallback::AttemptFailure,
    },
};

/// A transport that prints what it would send: how a host plugs its own channel in.
struct ConsoleTransport {
    channel: Channel,
    clock: ManualClock,
    /// When set, every send is refused with this error (to show the fallback).
    refuse: Option<DeliveryError>,
}

#[async_trait]
impl Transport for ConsoleTransport {
    fn channel(&self) -> &Channel {
        &self.channel
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::text_only()
            .with_choices(3, Some(20))
            .with_buttons(3)
    }

    async fn send(
        &self,
        to: &Address,
        message: &Message,
        _ctx: &SendContext,
    ) -> Result<Receipt, DeliveryError> {
        ensure_channel(&self.channel, to)?;
        self.capabilities().check(message)?;
        if let Some(e) = &self.refuse {
            return Err(e.clone());
        }
        let choices: Vec<&str> = message.choices().iter().map(|c| c.label()).collect();
        println!(
            "  [{}] → {to}: {:?} {choices:?}",
            self.channel,
            message.text_body()
        );
        Ok(Receipt::new(
            self.channel.clone(),
            vec![format!("{}-mid-1", self.channel)],
            self.clock.now(),
        ))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let clock = ManualClock::new(Timestamp::from_secs(1_764_000_000));
    let directory = Arc::new(MemoryDirectory::new());
    let inbox = MemoryInbox::new();
    // In production the key comes from the host's secret store.
    let key = TokenKey::new(
        1,
        SecretSlice::from(b"quickstart-demo-key-0123456789abcdef".to_vec()),
    )?;
    let tokens = Tokens::new(key).with_clock(clock.shared());

    println!("1. The platform knows Ann by e-mail.");
    let ann = directory
        .create(
            NewContact::new()
                .with_email("ann@example.org")
                .with_name("Ann", "Lee")
                .with_tag("rust-course"),
        )
        .await?;
    println!("   contact {}", ann.id);

    println!("2. Ann clicks her connect link; Messenger reports the ref.");
    let token = tokens.issue(
        &Purpose::CONNECT,
        ann.id.as_str(),
        Duration::from_secs(15 * 60),
    )?;
    println!(
        "   https://m.me/rustschool?ref={}  ({} chars)",
        token.expose_secret(),
        token.len()
    );
    let claims = tokens.verify(&token, &Purpose::CONNECT)?;
    let psid = Address::messenger("104812345678901", "6789012345678901")?;
    directory
        .link(&tidings::ContactId::new(claims.subject())?, &psid)
        .await?;
    println!("   linked {psid}");

    println!("3. She writes; the message lands in the inbox.");
    inbox
        .record_incoming(
            &ann.id,
            clock.now(),
            Incoming::new(Channel::Messenger)
                .with_message_id("m_1")
                .with_text("Is lesson 3 out?"),
        )
        .await?;

    println!("4. An agent answers with choices over Messenger.");
    let messenger = Arc::new(ConsoleTransport {
        channel: Channel::Messenger,
        clock: clock.clone(),
        refuse: None,
    });
    let email = Arc::new(ConsoleTransport {
        channel: Channel::Email,
        clock: clock.clone(),
        refuse: None,
    });
    let ann = directory.get(&ann.id).await?.ok_or("Ann vanished")?;
    let mut addresses = ann.addresses.clone();
    addresses.push(Address::email(ann.email.clone().unwrap_or_default())?);
    let reply = Message::builder("Yes! Start now?")
        .choice("Start", "L3_START")
        .choice("Later", "L3_LATER")
        .build()?;
    let fallback = Fallback::new([
        messenger as SharedTransport,
        email.clone() as SharedTransport,
    ]);
    let delivered = fallback
        .send(&addresses, &reply, &SendContext::agent_reply())
        .await?;
    inbox
        .record_outgoing(
            &ann.id,
            clock.now(),
            Outgoing::new(reply)
                .with_author("agent-7")
                .with_delivery(DeliveryRecord::sent(
                    delivered.receipt.channel.clone(),
                    delivered.receipt.message_ids.clone(),
                )),
        )
        .await?;

    println!("5. Eight days later Messenger's window is closed: the notice falls back to e-mail.");
    clock.advance(Duration::from_secs(8 * 24 * 3600));
    let closed = Arc::new(ConsoleTransport {
        channel: Channel::Messenger,
        clock: clock.clone(),
        refuse: Some(DeliveryError::window_closed("last message 8 days ago")),
    });
    let fallback = Fallback::new([closed as SharedTransport, email as SharedTransport]);
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
        delivered.receipt.channel.clone(),
        delivered.receipt.message_ids.clone(),
    ));
    inbox.record_outgoing(&ann.id, clock.now(), entry).await?;

    println!("6. The conversation, with the transport of each message:");
    for e in inbox.conversation(&ann.id, 50).await? {
        match &e.content {
            EntryContent::Incoming(i) => println!(
                "   {} ann   via {}: {}",
                e.at,
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
                    "   {} agent [{}]: {}",
                    e.at,
                    routes.join(", "),
                    o.message.text_body()
                );
            }
            _ => {}
        }
    }

    let segment =
        Segment::from_json(r#"{"all":[{"tag":"rust-course"},{"has_address":"messenger"}]}"#)?;
    let page = directory.page(&segment, None, 100).await?;
    println!(
        "7. Segment 'rust-course on Messenger': {} contact(s).",
        page.contacts.len()
    );
    Ok(())
}
