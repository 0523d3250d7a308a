use std::{
    collections::{HashMap, HashSet},
    fmt,
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;

use super::{
    Shared,
    codec::count,
    error::db,
    seen_marks::{CLAIM_TRIES, distinct, found, until},
};
use crate::{
    clock::Timestamp,
    error::StoreError,
    seen::{Claim, SeenEvents},
};

/// Seen keys in PostgreSQL: a [`SeenEvents`]. Marking and claiming are one upsert that only
/// overwrites an expired mark, so of concurrent marks or claims of one key (from any app
/// instance) exactly one reports the key as new: the others wait on its row lock and then
/// find the mark live. A batch of keys is one statement over an array.
#[derive(Clone)]
pub struct PgSeenEvents {
    shared: Arc<Shared>,
}

impl fmt::Debug for PgSeenEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgSeenEvents")
            .field("location", &self.shared.location)
            .finish()
    }
}

/// Marks (`$3` true) or claims (`$3` false) the keys of `$1` until `$2` where no live mark
/// is; returns the keys it took.
const TAKE: &str = "INSERT INTO seen_events (key, expires_at, settled) \
     SELECT k, $2, $3 FROM unnest($1::text[]) AS k \
     ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at, settled = excluded.settled \
     WHERE seen_events.expires_at <= $4 RETURNING key";

/// Settles the keys of `$1` until `$2`, whatever their marks were.
const SETTLE: &str = "INSERT INTO seen_events (key, expires_at, settled) \
     SELECT k, $2, TRUE FROM unnest($1::text[]) AS k \
     ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at, settled = TRUE";

impl PgSeenEvents {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        PgSeenEvents { shared }
    }

    /// Takes the keys free at `now` (marked, or claimed, until `expires`); the keys taken.
    async fn take(
        &self,
        keys: &[&str],
        now: Timestamp,
        expires: i64,
        settled: bool,
    ) -> Result<HashSet<String>, StoreError> {
        // Rows are locked in key order whoever takes them, so two upserts over overlapping
        // keys (a batch delivered twice at once, to two instances) wait for each other rather
        // than deadlock.
        let mut sorted = keys.to_vec();
        sorted.sort_unstable();
        let taken: Vec<String> = sqlx::query_scalar(TAKE)
            .bind(&sorted)
            .bind(expires)
            .bind(settled)
            .bind(now.as_millis())
            .fetch_all(&self.shared.pool)
            .await
            .map_err(db)?;
        Ok(taken.into_iter().collect())
    }

    /// The live marks of `keys` at `now`.
    async fn marks(
        &self,
        keys: &[&str],
        now: Timestamp,
    ) -> Result<HashMap<String, Claim>, StoreError> {
        let rows: Vec<(String, i64, bool)> = sqlx::query_as(
            "SELECT key, expires_at, settled FROM seen_events \
             WHERE key = ANY($1::text[]) AND expires_at > $2",
        )
        .bind(keys)
        .bind(now.as_millis())
        .fetch_all(&self.shared.pool)
        .await
        .map_err(db)?;
        Ok(rows
            .into_iter()
            .map(|(key, expires_at, settled)| (key, found(expires_at, settled)))
            .collect())
    }
}

#[async_trait]
impl SeenEvents for PgSeenEvents {
    async fn is_seen(&self, key: &str, now: Timestamp) -> Result<bool, StoreError> {
        Ok(self.seen_many(&[key], now).await?[0])
    }

    async fn mark_seen(
        &self,
        key: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        Ok(!self
            .take(&[key], now, until(now, ttl), true)
            .await?
            .is_empty())
    }

    async fn claim(&self, key: &str, now: Timestamp, lease: Duration) -> Result<Claim, StoreError> {
        for _ in 0..CLAIM_TRIES {
            if !self
                .take(&[key], now, until(now, lease), false)
                .await?
                .is_empty()
            {
                return Ok(Claim::Acquired);
            }
            if let Some(mark) = self.marks(&[key], now).await?.remove(key) {
                return Ok(mark);
            }
        }
        // The key keeps changing hands: someone is on it.
        Ok(Claim::Held {
            until: now.saturating_add(lease),
        })
    }

    async fn settle(&self, key: &str, now: Timestamp, ttl: Duration) -> Result<(), StoreError> {
        self.settle_many(&[key], now, ttl).await
    }

    async fn forget(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM seen_events WHERE key = $1")
            .bind(key)
            .execute(&self.shared.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
        let done = sqlx::query("DELETE FROM seen_events WHERE expires_at <= $1")
            .bind(now.as_millis())
            .execute(&self.shared.pool)
            .await
            .map_err(db)?;
        Ok(count(done.rows_affected()))
    }

    async fn seen_many(&self, keys: &[&str], now: Timestamp) -> Result<Vec<bool>, StoreError> {
        let live = self.marks(keys, now).await?;
        Ok(keys.iter().map(|k| live.contains_key(*k)).collect())
    }

    async fn mark_many(
        &self,
        keys: &[&str],
        now: Timestamp,
        ttl: Duration,
    ) -> Result<Vec<bool>, StoreError> {
        // A key listed twice is new at most at its first place.
        let (first, distinct) = distinct(keys);
        let marked = self.take(&distinct, now, until(now, ttl), true).await?;
        Ok(keys
            .iter()
            .enumerate()
            .map(|(i, k)| first.get(k) == Some(&i) && marked.contains(*k))
            .collect())
    }

    async fn claim_many(
        &self,
        keys: &[&str],
        now: Timestamp,
        lease: Duration,
    ) -> Result<Vec<Claim>, StoreError> {
        let (first, distinct) = distinct(keys);
        let expires = until(now, lease);
        let acquired = self.take(&distinct, now, expires, false).await?;
        // The rare path: keys someone else holds or handled, and keys listed twice.
        let refused: Vec<&str> = keys
            .iter()
            .enumerate()
            .filter(|(i, k)| !(first.get(*k) == Some(i) && acquired.contains(**k)))
            .map(|(_, k)| *k)
            .collect();
        let marks = if refused.is_empty() {
            HashMap::new()
        } else {
            self.marks(&refused, now).await?
        };
        Ok(keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                if first.get(k) == Some(&i) && acquired.contains(*k) {
                    Claim::Acquired
                } else {
                    // A mark gone by the time it was read was moved on by another handler:
                    // someone is on it.
                    marks.get(*k).copied().unwrap_or(Claim::Held {
                        until: Timestamp::from_millis(expires),
                    })
                }
            })
            .collect())
    }

    async fn settle_many(
        &self,
        keys: &[&str],
        now: Timestamp,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let (_, mut distinct) = distinct(keys);
        // In key order, as `take` locks them.
        distinct.sort_unstable();
        sqlx::query(SETTLE)
            .bind(&distinct)
            .bind(until(now, ttl))
            .execute(&self.shared.pool)
            .await
            .map_err(db)?;
        Ok(())
    }
}
