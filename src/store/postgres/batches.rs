use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;

use super::{
    Shared,
    codec::{contact_id, corrupt},
    error::db,
};
use crate::{
    clock::Timestamp,
    contact::ContactId,
    error::StoreError,
    newsletter::{
        CampaignId,
        batches::{Batch, CampaignBatches, Position, WorkerId},
    },
    segment::Cursor,
};

/// A campaign's batches in PostgreSQL: a [`CampaignBatches`] for workers in several
/// processes.
///
/// Opening batch `n` is an `INSERT ... ON CONFLICT DO NOTHING` on the (campaign, number) key,
/// so of the workers that read the same position one wins. Taking over an expired batch locks
/// it with `FOR UPDATE SKIP LOCKED`: workers looking at once take different batches (or none)
/// and never wait for each other.
#[derive(Clone)]
pub struct PgCampaignBatches {
    shared: Arc<Shared>,
}

impl fmt::Debug for PgCampaignBatches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgCampaignBatches")
            .field("location", &self.shared.location)
            .finish()
    }
}

type BatchRow = (
    String,
    i64,
    Option<String>,
    Option<String>,
    Vec<String>,
    String,
    i64,
    i32,
);

const COLUMNS: &str =
    "campaign, number, after_cursor, next_cursor, recipients, worker, lease_until, takeovers";

fn batch_from(row: BatchRow) -> Result<Batch, StoreError> {
    let (campaign, number, after, next, recipients, worker, lease_until, takeovers) = row;
    let mut batch = Batch::new(
        CampaignId::new(campaign).map_err(|e| corrupt("campaign id", e))?,
        u64::try_from(number).map_err(|e| corrupt("batch number", e))?,
        after.map(Cursor::new),
        next.map(Cursor::new),
        recipients
            .into_iter()
            .map(contact_id)
            .collect::<Result<_, _>>()?,
        WorkerId::new(worker).map_err(|e| corrupt("worker id", e))?,
        Timestamp::from_millis(lease_until),
    );
    batch.takeovers = u32::try_from(takeovers).unwrap_or(0);
    Ok(batch)
}

fn number(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::invalid(format!("batch number {n} is too large")))
}

impl PgCampaignBatches {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        PgCampaignBatches { shared }
    }
}

#[async_trait]
impl CampaignBatches for PgCampaignBatches {
    async fn position(&self, campaign: &CampaignId) -> Result<Position, StoreError> {
        let newest: Option<(i64, Option<String>)> = sqlx::query_as(
            "SELECT number, next_cursor FROM campaign_batches WHERE campaign = $1 \
             ORDER BY number DESC LIMIT 1",
        )
        .bind(campaign.as_str())
        .fetch_optional(&self.shared.pool)
        .await
        .map_err(db)?;
        match newest {
            None => Ok(Position::Next {
                number: 0,
                after: None,
            }),
            Some((n, Some(next))) => Ok(Position::Next {
                number: u64::try_from(n).map_err(|e| corrupt("batch number", e))? + 1,
                after: Some(Cursor::new(next)),
            }),
            Some((_, None)) => {
                let (open, earliest): (i64, Option<i64>) = sqlx::query_as(
                    "SELECT COUNT(*), MIN(lease_until) FROM campaign_batches \
                     WHERE campaign = $1 AND NOT done",
                )
                .bind(campaign.as_str())
                .fetch_one(&self.shared.pool)
                .await
                .map_err(db)?;
                Ok(Position::Exhausted {
                    open: u64::try_from(open).unwrap_or(0),
                    earliest_lease_end: earliest.map(Timestamp::from_millis),
                })
            }
        }
    }

    async fn open(&self, batch: &Batch) -> Result<bool, StoreError> {
        let recipients: Vec<&str> = batch.recipients.iter().map(ContactId::as_str).collect();
        let done = sqlx::query(
            "INSERT INTO campaign_batches \
               (campaign, number, after_cursor, next_cursor, recipients, worker, lease_until) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(batch.campaign.as_str())
        .bind(number(batch.number)?)
        .bind(batch.after.as_ref().map(Cursor::as_str))
        .bind(batch.next.as_ref().map(Cursor::as_str))
        .bind(&recipients)
        .bind(batch.worker.as_str())
        .bind(batch.lease_until.as_millis())
        .execute(&self.shared.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn take_expired(
        &self,
        campaign: &CampaignId,
        worker: &WorkerId,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Option<Batch>, StoreError> {
        let row: Option<BatchRow> = sqlx::query_as(&format!(
            "UPDATE campaign_batches b SET worker = $2, lease_until = $4, \
               takeovers = b.takeovers + 1 \
             FROM (SELECT campaign, number FROM campaign_batches \
                   WHERE campaign = $1 AND NOT done AND lease_until <= $3 \
                   ORDER BY number LIMIT 1 FOR UPDATE SKIP LOCKED) e \
             WHERE b.campaign = e.campaign AND b.number = e.number \
             RETURNING {}",
            COLUMNS
                .split(", ")
                .map(|c| format!("b.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .bind(campaign.as_str())
        .bind(worker.as_str())
        .bind(now.as_millis())
        .bind(now.saturating_add(lease).as_millis())
        .fetch_optional(&self.shared.pool)
        .await
        .map_err(db)?;
        row.map(batch_from).transpose()
    }

    async fn renew(
        &self,
        campaign: &CampaignId,
        number_: u64,
        worker: &WorkerId,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE campaign_batches SET lease_until = $4 \
             WHERE campaign = $1 AND number = $2 AND worker = $3 AND NOT done",
        )
        .bind(campaign.as_str())
        .bind(number(number_)?)
        .bind(worker.as_str())
        .bind(until.as_millis())
        .execute(&self.shared.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn complete(
        &self,
        campaign: &CampaignId,
        number_: u64,
        worker: &WorkerId,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE campaign_batches SET done = TRUE \
             WHERE campaign = $1 AND number = $2 AND worker = $3 AND NOT done",
        )
        .bind(campaign.as_str())
        .bind(number(number_)?)
        .bind(worker.as_str())
        .execute(&self.shared.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn forget_contact(&self, contact: &ContactId) -> Result<usize, StoreError> {
        let done = sqlx::query(
            "UPDATE campaign_batches SET recipients = array_remove(recipients, $1) \
             WHERE recipients @> ARRAY[$1]",
        )
        .bind(contact.as_str())
        .execute(&self.shared.pool)
        .await
        .map_err(db)?;
        Ok(super::codec::count(done.rows_affected()))
    }
}
