//! The [`ProcessStore`] contract.

use std::{sync::Arc, time::Duration};

use serde_json::json;

use super::{expect_conflict, expect_not_found, id, ok, race, unique, winners};
use crate::{
    clock::Timestamp,
    contact::ContactId,
    error::StoreError,
    process::{FlowId, InstanceId, InstanceStatus, ProcessInstance, ProcessStore},
};

fn flow_id(text: impl Into<String>) -> FlowId {
    FlowId::new(text).unwrap_or_else(|e| panic!("conformance bug: {e}"))
}

fn instance_id(text: impl Into<String>) -> InstanceId {
    InstanceId::new(text).unwrap_or_else(|e| panic!("conformance bug: {e}"))
}

/// Runs the [`ProcessStore`] contract.
pub async fn process_store(store: Arc<dyn ProcessStore>) {
    let contact = id(&unique("flow-contact"));
    let flow = flow_id(unique("onboarding"));
    let now = Timestamp::from_secs(1_700_000_000);
    let instance = |name: &str| {
        ProcessInstance::new(
            instance_id(unique(name)),
            flow.clone(),
            1,
            contact.clone(),
            "start",
        )
    };

    let first = instance("i1");
    ok("insert", store.insert(&first).await);
    expect_conflict("insert an existing id", store.insert(&first).await);
    expect_conflict(
        "insert a second unfinished instance of the same flow",
        store.insert(&instance("i2")).await,
    );
    assert_eq!(
        ok("get", store.get(&first.id).await).as_ref(),
        Some(&first),
        "get: returns the inserted instance"
    );
    assert_eq!(
        ok("get unknown", store.get(&instance_id(unique("none"))).await),
        None,
        "get: unknown id is None"
    );
    let active = ok("active_for", store.active_for(&contact).await);
    assert_eq!(
        active.iter().map(|i| &i.id).collect::<Vec<_>>(),
        vec![&first.id],
        "active_for: lists the running instance"
    );

    // Compare-and-swap on the revision.
    let mut moved = first.clone();
    moved.step = "question".into();
    moved.status = InstanceStatus::Waiting;
    moved.due_at = Some(now.saturating_sub(Duration::from_secs(1)));
    assert_eq!(
        ok("update", store.update(&moved).await),
        1,
        "update: returns the next revision"
    );
    expect_conflict("update from a stale revision", store.update(&moved).await);
    let stored =
        ok("get", store.get(&first.id).await).unwrap_or_else(|| panic!("instance vanished"));
    assert_eq!(
        (stored.step.as_str(), stored.revision),
        ("question", 1),
        "update: stores the instance at the next revision"
    );
    expect_not_found(
        "update a missing instance",
        store.update(&instance("ghost")).await,
    );

    // Racing updates from one read move the instance once.
    let won = winners(
        "racing update",
        race(|i| {
            let store = store.clone();
            let mut next = stored.clone();
            next.step = format!("answer-{i}");
            async move { store.update(&next).await }
        })
        .await,
    );
    assert_eq!(
        won, 1,
        "update: racing updates from one revision succeed exactly once"
    );

    // due finds what is due, earliest first.
    let other_contact = id(&unique("flow-contact-2"));
    let mut later = ProcessInstance::new(
        instance_id(unique("i3")),
        flow.clone(),
        1,
        other_contact.clone(),
        "wait",
    );
    later.status = InstanceStatus::Waiting;
    later.due_at = Some(now.saturating_sub(Duration::from_secs(10)));
    ok("insert", store.insert(&later).await);
    let mut future = ProcessInstance::new(
        instance_id(unique("i4")),
        flow_id(unique("f")),
        1,
        other_contact.clone(),
        "wait",
    );
    future.due_at = Some(now.saturating_add(Duration::from_secs(60)));
    ok("insert", store.insert(&future).await);
    let ours = [first.id.clone(), later.id.clone(), future.id.clone()];
    let due: Vec<InstanceId> = ok("due", store.due(now, 10_000).await)
        .into_iter()
        .map(|i| i.id)
        .filter(|i| ours.contains(i))
        .collect();
    assert_eq!(
        due,
        vec![later.id.clone(), first.id.clone()],
        "due: due instances, earliest first, not the future one"
    );

    let first_due = ok("due with limit", store.due(now, 1).await);
    assert!(
        first_due.len() <= 1,
        "due: returns at most `limit` instances"
    );
    if let Some(i) = first_due.first() {
        assert!(
            i.due_at.is_some_and(|d| d <= later.due_at.unwrap_or(now)),
            "due: the limit keeps the earliest due instances"
        );
    }

    // `due` follows updates: an instance whose due time moves to the future, or goes, is no
    // longer due; the step history and flow fields round-trip.
    let mut rescheduled =
        ok("get", store.get(&later.id).await).unwrap_or_else(|| panic!("instance vanished"));
    rescheduled.due_at = Some(now.saturating_add(Duration::from_secs(3600)));
    rescheduled
        .history
        .push(crate::process::StepRecord::new("wait", now));
    rescheduled
        .vars
        .insert("level".to_owned(), json!("advanced"));
    ok("reschedule", store.update(&rescheduled).await);
    assert!(
        !ok("due", store.due(now, 10_000).await)
            .iter()
            .any(|i| i.id == later.id),
        "due: an instance rescheduled to the future is not due"
    );
    let stored =
        ok("get", store.get(&later.id).await).unwrap_or_else(|| panic!("instance vanished"));
    assert_eq!(
        (&stored.history, &stored.vars),
        (&rescheduled.history, &rescheduled.vars),
        "update: history and vars are stored as given"
    );
    let mut failed = stored;
    failed.due_at = Some(now);
    failed.status = InstanceStatus::Failed;
    ok("fail", store.update(&failed).await);
    assert!(
        !ok("due", store.due(now, 10_000).await)
            .iter()
            .any(|i| i.id == later.id),
        "due: failed instances are never due"
    );
    assert!(
        !ok("active_for", store.active_for(&other_contact).await)
            .iter()
            .any(|i| i.id == later.id),
        "active_for: failed instances are not active"
    );
    failed = ok("get", store.get(&later.id).await).unwrap_or_else(|| panic!("instance vanished"));
    failed.status = InstanceStatus::Waiting;
    assert!(
        matches!(store.update(&failed).await, Err(StoreError::Invalid { .. })),
        "update: a finished instance cannot run again (failed counts as finished)"
    );

    // A finished instance leaves the active set and frees its (contact, flow).
    let mut done =
        ok("get", store.get(&first.id).await).unwrap_or_else(|| panic!("instance vanished"));
    done.status = InstanceStatus::Finished;
    ok("finish", store.update(&done).await);
    assert!(
        ok("active_for", store.active_for(&contact).await).is_empty(),
        "active_for: finished instances are not active"
    );
    let due = ok("due", store.due(now, 10_000).await);
    assert!(
        !due.iter().any(|i| i.id == first.id),
        "due: finished instances are never due"
    );
    ok("insert after finish", store.insert(&instance("i5")).await);

    // A finished instance stays finished.
    let mut revived =
        ok("get", store.get(&first.id).await).unwrap_or_else(|| panic!("instance vanished"));
    revived.status = InstanceStatus::Waiting;
    revived.due_at = Some(now);
    assert!(
        matches!(
            store.update(&revived).await,
            Err(StoreError::Invalid { .. })
        ),
        "update: a finished instance cannot run again"
    );
    let mut archived = instance("archived");
    archived.status = InstanceStatus::Finished;
    ok(
        "insert a finished instance beside a running one",
        store.insert(&archived).await,
    );

    process_store_forget(&store).await;
    process_store_claims(&store).await;
}

/// [`ProcessStore::claim_due`]: claims take due instances earliest first, hold them until the
/// claim's time, and racing claimers never take one instance twice.
async fn process_store_claims(store: &Arc<dyn ProcessStore>) {
    // Long before every other clause's times, so only this clause's instances are due.
    let base = Timestamp::from_secs(1_000_000);
    let flow = flow_id(unique("claim-flow"));
    let make = |seconds_before: u64| {
        let mut i = ProcessInstance::new(
            instance_id(unique("claim-i")),
            flow.clone(),
            1,
            id(&unique("claim-contact")),
            "wait",
        );
        i.status = InstanceStatus::Waiting;
        i.due_at = Some(base.saturating_sub(Duration::from_secs(seconds_before)));
        i
    };
    let mut five = Vec::new();
    for before in (1..=5).rev() {
        let i = make(before);
        ok("insert", store.insert(&i).await);
        five.push(i);
    }
    let until = base.saturating_add(Duration::from_secs(60));
    let claimed = ok("claim_due", store.claim_due(base, 2, until).await);
    assert_eq!(
        claimed.iter().map(|i| &i.id).collect::<Vec<_>>(),
        vec![&five[0].id, &five[1].id],
        "claim_due: claims up to `limit` due instances, earliest first"
    );
    for c in &claimed {
        let stored = ok("get", store.get(&c.id).await)
            .unwrap_or_else(|| panic!("claimed instance vanished"));
        assert_eq!(
            (stored.due_at, stored.revision),
            (Some(until), 1),
            "claim_due: a claimed instance is stored due at the claim's end, at the next revision"
        );
        assert_eq!(&stored, c, "claim_due: returns the instance as stored");
    }
    let rest = ok("claim_due", store.claim_due(base, 10, until).await);
    assert_eq!(
        rest.iter().map(|i| &i.id).collect::<Vec<_>>(),
        five[2..].iter().map(|i| &i.id).collect::<Vec<_>>(),
        "claim_due: a second claim passes the claimed instances by"
    );
    assert!(
        ok("claim_due", store.claim_due(base, 10, until).await).is_empty(),
        "claim_due: nothing left to claim while the claims hold"
    );
    let after = base.saturating_add(Duration::from_secs(61));
    let again = ok(
        "claim_due after the claims ended",
        store
            .claim_due(after, 10, after.saturating_add(Duration::from_secs(60)))
            .await,
    );
    assert_eq!(
        again.len(),
        5,
        "claim_due: an instance whose claim ended (its claimer died) is claimed again"
    );
    let moved = ok("claim_due", store.claim_due(base, 10, until).await);
    assert!(moved.is_empty(), "claim_due: re-claimed instances hold too");
    finish_all(store, five.iter().map(|i| &i.id)).await;

    // Racing claimers share the due instances out: none is claimed twice. (Earlier than the
    // instances above, which are due again from 1,000,121 s.)
    let base = Timestamp::from_secs(500_000);
    let mut racing = Vec::new();
    for _ in 0..24 {
        let mut i = make(0);
        i.due_at = Some(base.saturating_sub(Duration::from_secs(1)));
        ok("insert", store.insert(&i).await);
        racing.push(i.id);
    }
    let until = base.saturating_add(Duration::from_secs(60));
    let results = race(|_| {
        let store = store.clone();
        async move { store.claim_due(base, 4, until).await }
    })
    .await;
    let mut taken: Vec<InstanceId> = results
        .into_iter()
        .flat_map(|r| ok("racing claim_due", r))
        .map(|i| i.id)
        .filter(|i| racing.contains(i))
        .collect();
    let total = taken.len();
    taken.sort();
    taken.dedup();
    assert_eq!(
        taken.len(),
        total,
        "claim_due: racing claimers never claim one instance twice"
    );
    assert!(
        total > 0,
        "claim_due: racing claimers claim the due instances"
    );
    finish_all(store, racing.iter()).await;
}

/// Finishes the instances `ids`, so that a later run of the suite on the same store finds
/// none of them due.
async fn finish_all(store: &Arc<dyn ProcessStore>, ids: impl Iterator<Item = &InstanceId>) {
    for id in ids {
        let mut i = ok("get", store.get(id).await).unwrap_or_else(|| panic!("instance vanished"));
        i.status = InstanceStatus::Finished;
        i.due_at = None;
        ok("finish", store.update(&i).await);
    }
}

/// The [`ProcessStore::forget_contact`] clause.
async fn process_store_forget(store: &Arc<dyn ProcessStore>) {
    let gone = id(&unique("flow-forget"));
    let kept = id(&unique("flow-keep"));
    let now = Timestamp::from_secs(1_700_000_000);
    let flow = flow_id(unique("forget-flow"));
    let make = |contact: &ContactId, flow: &FlowId, status: InstanceStatus, due: bool| {
        let mut i = ProcessInstance::new(
            instance_id(unique("forget-i")),
            flow.clone(),
            1,
            contact.clone(),
            "ask",
        );
        i.status = status;
        i.due_at = due.then(|| now.saturating_sub(Duration::from_secs(5)));
        i.history.push(crate::process::StepRecord::new("ask", now));
        i.vars.insert("answer".to_owned(), json!("private"));
        i
    };
    let gone_instances = [
        make(&gone, &flow, InstanceStatus::Waiting, true),
        make(&gone, &flow_id(unique("f")), InstanceStatus::Running, false),
        make(&gone, &flow, InstanceStatus::Finished, false),
        make(&gone, &flow, InstanceStatus::Failed, false),
    ];
    let kept_instance = make(&kept, &flow, InstanceStatus::Waiting, true);
    for i in gone_instances.iter().chain([&kept_instance]) {
        ok("insert", store.insert(i).await);
    }
    assert_eq!(
        ok("forget_contact", store.forget_contact(&gone).await),
        gone_instances.len(),
        "forget_contact: returns how many instances went, finished and failed ones included"
    );
    for i in &gone_instances {
        assert_eq!(
            ok("get forgotten", store.get(&i.id).await),
            None,
            "forget_contact: get finds none of the contact's instances ({:?})",
            i.status
        );
    }
    assert!(
        ok("active_for", store.active_for(&gone).await).is_empty(),
        "forget_contact: the contact has no active instance"
    );
    let due = ok("due", store.due(now, 10_000).await);
    assert!(
        !due.iter().any(|i| i.contact == gone),
        "forget_contact: none of the contact's instances is due"
    );
    assert!(
        due.iter().any(|i| i.id == kept_instance.id),
        "forget_contact: other contacts' instances stay due"
    );
    assert_eq!(
        ok("get kept", store.get(&kept_instance.id).await).as_ref(),
        Some(&kept_instance),
        "forget_contact: other contacts' instances are untouched"
    );
    assert_eq!(
        ok("forget again", store.forget_contact(&gone).await),
        0,
        "forget_contact: forgetting again removes nothing"
    );
    assert_eq!(
        ok(
            "forget unknown",
            store.forget_contact(&id(&unique("nobody"))).await
        ),
        0,
        "forget_contact: a contact without instances gives 0"
    );
    ok(
        "start the flow again after forget",
        store
            .insert(&make(&gone, &flow, InstanceStatus::Running, false))
            .await,
    );
    assert_eq!(
        ok("forget", store.forget_contact(&gone).await),
        1,
        "forget_contact: removes instances started after an earlier forget"
    );
}
