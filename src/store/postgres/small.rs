//! The opt-in, thread-owner and Page stores, written once for both dialects in
//! [`store::sql::small`](crate::store::sql::small).

crate::store::sql::small::small_stores! {
    dialect: "PostgreSQL",
    opt_ins: PgOptIns,
    thread_owners: PgThreadOwners,
    pages: PgPages,
    reads: pool,
}
