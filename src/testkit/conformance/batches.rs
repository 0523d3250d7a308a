//! The [`CampaignBatches`] contract.

use std::{sync::Arc, time::Duration};

use super::{campaign_id, id, race, unique};
use crate::{
    clock::Timestamp,
    newsletter::batches::{Batch, CampaignBatches, Position, WorkerId},
    segment::Cursor,
};

fn worker(name: &str) -> WorkerId {
    WorkerId::new(name).unwrap_or_else(|e| panic!("conformance bug: {e}"))
}

/// Checks the [`CampaignBatches`] contract: batch numbers opened once each, the position after
/// the newest batch, expired leases handed to one worker at a time, renew and complete only for
/// the holder, erasure of a recipient.
pub async fn campaign_batches(store: Arc<dyn CampaignBatches>) {
    const LEASE: Duration = Duration::from_secs(30);
    let t0 = Timestamp::from_secs(1_800_000_000);
    let campaign = campaign_id(unique("batches"));
    let other = campaign_id(unique("batches-other"));
    let (w1, w2) = (worker("worker-1"), worker("worker-2"));
    let ann = id(&unique("ann"));
    let bob = id(&unique("bob"));
    let cy = id(&unique("cy"));

    assert_eq!(
        store.position(&campaign).await.expect("position"),
        Position::Next {
            number: 0,
            after: None
        },
        "a campaign without batches starts at batch 0, at the segment's start"
    );
    let first = Batch::new(
        campaign.clone(),
        0,
        None,
        Some(Cursor::new("after:b")),
        vec![ann.clone(), bob.clone()],
        w1.clone(),
        t0.saturating_add(LEASE),
    );
    assert!(store.open(&first).await.expect("open"), "batch 0 opens");
    let mut again = first.clone();
    again.worker = w2.clone();
    assert!(
        !store.open(&again).await.expect("open again"),
        "a batch number opens once"
    );
    assert_eq!(
        store.position(&campaign).await.expect("position"),
        Position::Next {
            number: 1,
            after: Some(Cursor::new("after:b"))
        },
        "the next batch reads after the newest batch's page"
    );
    assert_eq!(
        store.position(&other).await.expect("position"),
        Position::Next {
            number: 0,
            after: None
        },
        "campaigns do not share batches"
    );

    // Racing workers opening the same number: one wins.
    let opened = race(|i| {
        let store = store.clone();
        let batch = Batch::new(
            campaign.clone(),
            1,
            Some(Cursor::new("after:b")),
            None,
            vec![bob.clone(), cy.clone()],
            worker(&format!("racer-{i}")),
            t0.saturating_add(LEASE * 2),
        );
        async move { store.open(&batch).await }
    })
    .await;
    let winners = opened.into_iter().filter(|r| matches!(r, Ok(true))).count();
    assert_eq!(
        winners, 1,
        "of workers opening one number at once, one wins"
    );
    assert_eq!(
        store.position(&campaign).await.expect("position"),
        Position::Exhausted {
            open: 2,
            earliest_lease_end: Some(t0.saturating_add(LEASE))
        },
        "after the last page, the position counts open batches and their earliest lease end"
    );

    // Leases.
    assert_eq!(
        store
            .take_expired(&campaign, &w2, t0, LEASE)
            .await
            .expect("take"),
        None,
        "a live lease is not taken over"
    );
    let late = t0.saturating_add(LEASE);
    let taken = race(|i| {
        let store = store.clone();
        let campaign = campaign.clone();
        async move {
            store
                .take_expired(&campaign, &worker(&format!("taker-{i}")), late, LEASE)
                .await
        }
    })
    .await;
    let taken: Vec<Batch> = taken
        .into_iter()
        .filter_map(|r| r.expect("take_expired"))
        .collect();
    assert_eq!(
        taken.len(),
        1,
        "an expired batch goes to one of the workers asking at once: {taken:?}"
    );
    let batch = &taken[0];
    assert_eq!(batch.number, 0, "batch 0's lease ended first");
    assert_eq!(batch.recipients, vec![ann.clone(), bob.clone()]);
    assert_eq!(batch.lease_until, late.saturating_add(LEASE));
    assert_eq!(batch.takeovers, 1);
    let holder = batch.worker.clone();

    assert!(
        !store
            .renew(&campaign, 0, &w1, late.saturating_add(LEASE * 3))
            .await
            .expect("renew"),
        "the worker that lost a batch cannot renew it"
    );
    assert!(
        !store.complete(&campaign, 0, &w1).await.expect("complete"),
        "nor complete it"
    );
    assert!(
        store
            .renew(&campaign, 0, &holder, late.saturating_add(LEASE * 3))
            .await
            .expect("renew"),
        "the holder renews"
    );
    assert_eq!(
        store
            .take_expired(&campaign, &w2, late.saturating_add(LEASE * 2), LEASE)
            .await
            .expect("take")
            .map(|b| b.number),
        Some(1),
        "a renewed lease holds; the other expired batch is handed out"
    );
    assert!(
        store
            .complete(&campaign, 0, &holder)
            .await
            .expect("complete"),
        "the holder completes"
    );
    assert!(
        !store
            .complete(&campaign, 0, &holder)
            .await
            .expect("complete"),
        "a batch completes once"
    );
    assert!(
        !store
            .renew(&campaign, 0, &holder, late.saturating_add(LEASE * 9))
            .await
            .expect("renew"),
        "a completed batch has no lease to renew"
    );
    assert!(
        store
            .take_expired(&campaign, &w1, late.saturating_add(LEASE * 9), LEASE)
            .await
            .expect("take")
            .is_none_or(|b| b.number != 0),
        "a completed batch is never taken over"
    );

    // Erasure.
    assert!(
        store.forget_contact(&bob).await.expect("forget") >= 1,
        "forgetting a recipient reports the batches that named them"
    );
    let far = late.saturating_add(LEASE * 100);
    let remaining = store
        .take_expired(&campaign, &w1, far, LEASE)
        .await
        .expect("take")
        .expect("batch 1 is still open");
    assert_eq!(remaining.number, 1);
    assert!(
        !remaining.recipients.contains(&bob),
        "a forgotten recipient is in no batch: {:?}",
        remaining.recipients
    );
    assert!(store.complete(&campaign, 1, &w1).await.expect("complete"));
    assert_eq!(
        store.position(&campaign).await.expect("position"),
        Position::Exhausted {
            open: 0,
            earliest_lease_end: None
        },
        "every batch completed"
    );
    assert_eq!(
        store
            .forget_contact(&id(&unique("nobody")))
            .await
            .expect("forget"),
        0
    );
}
