use std::{fmt, sync::Arc};

use async_trait::async_trait;

use super::{
    Shared,
    batch::{Done, Write},
    codec::{OutcomeRow as Row, count, outcome_from as record_from, to_json},
    error::db,
    refusal,
};
use crate::{
    contact::ContactId,
    error::StoreError,
    newsletter::{CampaignId, Outbox, OutcomeRecord, Recorded},
};

/// Campaign outcomes in SQLite: an [`Outbox`].
///
/// The (campaign, recipient) primary key makes "one outcome per recipient" the database's
/// rule: a claim is an `INSERT ... ON CONFLICT DO NOTHING`, and finishing is an `UPDATE` of a
/// row that is still pending, so two runs (tasks or processes) of one campaign never both
/// claim a recipient and a final outcome is never overwritten.
#[derive(Clone)]
pub struct SqliteOutbox {
    shared: Arc<Shared>,
}

impl fmt::Debug for SqliteOutbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteOutbox")
            .field("location", &self.shared.location)
            .finish()
    }
}

impl SqliteOutbox {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        SqliteOutbox { shared }
    }

    /// How many recipients of `campaign` have a record, and how many of those are pending.
    pub async fn count(&self, campaign: &CampaignId) -> Result<(u64, u64), StoreError> {
        let (all, pending): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), SUM(pending) FROM campaign_outcomes WHERE campaign = ?",
        )
        .bind(campaign.as_str())
        .fetch_one(&self.shared.reader)
        .await
        .map_err(db)?;
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok((n(all), n(pending.unwrap_or(0))))
    }
}

#[async_trait]
impl Outbox for SqliteOutbox {
    async fn record(&self, record: &OutcomeRecord) -> Result<Recorded, StoreError> {
        let outcome = to_json("campaign outcome", &record.outcome)?;
        loop {
            let inserted = self
                .shared
                .write(Write::Outcome {
                    campaign: record.campaign.to_string(),
                    contact: record.contact.to_string(),
                    pending: record.outcome.is_pending(),
                    outcome: outcome.clone(),
                    at: record.at.as_millis(),
                })
                .await?;
            if matches!(inserted, Done::Rows(1)) {
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
        let done = self
            .shared
            .write(Write::Finish {
                campaign: record.campaign.to_string(),
                contact: record.contact.to_string(),
                outcome: to_json("campaign outcome", &record.outcome)?,
                at: record.at.as_millis(),
            })
            .await?;
        if matches!(done, Done::Rows(1)) {
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
        let row: Option<Row> = sqlx::query_as(
            "SELECT campaign, contact_id, outcome, at FROM campaign_outcomes \
             WHERE campaign = ? AND contact_id = ?",
        )
        .bind(campaign.as_str())
        .bind(contact.as_str())
        .fetch_optional(&self.shared.reader)
        .await
        .map_err(db)?;
        row.map(record_from).transpose()
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
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT campaign, contact_id, outcome, at FROM campaign_outcomes \
             WHERE campaign = ? AND contact_id > ? ORDER BY contact_id LIMIT ?",
        )
        .bind(campaign.as_str())
        .bind(after.map_or("", ContactId::as_str))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.shared.reader)
        .await
        .map_err(db)?;
        rows.into_iter().map(record_from).collect()
    }

    async fn forget_contact(&self, contact: &ContactId) -> Result<usize, StoreError> {
        let done = sqlx::query("DELETE FROM campaign_outcomes WHERE contact_id = ?")
            .bind(contact.as_str())
            .execute(&self.shared.pool)
            .await
            .map_err(db)?;
        Ok(count(done.rows_affected()))
    }
}
