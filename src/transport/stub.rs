//! A recording transport for tests and examples: no network, scripted outcomes.
//!
//! [`StubTransport`] checks what a real transport checks before any network call (the address's
//! channel, the message against its [`Capabilities`]), then answers with the next scripted
//! outcome (success by default) and records every message it accepted.
//!
//! ```
//! use tidings::{
//!     contact::{Address, Channel},
//!     message::Message,
//!     transport::{DeliveryError, SendContext, Transport, stub::StubTransport},
//! };
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let stub = StubTransport::new(Channel::Email);
//! stub.push_failure(DeliveryError::retryable("mail server busy"));
//! let to = Address::email("ann@example.org")?;
//! let msg = Message::text("Hi")?;
//! assert!(stub.send(&to, &msg, &SendContext::update()).await.is_err());
//! assert!(stub.send(&to, &msg, &SendContext::update()).await.is_ok());
//! assert_eq!(stub.sent().len(), 1);
//! assert_eq!(stub.attempts(), 2);
//! # Ok(()) }
//! ```

use std::{collections::VecDeque, sync::Mutex};

use async_trait::async_trait;

use super::{Capabilities, DeliveryError, SendContext, Transport, ensure_channel};
use crate::{
    clock::{SharedClock, SystemClock},
    contact::{Address, Channel},
    message::{Message, Receipt},
    sync::lock,
};

/// A message a [`StubTransport`] accepted.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SentMessage {
    /// Where it went.
    pub to: Address,
    /// What was sent.
    pub message: Message,
    /// The context it was sent with.
    pub ctx: SendContext,
    /// The receipt the stub answered with.
    pub receipt: Receipt,
}

#[derive(Debug, Default)]
struct State {
    sent: Vec<SentMessage>,
    script: VecDeque<DeliveryError>,
    always: Option<DeliveryError>,
    attempts: usize,
    next_id: u64,
}

/// A transport that records what it sends and fails as scripted.
#[derive(Debug)]
pub struct StubTransport {
    channel: Channel,
    capabilities: Capabilities,
    clock: SharedClock,
    state: Mutex<State>,
}

impl StubTransport {
    /// A stub for `channel` that accepts any message (13 choices, buttons) and succeeds.
    pub fn new(channel: Channel) -> Self {
        StubTransport {
            channel,
            capabilities: Capabilities::text_only()
                .with_choices(Message::MAX_CHOICES, None)
                .with_buttons(3),
            clock: SystemClock::shared(),
            state: Mutex::new(State::default()),
        }
    }

    /// Declares narrower capabilities; messages beyond them are refused as invalid.
    pub fn with_capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// Reads receipt times from `clock`.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Makes every send fail with `error` (after the scripted failures are used up).
    pub fn with_permanent_failure(self, error: DeliveryError) -> Self {
        lock(&self.state).always = Some(error);
        self
    }

    /// Makes the next send fail with `error`; several calls queue several failures.
    pub fn push_failure(&self, error: DeliveryError) {
        lock(&self.state).script.push_back(error);
    }

    /// The messages accepted so far, in order.
    pub fn sent(&self) -> Vec<SentMessage> {
        lock(&self.state).sent.clone()
    }

    /// How many sends were attempted, successful or not (refused ones included).
    pub fn attempts(&self) -> usize {
        lock(&self.state).attempts
    }
}

#[async_trait]
impl Transport for StubTransport {
    fn channel(&self) -> &Channel {
        &self.channel
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities.clone()
    }

    async fn send(
        &self,
        to: &Address,
        message: &Message,
        ctx: &SendContext,
    ) -> Result<Receipt, DeliveryError> {
        let mut state = lock(&self.state);
        state.attempts += 1;
        ensure_channel(&self.channel, to)?;
        self.capabilities.check(message)?;
        if let Some(e) = state.script.pop_front().or_else(|| state.always.clone()) {
            return Err(e);
        }
        state.next_id += 1;
        let receipt = Receipt::new(
            self.channel.clone(),
            vec![format!("stub-{}-{}", self.channel, state.next_id)],
            self.clock.now(),
        );
        state.sent.push(SentMessage {
            to: to.clone(),
            message: message.clone(),
            ctx: ctx.clone(),
            receipt: receipt.clone(),
        });
        Ok(receipt)
    }
}
