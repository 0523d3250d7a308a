use std::{fmt, sync::Arc};

use async_trait::async_trait;

use super::{
    Shared,
    batch::{Done, Value, Write},
    codec::{EntryRow, entry_from, entry_id, rank, to_json},
    error::db,
    run,
};
use crate::{
    clock::Timestamp,
    contact::ContactId,
    error::StoreError,
    inbox::{
        Annotation, ConversationCursor, ConversationPage, ConversationSummary, Entry, EntryContent,
        EntryId, Inbox, Incoming, Outgoing, StatusUpdate,
    },
};

/// Conversations in SQLite: an [`Inbox`].
///
/// A partial unique index on (channel, message id) of incoming entries makes recording a
/// redelivered message a no-op in the database, whichever task or process records it. Each
/// delivery record's status is a row of its own, moved forward by one conditional `UPDATE`, so
/// a late receipt never moves a status back.
#[derive(Clone)]
pub struct SqliteInbox {
    shared: Arc<Shared>,
}

impl fmt::Debug for SqliteInbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteInbox")
            .field("location", &self.shared.location)
            .finish()
    }
}

/// Records an incoming entry unless one with its (channel, message id) or its (channel, event
/// key) exists: `DO NOTHING` without a target covers both unique indexes.
pub(super) const INSERT_INCOMING: &str = "INSERT INTO inbox_entries (contact_id, at, incoming, channel, message_id, event_key, content) \
     VALUES (?, ?, 1, ?, ?, ?, ?) \
     ON CONFLICT DO NOTHING \
     RETURNING seq";

/// The columns an entry is read from, for `FROM inbox_entries e`: seq, contact, time, content,
/// delivery statuses, annotations (those of its contact that target its message id, or one
/// of the ids it was sent under).
const ENTRY_COLUMNS: &str = "e.seq, e.contact_id, e.at, e.content, \
     (SELECT json_group_array(d.status ORDER BY d.position) \
        FROM inbox_deliveries d WHERE d.entry_seq = e.seq), \
     (SELECT json_group_array(json(a.content) ORDER BY a.at, a.seq) \
        FROM inbox_annotations a WHERE a.contact_id = e.contact_id AND ( \
          (e.incoming = 1 AND a.channel = e.channel AND a.message_id = e.message_id) \
          OR (e.incoming = 0 AND EXISTS (SELECT 1 FROM inbox_message_ids i \
                WHERE i.entry_seq = e.seq AND i.channel = a.channel \
                  AND i.message_id = a.message_id))))";

impl SqliteInbox {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        SqliteInbox { shared }
    }
}

#[async_trait]
impl Inbox for SqliteInbox {
    async fn record_incoming(
        &self,
        contact: &ContactId,
        at: Timestamp,
        entry: Incoming,
    ) -> Result<EntryId, StoreError> {
        let channel = entry.channel.to_string();
        let message_id = entry.message_id.clone();
        let event_key = entry.event_key.clone();
        let content = to_json("inbox entry", &EntryContent::Incoming(entry))?;
        let done = self
            .shared
            .write(Write::Incoming {
                binds: vec![
                    Value::Text(contact.to_string()),
                    Value::Int(at.as_millis()),
                    Value::Text(channel.clone()),
                    Value::OptText(message_id.clone()),
                    Value::OptText(event_key.clone()),
                    Value::Text(content),
                ],
                channel,
                message_id,
                event_key,
            })
            .await?;
        match done {
            Done::Seq(seq) => entry_id(seq),
            Done::Rows(_) => Err(StoreError::backend("an incoming entry replied with rows")),
        }
    }

    async fn record_outgoing(
        &self,
        contact: &ContactId,
        at: Timestamp,
        entry: Outgoing,
    ) -> Result<EntryId, StoreError> {
        let deliveries = entry.deliveries.clone();
        let content = to_json("inbox entry", &EntryContent::Outgoing(entry))?;
        let mut tx = self.shared.begin().await?;
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO inbox_entries (contact_id, at, incoming, content) VALUES (?, ?, 0, ?) \
             RETURNING seq",
        )
        .bind(contact.as_str())
        .bind(at.as_millis())
        .bind(&content)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        for (position, delivery) in (0_i64..).zip(&deliveries) {
            let channel = delivery.channel.to_string();
            sqlx::query(
                "INSERT INTO inbox_deliveries (entry_seq, position, contact_id, at, channel, status) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(seq)
            .bind(position)
            .bind(contact.as_str())
            .bind(at.as_millis())
            .bind(&channel)
            .bind(rank(delivery.status))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            for message_id in &delivery.message_ids {
                sqlx::query(
                    "INSERT OR IGNORE INTO inbox_message_ids (channel, message_id, entry_seq, position) \
                     VALUES (?, ?, ?, ?)",
                )
                .bind(&channel)
                .bind(message_id)
                .bind(seq)
                .bind(position)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            }
        }
        tx.commit().await.map_err(db)?;
        entry_id(seq)
    }

    async fn update_status(&self, update: &StatusUpdate) -> Result<usize, StoreError> {
        let done = match update {
            StatusUpdate::Message {
                channel,
                message_id,
                status,
            } => {
                if !status.was_sent() {
                    return Ok(0);
                }
                sqlx::query(
                    "UPDATE inbox_deliveries SET status = ?1 \
                     WHERE status < ?1 AND (entry_seq, position) IN \
                       (SELECT entry_seq, position FROM inbox_message_ids \
                        WHERE channel = ?2 AND message_id = ?3)",
                )
                .bind(rank(*status))
                .bind(channel.to_string())
                .bind(message_id)
                .execute(&self.shared.pool)
                .await
                .map_err(db)?
            }
            StatusUpdate::UpTo {
                contact,
                channel,
                watermark,
                status,
            } => {
                if !status.was_sent() {
                    return Ok(0);
                }
                sqlx::query(
                    "UPDATE inbox_deliveries SET status = ?1 \
                     WHERE contact_id = ?2 AND channel = ?3 AND at <= ?4 AND status < ?1 \
                       AND status < 2",
                )
                .bind(rank(*status))
                .bind(contact.as_str())
                .bind(channel.to_string())
                .bind(watermark.as_millis())
                .execute(&self.shared.pool)
                .await
                .map_err(db)?
            }
        };
        Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
    }

    async fn reassign(&self, from: &ContactId, into: &ContactId) -> Result<usize, StoreError> {
        if from == into {
            return Ok(0);
        }
        let (into, from) = (into.as_str(), from.as_str());
        let mut tx = self.shared.begin().await?;
        let moved = run(
            &mut tx,
            "UPDATE inbox_entries SET contact_id = ? WHERE contact_id = ?",
            &[into, from],
        )
        .await?;
        run(
            &mut tx,
            "UPDATE inbox_deliveries SET contact_id = ? WHERE contact_id = ?",
            &[into, from],
        )
        .await?;
        // The merged conversation keeps the later read mark.
        run(
            &mut tx,
            "INSERT INTO inbox_read_marks (contact_id, up_to) \
             SELECT ?, up_to FROM inbox_read_marks WHERE contact_id = ? \
             ON CONFLICT (contact_id) DO UPDATE SET up_to = max(up_to, excluded.up_to)",
            &[into, from],
        )
        .await?;
        run(
            &mut tx,
            "DELETE FROM inbox_read_marks WHERE contact_id = ?",
            &[from],
        )
        .await?;
        run(
            &mut tx,
            "UPDATE inbox_annotations SET contact_id = ? WHERE contact_id = ?",
            &[into, from],
        )
        .await?;
        tx.commit().await.map_err(db)?;
        Ok(usize::try_from(moved).unwrap_or(usize::MAX))
    }

    async fn conversation(
        &self,
        contact: &ContactId,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let rows: Vec<EntryRow> = sqlx::query_as(&format!(
            "SELECT {ENTRY_COLUMNS}, 0 FROM inbox_entries e WHERE e.contact_id = ? \
             ORDER BY e.at DESC, e.seq DESC LIMIT ?"
        ))
        .bind(contact.as_str())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.shared.reader)
        .await
        .map_err(db)?;
        let mut entries = rows
            .into_iter()
            .map(entry_from)
            .collect::<Result<Vec<_>, StoreError>>()?;
        entries.reverse();
        Ok(entries)
    }

    async fn forget_contact(&self, contact: &ContactId) -> Result<usize, StoreError> {
        // The entries' delivery rows and message-id rows go with them (ON DELETE CASCADE).
        let mut tx = self.shared.begin().await?;
        let done = run(
            &mut tx,
            "DELETE FROM inbox_entries WHERE contact_id = ?",
            &[contact.as_str()],
        )
        .await?;
        for table in ["inbox_read_marks", "inbox_annotations"] {
            run(
                &mut tx,
                &format!("DELETE FROM {table} WHERE contact_id = ?"),
                &[contact.as_str()],
            )
            .await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(usize::try_from(done).unwrap_or(usize::MAX))
    }

    async fn conversations(
        &self,
        after: Option<&ConversationCursor>,
        limit: usize,
    ) -> Result<ConversationPage, StoreError> {
        if limit == 0 {
            return Err(StoreError::invalid("page limit must be at least 1"));
        }
        let after = after
            .map(|c| ConversationCursor::parse(c.as_str()))
            .transpose()?;
        let (at, contact) = match &after {
            Some((at, contact)) => (at.as_millis(), contact.as_str()),
            None => (i64::MAX, ""),
        };
        // The newest entry of each conversation, by keyset on (its time, contact) descending.
        let rows: Vec<EntryRow> = sqlx::query_as(&format!(
            "SELECT {ENTRY_COLUMNS}, \
               (SELECT COUNT(*) FROM inbox_entries u WHERE u.contact_id = e.contact_id \
                  AND u.incoming = 1 AND u.at > coalesce( \
                    (SELECT m.up_to FROM inbox_read_marks m WHERE m.contact_id = e.contact_id), \
                    -9223372036854775808)) \
             FROM inbox_entries e \
             WHERE e.seq = (SELECT x.seq FROM inbox_entries x WHERE x.contact_id = e.contact_id \
                            ORDER BY x.at DESC, x.seq DESC LIMIT 1) \
               AND (e.at, e.contact_id) < (?1, ?2) \
             ORDER BY e.at DESC, e.contact_id DESC LIMIT ?3"
        ))
        .bind(at)
        .bind(contact)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1))
        .fetch_all(&self.shared.reader)
        .await
        .map_err(db)?;
        let more = rows.len() > limit;
        let conversations = rows
            .into_iter()
            .take(limit)
            .map(|row| {
                let unread = u64::try_from(row.6).unwrap_or(0);
                let entry = entry_from(row)?;
                Ok(ConversationSummary::new(
                    entry.contact.clone(),
                    entry,
                    unread,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let next = match conversations.last() {
            Some(last) if more => Some(last.cursor()),
            _ => None,
        };
        Ok(ConversationPage::new(conversations, next))
    }

    async fn mark_read(&self, contact: &ContactId, up_to: Timestamp) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO inbox_read_marks (contact_id, up_to) VALUES (?, ?) \
             ON CONFLICT (contact_id) DO UPDATE SET up_to = max(up_to, excluded.up_to)",
        )
        .bind(contact.as_str())
        .bind(up_to.as_millis())
        .execute(&self.shared.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn annotate(
        &self,
        contact: &ContactId,
        annotation: Annotation,
    ) -> Result<Option<EntryId>, StoreError> {
        let channel = annotation.channel.to_string();
        let content = to_json("annotation", &annotation)?;
        let mut tx = self.shared.begin().await?;
        // A redelivered event (same channel and event key) adds nothing.
        sqlx::query(
            "INSERT INTO inbox_annotations (contact_id, channel, message_id, at, event_key, content) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(contact.as_str())
        .bind(&channel)
        .bind(&annotation.message_id)
        .bind(annotation.at.as_millis())
        .bind(annotation.event_key.as_deref())
        .bind(&content)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let target: Option<i64> = sqlx::query_scalar(
            "SELECT seq FROM inbox_entries \
               WHERE incoming = 1 AND channel = ?1 AND message_id = ?2 AND contact_id = ?3 \
             UNION ALL \
             SELECT e.seq FROM inbox_message_ids i JOIN inbox_entries e ON e.seq = i.entry_seq \
               WHERE i.channel = ?1 AND i.message_id = ?2 AND e.contact_id = ?3 \
             LIMIT 1",
        )
        .bind(&channel)
        .bind(&annotation.message_id)
        .bind(contact.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        target.map(entry_id).transpose()
    }
}
