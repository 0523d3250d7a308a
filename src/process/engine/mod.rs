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

mod answer;
mod builder;
mod delivery;
mod drive;
mod registry;
mod tick;

pub use builder::FlowEngineBuilder;
pub use registry::{DefineError, FlowRegistry};
pub use tick::TickReport;

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;

use super::{
    FlowId, InstanceId, Offer, ProcessEngine, ProcessError, ProcessInstance, ProcessStore,
    validate::Compiled,
};
use crate::{
    clock::{SharedClock, Timestamp},
    contact::{Contact, ContactId},
    error::StoreError,
    identity::Directory,
    keys::KeyRing,
    message::{ChoiceStyle, Inbound},
    template::CampaignVars,
    transport::TransportSet,
};

// Named by the module docs only.
#[cfg(doc)]
use super::validate::Limits;
// Named by the module docs and by the tests (`use super::*`).
#[cfg(any(doc, all(test, feature = "memory")))]
use super::{IgnoredAnswer, InstanceStatus};
#[cfg(any(doc, all(test, feature = "memory")))]
use crate::{message::Message, transport::Intent};
// Named by the tests (`use super::*`) only.
#[cfg(all(test, feature = "memory"))]
use super::{flow::Flow, payload::AnswerPayload};
#[cfg(all(test, feature = "memory"))]
use crate::{
    message::InboundKind,
    transport::{DeliveryError, SendContext},
};
#[cfg(all(test, feature = "memory"))]
use std::sync::atomic::Ordering;

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

struct Inner {
    registry: FlowRegistry,
    store: Arc<dyn ProcessStore>,
    directory: Arc<dyn Directory>,
    transports: TransportSet,
    keys: KeyRing,
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
///     keys::SigningKey,
///     process::{Flow, FlowEngine, FlowId, ProcessEngine},
///     secrecy::SecretSlice,
///     store::memory::{MemoryDirectory, MemoryProcessStore},
///     transport::stub::StubTransport,
/// };
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let directory = Arc::new(MemoryDirectory::new());
/// let messenger = Arc::new(StubTransport::new(Channel::Messenger));
/// let keys = SigningKey::new(1, SecretSlice::from(vec![3u8; 32]))?;
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

fn visit_of(inst: &ProcessInstance) -> u32 {
    u32::try_from(inst.history.len().saturating_sub(1)).unwrap_or(u32::MAX)
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
#[path = "../engine_tests.rs"]
mod tests;
