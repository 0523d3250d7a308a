use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;

use super::{Shared, error::db};
use crate::{
    budget::{Reservation, SendBudget, spacing},
    error::StoreError,
};

/// The send budget in PostgreSQL: a [`SendBudget`] shared by every process on the database.
///
/// One row per key holds the next free slot; a reservation moves it forward in one upsert,
/// on the database's clock (`clock_timestamp()`), so workers on machines whose clocks differ
/// still take slots from one schedule. Made with [`PostgresStores::send_budget`](super::PostgresStores::send_budget).
#[derive(Clone)]
pub struct PgSendBudget {
    shared: Arc<Shared>,
    spacing: Duration,
}

impl fmt::Debug for PgSendBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgSendBudget")
            .field("location", &self.shared.location)
            .field("spacing", &self.spacing)
            .finish()
    }
}

impl PgSendBudget {
    pub(super) fn new(shared: Arc<Shared>, per_second: u32) -> Self {
        PgSendBudget {
            shared,
            spacing: spacing(per_second),
        }
    }
}

#[async_trait]
impl SendBudget for PgSendBudget {
    async fn reserve(&self, key: &str, n: u32) -> Result<Reservation, StoreError> {
        let n = n.max(1);
        let span = i64::try_from(self.spacing.as_micros())
            .unwrap_or(i64::MAX)
            .saturating_mul(i64::from(n));
        // The slots start at the later of now and the key's next free slot; the row moves
        // past them. Returns how long after now they start.
        let starts_in: i64 = sqlx::query_scalar(
            "WITH now AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS us) \
             INSERT INTO send_budgets (key, next_us) SELECT $1, us + $2 FROM now \
             ON CONFLICT (key) DO UPDATE \
               SET next_us = GREATEST(send_budgets.next_us, excluded.next_us - $2) + $2 \
             RETURNING next_us - $2 - (SELECT us FROM now)",
        )
        .bind(key)
        .bind(span)
        .fetch_one(&self.shared.pool)
        .await
        .map_err(db)?;
        Ok(Reservation {
            starts_in: Duration::from_micros(u64::try_from(starts_in).unwrap_or(0)),
            spacing: self.spacing,
            slots: n,
        })
    }
}
