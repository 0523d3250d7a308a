use std::{collections::HashMap, sync::Mutex, time::Duration};

use async_trait::async_trait;

use crate::{
    clock::Timestamp,
    contact::ContactId,
    error::StoreError,
    newsletter::{
        CampaignId,
        batches::{Batch, CampaignBatches, Position, WorkerId},
    },
    sync::lock,
};

/// A campaign's batches in memory: a [`CampaignBatches`] for workers that are tasks of one
/// process (and for tests of the shared runner).
#[derive(Debug, Default)]
pub struct MemoryCampaignBatches {
    campaigns: Mutex<HashMap<CampaignId, Vec<(Batch, bool)>>>,
}

impl MemoryCampaignBatches {
    /// An empty store.
    pub fn new() -> Self {
        MemoryCampaignBatches::default()
    }
}

#[async_trait]
impl CampaignBatches for MemoryCampaignBatches {
    async fn position(&self, campaign: &CampaignId) -> Result<Position, StoreError> {
        let campaigns = lock(&self.campaigns);
        let batches = campaigns.get(campaign).map_or(&[][..], Vec::as_slice);
        Ok(match batches.last() {
            None => Position::Next {
                number: 0,
                after: None,
            },
            Some((newest, _)) => match &newest.next {
                Some(next) => Position::Next {
                    number: newest.number + 1,
                    after: Some(next.clone()),
                },
                None => {
                    let open = batches.iter().filter(|(_, done)| !done);
                    Position::Exhausted {
                        open: open.clone().count() as u64,
                        earliest_lease_end: open.map(|(b, _)| b.lease_until).min(),
                    }
                }
            },
        })
    }

    async fn open(&self, batch: &Batch) -> Result<bool, StoreError> {
        let mut campaigns = lock(&self.campaigns);
        let batches = campaigns.entry(batch.campaign.clone()).or_default();
        if batch.number != batches.len() as u64 {
            if batch.number > batches.len() as u64 {
                return Err(StoreError::invalid(format!(
                    "batch {} of campaign {} follows no batch {}",
                    batch.number,
                    batch.campaign,
                    batch.number - 1
                )));
            }
            return Ok(false);
        }
        batches.push((batch.clone(), false));
        Ok(true)
    }

    async fn take_expired(
        &self,
        campaign: &CampaignId,
        worker: &WorkerId,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Option<Batch>, StoreError> {
        let mut campaigns = lock(&self.campaigns);
        let Some(batches) = campaigns.get_mut(campaign) else {
            return Ok(None);
        };
        let expired = batches
            .iter_mut()
            .find(|(b, done)| !done && b.lease_until <= now);
        Ok(expired.map(|(batch, _)| {
            batch.worker = worker.clone();
            batch.lease_until = now.saturating_add(lease);
            batch.takeovers += 1;
            batch.clone()
        }))
    }

    async fn renew(
        &self,
        campaign: &CampaignId,
        number: u64,
        worker: &WorkerId,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut campaigns = lock(&self.campaigns);
        let held = campaigns
            .get_mut(campaign)
            .and_then(|b| usize::try_from(number).ok().and_then(|n| b.get_mut(n)))
            .filter(|(b, done)| !done && b.worker == *worker);
        Ok(held.map(|(b, _)| b.lease_until = until).is_some())
    }

    async fn complete(
        &self,
        campaign: &CampaignId,
        number: u64,
        worker: &WorkerId,
    ) -> Result<bool, StoreError> {
        let mut campaigns = lock(&self.campaigns);
        let held = campaigns
            .get_mut(campaign)
            .and_then(|b| usize::try_from(number).ok().and_then(|n| b.get_mut(n)))
            .filter(|(b, done)| !done && b.worker == *worker);
        Ok(held.map(|(_, done)| *done = true).is_some())
    }

    async fn forget_contact(&self, contact: &ContactId) -> Result<usize, StoreError> {
        let mut campaigns = lock(&self.campaigns);
        let mut named = 0;
        for (batch, _) in campaigns.values_mut().flatten() {
            let before = batch.recipients.len();
            batch.recipients.retain(|c| c != contact);
            named += usize::from(batch.recipients.len() != before);
        }
        Ok(named)
    }
}
