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
    /// An incoming inbox entry, deduplicated on (channel, message id); replies with its seq.
    Incoming {
        binds: Vec<Value>,
        channel: String,
        message_id: Option<String>,
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
    let mut results = Vec::with_capacity(jobs.len());
    for job in &jobs {
        match execute(&mut conn, &job.write).await {
            Ok(done) => results.push(Ok(done)),
            // A constraint undoes its own statement only.
            Err(e) if classify(&e) == DbFailure::Constraint => results.push(Err(db(e))),
            Err(e) => {
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                let (failure, cause) = (classify(&e), e.to_string());
                for job in jobs {
                    let _ = job.reply.send(Err(batch_error(failure, &cause)));
                }
                return;
            }
        }
    }
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
        } => {
            let inserted = bind_all(sqlx::query(super::inbox::INSERT_INCOMING), binds)
                .fetch_optional(&mut *conn)
                .await?;
            if let Some(row) = inserted {
                return Ok(Done::Seq(row.try_get(0)?));
            }
            let existing: i64 = sqlx::query_scalar(
                "SELECT seq FROM inbox_entries \
                 WHERE incoming = 1 AND channel = ? AND message_id = ?",
            )
            .bind(channel)
            .bind(message_id)
            .fetch_one(&mut *conn)
            .await?;
            Ok(Done::Seq(existing))
        }
    }
}
