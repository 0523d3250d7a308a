use std::{fmt, sync::Arc};

use async_trait::async_trait;

use super::{
    Shared,
    codec::{instance_from as decode, revision_of as revision, to_json},
    error::{db, is_unique_violation},
    refusal,
};
use crate::{
    clock::Timestamp,
    contact::ContactId,
    error::StoreError,
    process::{InstanceId, ProcessInstance, ProcessStore},
};

/// Flow instances in SQLite: a [`ProcessStore`].
///
/// A partial unique index keeps one unfinished instance per (contact, flow), and
/// [`update`](ProcessStore::update) is a single `UPDATE ... WHERE revision = ?`: of two
/// workers (tasks or processes) that read the same revision, exactly one writes.
#[derive(Clone)]
pub struct SqliteProcessStore {
    shared: Arc<Shared>,
}

impl fmt::Debug for SqliteProcessStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteProcessStore")
            .field("location", &self.shared.location)
            .finish()
    }
}

impl SqliteProcessStore {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        SqliteProcessStore { shared }
    }
}

#[async_trait]
impl ProcessStore for SqliteProcessStore {
    async fn insert(&self, instance: &ProcessInstance) -> Result<(), StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO process_instances (id, flow, contact_id, active, due_at, revision, instance) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(instance.id.as_str())
        .bind(instance.flow.as_str())
        .bind(instance.contact.as_str())
        .bind(i64::from(!instance.is_finished()))
        .bind(instance.due_at.map(Timestamp::as_millis))
        .bind(revision(instance)?)
        .bind(to_json("process instance", instance)?)
        .execute(&self.shared.pool)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => {
                let exists = self.get(&instance.id).await?.is_some();
                Err(StoreError::conflict(if exists {
                    format!("instance {} exists", instance.id)
                } else {
                    format!(
                        "contact {} already runs flow {}",
                        instance.contact, instance.flow
                    )
                }))
            }
            Err(e) => Err(db(e)),
        }
    }

    async fn get(&self, id: &InstanceId) -> Result<Option<ProcessInstance>, StoreError> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT instance, revision FROM process_instances WHERE id = ?")
                .bind(id.as_str())
                .fetch_optional(&self.shared.reader)
                .await
                .map_err(db)?;
        row.map(|(i, r)| decode(&i, r)).transpose()
    }

    async fn active_for(&self, contact: &ContactId) -> Result<Vec<ProcessInstance>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT instance, revision FROM process_instances \
             WHERE contact_id = ? AND active = 1 ORDER BY id",
        )
        .bind(contact.as_str())
        .fetch_all(&self.shared.reader)
        .await
        .map_err(db)?;
        rows.iter().map(|(i, r)| decode(i, *r)).collect()
    }

    async fn update(&self, instance: &ProcessInstance) -> Result<u64, StoreError> {
        let expected = revision(instance)?;
        let next = instance.revision.checked_add(1).ok_or_else(|| {
            StoreError::invalid(format!("instance {} revision overflow", instance.id))
        })?;
        let mut stored = instance.clone();
        stored.revision = next;
        let finished = i64::from(instance.is_finished());
        // Compare-and-swap: the revision, the contact and flow, and "a finished instance stays
        // finished" are all conditions of the one UPDATE.
        let done = sqlx::query(
            "UPDATE process_instances SET active = ?, due_at = ?, revision = ?, instance = ? \
             WHERE id = ? AND revision = ? AND contact_id = ? AND flow = ? \
               AND (active = 1 OR ? = 1)",
        )
        .bind(1 - finished)
        .bind(instance.due_at.map(Timestamp::as_millis))
        .bind(revision(&stored)?)
        .bind(to_json("process instance", &stored)?)
        .bind(instance.id.as_str())
        .bind(expected)
        .bind(instance.contact.as_str())
        .bind(instance.flow.as_str())
        .bind(finished)
        .execute(&self.shared.pool)
        .await
        .map_err(db)?;
        if done.rows_affected() == 1 {
            return Ok(next);
        }
        // Nothing written: say why.
        let current = self.get(&instance.id).await?;
        Err(refusal::update_refused(instance, current))
    }

    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<ProcessInstance>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT instance, revision FROM process_instances \
             WHERE active = 1 AND due_at IS NOT NULL AND due_at <= ? \
             ORDER BY due_at, id LIMIT ?",
        )
        .bind(now.as_millis())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.shared.reader)
        .await
        .map_err(db)?;
        rows.iter().map(|(i, r)| decode(i, *r)).collect()
    }

    async fn forget_contact(&self, contact: &ContactId) -> Result<usize, StoreError> {
        let done = sqlx::query("DELETE FROM process_instances WHERE contact_id = ?")
            .bind(contact.as_str())
            .execute(&self.shared.pool)
            .await
            .map_err(db)?;
        Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
    }
}
