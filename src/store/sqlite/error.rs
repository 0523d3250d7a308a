//! sqlx errors as [`StoreError`]s that say what failed.

use crate::error::{DbFailure, StoreError};

/// SQLite's primary result codes the stores tell apart (the low byte of an extended code).
mod code {
    pub(super) const BUSY: i64 = 5;
    pub(super) const LOCKED: i64 = 6;
    pub(super) const NOMEM: i64 = 7;
    pub(super) const READONLY: i64 = 8;
    pub(super) const IOERR: i64 = 10;
    pub(super) const CORRUPT: i64 = 11;
    pub(super) const FULL: i64 = 13;
    pub(super) const CANTOPEN: i64 = 14;
    pub(super) const CONSTRAINT: i64 = 19;
    pub(super) const NOTADB: i64 = 26;
}

/// The SQLite extended result code of `e`, when it is a database error.
fn extended_code(e: &sqlx::Error) -> Option<i64> {
    match e {
        sqlx::Error::Database(db) => db.code().and_then(|c| c.parse().ok()),
        _ => None,
    }
}

/// Whether `e` is a UNIQUE or PRIMARY KEY violation.
pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// What kind of failure `e` is.
pub(super) fn classify(e: &sqlx::Error) -> DbFailure {
    match e {
        sqlx::Error::Database(_) => match extended_code(e).map(|c| c & 0xff) {
            Some(code::BUSY | code::LOCKED) => DbFailure::Busy,
            Some(code::READONLY) => DbFailure::ReadOnly,
            Some(code::IOERR | code::NOMEM) => DbFailure::Io,
            Some(code::CORRUPT | code::NOTADB) => DbFailure::Corrupt,
            Some(code::FULL) => DbFailure::Full,
            Some(code::CANTOPEN) => DbFailure::CannotOpen,
            Some(code::CONSTRAINT) => DbFailure::Constraint,
            _ => DbFailure::Other,
        },
        sqlx::Error::Io(_) => DbFailure::Io,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
            DbFailure::Connection
        }
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => DbFailure::Corrupt,
        _ => DbFailure::Other,
    }
}

/// `e` as a [`StoreError::Database`], classified.
pub(super) fn db(e: sqlx::Error) -> StoreError {
    StoreError::Database {
        failure: classify(&e),
        source: Box::new(e),
    }
}
