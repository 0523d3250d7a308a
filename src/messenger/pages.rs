//! The Pages a platform serves, and how the crate finds their settings.
//!
//! A platform serving many schools has one Facebook Page per school. Sends use the access token
//! of the Page in the recipient's address; webhook events name their Page. The host supplies
//! the settings through a [`PageResolver`] (usually its own table of connected Pages);
//! [`StaticPages`] holds a fixed set.

use std::{collections::HashMap, fmt};

use async_trait::async_trait;

use super::secret::PageAccessToken;
use crate::error::StoreError;

/// One Page's settings.
#[derive(Clone)]
#[non_exhaustive]
pub struct PageConfig {
    /// The Page id (the scope of its users' addresses).
    pub page_id: String,
    /// The Page access token.
    pub access_token: PageAccessToken,
    /// The Page's username, for `m.me/<username>` links (the id works too).
    pub username: Option<String>,
}

impl PageConfig {
    /// Settings for the Page `page_id` with its access token.
    pub fn new(page_id: impl Into<String>, access_token: PageAccessToken) -> Self {
        PageConfig {
            page_id: page_id.into(),
            access_token,
            username: None,
        }
    }

    /// Sets the Page's username.
    pub fn with_username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }
}

impl fmt::Debug for PageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageConfig")
            .field("page_id", &self.page_id)
            .field("access_token", &self.access_token)
            .field("username", &self.username)
            .finish()
    }
}

/// Finds a Page's settings by id; `None` for a Page the platform does not serve.
#[async_trait]
pub trait PageResolver: Send + Sync {
    /// The settings of Page `page_id`.
    async fn page(&self, page_id: &str) -> Result<Option<PageConfig>, StoreError>;

    /// Whether Page `page_id` is served. Override it when a lookup is cheaper than fetching
    /// the settings (the webhook asks once per Page per batch).
    async fn contains(&self, page_id: &str) -> Result<bool, StoreError> {
        Ok(self.page(page_id).await?.is_some())
    }
}

/// A fixed set of Pages.
#[derive(Debug, Clone, Default)]
pub struct StaticPages {
    // Looked up for every webhook request: foldhash, seeded per map, is a fraction of SipHash's
    // cost on a short id, and ids come from signed bodies and the host, not from strangers.
    pages: HashMap<String, PageConfig, foldhash::fast::RandomState>,
}

impl StaticPages {
    /// The given Pages.
    pub fn new(pages: impl IntoIterator<Item = PageConfig>) -> Self {
        StaticPages {
            pages: pages.into_iter().map(|p| (p.page_id.clone(), p)).collect(),
        }
    }

    /// Adds (or replaces) a Page.
    pub fn with_page(mut self, page: PageConfig) -> Self {
        self.pages.insert(page.page_id.clone(), page);
        self
    }
}

#[async_trait]
impl PageResolver for StaticPages {
    async fn page(&self, page_id: &str) -> Result<Option<PageConfig>, StoreError> {
        Ok(self.pages.get(page_id).cloned())
    }

    async fn contains(&self, page_id: &str) -> Result<bool, StoreError> {
        Ok(self.pages.contains_key(page_id))
    }
}
