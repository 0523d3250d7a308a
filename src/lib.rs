//! # tidings
//!
//! Reach the users of a course or membership platform over pluggable transports, Facebook
//! Messenger first: connect a user's Messenger through an `m.me` link, route what they write
//! into the platform's support inbox, send newsletters within Messenger's policy and limits,
//! and run automation flows that ask questions and branch on the answers.
//!
//! The host platform supplies storage and HTTP glue by implementing small traits; the crate
//! ships implementations of every store trait (in memory, and SQLite with the `sqlite` feature)
//! so that it runs end to end out of the box and keeps its state across restarts.
//!
//! # Quick start
//!
//! ```
//! use std::sync::Arc;
//! use tidings::{
//!     clock::SystemClock,
//!     contact::{Address, Channel, NewContact},
//!     identity::Directory,
//!     inbox::{DeliveryRecord, Inbox, Outgoing},
//!     message::Message,
//!     store::memory::{MemoryDirectory, MemoryInbox},
//!     transport::{SendContext, SharedTransport, stub::StubTransport},
//!     clock::Clock,
//! };
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let directory = MemoryDirectory::new();
//! let inbox = MemoryInbox::new();
//! let messenger: SharedTransport = Arc::new(StubTransport::new(Channel::Messenger));
//!
//! let ann = directory
//!     .create(NewContact::new()
//!         .with_name("Ann", "Lee")
//!         .with_address(Address::messenger("104812345678901", "6789012345678901")?))
//!     .await?;
//!
//! let message = Message::builder("Lesson 3 is open. Ready?")
//!     .choice("Start now", "L3_START")
//!     .choice("Later", "L3_LATER")
//!     .build()?;
//! let address = ann.address_on(&Channel::Messenger).ok_or("no Messenger address")?;
//! let receipt = messenger.send(address, &message, &SendContext::update()).await?;
//!
//! inbox
//!     .record_outgoing(
//!         &ann.id,
//!         SystemClock.now(),
//!         Outgoing::new(message).with_delivery(DeliveryRecord::sent(receipt.channel, receipt.message_ids)),
//!     )
//!     .await?;
//! assert_eq!(inbox.conversation(&ann.id, 10).await?.len(), 1);
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run()).unwrap();
//! ```
//!
//! # The traits
//!
//! | trait | concern | what the host gives |
//! |---|---|---|
//! | [`Transport`] | sending | one way of reaching contacts (Messenger, e-mail, SMS) |
//! | [`Directory`](identity::Directory) | identity | contacts and their linked addresses |
//! | [`Inbox`](inbox::Inbox) | support | conversations and per-transport delivery status |
//! | [`SegmentQuery`](segment::SegmentQuery) | newsletters | who matches a [`Segment`](segment::Segment), page by page |
//! | [`Outbox`](newsletter::Outbox) | newsletters | one outcome per campaign and recipient |
//! | [`ProcessEngine`](process::ProcessEngine) | processes | runs flows, takes the answers meant for them |
//! | [`ProcessStore`](process::ProcessStore) | processes | durable flow state |
//! | [`SeenEvents`](seen::SeenEvents) | webhooks, tokens | what was already handled |
//! | [`LastInbound`](activity::LastInbound) | policy, segments | when each address last wrote |
//!
//! [`Hub`](hub::Hub) routes every inbound event to identity, processes or the inbox, and
//! [`Connector`](identity::Connector) links transport addresses to contacts.
//! [`Erasure`] forgets a contact across every store (the GDPR's right to erasure) and reports
//! what it removed.
//!
//! All are `async` (through `async_trait`) and object-safe: the crate holds them as
//! `Arc<dyn Trait>`, so host types never leak into the crate's types. Each store trait
//! documents its contract, and the `testkit` feature publishes a conformance suite that checks
//! an implementation against it.
//!
//! Time comes from an injected [`Clock`]; [`token`] makes the signed tokens
//! behind m.me links and login links.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `messenger` | yes | the Facebook Messenger transport |
//! | `memory` | yes | in-memory stores ([`store::memory`]) |
//! | `sqlite` | no | SQLite stores ([`store::sqlite`]); brings `memory` |
//! | `postgres` | no | PostgreSQL stores ([`store::postgres`]), for several processes on one database |
//! | `email` | no | an SMTP e-mail transport through lettre and rustls ([`email`]) |
//! | `axum` | no | ready axum routers: the webhook, the agent API and the support desk page ([`axum`]) |
//! | `conformance` | no | the store conformance suite alone ([`testkit::conformance`]) |
//! | `testkit` | no | every test helper: the conformance suite, the fake Graph API and the fake Messenger user |
//!
//! Each feature builds on its own; `.ci/run` checks the library with each one alone.
//!
//! # Transports
//!
//! | transport | feature | reaches | notes |
//! |---|---|---|---|
//! | [`messenger::MessengerTransport`] | `messenger` | a PSID on a Page | Send API; the 24-hour window, message tags and HUMAN_AGENT from [`messenger::Policy`]; a per-Page [`budget::SendBudget`]; retries of what Meta calls transient |
//! | [`email::EmailTransport`] | `email` | a real e-mail address | SMTP through lettre; choices as links or numbered options; failures classified retryable, unreachable or refused |
//! | [`transport::stub::StubTransport`] | always | any address of its channel | records what it is given; for tests and examples |
//! | the host's own | — | whatever it implements | implement [`transport::Transport`] |
//!
//! Replies, campaigns and flows pick the addresses with one rule,
//! [`contact::Contact::reachable_addresses`], and fall from one transport to the next in order
//! ([`transport::Fallback`]) when one cannot reach the person (a closed window, no address).
//!
//! # Security
//!
//! - **Webhook signatures.** Every POST is checked against `X-Hub-Signature-256` with the app
//!   secret, in constant time, over the raw body, before anything is parsed; the body size is
//!   capped while it is read. A verify token guards the subscription handshake.
//! - **Signed tokens.** Connect links, login links and link-confirmation answers are tokens of
//!   [`token`]: HMAC-SHA256 under rotating keys, a purpose each (a token made for one use is
//!   refused for another), an expiry, a nonce that makes the single-use ones usable once. Flow
//!   answers are signed payloads naming the instance and the visit, so a forged, replayed or
//!   stale answer moves nothing. Signatures are checked in constant time before any claim is
//!   read, and a text longer than the longest legal token is refused unread.
//! - **Secrets.** Page tokens, app secrets, token keys, SMTP passwords and database URLs'
//!   passwords are held so that `Debug` and logs never print them; the Send API's URL (which
//!   carries the Page token) is never logged.
//! - **Messenger policy.** The transport refuses, before any HTTP call, what Meta would refuse:
//!   a message outside the 24-hour window without a tag that fits its purpose (an update is
//!   not an account update), HUMAN_AGENT unless enabled. A link tapped by someone else asks before it moves an
//!   account ([`identity::ConfirmLinks`]).
//! - **Input.** Every constructor that takes outside input validates it and returns a typed
//!   error; nothing on an input-driven path panics, and one unreadable webhook event never costs
//!   the others in its batch.

#![forbid(unsafe_code)]
#![deny(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// Defines a validated string id newtype: non-empty, at most [`error::MAX_ID_LEN`] bytes, no
/// control characters; checked by `new`, `FromStr` and `Deserialize` alike.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps an id.
            pub fn new(id: impl Into<String>) -> Result<Self, $crate::error::InvalidId> {
                let id = id.into();
                $crate::error::InvalidId::check($kind, &id)?;
                Ok($name(id))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, concat!(stringify!($name), "({:?})"), self.0)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::error::InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::error::InvalidId;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                $name::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }
    };
}

pub mod activity;
mod any_error;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
pub mod budget;
pub mod clock;
pub mod contact;
#[cfg(feature = "email")]
#[cfg_attr(docsrs, doc(cfg(feature = "email")))]
pub mod email;
pub mod erasure;
pub mod error;
pub mod hub;
pub mod identity;
pub mod inbound;
pub mod inbox;
pub mod keys;
pub mod message;
#[cfg(feature = "messenger")]
#[cfg_attr(docsrs, doc(cfg(feature = "messenger")))]
pub mod messenger;
pub mod newsletter;
pub mod optin;
pub mod process;
pub mod seen;
pub mod segment;
pub mod store;
mod sync;
pub mod template;
#[cfg(feature = "conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod testkit;
pub mod threads;
pub mod token;
pub mod transport;

pub use secrecy;

#[doc(inline)]
pub use crate::{
    any_error::Error,
    clock::{Clock, Timestamp},
    contact::{Address, Channel, Contact, ContactId},
    erasure::{Erasure, ErasureReport},
    error::StoreError,
    message::{Inbound, Message, Receipt},
    transport::{DeliveryError, Transport},
};

/// Compile-time checks that the types hosts share across tasks are `Send + Sync`.
#[cfg(test)]
mod assert_impls {
    fn send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn shared_types_are_send_and_sync() {
        send_sync::<token::Tokens>();
        send_sync::<transport::Fallback>();
        send_sync::<transport::stub::StubTransport>();
        send_sync::<transport::SharedTransport>();
        send_sync::<clock::SharedClock>();
        send_sync::<std::sync::Arc<dyn identity::Directory>>();
        send_sync::<std::sync::Arc<dyn inbox::Inbox>>();
        send_sync::<std::sync::Arc<dyn segment::SegmentQuery>>();
        send_sync::<std::sync::Arc<dyn newsletter::Outbox>>();
        send_sync::<std::sync::Arc<dyn process::ProcessEngine>>();
        send_sync::<std::sync::Arc<dyn process::ProcessStore>>();
        send_sync::<process::FlowEngine>();
        send_sync::<process::FlowRegistry>();
        send_sync::<keys::KeyRing>();
        send_sync::<std::sync::Arc<dyn seen::SeenEvents>>();
        send_sync::<std::sync::Arc<dyn activity::LastInbound>>();
        send_sync::<erasure::Erasure>();
        #[cfg(feature = "memory")]
        {
            send_sync::<store::memory::MemoryDirectory>();
            send_sync::<store::memory::MemoryInbox>();
            send_sync::<store::memory::MemoryOutbox>();
            send_sync::<store::memory::MemoryProcessStore>();
            send_sync::<store::memory::MemorySeenEvents>();
            send_sync::<store::memory::MemoryLastInbound>();
        }
    }

    use super::*;
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
