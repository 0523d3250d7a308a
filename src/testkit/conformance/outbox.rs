//! The [`Outbox`] contract.

use std::sync::Arc;

use super::{campaign_id, id, ok, race, unique};
use crate::{
    clock::Timestamp,
    contact::{Channel, ContactId},
    error::StoreError,
    newsletter::{Outbox, Outcome, OutcomeRecord, Recorded, SkipReason},
};

/// Runs the [`Outbox`] contract.
pub async fn outbox(outbox: Arc<dyn Outbox>) {
    let campaign = campaign_id(unique("campaign"));
    let at = Timestamp::from_secs(1_700_000_000);
    let sent = |c: &ContactId| {
        OutcomeRecord::new(
            campaign.clone(),
            c.clone(),
            Outcome::Sent {
                channel: Channel::Messenger,
                message_ids: vec!["m1".into()],
            },
            at,
        )
    };
    let first = id("outbox-a");
    assert_eq!(
        ok("record", outbox.record(&sent(&first)).await),
        Recorded::New,
        "record: the first outcome is new"
    );
    let skipped = OutcomeRecord::new(
        campaign.clone(),
        first.clone(),
        Outcome::Skipped {
            reason: SkipReason::WindowClosed,
        },
        at,
    );
    assert_eq!(
        ok("record again", outbox.record(&skipped).await),
        Recorded::Existing(sent(&first)),
        "record: a second outcome changes nothing and returns the stored one"
    );
    assert_eq!(
        ok("get", outbox.get(&campaign, &first).await),
        Some(sent(&first)),
        "get: returns the stored outcome"
    );
    let elsewhere = campaign_id(unique("other-campaign"));
    assert_eq!(
        ok("get other campaign", outbox.get(&elsewhere, &first).await),
        None,
        "get: outcomes are per campaign"
    );

    for name in ["outbox-d", "outbox-b", "outbox-e", "outbox-c"] {
        ok("record", outbox.record(&sent(&id(name))).await);
    }
    let page1 = ok("list", outbox.list(&campaign, None, 2).await);
    let page2 = ok(
        "list",
        outbox
            .list(&campaign, page1.last().map(|r| &r.contact), 2)
            .await,
    );
    let page3 = ok(
        "list",
        outbox
            .list(&campaign, page2.last().map(|r| &r.contact), 2)
            .await,
    );
    let names: Vec<&str> = page1
        .iter()
        .chain(&page2)
        .chain(&page3)
        .map(|r| r.contact.as_str())
        .collect();
    assert_eq!(
        names,
        ["outbox-a", "outbox-b", "outbox-c", "outbox-d", "outbox-e"],
        "list: pages in contact-id order"
    );
    assert!(
        ok("list empty", outbox.list(&elsewhere, None, 10).await).is_empty(),
        "list: an unknown campaign is empty"
    );

    // Racing records for one pair store one outcome.
    let racer = id(&unique("outbox-racer"));
    let new = race(|i| {
        let outbox = outbox.clone();
        let record = OutcomeRecord::new(
            campaign.clone(),
            racer.clone(),
            if i % 2 == 0 {
                Outcome::Skipped {
                    reason: SkipReason::OptedOut,
                }
            } else {
                Outcome::Pending
            },
            at,
        );
        async move { outbox.record(&record).await }
    })
    .await
    .into_iter()
    .filter(|r| match r {
        Ok(recorded) => *recorded == Recorded::New,
        Err(e) => panic!("racing record: unexpected error {e:?}"),
    })
    .count();
    assert_eq!(
        new, 1,
        "record: racing records for one recipient store exactly one outcome"
    );

    // Claim, then finish once.
    let claimed = id(&unique("outbox-claimed"));
    let final_record = |outcome| OutcomeRecord::new(campaign.clone(), claimed.clone(), outcome, at);
    assert!(
        matches!(
            outbox
                .finish(&final_record(Outcome::Skipped {
                    reason: SkipReason::NoAddress
                }))
                .await,
            Err(StoreError::NotFound { .. })
        ),
        "finish: without a claim it is NotFound"
    );
    assert_eq!(
        ok("claim", outbox.claim(&campaign, &claimed, at).await),
        Recorded::New,
        "claim: the first claim is new"
    );
    assert_eq!(
        ok("claim again", outbox.claim(&campaign, &claimed, at).await),
        Recorded::Existing(final_record(Outcome::Pending)),
        "claim: a second claim returns the pending record"
    );
    assert!(
        matches!(
            outbox.finish(&final_record(Outcome::Pending)).await,
            Err(StoreError::Invalid { .. })
        ),
        "finish: a pending outcome is refused"
    );
    let done = final_record(Outcome::Sent {
        channel: Channel::Email,
        message_ids: vec!["e1".into()],
    });
    ok("finish", outbox.finish(&done).await);
    assert_eq!(
        ok("get finished", outbox.get(&campaign, &claimed).await),
        Some(done.clone()),
        "finish: replaces the pending record"
    );
    assert!(
        matches!(
            outbox
                .finish(&final_record(Outcome::Skipped {
                    reason: SkipReason::OptedOut
                }))
                .await,
            Err(StoreError::Conflict { .. })
        ),
        "finish: a final outcome is never replaced"
    );
    assert_eq!(
        ok(
            "claim finished",
            outbox.claim(&campaign, &claimed, at).await
        ),
        Recorded::Existing(done),
        "claim: a finished recipient cannot be claimed again"
    );

    // Racing claims: one wins.
    let raced = id(&unique("outbox-raced-claim"));
    let wins = race(|_| {
        let outbox = outbox.clone();
        let campaign = campaign.clone();
        let raced = raced.clone();
        async move { outbox.claim(&campaign, &raced, at).await }
    })
    .await
    .into_iter()
    .filter(|r| matches!(r, Ok(Recorded::New)))
    .count();
    assert_eq!(
        wins, 1,
        "claim: racing claims for one recipient: exactly one wins"
    );

    outbox_forget(&outbox).await;
}

/// The [`Outbox::forget_contact`] clause.
async fn outbox_forget(outbox: &Arc<dyn Outbox>) {
    let first = campaign_id(unique("campaign-forget"));
    let second = campaign_id(unique("campaign-forget"));
    let at = Timestamp::from_secs(1_700_000_000);
    // The contact to forget sorts between two others, so `list` shows a gap if one is left.
    let base = unique("outbox-forget");
    let [before, gone, after] = ["a", "b", "c"].map(|s| id(&format!("{base}-{s}")));
    for c in [&before, &gone, &after] {
        ok(
            "record",
            outbox
                .record(&OutcomeRecord::new(
                    first.clone(),
                    c.clone(),
                    Outcome::Skipped {
                        reason: SkipReason::OptedOut,
                    },
                    at,
                ))
                .await,
        );
        ok("claim", outbox.claim(&second, c, at).await);
    }
    let kept = ok("list", outbox.list(&first, None, 100).await);
    assert_eq!(
        ok("forget_contact", outbox.forget_contact(&gone).await),
        2,
        "forget_contact: returns how many records went, pending claims included"
    );
    for campaign in [&first, &second] {
        assert_eq!(
            ok("get forgotten", outbox.get(campaign, &gone).await),
            None,
            "forget_contact: no campaign has a record of the contact"
        );
        let listed: Vec<ContactId> = ok("list", outbox.list(campaign, None, 100).await)
            .into_iter()
            .map(|r| r.contact)
            .collect();
        assert_eq!(
            listed,
            vec![before.clone(), after.clone()],
            "forget_contact: list skips the contact and keeps everyone else"
        );
    }
    assert_eq!(
        ok("list", outbox.list(&first, None, 100).await),
        kept.into_iter()
            .filter(|r| r.contact != gone)
            .collect::<Vec<_>>(),
        "forget_contact: other recipients' records are untouched"
    );
    assert_eq!(
        ok("forget again", outbox.forget_contact(&gone).await),
        0,
        "forget_contact: forgetting again removes nothing"
    );
    assert_eq!(
        ok(
            "forget unknown",
            outbox.forget_contact(&id(&unique("nobody"))).await
        ),
        0,
        "forget_contact: a contact without records gives 0"
    );
}
