//! sqlx errors from PostgreSQL as [`StoreError`]s that say what failed, by SQLSTATE.

use crate::error::{DbFailure, StoreError};

/// Whether `e` is a UNIQUE or PRIMARY KEY violation.
pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// What kind of failure `e` is.
pub(super) fn classify(e: &sqlx::Error) -> DbFailure {
    match e {
        sqlx::Error::Database(db) => db.code().map_or(DbFailure::Other, |c| by_sqlstate(&c)),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => DbFailure::Connection,
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => DbFailure::Corrupt,
        _ => DbFailure::Other,
    }
}

/// The failure a SQLSTATE code names (PostgreSQL's appendix A).
fn by_sqlstate(code: &str) -> DbFailure {
    match code {
        // serialization_failure, deadlock_detected, lock_not_available, query_canceled (a
        // statement or lock timeout): another transaction was in the way.
        "40001" | "40P01" | "55P03" | "57014" => DbFailure::Busy,
        "53100" => DbFailure::Full,
        "25006" => DbFailure::ReadOnly,
        "XX001" | "XX002" => DbFailure::Corrupt,
        // io_error, out_of_memory.
        "58030" | "53200" => DbFailure::Io,
        // too_many_connections, the server shutting down or restarting.
        "53300" | "57P01" | "57P02" | "57P03" => DbFailure::Connection,
        // invalid_catalog_name (no such database), invalid authorization, bad password.
        "3D000" | "28000" | "28P01" => DbFailure::CannotOpen,
        _ if code.starts_with("23") => DbFailure::Constraint,
        _ if code.starts_with("08") => DbFailure::Connection,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_are_classified_by_what_a_caller_can_do() {
        assert_eq!(by_sqlstate("40001"), DbFailure::Busy);
        assert!(by_sqlstate("40P01").is_retryable());
        assert_eq!(by_sqlstate("23503"), DbFailure::Constraint);
        assert!(!by_sqlstate("23505").is_retryable());
        assert_eq!(by_sqlstate("08006"), DbFailure::Connection);
        assert_eq!(by_sqlstate("53100"), DbFailure::Full);
        assert_eq!(by_sqlstate("3D000"), DbFailure::CannotOpen);
        assert_eq!(by_sqlstate("42P01"), DbFailure::Other);
    }
}
