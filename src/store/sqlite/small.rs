//! The opt-in, thread-owner and Page stores, written once for both dialects in
//! [`store::sql::small`](crate::store::sql::small).

crate::store::sql::small::small_stores! {
    dialect: "SQLite",
    opt_ins: SqliteOptIns,
    thread_owners: SqliteThreadOwners,
    pages: SqlitePages,
    reads: reader,
}
