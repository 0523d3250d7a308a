use std::{collections::HashSet, fmt, sync::Arc};

use async_trait::async_trait;
use sqlx::{PgConnection, PgExecutor};

use super::{
    Shared,
    codec::{ContactRow, address_key, contact_from_row, contact_id, to_json},
    error::{db, is_unique_violation},
    segment::{self, Bind, Dialect},
};
use crate::{
    contact::{Address, Contact, ContactId, NewContact},
    error::StoreError,
    identity::{Directory, absorb},
    segment::{Cursor, Segment, SegmentPage, SegmentQuery},
};

/// The columns a contact is read from, in [`ContactRow`]'s order, for `FROM contacts c`.
const CONTACT_COLUMNS: &str = "c.id, c.email, c.first_name, c.last_name, c.fields::text, \
     (SELECT coalesce(json_agg(json_build_array(a.channel, a.scope, a.address) ORDER BY a.seq), '[]')::text \
        FROM contact_addresses a WHERE a.contact_id = c.id), \
     (SELECT coalesce(json_agg(t.tag ORDER BY t.tag), '[]')::text \
        FROM contact_tags t WHERE t.contact_id = c.id)";

/// Contacts in PostgreSQL: a [`Directory`] and a [`SegmentQuery`] over them.
///
/// Ids the store assigns are `c1`, `c2`, ... from a sequence (skipping ids a host inserted
/// itself with [`insert`](PgDirectory::insert)), so creates of several processes never take
/// the same id or wait for each other. Segment pages follow contact-id order (byte order) and
/// are read by keyset (`id > cursor`); segment conditions become SQL with bound parameters,
/// and `active_within` reads the last-inbound table of the same database at the stores'
/// clock ([`PostgresOptions::clock`](super::PostgresOptions::clock)).
#[derive(Clone)]
pub struct PgDirectory {
    shared: Arc<Shared>,
}

impl fmt::Debug for PgDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgDirectory")
            .field("location", &self.shared.location)
            .finish()
    }
}

/// Fetches one contact by id.
async fn fetch(executor: impl PgExecutor<'_>, id: &str) -> Result<Option<Contact>, StoreError> {
    let row: Option<ContactRow> = sqlx::query_as(&format!(
        "SELECT {CONTACT_COLUMNS} FROM contacts c WHERE c.id = $1"
    ))
    .bind(id)
    .fetch_optional(executor)
    .await
    .map_err(db)?;
    row.map(contact_from_row).transpose()
}

/// The contact `address` is linked to, as an id.
async fn owner(
    executor: impl PgExecutor<'_>,
    address: &Address,
) -> Result<Option<String>, StoreError> {
    let (channel, scope, id) = address_key(address);
    sqlx::query_scalar(
        "SELECT contact_id FROM contact_addresses WHERE channel = $1 AND scope = $2 AND address = $3",
    )
    .bind(channel)
    .bind(scope)
    .bind(id)
    .fetch_optional(executor)
    .await
    .map_err(db)
}

/// Links `address` to `contact` inside a transaction; a conflict names the other owner.
async fn link_in(
    conn: &mut PgConnection,
    contact: &ContactId,
    address: &Address,
) -> Result<(), StoreError> {
    let (channel, scope, id) = address_key(address);
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO contact_addresses (contact_id, channel, scope, address) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING seq",
    )
    .bind(contact.as_str())
    .bind(channel)
    .bind(scope)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    if inserted.is_some() {
        return Ok(());
    }
    let owner = owner(&mut *conn, address).await?.unwrap_or_default();
    if owner == contact.as_str() {
        // Linked to this contact by a concurrent call: what was asked for holds.
        return Ok(());
    }
    Err(StoreError::conflict(format!(
        "address {address} is linked to contact {owner}"
    )))
}

/// Writes the tags and addresses of a contact whose row was just inserted.
async fn insert_parts(conn: &mut PgConnection, contact: &Contact) -> Result<(), StoreError> {
    let tags: Vec<&str> = contact.tags.iter().map(String::as_str).collect();
    if !tags.is_empty() {
        sqlx::query(
            "INSERT INTO contact_tags (contact_id, tag) SELECT $1, unnest($2::text[]) \
             ON CONFLICT DO NOTHING",
        )
        .bind(contact.id.as_str())
        .bind(&tags)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    }
    let mut seen = HashSet::new();
    for address in contact.addresses.iter().filter(|a| seen.insert(*a)) {
        link_in(conn, &contact.id, address).await?;
    }
    Ok(())
}

/// Writes a contact row with its tags and addresses (deduplicated, in order).
async fn insert_in(conn: &mut PgConnection, contact: &Contact) -> Result<(), StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO contacts (id, email, first_name, last_name, fields) \
         VALUES ($1, $2, $3, $4, $5::jsonb)",
    )
    .bind(contact.id.as_str())
    .bind(&contact.email)
    .bind(&contact.first_name)
    .bind(&contact.last_name)
    .bind(to_json("contact fields", &contact.fields)?)
    .execute(&mut *conn)
    .await;
    match inserted {
        Ok(_) => insert_parts(conn, contact).await,
        Err(e) if is_unique_violation(&e) => Err(StoreError::conflict(format!(
            "contact {} exists",
            contact.id
        ))),
        Err(e) => Err(db(e)),
    }
}

impl PgDirectory {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        PgDirectory { shared }
    }

    /// Stores `contact` under its own id, linking its addresses. Fails with a conflict if the
    /// id exists or an address is linked, and then stores nothing.
    pub async fn insert(&self, contact: &Contact) -> Result<(), StoreError> {
        self.insert_many(std::slice::from_ref(contact)).await
    }

    /// Stores every contact of `contacts` in one transaction: all of them, or (on a conflict)
    /// none. For seeding and imports; much faster than one [`insert`](Self::insert) each.
    pub async fn insert_many(&self, contacts: &[Contact]) -> Result<(), StoreError> {
        let mut tx = self.shared.begin().await?;
        for contact in contacts {
            insert_in(&mut tx, contact).await?;
        }
        tx.commit().await.map_err(db)
    }

    /// How many contacts are stored.
    pub async fn count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM contacts")
            .fetch_one(&self.shared.pool)
            .await
            .map_err(db)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[async_trait]
impl Directory for PgDirectory {
    async fn get(&self, id: &ContactId) -> Result<Option<Contact>, StoreError> {
        fetch(&self.shared.pool, id.as_str()).await
    }

    async fn find_by_address(&self, address: &Address) -> Result<Option<Contact>, StoreError> {
        let (channel, scope, id) = address_key(address);
        let row: Option<ContactRow> = sqlx::query_as(&format!(
            "SELECT {CONTACT_COLUMNS} FROM contact_addresses k JOIN contacts c ON c.id = k.contact_id \
             WHERE k.channel = $1 AND k.scope = $2 AND k.address = $3"
        ))
        .bind(channel)
        .bind(scope)
        .bind(id)
        .fetch_optional(&self.shared.pool)
        .await
        .map_err(db)?;
        row.map(contact_from_row).transpose()
    }

    async fn create(&self, new: NewContact) -> Result<Contact, StoreError> {
        let placeholder = ContactId::new("c0").map_err(StoreError::backend)?;
        let mut contact = new.into_contact(placeholder);
        let mut seen = HashSet::new();
        contact.addresses.retain(|a| seen.insert(a.clone()));
        let mut tx = self.shared.begin().await?;
        // The next number of the sequence whose id is free: a host's own `insert` may have
        // taken one. `ON CONFLICT DO NOTHING` makes the check and the insert one step.
        let id = loop {
            let id: Option<String> = sqlx::query_scalar(
                "INSERT INTO contacts (id, email, first_name, last_name, fields) \
                 VALUES ('c' || nextval('contact_ids'), $1, $2, $3, $4::jsonb) \
                 ON CONFLICT (id) DO NOTHING RETURNING id",
            )
            .bind(&contact.email)
            .bind(&contact.first_name)
            .bind(&contact.last_name)
            .bind(to_json("contact fields", &contact.fields)?)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
            if let Some(id) = id {
                break contact_id(id)?;
            }
        };
        contact.id = id;
        insert_parts(&mut tx, &contact).await?;
        tx.commit().await.map_err(db)?;
        Ok(contact)
    }

    async fn link(&self, id: &ContactId, address: &Address) -> Result<(), StoreError> {
        let mut tx = self.shared.begin().await?;
        // Locks the contact, so a merge or erasure of it waits for this link.
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM contacts WHERE id = $1 FOR SHARE")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
        if exists.is_none() {
            return Err(StoreError::not_found("contact", id.as_str()));
        }
        match owner(&mut *tx, address).await? {
            Some(owner) if owner == id.as_str() => return Ok(()),
            Some(owner) => {
                return Err(StoreError::conflict(format!(
                    "address {address} is linked to contact {owner}"
                )));
            }
            None => link_in(&mut tx, id, address).await?,
        }
        tx.commit().await.map_err(db)
    }

    async fn unlink(&self, address: &Address) -> Result<Option<ContactId>, StoreError> {
        let (channel, scope, id) = address_key(address);
        let owner: Option<String> = sqlx::query_scalar(
            "DELETE FROM contact_addresses WHERE channel = $1 AND scope = $2 AND address = $3 \
             RETURNING contact_id",
        )
        .bind(channel)
        .bind(scope)
        .bind(id)
        .fetch_optional(&self.shared.pool)
        .await
        .map_err(db)?;
        owner.map(contact_id).transpose()
    }

    async fn merge(&self, from: &ContactId, into: &ContactId) -> Result<Contact, StoreError> {
        if from == into {
            return Err(StoreError::conflict(format!(
                "cannot merge contact {from} into itself"
            )));
        }
        let mut tx = self.shared.begin().await?;
        // Both rows locked, in id order so that two merges of the same pair cannot deadlock.
        sqlx::query("SELECT id FROM contacts WHERE id = $1 OR id = $2 ORDER BY id FOR UPDATE")
            .bind(from.as_str())
            .bind(into.as_str())
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        let mut target = fetch(&mut *tx, into.as_str())
            .await?
            .ok_or_else(|| StoreError::not_found("contact", into.as_str()))?;
        let source = fetch(&mut *tx, from.as_str())
            .await?
            .ok_or_else(|| StoreError::not_found("contact", from.as_str()))?;
        let moved = source.addresses.clone();
        absorb(&mut target, source);
        // `from` goes first (its tags and addresses with it), then its addresses are linked
        // again to `into`, after `into`'s own, in their order.
        sqlx::query("DELETE FROM contacts WHERE id = $1")
            .bind(from.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query(
            "UPDATE contacts SET email = $1, first_name = $2, last_name = $3, fields = $4::jsonb \
             WHERE id = $5",
        )
        .bind(&target.email)
        .bind(&target.first_name)
        .bind(&target.last_name)
        .bind(to_json("contact fields", &target.fields)?)
        .bind(into.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let tags: Vec<&str> = target.tags.iter().map(String::as_str).collect();
        sqlx::query(
            "INSERT INTO contact_tags (contact_id, tag) SELECT $1, unnest($2::text[]) \
             ON CONFLICT DO NOTHING",
        )
        .bind(into.as_str())
        .bind(&tags)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        for address in &moved {
            link_in(&mut tx, into, address).await?;
        }
        let merged = fetch(&mut *tx, into.as_str())
            .await?
            .ok_or_else(|| StoreError::not_found("contact", into.as_str()))?;
        tx.commit().await.map_err(db)?;
        Ok(merged)
    }

    async fn forget_contact(&self, id: &ContactId) -> Result<Option<Contact>, StoreError> {
        let mut tx = self.shared.begin().await?;
        let locked: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM contacts WHERE id = $1 FOR UPDATE")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
        if locked.is_none() {
            return Ok(None);
        }
        let Some(contact) = fetch(&mut *tx, id.as_str()).await? else {
            return Ok(None);
        };
        // Its addresses and tags go with it (ON DELETE CASCADE).
        sqlx::query("DELETE FROM contacts WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(Some(contact))
    }
}

#[async_trait]
impl SegmentQuery for PgDirectory {
    async fn page(
        &self,
        segment: &Segment,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<SegmentPage, StoreError> {
        if limit == 0 {
            return Err(StoreError::invalid("page limit must be at least 1"));
        }
        let after = after.map(segment::cursor_id).transpose()?;
        let now = self.shared.clock.now();
        // $1 is the cursor; the filter's parameters follow; the limit comes last.
        let filter = segment::translate(segment, now, Dialect::Postgres, 2)?;
        let sql = format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts c WHERE c.id > $1 AND ({}) \
             ORDER BY c.id LIMIT ${}",
            filter.sql,
            filter.binds.len() + 2
        );
        let mut query = sqlx::query_as::<_, ContactRow>(&sql).bind(after.unwrap_or_default());
        for value in filter.binds {
            query = match value {
                Bind::Text(s) => query.bind(s),
                Bind::Int(i) => query.bind(i),
                Bind::Real(r) => query.bind(r),
            };
        }
        let fetch = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
        let rows = query
            .bind(fetch)
            .fetch_all(&self.shared.pool)
            .await
            .map_err(db)?;
        let more = rows.len() > limit;
        let contacts = rows
            .into_iter()
            .take(limit)
            .map(contact_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next = match contacts.last() {
            Some(last) if more => Some(segment::cursor_after(&last.id)),
            _ => None,
        };
        Ok(SegmentPage::new(contacts, next))
    }

    fn check(&self, segment: &Segment) -> Result<(), StoreError> {
        segment::translate(segment, self.shared.clock.now(), Dialect::Postgres, 2).map(|_| ())
    }

    async fn count(&self, segment: &Segment) -> Result<Option<u64>, StoreError> {
        let filter = segment::translate(segment, self.shared.clock.now(), Dialect::Postgres, 1)?;
        let sql = format!("SELECT count(*) FROM contacts c WHERE {}", filter.sql);
        let mut query = sqlx::query_scalar::<_, i64>(&sql);
        for value in filter.binds {
            query = match value {
                Bind::Text(s) => query.bind(s),
                Bind::Int(i) => query.bind(i),
                Bind::Real(r) => query.bind(r),
            };
        }
        let n = query.fetch_one(&self.shared.pool).await.map_err(db)?;
        Ok(Some(u64::try_from(n).unwrap_or(0)))
    }
}
