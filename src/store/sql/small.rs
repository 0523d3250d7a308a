//! The small stores whose statements read the same in SQLite and PostgreSQL (notification
//! opt-ins, thread owners, Messenger Pages), written once.
//!
//! [`small_stores!`] expands, inside a backend's module, to that backend's store types. The
//! statements use `$1`, `$2`, ... placeholders, which PostgreSQL takes as they are and SQLite as
//! named parameters numbered by first appearance (each statement names them in ascending
//! order, so the numbers agree). What differs between the backends is named in the invocation:
//! the types' names, the dialect in their docs, and which pool reads (SQLite reads beside its
//! one writer connection; PostgreSQL has one pool). Each backend's `Shared` provides `pool`,
//! `location` and `begin()` (a transaction that takes the write lock at once on SQLite).

/// Defines the opt-in, thread-owner and Page stores of one backend; see the module docs.
macro_rules! small_stores {
    (
        dialect: $dialect:literal,
        opt_ins: $OptIns:ident,
        thread_owners: $Threads:ident,
        pages: $Pages:ident,
        reads: $reads:ident $(,)?
    ) => {
        #[doc = concat!(
            "Notification opt-ins in ", $dialect, ": an [`OptIns`](crate::optin::OptIns). A record \
             replaces the stored one of its (contact, channel, topic) in one conditional upsert, \
             so a redelivered older event never overwrites a newer status, whichever process \
             writes."
        )]
        #[derive(Clone)]
        pub struct $OptIns {
            shared: ::std::sync::Arc<super::Shared>,
        }

        impl ::std::fmt::Debug for $OptIns {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($OptIns))
                    .field("location", &self.shared.location)
                    .finish()
            }
        }

        impl $OptIns {
            pub(super) fn new(shared: ::std::sync::Arc<super::Shared>) -> Self {
                $OptIns { shared }
            }
        }

        #[::async_trait::async_trait]
        impl $crate::optin::OptIns for $OptIns {
            async fn record(
                &self,
                record: $crate::optin::OptInRecord,
            ) -> Result<bool, $crate::error::StoreError> {
                let optin = $crate::store::sql::codec::to_json("opt-in", &record.optin)?;
                let done = ::sqlx::query(
                    "INSERT INTO opt_ins (contact_id, channel, topic, at, optin) \
                     VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (contact_id, channel, topic) DO UPDATE SET at = excluded.at, \
                       optin = excluded.optin WHERE excluded.at >= opt_ins.at",
                )
                .bind(record.contact.as_str())
                .bind(record.channel.to_string())
                .bind(record.topic())
                .bind(record.at.as_millis())
                .bind(&optin)
                .execute(&self.shared.pool)
                .await
                .map_err(super::error::db)?;
                Ok(done.rows_affected() > 0)
            }

            async fn list(
                &self,
                contact: &$crate::contact::ContactId,
            ) -> Result<Vec<$crate::optin::OptInRecord>, $crate::error::StoreError> {
                let rows: Vec<(String, String, i64, String)> = ::sqlx::query_as(
                    "SELECT contact_id, channel, at, optin FROM opt_ins WHERE contact_id = $1 \
                     ORDER BY channel, topic",
                )
                .bind(contact.as_str())
                .fetch_all(&self.shared.$reads)
                .await
                .map_err(super::error::db)?;
                rows.into_iter()
                    .map($crate::store::sql::codec::opt_in_from)
                    .collect()
            }

            async fn reassign(
                &self,
                from: &$crate::contact::ContactId,
                into: &$crate::contact::ContactId,
            ) -> Result<usize, $crate::error::StoreError> {
                if from == into {
                    return Ok(0);
                }
                let mut tx = self.shared.begin().await?;
                ::sqlx::query(
                    "INSERT INTO opt_ins (contact_id, channel, topic, at, optin) \
                     SELECT $1, channel, topic, at, optin FROM opt_ins WHERE contact_id = $2 \
                     ON CONFLICT (contact_id, channel, topic) DO UPDATE SET at = excluded.at, \
                       optin = excluded.optin WHERE excluded.at > opt_ins.at",
                )
                .bind(into.as_str())
                .bind(from.as_str())
                .execute(&mut *tx)
                .await
                .map_err(super::error::db)?;
                let removed = ::sqlx::query("DELETE FROM opt_ins WHERE contact_id = $1")
                    .bind(from.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(super::error::db)?;
                tx.commit().await.map_err(super::error::db)?;
                Ok($crate::store::sql::codec::count(removed.rows_affected()))
            }

            async fn forget_contact(
                &self,
                contact: &$crate::contact::ContactId,
            ) -> Result<usize, $crate::error::StoreError> {
                let done = ::sqlx::query("DELETE FROM opt_ins WHERE contact_id = $1")
                    .bind(contact.as_str())
                    .execute(&self.shared.pool)
                    .await
                    .map_err(super::error::db)?;
                Ok($crate::store::sql::codec::count(done.rows_affected()))
            }
        }

        #[doc = concat!(
            "Thread owners in ", $dialect, ": a [`ThreadOwners`](crate::threads::ThreadOwners). \
             `set` keeps the later event in the upsert itself, so concurrent writers never move \
             ownership back."
        )]
        #[derive(Clone)]
        pub struct $Threads {
            shared: ::std::sync::Arc<super::Shared>,
        }

        impl ::std::fmt::Debug for $Threads {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($Threads))
                    .field("location", &self.shared.location)
                    .finish()
            }
        }

        impl $Threads {
            pub(super) fn new(shared: ::std::sync::Arc<super::Shared>) -> Self {
                $Threads { shared }
            }
        }

        #[::async_trait::async_trait]
        impl $crate::threads::ThreadOwners for $Threads {
            async fn set(
                &self,
                address: &$crate::contact::Address,
                owner: $crate::threads::ThreadOwner,
                at: $crate::clock::Timestamp,
            ) -> Result<bool, $crate::error::StoreError> {
                let (channel, scope, id) = $crate::store::sql::codec::address_key(address);
                let done = ::sqlx::query(
                    "INSERT INTO thread_owners (channel, scope, address, owner, since) \
                     VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (channel, scope, address) DO UPDATE SET owner = excluded.owner, \
                       since = excluded.since WHERE excluded.since >= thread_owners.since",
                )
                .bind(channel)
                .bind(scope)
                .bind(id)
                .bind($crate::store::sql::codec::to_json("thread owner", &owner)?)
                .bind(at.as_millis())
                .execute(&self.shared.pool)
                .await
                .map_err(super::error::db)?;
                Ok(done.rows_affected() > 0)
            }

            async fn get(
                &self,
                address: &$crate::contact::Address,
            ) -> Result<Option<$crate::threads::ThreadState>, $crate::error::StoreError> {
                let (channel, scope, id) = $crate::store::sql::codec::address_key(address);
                let row: Option<(String, i64)> = ::sqlx::query_as(
                    "SELECT owner, since FROM thread_owners \
                     WHERE channel = $1 AND scope = $2 AND address = $3",
                )
                .bind(channel)
                .bind(scope)
                .bind(id)
                .fetch_optional(&self.shared.$reads)
                .await
                .map_err(super::error::db)?;
                row.map(|(owner, since)| {
                    Ok($crate::threads::ThreadState::new(
                        $crate::store::sql::codec::from_json("thread owner", &owner)?,
                        $crate::clock::Timestamp::from_millis(since),
                    ))
                })
                .transpose()
            }

            async fn forget(
                &self,
                address: &$crate::contact::Address,
            ) -> Result<bool, $crate::error::StoreError> {
                let (channel, scope, id) = $crate::store::sql::codec::address_key(address);
                let done = ::sqlx::query(
                    "DELETE FROM thread_owners WHERE channel = $1 AND scope = $2 AND address = $3",
                )
                .bind(channel)
                .bind(scope)
                .bind(id)
                .execute(&self.shared.pool)
                .await
                .map_err(super::error::db)?;
                Ok(done.rows_affected() > 0)
            }
        }

        #[cfg(feature = "messenger")]
        #[doc = concat!(
            "The Messenger Pages a platform serves, in ", $dialect, ": a \
             [`PageResolver`](crate::messenger::PageResolver) a platform adds Pages to as schools \
             connect them.\n\nThe access tokens are stored as they are given: protect the \
             database as you would the tokens (they never reach logs or `Debug` output from here)."
        )]
        #[derive(Clone)]
        pub struct $Pages {
            shared: ::std::sync::Arc<super::Shared>,
        }

        #[cfg(feature = "messenger")]
        impl ::std::fmt::Debug for $Pages {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($Pages))
                    .field("location", &self.shared.location)
                    .finish()
            }
        }

        #[cfg(feature = "messenger")]
        impl $Pages {
            pub(super) fn new(shared: ::std::sync::Arc<super::Shared>) -> Self {
                $Pages { shared }
            }

            /// Adds Page `page.page_id`, or replaces its settings.
            pub async fn put(
                &self,
                page: &$crate::messenger::PageConfig,
            ) -> Result<(), $crate::error::StoreError> {
                ::sqlx::query(
                    "INSERT INTO messenger_pages (page_id, access_token, username) \
                     VALUES ($1, $2, $3) \
                     ON CONFLICT (page_id) DO UPDATE SET access_token = excluded.access_token, \
                       username = excluded.username",
                )
                .bind(&page.page_id)
                .bind(page.access_token.secret())
                .bind(&page.username)
                .execute(&self.shared.pool)
                .await
                .map_err(super::error::db)?;
                Ok(())
            }

            /// Removes Page `page_id`; whether it was there.
            pub async fn remove(&self, page_id: &str) -> Result<bool, $crate::error::StoreError> {
                let done = ::sqlx::query("DELETE FROM messenger_pages WHERE page_id = $1")
                    .bind(page_id)
                    .execute(&self.shared.pool)
                    .await
                    .map_err(super::error::db)?;
                Ok(done.rows_affected() == 1)
            }
        }

        #[cfg(feature = "messenger")]
        #[::async_trait::async_trait]
        impl $crate::messenger::PageResolver for $Pages {
            async fn page(
                &self,
                page_id: &str,
            ) -> Result<Option<$crate::messenger::PageConfig>, $crate::error::StoreError> {
                let row: Option<(String, String, Option<String>)> = ::sqlx::query_as(
                    "SELECT page_id, access_token, username FROM messenger_pages \
                     WHERE page_id = $1",
                )
                .bind(page_id)
                .fetch_optional(&self.shared.$reads)
                .await
                .map_err(super::error::db)?;
                Ok(row.map(|(id, token, username)| {
                    let mut page = $crate::messenger::PageConfig::new(
                        id,
                        $crate::messenger::PageAccessToken::new(token),
                    );
                    page.username = username;
                    page
                }))
            }

            async fn contains(&self, page_id: &str) -> Result<bool, $crate::error::StoreError> {
                let hit: bool = ::sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM messenger_pages WHERE page_id = $1)",
                )
                .bind(page_id)
                .fetch_one(&self.shared.$reads)
                .await
                .map_err(super::error::db)?;
                Ok(hit)
            }
        }
    };
}

pub(crate) use small_stores;
