//! [`Fallback`]: try transports in order, moving on only where that makes sense.
//!
//! Transports of different channels need different addresses, so a fallback sends to a
//! contact's addresses rather than to one: each transport gets the addresses of its channel, in
//! the order given. The next transport (or the next address of the same channel) is tried only
//! when the failure says this route cannot work ([`Unreachable`], [`WindowClosed`]) or there is
//! no address for the transport. Any other failure stops the attempt:
//!
//! - [`Retryable`]: the preferred route may work in a moment; switching channel now could
//!   deliver the message twice once the caller retries.
//! - [`InvalidMessage`]: the caller built a message this transport cannot render; that is a bug
//!   to surface, not something to hide by switching channel silently.
//! - [`Unauthorized`] and [`Other`]: a configuration or unknown problem the operator must see.
//!
//! [`Unreachable`]: super::DeliveryErrorKind::Unreachable
//! [`WindowClosed`]: super::DeliveryErrorKind::WindowClosed
//! [`Retryable`]: super::DeliveryErrorKind::Retryable
//! [`InvalidMessage`]: super::DeliveryErrorKind::InvalidMessage
//! [`Unauthorized`]: super::DeliveryErrorKind::Unauthorized
//! [`Other`]: super::DeliveryErrorKind::Other
//!
//! ```
//! use std::sync::Arc;
//! use tidings::{
//!     contact::{Address, Channel},
//!     message::Message,
//!     transport::{DeliveryError, Fallback, SendContext, stub::StubTransport},
//! };
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let messenger = Arc::new(
//!     StubTransport::new(Channel::Messenger)
//!         .with_permanent_failure(DeliveryError::window_closed("last message 3 days ago")),
//! );
//! let email = Arc::new(StubTransport::new(Channel::Email));
//! let fallback = Fallback::new([messenger.clone() as _, email.clone() as _]);
//!
//! let addresses = [Address::messenger("page", "psid")?, Address::email("ann@example.org")?];
//! let delivered = fallback
//!     .send(&addresses, &Message::text("Your payment arrived")?, &SendContext::update())
//!     .await?;
//! assert_eq!(delivered.receipt.channel, Channel::Email);
//! assert_eq!(delivered.passed_over.len(), 1);
//! # Ok(()) }
//! ```

use std::fmt;

use super::{DeliveryError, SendContext, SharedTransport};
use crate::{
    contact::{Address, Channel},
    message::{Message, Receipt},
};

/// Why one route of a fallback did not deliver.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AttemptFailure {
    /// The recipient has no address on the transport's channel.
    NoAddress,
    /// The transport refused or failed.
    Failed(DeliveryError),
}

/// One route a [`Fallback`] tried without delivering.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Attempt {
    /// The channel of the transport tried.
    pub channel: Channel,
    /// The address tried, if there was one.
    pub address: Option<Address>,
    /// What happened.
    pub failure: AttemptFailure,
}

/// A message a [`Fallback`] delivered.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Delivered {
    /// The address it went to.
    pub address: Address,
    /// The delivering transport's receipt (its channel says which transport it was).
    pub receipt: Receipt,
    /// The routes tried before, in order, with why each did not deliver.
    pub passed_over: Vec<Attempt>,
}

/// No route of a [`Fallback`] delivered the message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.summary())]
pub struct Undelivered {
    /// Every route tried, in order.
    pub attempts: Vec<Attempt>,
    /// Whether the last attempt's failure stopped the fallback before all routes were tried.
    pub stopped: bool,
}

impl Undelivered {
    /// The failure that ended the attempt: the stopping error, or the last one tried.
    pub fn last_error(&self) -> Option<&DeliveryError> {
        self.attempts.iter().rev().find_map(|a| match &a.failure {
            AttemptFailure::Failed(e) => Some(e),
            AttemptFailure::NoAddress => None,
        })
    }

    fn summary(&self) -> String {
        match (self.stopped, self.last_error()) {
            (true, Some(e)) => format!("not delivered: stopped at {e}"),
            (false, Some(_)) => format!(
                "not delivered: {} routes tried, none delivered",
                self.attempts.len()
            ),
            (_, None) => "not delivered: no transport has an address for this recipient".to_owned(),
        }
    }
}

/// Tries transports in order; see the [module docs](self) for which failures move on.
#[derive(Clone)]
pub struct Fallback {
    transports: Vec<SharedTransport>,
}

impl fmt::Debug for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.transports.iter().map(|t| t.channel().to_string()))
            .finish()
    }
}

impl Fallback {
    /// A fallback over `transports`, most preferred first.
    pub fn new(transports: impl IntoIterator<Item = SharedTransport>) -> Self {
        Fallback {
            transports: transports.into_iter().collect(),
        }
    }

    /// The transports, in order.
    pub fn transports(&self) -> &[SharedTransport] {
        &self.transports
    }

    /// Sends `message` over the first route that delivers it.
    pub async fn send(
        &self,
        addresses: &[Address],
        message: &Message,
        ctx: &SendContext,
    ) -> Result<Delivered, Undelivered> {
        let mut attempts = Vec::new();
        for transport in &self.transports {
            let channel = transport.channel();
            // Indices, not a filtering iterator: a closure held across the `.await` below would
            // make this future `Send` only for one lifetime, and `tokio::spawn` of a caller's
            // future would fail to compile.
            let routes: Vec<usize> = (0..addresses.len())
                .filter(|&i| addresses[i].channel() == channel)
                .collect();
            if routes.is_empty() {
                attempts.push(Attempt {
                    channel: channel.clone(),
                    address: None,
                    failure: AttemptFailure::NoAddress,
                });
                continue;
            }
            for i in routes {
                let address = &addresses[i];
                match transport.send(address, message, ctx).await {
                    Ok(receipt) => {
                        return Ok(Delivered {
                            address: address.clone(),
                            receipt,
                            passed_over: attempts,
                        });
                    }
                    Err(e) => {
                        let stop = !e.allows_fallback();
                        tracing::debug!(%channel, error = %e, stop, "fallback route failed");
                        attempts.push(Attempt {
                            channel: channel.clone(),
                            address: Some(address.clone()),
                            failure: AttemptFailure::Failed(e),
                        });
                        if stop {
                            return Err(Undelivered {
                                attempts,
                                stopped: true,
                            });
                        }
                    }
                }
            }
        }
        Err(Undelivered {
            attempts,
            stopped: false,
        })
    }
}
