//! SQLite stores: every store trait of the crate on one SQLite database, through sqlx.
//!
//! [`SqliteStores::open`] opens (or creates) the database, runs the embedded, versioned
//! migrations and hands out each store; they share one connection pool and one file, so a
//! host keeps its whole state in one place and a restart loses nothing.
//!
//! | store | implements |
//! |---|---|
//! | [`SqliteDirectory`] | [`Directory`](crate::identity::Directory), [`SegmentQuery`](crate::segment::SegmentQuery) |
//! | [`SqliteInbox`] | [`Inbox`](crate::inbox::Inbox) |
//! | [`SqliteOutbox`] | [`Outbox`](crate::newsletter::Outbox) |
//! | [`SqliteProcessStore`] | [`ProcessStore`](crate::process::ProcessStore) |
//! | [`SqliteSeenEvents`] | [`SeenEvents`](crate::seen::SeenEvents) |
//! | [`SqliteLastInbound`] | [`LastInbound`](crate::activity::LastInbound) |
//! | [`SqliteOptIns`] | [`OptIns`](crate::optin::OptIns) |
//! | [`SqliteThreadOwners`] | [`ThreadOwners`](crate::threads::ThreadOwners) |
//! | [`SqlitePages`] (with `messenger`) | [`PageResolver`](crate::messenger::PageResolver) |
//!
//! ```
//! use tidings::{identity::Directory, contact::NewContact, store::sqlite::SqliteStores};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let stores = SqliteStores::open(":memory:").await?; // or "tidings.db", "sqlite://..."
//! let ann = stores.directory().create(NewContact::new().with_email("ann@example.org")).await?;
//! assert_eq!(stores.directory().get(&ann.id).await?, Some(ann));
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run()).unwrap();
//! ```
//!
//! # How the database is used
//!
//! - WAL journal, `synchronous = NORMAL` (a committed write survives the process being
//!   killed; a power cut may lose the last commits, [`SqliteOptions::synchronous_full`]
//!   trades speed for that), foreign keys on, and a busy timeout
//!   ([`SqliteOptions::busy_timeout`], 5 s by default) so that writers of several tasks and
//!   several processes on one file wait for each other instead of failing.
//! - Every uniqueness the crate relies on is a constraint of the schema, not a read before a
//!   write: one outcome per (campaign, recipient), one contact per linked address, one mark per
//!   seen key, one unfinished instance per (contact, flow), and compare-and-swap on an
//!   instance's revision in the `UPDATE` itself. Writes of several statements run in
//!   `BEGIN IMMEDIATE` transactions, which take the write lock up front.
//! - Queries are checked at run time (no database is needed to build the crate), and every
//!   value is a bound parameter: segments are translated to SQL with placeholders, never by
//!   pasting values in.
//! - A database whose schema is newer than this build knows is refused
//!   ([`OpenError::SchemaTooNew`]) instead of being written with an older idea of it.
//! - Errors keep their cause: [`StoreError::Database`] says what failed
//!   ([`DbFailure`](crate::error::DbFailure): busy, constraint, corrupt, I/O, full, read-only)
//!   and whether a retry may help.
//!
//! `":memory:"` opens a private in-memory database (one connection, gone when the stores are
//! dropped), for tests.

use std::{str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    ConnectOptions, Sqlite, SqlitePool, Transaction,
    migrate::Migrator,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use crate::{
    clock::{SharedClock, SystemClock},
    error::StoreError,
};

mod activity;
mod batch;
mod directory;
mod error;
mod inbox;
mod outbox;
mod process;
mod seen;
mod small;

use super::sql::{codec, refusal, seen as seen_marks, segment};

pub use activity::SqliteLastInbound;
pub use directory::SqliteDirectory;
pub use inbox::SqliteInbox;
pub use outbox::SqliteOutbox;
pub use process::SqliteProcessStore;
pub use seen::SqliteSeenEvents;
#[cfg(feature = "messenger")]
pub use small::SqlitePages;
pub use small::{SqliteOptIns, SqliteThreadOwners};

/// Most rows in one multi-row statement (a few bound values each, far below SQLite's limit of
/// 32,766 parameters).
const CHUNK: usize = 256;

/// `n` copies of `group` separated by commas: the placeholders of an `IN (...)` list or of a
/// multi-row `VALUES`, never values.
fn placeholders(n: usize, group: &str) -> String {
    let mut out = String::with_capacity(n * (group.len() + 2));
    for i in 0..n {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(group);
    }
    out
}

/// The embedded migrations, in `src/store/sqlite/migrations/`.
static MIGRATOR: Migrator = sqlx::migrate!("src/store/sqlite/migrations");

/// The schema version this build of the crate writes: the newest embedded migration.
pub fn schema_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Why [`SqliteStores::open`] could not hand out the stores.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The location is not a path, `sqlite:` URL or `:memory:` the driver accepts.
    #[error("invalid SQLite location {location:?}")]
    InvalidLocation {
        /// The location as given, without any query string.
        location: String,
        /// The driver's complaint.
        #[source]
        source: StoreError,
    },
    /// The database could not be opened, created or read (see the source for what failed:
    /// not a database, a read-only directory, a full disk, ...).
    #[error("cannot open the SQLite database at {location}")]
    Open {
        /// The location as given, without any query string.
        location: String,
        /// What failed.
        #[source]
        source: StoreError,
    },
    /// The database was written by a newer version of the crate; this build would not know
    /// its tables. Upgrade the crate, or open a copy made before the upgrade.
    #[error(
        "the SQLite database at {location} has schema version {database}, newer than the \
         version {code} this build of tidings knows: upgrade tidings to open it"
    )]
    SchemaTooNew {
        /// The location as given, without any query string.
        location: String,
        /// The version the database is at.
        database: i64,
        /// The newest version this build knows.
        code: i64,
    },
    /// Bringing the schema to this build's version failed; nothing of the failed migration
    /// was kept (each runs in a transaction).
    #[error("migrating the SQLite database at {location} to schema version {code} failed")]
    Migrate {
        /// The location as given, without any query string.
        location: String,
        /// The version the migration was to reach.
        code: i64,
        /// The migrator's error.
        #[source]
        source: crate::error::BoxError,
    },
}

/// How to open the database; [`SqliteStores::open`] uses the defaults.
#[derive(Clone)]
pub struct SqliteOptions {
    location: String,
    busy_timeout: Duration,
    max_connections: u32,
    synchronous_full: bool,
    max_page_count: Option<u32>,
    clock: SharedClock,
}

impl std::fmt::Debug for SqliteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteOptions")
            .field("location", &display_location(&self.location))
            .field("busy_timeout", &self.busy_timeout)
            .field("max_connections", &self.max_connections)
            .field("synchronous_full", &self.synchronous_full)
            .field("max_page_count", &self.max_page_count)
            .finish_non_exhaustive()
    }
}

impl SqliteOptions {
    /// Options for the database at `location`: a file path (created when missing), a
    /// `sqlite:` URL, or `:memory:`.
    pub fn new(location: impl Into<String>) -> Self {
        SqliteOptions {
            location: location.into(),
            busy_timeout: Duration::from_secs(5),
            max_connections: 8,
            synchronous_full: false,
            max_page_count: None,
            clock: SystemClock::shared(),
        }
    }

    /// How long a write waits for another writer (of this process or another) before it
    /// fails with [`DbFailure::Busy`](crate::error::DbFailure::Busy). Default 5 s.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// The most connections opened for reads (at least 1). Default 8. Writes go through one
    /// connection of their own whatever this is: SQLite has one writer at a time.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// `synchronous = FULL` instead of `NORMAL`: every commit is synced to disk, so a power
    /// cut loses no committed write either (a killed process loses none in both modes).
    pub fn synchronous_full(mut self, full: bool) -> Self {
        self.synchronous_full = full;
        self
    }

    /// Caps the database at `pages` pages (4 KiB each unless the file says otherwise), for a
    /// host with a disk quota: a write that would grow it further fails with
    /// [`DbFailure::Full`](crate::error::DbFailure::Full) and changes nothing, as on a full
    /// disk. Default: no cap beyond SQLite's own.
    pub fn max_page_count(mut self, pages: u32) -> Self {
        self.max_page_count = Some(pages);
        self
    }

    /// The clock `active_within` segment conditions are evaluated at. Default: system time.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
}

/// The location for messages and logs: without a query string, which is where a URL would
/// carry options (and, for other databases, credentials).
fn display_location(location: &str) -> String {
    location
        .split_once('?')
        .map_or(location, |(path, _)| path)
        .to_owned()
}

/// Every SQLite store, on one database. Cheap to clone: the stores share one pool.
#[derive(Clone)]
pub struct SqliteStores {
    inner: Arc<Shared>,
}

/// What every store of one database shares.
pub(crate) struct Shared {
    /// The one connection every write of this process goes through.
    pool: SqlitePool,
    /// Connections for reads, which WAL lets run beside the write.
    reader: SqlitePool,
    /// One-statement writes waiting for the next shared transaction.
    batch: batch::GroupCommit,
    clock: SharedClock,
    location: String,
}

impl std::fmt::Debug for SqliteStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStores")
            .field("location", &self.inner.location)
            .finish_non_exhaustive()
    }
}

impl SqliteStores {
    /// Opens the database at `location` (a file path, created when missing; a `sqlite:` URL;
    /// or `:memory:`) with the default [`SqliteOptions`], and migrates it to this build's
    /// schema.
    pub async fn open(location: &str) -> Result<Self, OpenError> {
        SqliteStores::open_with(SqliteOptions::new(location)).await
    }

    /// Opens the database as `options` say, and migrates it to this build's schema.
    pub async fn open_with(options: SqliteOptions) -> Result<Self, OpenError> {
        let location = display_location(&options.location);
        let in_memory = is_memory(&options.location);
        let connect = connect_options(&options).map_err(|e| OpenError::InvalidLocation {
            location: location.clone(),
            source: error::db(e),
        })?;
        let open_error = |e| OpenError::Open {
            location: location.clone(),
            source: error::db(e),
        };
        let acquire = options.busy_timeout + Duration::from_secs(25);
        // One writer connection: the writes of this process queue for it in the pool (an
        // async wait) instead of contending for SQLite's write lock, whose busy handler polls
        // with sleeps of up to 100 ms. Other processes still contend, and wait up to the busy
        // timeout. `:memory:` is one database per connection, so it gets exactly one, for the
        // life of the stores, for reads and writes alike.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(u32::from(in_memory))
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(acquire)
            // A local file does not drop connections the way a network does: the ping sqlx
            // sends before handing a connection out would cost a round trip per statement.
            .test_before_acquire(false)
            .connect_with(connect.clone())
            .await
            .map_err(open_error)?;
        let reader = if in_memory {
            pool.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(acquire)
                .test_before_acquire(false)
                .connect_lazy_with(connect)
        };
        migrate(&pool, &location).await?;
        Ok(SqliteStores {
            inner: Arc::new(Shared {
                pool,
                reader,
                batch: batch::GroupCommit::default(),
                clock: options.clock,
                location,
            }),
        })
    }

    /// The directory of contacts, which also resolves segments.
    pub fn directory(&self) -> Arc<SqliteDirectory> {
        Arc::new(SqliteDirectory::new(self.inner.clone()))
    }

    /// The support inbox.
    pub fn inbox(&self) -> Arc<SqliteInbox> {
        Arc::new(SqliteInbox::new(self.inner.clone()))
    }

    /// The campaign outbox.
    pub fn outbox(&self) -> Arc<SqliteOutbox> {
        Arc::new(SqliteOutbox::new(self.inner.clone()))
    }

    /// The flow instance store.
    pub fn processes(&self) -> Arc<SqliteProcessStore> {
        Arc::new(SqliteProcessStore::new(self.inner.clone()))
    }

    /// The seen-events store (webhook redeliveries, single-use tokens).
    pub fn seen(&self) -> Arc<SqliteSeenEvents> {
        Arc::new(SqliteSeenEvents::new(self.inner.clone()))
    }

    /// The last-inbound record (messaging windows, activity segments).
    pub fn last_inbound(&self) -> Arc<SqliteLastInbound> {
        Arc::new(SqliteLastInbound::new(self.inner.clone()))
    }

    /// The notification opt-ins (Marketing Messages tokens) per contact.
    pub fn opt_ins(&self) -> Arc<SqliteOptIns> {
        Arc::new(SqliteOptIns::new(self.inner.clone()))
    }

    /// Who owns each conversation thread.
    pub fn thread_owners(&self) -> Arc<SqliteThreadOwners> {
        Arc::new(SqliteThreadOwners::new(self.inner.clone()))
    }

    /// The Messenger Pages the platform serves.
    #[cfg(feature = "messenger")]
    #[cfg_attr(docsrs, doc(cfg(feature = "messenger")))]
    pub fn pages(&self) -> Arc<SqlitePages> {
        Arc::new(SqlitePages::new(self.inner.clone()))
    }

    /// The pool the stores write through (one connection), for a host that keeps its own
    /// tables in the same file: its writes then queue with the stores' instead of contending
    /// for SQLite's write lock.
    pub fn pool(&self) -> &SqlitePool {
        &self.inner.pool
    }

    /// Closes every connection; stores handed out fail with a connection error afterwards.
    pub async fn close(&self) {
        self.inner.pool.close().await;
        self.inner.reader.close().await;
    }
}

fn is_memory(location: &str) -> bool {
    let path = location.strip_prefix("sqlite:").unwrap_or(location);
    let path = path.strip_prefix("//").unwrap_or(path);
    path == ":memory:" || path.starts_with(":memory:?") || path.contains("mode=memory")
}

fn connect_options(options: &SqliteOptions) -> Result<SqliteConnectOptions, sqlx::Error> {
    let location = options.location.as_str();
    let base = if location.starts_with("sqlite:") || is_memory(location) {
        SqliteConnectOptions::from_str(location)?
    } else {
        SqliteConnectOptions::new().filename(location)
    };
    let base = if is_memory(location) {
        base
    } else {
        base.journal_mode(SqliteJournalMode::Wal)
    };
    let base = match options.max_page_count {
        Some(pages) => base.pragma("max_page_count", pages.to_string()),
        None => base,
    };
    Ok(base
        // Statements are the crate's own and fixed; logging each one at INFO would flood a
        // host's logs on the webhook path.
        .disable_statement_logging()
        .create_if_missing(true)
        .foreign_keys(true)
        .busy_timeout(options.busy_timeout)
        .synchronous(if options.synchronous_full {
            SqliteSynchronous::Full
        } else {
            SqliteSynchronous::Normal
        }))
}

/// Refuses a schema newer than this build, then applies the missing migrations. Several
/// processes may open a new file at once: one applies a migration while the others wait on
/// the write lock, fail on its tables, and find it applied when they try again.
async fn migrate(pool: &SqlitePool, location: &str) -> Result<(), OpenError> {
    let code = schema_version();
    let mut attempt = 0;
    loop {
        let database = applied_version(pool).await.map_err(|e| OpenError::Open {
            location: location.to_owned(),
            source: e,
        })?;
        if database > code {
            return Err(OpenError::SchemaTooNew {
                location: location.to_owned(),
                database,
                code,
            });
        }
        match MIGRATOR.run(pool).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 3 => {
                attempt += 1;
                tracing::debug!(error = %e, attempt, "migration raced another process; retrying");
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(e) => {
                return Err(OpenError::Migrate {
                    location: location.to_owned(),
                    code,
                    source: Box::new(e),
                });
            }
        }
    }
}

/// The newest migration applied to the database, 0 for a new one.
async fn applied_version(pool: &SqlitePool) -> Result<i64, StoreError> {
    let table: Option<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_optional(pool)
    .await
    .map_err(error::db)?;
    if table.is_none() {
        return Ok(0);
    }
    let version: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = 1")
            .fetch_one(pool)
            .await
            .map_err(error::db)?;
    Ok(version.unwrap_or(0))
}

/// Runs `sql` with text parameters on `conn` (inside a transaction); the rows it changed.
async fn run(
    conn: &mut sqlx::SqliteConnection,
    sql: &str,
    binds: &[&str],
) -> Result<u64, StoreError> {
    let mut query = sqlx::query(sql);
    for value in binds {
        query = query.bind(*value);
    }
    Ok(query
        .execute(conn)
        .await
        .map_err(error::db)?
        .rows_affected())
}

impl Shared {
    /// Writes one statement in the next group commit ([`batch`]); returns once committed.
    async fn write(&self, write: batch::Write) -> Result<batch::Done, StoreError> {
        self.batch.write(&self.pool, write).await
    }

    /// Rows affected by a [`batch::Write::Execute`].
    async fn execute(
        &self,
        sql: &'static str,
        binds: Vec<batch::Value>,
    ) -> Result<u64, StoreError> {
        match self.write(batch::Write::Execute { sql, binds }).await? {
            batch::Done::Rows(n) => Ok(n),
            batch::Done::Seq(_) => Err(StoreError::backend("a statement replied with a seq")),
        }
    }

    /// A transaction that holds the write lock from its first statement, so that what it
    /// reads stays true until it commits (a deferred one could fail to upgrade to a writer).
    async fn begin(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(error::db)
    }
}
