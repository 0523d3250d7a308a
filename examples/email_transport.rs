//! E-mail as a transport, and agents replying by e-mail through `Support`.
//!
//! With SMTP settings in the environment the example sends through the crate's SMTP transport,
//! `tidings::email::EmailTransport` (feature `email`):
//!
//! ```sh
//! SMTP_HOST=smtp.school.example SMTP_USER=courses@school.example SMTP_PASSWORD=... \
//! SMTP_FROM=courses@school.example EMAIL_TO=you@example.org \
//!     cargo run --example email_transport --features email
//! ```
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `SMTP_HOST` | the relay; without it the stand-in below is used | |
//! | `SMTP_PORT` | its port | by `SMTP_TLS`: 25, 587, 465 |
//! | `SMTP_TLS` | `none`, `starttls` or `implicit` | `starttls` |
//! | `SMTP_USER`, `SMTP_PASSWORD` | credentials, if the relay wants them | none |
//! | `SMTP_FROM`, `SMTP_FROM_NAME` | the sender | `courses@school.example` |
//! | `EMAIL_TO` | Ann's address, where step 2 sends | `ann@example.org` |
//!
//! Without `SMTP_HOST` it says so and uses a stand-in: how a host plugs in a mailer of its own
//! (an HTTP API like Postmark or SES) by implementing `Transport`, rendering the message and
//! mapping the mailer's failures onto the crate's `DeliveryError` kinds, so that the support
//! inbox shows why a reply did not go and campaigns know what to retry.

use std::{error::Error, fmt, sync::Arc};

use async_trait::async_trait;
use tidings::{
    clock::{Clock, SystemClock},
    contact::{Address, Channel, NewContact},
    email::{EmailTransport, SmtpCredentials, TlsMode},
    identity::Directory,
    inbox::{Inbox, Reply, Support},
    message::{Message, Receipt},
    store::memory::{MemoryDirectory, MemoryInbox},
    transport::{
        Capabilities, DeliveryError, Intent, SendContext, SharedTransport, Transport,
        ensure_channel,
    },
};

/// The SMTP transport when `SMTP_HOST` is set, else the stand-in.
fn email_transport() -> Result<SharedTransport, Box<dyn Error>> {
    let Ok(host) = std::env::var("SMTP_HOST") else {
        println!(
            "No SMTP_HOST set: using a stand-in mailer that prints what it would send.\n\
             Set SMTP_HOST (and SMTP_PORT, SMTP_TLS, SMTP_USER, SMTP_PASSWORD, SMTP_FROM, \
             EMAIL_TO) to send through SMTP.\n"
        );
        return Ok(Arc::new(StandInTransport {
            mailer: HostMailer,
            channel: Channel::Email,
        }));
    };
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let tls = match var("SMTP_TLS").as_deref() {
        None | Some("starttls") => TlsMode::StartTls,
        Some("implicit") => TlsMode::Implicit,
        Some("none") => TlsMode::None,
        Some(other) => {
            return Err(format!("SMTP_TLS={other:?}: use none, starttls or implicit").into());
        }
    };
    let from = var("SMTP_FROM").unwrap_or_else(|| "courses@school.example".into());
    let mut builder = EmailTransport::builder(host, from)
        .tls(tls)
        .from_name(var("SMTP_FROM_NAME").unwrap_or_else(|| "School of Rust".into()))
        .subject_for(Intent::AgentReply, "Your question to the School of Rust")
        .html(true);
    if let Some(port) = var("SMTP_PORT") {
        builder = builder.port(port.parse()?);
    }
    if let (Some(user), Some(password)) = (var("SMTP_USER"), var("SMTP_PASSWORD")) {
        builder = builder.credentials(SmtpCredentials::new(user, password));
    }
    let email = builder.build()?;
    println!(
        "Sending through the SMTP relay at {} ({tls:?}).\n",
        email.server()
    );
    Ok(Arc::new(email))
}

/// Stand-in for a host's own mailer (an HTTP API, say).
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
            "   [mailer] to {to}: {subject}\n{}",
            body.lines()
                .map(|l| format!("          {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        Ok(format!("<{}@mail.school.example>", to.len()))
    }
}

/// The adapter: the host's mailer as a `Transport`.
struct StandInTransport {
    mailer: HostMailer,
    channel: Channel,
}

#[async_trait]
impl Transport for StandInTransport {
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
    let support = Support::builder(directory.clone(), inbox.clone())
        .transport(email_transport()?)
        .build();

    let ann_email = std::env::var("EMAIL_TO").unwrap_or_else(|_| "ann@example.org".into());
    let ann = directory
        .create(NewContact::new().with_email(ann_email))
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
    for d in &report.deliveries {
        println!(
            "   {} {:?} {:?} {}",
            d.channel,
            d.status,
            d.message_ids,
            d.reason.as_deref().unwrap_or("")
        );
    }

    println!("3. A reply to a bouncing address is recorded as failed, with the reason.");
    println!("   (A real relay may accept it and bounce it later, by mail.)");
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
