//! A database of its own for each PostgreSQL test, on the server `TIDINGS_POSTGRES_URL` names.
//!
//! Without the variable the tests say they were skipped and how to run them; with it set and
//! the server unreachable they fail.

#![allow(dead_code)] // each test binary uses part of it

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{Connection, PgConnection};
use tidings::store::postgres::PostgresStores;

/// The variable that names the server.
pub const URL_VAR: &str = "TIDINGS_POSTGRES_URL";

/// A database created for one test, dropped (with every connection to it) when this is.
pub struct TestDatabase {
    /// The URL of the new database.
    pub url: String,
    admin: String,
    name: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl TestDatabase {
    /// A new, empty database for `test`, or `None` (after saying so) when no server is
    /// configured.
    pub async fn create(test: &str) -> Option<TestDatabase> {
        let Ok(admin) = std::env::var(URL_VAR) else {
            eprintln!(
                "skipped {test}: {URL_VAR} is not set. Run the PostgreSQL tests with \
                 {URL_VAR}=postgres://postgres@127.0.0.1:5432/test cargo test --all-features \
                 (.ci/run sets it)"
            );
            return None;
        };
        let name = format!(
            "tidings_{}_{}_{}",
            test.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(30)
                .collect::<String>(),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
        .to_ascii_lowercase();
        let mut conn = PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("{URL_VAR} is set but the server is unreachable: {e}"));
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        conn.close().await.ok();
        let url = with_database(&admin, &name);
        Some(TestDatabase { url, admin, name })
    }

    /// The stores on this database, migrated.
    pub async fn stores(&self) -> PostgresStores {
        PostgresStores::open(&self.url)
            .await
            .unwrap_or_else(|e| panic!("open {}: {e}", self.name))
    }
}

/// `url` with its database (the path) replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop runs outside any runtime guarantee: a thread with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}
