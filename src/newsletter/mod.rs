//! Newsletters: campaigns sent to a segment, with one recorded outcome per recipient.
//!
//! This module holds the [`Outbox`], the write-once record of what became of each
//! recipient of a campaign. It is what makes a campaign resumable: a recipient with an outcome
//! is never sent to again.

pub mod login;
pub mod outbox;

pub use outbox::{CampaignId, Outbox, Outcome, OutcomeRecord, Recorded, SkipReason};
