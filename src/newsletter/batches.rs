//! Several workers on one campaign: the segment is handed out in batches, each claimed by one
//! worker under a lease that expires.
//!
//! Any number of processes can run the same campaign with
//! [`CampaignRunner::run_shared`](super::CampaignRunner::run_shared) over one
//! [`CampaignBatches`] store (PostgreSQL's in production). Each worker, in turn:
//!
//! 1. takes over a batch whose lease expired ([`CampaignBatches::take_expired`]: a worker died
//!    or stalled), if any;
//! 2. otherwise reads the next segment page from where the newest batch ended
//!    ([`CampaignBatches::position`]) and *opens* it as batch `n`
//!    ([`CampaignBatches::open`]): of the workers that read the same position exactly one
//!    opens it, the others read the new position and try again;
//! 3. handles the batch's recipients as a single run does (claim, send, finish in the
//!    [`Outbox`](super::Outbox)), renewing the lease as it goes
//!    ([`CampaignBatches::renew`]), and completes it ([`CampaignBatches::complete`]).
//!
//! A batch is completed only once every recipient in it has an outcome, so the resume point is
//! what was *sent*, never what was fetched: a killed worker's batch stays open and, once its
//! lease ends, another worker takes it over. There, the recipients the dead worker had not
//! reached are sent, the ones it had recorded count as earlier, and the ones it had claimed
//! without recording (its sends in flight) are *uncertain*, as after any crash: maybe sent,
//! never resent. The outbox's one-outcome-per-recipient rule makes a second send impossible
//! even when a stalled worker wakes up after its batch was taken over.
//!
//! Leases compare the workers' clocks: keep them within a small part of the lease (NTP).
//!
//! # Contract
//!
//! - Batch numbers of a campaign start at 0 and follow each other; [`open`](CampaignBatches::open)
//!   stores batch `n` only if no batch `n` exists (of concurrent opens of one number exactly one
//!   returns `true`).
//! - [`position`](CampaignBatches::position) is [`Position::Next`] with the number after the
//!   newest batch and that batch's `next` cursor (number 0 and no cursor for a campaign
//!   without batches), or [`Position::Exhausted`] once the newest batch has no `next`, with
//!   the count of batches not completed and the earliest end of their leases.
//! - [`take_expired`](CampaignBatches::take_expired) hands one batch that is not completed and
//!   whose lease ended at `now` to `worker` with a new lease, to one caller only, oldest
//!   first.
//! - [`renew`](CampaignBatches::renew) and [`complete`](CampaignBatches::complete) act only for
//!   the worker holding the batch and say whether it did.
//! - [`forget_contact`](CampaignBatches::forget_contact) removes a contact from every batch's
//!   recipients (for [`Erasure`](crate::erasure::Erasure)).

use std::time::Duration;

use async_trait::async_trait;

use super::CampaignId;
use crate::{clock::Timestamp, contact::ContactId, error::StoreError, segment::Cursor};

string_id!(
    /// The name a worker gives itself for its leases (a host name and a process id, say);
    /// unique among the workers running a campaign.
    WorkerId,
    "worker"
);

/// Lease of a batch unless configured: renewed every third of it while the batch runs.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// One page of a campaign's segment, handed to one worker at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Batch {
    /// The campaign.
    pub campaign: CampaignId,
    /// Its place in the campaign, from 0.
    pub number: u64,
    /// The segment cursor the page was read after (`None` for the first page).
    pub after: Option<Cursor>,
    /// The cursor after the page, `None` for the segment's last page.
    pub next: Option<Cursor>,
    /// The recipients read into it, in segment order.
    pub recipients: Vec<ContactId>,
    /// The worker holding it.
    pub worker: WorkerId,
    /// When its lease ends unless renewed.
    pub lease_until: Timestamp,
    /// How many times it was taken over after its lease ended.
    pub takeovers: u32,
}

impl Batch {
    /// A new batch, number `number`, held by `worker` until `lease_until`.
    pub fn new(
        campaign: CampaignId,
        number: u64,
        after: Option<Cursor>,
        next: Option<Cursor>,
        recipients: Vec<ContactId>,
        worker: WorkerId,
        lease_until: Timestamp,
    ) -> Self {
        Batch {
            campaign,
            number,
            after,
            next,
            recipients,
            worker,
            lease_until,
            takeovers: 0,
        }
    }
}

/// Where a campaign's batches stand.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Position {
    /// The next batch to open: its number and the cursor its page is read after.
    Next {
        /// The number the next batch gets.
        number: u64,
        /// Where its page starts (`None`: the segment's start).
        after: Option<Cursor>,
    },
    /// Every page of the segment is in a batch.
    Exhausted {
        /// Batches not completed yet.
        open: u64,
        /// The earliest end of their leases, when any is open.
        earliest_lease_end: Option<Timestamp>,
    },
}

/// A campaign's batches. See the [module docs](self) for the contract.
#[async_trait]
pub trait CampaignBatches: Send + Sync {
    /// Where `campaign`'s batches stand.
    async fn position(&self, campaign: &CampaignId) -> Result<Position, StoreError>;

    /// Stores `batch` unless its campaign has a batch of its number; whether it did.
    async fn open(&self, batch: &Batch) -> Result<bool, StoreError>;

    /// Hands the oldest batch of `campaign` whose lease ended at `now` to `worker` until
    /// `now + lease`.
    async fn take_expired(
        &self,
        campaign: &CampaignId,
        worker: &WorkerId,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Option<Batch>, StoreError>;

    /// Extends `worker`'s lease of batch `number` to `until`; `false` if `worker` no longer
    /// holds it (it was taken over) or it is completed.
    async fn renew(
        &self,
        campaign: &CampaignId,
        number: u64,
        worker: &WorkerId,
        until: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Marks batch `number` completed; `false` if `worker` does not hold it.
    async fn complete(
        &self,
        campaign: &CampaignId,
        number: u64,
        worker: &WorkerId,
    ) -> Result<bool, StoreError>;

    /// Removes `contact` from the recipients of every batch; returns how many batches named
    /// it.
    async fn forget_contact(&self, contact: &ContactId) -> Result<usize, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn _object_safe(_: &dyn CampaignBatches) {}
}
