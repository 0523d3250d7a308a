//! [`FlowEngineBuilder`]: the engine's transports, clock, limits and timings.

use std::{fmt, sync::Arc, time::Duration};

use super::{ContactFields, FlowEngine, FlowRegistry, Inner};
use crate::{
    clock::{SharedClock, SystemClock},
    identity::Directory,
    keys::KeyRing,
    message::ChoiceStyle,
    process::{ProcessStore, validate::Limits},
    template::CampaignVars,
    transport::{SharedTransport, TransportSet},
};

// Named by the docs only.
#[cfg(doc)]
use crate::transport::Fallback;

/// Builds a [`FlowEngine`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct FlowEngineBuilder {
    store: Arc<dyn ProcessStore>,
    directory: Arc<dyn Directory>,
    keys: KeyRing,
    transports: TransportSet,
    clock: SharedClock,
    fields: Option<Arc<dyn ContactFields>>,
    limits: Option<Limits>,
    style: ChoiceStyle,
    lease: Duration,
    retry_after: Duration,
    max_attempts: u32,
    send_timeout: Option<Duration>,
    tick_batch: usize,
    inbox: Option<Arc<dyn crate::inbox::Inbox>>,
}

impl fmt::Debug for FlowEngineBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowEngineBuilder")
            .field("transports", &self.transports)
            .field("keys", &self.keys)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl FlowEngineBuilder {
    /// A transport to reach contacts through. Several may be given (one per channel, a later
    /// one for the same channel replaces the earlier), and **their order matters**: every
    /// message goes through them in the order added, like a [`Fallback`]. The next one is
    /// tried only when a transport cannot reach the contact (no address on its channel,
    /// [`Unreachable`](crate::transport::DeliveryErrorKind::Unreachable)) or not now (the
    /// Messenger window is closed:
    /// [`WindowClosed`](crate::transport::DeliveryErrorKind::WindowClosed)); a temporary
    /// failure is retried on the same transport later. Add Messenger first and e-mail second
    /// so that a flow whose window closed during a wait reaches the contact by e-mail.
    ///
    /// A question only goes through transports that can show its options (a text-only e-mail
    /// transport carries sends and handover messages, not questions), and flows are checked
    /// against the [`Limits`] of the transports that can show options.
    pub fn transport(mut self, transport: SharedTransport) -> Self {
        self.transports.insert(transport);
        self
    }

    /// Several transports at once (a [`TransportSet`], a `Vec`, ...), as
    /// [`transport`](Self::transport) one by one, in order.
    pub fn transports(mut self, transports: impl IntoIterator<Item = SharedTransport>) -> Self {
        self.transports.extend(transports);
        self
    }

    /// Records each message a flow sends in the contact's inbox conversation too, as an
    /// outgoing entry by `flow:<flow id>` with its delivery, so that agents see what the flow
    /// said and receipts land on it (default: not recorded). A failure to write it is logged
    /// and does not change the flow.
    pub fn record_in(mut self, inbox: Arc<dyn crate::inbox::Inbox>) -> Self {
        self.inbox = Some(inbox);
        self
    }

    /// Reads time from `clock` (default: the system clock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Writes fields set by flows to the host's contacts.
    pub fn contact_fields(mut self, fields: Arc<dyn ContactFields>) -> Self {
        self.fields = Some(fields);
        self
    }

    /// Checks flows against `limits` instead of those of the transports.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// How questions show their options unless they say (default: buttons).
    pub fn choice_style(mut self, style: ChoiceStyle) -> Self {
        self.style = style;
        self
    }

    /// How long a step may be in progress before `tick` takes it up again as crashed
    /// (default 2 minutes). The lease is taken (with the clock read at that moment) before
    /// each message, and each send is cut off at half of it and counted as a temporary
    /// failure, so a step is never taken up again while its send may still deliver.
    pub fn recovery_after(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long to wait before sending again after a retryable delivery failure, when the
    /// transport does not say (default 1 minute).
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = after;
        self
    }

    /// How many temporary delivery failures in a row one step may have before the instance
    /// fails (default 10, at least 1). The count is stored with the instance, so it survives
    /// restarts; a delivered message resets it. The last failure is reported by `tick` (or
    /// returned by `start`, `release`).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// How long one send may take before it is cut off and counted as a temporary failure
    /// (default and most: half of [`recovery_after`](Self::recovery_after), so `tick` never
    /// takes a step up again while its send may still deliver). The timer needs a Tokio
    /// runtime with the time driver (`#[tokio::main]`, or `enable_time`/`enable_all` on a
    /// runtime builder). `None` turns it off: the host's transports must then bound their own
    /// sends well inside the lease.
    pub fn send_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// How many due instances one `tick` takes (default 100).
    pub fn tick_batch(mut self, batch: usize) -> Self {
        self.tick_batch = batch.max(1);
        self
    }

    /// Builds the engine.
    pub fn build(self) -> FlowEngine {
        let limits = self.limits.unwrap_or_else(|| {
            // Questions only go through transports that can show options, so only those limit
            // them (with none, the narrowest wins and questions are refused).
            let asking: Vec<_> = self
                .transports
                .iter()
                .map(|t| t.capabilities())
                .filter(|c| c.max_choices > 0)
                .collect();
            let all: Vec<_> = self.transports.iter().map(|t| t.capabilities()).collect();
            let caps = if asking.is_empty() { all } else { asking };
            caps.iter().fold(Limits::new(), |l, c| l.narrowed_to(c))
        });
        FlowEngine {
            inner: Arc::new(Inner {
                registry: FlowRegistry::new(limits),
                store: self.store,
                directory: self.directory,
                transports: self.transports,
                keys: self.keys,
                clock: self.clock,
                fields: self.fields,
                style: self.style,
                lease: self.lease,
                retry_after: self.retry_after,
                max_attempts: self.max_attempts,
                send_timeout: self.send_timeout.map(|t| t.min(self.lease / 2)),
                tick_batch: self.tick_batch,
                no_vars: CampaignVars::none(),
                inbox: self.inbox,
            }),
        }
    }
}

impl FlowEngine {
    /// Starts building an engine over the instance store, the contacts and the keys that sign
    /// answer payloads (a [`KeyRing`], or one [`SigningKey`](crate::keys::SigningKey)). Add
    /// transports with [`FlowEngineBuilder::transport`].
    pub fn builder(
        store: Arc<dyn ProcessStore>,
        directory: Arc<dyn Directory>,
        keys: impl Into<KeyRing>,
    ) -> FlowEngineBuilder {
        FlowEngineBuilder {
            store,
            directory,
            keys: keys.into(),
            transports: TransportSet::new(),
            clock: SystemClock::shared(),
            fields: None,
            limits: None,
            style: ChoiceStyle::Buttons,
            lease: Duration::from_secs(120),
            retry_after: Duration::from_secs(60),
            max_attempts: 10,
            send_timeout: Some(Duration::MAX),
            tick_batch: 100,
            inbox: None,
        }
    }
}
