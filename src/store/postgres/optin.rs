use std::{fmt, sync::Arc};

use async_trait::async_trait;

use super::{
    Shared,
    codec::{contact_id, from_json, to_json},
    error::db,
};
use crate::{
    clock::Timestamp,
    contact::{Channel, ContactId},
    error::StoreError,
    optin::{OptInRecord, OptIns},
};

/// Notification opt-ins in PostgreSQL: an [`OptIns`]. A record replaces the stored one of its
/// (contact, channel, topic) in one conditional upsert, so a redelivered older event never
/// overwrites a newer status, whichever process writes.
#[derive(Clone)]
pub struct PgOptIns {
    shared: Arc<Shared>,
}

impl fmt::Debug for PgOptIns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgOptIns")
            .field("location", &self.shared.location)
            .finish()
    }
}

impl PgOptIns {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        PgOptIns { shared }
    }
}

/// Keeps the later of two records of one (contact, channel, topic).
const UPSERT: &str = "INSERT INTO opt_ins (contact_id, channel, topic, at, optin) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (contact_id, channel, topic) DO UPDATE SET at = excluded.at, optin = excluded.optin \
     WHERE excluded.at >= opt_ins.at";

#[async_trait]
impl OptIns for PgOptIns {
    async fn record(&self, record: OptInRecord) -> Result<bool, StoreError> {
        let optin = to_json("opt-in", &record.optin)?;
        let done = sqlx::query(UPSERT)
            .bind(record.contact.as_str())
            .bind(record.channel.to_string())
            .bind(record.topic())
            .bind(record.at.as_millis())
            .bind(&optin)
            .execute(&self.shared.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn list(&self, contact: &ContactId) -> Result<Vec<OptInRecord>, StoreError> {
        let rows: Vec<(String, String, i64, String)> = sqlx::query_as(
            "SELECT contact_id, channel, at, optin FROM opt_ins WHERE contact_id = $1 \
             ORDER BY channel, topic",
        )
        .bind(contact.as_str())
        .fetch_all(&self.shared.pool)
        .await
        .map_err(db)?;
        rows.into_iter()
            .map(|(contact, channel, at, optin)| {
                let channel: Channel = channel
                    .parse()
                    .map_err(|_| super::codec::corrupt("opt-in channel", &channel))?;
                Ok(OptInRecord::new(
                    contact_id(contact)?,
                    channel,
                    Timestamp::from_millis(at),
                    from_json("opt-in", &optin)?,
                ))
            })
            .collect()
    }

    async fn reassign(&self, from: &ContactId, into: &ContactId) -> Result<usize, StoreError> {
        if from == into {
            return Ok(0);
        }
        let mut tx = self.shared.begin().await?;
        sqlx::query(
            "INSERT INTO opt_ins (contact_id, channel, topic, at, optin) \
             SELECT $1, channel, topic, at, optin FROM opt_ins WHERE contact_id = $2 \
             ON CONFLICT (contact_id, channel, topic) DO UPDATE SET at = excluded.at, \
               optin = excluded.optin WHERE excluded.at > opt_ins.at",
        )
        .bind(into.as_str())
        .bind(from.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let removed = sqlx::query("DELETE FROM opt_ins WHERE contact_id = $1")
            .bind(from.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(usize::try_from(removed.rows_affected()).unwrap_or(usize::MAX))
    }

    async fn forget_contact(&self, contact: &ContactId) -> Result<usize, StoreError> {
        let done = sqlx::query("DELETE FROM opt_ins WHERE contact_id = $1")
            .bind(contact.as_str())
            .execute(&self.shared.pool)
            .await
            .map_err(db)?;
        Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
    }
}
