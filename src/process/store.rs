//! Durable flow state: [`ProcessInstance`] and the [`ProcessStore`] that keeps it.
//!
//! # Contract
//!
//! - At most one unfinished instance per contact and flow: [`ProcessStore::insert`] of a second
//!   one fails with [`StoreError::Conflict`], as does inserting an id that exists. A finished
//!   instance (finished or failed: [`ProcessInstance::is_finished`]) stays finished: an update
//!   that would make it run again is refused with [`StoreError::Invalid`].
//! - Writes are compare-and-swap on [`ProcessInstance::revision`]: [`ProcessStore::update`]
//!   succeeds only if the stored revision equals the one the caller read, and stores the
//!   instance with the revision incremented. Two answers processed at once therefore move an
//!   instance once; the loser gets a conflict and re-reads.
//! - [`ProcessStore::due`] returns unfinished instances whose `due_at` is at or before `now`,
//!   earliest first, so a host's periodic `tick` finds waits and timeouts that expired.
//!   [`ProcessStore::claim_due`] claims them: a claimed instance is due again only when the
//!   claim's time has passed, so workers ticking at once take instances of their own.
//! - [`ProcessStore::forget_contact`] removes every instance of the contact, finished and
//!   failed ones included (their history holds the contact's answers), and returns how many:
//!   afterwards [`get`](ProcessStore::get) of each is `None`, none is
//!   [`active_for`](ProcessStore::active_for) the contact or [`due`](ProcessStore::due), and
//!   the contact may start any flow again. Other contacts' instances are untouched; a contact
//!   with no instances gives 0.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{FlowId, InstanceId};
use crate::{clock::Timestamp, contact::ContactId, error::StoreError};

/// Where an instance stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum InstanceStatus {
    /// Moving through blocks.
    Running,
    /// Waiting for an answer or for time to pass.
    Waiting,
    /// Done; kept for history.
    Finished,
    /// Stopped for good by a failure that retrying cannot fix (the contact is unreachable, a
    /// message could not be rendered); kept for history. Counts as finished.
    Failed,
}

/// A step an instance took, for history and for telling stale answers apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StepRecord {
    /// The block id.
    pub step: String,
    /// When the instance entered it.
    pub at: Timestamp,
    /// The answer that left it, if it was a question: the chosen option's label, or the text
    /// the contact typed.
    #[serde(default)]
    pub answer: Option<String>,
    /// The index of the chosen option, when an option was chosen (tells a double tap of the
    /// same button from a tap on another button of an answered question).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choice: Option<u8>,
}

impl StepRecord {
    /// A record of entering `step` at `at`.
    pub fn new(step: impl Into<String>, at: Timestamp) -> Self {
        StepRecord {
            step: step.into(),
            at,
            answer: None,
            choice: None,
        }
    }
}

/// One run of a flow for one contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProcessInstance {
    /// The instance id.
    pub id: InstanceId,
    /// The flow it runs.
    pub flow: FlowId,
    /// The version of the flow it started with (it keeps it when the flow is updated).
    pub flow_version: u32,
    /// The contact it runs for.
    pub contact: ContactId,
    /// The block it is at.
    pub step: String,
    /// Where it stands.
    pub status: InstanceStatus,
    /// When it needs attention without an event (end of a wait, answer timeout).
    #[serde(default)]
    pub due_at: Option<Timestamp>,
    /// The revision the store holds; see the module's contract.
    pub revision: u64,
    /// The steps taken, oldest first. The position of a step in it is its *visit number*,
    /// which answer payloads carry to tell the current question from earlier ones.
    #[serde(default)]
    pub history: Vec<StepRecord>,
    /// Fields the flow set for this contact; its branches and templates read them before the
    /// contact's own fields.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, serde_json::Value>,
    /// Temporary delivery failures in a row at the current step; the engine fails the
    /// instance when they reach its limit
    /// ([`FlowEngineBuilder::max_attempts`](super::FlowEngineBuilder::max_attempts)).
    /// Stored so the count survives restarts; 0 when absent.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ProcessInstance {
    /// A new running instance at `step`, revision 0.
    pub fn new(
        id: InstanceId,
        flow: FlowId,
        flow_version: u32,
        contact: ContactId,
        step: impl Into<String>,
    ) -> Self {
        ProcessInstance {
            id,
            flow,
            flow_version,
            contact,
            step: step.into(),
            status: InstanceStatus::Running,
            due_at: None,
            revision: 0,
            history: Vec::new(),
            vars: BTreeMap::new(),
            attempts: 0,
        }
    }

    /// Whether the instance is done: [`Finished`](InstanceStatus::Finished) or
    /// [`Failed`](InstanceStatus::Failed).
    pub fn is_finished(&self) -> bool {
        matches!(
            self.status,
            InstanceStatus::Finished | InstanceStatus::Failed
        )
    }
}

/// Keeps flow instances. See the [module docs](self) for the contract.
#[async_trait]
pub trait ProcessStore: Send + Sync {
    /// Stores a new instance.
    async fn insert(&self, instance: &ProcessInstance) -> Result<(), StoreError>;

    /// The instance with id `id`.
    async fn get(&self, id: &InstanceId) -> Result<Option<ProcessInstance>, StoreError>;

    /// The unfinished instances of `contact`.
    async fn active_for(&self, contact: &ContactId) -> Result<Vec<ProcessInstance>, StoreError>;

    /// Writes `instance` if the stored revision is `instance.revision`; returns the new
    /// revision.
    async fn update(&self, instance: &ProcessInstance) -> Result<u64, StoreError>;

    /// Up to `limit` unfinished instances due at or before `now`, earliest first.
    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<ProcessInstance>, StoreError>;

    /// Claims up to `limit` instances due at `now` (earliest first) for the caller until
    /// `until`: each claimed instance is stored with `due_at = until` (and its revision moved
    /// on), so a second claim before `until` passes it by, and returned as stored. An instance
    /// whose claimer dies is due again at `until`.
    ///
    /// This is what lets several workers [`tick`](crate::process::FlowEngine::tick) one store
    /// without taking the same instances: each gets instances of its own. (The revision
    /// compare-and-swap alone already moves each instance once; claims keep workers from
    /// spending their turns on each other's instances.)
    ///
    /// The provided method claims each instance of [`due`](ProcessStore::due) with an
    /// [`update`](ProcessStore::update) (a compare-and-swap) and returns the ones won; a store
    /// shared by several processes can do it in one statement (PostgreSQL skips rows another
    /// worker is claiming, `FOR UPDATE SKIP LOCKED`).
    async fn claim_due(
        &self,
        now: Timestamp,
        limit: usize,
        until: Timestamp,
    ) -> Result<Vec<ProcessInstance>, StoreError> {
        let mut claimed = Vec::new();
        for mut instance in self.due(now, limit).await? {
            instance.due_at = Some(until);
            match self.update(&instance).await {
                Ok(revision) => {
                    instance.revision = revision;
                    claimed.push(instance);
                }
                // Moved by someone else since `due` read it: theirs.
                Err(e) if e.is_conflict() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(claimed)
    }

    /// Removes every instance of `contact`, finished ones included; returns how many.
    async fn forget_contact(&self, contact: &ContactId) -> Result<usize, StoreError>;
}
