use std::{
    collections::{BTreeMap, HashMap},
    ops::Bound,
    sync::Mutex,
};

use async_trait::async_trait;

use crate::{
    contact::ContactId,
    error::StoreError,
    newsletter::{CampaignId, Outbox, OutcomeRecord, Recorded},
    sync::lock,
};

/// Campaign outcomes in memory: an [`Outbox`].
#[derive(Debug, Default)]
pub struct MemoryOutbox {
    campaigns: Mutex<HashMap<CampaignId, BTreeMap<ContactId, OutcomeRecord>>>,
}

impl MemoryOutbox {
    /// An empty outbox.
    pub fn new() -> Self {
        MemoryOutbox::default()
    }
}

#[async_trait]
impl Outbox for MemoryOutbox {
    async fn record(&self, record: &OutcomeRecord) -> Result<Recorded, StoreError> {
        let mut campaigns = lock(&self.campaigns);
        let outcomes = campaigns.entry(record.campaign.clone()).or_default();
        match outcomes.get(&record.contact) {
            Some(existing) => Ok(Recorded::Existing(existing.clone())),
            None => {
                outcomes.insert(record.contact.clone(), record.clone());
                Ok(Recorded::New)
            }
        }
    }

    async fn finish(&self, record: &OutcomeRecord) -> Result<(), StoreError> {
        if record.outcome.is_pending() {
            return Err(StoreError::invalid(
                "finish needs a final outcome, not pending",
            ));
        }
        let mut campaigns = lock(&self.campaigns);
        let stored = campaigns
            .get_mut(&record.campaign)
            .and_then(|o| o.get_mut(&record.contact))
            .ok_or_else(|| {
                StoreError::not_found(
                    "campaign claim",
                    format!("{}/{}", record.campaign, record.contact),
                )
            })?;
        if !stored.outcome.is_pending() {
            return Err(StoreError::conflict(format!(
                "{} in campaign {} already has a final outcome",
                record.contact, record.campaign
            )));
        }
        *stored = record.clone();
        Ok(())
    }

    async fn get(
        &self,
        campaign: &CampaignId,
        contact: &ContactId,
    ) -> Result<Option<OutcomeRecord>, StoreError> {
        Ok(lock(&self.campaigns)
            .get(campaign)
            .and_then(|o| o.get(contact))
            .cloned())
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
        let campaigns = lock(&self.campaigns);
        let Some(outcomes) = campaigns.get(campaign) else {
            return Ok(Vec::new());
        };
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(outcomes
            .range::<ContactId, _>((start, Bound::Unbounded))
            .take(limit)
            .map(|(_, r)| r.clone())
            .collect())
    }

    async fn forget_contact(&self, contact: &ContactId) -> Result<usize, StoreError> {
        let mut campaigns = lock(&self.campaigns);
        let mut removed = 0;
        campaigns.retain(|_, outcomes| {
            removed += usize::from(outcomes.remove(contact).is_some());
            !outcomes.is_empty()
        });
        Ok(removed)
    }
}
