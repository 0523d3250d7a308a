use std::{fmt, sync::Arc};

use async_trait::async_trait;

use super::{
    Shared,
    codec::{count, instance_from, revision_of, to_json},
    error::{db, is_unique_violation},
    refusal,
};
use crate::{
    clock::Timestamp,
    contact::ContactId,
    error::StoreError,
    process::{InstanceId, ProcessInstance, ProcessStore},
};

/// Flow instances in PostgreSQL: a [`ProcessStore`].
///
/// A partial unique index keeps one unfinished instance per (contact, flow), and
/// [`update`](ProcessStore::update) is a single `UPDATE ... WHERE revision = $n`: of two
/// workers (tasks or processes) that read the same revision, exactly one writes, so workers
/// that [`tick`](crate::process::FlowEngine::tick) the same due instances move each once.
#[derive(Clone)]
pub struct PgProcessStore {
    shared: Arc<Shared>,
}

impl fmt::Debug for PgProcessStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgProcessStore")
            .field("location", &self.shared.location)
            .finish()
    }
}

impl PgProcessStore {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        PgProcessStore { shared }
    }
}

#[async_trait]
impl ProcessStore for PgProcessStore {
    async fn insert(&self, instance: &ProcessInstance) -> Result<(), StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO process_instances (id, flow, contact_id, active, due_at, revision, instance) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(instance.id.as_str())
        .bind(instance.flow.as_str())
        .bind(instance.contact.as_str())
        .bind(!instance.is_finished())
        .bind(instance.due_at.map(Timestamp::as_millis))
        .bind(revision_of(instance)?)
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
            sqlx::query_as("SELECT instance, revision FROM process_instances WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.shared.pool)
                .await
                .map_err(db)?;
        row.map(|(i, r)| instance_from(&i, r)).transpose()
    }

    async fn active_for(&self, contact: &ContactId) -> Result<Vec<ProcessInstance>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT instance, revision FROM process_instances \
             WHERE contact_id = $1 AND active ORDER BY id",
        )
        .bind(contact.as_str())
        .fetch_all(&self.shared.pool)
        .await
        .map_err(db)?;
        rows.iter().map(|(i, r)| instance_from(i, *r)).collect()
    }

    async fn update(&self, instance: &ProcessInstance) -> Result<u64, StoreError> {
        let expected = revision_of(instance)?;
        let next = instance.revision.checked_add(1).ok_or_else(|| {
            StoreError::invalid(format!("instance {} revision overflow", instance.id))
        })?;
        let mut stored = instance.clone();
        stored.revision = next;
        let finished = instance.is_finished();
        // Compare-and-swap: the revision, the contact and flow, and "a finished instance stays
        // finished" are all conditions of the one UPDATE.
        let done = sqlx::query(
            "UPDATE process_instances SET active = $1, due_at = $2, revision = $3, instance = $4 \
             WHERE id = $5 AND revision = $6 AND contact_id = $7 AND flow = $8 \
               AND (active OR $9)",
        )
        .bind(!finished)
        .bind(instance.due_at.map(Timestamp::as_millis))
        .bind(revision_of(&stored)?)
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
             WHERE active AND due_at IS NOT NULL AND due_at <= $1 \
             ORDER BY due_at, id LIMIT $2",
        )
        .bind(now.as_millis())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.shared.pool)
        .await
        .map_err(db)?;
        rows.iter().map(|(i, r)| instance_from(i, *r)).collect()
    }

    /// One transaction: the due rows are locked with `FOR UPDATE SKIP LOCKED` (rows another
    /// worker is claiming at this moment are passed by, not waited for) and written back with
    /// the claim's `due_at` in one `UPDATE` over arrays.
    async fn claim_due(
        &self,
        now: Timestamp,
        limit: usize,
        until: Timestamp,
    ) -> Result<Vec<ProcessInstance>, StoreError> {
        let mut tx = self.shared.pool.begin().await.map_err(db)?;
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT id, instance, revision FROM process_instances \
             WHERE active AND due_at IS NOT NULL AND due_at <= $1 \
             ORDER BY due_at, id LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(now.as_millis())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut claimed = Vec::with_capacity(rows.len());
        let (mut ids, mut revisions, mut texts) = (
            Vec::with_capacity(rows.len()),
            Vec::with_capacity(rows.len()),
            Vec::with_capacity(rows.len()),
        );
        for (id, text, revision) in &rows {
            let mut instance = match instance_from(text, *revision) {
                Ok(instance) => instance,
                Err(e) => {
                    // Unreadable: left as it is (due, unclaimed) for someone to look at; the
                    // others of the batch are claimed.
                    tracing::warn!(instance = %id, error = %e, "flow instance unreadable; not claimed");
                    continue;
                }
            };
            instance.due_at = Some(until);
            instance.revision = instance.revision.checked_add(1).ok_or_else(|| {
                StoreError::invalid(format!("instance {} revision overflow", instance.id))
            })?;
            ids.push(instance.id.as_str().to_owned());
            revisions.push(revision_of(&instance)?);
            texts.push(to_json("process instance", &instance)?);
            claimed.push(instance);
        }
        sqlx::query(
            "UPDATE process_instances AS p SET due_at = $1, revision = c.revision, \
             instance = c.instance \
             FROM unnest($2::text[], $3::bigint[], $4::text[]) AS c(id, revision, instance) \
             WHERE p.id = c.id",
        )
        .bind(until.as_millis())
        .bind(&ids)
        .bind(&revisions)
        .bind(&texts)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(claimed)
    }

    async fn forget_contact(&self, contact: &ContactId) -> Result<usize, StoreError> {
        let done = sqlx::query("DELETE FROM process_instances WHERE contact_id = $1")
            .bind(contact.as_str())
            .execute(&self.shared.pool)
            .await
            .map_err(db)?;
        Ok(count(done.rows_affected()))
    }
}
