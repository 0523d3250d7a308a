//! The [`Outbox`]: one outcome per campaign and recipient, written once.
//!
//! # Sending exactly once: claim, send, finish
//!
//! A campaign first *claims* a recipient ([`Outbox::claim`] stores [`Outcome::Pending`]), then
//! sends, then *finishes* the claim with the final outcome ([`Outbox::finish`]) as the very next
//! step. A recipient with any record, pending included, is never sent to again. If the process
//! dies after the claim and before the finish, the record stays [`Outcome::Pending`]: the
//! message may or may not have gone out, and the campaign reports the recipient as
//! *uncertain* instead of risking a second copy. The window is the one send (with its retries)
//! between the two writes; see [the campaign runner](super::run#the-window-between-claim-and-record)
//! for which recipients it can leave pending.
//!
//! # Contract
//!
//! - [`Outbox::record`] stores the outcome of `(campaign, contact)` if none is stored and
//!   returns [`Recorded::New`]; if one is stored it changes nothing and returns
//!   [`Recorded::Existing`] with the stored record. Concurrent calls for the same pair store
//!   exactly one outcome. [`Outbox::claim`] is `record` of [`Outcome::Pending`].
//! - [`Outbox::finish`] replaces a stored [`Outcome::Pending`] with a final outcome. It fails
//!   with [`StoreError::NotFound`] when nothing is stored for the pair, with
//!   [`StoreError::Conflict`] when the stored outcome is already final, and with
//!   [`StoreError::Invalid`] when the new outcome is itself pending.
//! - [`Outbox::list`] pages through a campaign's records in contact-id order; a `limit` of 0
//!   is refused with [`StoreError::Invalid`].
//! - [`Outbox::forget_contact`] removes the contact's records in every campaign, pending
//!   claims included, and returns how many: afterwards [`Outbox::get`] finds none and
//!   [`Outbox::list`] skips the contact. Other recipients are untouched; a contact with no
//!   records gives 0. (A campaign run again would then treat the contact as new; erase a
//!   contact from the directory too, as [`Erasure`](crate::erasure::Erasure) does, so no
//!   segment finds them.)

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

/// Why a recipient was skipped on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SkipReason {
    /// No address on any of the campaign's transports.
    NoAddress,
    /// The messaging window is closed and the campaign has no purpose that may go outside it,
    /// and no later transport took the message.
    WindowClosed,
    /// The contact opted out of campaigns.
    OptedOut,
}

impl SkipReason {
    /// The reason in words.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NoAddress => "no address on the campaign's transports",
            SkipReason::WindowClosed => "messaging window closed",
            SkipReason::OptedOut => "opted out",
        }
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What became of one recipient of a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// Claimed for sending; the send's result is not recorded (yet). Left behind by a crash
    /// between claiming and recording (the recipient is then *uncertain*: maybe sent); see
    /// the [module docs](self).
    Pending,
    /// Sent.
    Sent {
        /// The channel of the transport that sent it.
        channel: Channel,
        /// The transport's message ids.
        message_ids: Vec<String>,
    },
    /// Not sent on purpose.
    Skipped {
        /// Why.
        reason: SkipReason,
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

impl Outcome {
    /// Whether this is the placeholder of a claim ([`Outcome::Pending`]).
    pub fn is_pending(&self) -> bool {
        matches!(self, Outcome::Pending)
    }
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

    /// Claims `contact` in `campaign` before a send: stores [`Outcome::Pending`] unless a
    /// record exists.
    async fn claim(
        &self,
        campaign: &CampaignId,
        contact: &ContactId,
        at: Timestamp,
    ) -> Result<Recorded, StoreError> {
        self.record(&OutcomeRecord::new(
            campaign.clone(),
            contact.clone(),
            Outcome::Pending,
            at,
        ))
        .await
    }

    /// Replaces the pending claim of `record`'s campaign and contact with `record`.
    async fn finish(&self, record: &OutcomeRecord) -> Result<(), StoreError>;

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

    /// Removes the records of `contact` in every campaign; returns how many.
    async fn forget_contact(&self, contact: &ContactId) -> Result<usize, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn _object_safe(_: &dyn Outbox) {}

    /// A campaign's summary shows why recipients were skipped, in words, one text per reason.
    #[test]
    fn each_skip_reason_reads_as_its_own_words() {
        let reasons = [
            (
                SkipReason::NoAddress,
                "no address on the campaign's transports",
            ),
            (SkipReason::WindowClosed, "messaging window closed"),
            (SkipReason::OptedOut, "opted out"),
        ];
        for (reason, words) in reasons {
            assert_eq!(reason.as_str(), words);
            assert_eq!(reason.to_string(), words);
        }
    }
}
