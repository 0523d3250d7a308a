//! Newsletters and notifications: a message sent to a segment (or to one contact), with one
//! recorded outcome per recipient.
//!
//! - [`Campaign`] ([`campaign`]): what is sent (a [`template`](crate::template) text, links),
//!   to whom (a [`Segment`](crate::segment::Segment)), over which transports in which order,
//!   for what purpose, with or without [login links](login).
//! - [`CampaignRunner`] ([`run`]): streams the segment, renders per recipient, sends with
//!   bounded concurrency, retries, pauses on rate limits, and records exactly one outcome per
//!   recipient in the [`Outbox`] ([`outbox`]): running a campaign again after a crash or a
//!   stop continues where it stopped and never sends twice to anyone recorded. The few
//!   recipients a crash caught in flight are reported as
//!   [uncertain](run#the-window-between-claim-and-record) (maybe sent) by id, never resent.
//! - [`CampaignRunner::run_shared`] ([`batches`]): the same campaign run by any number of
//!   workers (processes) at once, each taking batches of the segment under expiring leases.
//! - [`CampaignRunner::send_one`]: the platform's own notifications to one user through the
//!   same pipeline.
//!
//! ```
//! use std::sync::Arc;
//! use tidings::{
//!     contact::{Address, Channel, NewContact},
//!     identity::Directory,
//!     newsletter::{Campaign, CampaignId, CampaignRunner, RunControl},
//!     segment::Segment,
//!     store::memory::{MemoryDirectory, MemoryOutbox},
//!     transport::stub::StubTransport,
//! };
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let directory = Arc::new(MemoryDirectory::new());
//! directory
//!     .create(NewContact::new().with_name("Ann", "Lee").with_address(Address::email("ann@example.org")?))
//!     .await?;
//! directory.create(NewContact::new().with_name("Bo", "Kim")).await?;
//!
//! let runner = CampaignRunner::builder(directory.clone(), Arc::new(MemoryOutbox::new()))
//!     .transport(Arc::new(StubTransport::new(Channel::Email)))
//!     .build();
//!
//! let campaign = Campaign::builder(
//!     CampaignId::new("lesson-4")?,
//!     Segment::everyone(),
//!     "Hi {{ first_name | default('there') }}, lesson 4 is open.",
//! )
//! .channels([Channel::Email])
//! .build()?;
//! let report = runner.run(&campaign, &RunControl::new()).await?;
//! assert_eq!((report.this_run.sent, report.this_run.skipped_total()), (1, 1));
//!
//! // Again: nobody gets it twice.
//! let again = runner.run(&campaign, &RunControl::new()).await?;
//! assert_eq!((again.this_run.recipients(), again.total.recipients()), (0, 2));
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run()).unwrap();
//! ```

pub mod batches;
pub mod campaign;
pub mod login;
pub mod outbox;
pub mod run;

pub use campaign::{Campaign, CampaignBuilder, CampaignDefinitionError};
pub use run::{
    CampaignError, CampaignRunner, CampaignRunnerBuilder, Counts, Progress, Report, RunControl,
    RunState,
};

pub use outbox::{CampaignId, Outbox, Outcome, OutcomeRecord, Recorded, SkipReason};
