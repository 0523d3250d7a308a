//! PostgreSQL stores: every store trait of the crate on one PostgreSQL database, through sqlx,
//! safe for any number of app instances and workers sharing it.
//!
//! [`PostgresStores::open`] connects, runs the embedded, versioned migrations (under
//! PostgreSQL's advisory lock, so processes starting together migrate once) and hands out each
//! store; they share one connection pool.
//!
//! | store | implements |
//! |---|---|
//! | [`PgDirectory`] | [`Directory`](crate::identity::Directory), [`SegmentQuery`](crate::segment::SegmentQuery) |
//! | [`PgInbox`] | [`Inbox`](crate::inbox::Inbox) |
//! | [`PgOutbox`] | [`Outbox`](crate::newsletter::Outbox) |
//! | [`PgProcessStore`] | [`ProcessStore`](crate::process::ProcessStore) |
//! | [`PgSeenEvents`] | [`SeenEvents`](crate::seen::SeenEvents) |
//! | [`PgLastInbound`] | [`LastInbound`](crate::activity::LastInbound) |
//! | [`PgOptIns`] | [`OptIns`](crate::optin::OptIns) |
//! | [`PgThreadOwners`] | [`ThreadOwners`](crate::threads::ThreadOwners) |
//! | [`PgSendBudget`] | [`SendBudget`](crate::budget::SendBudget) (a per-Page send rate all workers share) |
//! | [`PgCampaignBatches`] | [`CampaignBatches`](crate::newsletter::batches::CampaignBatches) (several workers on one campaign) |
//! | [`PgPages`] (with `messenger`) | [`PageResolver`](crate::messenger::PageResolver) |
//!
//! ```no_run
//! use tidings::{identity::Directory, contact::NewContact, store::postgres::PostgresStores};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let stores = PostgresStores::open("postgres://tidings@127.0.0.1/tidings").await?;
//! let ann = stores.directory().create(NewContact::new().with_email("ann@example.org")).await?;
//! assert_eq!(stores.directory().get(&ann.id).await?, Some(ann));
//! # Ok(()) }
//! ```
//!
//! # Several processes, one database
//!
//! Every rule the crate relies on is the database's, so it holds across processes as it does
//! across tasks:
//!
//! - one outcome per (campaign, recipient), one contact per linked address, one mark per seen
//!   key, one incoming entry per transport message and per inbound event, one unfinished
//!   instance per (contact, flow): unique constraints, written with `INSERT ... ON CONFLICT`;
//! - a flow instance moves by compare-and-swap on its revision, in the `UPDATE` itself;
//! - a webhook event is claimed by an upsert that only takes an expired mark, so two app
//!   instances given the same redelivered batch route each event once.
//!
//! The schema can live in a schema of its own ([`PostgresOptions::schema`]), beside the
//! host's tables. Queries are checked at run time (no database is needed to build the crate)
//! and every value is a bound parameter. A database whose schema is newer than this build
//! knows is refused ([`OpenError::SchemaTooNew`]). Errors keep their cause:
//! [`StoreError::Database`] says what failed by SQLSTATE
//! ([`DbFailure`](crate::error::DbFailure): busy for serialization failures, deadlocks and
//! lock timeouts, connection, constraint, full, ...) and whether a retry may help. The
//! connection URL's password and query string never reach a message, a log or `Debug`.

use std::{str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    ConnectOptions, PgPool, Postgres, Transaction,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::{
    clock::{SharedClock, SystemClock},
    error::StoreError,
};

mod activity;
mod batches;
mod budget;
mod directory;
mod error;
mod inbox;
mod outbox;
mod process;
mod seen;
mod small;

pub use activity::PgLastInbound;
pub use batches::PgCampaignBatches;
pub use budget::PgSendBudget;
pub use directory::PgDirectory;
pub use inbox::PgInbox;
pub use outbox::PgOutbox;
pub use process::PgProcessStore;
pub use seen::PgSeenEvents;
#[cfg(feature = "messenger")]
pub use small::PgPages;
pub use small::{PgOptIns, PgThreadOwners};

use super::sql::{codec, refusal, seen as seen_marks, segment};

/// The embedded migrations, in `src/store/postgres/migrations/`.
static MIGRATOR: Migrator = sqlx::migrate!("src/store/postgres/migrations");

/// The schema version this build of the crate writes: the newest embedded migration.
pub fn schema_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Why [`PostgresStores::open`] could not hand out the stores.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The URL is not one the driver accepts, or the schema name is not a plain identifier.
    #[error("invalid PostgreSQL location {location:?}")]
    InvalidLocation {
        /// The URL without its password and query string.
        location: String,
        /// The complaint.
        #[source]
        source: StoreError,
    },
    /// The server could not be reached, refused the login, or has no such database.
    #[error("cannot connect to the PostgreSQL database at {location}")]
    Connect {
        /// The URL without its password and query string.
        location: String,
        /// What failed.
        #[source]
        source: StoreError,
    },
    /// The database was written by a newer version of the crate; this build would not know
    /// its tables. Upgrade the crate.
    #[error(
        "the PostgreSQL database at {location} has schema version {database}, newer than the \
         version {code} this build of tidings knows: upgrade tidings to open it"
    )]
    SchemaTooNew {
        /// The URL without its password and query string.
        location: String,
        /// The version the database is at.
        database: i64,
        /// The newest version this build knows.
        code: i64,
    },
    /// Bringing the schema to this build's version failed; nothing of the failed migration
    /// was kept (each runs in a transaction).
    #[error("migrating the PostgreSQL database at {location} to schema version {code} failed")]
    Migrate {
        /// The URL without its password and query string.
        location: String,
        /// The version the migration was to reach.
        code: i64,
        /// The migrator's error.
        #[source]
        source: crate::error::BoxError,
    },
}

/// How to connect; [`PostgresStores::open`] uses the defaults.
#[derive(Clone)]
pub struct PostgresOptions {
    url: String,
    schema: Option<String>,
    max_connections: u32,
    acquire_timeout: Duration,
    clock: SharedClock,
}

impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &display_location(&self.url))
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish_non_exhaustive()
    }
}

impl PostgresOptions {
    /// Options for the database at `url` (`postgres://user:password@host:port/database`).
    pub fn new(url: impl Into<String>) -> Self {
        PostgresOptions {
            url: url.into(),
            schema: None,
            max_connections: 10,
            acquire_timeout: Duration::from_secs(30),
            clock: SystemClock::shared(),
        }
    }

    /// Keeps the stores' tables in schema `name` (created when missing) instead of the
    /// connection's default (`public`): beside a host's own tables, or one schema per test.
    /// The name must be a plain identifier (ASCII letters, digits and `_`, not starting with a
    /// digit, at most 63 bytes); [`PostgresStores::open_with`] refuses anything else.
    pub fn schema(mut self, name: impl Into<String>) -> Self {
        self.schema = Some(name.into());
        self
    }

    /// The most connections of the pool (at least 1). Default 10.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How long an operation waits for a free connection before it fails with
    /// [`DbFailure::Connection`](crate::error::DbFailure::Connection). Default 30 s.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// The clock `active_within` segment conditions are evaluated at. Default: system time.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
}

/// The URL for messages and logs: no password, no query string (where options, and
/// sometimes credentials, go).
fn display_location(url: &str) -> String {
    let url = url.split_once('?').map_or(url, |(base, _)| base);
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{scheme}://{user}@{host}")
        }
        None => url.to_owned(),
    }
}

/// Whether `name` may be pasted into SQL as a schema identifier (quoted as well).
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 63
}

/// Every PostgreSQL store, on one database. Cheap to clone: the stores share one pool.
#[derive(Clone)]
pub struct PostgresStores {
    inner: Arc<Shared>,
}

/// What every store of one database shares.
pub(crate) struct Shared {
    pool: PgPool,
    clock: SharedClock,
    location: String,
}

impl std::fmt::Debug for PostgresStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStores")
            .field("location", &self.inner.location)
            .finish_non_exhaustive()
    }
}

impl PostgresStores {
    /// Connects to the database at `url` with the default [`PostgresOptions`], and migrates it
    /// to this build's schema.
    pub async fn open(url: &str) -> Result<Self, OpenError> {
        PostgresStores::open_with(PostgresOptions::new(url)).await
    }

    /// Connects as `options` say, and migrates the database to this build's schema.
    pub async fn open_with(options: PostgresOptions) -> Result<Self, OpenError> {
        let location = display_location(&options.url);
        let invalid = |source: StoreError| OpenError::InvalidLocation {
            location: location.clone(),
            source,
        };
        let mut connect = PgConnectOptions::from_str(&options.url)
            .map_err(|e| invalid(error::db(e)))?
            // Statements are the crate's own and fixed; logging each one at INFO would flood
            // a host's logs on the webhook path.
            .disable_statement_logging();
        if let Some(schema) = &options.schema {
            if !is_identifier(schema) {
                return Err(invalid(StoreError::invalid(format!(
                    "schema name {schema:?} is not a plain identifier"
                ))));
            }
            connect = connect.options([("search_path", schema.as_str())]);
        }
        let connect_error = |e| OpenError::Connect {
            location: location.clone(),
            source: error::db(e),
        };
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(connect_error)?;
        if let Some(schema) = &options.schema {
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .execute(&pool)
                .await
                .map_err(connect_error)?;
        }
        migrate(&pool, &location).await?;
        Ok(PostgresStores {
            inner: Arc::new(Shared {
                pool,
                clock: options.clock,
                location,
            }),
        })
    }

    /// The directory of contacts, which also resolves segments.
    pub fn directory(&self) -> Arc<PgDirectory> {
        Arc::new(PgDirectory::new(self.inner.clone()))
    }

    /// The support inbox.
    pub fn inbox(&self) -> Arc<PgInbox> {
        Arc::new(PgInbox::new(self.inner.clone()))
    }

    /// The campaign outbox.
    pub fn outbox(&self) -> Arc<PgOutbox> {
        Arc::new(PgOutbox::new(self.inner.clone()))
    }

    /// The flow instance store.
    pub fn processes(&self) -> Arc<PgProcessStore> {
        Arc::new(PgProcessStore::new(self.inner.clone()))
    }

    /// The seen-events store (webhook redeliveries, single-use tokens).
    pub fn seen(&self) -> Arc<PgSeenEvents> {
        Arc::new(PgSeenEvents::new(self.inner.clone()))
    }

    /// The last-inbound record (messaging windows, activity segments).
    pub fn last_inbound(&self) -> Arc<PgLastInbound> {
        Arc::new(PgLastInbound::new(self.inner.clone()))
    }

    /// The notification opt-ins (Marketing Messages tokens) per contact.
    pub fn opt_ins(&self) -> Arc<PgOptIns> {
        Arc::new(PgOptIns::new(self.inner.clone()))
    }

    /// Who owns each conversation thread.
    pub fn thread_owners(&self) -> Arc<PgThreadOwners> {
        Arc::new(PgThreadOwners::new(self.inner.clone()))
    }

    /// The batches workers take of a campaign run by several of them
    /// ([`CampaignRunner::run_shared`](crate::newsletter::CampaignRunner::run_shared)).
    pub fn campaign_batches(&self) -> Arc<PgCampaignBatches> {
        Arc::new(PgCampaignBatches::new(self.inner.clone()))
    }

    /// The Messenger Pages the platform serves.
    #[cfg(feature = "messenger")]
    #[cfg_attr(docsrs, doc(cfg(feature = "messenger")))]
    pub fn pages(&self) -> Arc<PgPages> {
        Arc::new(PgPages::new(self.inner.clone()))
    }

    /// A send budget of `per_second` sends a second per key (a Messenger Page), shared by
    /// every process on this database; give it to
    /// [`MessengerTransportBuilder::shared_budget`](crate::messenger::MessengerTransportBuilder::shared_budget).
    pub fn send_budget(&self, per_second: u32) -> Arc<PgSendBudget> {
        Arc::new(PgSendBudget::new(self.inner.clone(), per_second))
    }

    /// The stores' pool, for a host that keeps its own tables in the same database.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// Closes every connection; stores handed out fail with a connection error afterwards.
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }
}

/// Refuses a schema newer than this build, then applies the missing migrations (sqlx holds
/// an advisory lock while it does, so processes opening a new database at once wait for one
/// another).
async fn migrate(pool: &PgPool, location: &str) -> Result<(), OpenError> {
    let code = schema_version();
    let database = applied_version(pool)
        .await
        .map_err(|source| OpenError::Connect {
            location: location.to_owned(),
            source,
        })?;
    if database > code {
        return Err(OpenError::SchemaTooNew {
            location: location.to_owned(),
            database,
            code,
        });
    }
    MIGRATOR.run(pool).await.map_err(|e| OpenError::Migrate {
        location: location.to_owned(),
        code,
        source: Box::new(e),
    })
}

/// The newest migration applied to the database (in the search path's schema), 0 for a new
/// one.
async fn applied_version(pool: &PgPool) -> Result<i64, StoreError> {
    let table: Option<String> = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
        .fetch_one(pool)
        .await
        .map_err(error::db)?;
    if table.is_none() {
        return Ok(0);
    }
    let version: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await
            .map_err(error::db)?;
    Ok(version.unwrap_or(0))
}

impl Shared {
    async fn begin(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool.begin().await.map_err(error::db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_shown_carry_no_password_and_no_query() {
        assert_eq!(
            display_location("postgres://ann:s3cret@db.example:5432/app?sslpassword=x"),
            "postgres://ann@db.example:5432/app"
        );
        assert_eq!(
            display_location("postgres://db.example/app"),
            "postgres://db.example/app"
        );
        assert_eq!(
            display_location("postgres://ann:p@ss@db/app"),
            "postgres://ann@db/app"
        );
        let options = PostgresOptions::new("postgres://ann:s3cret@db/app");
        assert!(!format!("{options:?}").contains("s3cret"));
    }

    #[test]
    fn only_plain_identifiers_name_a_schema() {
        assert!(is_identifier("tidings_test_1"));
        assert!(!is_identifier("1abc"));
        assert!(!is_identifier("a\"; DROP TABLE x; --"));
        assert!(!is_identifier(""));
        assert!(!is_identifier(&"a".repeat(64)));
    }
}
