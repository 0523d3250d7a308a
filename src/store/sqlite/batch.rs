//! Group commit: the one-statement writes of many tasks share one transaction.
//!
//! A commit is the expensive part of a small SQLite write (the WAL frames of every page it
//! touched, the lock, the round trip to the driver's thread). The hot writes of the stores (a
//! campaign's claims and finishes, seen marks, last-inbound times, incoming inbox entries) are
//! single statements, so the writes that arrive while a transaction is being written wait and
//! go into the next one together: under load, one commit carries dozens of them.
//!
//! Each caller still returns only once its write is committed, with its own result; nothing is
//! acknowledged that a crash could lose. A statement that breaks a constraint fails alone (SQLite
//! undoes just that statement); any other failure (busy, I/O, full disk) rolls the whole batch
//! back and every write of it gets the error: none of them is stored.
//!
//! Leader-based: the first caller to get the flush lock takes everything queued and writes it
//! in a task of its own, so a caller that gives up waiting never cuts a batch short.

use std::sync::Mutex;

use sqlx::{Row, SqliteConnection, SqlitePool};
use tokio::sync::oneshot;

use super::error::{classify, db};
use crate::{
    error::{DbFailure, StoreError},
    sync::lock,
};

/// Most writes in one transaction.
const MAX_BATCH: usize = 512;

/// One single-statement write.
#[derive(Debug)]
pub(super) enum Write {
    /// An `INSERT ... ON CONFLICT DO NOTHING` (or any statement); replies with rows affected.
    Execute {
        sql: &'static str,
        binds: Vec<Value>,
    },
    /// A campaign outcome stored unless the pair has one; replies with rows affected (1 when
    /// stored). The claims of one batch become one multi-row `INSERT`.
    Outcome {
        campaign: String,
        contact: String,
        pending: bool,
        outcome: String,
        at: i64,
    },
    /// A pending outcome replaced by a final one; replies with rows affected (1 when it was
    /// pending). The finishes of one batch become one `UPDATE ... FROM (VALUES ...)`.
    Finish {
        campaign: String,
        contact: String,
        outcome: String,
        at: i64,
    },
    /// An incoming inbox entry, deduplicated on (channel, message id) and on (channel, event
    /// key); replies with its seq.
    Incoming {
        binds: Vec<Value>,
        channel: String,
        message_id: Option<String>,
        event_key: Option<String>,
    },
}

/// A bound value.
#[derive(Debug, Clone)]
pub(super) enum Value {
    Text(String),
    OptText(Option<String>),
    Int(i64),
}

/// What a write did.
#[derive(Debug, Clone, Copy)]
pub(super) enum Done {
    /// Rows affected.
    Rows(u64),
    /// The seq of the (new or existing) entry.
    Seq(i64),
}

struct Job {
    write: Write,
    reply: oneshot::Sender<Result<Done, StoreError>>,
}

/// The queue of writes waiting for the next transaction.
#[derive(Default)]
pub(super) struct GroupCommit {
    queue: Mutex<Vec<Job>>,
    flush: tokio::sync::Mutex<()>,
}

impl GroupCommit {
    /// Writes `write` in the next transaction and returns once it is committed.
    pub(super) async fn write(&self, pool: &SqlitePool, write: Write) -> Result<Done, StoreError> {
        let (reply, mut done) = oneshot::channel();
        lock(&self.queue).push(Job { write, reply });
        let _leader = self.flush.lock().await;
        if let Ok(result) = done.try_recv() {
            return result;
        }
        loop {
            let jobs = {
                let mut queue = lock(&self.queue);
                let n = queue.len().min(MAX_BATCH);
                queue.drain(..n).collect::<Vec<_>>()
            };
            if jobs.is_empty() {
                break;
            }
            let task = tokio::spawn(run(pool.clone(), jobs));
            if task.await.is_err() {
                break;
            }
            if let Ok(result) = done.try_recv() {
                return result;
            }
        }
        done.await.unwrap_or_else(|_| {
            Err(StoreError::Database {
                failure: DbFailure::Connection,
                source: "the write was dropped before it was committed".into(),
            })
        })
    }
}

/// A failure that undoes the whole transaction, for every write of it.
fn batch_error(failure: DbFailure, cause: &str) -> StoreError {
    StoreError::Database {
        failure,
        source: format!("the batch of writes was rolled back: {cause}").into(),
    }
}

async fn run(pool: SqlitePool, jobs: Vec<Job>) {
    let mut conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(e) => {
            let (failure, cause) = (classify(&e), e.to_string());
            for job in jobs {
                let _ = job.reply.send(Err(batch_error(failure, &cause)));
            }
            return;
        }
    };
    if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
        let (failure, cause) = (classify(&e), e.to_string());
        for job in jobs {
            let _ = job.reply.send(Err(batch_error(failure, &cause)));
        }
        return;
    }
    let results = match execute_all(&mut conn, &jobs).await {
        Ok(results) => results,
        Err(e) => {
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            let (failure, cause) = (classify(&e), e.to_string());
            for job in jobs {
                let _ = job.reply.send(Err(batch_error(failure, &cause)));
            }
            return;
        }
    };
    if let Err(e) = sqlx::query("COMMIT").execute(&mut *conn).await {
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        let (failure, cause) = (classify(&e), e.to_string());
        for job in jobs {
            let _ = job.reply.send(Err(batch_error(failure, &cause)));
        }
        return;
    }
    for (job, result) in jobs.into_iter().zip(results) {
        let _ = job.reply.send(result);
    }
}

/// Runs every write of a batch: the outcomes in multi-row statements, the rest one by one.
/// Outcomes touch a table nothing else of a batch touches, and keep their order among
/// themselves, so running them first changes no result. `Err` aborts the whole batch.
async fn execute_all(
    conn: &mut SqliteConnection,
    jobs: &[Job],
) -> Result<Vec<Result<Done, StoreError>>, sqlx::Error> {
    let mut results: Vec<Option<Result<Done, StoreError>>> =
        (0..jobs.len()).map(|_| None).collect();
    let groups: [Group; 2] = [
        (
            |w| matches!(w, Write::Outcome { .. }),
            outcome_statement,
            bind_outcome,
        ),
        (
            |w| matches!(w, Write::Finish { .. }),
            finish_statement,
            bind_finish,
        ),
    ];
    for (member, statement, bind) in groups {
        let indexes: Vec<usize> = (0..jobs.len())
            .filter(|&i| member(&jobs[i].write))
            .collect();
        for chunk in indexes.chunks(ROWS_PER_STATEMENT) {
            let done = multi_row(conn, jobs, chunk, statement, bind).await?;
            for (i, done) in chunk.iter().zip(done) {
                results[*i] = Some(Ok(done));
            }
        }
    }
    for (i, job) in jobs.iter().enumerate() {
        if results[i].is_some() {
            continue;
        }
        results[i] = Some(match execute(conn, &job.write).await {
            Ok(done) => Ok(done),
            // A constraint undoes its own statement only.
            Err(e) if classify(&e) == DbFailure::Constraint => Err(db(e)),
            Err(e) => return Err(e),
        });
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or(Ok(Done::Rows(0))))
        .collect())
}

/// Binds one write's values to a multi-row statement.
type BindPair = for<'q> fn(PairQuery<'q>, &'q Write) -> PairQuery<'q>;

/// Writes run as multi-row statements: which writes, the SQL for `n` rows, how to bind one.
type Group = (fn(&Write) -> bool, fn(usize) -> String, BindPair);

/// Rows in one multi-row statement (5 values each, far below SQLite's parameter limit).
const ROWS_PER_STATEMENT: usize = 200;

/// The (campaign, contact) key of an outcome or finish write.
fn pair(write: &Write) -> Option<(&str, &str)> {
    match write {
        Write::Outcome {
            campaign, contact, ..
        }
        | Write::Finish {
            campaign, contact, ..
        } => Some((campaign, contact)),
        _ => None,
    }
}

/// The query a multi-row outcome statement is built as.
type PairQuery<'q> =
    sqlx::query::QueryAs<'q, sqlx::Sqlite, (String, String), sqlx::sqlite::SqliteArguments<'q>>;

/// The writes `chunk` (indexes into `jobs`) in one statement: `statement(n)` is its SQL for `n`
/// rows, returning the (campaign, contact) of each row it wrote; `bind` binds one write. A pair
/// written twice in one statement counts once, at its first place, as two statements in a row
/// would have it.
async fn multi_row(
    conn: &mut SqliteConnection,
    jobs: &[Job],
    chunk: &[usize],
    statement: fn(usize) -> String,
    bind: BindPair,
) -> Result<Vec<Done>, sqlx::Error> {
    let mut seen = std::collections::HashSet::with_capacity(chunk.len());
    let first: Vec<bool> = chunk
        .iter()
        .map(|&i| seen.insert(pair(&jobs[i].write)))
        .collect();
    let rows: Vec<usize> = chunk
        .iter()
        .zip(&first)
        .filter_map(|(&i, &f)| f.then_some(i))
        .collect();
    let sql = statement(rows.len());
    let mut query = sqlx::query_as::<_, (String, String)>(&sql);
    for &i in &rows {
        query = bind(query, &jobs[i].write);
    }
    let written: std::collections::HashSet<(String, String)> =
        query.fetch_all(&mut *conn).await?.into_iter().collect();
    Ok(chunk
        .iter()
        .zip(first)
        .map(|(&i, first)| {
            let hit = pair(&jobs[i].write)
                .is_some_and(|(c, k)| written.contains(&(c.to_owned(), k.to_owned())));
            Done::Rows(u64::from(first && hit))
        })
        .collect())
}

fn outcome_statement(rows: usize) -> String {
    format!(
        "INSERT INTO campaign_outcomes (campaign, contact_id, pending, outcome, at) VALUES {} \
         ON CONFLICT (campaign, contact_id) DO NOTHING RETURNING campaign, contact_id",
        super::placeholders(rows, "(?, ?, ?, ?, ?)")
    )
}

fn bind_outcome<'q>(query: PairQuery<'q>, write: &'q Write) -> PairQuery<'q> {
    match write {
        Write::Outcome {
            campaign,
            contact,
            pending,
            outcome,
            at,
        } => query
            .bind(campaign)
            .bind(contact)
            .bind(i64::from(*pending))
            .bind(outcome)
            .bind(*at),
        _ => query,
    }
}

fn finish_statement(rows: usize) -> String {
    format!(
        "UPDATE campaign_outcomes SET pending = 0, outcome = v.column3, at = v.column4 \
         FROM (VALUES {}) AS v \
         WHERE campaign_outcomes.campaign = v.column1 AND campaign_outcomes.contact_id = v.column2 \
           AND campaign_outcomes.pending = 1 \
         RETURNING campaign_outcomes.campaign, campaign_outcomes.contact_id",
        super::placeholders(rows, "(?, ?, ?, ?)")
    )
}

fn bind_finish<'q>(query: PairQuery<'q>, write: &'q Write) -> PairQuery<'q> {
    match write {
        Write::Finish {
            campaign,
            contact,
            outcome,
            at,
        } => query.bind(campaign).bind(contact).bind(outcome).bind(*at),
        _ => query,
    }
}

fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    binds: &'q [Value],
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    for value in binds {
        query = match value {
            Value::Text(s) => query.bind(s.as_str()),
            Value::OptText(s) => query.bind(s.as_deref()),
            Value::Int(i) => query.bind(*i),
        };
    }
    query
}

async fn execute(conn: &mut SqliteConnection, write: &Write) -> Result<Done, sqlx::Error> {
    match write {
        // Run by `execute_all` in multi-row statements.
        Write::Outcome { .. } | Write::Finish { .. } => Ok(Done::Rows(0)),
        Write::Execute { sql, binds } => {
            let done = bind_all(sqlx::query(sql), binds)
                .execute(&mut *conn)
                .await?;
            Ok(Done::Rows(done.rows_affected()))
        }
        Write::Incoming {
            binds,
            channel,
            message_id,
            event_key,
        } => {
            let inserted = bind_all(sqlx::query(super::inbox::INSERT_INCOMING), binds)
                .fetch_optional(&mut *conn)
                .await?;
            if let Some(row) = inserted {
                return Ok(Done::Seq(row.try_get(0)?));
            }
            // The entry it repeats: by message id first, as the constraints are checked.
            let existing: i64 = sqlx::query_scalar(
                "SELECT seq FROM inbox_entries \
                 WHERE incoming = 1 AND channel = ?1 AND (message_id = ?2 OR event_key = ?3) \
                 ORDER BY message_id = ?2 DESC LIMIT 1",
            )
            .bind(channel)
            .bind(message_id)
            .bind(event_key)
            .fetch_one(&mut *conn)
            .await?;
            Ok(Done::Seq(existing))
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    use super::*;

    const INSERT: &str = "INSERT INTO t (id, v) VALUES (?, ?)";

    async fn pool(dir: &tempfile::TempDir) -> SqlitePool {
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("batch.db"))
            .create_if_missing(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        pool
    }

    fn insert(id: i64) -> Write {
        Write::Execute {
            sql: INSERT,
            binds: vec![Value::Int(id), Value::Text(format!("v{id}"))],
        }
    }

    /// Runs `writes` as one batch (one transaction) and returns each write's result.
    async fn one_batch(pool: &SqlitePool, writes: Vec<Write>) -> Vec<Result<Done, StoreError>> {
        let (jobs, replies): (Vec<Job>, Vec<_>) = writes
            .into_iter()
            .map(|write| {
                let (reply, done) = oneshot::channel();
                (Job { write, reply }, done)
            })
            .unzip();
        run(pool.clone(), jobs).await;
        let mut results = Vec::new();
        for done in replies {
            results.push(done.await.unwrap());
        }
        results
    }

    async fn ids(pool: &SqlitePool) -> Vec<i64> {
        sqlx::query_scalar("SELECT id FROM t ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_write_that_breaks_a_constraint_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir).await;
        let results = one_batch(&pool, vec![insert(1), insert(1), insert(2)]).await;
        assert!(matches!(results[0], Ok(Done::Rows(1))), "{results:?}");
        assert!(
            matches!(
                results[1],
                Err(StoreError::Database {
                    failure: DbFailure::Constraint,
                    ..
                })
            ),
            "{results:?}"
        );
        assert!(matches!(results[2], Ok(Done::Rows(1))), "{results:?}");
        assert_eq!(ids(&pool).await, [1, 2], "the others are committed");
    }

    #[tokio::test]
    async fn any_other_failure_rolls_the_whole_batch_back_for_every_write() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir).await;
        let broken = Write::Execute {
            sql: "INSERT INTO no_such_table (id) VALUES (?)",
            binds: vec![Value::Int(9)],
        };
        let results = one_batch(&pool, vec![insert(3), broken, insert(4)]).await;
        for result in &results {
            assert!(
                matches!(result, Err(StoreError::Database { failure, .. }) if *failure != DbFailure::Constraint),
                "every write gets the batch's failure: {results:?}"
            );
        }
        assert!(
            ids(&pool).await.is_empty(),
            "nothing of the batch is stored"
        );
    }
}
