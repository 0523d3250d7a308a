use std::{fmt, sync::Arc};

use async_trait::async_trait;

use super::{Shared, error::db};
use crate::{
    error::StoreError,
    messenger::{PageAccessToken, PageConfig, PageResolver},
};

/// The Messenger Pages a platform serves, in PostgreSQL: a [`PageResolver`] a platform adds Pages
/// to as schools connect them.
///
/// The access tokens are stored as they are given: protect the database file as you would the
/// tokens (they never reach logs or `Debug` output from here).
#[derive(Clone)]
pub struct PgPages {
    shared: Arc<Shared>,
}

impl fmt::Debug for PgPages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgPages")
            .field("location", &self.shared.location)
            .finish()
    }
}

impl PgPages {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        PgPages { shared }
    }

    /// Adds Page `page.page_id`, or replaces its settings.
    pub async fn put(&self, page: &PageConfig) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO messenger_pages (page_id, access_token, username) VALUES ($1, $2, $3) \
             ON CONFLICT (page_id) DO UPDATE SET access_token = excluded.access_token, \
             username = excluded.username",
        )
        .bind(&page.page_id)
        .bind(page.access_token.secret())
        .bind(&page.username)
        .execute(&self.shared.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    /// Removes Page `page_id`; whether it was there.
    pub async fn remove(&self, page_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM messenger_pages WHERE page_id = $1")
            .bind(page_id)
            .execute(&self.shared.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl PageResolver for PgPages {
    async fn page(&self, page_id: &str) -> Result<Option<PageConfig>, StoreError> {
        let row: Option<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT page_id, access_token, username FROM messenger_pages WHERE page_id = $1",
        )
        .bind(page_id)
        .fetch_optional(&self.shared.pool)
        .await
        .map_err(db)?;
        Ok(row.map(|(id, token, username)| {
            let mut page = PageConfig::new(id, PageAccessToken::new(token));
            page.username = username;
            page
        }))
    }

    async fn contains(&self, page_id: &str) -> Result<bool, StoreError> {
        let hit: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM messenger_pages WHERE page_id = $1")
                .bind(page_id)
                .fetch_optional(&self.shared.pool)
                .await
                .map_err(db)?;
        Ok(hit.is_some())
    }
}
