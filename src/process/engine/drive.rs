//! Moving an instance: starting and releasing it, the drive through its blocks, and the
//! writes around each effect.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

use super::{FlowEngine, Outcome, Run, lost, position};
use crate::{
    clock::Timestamp,
    contact::ContactId,
    process::{
        FlowId, InstanceId, InstanceStatus, ProcessError, ProcessInstance, StepRecord,
        text::normalize,
        validate::{Compiled, Step, Test},
    },
};

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

    pub(super) async fn start_flow(
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

    pub(super) fn run(&self, inst: ProcessInstance, flow: Arc<Compiled>, reply: bool) -> Run {
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

    pub(super) fn flow_of(&self, inst: &ProcessInstance) -> Result<Arc<Compiled>, ProcessError> {
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
    pub(super) fn now(&self, run: &Run) -> Timestamp {
        self.inner.clock.now().max(run.floor)
    }

    pub(super) fn enter(&self, run: &mut Run, pos: usize) {
        let step = run.flow.id(pos).to_owned();
        run.inst.step.clone_from(&step);
        let at = self.now(run);
        run.inst.history.push(StepRecord::new(step, at));
        run.dirty = true;
    }

    /// Moves the instance through blocks until it has to wait; see the module docs for the
    /// order of writes and effects.
    pub(super) async fn drive(&self, run: &mut Run) -> Result<Outcome, ProcessError> {
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
    pub(super) async fn write(&self, run: &mut Run) -> Result<bool, ProcessError> {
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
    pub(super) async fn write_last(&self, run: &mut Run) -> Result<Outcome, ProcessError> {
        if self.write(run).await? {
            Ok(Outcome::Settled)
        } else {
            Ok(lost(run))
        }
    }

    /// Stores the instance as running at its step, with a lease, before an effect.
    pub(super) async fn claim(&self, run: &mut Run) -> Result<bool, ProcessError> {
        if !run.dirty && run.inst.status == InstanceStatus::Running {
            return Ok(true);
        }
        run.inst.status = InstanceStatus::Running;
        run.inst.due_at = Some(self.now(run).saturating_add(self.inner.lease));
        self.write(run).await
    }

    /// Marks the instance failed for good and returns `error`.
    pub(super) async fn fail(
        &self,
        run: &mut Run,
        error: ProcessError,
    ) -> Result<Outcome, ProcessError> {
        tracing::warn!(instance = %run.inst.id, step = %run.inst.step, %error, "flow instance failed");
        run.inst.status = InstanceStatus::Failed;
        run.inst.due_at = None;
        self.write(run).await?;
        Err(error)
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
