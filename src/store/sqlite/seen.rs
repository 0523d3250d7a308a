use std::{
    collections::{HashMap, HashSet},
    fmt,
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;

use super::{
    CHUNK, Shared,
    batch::Value,
    error::db,
    placeholders,
    seen_marks::{CLAIM_TRIES, distinct, found, until},
};
use crate::{
    clock::Timestamp,
    error::StoreError,
    seen::{Claim, SeenEvents},
};

/// Seen keys in SQLite: a [`SeenEvents`]. Marking and claiming are one upsert that only
/// overwrites an expired mark, so of concurrent marks or claims of one key (from any task or
/// process) exactly one reports the key as new.
#[derive(Clone)]
pub struct SqliteSeenEvents {
    shared: Arc<Shared>,
}

impl fmt::Debug for SqliteSeenEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteSeenEvents")
            .field("location", &self.shared.location)
            .finish()
    }
}

const MARK: &str = "INSERT INTO seen_events (key, expires_at, settled) VALUES (?, ?, 1) \
     ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at, settled = 1 \
     WHERE seen_events.expires_at <= ?";

const CLAIM: &str = "INSERT INTO seen_events (key, expires_at, settled) VALUES (?, ?, 0) \
     ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at, settled = 0 \
     WHERE seen_events.expires_at <= ?";

const SETTLE: &str = "INSERT INTO seen_events (key, expires_at, settled) VALUES (?, ?, 1) \
     ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at, settled = 1";

impl SqliteSeenEvents {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        SqliteSeenEvents { shared }
    }
}

#[async_trait]
impl SeenEvents for SqliteSeenEvents {
    async fn is_seen(&self, key: &str, now: Timestamp) -> Result<bool, StoreError> {
        let hit: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM seen_events WHERE key = ? AND expires_at > ?")
                .bind(key)
                .bind(now.as_millis())
                .fetch_optional(&self.shared.reader)
                .await
                .map_err(db)?;
        Ok(hit.is_some())
    }

    async fn mark_seen(
        &self,
        key: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let done = self
            .shared
            .execute(
                MARK,
                vec![
                    Value::Text(key.to_owned()),
                    Value::Int(until(now, ttl)),
                    Value::Int(now.as_millis()),
                ],
            )
            .await?;
        Ok(done == 1)
    }

    async fn claim(&self, key: &str, now: Timestamp, lease: Duration) -> Result<Claim, StoreError> {
        for _ in 0..CLAIM_TRIES {
            let done = self
                .shared
                .execute(
                    CLAIM,
                    vec![
                        Value::Text(key.to_owned()),
                        Value::Int(until(now, lease)),
                        Value::Int(now.as_millis()),
                    ],
                )
                .await?;
            if done == 1 {
                return Ok(Claim::Acquired);
            }
            let mark: Option<(i64, bool)> = sqlx::query_as(
                "SELECT expires_at, settled FROM seen_events WHERE key = ? AND expires_at > ?",
            )
            .bind(key)
            .bind(now.as_millis())
            .fetch_optional(&self.shared.reader)
            .await
            .map_err(db)?;
            if let Some((expires_at, settled)) = mark {
                return Ok(found(expires_at, settled));
            }
        }
        // The key keeps changing hands: someone is on it.
        Ok(Claim::Held {
            until: now.saturating_add(lease),
        })
    }

    async fn settle(&self, key: &str, now: Timestamp, ttl: Duration) -> Result<(), StoreError> {
        self.shared
            .execute(
                SETTLE,
                vec![Value::Text(key.to_owned()), Value::Int(until(now, ttl))],
            )
            .await?;
        Ok(())
    }

    async fn forget(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM seen_events WHERE key = ?")
            .bind(key)
            .execute(&self.shared.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
        let done = sqlx::query("DELETE FROM seen_events WHERE expires_at <= ?")
            .bind(now.as_millis())
            .execute(&self.shared.pool)
            .await
            .map_err(db)?;
        Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
    }

    async fn seen_many(&self, keys: &[&str], now: Timestamp) -> Result<Vec<bool>, StoreError> {
        if let [key] = keys {
            return Ok(vec![self.is_seen(key, now).await?]);
        }
        // One `IN` query per chunk of keys: a webhook batch is one round trip.
        let mut live = HashSet::with_capacity(keys.len());
        for chunk in keys.chunks(CHUNK) {
            let sql = format!(
                "SELECT key FROM seen_events WHERE expires_at > ? AND key IN ({})",
                placeholders(chunk.len(), "?")
            );
            let mut query = sqlx::query_scalar::<_, String>(&sql).bind(now.as_millis());
            for key in chunk {
                query = query.bind(*key);
            }
            live.extend(query.fetch_all(&self.shared.reader).await.map_err(db)?);
        }
        Ok(keys.iter().map(|k| live.contains(*k)).collect())
    }

    async fn mark_many(
        &self,
        keys: &[&str],
        now: Timestamp,
        ttl: Duration,
    ) -> Result<Vec<bool>, StoreError> {
        if let [key] = keys {
            return Ok(vec![self.mark_seen(key, now, ttl).await?]);
        }
        // Each distinct key once, in one multi-row upsert per chunk that returns the keys it
        // marked; a key listed twice is new at most at its first place.
        let (first, distinct) = distinct(keys);
        let expires = until(now, ttl);
        let mut marked = HashSet::with_capacity(distinct.len());
        let mut tx = self.shared.begin().await?;
        for chunk in distinct.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO seen_events (key, expires_at, settled) VALUES {} \
                 ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at, settled = 1 \
                 WHERE seen_events.expires_at <= ? RETURNING key",
                placeholders(chunk.len(), "(?, ?, 1)")
            );
            let mut query = sqlx::query_scalar::<_, String>(&sql);
            for key in chunk {
                query = query.bind(*key).bind(expires);
            }
            marked.extend(
                query
                    .bind(now.as_millis())
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db)?,
            );
        }
        tx.commit().await.map_err(db)?;
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
        if let [key] = keys {
            return Ok(vec![self.claim(key, now, lease).await?]);
        }
        let (first, distinct) = distinct(keys);
        let expires = until(now, lease);
        let mut acquired = HashSet::with_capacity(distinct.len());
        // One transaction: the marks that refused a claim are read back as the upserts left
        // them, before any other writer moves them.
        let mut tx = self.shared.begin().await?;
        for chunk in distinct.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO seen_events (key, expires_at, settled) VALUES {} \
                 ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at, settled = 0 \
                 WHERE seen_events.expires_at <= ? RETURNING key",
                placeholders(chunk.len(), "(?, ?, 0)")
            );
            let mut query = sqlx::query_scalar::<_, String>(&sql);
            for key in chunk {
                query = query.bind(*key).bind(expires);
            }
            acquired.extend(
                query
                    .bind(now.as_millis())
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db)?,
            );
        }
        // The rare path: keys someone else holds or handled. A key listed twice and taken
        // at its first place needs no read: its later places see the claim just made,
        // held until `expires`, which is the answer below when no mark was read.
        let refused: Vec<&str> = distinct
            .iter()
            .copied()
            .filter(|k| !acquired.contains(*k))
            .collect();
        let mut marks = HashMap::with_capacity(refused.len());
        for chunk in refused.chunks(CHUNK) {
            let sql = format!(
                "SELECT key, expires_at, settled FROM seen_events WHERE key IN ({})",
                placeholders(chunk.len(), "?")
            );
            let mut query = sqlx::query_as::<_, (String, i64, bool)>(&sql);
            for key in chunk {
                query = query.bind(*key);
            }
            for (key, expires_at, settled) in query.fetch_all(&mut *tx).await.map_err(db)? {
                marks.insert(key, found(expires_at, settled));
            }
        }
        tx.commit().await.map_err(db)?;
        Ok(keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                if first.get(k) == Some(&i) && acquired.contains(*k) {
                    Claim::Acquired
                } else {
                    // Inside the transaction every refused key had a live mark, and a key
                    // taken at an earlier place is held by this very claim.
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
        if let [key] = keys {
            return self.settle(key, now, ttl).await;
        }
        let (_, distinct) = distinct(keys);
        let expires = until(now, ttl);
        let mut tx = self.shared.begin().await?;
        for chunk in distinct.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO seen_events (key, expires_at, settled) VALUES {} \
                 ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at, settled = 1",
                placeholders(chunk.len(), "(?, ?, 1)")
            );
            let mut query = sqlx::query(&sql);
            for key in chunk {
                query = query.bind(*key).bind(expires);
            }
            query.execute(&mut *tx).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }
}
