//! The reference [`ProcessEngine`]: [`FlowEngine`], over a [`FlowRegistry`] of versioned flow
//! definitions, a [`ProcessStore`], the [`Directory`] and the transports.
//!
//! # Running a flow
//!
//! [`FlowEngine::start`](ProcessEngine::start) creates an instance for a contact and runs it
//! until it has to wait: for an answer (a question), for time (a wait, an answer timeout), for
//! an agent (a handover), or until it ends. A question goes out as a [`Message`] with one
//! [`Choice`](crate::message::Choice) per option and the question's [`ChoiceStyle`] (buttons by
//! default, see [`FlowEngineBuilder::choice_style`]); the transport renders it (Messenger: a
//! button template or quick replies). The engine knows no transport's limits: flows are checked
//! against [`Limits`] taken from its transports' [`Capabilities`](crate::transport::Capabilities).
//!
//! [`offer`](ProcessEngine::offer) (the [`Hub`](crate::hub::Hub) calls it for every message of
//! a linked contact) moves an instance on the chosen path when the event answers its current
//! question: a button or quick-reply payload, or typed text equal to an option's label once
//! case, accents, spacing and surrounding punctuation are ignored. Typed text that matches no
//! option does what the question says ([`FreeText`](super::flow::FreeText)): go to the inbox
//! (the default), ask again, or count as the answer. While an instance is handed over to a
//! human, everything the contact writes goes to the inbox until [`FlowEngine::release`].
//!
//! Typed text is matched against the open questions of **every** flow the contact runs, the
//! question asked last first: the first one with a matching option takes it. When none
//! matches, the question asked last decides what happens to the text (its `on_text`). Text
//! that is empty once spaces and punctuation are dropped never matches an option. Buttons
//! and quick replies name their instance, so they are never ambiguous; give questions that
//! may be open at the same time distinct labels if typed answers matter.
//!
//! # Transports and the messaging window
//!
//! Messages go through the engine's transports in the order they were added
//! ([`FlowEngineBuilder::transport`]), moving to the next one when a transport cannot reach
//! the contact or not now (Messenger's 24-hour window is closed). A message that answers the
//! contact (right after an answer or typed text) is sent as [`Intent::Reply`]; a message the
//! flow sends on its own (after a wait, an answer timeout, a release, or at `start`) is sent
//! with the flow's (or the block's) [`purpose`](super::flow::Flow::purpose), default
//! [`Intent::Update`]. Messenger refuses `Update` more than 24 hours after the contact last
//! wrote, so a flow that speaks after a long wait either declares a purpose that a message
//! tag allows (an account, purchase or event update, and only when it is one) or has a
//! second transport (e-mail) to fall to.
//!
//! # Time
//!
//! Nothing sleeps in the engine. Waits and answer timeouts set the instance's `due_at`; the host
//! calls [`FlowEngine::tick`] periodically (every few seconds) with the current time, and the
//! engine moves on whatever is due, in batches ([`TickReport::more`] says to call again).
//!
//! # Durable state: write before every effect
//!
//! Every external effect (a message sent, a field written to the host) happens *after* a
//! successful compare-and-swap write that stores the instance at that step with status
//! [`Running`](InstanceStatus::Running) and a short lease in `due_at`
//! ([`FlowEngineBuilder::recovery_after`]). The order is:
//!
//! 1. write "at step S, running, due at now + lease" (this write also commits the answer that
//!    led to S, so it is the one that can lose a race);
//! 2. send S's message;
//! 3. write the next state (waiting for the answer, with its timeout), or claim the next step.
//!
//! A crash between 1 and 3 leaves the instance running at S; once the lease expires,
//! [`tick`](FlowEngine::tick) claims it again and sends S's message once more. A question sent
//! twice carries the same payloads (they name the visit, not the send), so an answer to either
//! copy counts, and only once. The other order (send, then write) would lose the step when the
//! process dies after sending: the stored state would not know a question is out, and the
//! answer to it would look like one from the future. Writing first costs one extra write per
//! message and at worst one duplicate message after a crash; it never loses a step and never
//! counts an answer twice. A transport that deduplicates gets a stable
//! [`idempotency_key`](crate::transport::SendContext::idempotency_key): `<instance>:<visit>`.
//!
//! # Answers that do not count
//!
//! A payload ([`payload`](super::payload)) names the instance, the *visit* (the position of the
//! question's step in the instance's history) and the option, under a MAC. An answer is
//! refused, moves nothing, is logged and comes back as [`Offer::Ignored`] when:
//!
//! - the MAC does not verify ([`Forged`](IgnoredAnswer::Forged));
//! - the instance belongs to another contact, does not exist, or is finished;
//! - the visit is not the current one: a button of an earlier step
//!   ([`Stale`](IgnoredAnswer::Stale)), or the option already chosen at that visit
//!   ([`Duplicate`](IgnoredAnswer::Duplicate): a double tap, or the second copy of a question
//!   sent twice).
//!
//! Two answers processed at the same time both read the instance at revision `r` and both try
//! to write revision `r + 1`; the store lets one win. The loser reads again, finds the visit
//! answered, and reports a duplicate (same option) or a stale answer (another option), so the
//! instance moves once. An answer that loses the race three times in a row (several writers
//! on one instance at once) did not count and is reported as
//! [`Contended`](IgnoredAnswer::Contended), never as a duplicate; typed free text that loses
//! every race goes on to the inbox, so it is not lost.
//!
//! # Flow versions
//!
//! An instance keeps the version it started with. Defining version 2 of a flow starts new
//! instances on version 2 while running ones finish on version 1; define every version that may
//! still have instances when the host starts (definitions are data: keep them with the host's
//! configuration). Redefining a version with the same content is accepted, with other content
//! refused.
//!
//! # Failures
//!
//! A delivery failure that may pass ([retryable](crate::transport::DeliveryError::is_retryable),
//! including a send cut off at half the lease) leaves the instance running, due again after
//! [`FlowEngineBuilder::retry_after`] (or the transport's retry-after), up to
//! [`FlowEngineBuilder::max_attempts`] failures in a row at one step; the last one fails the
//! instance. Any other failure marks the instance [`Failed`](InstanceStatus::Failed): the
//! contact is unreachable on every transport, **the messaging window is closed
//! ([`WindowClosed`](crate::transport::DeliveryErrorKind::WindowClosed)) and no other
//! transport reaches the contact**, a template cannot be rendered for the contact. The
//! failure is returned (from `start`, `release`), reported in [`TickReport::failures`]
//! (from `tick`), or logged (from `offer`, where the answer itself was taken).
//!
//! An instance that cannot run at all never fails the caller for its contact's other
//! instances and never blocks `tick`:
//!
//! - its flow version is not defined: `offer` ignores a button answer to it
//!   ([`IgnoredAnswer::UnknownFlowVersion`]), typed text skips it, `release` skips it, and
//!   `tick` reports [`ProcessError::UnknownVersion`] and puts it off by `retry_after` (it is
//!   not failed: it moves again once the version is defined);
//! - it stands at a block its version does not have (a corrupt store): `tick` fails it and
//!   reports [`ProcessError::UnknownStep`]; `offer` ignores answers to it
//!   ([`IgnoredAnswer::UnknownStep`]).
//!
//! `offer` returns an error only when the store (or the directory) fails, which is worth a
//! redelivery of the webhook.
//!
//! # Time within one drive
//!
//! One drive may send several messages in a row (send, send, question). The clock is read
//! for each lease, each history entry, each wait and each answer timeout, not once per drive,
//! so a drive whose sends are slow never stores a lease that has already run out, and an
//! answer timeout runs from when the question went out. Each send is cut off at half the
//! lease ([`FlowEngineBuilder::recovery_after`]), so `tick` never takes a step up again while
//! its send may still deliver. A send cut off may still have been delivered: it is sent
//! again with the same idempotency key.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    sync::{
        Arc, PoisonError, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

use super::{
    FlowId, IgnoredAnswer, InstanceId, InstanceStatus, Offer, ProcessEngine, ProcessError,
    ProcessInstance, ProcessStore, StepRecord,
    flow::Flow,
    payload::{AnswerPayload, PayloadError, PayloadKeys},
    text::normalize,
    validate::{Compiled, CompiledOption, FlowErrors, Limits, OnText, Step, Test, compile},
};
use crate::{
    clock::{SharedClock, SystemClock, Timestamp},
    contact::{Contact, ContactId},
    error::StoreError,
    identity::Directory,
    message::{ChoiceStyle, Inbound, InboundKind, Message},
    template::{CampaignVars, Template},
    transport::{DeliveryError, Fallback, Intent, SendContext, SharedTransport, TransportSet},
};

/// How many times an answer is re-read after losing a race before it is reported as a
/// duplicate.
const RACE_RETRIES: usize = 3;

/// Why a flow could not be defined.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DefineError {
    /// The flow has problems; each names its block and reason.
    #[error("the flow is invalid")]
    Invalid(#[from] FlowErrors),
    /// This version of the flow is defined with other content.
    #[error("flow {flow} version {version} is already defined with other content")]
    VersionTaken {
        /// The flow.
        flow: FlowId,
        /// The version.
        version: u32,
    },
}

/// The defined flows, every version of each, checked against [`Limits`].
pub struct FlowRegistry {
    limits: Limits,
    flows: RwLock<HashMap<FlowId, BTreeMap<u32, Arc<Compiled>>>>,
}

impl fmt::Debug for FlowRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flows = self.flows.read().unwrap_or_else(PoisonError::into_inner);
        let versions: BTreeMap<&str, Vec<u32>> = flows
            .iter()
            .map(|(id, v)| (id.as_str(), v.keys().copied().collect()))
            .collect();
        f.debug_struct("FlowRegistry")
            .field("limits", &self.limits)
            .field("flows", &versions)
            .finish()
    }
}

impl FlowRegistry {
    /// An empty registry checking flows against `limits`.
    pub fn new(limits: Limits) -> Self {
        FlowRegistry {
            limits,
            flows: RwLock::new(HashMap::new()),
        }
    }

    /// The limits flows are checked against.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Checks and adds `flow` at its version; returns the version. New instances start on the
    /// highest version defined.
    pub fn define(&self, flow: Flow) -> Result<u32, DefineError> {
        let compiled = compile(&flow, &self.limits)?;
        let mut flows = self.flows.write().unwrap_or_else(PoisonError::into_inner);
        let versions = flows.entry(flow.id.clone()).or_default();
        match versions.get(&flow.version) {
            Some(existing) if existing.flow == flow => {}
            Some(_) => {
                return Err(DefineError::VersionTaken {
                    flow: flow.id,
                    version: flow.version,
                });
            }
            None => {
                versions.insert(flow.version, Arc::new(compiled));
            }
        }
        Ok(flow.version)
    }

    /// The highest version of flow `id`.
    pub fn latest_version(&self, id: &FlowId) -> Option<u32> {
        self.latest(id).map(|(v, _)| v)
    }

    /// Version `version` of flow `id`, as defined.
    pub fn flow(&self, id: &FlowId, version: u32) -> Option<Flow> {
        self.get(id, version).map(|c| c.flow.clone())
    }

    pub(crate) fn latest(&self, id: &FlowId) -> Option<(u32, Arc<Compiled>)> {
        let flows = self.flows.read().unwrap_or_else(PoisonError::into_inner);
        flows
            .get(id)?
            .last_key_value()
            .map(|(v, c)| (*v, c.clone()))
    }

    pub(crate) fn get(&self, id: &FlowId, version: u32) -> Option<Arc<Compiled>> {
        let flows = self.flows.read().unwrap_or_else(PoisonError::into_inner);
        flows.get(id)?.get(&version).cloned()
    }
}

/// Where a flow's [`SetField`](super::flow::BlockKind::SetField) blocks write contact fields
/// in the host's user data. Without one, a field set by a flow is seen only by that flow's
/// branches and templates (it is kept in [`ProcessInstance::vars`]).
///
/// A write may be repeated after a crash (see the [module docs](self)), so it must set the value,
/// not add to it.
#[async_trait]
pub trait ContactFields: Send + Sync {
    /// Sets field `name` of `contact` to `value`.
    async fn set_field(
        &self,
        contact: &ContactId,
        name: &str,
        value: &serde_json::Value,
    ) -> Result<(), StoreError>;
}

/// What one [`FlowEngine::tick`] did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct TickReport {
    /// Waits that ended and moved on.
    pub waits: usize,
    /// Questions that timed out and moved on.
    pub timeouts: usize,
    /// Steps taken up again after a crash or a retryable delivery failure.
    pub resumed: usize,
    /// Due instances another worker moved first.
    pub skipped: usize,
    /// Instances that failed, with why.
    pub failures: Vec<(InstanceId, ProcessError)>,
    /// Whether the batch was full: call `tick` again.
    pub more: bool,
}

/// Builds a [`FlowEngine`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct FlowEngineBuilder {
    store: Arc<dyn ProcessStore>,
    directory: Arc<dyn Directory>,
    keys: PayloadKeys,
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

struct Inner {
    registry: FlowRegistry,
    store: Arc<dyn ProcessStore>,
    directory: Arc<dyn Directory>,
    transports: TransportSet,
    keys: PayloadKeys,
    clock: SharedClock,
    fields: Option<Arc<dyn ContactFields>>,
    style: ChoiceStyle,
    lease: Duration,
    retry_after: Duration,
    max_attempts: u32,
    send_timeout: Option<Duration>,
    tick_batch: usize,
    no_vars: CampaignVars,
    inbox: Option<Arc<dyn crate::inbox::Inbox>>,
}

/// The reference flow engine; see the [module docs](self). Cheap to clone (clones share state).
///
/// Sends are cut off by a Tokio timer ([`FlowEngineBuilder::send_timeout`]), so the engine
/// runs on a Tokio runtime with the time driver enabled unless that is turned off.
///
/// ```
/// use std::sync::Arc;
/// use tidings::{
///     contact::{Address, Channel, NewContact},
///     identity::Directory,
///     process::{
///         Flow, FlowEngine, FlowId, ProcessEngine,
///         payload::{PayloadKey, PayloadKeys},
///     },
///     secrecy::SecretSlice,
///     store::memory::{MemoryDirectory, MemoryProcessStore},
///     transport::stub::StubTransport,
/// };
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let directory = Arc::new(MemoryDirectory::new());
/// let messenger = Arc::new(StubTransport::new(Channel::Messenger));
/// let keys = PayloadKeys::new(PayloadKey::new(1, SecretSlice::from(vec![3u8; 32]))?);
/// let engine = FlowEngine::builder(Arc::new(MemoryProcessStore::new()), directory.clone(), keys)
///     .transport(messenger.clone())
///     .build();
/// // A callback-operation question: at most three answers, one branch each.
/// engine.define(
///     Flow::builder(FlowId::new("check-in")?, 1)
///         .question("ask", "How is the course going?", |q| {
///             q.option("Great", "great").option("Too fast", "slow").option("I'm stuck", "stuck")
///         })
///         .send("great", "Wonderful!", "done")
///         .send("slow", "Take your time.", "done")
///         .handover("stuck", Some("A tutor will answer you here."), "done")
///         .end("done")
///         .build(),
/// )?;
/// let ann = directory
///     .create(NewContact::new().with_address(Address::messenger("page", "psid")?))
///     .await?;
/// engine.start(&FlowId::new("check-in")?, &ann.id).await?;
///
/// let question = &messenger.sent()[0].message;
/// assert_eq!(question.choices().len(), 3);
/// // Each answer carries a signed payload; the Hub hands the tapped one back to the engine
/// // (`ProcessEngine::offer`), which sends that branch's message.
/// assert!(question.choices().iter().all(|c| c.payload().starts_with("tdf1.")));
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run()).unwrap();
/// ```
#[derive(Clone)]
pub struct FlowEngine {
    inner: Arc<Inner>,
}

impl fmt::Debug for FlowEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowEngine")
            .field("registry", &self.inner.registry)
            .field("transports", &self.inner.transports)
            .field("keys", &self.inner.keys)
            .finish_non_exhaustive()
    }
}

/// One instance being moved: the state, what is not written yet, and what was loaded.
struct Run {
    inst: ProcessInstance,
    flow: Arc<Compiled>,
    /// The instance differs from what is stored.
    dirty: bool,
    /// A write of this run succeeded (or the run created the instance): the run owns the move.
    committed: bool,
    contact: Option<Contact>,
    /// The run answers the contact (an answer or typed text moved it): its messages are
    /// replies, not proactive messages of the flow's purpose.
    reply: bool,
    /// The earliest time this run may use: `tick`'s `now`, so a host ticking ahead of the
    /// engine's clock does not write times before it. Times are read from the clock at each
    /// use (`FlowEngine::now`), never kept for the whole run.
    floor: Timestamp,
}

/// How a drive ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The instance waits, ended, or another writer took it over after this run's effects.
    Settled,
    /// The first write lost a race: nothing was done; read again.
    Lost,
    /// A retryable delivery failure: due again later.
    Pending,
}

/// What woke an instance in `tick`.
enum Woke {
    Wait,
    Timeout,
    Resumed,
    Nothing,
}

fn visit_of(inst: &ProcessInstance) -> u32 {
    u32::try_from(inst.history.len().saturating_sub(1)).unwrap_or(u32::MAX)
}

fn new_instance_id() -> InstanceId {
    static FALLBACK: AtomicU64 = AtomicU64::new(0);
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: a process-unique counter keeps ids apart (the store refuses a
        // duplicate id with a conflict in any case).
        bytes[..8].copy_from_slice(&FALLBACK.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    }
    let text = URL_SAFE_NO_PAD.encode(bytes);
    // 22 URL-safe characters: always a valid id.
    InstanceId::new(text).unwrap_or_else(|_| InstanceId(String::from("instance")))
}

impl FlowEngine {
    /// Starts building an engine over the instance store, the contacts and the key that signs
    /// answer payloads. Add transports with [`FlowEngineBuilder::transport`].
    pub fn builder(
        store: Arc<dyn ProcessStore>,
        directory: Arc<dyn Directory>,
        keys: PayloadKeys,
    ) -> FlowEngineBuilder {
        FlowEngineBuilder {
            store,
            directory,
            keys,
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

    /// The defined flows.
    pub fn registry(&self) -> &FlowRegistry {
        &self.inner.registry
    }

    /// Checks and defines `flow`; see [`FlowRegistry::define`].
    pub fn define(&self, flow: Flow) -> Result<u32, DefineError> {
        self.inner.registry.define(flow)
    }

    /// Moves on every instance due at `now` (waits that ended, answer timeouts, steps to take
    /// up again), up to the batch size. Call it periodically with the current time.
    ///
    /// The instances are claimed first ([`ProcessStore::claim_due`], for the
    /// [`recovery_after`](FlowEngineBuilder::recovery_after) lease), so any number of workers
    /// may tick one shared store at once: each moves instances of its own, and each instance
    /// moves once.
    pub async fn tick(&self, now: Timestamp) -> Result<TickReport, ProcessError> {
        // Claimed until the lease ends: a worker ticking beside this one takes other instances,
        // and an instance whose tick dies here is due again when the lease ends.
        let due = self
            .inner
            .store
            .claim_due(
                now,
                self.inner.tick_batch,
                now.saturating_add(self.inner.lease),
            )
            .await?;
        let mut report = TickReport {
            more: due.len() >= self.inner.tick_batch,
            ..TickReport::default()
        };
        for inst in due {
            let id = inst.id.clone();
            match self.wake(inst, now).await {
                Ok((_, Outcome::Lost)) => report.skipped += 1,
                Ok((Woke::Wait, _)) => report.waits += 1,
                Ok((Woke::Timeout, _)) => report.timeouts += 1,
                Ok((Woke::Resumed, _)) => report.resumed += 1,
                Ok((Woke::Nothing, _)) => {}
                Err(e) => {
                    tracing::warn!(instance = %id, error = %e, "flow instance failed in tick");
                    report.failures.push((id, e));
                }
            }
        }
        Ok(report)
    }

    /// Hands the conversations of `contact` back from the human agent: every instance of the
    /// contact waiting at a handover goes on. Returns the instances released.
    pub async fn release(&self, contact: &ContactId) -> Result<Vec<InstanceId>, ProcessError> {
        let mut released = Vec::new();
        for inst in self.inner.store.active_for(contact).await? {
            let (flow, pos) = match self
                .flow_of(&inst)
                .and_then(|f| Ok((position(&f, &inst)?, f)))
            {
                Ok((pos, flow)) => (flow, pos),
                Err(e) => {
                    // `tick` reports it; releasing the contact's other flows goes on.
                    tracing::warn!(instance = %inst.id, error = %e, "flow instance that cannot run not released");
                    continue;
                }
            };
            let Step::Handover { next, .. } = &flow.steps[pos] else {
                continue;
            };
            if inst.status != InstanceStatus::Waiting {
                continue;
            }
            let next = *next;
            let id = inst.id.clone();
            let mut run = self.run(inst, flow, false);
            self.enter(&mut run, next);
            match self.drive(&mut run).await {
                Ok(Outcome::Lost) => {}
                Ok(_) => released.push(id),
                Err(e) if run.committed => {
                    tracing::warn!(instance = %id, error = %e, "released flow failed after");
                    released.push(id);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(released)
    }

    async fn start_flow(
        &self,
        flow_id: &FlowId,
        contact_id: &ContactId,
    ) -> Result<InstanceId, ProcessError> {
        let (version, flow) = self
            .inner
            .registry
            .latest(flow_id)
            .ok_or_else(|| ProcessError::UnknownFlow(flow_id.clone()))?;
        let contact = self
            .inner
            .directory
            .get(contact_id)
            .await?
            .ok_or_else(|| ProcessError::UnknownContact(contact_id.clone()))?;
        let now = self.inner.clock.now();
        let start = flow.start().to_owned();
        let mut inst = ProcessInstance::new(
            new_instance_id(),
            flow_id.clone(),
            version,
            contact_id.clone(),
            start.clone(),
        );
        inst.due_at = Some(now.saturating_add(self.inner.lease));
        inst.history.push(StepRecord::new(start, now));
        match self.inner.store.insert(&inst).await {
            Ok(()) => {}
            Err(e) if e.is_conflict() => {
                return Err(ProcessError::AlreadyRunning {
                    flow: flow_id.clone(),
                    contact: contact_id.clone(),
                });
            }
            Err(e) => return Err(e.into()),
        }
        let id = inst.id.clone();
        let mut run = self.run(inst, flow, false);
        run.committed = true;
        run.contact = Some(contact);
        self.drive(&mut run).await?;
        Ok(id)
    }

    async fn handle(&self, contact: &ContactId, event: &Inbound) -> Result<Offer, ProcessError> {
        match &event.kind {
            InboundKind::Answer { payload, .. } => match self.inner.keys.verify(payload) {
                Ok(answer) => self.answer(contact, answer).await,
                Err(PayloadError::NotOurs) => Ok(Offer::NotConsumed),
                Err(_) => Ok(ignored(contact, None, IgnoredAnswer::Forged)),
            },
            InboundKind::Text { text, .. } => self.typed(contact, text).await,
            _ => Ok(Offer::NotConsumed),
        }
    }

    /// Applies the answer `a` (from a payload, or typed text matched to an option).
    async fn answer(&self, contact: &ContactId, a: AnswerPayload) -> Result<Offer, ProcessError> {
        let id = Some(a.instance.clone());
        for _ in 0..RACE_RETRIES {
            let Some(inst) = self.inner.store.get(&a.instance).await? else {
                return Ok(ignored(contact, None, IgnoredAnswer::UnknownInstance));
            };
            if inst.contact != *contact {
                return Ok(ignored(contact, None, IgnoredAnswer::WrongContact));
            }
            if a.visit != visit_of(&inst) || inst.is_finished() {
                let again = usize::try_from(a.visit)
                    .ok()
                    .and_then(|v| inst.history.get(v))
                    .is_some_and(|r| r.choice == Some(a.option));
                let reason = if again {
                    IgnoredAnswer::Duplicate
                } else if inst.is_finished() {
                    IgnoredAnswer::Finished
                } else {
                    IgnoredAnswer::Stale
                };
                return Ok(ignored(contact, id, reason));
            }
            let Ok(flow) = self.flow_of(&inst) else {
                return Ok(ignored(contact, id, IgnoredAnswer::UnknownFlowVersion));
            };
            let Ok(pos) = position(&flow, &inst) else {
                return Ok(ignored(contact, id, IgnoredAnswer::UnknownStep));
            };
            let Step::Question { options, .. } = &flow.steps[pos] else {
                return Ok(ignored(contact, id, IgnoredAnswer::Stale));
            };
            let Some(option) = options.get(usize::from(a.option)) else {
                return Ok(ignored(contact, id, IgnoredAnswer::Stale));
            };
            let (label, next) = (option.label.clone(), option.next);
            let mut run = self.run(inst, flow.clone(), true);
            if let Some(record) = run.inst.history.last_mut() {
                record.answer = Some(label);
                record.choice = Some(a.option);
            }
            self.enter(&mut run, next);
            match self.drive(&mut run).await {
                Ok(Outcome::Lost) => continue,
                Ok(_) => {
                    return Ok(Offer::Consumed {
                        instance: a.instance,
                    });
                }
                Err(e) if run.committed => {
                    tracing::warn!(instance = %a.instance, error = %e, "answer taken, the flow failed after");
                    return Ok(Offer::Consumed {
                        instance: a.instance,
                    });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(ignored(contact, id, IgnoredAnswer::Contended))
    }

    /// Typed text: an option's label of an open question, or free text.
    async fn typed(&self, contact: &ContactId, text: &str) -> Result<Offer, ProcessError> {
        for _ in 0..RACE_RETRIES {
            let active = self.inner.store.active_for(contact).await?;
            if active.is_empty() {
                return Ok(Offer::NotConsumed);
            }
            let mut open = Vec::new();
            for inst in active {
                // An instance that cannot run takes no answer, as in `answer`; it is skipped
                // so the text can still answer the contact's other flows.
                let flow = match self.flow_of(&inst) {
                    Ok(flow) => flow,
                    Err(e) => {
                        tracing::warn!(instance = %inst.id, %contact, error = %e, "typed text not offered to a flow instance that cannot run");
                        continue;
                    }
                };
                let pos = match position(&flow, &inst) {
                    Ok(pos) => pos,
                    Err(e) => {
                        tracing::warn!(instance = %inst.id, %contact, error = %e, "typed text not offered to a flow instance that cannot run");
                        continue;
                    }
                };
                match &flow.steps[pos] {
                    Step::Handover { .. } if inst.status == InstanceStatus::Waiting => {
                        // A human has the conversation.
                        return Ok(Offer::NotConsumed);
                    }
                    Step::Question { .. } => open.push((inst, flow, pos)),
                    _ => {}
                }
            }
            // The question asked last first.
            open.sort_by_key(|(inst, _, _)| std::cmp::Reverse(inst.history.last().map(|r| r.at)));
            let typed = normalize(text);
            // Nothing typed (only spaces or punctuation) never matches an option.
            for (inst, flow, pos) in open.iter().filter(|_| !typed.is_empty()) {
                if let Step::Question { options, .. } = &flow.steps[*pos] {
                    if let Some(i) = options.iter().position(|o| o.normalized == typed) {
                        let option = u8::try_from(i).unwrap_or(u8::MAX);
                        let answer = AnswerPayload::new(inst.id.clone(), visit_of(inst), option);
                        return self.answer(contact, answer).await;
                    }
                }
            }
            let Some((inst, flow, pos)) = open.into_iter().next() else {
                return Ok(Offer::NotConsumed);
            };
            let Step::Question {
                text: question,
                options,
                style,
                on_text,
                ..
            } = &flow.steps[pos]
            else {
                return Ok(Offer::NotConsumed);
            };
            let instance = inst.id.clone();
            match on_text {
                OnText::Inbox => return Ok(Offer::NotConsumed),
                OnText::Reprompt => {
                    let mut run = self.run(inst, flow.clone(), true);
                    let sent = match self.question(&mut run, question, options, *style).await {
                        Ok(message) => self
                            .send(&mut run, &message, Intent::Reply)
                            .await
                            .map_err(Into::into),
                        Err(e) => Err(e),
                    };
                    if let Err(e) = sent {
                        tracing::warn!(%instance, error = %e, "question not asked again");
                    }
                    return Ok(Offer::Consumed { instance });
                }
                OnText::Goto(next) => {
                    let next = *next;
                    let mut run = self.run(inst, flow.clone(), true);
                    if let Some(record) = run.inst.history.last_mut() {
                        record.answer = Some(text.to_owned());
                    }
                    self.enter(&mut run, next);
                    match self.drive(&mut run).await {
                        Ok(Outcome::Lost) => continue,
                        Ok(_) => return Ok(Offer::Consumed { instance }),
                        Err(e) if run.committed => {
                            tracing::warn!(%instance, error = %e, "answer taken, the flow failed after");
                            return Ok(Offer::Consumed { instance });
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(Offer::NotConsumed)
    }

    async fn wake(
        &self,
        inst: ProcessInstance,
        now: Timestamp,
    ) -> Result<(Woke, Outcome), ProcessError> {
        let flow = match self.flow_of(&inst) {
            Ok(flow) => flow,
            Err(e) => return self.set_aside(inst, now, e).await,
        };
        let pos = match position(&flow, &inst) {
            Ok(pos) => pos,
            Err(e) => {
                // A corrupt store: the instance can never move again.
                let mut run = self.run(inst, flow, false);
                run.floor = now;
                return self.fail(&mut run, e).await.map(|o| (Woke::Nothing, o));
            }
        };
        let mut run = self.run(inst, flow.clone(), false);
        run.floor = now;
        let woke = if run.inst.status == InstanceStatus::Running {
            // A step in progress whose lease ran out (a crash), or a retry after a failure.
            run.dirty = true;
            Woke::Resumed
        } else {
            match &flow.steps[pos] {
                Step::Wait { next, .. } => {
                    self.enter(&mut run, *next);
                    Woke::Wait
                }
                Step::Question {
                    timeout: Some((_, next)),
                    ..
                } => {
                    self.enter(&mut run, *next);
                    Woke::Timeout
                }
                _ => {
                    run.inst.due_at = None;
                    let outcome = self.write_last(&mut run).await?;
                    return Ok((Woke::Nothing, outcome));
                }
            }
        };
        let outcome = self.drive(&mut run).await?;
        Ok((woke, outcome))
    }

    /// An instance whose flow version is not defined cannot move; it is put off by
    /// `retry_after` so it leaves `tick`'s batch (and does not hold up the instances behind
    /// it), and the error is returned for `tick` to report. It moves again once the version is
    /// defined.
    async fn set_aside(
        &self,
        mut inst: ProcessInstance,
        now: Timestamp,
        error: ProcessError,
    ) -> Result<(Woke, Outcome), ProcessError> {
        inst.due_at = Some(now.saturating_add(self.inner.retry_after));
        match self.inner.store.update(&inst).await {
            Ok(_) => Err(error),
            Err(e) if e.is_conflict() => Ok((Woke::Nothing, Outcome::Lost)),
            Err(e) => Err(e.into()),
        }
    }

    fn run(&self, inst: ProcessInstance, flow: Arc<Compiled>, reply: bool) -> Run {
        Run {
            inst,
            flow,
            dirty: false,
            committed: false,
            contact: None,
            reply,
            floor: Timestamp::from_millis(i64::MIN),
        }
    }

    fn flow_of(&self, inst: &ProcessInstance) -> Result<Arc<Compiled>, ProcessError> {
        self.inner
            .registry
            .get(&inst.flow, inst.flow_version)
            .ok_or_else(|| ProcessError::UnknownVersion {
                flow: inst.flow.clone(),
                version: inst.flow_version,
            })
    }

    /// The current time for `run`: the clock, read now (a drive with slow sends spans
    /// minutes, so a time read at its start would be stale by its end).
    fn now(&self, run: &Run) -> Timestamp {
        self.inner.clock.now().max(run.floor)
    }

    fn enter(&self, run: &mut Run, pos: usize) {
        let step = run.flow.id(pos).to_owned();
        run.inst.step.clone_from(&step);
        let at = self.now(run);
        run.inst.history.push(StepRecord::new(step, at));
        run.dirty = true;
    }

    /// Moves the instance through blocks until it has to wait; see the module docs for the
    /// order of writes and effects.
    async fn drive(&self, run: &mut Run) -> Result<Outcome, ProcessError> {
        loop {
            let pos = position(&run.flow, &run.inst)?;
            let flow = run.flow.clone();
            match &flow.steps[pos] {
                Step::Send {
                    text,
                    next,
                    purpose,
                } => {
                    if let Some(outcome) = self.say(run, text, *purpose).await? {
                        return Ok(outcome);
                    }
                    self.enter(run, *next);
                }
                Step::Question {
                    text,
                    options,
                    style,
                    timeout,
                    purpose,
                    ..
                } => {
                    let message = match self.question(run, text, options, *style).await {
                        Ok(m) => m,
                        Err(e) => return self.fail(run, e).await,
                    };
                    if let Some(outcome) = self.deliver(run, &message, *purpose).await? {
                        return Ok(outcome);
                    }
                    run.inst.status = InstanceStatus::Waiting;
                    let now = self.now(run);
                    run.inst.due_at = timeout.map(|(after, _)| now.saturating_add(after));
                    return self.write_last(run).await;
                }
                Step::Wait { duration, .. } => {
                    run.inst.status = InstanceStatus::Waiting;
                    run.inst.due_at = Some(self.now(run).saturating_add(*duration));
                    return self.write_last(run).await;
                }
                Step::Branch { cases, otherwise } => {
                    let mut next = *otherwise;
                    for (test, target) in cases {
                        if self.holds(run, test).await? {
                            next = *target;
                            break;
                        }
                    }
                    self.enter(run, next);
                }
                Step::SetField { field, value, next } => {
                    run.inst.vars.insert(field.clone(), value.clone());
                    run.dirty = true;
                    if let Some(fields) = &self.inner.fields {
                        if !self.claim(run).await? {
                            return Ok(lost(run));
                        }
                        fields.set_field(&run.inst.contact, field, value).await?;
                    }
                    if let Some(contact) = run.contact.as_mut() {
                        contact.fields.insert(field.clone(), value.clone());
                    }
                    self.enter(run, *next);
                }
                Step::Handover { text, purpose, .. } => {
                    if let Some(text) = text {
                        if let Some(outcome) = self.say(run, text, *purpose).await? {
                            return Ok(outcome);
                        }
                    }
                    run.inst.status = InstanceStatus::Waiting;
                    run.inst.due_at = None;
                    return self.write_last(run).await;
                }
                Step::End => {
                    run.inst.status = InstanceStatus::Finished;
                    run.inst.due_at = None;
                    return self.write_last(run).await;
                }
            }
        }
    }

    /// Writes the instance; `false` when another writer got there first.
    async fn write(&self, run: &mut Run) -> Result<bool, ProcessError> {
        match self.inner.store.update(&run.inst).await {
            Ok(revision) => {
                run.inst.revision = revision;
                run.dirty = false;
                run.committed = true;
                Ok(true)
            }
            Err(e) if e.is_conflict() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The last write of a drive.
    async fn write_last(&self, run: &mut Run) -> Result<Outcome, ProcessError> {
        if self.write(run).await? {
            Ok(Outcome::Settled)
        } else {
            Ok(lost(run))
        }
    }

    /// Stores the instance as running at its step, with a lease, before an effect.
    async fn claim(&self, run: &mut Run) -> Result<bool, ProcessError> {
        if !run.dirty && run.inst.status == InstanceStatus::Running {
            return Ok(true);
        }
        run.inst.status = InstanceStatus::Running;
        run.inst.due_at = Some(self.now(run).saturating_add(self.inner.lease));
        self.write(run).await
    }

    /// Claims the step and sends `message`. `Some` when the drive stops here.
    /// Renders `text` for the contact and delivers it as a plain message. `Some` when the
    /// drive stops here: the render failed (the instance fails) or the send did not go out.
    async fn say(
        &self,
        run: &mut Run,
        text: &Template,
        purpose: Intent,
    ) -> Result<Option<Outcome>, ProcessError> {
        let message = match self.render(run, text).await {
            Ok(text) => Message::text(text).map_err(ProcessError::from),
            Err(e) => Err(e),
        };
        match message {
            Ok(message) => self.deliver(run, &message, purpose).await,
            Err(e) => self.fail(run, e).await.map(Some),
        }
    }

    async fn deliver(
        &self,
        run: &mut Run,
        message: &Message,
        purpose: Intent,
    ) -> Result<Option<Outcome>, ProcessError> {
        if !self.claim(run).await? {
            return Ok(Some(lost(run)));
        }
        match self.send(run, message, purpose).await {
            Ok(()) => {
                run.inst.attempts = 0;
                Ok(None)
            }
            Err(e)
                if e.is_retryable()
                    && run.inst.attempts.saturating_add(1) >= self.inner.max_attempts =>
            {
                tracing::warn!(instance = %run.inst.id, attempts = self.inner.max_attempts, "flow message not delivered after every attempt");
                run.inst.attempts = run.inst.attempts.saturating_add(1);
                self.fail(run, e.into()).await.map(Some)
            }
            Err(e) if e.is_retryable() => {
                run.inst.attempts = run.inst.attempts.saturating_add(1);
                let after = e.retry_after().unwrap_or(self.inner.retry_after);
                tracing::warn!(instance = %run.inst.id, error = %e, "flow message not delivered, will retry");
                run.inst.due_at = Some(self.now(run).saturating_add(after));
                self.write(run).await?;
                Ok(Some(Outcome::Pending))
            }
            Err(e) => self.fail(run, e.into()).await.map(Some),
        }
    }

    /// Sends `message` through the transports in order (see
    /// [`FlowEngineBuilder::transport`]); `purpose` is the intent unless the run replies.
    async fn send(
        &self,
        run: &mut Run,
        message: &Message,
        purpose: Intent,
    ) -> Result<(), DeliveryError> {
        let intent = if run.reply { Intent::Reply } else { purpose };
        let ctx = SendContext::new(intent).with_idempotency_key(format!(
            "{}:{}",
            run.inst.id,
            visit_of(&run.inst)
        ));
        let routes = Fallback::new(
            self.inner
                .transports
                .iter()
                .filter(|t| t.capabilities().check(message).is_ok())
                .cloned(),
        );
        if routes.transports().is_empty() {
            return Err(DeliveryError::invalid_message(
                "none of the flow engine's transports can show this message",
            ));
        }
        let contact = match self.contact(run).await {
            Ok(c) => c,
            Err(e) => return Err(DeliveryError::unreachable(e.to_string())),
        };
        // Bounded well inside the lease taken before the send, so `tick` never takes the step
        // up again while this send may still deliver.
        let addresses = contact.reachable_addresses();
        let sending = routes.send(&addresses, message, &ctx);
        let sent = match self.inner.send_timeout {
            Some(limit) => match tokio::time::timeout(limit, sending).await {
                Ok(sent) => sent,
                Err(_) => {
                    return Err(DeliveryError::retryable(format!(
                        "the send took longer than {} ms",
                        limit.as_millis()
                    )));
                }
            },
            None => sending.await,
        };
        match sent {
            Ok(delivered) => {
                if !delivered.passed_over.is_empty() {
                    tracing::info!(
                        instance = %run.inst.id,
                        channel = %delivered.receipt.channel,
                        passed_over = delivered.passed_over.len(),
                        "flow message delivered on a fallback route"
                    );
                }
                if let Some(inbox) = &self.inner.inbox {
                    let entry = crate::inbox::Outgoing::new(message.clone())
                        .with_author(format!("flow:{}", run.inst.flow))
                        .with_delivery(crate::inbox::DeliveryRecord::sent(
                            delivered.receipt.channel,
                            delivered.receipt.message_ids,
                        ));
                    let at = self.now(run);
                    if let Err(e) = inbox.record_outgoing(&run.inst.contact, at, entry).await {
                        tracing::warn!(instance = %run.inst.id, error = %e, "the flow's message is not in the inbox");
                    }
                }
                Ok(())
            }
            Err(undelivered) => Err(undelivered.last_error().cloned().unwrap_or_else(|| {
                DeliveryError::unreachable(
                    "the contact has no address on the flow engine's transports",
                )
            })),
        }
    }

    /// Marks the instance failed for good and returns `error`.
    async fn fail(&self, run: &mut Run, error: ProcessError) -> Result<Outcome, ProcessError> {
        tracing::warn!(instance = %run.inst.id, step = %run.inst.step, %error, "flow instance failed");
        run.inst.status = InstanceStatus::Failed;
        run.inst.due_at = None;
        self.write(run).await?;
        Err(error)
    }

    async fn contact<'r>(&self, run: &'r mut Run) -> Result<&'r Contact, ProcessError> {
        if run.contact.is_none() {
            let mut contact = self
                .inner
                .directory
                .get(&run.inst.contact)
                .await?
                .ok_or_else(|| ProcessError::UnknownContact(run.inst.contact.clone()))?;
            for (name, value) in &run.inst.vars {
                contact.fields.insert(name.clone(), value.clone());
            }
            run.contact = Some(contact);
        }
        run.contact
            .as_ref()
            .ok_or_else(|| ProcessError::UnknownContact(run.inst.contact.clone()))
    }

    async fn render(&self, run: &mut Run, template: &Template) -> Result<String, ProcessError> {
        let contact = self.contact(run).await?;
        Ok(template.render(contact, &self.inner.no_vars)?)
    }

    async fn question(
        &self,
        run: &mut Run,
        text: &Template,
        options: &[CompiledOption],
        style: Option<ChoiceStyle>,
    ) -> Result<Message, ProcessError> {
        let text = self.render(run, text).await?;
        let visit = visit_of(&run.inst);
        let mut message = Message::builder(text).style(style.unwrap_or(self.inner.style));
        for (i, option) in options.iter().enumerate() {
            let payload = self.inner.keys.sign(&AnswerPayload::new(
                run.inst.id.clone(),
                visit,
                u8::try_from(i).unwrap_or(u8::MAX),
            ));
            message = message.choice(option.label.as_str(), payload);
        }
        Ok(message.build()?)
    }

    async fn holds(&self, run: &mut Run, test: &Test) -> Result<bool, ProcessError> {
        Ok(match test {
            Test::Field { name, equals } => {
                let contact = self.contact(run).await?;
                let value = contact.fields.get(name);
                match equals {
                    None => value.is_some_and(|v| !v.is_null()),
                    Some(expected) => value == Some(expected),
                }
            }
            Test::Answer { question, label } => run
                .inst
                .history
                .iter()
                .rev()
                .find(|r| r.step == *question)
                .is_some_and(|r| {
                    r.choice.is_some() && r.answer.as_deref().map(normalize).as_ref() == Some(label)
                }),
        })
    }
}

fn lost(run: &Run) -> Outcome {
    if run.committed {
        Outcome::Settled
    } else {
        Outcome::Lost
    }
}

fn position(flow: &Compiled, inst: &ProcessInstance) -> Result<usize, ProcessError> {
    flow.position(&inst.step)
        .ok_or_else(|| ProcessError::UnknownStep {
            instance: inst.id.clone(),
            step: inst.step.clone(),
        })
}

fn ignored(contact: &ContactId, instance: Option<InstanceId>, reason: IgnoredAnswer) -> Offer {
    tracing::warn!(%contact, instance = ?instance, %reason, "flow answer ignored");
    Offer::Ignored { instance, reason }
}

#[async_trait]
impl ProcessEngine for FlowEngine {
    async fn start(&self, flow: &FlowId, contact: &ContactId) -> Result<InstanceId, ProcessError> {
        self.start_flow(flow, contact).await
    }

    async fn offer(&self, contact: &ContactId, event: &Inbound) -> Result<Offer, ProcessError> {
        self.handle(contact, event).await
    }
}

#[cfg(all(test, feature = "memory"))]
#[path = "engine_tests.rs"]
mod tests;
