//! Why a conditional write wrote nothing, told the same way by every SQL store: the write is
//! one statement whose `WHERE` holds the conditions, and when it touches no row the store reads
//! the row back and names the condition that failed.

use crate::{error::StoreError, newsletter::OutcomeRecord, process::ProcessInstance};

/// A pre-condition of a final outcome: finishing needs a final outcome.
pub(crate) fn check_final(record: &OutcomeRecord) -> Result<(), StoreError> {
    if record.outcome.is_pending() {
        Err(StoreError::invalid(
            "finish needs a final outcome, not pending",
        ))
    } else {
        Ok(())
    }
}

/// Why `Outbox::finish` of `record` changed nothing, given the stored record (if any): no
/// claim, or a final outcome already.
pub(crate) fn finish_refused(record: &OutcomeRecord, stored: Option<OutcomeRecord>) -> StoreError {
    match stored {
        None => StoreError::not_found(
            "campaign claim",
            format!("{}/{}", record.campaign, record.contact),
        ),
        Some(_) => StoreError::conflict(format!(
            "{} in campaign {} already has a final outcome",
            record.contact, record.campaign
        )),
    }
}

/// Why `ProcessStore::update` of `attempted` changed nothing, given the stored instance (if
/// any): gone, moved on by someone else (a conflict: re-read), finished, or an attempt to
/// change its contact or flow.
pub(crate) fn update_refused(
    attempted: &ProcessInstance,
    current: Option<ProcessInstance>,
) -> StoreError {
    let Some(current) = current else {
        return StoreError::not_found("process instance", attempted.id.as_str());
    };
    if current.revision != attempted.revision {
        StoreError::conflict(format!(
            "instance {} is at revision {}, the update was based on {}",
            attempted.id, current.revision, attempted.revision
        ))
    } else if current.is_finished() {
        StoreError::invalid(format!(
            "instance {} has finished and cannot run again; start a new instance",
            attempted.id
        ))
    } else {
        StoreError::invalid(format!(
            "instance {} cannot change its contact or flow",
            attempted.id
        ))
    }
}
