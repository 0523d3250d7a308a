//! Time: [`FlowEngine::tick`] claims the due instances and moves them on (waits that ended,
//! answer timeouts, steps taken up again).

use super::{FlowEngine, Outcome, position};
use crate::{
    clock::Timestamp,
    process::{InstanceId, InstanceStatus, ProcessError, ProcessInstance, validate::Step},
};

// Named by the docs only.
#[cfg(doc)]
use super::FlowEngineBuilder;
#[cfg(doc)]
use crate::process::ProcessStore;

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

/// What woke an instance in `tick`.
enum Woke {
    Wait,
    Timeout,
    Resumed,
    Nothing,
}

impl FlowEngine {
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
}
