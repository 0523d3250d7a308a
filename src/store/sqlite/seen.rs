use std::{
    collections::{HashMap, HashSet, hash_map::Entry},
    fmt,
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;

use super::{CHUNK, Shared, batch::Value, error::db, placeholders};
use crate::{clock::Timestamp, error::StoreError, seen::SeenEvents};

/// Seen keys in SQLite: a [`SeenEvents`]. Marking is one upsert that only overwrites an
/// expired mark, so of concurrent marks of one key (from any task or process) exactly one
/// reports the key as new.
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

const MARK: &str = "INSERT INTO seen_events (key, expires_at) VALUES (?, ?) \
     ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at \
     WHERE seen_events.expires_at <= ?";

fn until(now: Timestamp, ttl: Duration) -> i64 {
    now.saturating_add(ttl).as_millis()
}

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
        let mut first = HashMap::with_capacity(keys.len());
        let mut distinct = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            if let Entry::Vacant(v) = first.entry(*key) {
                v.insert(i);
                distinct.push(*key);
            }
        }
        let expires = until(now, ttl);
        let mut marked = HashSet::with_capacity(distinct.len());
        let mut tx = self.shared.begin().await?;
        for chunk in distinct.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO seen_events (key, expires_at) VALUES {} \
                 ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at \
                 WHERE seen_events.expires_at <= ? RETURNING key",
                placeholders(chunk.len(), "(?, ?)")
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
}
