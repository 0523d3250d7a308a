use std::{collections::HashSet, fmt, sync::Arc};

use async_trait::async_trait;
use sqlx::{SqliteConnection, SqliteExecutor};

use super::{
    Shared,
    codec::{ContactRow, address_key, contact_from_row, to_json},
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
const CONTACT_COLUMNS: &str = "c.id, c.email, c.first_name, c.last_name, c.fields, \
     (SELECT json_group_array(json_array(a.channel, a.scope, a.address) ORDER BY a.seq) \
        FROM contact_addresses a WHERE a.contact_id = c.id), \
     (SELECT json_group_array(t.tag ORDER BY t.tag) FROM contact_tags t WHERE t.contact_id = c.id)";

/// Contacts in SQLite: a [`Directory`] and a [`SegmentQuery`] over them.
///
/// Ids the store assigns are `c1`, `c2`, ... (skipping ids a host inserted itself with
/// [`insert`](SqliteDirectory::insert)). Segment pages follow contact-id order and are read by
/// keyset (`id > cursor`), so reading page n costs the same as reading page 1. Segment
/// conditions become SQL with bound parameters; `active_within` reads the last-inbound table of
/// the same database at the stores' clock ([`SqliteOptions::clock`](super::SqliteOptions::clock)).
#[derive(Clone)]
pub struct SqliteDirectory {
    shared: Arc<Shared>,
}

impl fmt::Debug for SqliteDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteDirectory")
            .field("location", &self.shared.location)
            .finish()
    }
}

/// Fetches one contact by id.
pub(super) async fn fetch(
    executor: impl SqliteExecutor<'_>,
    id: &str,
) -> Result<Option<Contact>, StoreError> {
    let row: Option<ContactRow> = sqlx::query_as(&format!(
        "SELECT {CONTACT_COLUMNS} FROM contacts c WHERE c.id = ?"
    ))
    .bind(id)
    .fetch_optional(executor)
    .await
    .map_err(db)?;
    row.map(contact_from_row).transpose()
}

/// The contact `address` is linked to, as an id.
async fn owner(
    executor: impl SqliteExecutor<'_>,
    address: &Address,
) -> Result<Option<String>, StoreError> {
    let (channel, scope, id) = address_key(address);
    sqlx::query_scalar(
        "SELECT contact_id FROM contact_addresses WHERE channel = ? AND scope = ? AND address = ?",
    )
    .bind(channel)
    .bind(scope)
    .bind(id)
    .fetch_optional(executor)
    .await
    .map_err(db)
}

/// Links `address` to `contact` inside a transaction; a conflict names the owner.
async fn link_in(
    conn: &mut SqliteConnection,
    contact: &ContactId,
    address: &Address,
) -> Result<(), StoreError> {
    let (channel, scope, id) = address_key(address);
    let inserted = sqlx::query(
        "INSERT INTO contact_addresses (contact_id, channel, scope, address) VALUES (?, ?, ?, ?)",
    )
    .bind(contact.as_str())
    .bind(channel)
    .bind(scope)
    .bind(id)
    .execute(&mut *conn)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => {
            let owner = owner(&mut *conn, address).await?.unwrap_or_default();
            Err(StoreError::conflict(format!(
                "address {address} is linked to contact {owner}"
            )))
        }
        Err(e) => Err(db(e)),
    }
}

/// Writes a contact row with its tags and addresses (deduplicated, in order).
async fn insert_in(conn: &mut SqliteConnection, contact: &Contact) -> Result<(), StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO contacts (id, email, first_name, last_name, fields) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(contact.id.as_str())
    .bind(&contact.email)
    .bind(&contact.first_name)
    .bind(&contact.last_name)
    .bind(to_json("contact fields", &contact.fields)?)
    .execute(&mut *conn)
    .await;
    match inserted {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::conflict(format!(
                "contact {} exists",
                contact.id
            )));
        }
        Err(e) => return Err(db(e)),
    }
    for tag in &contact.tags {
        sqlx::query("INSERT INTO contact_tags (contact_id, tag) VALUES (?, ?)")
            .bind(contact.id.as_str())
            .bind(tag)
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

/// The next free store-assigned id (`c<n>`), inside a write transaction.
async fn next_id(conn: &mut SqliteConnection) -> Result<ContactId, StoreError> {
    let mut n: i64 = sqlx::query_scalar("SELECT value FROM id_counters WHERE name = 'contact'")
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?
        .unwrap_or(0);
    loop {
        n += 1;
        let candidate = format!("c{n}");
        let taken: Option<i64> = sqlx::query_scalar("SELECT 1 FROM contacts WHERE id = ?")
            .bind(&candidate)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?;
        if taken.is_none() {
            sqlx::query(
                "INSERT INTO id_counters (name, value) VALUES ('contact', ?) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )
            .bind(n)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            return ContactId::new(candidate).map_err(StoreError::backend);
        }
    }
}

impl SqliteDirectory {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        SqliteDirectory { shared }
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
            .fetch_one(&self.shared.reader)
            .await
            .map_err(db)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[async_trait]
impl Directory for SqliteDirectory {
    async fn get(&self, id: &ContactId) -> Result<Option<Contact>, StoreError> {
        fetch(&self.shared.reader, id.as_str()).await
    }

    async fn find_by_address(&self, address: &Address) -> Result<Option<Contact>, StoreError> {
        let (channel, scope, id) = address_key(address);
        let row: Option<ContactRow> = sqlx::query_as(&format!(
            "SELECT {CONTACT_COLUMNS} FROM contact_addresses k JOIN contacts c ON c.id = k.contact_id \
             WHERE k.channel = ? AND k.scope = ? AND k.address = ?"
        ))
        .bind(channel)
        .bind(scope)
        .bind(id)
        .fetch_optional(&self.shared.reader)
        .await
        .map_err(db)?;
        row.map(contact_from_row).transpose()
    }

    async fn create(&self, new: NewContact) -> Result<Contact, StoreError> {
        let mut tx = self.shared.begin().await?;
        let id = next_id(&mut tx).await?;
        let mut contact = new.into_contact(id);
        let mut seen = HashSet::new();
        contact.addresses.retain(|a| seen.insert(a.clone()));
        insert_in(&mut tx, &contact).await?;
        tx.commit().await.map_err(db)?;
        Ok(contact)
    }

    async fn link(&self, id: &ContactId, address: &Address) -> Result<(), StoreError> {
        let mut tx = self.shared.begin().await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM contacts WHERE id = ?")
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
            "DELETE FROM contact_addresses WHERE channel = ? AND scope = ? AND address = ? \
             RETURNING contact_id",
        )
        .bind(channel)
        .bind(scope)
        .bind(id)
        .fetch_optional(&self.shared.pool)
        .await
        .map_err(db)?;
        owner.map(super::codec::contact_id).transpose()
    }

    async fn merge(&self, from: &ContactId, into: &ContactId) -> Result<Contact, StoreError> {
        if from == into {
            return Err(StoreError::conflict(format!(
                "cannot merge contact {from} into itself"
            )));
        }
        let mut tx = self.shared.begin().await?;
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
        sqlx::query("DELETE FROM contacts WHERE id = ?")
            .bind(from.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query(
            "UPDATE contacts SET email = ?, first_name = ?, last_name = ?, fields = ? WHERE id = ?",
        )
        .bind(&target.email)
        .bind(&target.first_name)
        .bind(&target.last_name)
        .bind(to_json("contact fields", &target.fields)?)
        .bind(into.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        for tag in &target.tags {
            sqlx::query("INSERT OR IGNORE INTO contact_tags (contact_id, tag) VALUES (?, ?)")
                .bind(into.as_str())
                .bind(tag)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
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
        let Some(contact) = fetch(&mut *tx, id.as_str()).await? else {
            return Ok(None);
        };
        // Its addresses and tags go with it (ON DELETE CASCADE).
        sqlx::query("DELETE FROM contacts WHERE id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(Some(contact))
    }
}

#[async_trait]
impl SegmentQuery for SqliteDirectory {
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
        let filter = segment::translate(segment, now, Dialect::Sqlite, 2)?;
        let sql = format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts c WHERE c.id > ? AND ({}) ORDER BY c.id LIMIT ?",
            filter.sql
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
            .fetch_all(&self.shared.reader)
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
        segment::translate(segment, self.shared.clock.now(), Dialect::Sqlite, 2).map(|_| ())
    }

    async fn count(&self, segment: &Segment) -> Result<Option<u64>, StoreError> {
        let filter = segment::translate(segment, self.shared.clock.now(), Dialect::Sqlite, 1)?;
        let sql = format!("SELECT count(*) FROM contacts c WHERE {}", filter.sql);
        let mut query = sqlx::query_scalar::<_, i64>(&sql);
        for value in filter.binds {
            query = match value {
                Bind::Text(s) => query.bind(s),
                Bind::Int(i) => query.bind(i),
                Bind::Real(r) => query.bind(r),
            };
        }
        let n = query.fetch_one(&self.shared.reader).await.map_err(db)?;
        Ok(Some(u64::try_from(n).unwrap_or(0)))
    }
}
