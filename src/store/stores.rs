//! [`Stores`]: every store of one backend, chosen by a URL, as the traits the crate's services
//! take.

use std::{fmt, sync::Arc};

use crate::{
    activity::LastInbound,
    budget::{MemorySendBudget, SendBudget},
    identity::Directory,
    inbox::Inbox,
    newsletter::{Outbox, batches::CampaignBatches},
    optin::OptIns,
    process::ProcessStore,
    seen::SeenEvents,
    segment::SegmentQuery,
    threads::ThreadOwners,
};

/// Every store of one backend, as trait objects: what a host passes to the
/// [`Hub`](crate::hub::Hub), the [`Connector`](crate::identity::Connector), the
/// [`CampaignRunner`](crate::newsletter::CampaignRunner) and the rest, whichever database
/// it runs on.
///
/// [`Stores::open`] picks the backend from a URL, so one binary runs on SQLite on a laptop
/// and on PostgreSQL in production with nothing but `DATABASE_URL` changed:
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use tidings::store::Stores;
///
/// let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "tidings.db".into());
/// let stores = Stores::open(&url).await?;
/// println!("stores on {}", stores.backend());
/// let inbox = stores.inbox.clone(); // an Arc<dyn Inbox>
/// # let _ = inbox; Ok(()) }
/// ```
///
/// The concrete stores stay at hand ([`Stores::sqlite`], [`Stores::postgres`]) for what is
/// particular to one backend (its pool, Messenger Page tokens).
#[derive(Clone)]
#[non_exhaustive]
pub struct Stores {
    /// Contacts and their addresses.
    pub directory: Arc<dyn Directory>,
    /// The same contacts, read by segment (the directory's own store).
    pub segments: Arc<dyn SegmentQuery>,
    /// Conversations.
    pub inbox: Arc<dyn Inbox>,
    /// Campaign outcomes, one per recipient.
    pub outbox: Arc<dyn Outbox>,
    /// Flow instances.
    pub processes: Arc<dyn ProcessStore>,
    /// Webhook events seen and claimed.
    pub seen: Arc<dyn SeenEvents>,
    /// When each address last wrote (Messenger's 24-hour window).
    pub last_inbound: Arc<dyn LastInbound>,
    /// Notification opt-ins.
    pub opt_ins: Arc<dyn OptIns>,
    /// Who owns each Messenger thread (handover).
    pub thread_owners: Arc<dyn ThreadOwners>,
    /// Batches of campaigns run by several workers
    /// ([`CampaignRunner::run_shared`](crate::newsletter::CampaignRunner::run_shared)): in the
    /// database on PostgreSQL; in memory otherwise, shared by the tasks of one process only
    /// (processes sharing a SQLite file still send to each recipient once, as its outbox
    /// claims each recipient, but do not share batches out).
    pub campaign_batches: Arc<dyn CampaignBatches>,
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    #[cfg(feature = "memory")]
    Memory,
    #[cfg(feature = "sqlite")]
    Sqlite(super::sqlite::SqliteStores),
    #[cfg(feature = "postgres")]
    Postgres(super::postgres::PostgresStores),
}

impl fmt::Debug for Stores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Stores");
        s.field("backend", &self.backend());
        match &self.backend {
            #[cfg(feature = "memory")]
            Backend::Memory => {}
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(stores) => {
                s.field("stores", stores);
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(stores) => {
                s.field("stores", stores);
            }
        }
        s.finish_non_exhaustive()
    }
}

/// Why [`Stores::open`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The URL names a backend this build does not have: the error names the feature to
    /// enable.
    #[error("{backend} stores are not in this build: enable the crate's `{feature}` feature")]
    Unsupported {
        /// What the URL asked for (`"PostgreSQL"`, `"SQLite"`, `"in-memory"`).
        backend: &'static str,
        /// The feature that brings it.
        feature: &'static str,
    },
    /// The SQLite database could not be opened.
    #[cfg(feature = "sqlite")]
    #[error(transparent)]
    Sqlite(#[from] super::sqlite::OpenError),
    /// The PostgreSQL database could not be opened.
    #[cfg(feature = "postgres")]
    #[error(transparent)]
    Postgres(#[from] super::postgres::OpenError),
}

impl Stores {
    /// Opens the stores `url` names, migrating a database to this build's schema:
    ///
    /// | `url` | backend | feature |
    /// |---|---|---|
    /// | `postgres://...` or `postgresql://...` | [`PostgresStores`](super::postgres::PostgresStores) | `postgres` |
    /// | `memory:` | the in-memory stores (lost on exit) | `memory` |
    /// | a file path, a `sqlite:` URL, `:memory:` | [`SqliteStores`](super::sqlite::SqliteStores) | `sqlite` |
    ///
    /// Errors never hold the URL's password.
    pub async fn open(url: &str) -> Result<Stores, OpenError> {
        let scheme = url
            .split_once("://")
            .map(|(scheme, _)| scheme.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("postgres" | "postgresql") => {
                #[cfg(feature = "postgres")]
                {
                    Ok(super::postgres::PostgresStores::open(url).await?.into())
                }
                #[cfg(not(feature = "postgres"))]
                {
                    Err(OpenError::Unsupported {
                        backend: "PostgreSQL",
                        feature: "postgres",
                    })
                }
            }
            _ if url == "memory:" => {
                #[cfg(feature = "memory")]
                {
                    Ok(Stores::memory())
                }
                #[cfg(not(feature = "memory"))]
                {
                    Err(OpenError::Unsupported {
                        backend: "in-memory",
                        feature: "memory",
                    })
                }
            }
            _ => {
                #[cfg(feature = "sqlite")]
                {
                    Ok(super::sqlite::SqliteStores::open(url).await?.into())
                }
                #[cfg(not(feature = "sqlite"))]
                {
                    Err(OpenError::Unsupported {
                        backend: "SQLite",
                        feature: "sqlite",
                    })
                }
            }
        }
    }

    /// Fresh in-memory stores, the directory's `active_within` conditions reading the
    /// in-memory last-inbound store on the system clock.
    #[cfg(feature = "memory")]
    pub fn memory() -> Stores {
        use super::memory::*;
        let last_inbound = Arc::new(MemoryLastInbound::new());
        let directory = Arc::new(
            MemoryDirectory::new()
                .with_activity(last_inbound.clone(), crate::clock::SystemClock::shared()),
        );
        Stores {
            directory: directory.clone(),
            segments: directory,
            inbox: Arc::new(MemoryInbox::new()),
            outbox: Arc::new(MemoryOutbox::new()),
            processes: Arc::new(MemoryProcessStore::new()),
            seen: Arc::new(MemorySeenEvents::new()),
            last_inbound,
            opt_ins: Arc::new(MemoryOptIns::new()),
            thread_owners: Arc::new(MemoryThreadOwners::new()),
            campaign_batches: Arc::new(MemoryCampaignBatches::new()),
            backend: Backend::Memory,
        }
    }

    /// Which backend these are: `"memory"`, `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self.backend {
            #[cfg(feature = "memory")]
            Backend::Memory => "memory",
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => "postgres",
        }
    }

    /// A per-Page send rate of `per_second` for
    /// [`MessengerTransportBuilder::shared_budget`](crate::messenger::MessengerTransportBuilder::shared_budget):
    /// kept in the database on PostgreSQL, so every process sending for a Page shares it; in
    /// this process otherwise.
    pub fn send_budget(&self, per_second: u32) -> Arc<dyn SendBudget> {
        match &self.backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres(stores) => stores.send_budget(per_second),
            #[allow(unreachable_patterns)]
            _ => Arc::new(MemorySendBudget::per_second(per_second)),
        }
    }

    /// The SQLite stores, when these are.
    #[cfg(feature = "sqlite")]
    pub fn sqlite(&self) -> Option<&super::sqlite::SqliteStores> {
        match &self.backend {
            Backend::Sqlite(stores) => Some(stores),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The PostgreSQL stores, when these are.
    #[cfg(feature = "postgres")]
    pub fn postgres(&self) -> Option<&super::postgres::PostgresStores> {
        match &self.backend {
            Backend::Postgres(stores) => Some(stores),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// Closes the database connections (nothing to do in memory); call it at shutdown, after
    /// the last request.
    pub async fn close(&self) {
        match &self.backend {
            #[cfg(feature = "memory")]
            Backend::Memory => {}
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(stores) => stores.close().await,
            #[cfg(feature = "postgres")]
            Backend::Postgres(stores) => stores.close().await,
        }
    }
}

#[cfg(feature = "sqlite")]
impl From<super::sqlite::SqliteStores> for Stores {
    fn from(stores: super::sqlite::SqliteStores) -> Stores {
        let directory = stores.directory();
        Stores {
            directory: directory.clone(),
            segments: directory,
            inbox: stores.inbox(),
            outbox: stores.outbox(),
            processes: stores.processes(),
            seen: stores.seen(),
            last_inbound: stores.last_inbound(),
            opt_ins: stores.opt_ins(),
            thread_owners: stores.thread_owners(),
            campaign_batches: Arc::new(super::memory::MemoryCampaignBatches::new()),
            backend: Backend::Sqlite(stores),
        }
    }
}

#[cfg(feature = "postgres")]
impl From<super::postgres::PostgresStores> for Stores {
    fn from(stores: super::postgres::PostgresStores) -> Stores {
        let directory = stores.directory();
        Stores {
            directory: directory.clone(),
            segments: directory,
            inbox: stores.inbox(),
            outbox: stores.outbox(),
            processes: stores.processes(),
            seen: stores.seen(),
            last_inbound: stores.last_inbound(),
            opt_ins: stores.opt_ins(),
            thread_owners: stores.thread_owners(),
            campaign_batches: stores.campaign_batches(),
            backend: Backend::Postgres(stores),
        }
    }
}
