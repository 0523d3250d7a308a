//! Running a campaign: stream the segment, render, send with bounded concurrency, record
//! exactly one outcome per recipient.
//!
//! # How a recipient is handled
//!
//! 1. Opted out, or no address on any of the campaign's transports: the skip is recorded
//!    ([`Outbox::record`]) and nothing is sent.
//! 2. Once the run is not paused and no rate-limit pause is under way, the text is rendered
//!    for the recipient and login links are made. A render failure is recorded as failed with
//!    its reason ([`Outbox::record`], no claim): a missing variable never sends an empty
//!    greeting.
//! 3. The recipient is claimed ([`Outbox::claim`]). A recipient with any earlier record (sent,
//!    skipped, failed, or a claim left pending by a crash) is not sent to again; its outcome
//!    counts in [`Report::total`] only.
//! 4. Right after the claim the message goes through the campaign's transports in order
//!    ([`Fallback`]): a transport that cannot reach the recipient or refuses for policy
//!    (window closed) passes to the next. A temporary failure is retried with exponential
//!    backoff; a rate-limit failure (one with a retry-after) pauses the *whole* campaign for
//!    that long (at most [`MAX_PAUSE`]) before the retry, without using up the recipient's
//!    retries (up to [`MAX_PAUSES_PER_RECIPIENT`] pauses).
//! 5. The claim is finished with the outcome ([`Outbox::finish`]) as soon as the send returns.
//!
//! # The window between claim and record
//!
//! A recipient is *uncertain* when its claim (3) is stored but its outcome (5) is not: the
//! process died (killed, crashed, lost power) or the store failed to write the outcome while
//! the recipient was in flight. Only recipients in flight can be left so, so one stop leaves
//! at most [`CampaignRunnerBuilder::concurrency`] of them. Whether an uncertain recipient got the
//! message is unknown to the crate: the process may have died before the request left, while
//! the transport had it, or after the answer came back. The Messenger Send API takes no
//! idempotency key, so sending again could deliver a second copy; the crate never resends
//! them on its own (at most once: a newsletter sent twice is worse than one maybe missing).
//! The resumed run counts them ([`Counts::uncertain`]) and names them ([`Report::uncertain`])
//! so that the host can check them (the Page's conversation shows whether the message is
//! there) and send to them with a new campaign if it must.
//!
//! The window is one recipient's send, with that send's own retries and rate-limit pauses:
//! rendering happens before the claim, and the record follows the send with nothing in
//! between. Waiting for a paused run or a rate-limit pause happens before the claim too, so
//! a stop while waiting leaves nothing pending. Skips (opted out, no address) and render
//! failures are recorded in one write without a claim and are never uncertain.
//!
//! # Stopping on errors
//!
//! A store error, or a transport refusing its credentials ([`CampaignError::Unauthorized`]:
//! an expired Page token would otherwise fail every remaining recipient), stops the run: no
//! new recipient is taken, those in flight finish and are recorded, and the error is
//! returned. Run the campaign again once the cause is fixed.
//!
//! # Memory and speed
//!
//! The segment is read a page at a time ([`CampaignRunnerBuilder::page_size`]) while at most
//! [`CampaignRunnerBuilder::concurrency`] recipients are in flight, so memory does not grow with the
//! segment. Throughput is bounded by the transports (their rate limiters) and the store.
//!
//! # Control and progress
//!
//! A [`RunControl`] pauses, resumes and cancels a run from another task, and publishes
//! [`Progress`] on a `tokio::sync::watch` channel: reading it is a lock-free borrow of the
//! latest value. A cancelled run stops taking new recipients, lets those in flight finish, and
//! returns its report; running the campaign again continues where it stopped.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use backon::{BackoffBuilder, ExponentialBuilder};
use futures_util::{StreamExt, future::BoxFuture, stream::FuturesUnordered};
use tokio::sync::watch;

use super::{
    Campaign, CampaignId, Outbox, Outcome, OutcomeRecord, Recorded, SkipReason,
    batches::{Batch, CampaignBatches, DEFAULT_LEASE, Position, WorkerId},
    login::LoginLinkError,
};
use crate::{
    clock::{SharedClock, SystemClock, Timestamp},
    contact::{Address, Channel, Contact, ContactId},
    error::StoreError,
    message::{Link, Message, MessageError},
    segment::{Cursor, FieldOp, Segment, SegmentPage, SegmentQuery},
    sync::lock,
    transport::{
        DeliveryErrorKind, Fallback, SendContext, SharedTransport, TransportSet,
        fallback::{AttemptFailure, Undelivered},
    },
};

/// Recipients in flight at once unless configured.
pub const DEFAULT_CONCURRENCY: usize = 32;

/// The longest campaign-wide pause one rate-limit error causes, whatever the transport asks.
pub const MAX_PAUSE: Duration = Duration::from_secs(300);

/// Rate-limit pauses one recipient may wait through before it is recorded as failed.
pub const MAX_PAUSES_PER_RECIPIENT: usize = 20;

/// Contacts read per segment page unless configured.
pub const DEFAULT_PAGE_SIZE: usize = 500;

/// The most uncertain recipients a [`Report`] names ([`Report::uncertain`]); the count
/// ([`Counts::uncertain`]) covers all of them.
pub const MAX_UNCERTAIN_LISTED: usize = 1000;

/// Why a run stopped before the end. Nothing recorded is lost: run the campaign again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CampaignError {
    /// The campaign names a channel no transport of the runner serves.
    #[error("no transport for channel {0}")]
    NoTransport(Channel),
    /// Reading the segment or writing an outcome failed.
    #[error("campaign store failed")]
    Store(#[from] StoreError),
    /// A transport refused its credentials (an expired Page token, say). The run stopped
    /// rather than record every remaining recipient as failed: fix the credentials and run
    /// the campaign again. The recipient that met the refusal is recorded as failed.
    #[error("a transport refused its credentials; the run stopped: {0}")]
    Unauthorized(String),
}

/// Whether a run goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunState {
    /// Sending.
    Running,
    /// Paused: nothing new is sent until resumed.
    Paused,
    /// Cancelled: no new recipient is taken.
    Cancelled,
    /// Ended on its own: the segment was read to its end (or an error stopped it; the run's
    /// result says which).
    Finished,
}

/// A snapshot of a run's progress.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Progress {
    /// The number of recipients: counted at the start when the segment store can count
    /// ([`crate::segment::SegmentQuery::count`], for a run of one
    /// worker), and the number handled once the run ends. `None` until then otherwise.
    pub total: Option<u64>,
    /// Recipients handled so far in this run (each has an outcome).
    pub done: u64,
    /// Sent in this run.
    pub sent: u64,
    /// Skipped in this run.
    pub skipped: u64,
    /// Failed in this run.
    pub failed: u64,
    /// Already had an outcome from an earlier run.
    pub earlier: u64,
    /// Recipients handled per second in this run so far.
    pub rate: f64,
    /// Whether the run is going on.
    pub state: RunState,
    /// Whether the run has ended.
    pub finished: bool,
}

impl Progress {
    fn new() -> Self {
        Progress {
            total: None,
            done: 0,
            sent: 0,
            skipped: 0,
            failed: 0,
            earlier: 0,
            rate: 0.0,
            state: RunState::Running,
            finished: false,
        }
    }
}

/// Pauses, resumes, cancels and watches a run; clone it to hand it to another task.
#[derive(Debug, Clone)]
pub struct RunControl {
    state: Arc<watch::Sender<RunState>>,
    progress: Arc<watch::Sender<Progress>>,
}

impl Default for RunControl {
    fn default() -> Self {
        RunControl::new()
    }
}

impl RunControl {
    /// A control for a run that starts running.
    pub fn new() -> Self {
        RunControl {
            state: Arc::new(watch::Sender::new(RunState::Running)),
            progress: Arc::new(watch::Sender::new(Progress::new())),
        }
    }

    /// Pauses the run (recipients in flight finish).
    pub fn pause(&self) {
        self.set(RunState::Paused);
    }

    /// Resumes a paused run.
    pub fn resume(&self) {
        self.set(RunState::Running);
    }

    /// Cancels the run; it returns once the recipients in flight are recorded.
    pub fn cancel(&self) {
        self.set(RunState::Cancelled);
    }

    fn set(&self, state: RunState) {
        self.state.send_if_modified(|s| {
            // A cancelled run stays cancelled.
            let change = *s != state && *s != RunState::Cancelled;
            if change {
                *s = state;
            }
            change
        });
        self.progress
            .send_modify(|p| p.state = *self.state.borrow());
    }

    /// The run's state.
    pub fn state(&self) -> RunState {
        *self.state.borrow()
    }

    /// A receiver of progress snapshots (`borrow()` for the latest, `changed()` to wait).
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// Waits while paused; `false` once cancelled.
    async fn proceed(&self) -> bool {
        let mut rx = self.state.subscribe();
        loop {
            let state = *rx.borrow_and_update();
            match state {
                RunState::Running => return true,
                RunState::Cancelled | RunState::Finished => return false,
                RunState::Paused => {
                    if rx.changed().await.is_err() {
                        return false;
                    }
                }
            }
        }
    }
}

/// Outcome counts, overall and per channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Counts {
    /// Sent.
    pub sent: u64,
    /// Skipped, per reason.
    pub skipped: BTreeMap<SkipReason, u64>,
    /// Failed.
    pub failed: u64,
    /// Uncertain: claimed by a run that stopped before recording the outcome, so maybe sent;
    /// never resent (see the [module docs](self#the-window-between-claim-and-record)).
    pub uncertain: u64,
    /// Sent, per channel of the delivering transport.
    pub sent_by_channel: BTreeMap<Channel, u64>,
}

impl Counts {
    /// Every recipient counted.
    pub fn recipients(&self) -> u64 {
        self.sent + self.skipped.values().sum::<u64>() + self.failed + self.uncertain
    }

    /// Skipped, all reasons.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    fn add(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Pending => self.uncertain += 1,
            Outcome::Sent { channel, .. } => {
                self.sent += 1;
                *self.sent_by_channel.entry(channel.clone()).or_default() += 1;
            }
            Outcome::Skipped { reason } => *self.skipped.entry(*reason).or_default() += 1,
            Outcome::Failed { .. } => self.failed += 1,
        }
    }
}

/// What a run did (serializable for an admin API or a log).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Report {
    /// The campaign.
    pub campaign: CampaignId,
    /// Outcomes recorded by this run.
    pub this_run: Counts,
    /// Outcomes of every recipient this run saw, earlier runs' included.
    pub total: Counts,
    /// The uncertain recipients this run met (claims an earlier run left pending: maybe sent,
    /// never resent; see the [module docs](self#the-window-between-claim-and-record)), in
    /// contact-id order. At most [`MAX_UNCERTAIN_LISTED`] are named: when
    /// `total.uncertain` is larger, the list holds the first ones met.
    pub uncertain: Vec<ContactId>,
    /// Whether the run was cancelled before the end of the segment.
    pub cancelled: bool,
    /// How long the run took.
    pub elapsed: Duration,
}

/// Runs campaigns over a segment store, an outbox and transports; see the [module docs](self).
#[derive(Clone)]
pub struct CampaignRunner {
    segments: Arc<dyn SegmentQuery>,
    outbox: Arc<dyn Outbox>,
    transports: TransportSet,
    clock: SharedClock,
    concurrency: usize,
    page_size: usize,
    retries: usize,
    retry_delay: Duration,
    inbox: Option<Arc<dyn crate::inbox::Inbox>>,
    lease: Duration,
}

impl std::fmt::Debug for CampaignRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CampaignRunner")
            .field("transports", &self.transports)
            .field("concurrency", &self.concurrency)
            .field("page_size", &self.page_size)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

/// Shared state of one run.
struct Run<'a> {
    campaign: &'a Campaign,
    fallback: Fallback,
    context: SendContext,
    control: &'a RunControl,
    started: Timestamp,
    /// The campaign-wide pause after a rate-limit error: no send before this (monotonic)
    /// time. Not the injected clock: a pause is real waiting.
    pause_until: Mutex<Option<tokio::time::Instant>>,
    counts: Mutex<Tally>,
}

/// What a run counted so far.
#[derive(Clone)]
struct Tally {
    this_run: Counts,
    total: Counts,
    progress: Progress,
    /// The first [`MAX_UNCERTAIN_LISTED`] uncertain recipients met.
    uncertain: Vec<ContactId>,
}

/// Builds a [`CampaignRunner`]: `CampaignRunner::builder(segments, outbox)`, then the
/// transports and options, then [`build`](Self::build).
#[derive(Clone)]
pub struct CampaignRunnerBuilder {
    runner: CampaignRunner,
}

impl std::fmt::Debug for CampaignRunnerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CampaignRunnerBuilder")
            .field("runner", &self.runner)
            .finish()
    }
}

impl CampaignRunner {
    /// Starts building a runner that reads recipients from `segments` and records outcomes in
    /// `outbox`. Add the transports it may send with ([`transport`](CampaignRunnerBuilder::transport)).
    pub fn builder(
        segments: Arc<dyn SegmentQuery>,
        outbox: Arc<dyn Outbox>,
    ) -> CampaignRunnerBuilder {
        CampaignRunnerBuilder {
            runner: CampaignRunner {
                segments,
                outbox,
                transports: TransportSet::new(),
                clock: SystemClock::shared(),
                concurrency: DEFAULT_CONCURRENCY,
                page_size: DEFAULT_PAGE_SIZE,
                retries: 3,
                retry_delay: Duration::from_millis(200),
                inbox: None,
                lease: DEFAULT_LEASE,
            },
        }
    }
}

impl CampaignRunnerBuilder {
    /// A transport campaigns may send with, one per channel (a later one for the same channel
    /// replaces the earlier). A campaign's channels name which of them it uses, in order.
    pub fn transport(mut self, transport: SharedTransport) -> Self {
        self.runner.transports.insert(transport);
        self
    }

    /// Several transports at once (a [`TransportSet`], a `Vec`, ...), as
    /// [`transport`](Self::transport) one by one.
    pub fn transports(mut self, transports: impl IntoIterator<Item = SharedTransport>) -> Self {
        self.runner.transports.extend(transports);
        self
    }

    /// Records each message sent in the recipient's inbox conversation too, as an outgoing
    /// entry by `campaign:<id>` with its delivery, so that agents see what the platform sent
    /// and delivery and read receipts land on it (default: not recorded). The entry is
    /// written after the outcome; a failure to write it is logged and does not change the
    /// outcome, and a crash in between leaves the send without its entry.
    pub fn record_in(mut self, inbox: Arc<dyn crate::inbox::Inbox>) -> Self {
        self.runner.inbox = Some(inbox);
        self
    }

    /// How long a worker of [`run_shared`](CampaignRunner::run_shared) holds a batch without
    /// renewing it (at least 1 s; default [`DEFAULT_LEASE`]): after a worker dies, its batch
    /// waits this long before another worker takes it over. Renewed every third of it.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.runner.lease = lease.max(Duration::from_secs(1));
        self
    }

    /// Recipients in flight at once (at least 1; default [`DEFAULT_CONCURRENCY`]).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.runner.concurrency = n.max(1);
        self
    }

    /// Contacts read per segment page (at least 1; default [`DEFAULT_PAGE_SIZE`]).
    pub fn page_size(mut self, n: usize) -> Self {
        self.runner.page_size = n.max(1);
        self
    }

    /// Retries of a temporary failure per recipient, and the first backoff delay (doubled
    /// each time, with jitter). Default: 3 retries from 200 ms.
    pub fn retries(mut self, retries: usize, first_delay: Duration) -> Self {
        self.runner.retries = retries;
        self.runner.retry_delay = first_delay;
        self
    }

    /// The clock for outcome times, [`Progress::rate`] and [`Report::elapsed`] (default: the
    /// system clock). Rate-limit pauses are real waiting and use Tokio's timer.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.runner.clock = clock;
        self
    }

    /// The runner.
    pub fn build(self) -> CampaignRunner {
        self.runner
    }
}

impl CampaignRunner {
    fn fallback(&self, campaign: &Campaign) -> Result<Fallback, CampaignError> {
        let transports = campaign
            .channels
            .iter()
            .map(|c| {
                self.transports
                    .get(c)
                    .cloned()
                    .ok_or_else(|| CampaignError::NoTransport(c.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Fallback::new(transports))
    }

    fn start<'a>(
        &self,
        campaign: &'a Campaign,
        control: &'a RunControl,
    ) -> Result<Run<'a>, CampaignError> {
        // A segment the store cannot evaluate exactly is refused before anyone is claimed.
        self.segments.check(&campaign.segment)?;
        Ok(Run {
            campaign,
            fallback: self.fallback(campaign)?,
            context: SendContext::new(campaign.intent),
            control,
            started: self.clock.now(),
            pause_until: Mutex::new(None),
            counts: Mutex::new(Tally {
                this_run: Counts::default(),
                total: Counts::default(),
                progress: Progress::new(),
                uncertain: Vec::new(),
            }),
        })
    }

    /// What the outbox holds for campaign `id`, counted: every recipient with a recorded
    /// outcome, pending claims counted as uncertain. It reads the outbox alone, so it answers
    /// after a restart, for a campaign no run of this process saw; all zero for a campaign
    /// never run.
    pub async fn recorded(&self, id: &CampaignId) -> Result<Counts, StoreError> {
        const PAGE: usize = 1_000;
        let mut counts = Counts::default();
        let mut after: Option<ContactId> = None;
        loop {
            let records = self.outbox.list(id, after.as_ref(), PAGE).await?;
            for record in &records {
                counts.add(&record.outcome);
            }
            match records.last() {
                Some(last) if records.len() == PAGE => after = Some(last.contact.clone()),
                _ => return Ok(counts),
            }
        }
    }

    /// Runs `campaign` to the end of its segment (or until cancelled through `control`).
    ///
    /// The future is `Send` (boxed, so that holds for every caller), ready for
    /// `tokio::spawn`.
    pub fn run<'a>(
        &'a self,
        campaign: &'a Campaign,
        control: &'a RunControl,
    ) -> BoxFuture<'a, Result<Report, CampaignError>> {
        Box::pin(async move {
            let run = self.start(campaign, control)?;
            // The segment is counted beside the first pages, so progress has a total early.
            let (result, ()) = futures_util::future::join(self.drive(&run), self.count(&run)).await;
            let cancelled = control.state() == RunState::Cancelled;
            let report = self.finish_run(&run, cancelled);
            result.map(|()| report)
        })
    }

    /// Runs `campaign` as one of any number of workers (tasks or processes) sharing
    /// `batches`, under the name `worker`; see [batches](super::batches).
    ///
    /// The worker takes batches of [`page_size`](CampaignRunnerBuilder::page_size) recipients until every page
    /// of the segment is in a batch and every batch is completed (it waits for the batches of
    /// other workers, and takes them over if their leases end), or until cancelled. The
    /// report counts the recipients this worker handled; [`recorded`](Self::recorded) counts
    /// the whole campaign.
    pub fn run_shared<'a>(
        &'a self,
        campaign: &'a Campaign,
        control: &'a RunControl,
        batches: &'a dyn CampaignBatches,
        worker: &'a WorkerId,
    ) -> BoxFuture<'a, Result<Report, CampaignError>> {
        Box::pin(async move {
            let run = self.start(campaign, control)?;
            let result = self.drive_shared(&run, batches, worker).await;
            let cancelled = control.state() == RunState::Cancelled;
            let report = self.finish_run(&run, cancelled);
            result.map(|()| report)
        })
    }

    async fn drive_shared(
        &self,
        run: &Run<'_>,
        batches: &dyn CampaignBatches,
        worker: &WorkerId,
    ) -> Result<(), CampaignError> {
        while let Some((batch, contacts)) = self.next_batch(run, batches, worker).await? {
            self.run_batch(run, batches, &batch, contacts).await?;
        }
        Ok(())
    }

    /// The next batch for `worker`: one whose lease ended, else the next page of the
    /// segment; `None` once every batch is completed (or the run is cancelled).
    async fn next_batch(
        &self,
        run: &Run<'_>,
        batches: &dyn CampaignBatches,
        worker: &WorkerId,
    ) -> Result<Option<(Batch, Vec<Contact>)>, CampaignError> {
        /// The longest wait for other workers' batches before looking again.
        const POLL: Duration = Duration::from_secs(1);
        let campaign = run.campaign;
        loop {
            if run.control.state() == RunState::Cancelled {
                return Ok(None);
            }
            let now = self.clock.now();
            if let Some(batch) = batches
                .take_expired(&campaign.id, worker, now, self.lease)
                .await?
            {
                tracing::info!(
                    campaign = %campaign.id,
                    batch = batch.number,
                    takeovers = batch.takeovers,
                    "took over a batch whose lease ended"
                );
                let contacts = self.read_recipients(campaign, &batch.recipients).await?;
                return Ok(Some((batch, contacts)));
            }
            match batches.position(&campaign.id).await? {
                Position::Next { number, after } => {
                    let page = self
                        .segments
                        .page(&campaign.segment, after.as_ref(), self.page_size)
                        .await?;
                    let batch = Batch::new(
                        campaign.id.clone(),
                        number,
                        after,
                        page.next,
                        page.contacts.iter().map(|c| c.id.clone()).collect(),
                        worker.clone(),
                        now.saturating_add(self.lease),
                    );
                    // Another worker opened this number first: look again.
                    if batches.open(&batch).await? {
                        return Ok(Some((batch, page.contacts)));
                    }
                }
                Position::Exhausted { open: 0, .. } => return Ok(None),
                Position::Exhausted {
                    earliest_lease_end, ..
                } => {
                    // Other workers' batches are running: wait for them to complete, or for a
                    // lease to end.
                    let until_end = earliest_lease_end.map_or(POLL, |end| {
                        Duration::from_millis(
                            u64::try_from(end.as_millis() - now.as_millis()).unwrap_or(0),
                        )
                    });
                    tokio::time::sleep(until_end.clamp(Duration::from_millis(20), POLL)).await;
                }
            }
        }
    }

    /// The recipients of a batch taken over, as the segment has them now: a recipient
    /// who left the segment (or was erased) since is not sent to.
    async fn read_recipients(
        &self,
        campaign: &Campaign,
        ids: &[ContactId],
    ) -> Result<Vec<Contact>, CampaignError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let members = ids
            .iter()
            .map(|id| {
                Segment::field(
                    "id",
                    FieldOp::Eq,
                    Some(serde_json::Value::String(id.to_string())),
                )
            })
            .collect::<Result<Vec<_>, _>>()
            .and_then(Segment::any)
            .and_then(|ids| Segment::all(vec![campaign.segment.clone(), ids]))
            .map_err(|e| StoreError::invalid(format!("batch recipients as a segment: {e}")))?;
        let mut contacts = Vec::with_capacity(ids.len());
        let mut after: Option<Cursor> = None;
        loop {
            let page = self
                .segments
                .page(&members, after.as_ref(), ids.len())
                .await?;
            contacts.extend(page.contacts);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(contacts),
            }
        }
    }

    /// Handles the recipients of `batch` with up to `concurrency` in flight, renewing its
    /// lease every third of it, and completes it once each has an outcome.
    async fn run_batch(
        &self,
        run: &Run<'_>,
        batches: &dyn CampaignBatches,
        batch: &Batch,
        contacts: Vec<Contact>,
    ) -> Result<(), CampaignError> {
        let mut queue: VecDeque<Contact> = contacts.into();
        let mut in_flight = FuturesUnordered::new();
        let mut failure: Option<CampaignError> = None;
        let renew_every = self.lease / 3;
        let mut renew_at = tokio::time::Instant::now() + renew_every;
        // The renewal runs beside the sends, never instead of them: a send waiting to be
        // polled may hold a pooled connection the renewal would wait for.
        let mut renewing: Option<BoxFuture<'_, Result<bool, StoreError>>> = None;
        loop {
            let stopping = failure.is_some() || run.control.state() == RunState::Cancelled;
            while !stopping && in_flight.len() < self.concurrency {
                let Some(contact) = queue.pop_front() else {
                    break;
                };
                in_flight.push(self.visit(run, contact));
            }
            if in_flight.is_empty() {
                break;
            }
            tokio::select! {
                Some(done) = in_flight.next() => {
                    if let Err(e) = done {
                        tracing::warn!(campaign = %batch.campaign, error = %e, "campaign worker stopping");
                        failure.get_or_insert(e);
                    }
                }
                () = tokio::time::sleep_until(renew_at), if renewing.is_none() => {
                    let until = self.clock.now().saturating_add(self.lease);
                    renewing = Some(batches.renew(&batch.campaign, batch.number, &batch.worker, until));
                    renew_at = tokio::time::Instant::now() + renew_every;
                }
                renewed = async {
                    match renewing.as_mut() {
                        Some(renewal) => renewal.await,
                        None => std::future::pending().await,
                    }
                } => {
                    renewing = None;
                    match renewed {
                        Ok(true) => {}
                        // Taken over after a stall: the outbox still lets nobody be sent
                        // twice; the other worker reports this one's sends in flight as
                        // uncertain.
                        Ok(false) => tracing::warn!(
                            campaign = %batch.campaign,
                            batch = batch.number,
                            "lost the lease of a batch to another worker"
                        ),
                        Err(e) => {
                            tracing::warn!(campaign = %batch.campaign, error = %e, "campaign worker stopping");
                            failure.get_or_insert(e.into());
                        }
                    }
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        // A cancelled run may have skipped recipients of the batch: it stays open, and the
        // next run (or another worker, once the lease ends) finishes it.
        if queue.is_empty() && run.control.state() != RunState::Cancelled {
            batches
                .complete(&batch.campaign, batch.number, &batch.worker)
                .await?;
        }
        Ok(())
    }

    /// Keeps up to `concurrency` recipients in flight while the next segment page is read
    /// ahead, until the segment ends or the run is cancelled. On an error no new recipient is
    /// taken, the ones in flight finish and are recorded, and the first error is returned.
    async fn drive(&self, run: &Run<'_>) -> Result<(), CampaignError> {
        let mut in_flight = FuturesUnordered::new();
        let mut queue: VecDeque<Contact> = VecDeque::new();
        // `Some(cursor)` while pages remain; the first page has no cursor.
        let mut next_page: Option<Option<Cursor>> = Some(None);
        let mut fetching: Option<BoxFuture<'_, Result<SegmentPage, StoreError>>> = None;
        let mut failure: Option<CampaignError> = None;
        let fail = |e: CampaignError, failure: &mut Option<CampaignError>| {
            tracing::warn!(campaign = %run.campaign.id, error = %e, "campaign run stopping");
            failure.get_or_insert(e);
        };
        loop {
            let stopping = failure.is_some() || run.control.state() == RunState::Cancelled;
            if stopping {
                // A page being read has no effect yet: drop it.
                fetching = None;
            }
            while in_flight.len() < self.concurrency && !stopping {
                let Some(contact) = queue.pop_front() else {
                    break;
                };
                in_flight.push(self.visit(run, contact));
            }
            if fetching.is_none() && queue.len() < self.concurrency && !stopping {
                if let Some(after) = next_page.take() {
                    let segments = &self.segments;
                    let segment = &run.campaign.segment;
                    let limit = self.page_size;
                    fetching = Some(Box::pin(async move {
                        segments.page(segment, after.as_ref(), limit).await
                    }));
                }
            }
            match (&mut fetching, in_flight.is_empty()) {
                (None, true) => return failure.map_or(Ok(()), Err),
                (None, false) => {
                    if let Some(Err(e)) = in_flight.next().await {
                        fail(e, &mut failure);
                    }
                }
                (Some(page), true) => {
                    match page.await {
                        Ok(page) => {
                            queue.extend(page.contacts);
                            next_page = page.next.map(Some);
                        }
                        Err(e) => fail(e.into(), &mut failure),
                    }
                    fetching = None;
                }
                (Some(page), false) => {
                    tokio::select! {
                        Some(done) = in_flight.next() => {
                            if let Err(e) = done {
                                fail(e, &mut failure);
                            }
                        }
                        page = page => {
                            match page {
                                Ok(page) => {
                                    queue.extend(page.contacts);
                                    next_page = page.next.map(Some);
                                }
                                Err(e) => fail(e.into(), &mut failure),
                            }
                            fetching = None;
                        }
                    }
                }
            }
        }
    }

    /// Handles one recipient of a run and counts it.
    fn visit<'a>(
        &'a self,
        run: &'a Run<'a>,
        contact: Contact,
    ) -> BoxFuture<'a, Result<(), CampaignError>> {
        Box::pin(async move {
            // Paused, cancelled or rate limited: wait before the recipient is claimed, so a
            // stop here leaves nothing pending.
            if !run.control.proceed().await || !self.wait_for_pause(run, true).await {
                return Ok(());
            }
            let handled = self.handle(run, &contact).await?;
            let halt = match &handled {
                Handled::New(OutcomeRecord {
                    outcome:
                        Outcome::Failed {
                            kind: Some(DeliveryErrorKind::Unauthorized),
                            reason,
                        },
                    ..
                }) => Some(CampaignError::Unauthorized(reason.clone())),
                _ => None,
            };
            self.tally(run, handled);
            halt.map_or(Ok(()), Err)
        })
    }

    /// Sends `campaign` (a [`Campaign::notification`]) to one contact and returns the
    /// recorded outcome. Calling it again for the same campaign and contact sends nothing and
    /// returns the first outcome.
    pub async fn send_one(
        &self,
        campaign: &Campaign,
        contact: &Contact,
    ) -> Result<OutcomeRecord, CampaignError> {
        let control = RunControl::new();
        let run = self.start(campaign, &control)?;
        let handled = self.handle(&run, contact).await?;
        match handled {
            Handled::New(record) | Handled::Earlier(record) => Ok(record),
        }
    }

    fn tally(&self, run: &Run<'_>, handled: Handled) {
        let mut guard = lock(&run.counts);
        let Tally {
            this_run,
            total,
            progress,
            uncertain,
        } = &mut *guard;
        match &handled {
            Handled::New(record) => {
                this_run.add(&record.outcome);
                total.add(&record.outcome);
            }
            Handled::Earlier(record) => {
                total.add(&record.outcome);
                progress.earlier += 1;
                if record.outcome.is_pending() && uncertain.len() < MAX_UNCERTAIN_LISTED {
                    uncertain.push(record.contact.clone());
                }
            }
        }
        progress.done += 1;
        // Every recipient at first (small campaigns, notifications), then every 64th.
        if progress.done <= 64 || progress.done % 64 == 0 {
            self.refresh(run, progress, this_run);
            run.control.progress.send_replace(progress.clone());
        }
    }

    /// Brings a progress snapshot up to date: its outcome counts are this run's counts.
    fn refresh(&self, run: &Run<'_>, progress: &mut Progress, this_run: &Counts) {
        progress.sent = this_run.sent;
        progress.skipped = this_run.skipped_total();
        progress.failed = this_run.failed + this_run.uncertain;
        progress.rate = self.rate(run, progress.done);
        progress.state = run.control.state();
    }

    fn rate(&self, run: &Run<'_>, done: u64) -> f64 {
        let elapsed = self.clock.now().as_millis() - run.started.as_millis();
        if elapsed <= 0 {
            return 0.0;
        }
        done as f64 * 1000.0 / elapsed as f64
    }

    /// Counts the run's segment into its progress' total, when the store can count.
    async fn count(&self, run: &Run<'_>) {
        match self.segments.count(&run.campaign.segment).await {
            Ok(Some(n)) => {
                lock(&run.counts).progress.total = Some(n);
                run.control.progress.send_modify(|p| p.total = Some(n));
            }
            Ok(None) => {}
            // A total is a nicety: the run goes on without one.
            Err(e) => tracing::warn!(
                campaign = %run.campaign.id,
                error = %e,
                "counting the segment failed; progress has no total until the end"
            ),
        }
    }

    fn finish_run(&self, run: &Run<'_>, cancelled: bool) -> Report {
        let Tally {
            this_run,
            total,
            mut progress,
            mut uncertain,
        } = lock(&run.counts).clone();
        uncertain.sort_unstable();
        if !cancelled {
            run.control.set(RunState::Finished);
        }
        self.refresh(run, &mut progress, &this_run);
        progress.finished = true;
        if !cancelled {
            progress.total = Some(progress.done);
        }
        run.control.progress.send_replace(progress);
        let elapsed = self.clock.now().as_millis() - run.started.as_millis();
        Report {
            campaign: run.campaign.id.clone(),
            this_run,
            total,
            uncertain,
            cancelled,
            elapsed: Duration::from_millis(u64::try_from(elapsed).unwrap_or(0)),
        }
    }

    fn record(&self, run: &Run<'_>, contact: &Contact, outcome: Outcome) -> OutcomeRecord {
        OutcomeRecord::new(
            run.campaign.id.clone(),
            contact.id.clone(),
            outcome,
            self.clock.now(),
        )
    }

    /// Decides, sends and records one recipient.
    async fn handle(&self, run: &Run<'_>, contact: &Contact) -> Result<Handled, CampaignError> {
        let campaign = run.campaign;
        let skip = if campaign.opted_out(contact) {
            Some(SkipReason::OptedOut)
        } else if campaign_addresses(campaign, contact).is_empty() {
            Some(SkipReason::NoAddress)
        } else {
            None
        };
        if let Some(reason) = skip {
            return self
                .record_unclaimed(run, contact, Outcome::Skipped { reason })
                .await;
        }
        // Rendered before the claim, so that the claim is followed by the send and nothing
        // else: a render failure is recorded in one write and can never be left pending.
        let message = match self.message_for(campaign, contact) {
            Ok(message) => message,
            Err(reason) => {
                return self
                    .record_unclaimed(run, contact, Outcome::Failed { kind: None, reason })
                    .await;
            }
        };
        if let Recorded::Existing(earlier) = self
            .outbox
            .claim(&campaign.id, &contact.id, self.clock.now())
            .await?
        {
            return Ok(Handled::Earlier(earlier));
        }
        let outcome = self.deliver(run, contact, &message).await;
        let record = self.record(run, contact, outcome);
        self.outbox.finish(&record).await?;
        self.record_sent(campaign, &record, message).await;
        Ok(Handled::New(record))
    }

    /// Puts a sent message in the recipient's conversation, when the runner records there.
    async fn record_sent(&self, campaign: &Campaign, record: &OutcomeRecord, message: Message) {
        let (
            Some(inbox),
            Outcome::Sent {
                channel,
                message_ids,
            },
        ) = (&self.inbox, &record.outcome)
        else {
            return;
        };
        let entry = crate::inbox::Outgoing::new(message)
            .with_author(format!("campaign:{}", campaign.id))
            .with_delivery(crate::inbox::DeliveryRecord::sent(
                channel.clone(),
                message_ids.clone(),
            ));
        if let Err(e) = inbox
            .record_outgoing(&record.contact, record.at, entry)
            .await
        {
            tracing::warn!(campaign = %campaign.id, contact = %record.contact, error = %e, "the sent message is not in the inbox");
        }
    }

    /// Records a final outcome reached without sending (a skip, a render failure) in one
    /// write, unless the recipient has a record already.
    async fn record_unclaimed(
        &self,
        run: &Run<'_>,
        contact: &Contact,
        outcome: Outcome,
    ) -> Result<Handled, CampaignError> {
        let record = self.record(run, contact, outcome);
        Ok(match self.outbox.record(&record).await? {
            Recorded::New => Handled::New(record),
            Recorded::Existing(earlier) => Handled::Earlier(earlier),
        })
    }

    /// The recipient's message: rendered text, links (login links where asked).
    fn message_for(&self, campaign: &Campaign, contact: &Contact) -> Result<Message, String> {
        let text = campaign
            .text
            .render(contact, &campaign.vars)
            .map_err(|e| e.to_string())?;
        let login_error = |e: LoginLinkError| format!("login link: {e}");
        let message_error = |e: MessageError| format!("message: {e}");
        let (text, links) = match &campaign.login {
            None => (text, campaign.links.clone()),
            Some(login) => {
                let text = login
                    .rewrite_text(&text, &contact.id, &campaign.id)
                    .map_err(login_error)?;
                let links = campaign
                    .links
                    .iter()
                    .map(|l| {
                        let url = login
                            .rewrite_url(l.url().as_str(), &contact.id, &campaign.id)
                            .map_err(login_error)?;
                        Link::new(&url, l.title().map(str::to_owned)).map_err(message_error)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                (text, links)
            }
        };
        if text.trim().is_empty() {
            return Err("the rendered text is empty".to_owned());
        }
        let mut builder = Message::builder(text);
        for link in &links {
            builder = builder.link(link.url().as_str(), link.title());
        }
        builder.build().map_err(message_error)
    }

    /// Sends through the campaign's transports, retrying temporary failures.
    async fn deliver(&self, run: &Run<'_>, contact: &Contact, message: &Message) -> Outcome {
        let addresses = campaign_addresses(run.campaign, contact);
        // Transports that deduplicate (an e-mail API, say) see one key per campaign and contact.
        let context = run
            .context
            .clone()
            .with_idempotency_key(format!("{}:{}", run.campaign.id, contact.id));
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry_delay)
            .with_max_delay(self.retry_delay.saturating_mul(32))
            .with_max_times(self.retries)
            .with_jitter()
            .build();
        let mut pauses = 0;
        loop {
            // Claimed: a cancel does not cut this send short (the pause is capped).
            self.wait_for_pause(run, false).await;
            let undelivered = match run.fallback.send(&addresses, message, &context).await {
                Ok(delivered) => {
                    return Outcome::Sent {
                        channel: delivered.receipt.channel,
                        message_ids: delivered.receipt.message_ids,
                    };
                }
                Err(undelivered) => undelivered,
            };
            let retry = undelivered.stopped
                && undelivered
                    .last_error()
                    .is_some_and(|e| e.is_retryable() && e.sent_ids().is_empty());
            if retry {
                match undelivered.last_error().and_then(|e| e.retry_after()) {
                    // A rate limit: the whole campaign waits; the recipient's own retry
                    // budget is kept for its own failures.
                    Some(after) if pauses < MAX_PAUSES_PER_RECIPIENT => {
                        pauses += 1;
                        self.pause_campaign(run, after);
                        continue;
                    }
                    _ => {
                        if let Some(delay) = backoff.next() {
                            tokio::time::sleep(delay).await;
                            continue;
                        }
                    }
                }
            }
            return undelivered_outcome(&undelivered);
        }
    }

    /// Pauses every sender of the run for `after` (a rate limit was hit).
    fn pause_campaign(&self, run: &Run<'_>, after: Duration) {
        let after = after.min(MAX_PAUSE);
        let until = tokio::time::Instant::now() + after;
        let mut pause = lock(&run.pause_until);
        *pause = Some(pause.map_or(until, |p| p.max(until)));
        tracing::warn!(campaign = %run.campaign.id, pause_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX), "rate limited: campaign paused");
    }

    /// Waits out a rate-limit pause; with `cancellable`, returns early (`false`) if the run
    /// is cancelled.
    async fn wait_for_pause(&self, run: &Run<'_>, cancellable: bool) -> bool {
        let mut state = run.control.state.subscribe();
        loop {
            let cancelled = *state.borrow_and_update() == RunState::Cancelled;
            if cancellable && cancelled {
                return false;
            }
            let until = *lock(&run.pause_until);
            match until {
                Some(until) if until > tokio::time::Instant::now() => {
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => {}
                        _ = state.changed() => {}
                    }
                }
                _ => return true,
            }
        }
    }
}

/// The contact's addresses on the campaign's channels ([`Contact::reachable_addresses`]).
fn campaign_addresses(campaign: &Campaign, contact: &Contact) -> Vec<Address> {
    contact
        .reachable_addresses()
        .into_iter()
        .filter(|a| campaign.channels.contains(a.channel()))
        .collect()
}

/// A recipient's outcome, new in this run or from an earlier one.
enum Handled {
    New(OutcomeRecord),
    Earlier(OutcomeRecord),
}

/// The outcome of a message no route delivered.
fn undelivered_outcome(undelivered: &Undelivered) -> Outcome {
    let Some(error) = undelivered.last_error() else {
        return Outcome::Skipped {
            reason: SkipReason::NoAddress,
        };
    };
    let window_closed = undelivered.attempts.iter().any(|a| {
        matches!(&a.failure, AttemptFailure::Failed(e) if e.kind() == DeliveryErrorKind::WindowClosed)
    });
    if !undelivered.stopped && window_closed {
        return Outcome::Skipped {
            reason: SkipReason::WindowClosed,
        };
    }
    let mut reason = error.to_string();
    if !error.sent_ids().is_empty() {
        reason.push_str(&format!(
            " (after {} part(s) went out; not retried)",
            error.sent_ids().len()
        ));
    }
    Outcome::Failed {
        kind: Some(error.kind()),
        reason,
    }
}
