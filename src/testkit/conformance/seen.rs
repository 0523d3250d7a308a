//! The [`SeenEvents`] contract.

use std::{sync::Arc, time::Duration};

use super::{ok, race, unique};
use crate::{
    clock::Timestamp,
    seen::{Claim, SeenEvents},
};

/// Runs the [`SeenEvents`] contract.
pub async fn seen_events(seen: Arc<dyn SeenEvents>) {
    let now = Timestamp::from_secs(1_700_000_000);
    let ttl = Duration::from_secs(36 * 3600);
    let key = unique("messenger:mid");
    assert!(
        !ok("is_seen", seen.is_seen(&key, now).await),
        "is_seen: an unknown key is not seen"
    );
    assert!(
        !ok("is_seen", seen.is_seen(&key, now).await),
        "is_seen: does not mark"
    );
    assert!(
        ok("mark_seen", seen.mark_seen(&key, now, ttl).await),
        "mark_seen: a new key is marked"
    );
    assert!(
        !ok("mark_seen twice", seen.mark_seen(&key, now, ttl).await),
        "mark_seen: a marked key is refused"
    );
    let almost = now.saturating_add(ttl - Duration::from_millis(1));
    assert!(
        ok("is_seen", seen.is_seen(&key, almost).await),
        "is_seen: marked until the ttl ends"
    );
    let after = now.saturating_add(ttl);
    assert!(
        !ok("is_seen expired", seen.is_seen(&key, after).await),
        "is_seen: an expired mark counts as absent"
    );
    let other = unique("nonce");
    ok(
        "mark_seen",
        seen.mark_seen(&other, now, Duration::from_secs(1)).await,
    );
    assert!(
        ok("purge", seen.purge_expired(after).await) >= 2,
        "purge_expired: removes expired marks"
    );
    assert!(
        ok("mark after expiry", seen.mark_seen(&key, after, ttl).await),
        "mark_seen: an expired key can be marked again"
    );

    // forget releases a mark.
    let released = unique("claim");
    assert!(
        ok("mark", seen.mark_seen(&released, now, ttl).await),
        "mark_seen: a new key is marked"
    );
    ok("forget", seen.forget(&released).await);
    assert!(
        !ok("is_seen", seen.is_seen(&released, now).await),
        "forget: the key is no longer seen"
    );
    assert!(
        ok("mark again", seen.mark_seen(&released, now, ttl).await),
        "forget: the key can be marked again"
    );
    ok("forget unknown", seen.forget(&unique("never")).await);

    // The batch forms agree with the single ones.
    let fresh = unique("batch");
    let keys = [key.as_str(), fresh.as_str(), fresh.as_str()];
    let later = after.saturating_add(Duration::from_secs(1));
    assert_eq!(
        ok("seen_many", seen.seen_many(&keys, later).await),
        vec![true, false, false],
        "seen_many: answers like is_seen, in order"
    );
    assert_eq!(
        ok("mark_many", seen.mark_many(&keys, later, ttl).await),
        vec![false, true, false],
        "mark_many: marks like mark_seen, in order (a repeated key is marked once)"
    );
    assert!(
        ok("is_seen", seen.is_seen(&fresh, later).await),
        "mark_many: the keys are marked"
    );
    // A batch as large as a busy webhook's (stores may take another path for it).
    let many: Vec<String> = (0..20).map(|i| unique(&format!("many-{i}"))).collect();
    let mut keys: Vec<&str> = many.iter().map(String::as_str).collect();
    keys.extend([many[3].as_str(), key.as_str()]);
    let mut expected = vec![false; 20];
    expected.extend([false, true]);
    assert_eq!(
        ok("seen_many", seen.seen_many(&keys, later).await),
        expected,
        "seen_many: a large batch answers like is_seen, in order"
    );
    let mut expected = vec![true; 20];
    expected.extend([false, false]);
    assert_eq!(
        ok("mark_many", seen.mark_many(&keys, later, ttl).await),
        expected,
        "mark_many: a large batch marks like mark_seen, in order"
    );
    assert_eq!(
        ok("seen_many", seen.seen_many(&keys, later).await),
        vec![true; 22],
        "mark_many: every key of a large batch is marked"
    );

    let racer = unique("race");
    let first = race(|_| {
        let (seen, racer) = (seen.clone(), racer.clone());
        async move { seen.mark_seen(&racer, now, ttl).await }
    })
    .await
    .into_iter()
    .filter(|r| match r {
        Ok(marked) => *marked,
        Err(e) => panic!("racing mark: unexpected error {e:?}"),
    })
    .count();
    assert_eq!(
        first, 1,
        "mark_seen: racing marks of one key succeed exactly once"
    );

    seen_claims(&seen).await;
}

/// The claim clauses of [`SeenEvents`]: a claim is held for its lease, settles into a mark,
/// is released by `forget`, expires when its holder crashed, and races to one winner.
async fn seen_claims(seen: &Arc<dyn SeenEvents>) {
    let now = Timestamp::from_secs(1_700_100_000);
    let lease = Duration::from_secs(60);
    let ttl = Duration::from_secs(36 * 3600);
    let key = unique("messenger:claimed");
    assert_eq!(
        ok("claim", seen.claim(&key, now, lease).await),
        Claim::Acquired,
        "claim: a new key is acquired"
    );
    let held = Claim::Held {
        until: now.saturating_add(lease),
    };
    let soon = now.saturating_add(Duration::from_secs(1));
    assert_eq!(
        ok("claim held", seen.claim(&key, soon, lease).await),
        held,
        "claim: a claimed key is held until the lease ends"
    );
    assert!(
        ok("is_seen held", seen.is_seen(&key, soon).await),
        "is_seen: a held key is seen"
    );
    assert!(
        !ok("mark_seen held", seen.mark_seen(&key, soon, ttl).await),
        "mark_seen: a held key is refused"
    );
    ok("settle", seen.settle(&key, soon, ttl).await);
    let later = now.saturating_add(2 * lease);
    assert_eq!(
        ok("claim settled", seen.claim(&key, later, lease).await),
        Claim::Done,
        "settle: a settled key is done, past the lease, until the ttl ends"
    );
    assert_eq!(
        ok(
            "claim after ttl",
            seen.claim(&key, soon.saturating_add(ttl), lease).await
        ),
        Claim::Acquired,
        "settle: the mark lasts the ttl from the settling"
    );

    // A holder that crashed: its lease ends and the next claim acquires.
    let crashed = unique("messenger:crashed");
    ok("claim", seen.claim(&crashed, now, lease).await);
    assert_eq!(
        ok(
            "claim before the lease ends",
            seen.claim(
                &crashed,
                now.saturating_add(lease - Duration::from_millis(1)),
                lease
            )
            .await
        ),
        held,
        "claim: held until the last millisecond of the lease"
    );
    let expired = now.saturating_add(lease);
    assert_eq!(
        ok(
            "claim after the lease",
            seen.claim(&crashed, expired, lease).await
        ),
        Claim::Acquired,
        "claim: an expired claim is acquired again"
    );
    assert_eq!(
        ok("claim renewed", seen.claim(&crashed, expired, lease).await),
        Claim::Held {
            until: expired.saturating_add(lease)
        },
        "claim: the new claim has a lease of its own"
    );

    // A failed holder gives the key back.
    let released = unique("messenger:released");
    ok("claim", seen.claim(&released, now, lease).await);
    ok("forget", seen.forget(&released).await);
    assert_eq!(
        ok("claim released", seen.claim(&released, now, lease).await),
        Claim::Acquired,
        "forget: a released claim is acquired at once"
    );

    // Settling without a claim, and marks made by mark_seen, are done.
    let direct = unique("messenger:direct");
    ok("settle unclaimed", seen.settle(&direct, now, ttl).await);
    assert_eq!(
        ok("claim", seen.claim(&direct, now, lease).await),
        Claim::Done,
        "settle: a key settled without a claim is done"
    );
    let marked = unique("messenger:marked");
    ok("mark_seen", seen.mark_seen(&marked, now, ttl).await);
    assert_eq!(
        ok("claim marked", seen.claim(&marked, soon, lease).await),
        Claim::Done,
        "claim: a key marked with mark_seen is done"
    );

    // The batch forms agree with the single ones, small and large (stores may take another
    // path for a large batch), a repeated key included.
    for size in [2, 20] {
        let fresh: Vec<String> = (0..size)
            .map(|i| unique(&format!("messenger:fresh-{i}")))
            .collect();
        let holder = unique("messenger:holder");
        ok("claim", seen.claim(&holder, now, lease).await);
        let mut keys: Vec<&str> = fresh.iter().map(String::as_str).collect();
        keys.extend([holder.as_str(), marked.as_str(), fresh[0].as_str()]);
        let mut expected = vec![Claim::Acquired; size];
        expected.extend([
            held,
            Claim::Done,
            Claim::Held {
                until: soon.saturating_add(lease),
            },
        ]);
        assert_eq!(
            ok("claim_many", seen.claim_many(&keys, soon, lease).await),
            expected,
            "claim_many: claims like claim, in order ({size} fresh keys)"
        );
        ok(
            "settle_many",
            seen.settle_many(&keys[..size], soon, ttl).await,
        );
        assert_eq!(
            ok(
                "claim_many settled",
                seen.claim_many(&keys[..size], later, lease).await
            ),
            vec![Claim::Done; size],
            "settle_many: settles like settle ({size} keys)"
        );
    }

    // Concurrent claims of one key: one acquires, the others see it held.
    let racer = unique("messenger:claim-race");
    let claims: Vec<Claim> = race(|_| {
        let (seen, racer) = (seen.clone(), racer.clone());
        async move { seen.claim(&racer, now, lease).await }
    })
    .await
    .into_iter()
    .map(|r| r.unwrap_or_else(|e| panic!("racing claim: unexpected error {e:?}")))
    .collect();
    assert_eq!(
        claims.iter().filter(|c| c.is_acquired()).count(),
        1,
        "claim: racing claims of one key acquire it exactly once"
    );
    assert!(
        claims.iter().all(|c| c.is_acquired() || *c == held),
        "claim: the racers that lost see the key held: {claims:?}"
    );
}
