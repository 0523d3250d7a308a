//! E-mail over SMTP (feature `email`): [`EmailTransport`], a [`Transport`] for
//! [`Channel::Email`] through [lettre](https://docs.rs/lettre), TLS by rustls.
//!
//! The e-mail route for support replies that cannot go by Messenger and for campaigns and flows
//! whose Messenger window has closed. Each send is one e-mail:
//!
//! - **From** the configured address and display name, **To** the contact's address, an
//!   optional **Reply-To**; a **Subject** from the configuration (a default, and one per
//!   [`Intent`](crate::transport::Intent) if given: [`Message`](crate::message::Message) has no
//!   subject of its own);
//! - a plain-text body (choices as a numbered list, links as `title: url` lines) and, if
//!   enabled, an HTML alternative in which every value from the message is escaped (see
//!   [Rendering](#rendering));
//! - a generated **Message-ID**, which is the receipt's message id (derived from the send's
//!   idempotency key when it has one, so a retry carries the same id).
//!
//! Failures are classified into [`DeliveryError`](crate::transport::DeliveryError) kinds (see
//! [Failures](#failures)), with lettre's error, which carries the server's reply text, as the
//! `source()`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use tidings::{
//!     contact::Address,
//!     email::{EmailTransport, SmtpCredentials, TlsMode},
//!     message::Message,
//!     transport::{Intent, SendContext, Transport},
//! };
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let email = EmailTransport::builder("smtp.school.example", "courses@school.example")
//!     .from_name("School of Rust")
//!     .tls(TlsMode::StartTls) // the default; port 587 unless `.port(..)` says otherwise
//!     .credentials(SmtpCredentials::new("courses@school.example", std::env::var("SMTP_PASSWORD")?))
//!     .subject("News from the School of Rust")
//!     .subject_for(Intent::AgentReply, "Your question to the School of Rust")
//!     .html(true)
//!     .build()?;
//! let question = Message::builder("Which time suits you for the call?")
//!     .choice("Monday 10:00", "CALL_MON")
//!     .choice("Tuesday 15:00", "CALL_TUE")
//!     .build()?;
//! let to = Address::email("ann@example.org")?;
//! let receipt = email.send(&to, &question, &SendContext::agent_reply()).await?;
//! println!("sent as {}", receipt.message_ids[0]); // the Message-ID header, <...@school.example>
//! // Give it to the services like any transport: `Support::builder(..).transport(Arc::new(email))`.
//! # Ok(()) }
//! ```
//!
//! # Rendering
//!
//! ```text
//! Which time suits you for the call?
//!
//! 1. Monday 10:00
//! 2. Tuesday 15:00
//!
//! Open lesson: https://school.example/lessons/7
//! ```
//!
//! An e-mail cannot send an answer back by itself. With
//! [`answer_links`](EmailTransportBuilder::answer_links) the host gives, per recipient and
//! choice, a URL of its own that reports the answer; each choice is then a link
//! (`2. Tuesday 15:00: https://...`, an `<a>` in HTML) and the transport declares buttons in
//! its [`Capabilities`](crate::transport::Capabilities). Without them choices are a numbered
//! list and messages that ask for buttons are refused with `InvalidMessage` (the flow engine then
//! routes its questions elsewhere).
//!
//! # Failures
//!
//! Each e-mail is one SMTP conversation driven command by command, so a refusal is read by the
//! command it answers (lettre's error, with the server's reply text, stays the `source()`):
//!
//! | what happened | kind | why |
//! |---|---|---|
//! | any 4xx reply, to any command (421 busy, 450, 451, 452) | `Retryable` | the server says "later" |
//! | nothing listening, a connection reset or dropped, no answer within [`timeout`](EmailTransportBuilder::timeout) | `Retryable` | the relay may be back soon |
//! | a refused `AUTH` (535, 534, ...); 530 or enhanced `5.7.8`/`5.7.9` to a later command; credentials configured but no AUTH offered | `Unauthorized` | the credentials are missing, wrong or unusable |
//! | 5xx to `RCPT TO` (550, 551, 553, ...); enhanced `5.1.x`/`5.2.x` after the data (servers that check recipients late) | `Unreachable` | that mailbox takes no mail: a fallback may try another transport |
//! | 552 (or enhanced `5.3.4`, `5.2.3`, `5.6.x`) to `MAIL FROM` or after the data | `InvalidMessage` | too big or malformed for this server; another message may pass |
//! | other 5xx after the data (554 content refused, 550 `5.7.1` spam) | `Other` | see below |
//! | 5xx to the greeting, `STARTTLS` or `MAIL FROM` (the sender refused); TLS failures; `STARTTLS` not offered | `Other` | the configuration needs fixing |
//!
//! A refused content (554, "transaction failed", most often spam or policy) is `Other`, not
//! `InvalidMessage`: nothing says another rendering would pass, the same content retried will
//! not, and the address is not at fault, so it must be neither retried nor sent through another
//! transport automatically (and the support inbox shows it as failed, not as refused by the
//! transport's limits). A 552 is `InvalidMessage`: RFC 5321 names it "exceeded storage
//! allocation", which servers send today for a message over their size limit; a smaller message
//! may pass.
//!
//! A timeout that strikes while the server answers the message data may come after the server
//! took it; the send is then reported `Retryable` though it went. With an idempotency key the
//! retry carries the same Message-ID, which lets receivers drop the copy.
//!
//! # Security
//!
//! - Credentials are [`SmtpCredentials`]: `Debug` shows neither name nor password, and neither
//!   is logged. Use [`TlsMode::None`] only for a relay on loopback or a private network.
//! - TLS is rustls with the Mozilla roots (plus any root added with
//!   [`root_certificate_pem`](EmailTransportBuilder::root_certificate_pem)); `STARTTLS` is
//!   required, never opportunistic.
//! - Header values from the configuration are checked to be single lines; the recipient comes
//!   from a validated [`Address`](crate::contact::Address) and is parsed again by lettre.
//!
//! [`Transport`]: crate::transport::Transport
//! [`Channel::Email`]: crate::contact::Channel::Email

mod classify;
mod credentials;
mod error;
mod message_id;
mod render;
mod session;
mod tls;
mod transport;

pub use credentials::SmtpCredentials;
pub use error::BuildError;
pub use tls::TlsMode;
pub use transport::{AnswerLinks, DEFAULT_SUBJECT, EmailTransport, EmailTransportBuilder};
