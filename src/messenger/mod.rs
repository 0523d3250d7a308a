//! The Facebook Messenger transport (feature `messenger`).
//!
//! | piece | module |
//! |---|---|
//! | the Send API client, as a `Transport` | [`client`] |
//! | the webhook: handshake, signatures, parsing, de-duplication; the `InboundSource` the Hub drives | [`webhook`] |
//! | webhook bodies as typed events | [`event`] |
//! | events as channel-neutral `Inbound`s | [`inbound`] |
//! | rendering messages within Messenger's limits | [`render`] |
//! | the 24-hour window and message tags | [`policy`] |
//! | Graph errors and their classification | [`error`] |
//! | `m.me` connect links | [`link`] |
//! | Page settings and how they are found | [`pages`] |
//! | secrets that never print | [`secret`] |

pub mod client;
pub mod error;
pub mod event;
pub mod inbound;
pub mod link;
pub mod pages;
pub mod policy;
pub mod render;
pub mod secret;
mod stream;
mod tolerant;
pub mod webhook;

pub use client::{MessengerTransport, MessengerTransportBuilder, RetryPolicy, SenderAction};
pub use error::{GraphError, MessengerError};
pub use pages::{PageConfig, PageResolver, StaticPages};
pub use policy::{MessageTag, MessagingType, Policy};
pub use secret::{AppSecret, PageAccessToken, VerifyToken};
pub use webhook::{Batch, Handled, Webhook, WebhookError};
