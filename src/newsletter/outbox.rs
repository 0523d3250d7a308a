//! The [`Outbox`]: one outcome per campaign and recipient, written once.
//!
//! # Contract
//!
//! - [`Outbox::record`] stores the outcome of `(campaign, contact)` if none is stored and
//!   returns [`Recorded::New`]; if one is stored it changes nothing and returns
//!   [`Recorded::Existing`] with the stored record. Concurrent calls for the same pair store
//!   exactly one outcome.
//! - [`Outbox::list`] pages through a campaign's records in contact-id order; a `limit` of 0
//!   is refused with [`StoreError::Invalid`].

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{
    clock::Timestamp,
    contact::{Channel, ContactId},
    error::StoreError,
    transport::DeliveryErrorKind,
};

string_id!(
    /// The id of a campaign (a newsletter, or a notification run).
    CampaignId,
    "campaign"
);

/// What became of one recipient of a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// Sent.
    Sent {
        /// The channel of the transport that sent it.
        channel: Channel,
        /// The transport's message ids.
        message_ids: Vec<String>,
    },
    /// Not sent on purpose (no address, window closed and no allowed tag, opted out).
    Skipped {
        /// Why.
        reason: String,
    },
    /// Sending failed.
    Failed {
        /// The kind of failure, when a transport reported one.
        #[serde(default)]
        kind: Option<DeliveryErrorKind>,
        /// What went wrong.
        reason: String,
    },
}

/// An outcome with whom and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OutcomeRecord {
    /// The campaign.
    pub campaign: CampaignId,
    /// The recipient.
    pub contact: ContactId,
    /// What became of them.
    pub outcome: Outcome,
    /// When it was recorded.
    pub at: Timestamp,
}

impl OutcomeRecord {
    /// A record of `outcome` for `contact` in `campaign` at `at`.
    pub fn new(campaign: CampaignId, contact: ContactId, outcome: Outcome, at: Timestamp) -> Self {
        OutcomeRecord {
            campaign,
            contact,
            outcome,
            at,
        }
    }
}

/// Whether [`Outbox::record`] stored the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Recorded {
    /// Stored; it is the first outcome of this pair.
    New,
    /// An outcome was already stored; nothing changed.
    Existing(OutcomeRecord),
}

/// Campaign outcomes. See the [module docs](self) for the contract.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Stores `record` unless an outcome for its campaign and contact exists.
    async fn record(&self, record: &OutcomeRecord) -> Result<Recorded, StoreError>;

    /// The outcome of `contact` in `campaign`.
    async fn get(
        &self,
        campaign: &CampaignId,
        contact: &ContactId,
    ) -> Result<Option<OutcomeRecord>, StoreError>;

    /// Up to `limit` records of `campaign` with contact ids after `after`, in contact-id order.
    async fn list(
        &self,
        campaign: &CampaignId,
        after: Option<&ContactId>,
        limit: usize,
    ) -> Result<Vec<OutcomeRecord>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn _object_safe(_: &dyn Outbox) {}
}
