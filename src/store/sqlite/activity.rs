use std::{collections::HashMap, fmt, sync::Arc};

use async_trait::async_trait;

use super::{CHUNK, Shared, batch::Value, codec::address_key, error::db, placeholders};
use crate::{activity::LastInbound, clock::Timestamp, contact::Address, error::StoreError};

/// When each address last wrote, in SQLite: a [`LastInbound`]. `record` keeps the later time
/// in the `UPDATE` itself, so concurrent writers never move an address back.
#[derive(Clone)]
pub struct SqliteLastInbound {
    shared: Arc<Shared>,
}

impl fmt::Debug for SqliteLastInbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteLastInbound")
            .field("location", &self.shared.location)
            .finish()
    }
}

const UPSERT: &str = "INSERT INTO last_inbound (channel, scope, address, at) VALUES (?, ?, ?, ?) \
     ON CONFLICT (channel, scope, address) DO UPDATE SET at = max(at, excluded.at)";

impl SqliteLastInbound {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        SqliteLastInbound { shared }
    }
}

#[async_trait]
impl LastInbound for SqliteLastInbound {
    async fn record(&self, address: &Address, at: Timestamp) -> Result<(), StoreError> {
        let (channel, scope, id) = address_key(address);
        self.shared
            .execute(
                UPSERT,
                vec![
                    Value::Text(channel),
                    Value::Text(scope.to_owned()),
                    Value::Text(id.to_owned()),
                    Value::Int(at.as_millis()),
                ],
            )
            .await?;
        Ok(())
    }

    async fn last(&self, address: &Address) -> Result<Option<Timestamp>, StoreError> {
        let (channel, scope, id) = address_key(address);
        let at: Option<i64> = sqlx::query_scalar(
            "SELECT at FROM last_inbound WHERE channel = ? AND scope = ? AND address = ?",
        )
        .bind(channel)
        .bind(scope)
        .bind(id)
        .fetch_optional(&self.shared.reader)
        .await
        .map_err(db)?;
        Ok(at.map(Timestamp::from_millis))
    }

    async fn forget(&self, address: &Address) -> Result<bool, StoreError> {
        let (channel, scope, id) = address_key(address);
        let done =
            sqlx::query("DELETE FROM last_inbound WHERE channel = ? AND scope = ? AND address = ?")
                .bind(channel)
                .bind(scope)
                .bind(id)
                .execute(&self.shared.pool)
                .await
                .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn record_many(&self, records: &[(&Address, Timestamp)]) -> Result<(), StoreError> {
        if let [(address, at)] = records {
            return self.record(address, *at).await;
        }
        // The latest time per address, then one multi-row upsert per chunk.
        let mut latest: HashMap<&Address, Timestamp> = HashMap::with_capacity(records.len());
        for (address, at) in records {
            let t = latest.entry(*address).or_insert(*at);
            *t = (*t).max(*at);
        }
        let rows: Vec<_> = latest.into_iter().collect();
        let mut tx = self.shared.begin().await?;
        for chunk in rows.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO last_inbound (channel, scope, address, at) VALUES {} \
                 ON CONFLICT (channel, scope, address) DO UPDATE SET at = max(at, excluded.at)",
                placeholders(chunk.len(), "(?, ?, ?, ?)")
            );
            let mut query = sqlx::query(&sql);
            for (address, at) in chunk {
                let (channel, scope, id) = address_key(address);
                query = query
                    .bind(channel)
                    .bind(scope)
                    .bind(id)
                    .bind(at.as_millis());
            }
            query.execute(&mut *tx).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }
}
