use std::{collections::BTreeMap, fmt, sync::Arc};

use async_trait::async_trait;

use super::{Shared, codec::address_key, error::db};
use crate::{activity::LastInbound, clock::Timestamp, contact::Address, error::StoreError};

/// The last inbound message per address in PostgreSQL: a [`LastInbound`]. A record only
/// moves the time forward (`GREATEST` in the upsert), so app instances recording events of
/// one address out of order keep the latest.
#[derive(Clone)]
pub struct PgLastInbound {
    shared: Arc<Shared>,
}

impl fmt::Debug for PgLastInbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgLastInbound")
            .field("location", &self.shared.location)
            .finish()
    }
}

impl PgLastInbound {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        PgLastInbound { shared }
    }
}

#[async_trait]
impl LastInbound for PgLastInbound {
    async fn record(&self, address: &Address, at: Timestamp) -> Result<(), StoreError> {
        self.record_many(&[(address, at)]).await
    }

    async fn last(&self, address: &Address) -> Result<Option<Timestamp>, StoreError> {
        let (channel, scope, id) = address_key(address);
        let at: Option<i64> = sqlx::query_scalar(
            "SELECT at FROM last_inbound WHERE channel = $1 AND scope = $2 AND address = $3",
        )
        .bind(channel)
        .bind(scope)
        .bind(id)
        .fetch_optional(&self.shared.pool)
        .await
        .map_err(db)?;
        Ok(at.map(Timestamp::from_millis))
    }

    async fn forget(&self, address: &Address) -> Result<bool, StoreError> {
        let (channel, scope, id) = address_key(address);
        let done = sqlx::query(
            "DELETE FROM last_inbound WHERE channel = $1 AND scope = $2 AND address = $3",
        )
        .bind(channel)
        .bind(scope)
        .bind(id)
        .execute(&self.shared.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn record_many(&self, records: &[(&Address, Timestamp)]) -> Result<(), StoreError> {
        // One row per address (an upsert may not touch a row twice), the latest time each, in
        // key order: two instances recording overlapping batches then lock the rows in the same
        // order and wait for each other instead of deadlocking.
        let mut latest: BTreeMap<(String, &str, &str), i64> = BTreeMap::new();
        for (address, at) in records {
            let t = latest.entry(address_key(address)).or_insert(at.as_millis());
            *t = (*t).max(at.as_millis());
        }
        let mut channels = Vec::with_capacity(latest.len());
        let mut scopes = Vec::with_capacity(latest.len());
        let mut ids = Vec::with_capacity(latest.len());
        let mut times = Vec::with_capacity(latest.len());
        for ((channel, scope, id), at) in latest {
            channels.push(channel);
            scopes.push(scope);
            ids.push(id);
            times.push(at);
        }
        sqlx::query(
            "INSERT INTO last_inbound (channel, scope, address, at) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[]) \
             ON CONFLICT (channel, scope, address) DO UPDATE \
               SET at = GREATEST(last_inbound.at, excluded.at)",
        )
        .bind(&channels)
        .bind(&scopes)
        .bind(&ids)
        .bind(&times)
        .execute(&self.shared.pool)
        .await
        .map_err(db)?;
        Ok(())
    }
}
