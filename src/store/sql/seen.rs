//! What the SQL [`SeenEvents`](crate::seen::SeenEvents) stores share: how a mark read back
//! reads, how long a claim is retried, and the distinct keys of a batch.

use std::{
    collections::{HashMap, hash_map::Entry},
    time::Duration,
};

use crate::{clock::Timestamp, seen::Claim};

/// How often a claim is tried again when the mark that refused it is gone by the time it is
/// read (forgotten or expired in between): each retry means another handler moved the key on.
pub(crate) const CLAIM_TRIES: usize = 4;

/// What a live mark read back says.
pub(crate) fn found(expires_at: i64, settled: bool) -> Claim {
    if settled {
        Claim::Done
    } else {
        Claim::Held {
            until: Timestamp::from_millis(expires_at),
        }
    }
}

/// The end of a mark or claim made at `now` for `ttl`, as stored (milliseconds).
pub(crate) fn until(now: Timestamp, ttl: Duration) -> i64 {
    now.saturating_add(ttl).as_millis()
}

/// The distinct keys of `keys` in order, and where each first appears (one upsert may not
/// touch a row twice).
pub(crate) fn distinct<'a>(keys: &[&'a str]) -> (HashMap<&'a str, usize>, Vec<&'a str>) {
    let mut first = HashMap::with_capacity(keys.len());
    let mut distinct = Vec::with_capacity(keys.len());
    for (i, key) in keys.iter().enumerate() {
        if let Entry::Vacant(v) = first.entry(*key) {
            v.insert(i);
            distinct.push(*key);
        }
    }
    (first, distinct)
}
