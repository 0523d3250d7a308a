use std::{fmt, sync::Arc};

use async_trait::async_trait;

use super::{
    Shared,
    codec::{OutcomeRow, count, outcome_from, to_json},
    error::db,
    refusal,
};
use crate::{
    contact::ContactId,
    error::StoreError,
    newsletter::{CampaignId, Outbox, OutcomeRecord, Recorded},
};

/// Campaign outcomes in PostgreSQL: an [`Outbox`].
///
/// The (campaign, recipient) primary key makes "one outcome per recipient" the database's
/// rule: a claim is an `INSERT ... ON CONFLICT DO NOTHING`, and finishing is an `UPDATE` of a
/// row that is still pending, so any number of workers running one campaign never both claim
/// a recipient, and a final outcome is never overwritten.
#[derive(Clone)]
pub struct PgOutbox {
    shared: Arc<Shared>,
}

impl fmt::Debug for PgOutbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgOutbox")
            .field("location", &self.shared.location)
            .finish()
    }
}

impl PgOutbox {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        PgOutbox { shared }
    }

    /// How many recipients of `campaign` have a record, and how many of those are pending.
    pub async fn count(&self, campaign: &CampaignId) -> Result<(u64, u64), StoreError> {
        let (all, pending): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE pending) FROM campaign_outcomes \
             WHERE campaign = $1",
        )
        .bind(campaign.as_str())
        .fetch_one(&self.shared.pool)
        .await
        .map_err(db)?;
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok((n(all), n(pending)))
    }
}

#[async_trait]
impl Outbox for PgOutbox {
    async fn record(&self, record: &OutcomeRecord) -> Result<Recorded, StoreError> {
        let outcome = to_json("campaign outcome", &record.outcome)?;
        loop {
            let inserted = sqlx::query(
                "INSERT INTO campaign_outcomes (campaign, contact_id, pending, outcome, at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(record.campaign.as_str())
            .bind(record.contact.as_str())
            .bind(record.outcome.is_pending())
            .bind(&outcome)
            .bind(record.at.as_millis())
            .execute(&self.shared.pool)
            .await
            .map_err(db)?;
            if inserted.rows_affected() == 1 {
                return Ok(Recorded::New);
            }
            // Erased between the insert and this read: try again.
            if let Some(existing) = self.get(&record.campaign, &record.contact).await? {
                return Ok(Recorded::Existing(existing));
            }
        }
    }

    async fn finish(&self, record: &OutcomeRecord) -> Result<(), StoreError> {
        refusal::check_final(record)?;
        let done = sqlx::query(
            "UPDATE campaign_outcomes SET pending = FALSE, outcome = $3, at = $4 \
             WHERE campaign = $1 AND contact_id = $2 AND pending",
        )
        .bind(record.campaign.as_str())
        .bind(record.contact.as_str())
        .bind(to_json("campaign outcome", &record.outcome)?)
        .bind(record.at.as_millis())
        .execute(&self.shared.pool)
        .await
        .map_err(db)?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        let stored = self.get(&record.campaign, &record.contact).await?;
        Err(refusal::finish_refused(record, stored))
    }

    async fn get(
        &self,
        campaign: &CampaignId,
        contact: &ContactId,
    ) -> Result<Option<OutcomeRecord>, StoreError> {
        let row: Option<OutcomeRow> = sqlx::query_as(
            "SELECT campaign, contact_id, outcome, at FROM campaign_outcomes \
             WHERE campaign = $1 AND contact_id = $2",
        )
        .bind(campaign.as_str())
        .bind(contact.as_str())
        .fetch_optional(&self.shared.pool)
        .await
        .map_err(db)?;
        row.map(outcome_from).transpose()
    }

    async fn list(
        &self,
        campaign: &CampaignId,
        after: Option<&ContactId>,
        limit: usize,
    ) -> Result<Vec<OutcomeRecord>, StoreError> {
        if limit == 0 {
            return Err(StoreError::invalid("list limit must be at least 1"));
        }
        let rows: Vec<OutcomeRow> = sqlx::query_as(
            "SELECT campaign, contact_id, outcome, at FROM campaign_outcomes \
             WHERE campaign = $1 AND contact_id > $2 ORDER BY contact_id LIMIT $3",
        )
        .bind(campaign.as_str())
        .bind(after.map_or("", ContactId::as_str))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.shared.pool)
        .await
        .map_err(db)?;
        rows.into_iter().map(outcome_from).collect()
    }

    async fn forget_contact(&self, contact: &ContactId) -> Result<usize, StoreError> {
        let done = sqlx::query("DELETE FROM campaign_outcomes WHERE contact_id = $1")
            .bind(contact.as_str())
            .execute(&self.shared.pool)
            .await
            .map_err(db)?;
        Ok(count(done.rows_affected()))
    }
}
