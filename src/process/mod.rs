//! Processes: automation flows run per contact.
//!
//! [`ProcessEngine`] is the seam the rest of the crate talks to: start a flow for a contact, and
//! offer it an inbound event to learn whether a running flow consumed it (an answer to a
//! pending callback operation) or whether the event goes on to the inbox. A host may implement
//! it over its own automation system. [`NoProcesses`] is the engine for hosts without flows.
//!
//! Flow state lives in a [`ProcessStore`] ([`store`]).
//!
//! The crate ships a reference engine, [`FlowEngine`] ([`engine`]): flows are data
//! ([`flow`]), checked when they are defined ([`validate`]), run per contact with durable
//! state, and answered through buttons whose signed payloads ([`payload`]) name the instance,
//! the step and the option.

use crate::{contact::ContactId, error::StoreError, message::Inbound, transport::DeliveryError};
use async_trait::async_trait;

pub mod engine;
pub mod flow;
pub mod payload;
pub mod store;
mod text;
pub mod validate;

pub use engine::{
    ContactFields, DefineError, FlowEngine, FlowEngineBuilder, FlowRegistry, TickReport,
};
pub use flow::Flow;
pub use store::{InstanceStatus, ProcessInstance, ProcessStore, StepRecord};

string_id!(
    /// The id of a flow definition.
    FlowId,
    "flow"
);
string_id!(
    /// The id of one run of a flow for one contact.
    InstanceId,
    "instance"
);

/// Whether a process engine took an inbound event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Offer {
    /// A running flow used the event (an answer to its question); it goes nowhere else.
    Consumed {
        /// The instance that consumed it.
        instance: InstanceId,
    },
    /// No flow wanted the event; route it on (to the inbox).
    NotConsumed,
    /// The event was an answer to a flow's question that does not count (stale, forged, a
    /// double tap): it moved nothing and goes nowhere else. Engines log it too.
    Ignored {
        /// The instance it named, when it named one authentically.
        instance: Option<InstanceId>,
        /// Why it does not count.
        reason: IgnoredAnswer,
    },
}

/// Why an answer to a flow's question was ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IgnoredAnswer {
    /// The payload looks like a flow answer but the engine did not sign it (or it was altered).
    Forged,
    /// The payload names an instance of another contact.
    WrongContact,
    /// The payload names an instance the store does not hold.
    UnknownInstance,
    /// The instance has finished (or failed).
    Finished,
    /// A button of an earlier step: the flow has moved on since.
    Stale,
    /// The same option of the same step again (a double tap, or the second copy of a question
    /// sent twice): the first one counted.
    Duplicate,
    /// The instance runs a flow version this engine does not define (define every version
    /// that may still have running instances at startup). The answer did not count; the
    /// instance waits until the version is defined.
    UnknownFlowVersion,
    /// The instance stands at a block its flow version does not have (a corrupt store): it
    /// can never take an answer.
    UnknownStep,
    /// The answer lost the race for the instance to other writers every time it tried, so it
    /// did not count (the contact may answer again). Rare: it takes several writers moving one
    /// instance at the same moment.
    Contended,
}

impl std::fmt::Display for IgnoredAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IgnoredAnswer::Forged => "forged or altered answer payload",
            IgnoredAnswer::WrongContact => "answer payload of another contact's flow",
            IgnoredAnswer::UnknownInstance => "answer to an unknown flow instance",
            IgnoredAnswer::Finished => "answer to a finished flow",
            IgnoredAnswer::Stale => "answer to an earlier step of the flow",
            IgnoredAnswer::Duplicate => "the same answer again (double tap)",
            IgnoredAnswer::UnknownFlowVersion => "answer to a flow version that is not defined",
            IgnoredAnswer::UnknownStep => "answer to an instance at a block its flow does not have",
            IgnoredAnswer::Contended => "answer lost every race for its instance",
        })
    }
}

/// Why a process operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// No flow with this id is defined.
    #[error("unknown flow {0}")]
    UnknownFlow(FlowId),
    /// The contact already runs this flow.
    #[error("contact {contact} already runs flow {flow}")]
    AlreadyRunning {
        /// The flow.
        flow: FlowId,
        /// The contact.
        contact: ContactId,
    },
    /// The flow state could not be read or written.
    #[error("process store failed")]
    Store(#[from] StoreError),
    /// A message of the flow could not be sent.
    #[error("process message not delivered")]
    Delivery(#[from] DeliveryError),
    /// The contact does not exist.
    #[error("unknown contact {0}")]
    UnknownContact(ContactId),
    /// The instance does not exist.
    #[error("unknown flow instance {0}")]
    UnknownInstance(InstanceId),
    /// An instance runs a flow version the engine does not know (define every version that
    /// may still have running instances at startup).
    #[error("flow {flow} version {version} is not defined")]
    UnknownVersion {
        /// The flow.
        flow: FlowId,
        /// The version.
        version: u32,
    },
    /// An instance stands at a block its flow version does not have (a corrupt store).
    #[error("instance {instance} stands at block {step:?}, which its flow does not have")]
    UnknownStep {
        /// The instance.
        instance: InstanceId,
        /// The block id stored.
        step: String,
    },
    /// A message text could not be rendered for the contact.
    #[error("flow message could not be rendered")]
    Render(#[from] crate::template::RenderError),
    /// A rendered message was refused (empty text, say).
    #[error("flow message is invalid")]
    Message(#[from] crate::message::MessageError),
}

/// Runs automation flows for contacts.
#[async_trait]
pub trait ProcessEngine: Send + Sync {
    /// Starts `flow` for `contact` and returns the new instance's id.
    async fn start(&self, flow: &FlowId, contact: &ContactId) -> Result<InstanceId, ProcessError>;

    /// Offers an inbound event of `contact` to the running flows.
    async fn offer(&self, contact: &ContactId, event: &Inbound) -> Result<Offer, ProcessError>;
}

/// The engine of a host without flows: it knows no flow and consumes nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProcesses;

#[async_trait]
impl ProcessEngine for NoProcesses {
    async fn start(&self, flow: &FlowId, _contact: &ContactId) -> Result<InstanceId, ProcessError> {
        Err(ProcessError::UnknownFlow(flow.clone()))
    }

    async fn offer(&self, _contact: &ContactId, _event: &Inbound) -> Result<Offer, ProcessError> {
        Ok(Offer::NotConsumed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn _object_safe(_: &dyn ProcessEngine, _: &dyn ProcessStore) {}

    #[tokio::test]
    async fn no_processes_consumes_nothing_and_starts_nothing() {
        use crate::{
            clock::Timestamp,
            contact::Address,
            message::{Inbound, InboundKind},
        };
        let contact = ContactId::new("c1").unwrap();
        let answer = Inbound::new(
            "m_1",
            Address::messenger("p", "u").unwrap(),
            Timestamp::from_millis(1),
            InboundKind::Answer {
                message_id: None,
                payload: "YES".into(),
                text: None,
            },
        );
        let engine: &dyn ProcessEngine = &NoProcesses;
        assert_eq!(
            engine.offer(&contact, &answer).await.unwrap(),
            Offer::NotConsumed
        );
        let flow = FlowId::new("onboarding").unwrap();
        assert!(matches!(
            engine.start(&flow, &contact).await,
            Err(ProcessError::UnknownFlow(f)) if f == flow
        ));
    }
}
