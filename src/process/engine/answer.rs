//! An inbound event offered to the engine: a signed answer payload, or typed text matched to
//! an open question (what [`offer`](crate::process::ProcessEngine::offer) does).

use super::{FlowEngine, Outcome, position, visit_of};
use crate::{
    contact::ContactId,
    message::{Inbound, InboundKind},
    process::{
        IgnoredAnswer, InstanceId, InstanceStatus, Offer, ProcessError,
        payload::{AnswerPayload, PayloadError},
        text::normalize,
        validate::{OnText, Step},
    },
    transport::Intent,
};

/// How many times an answer is re-read after losing a race before it is reported as a
/// duplicate.
const RACE_RETRIES: usize = 3;

impl FlowEngine {
    pub(super) async fn handle(
        &self,
        contact: &ContactId,
        event: &Inbound,
    ) -> Result<Offer, ProcessError> {
        match &event.kind {
            InboundKind::Answer { payload, .. } => {
                match AnswerPayload::verify(payload, &self.inner.keys) {
                    Ok(answer) => self.answer(contact, answer).await,
                    Err(PayloadError::NotOurs) => Ok(Offer::NotConsumed),
                    Err(_) => Ok(ignored(contact, None, IgnoredAnswer::Forged)),
                }
            }
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
}

fn ignored(contact: &ContactId, instance: Option<InstanceId>, reason: IgnoredAnswer) -> Offer {
    tracing::warn!(%contact, instance = ?instance, %reason, "flow answer ignored");
    Offer::Ignored { instance, reason }
}
