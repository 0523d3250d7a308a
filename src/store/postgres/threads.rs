use std::{fmt, sync::Arc};

use async_trait::async_trait;

use super::{
    Shared,
    codec::{address_key, from_json, to_json},
    error::db,
};
use crate::{
    clock::Timestamp,
    contact::Address,
    error::StoreError,
    threads::{ThreadOwner, ThreadOwners, ThreadState},
};

/// Thread owners in PostgreSQL: a [`ThreadOwners`]. `set` keeps the later event in the upsert
/// itself, so concurrent writers never move ownership back.
#[derive(Clone)]
pub struct PgThreadOwners {
    shared: Arc<Shared>,
}

impl fmt::Debug for PgThreadOwners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgThreadOwners")
            .field("location", &self.shared.location)
            .finish()
    }
}

impl PgThreadOwners {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        PgThreadOwners { shared }
    }
}

#[async_trait]
impl ThreadOwners for PgThreadOwners {
    async fn set(
        &self,
        address: &Address,
        owner: ThreadOwner,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let (channel, scope, id) = address_key(address);
        let done = sqlx::query(
            "INSERT INTO thread_owners (channel, scope, address, owner, since) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (channel, scope, address) DO UPDATE SET owner = excluded.owner, \
               since = excluded.since WHERE excluded.since >= thread_owners.since",
        )
        .bind(channel)
        .bind(scope)
        .bind(id)
        .bind(to_json("thread owner", &owner)?)
        .bind(at.as_millis())
        .execute(&self.shared.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn get(&self, address: &Address) -> Result<Option<ThreadState>, StoreError> {
        let (channel, scope, id) = address_key(address);
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT owner, since FROM thread_owners WHERE channel = $1 AND scope = $2 AND address = $3",
        )
        .bind(channel)
        .bind(scope)
        .bind(id)
        .fetch_optional(&self.shared.pool)
        .await
        .map_err(db)?;
        row.map(|(owner, since)| {
            Ok(ThreadState::new(
                from_json("thread owner", &owner)?,
                Timestamp::from_millis(since),
            ))
        })
        .transpose()
    }

    async fn forget(&self, address: &Address) -> Result<bool, StoreError> {
        let (channel, scope, id) = address_key(address);
        let done = sqlx::query(
            "DELETE FROM thread_owners WHERE channel = $1 AND scope = $2 AND address = $3",
        )
        .bind(channel)
        .bind(scope)
        .bind(id)
        .execute(&self.shared.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }
}
