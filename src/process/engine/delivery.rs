//! A step's message: rendered for the contact, claimed, sent through the transports in order,
//! recorded in the inbox.

use super::{FlowEngine, Outcome, Run, lost, visit_of};
use crate::{
    contact::Contact,
    message::{ChoiceStyle, Message},
    process::{ProcessError, payload::AnswerPayload, validate::CompiledOption},
    template::Template,
    transport::{DeliveryError, Fallback, Intent, SendContext},
};

impl FlowEngine {
    /// Claims the step and sends `message`. `Some` when the drive stops here.
    /// Renders `text` for the contact and delivers it as a plain message. `Some` when the
    /// drive stops here: the render failed (the instance fails) or the send did not go out.
    pub(super) async fn say(
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

    pub(super) async fn deliver(
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
    pub(super) async fn send(
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

    pub(super) async fn contact<'r>(&self, run: &'r mut Run) -> Result<&'r Contact, ProcessError> {
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

    pub(super) async fn question(
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
            let payload = AnswerPayload::new(
                run.inst.id.clone(),
                visit,
                u8::try_from(i).unwrap_or(u8::MAX),
            )
            .sign(&self.inner.keys);
            message = message.choice(option.label.as_str(), payload);
        }
        Ok(message.build()?)
    }
}
