//! How a host plugs its mailer in as a transport, and lets agents reply by e-mail.
//!
//! The host already sends mail (SMTP through lettre, an API like Postmark or SES). The adapter
//! implements `Transport` for it: it renders the message (choices become a list, links stay
//! links) and maps the mailer's failures onto the crate's `DeliveryError` kinds, so that the
//! support inbox shows why a reply did not go and campaigns know what to retry.
//!
//! ```sh
//! cargo run --example email_transport
//! ```

use std::{error::Error, fmt, sync::Arc};

use async_trait::async_trait;
use tidings::{
    clock::{Clock, SystemClock},
    contact::{Address, Channel, NewContact},
    identity::Directory,
    inbox::{Inbox, Reply, Support},
    message::{Message, Receipt},
    store::memory::{MemoryDirectory, MemoryInbox},
    transport::{Capabilities, DeliveryError, SendContext, Transport, ensure_channel},
};

/// Stand-in for the host's mailer. A real one would talk SMTP or an HTTP API.
struct HostMailer;

/// What the host's mailer reports when it cannot send.
#[derive(Debug)]
enum MailError {
    /// The server said "try later" (SMTP 4xx).
    Temporary(String),
    /// The mailbox does not exist or refuses mail (SMTP 5xx on the recipient).
    Rejected(String),
}

impl fmt::Display for MailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MailError::Temporary(s) => write!(f, "temporary: {s}"),
            MailError::Rejected(s) => write!(f, "rejected: {s}"),
        }
    }
}

impl Error for MailError {}

impl HostMailer {
    async fn send_mail(&self, to: &str, subject: &str, body: &str) -> Result<String, MailError> {
        if to.ends_with("@bounce.example") {
            return Err(MailError::Rejected("550 mailbox unavailable".into()));
        }
        if to.ends_with("@busy.example") {
            return Err(MailError::Temporary("421 too many connections".into()));
        }
        println!(
            "   [smtp] to {to}: {subject}\n{}",
            body.lines()
                .map(|l| format!("          {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        Ok(format!("<{}@mail.school.example>", to.len()))
    }
}

/// The adapter: the host's mailer as a `Transport`.
struct EmailTransport {
    mailer: HostMailer,
    channel: Channel,
}

#[async_trait]
impl Transport for EmailTransport {
    fn channel(&self) -> &Channel {
        &self.channel
    }

    fn capabilities(&self) -> Capabilities {
        // Choices are rendered as a list; no buttons, no length limit.
        Capabilities::text_only().with_choices(Message::MAX_CHOICES, None)
    }

    async fn send(
        &self,
        to: &Address,
        message: &Message,
        _ctx: &SendContext,
    ) -> Result<Receipt, DeliveryError> {
        ensure_channel(&self.channel, to)?;
        let mut body = message.text_body().to_owned();
        for (i, choice) in message.choices().iter().enumerate() {
            body.push_str(&format!("\n  {}. {}", i + 1, choice.label()));
        }
        for link in message.links() {
            body.push_str(&format!("\n{}", link.url()));
        }
        match self
            .mailer
            .send_mail(to.id(), "A message from your school", &body)
            .await
        {
            Ok(id) => Ok(Receipt::new(Channel::Email, vec![id], SystemClock.now())),
            Err(e @ MailError::Temporary(_)) => {
                Err(DeliveryError::retryable("the mail server asked to retry").with_source(e))
            }
            Err(e @ MailError::Rejected(_)) => {
                Err(DeliveryError::unreachable("the mailbox refused the message").with_source(e))
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let directory = Arc::new(MemoryDirectory::new());
    let inbox = Arc::new(MemoryInbox::new());
    let support = Support::new(directory.clone(), inbox.clone(), SystemClock::shared())
        .with_transport(Arc::new(EmailTransport {
            mailer: HostMailer,
            channel: Channel::Email,
        }));

    let ann = directory
        .create(NewContact::new().with_email("ann@example.org"))
        .await?;
    let bob = directory
        .create(NewContact::new().with_email("bob@bounce.example"))
        .await?;

    println!("1. Which transports can reach Ann? (Messenger is not linked, so only e-mail)");
    for option in support.transports_for(&ann.id).await? {
        println!("   {} available: {}", option.channel, option.available());
    }

    println!("2. An agent replies by e-mail, with choices.");
    let question = Message::builder("Which time suits you for the call?")
        .choice("Monday 10:00", "CALL_MON")
        .choice("Tuesday 15:00", "CALL_TUE")
        .build()?;
    let report = support
        .reply(
            &ann.id,
            Reply::new(question, [Channel::Email]).by("agent-7"),
        )
        .await?;
    println!("   delivered: {}", report.delivered());

    println!("3. A reply to a bouncing address is recorded as failed, with the reason.");
    let report = support
        .reply(
            &bob.id,
            Reply::new(Message::text("Welcome!")?, [Channel::Email]),
        )
        .await?;
    for d in &report.deliveries {
        println!(
            "   {} {:?}: {}",
            d.channel,
            d.status,
            d.reason.as_deref().unwrap_or("")
        );
    }
    println!(
        "   Bob's conversation has {} entry",
        inbox.conversation(&bob.id, 10).await?.len()
    );

    println!("4. A busy mail server is a temporary failure the caller may retry.");
    let cara = directory
        .create(NewContact::new().with_email("cara@busy.example"))
        .await?;
    let report = support
        .reply(
            &cara.id,
            Reply::new(Message::text("Welcome!")?, [Channel::Email]),
        )
        .await?;
    println!(
        "   {:?}: {}",
        report.deliveries[0].status,
        report.deliveries[0].reason.as_deref().unwrap_or("")
    );
    Ok(())
}
