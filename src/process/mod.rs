//! Processes: automation flows run per contact.
//!
//! [`ProcessEngine`] is the seam the rest of the crate talks to: start a flow for a contact, and
//! offer it an inbound event to learn whether a running flow consumed it (an answer to a
//! pending callback operation) or whether the event goes on to the inbox. A host may implement
//! it over its own automation system. [`NoProcesses`] is the engine for hosts without flows.
//!
//! Flow state lives in a [`ProcessStore`] ([`store`]).

use crate::{contact::ContactId, error::StoreError, message::Inbound, transport::DeliveryError};
use async_trait::async_trait;

pub mod store;

pub use store::{InstanceStatus, ProcessInstance, ProcessStore};

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
