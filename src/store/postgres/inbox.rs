use std::{fmt, sync::Arc};

use async_trait::async_trait;

use super::{
    Shared,
    codec::{EntryRow, count, entry_from, entry_id, rank, to_json},
    error::db,
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

/// Conversations in PostgreSQL: an [`Inbox`].
///
/// Partial unique indexes on (channel, message id) and (channel, event key) of incoming
/// entries make recording a redelivered message a no-op in the database, whichever app
/// instance records it. Each delivery record's status is a row of its own, moved forward by
/// one conditional `UPDATE`, so a late receipt never moves a status back.
#[derive(Clone)]
pub struct PgInbox {
    shared: Arc<Shared>,
}

impl fmt::Debug for PgInbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgInbox")
            .field("location", &self.shared.location)
            .finish()
    }
}

/// The columns an entry is read from, for `FROM inbox_entries e`, in [`EntryRow`]'s order
/// (the count excepted): seq, contact, time, content, delivery statuses, annotations (those of
/// its contact that target its message id, or one of the ids it was sent under).
const ENTRY_COLUMNS: &str = "e.seq, e.contact_id, e.at, e.content, \
     (SELECT coalesce(json_agg(d.status ORDER BY d.position), '[]')::text \
        FROM inbox_deliveries d WHERE d.entry_seq = e.seq), \
     (SELECT coalesce(json_agg(a.content::json ORDER BY a.at, a.seq), '[]')::text \
        FROM inbox_annotations a WHERE a.contact_id = e.contact_id AND ( \
          (e.incoming AND a.channel = e.channel AND a.message_id = e.message_id) \
          OR (NOT e.incoming AND EXISTS (SELECT 1 FROM inbox_message_ids i \
                WHERE i.entry_seq = e.seq AND i.channel = a.channel \
                  AND i.message_id = a.message_id))))";

impl PgInbox {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        PgInbox { shared }
    }
}

#[async_trait]
impl Inbox for PgInbox {
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
        loop {
            // `DO NOTHING` without a target covers both unique indexes; a concurrent insert
            // of the same message waits for the other transaction and then does nothing.
            let inserted: Option<i64> = sqlx::query_scalar(
                "INSERT INTO inbox_entries (contact_id, at, incoming, channel, message_id, event_key, content) \
                 VALUES ($1, $2, TRUE, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING seq",
            )
            .bind(contact.as_str())
            .bind(at.as_millis())
            .bind(&channel)
            .bind(&message_id)
            .bind(&event_key)
            .bind(&content)
            .fetch_optional(&self.shared.pool)
            .await
            .map_err(db)?;
            if let Some(seq) = inserted {
                return entry_id(seq);
            }
            // The entry it repeats: by message id first, as the constraints are checked.
            let existing: Option<i64> = sqlx::query_scalar(
                "SELECT seq FROM inbox_entries \
                 WHERE incoming AND channel = $1 AND (message_id = $2 OR event_key = $3) \
                 ORDER BY (message_id IS NOT DISTINCT FROM $2) DESC LIMIT 1",
            )
            .bind(&channel)
            .bind(&message_id)
            .bind(&event_key)
            .fetch_optional(&self.shared.pool)
            .await
            .map_err(db)?;
            if let Some(seq) = existing {
                return entry_id(seq);
            }
            // Erased between the two statements: record it again.
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
            "INSERT INTO inbox_entries (contact_id, at, incoming, content) \
             VALUES ($1, $2, FALSE, $3) RETURNING seq",
        )
        .bind(contact.as_str())
        .bind(at.as_millis())
        .bind(&content)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        for (position, delivery) in (0_i32..).zip(&deliveries) {
            let channel = delivery.channel.to_string();
            sqlx::query(
                "INSERT INTO inbox_deliveries (entry_seq, position, contact_id, at, channel, status) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(seq)
            .bind(position)
            .bind(contact.as_str())
            .bind(at.as_millis())
            .bind(&channel)
            .bind(i16::try_from(rank(delivery.status)).unwrap_or(0))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            if !delivery.message_ids.is_empty() {
                sqlx::query(
                    "INSERT INTO inbox_message_ids (channel, message_id, entry_seq, position) \
                     SELECT $1, unnest($2::text[]), $3, $4 ON CONFLICT DO NOTHING",
                )
                .bind(&channel)
                .bind(&delivery.message_ids)
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
                    "UPDATE inbox_deliveries SET status = $1 \
                     WHERE status < $1 AND (entry_seq, position) IN \
                       (SELECT entry_seq, position FROM inbox_message_ids \
                        WHERE channel = $2 AND message_id = $3)",
                )
                .bind(i16::try_from(rank(*status)).unwrap_or(0))
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
                    "UPDATE inbox_deliveries SET status = $1 \
                     WHERE contact_id = $2 AND channel = $3 AND at <= $4 AND status < $1 \
                       AND status < 2",
                )
                .bind(i16::try_from(rank(*status)).unwrap_or(0))
                .bind(contact.as_str())
                .bind(channel.to_string())
                .bind(watermark.as_millis())
                .execute(&self.shared.pool)
                .await
                .map_err(db)?
            }
        };
        Ok(count(done.rows_affected()))
    }

    async fn reassign(&self, from: &ContactId, into: &ContactId) -> Result<usize, StoreError> {
        if from == into {
            return Ok(0);
        }
        let (into, from) = (into.as_str(), from.as_str());
        let mut tx = self.shared.begin().await?;
        let moved = sqlx::query("UPDATE inbox_entries SET contact_id = $1 WHERE contact_id = $2")
            .bind(into)
            .bind(from)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        for sql in [
            "UPDATE inbox_deliveries SET contact_id = $1 WHERE contact_id = $2",
            // The merged conversation keeps the later read mark.
            "INSERT INTO inbox_read_marks (contact_id, up_to) \
             SELECT $1, up_to FROM inbox_read_marks WHERE contact_id = $2 \
             ON CONFLICT (contact_id) DO UPDATE \
               SET up_to = GREATEST(inbox_read_marks.up_to, excluded.up_to)",
            "UPDATE inbox_annotations SET contact_id = $1 WHERE contact_id = $2",
        ] {
            sqlx::query(sql)
                .bind(into)
                .bind(from)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        sqlx::query("DELETE FROM inbox_read_marks WHERE contact_id = $1")
            .bind(from)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(count(moved))
    }

    async fn conversation(
        &self,
        contact: &ContactId,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let rows: Vec<EntryRow> = sqlx::query_as(&format!(
            "SELECT {ENTRY_COLUMNS}, 0::int8 FROM inbox_entries e WHERE e.contact_id = $1 \
             ORDER BY e.at DESC, e.seq DESC LIMIT $2"
        ))
        .bind(contact.as_str())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.shared.pool)
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
        let done = sqlx::query("DELETE FROM inbox_entries WHERE contact_id = $1")
            .bind(contact.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        for sql in [
            "DELETE FROM inbox_read_marks WHERE contact_id = $1",
            "DELETE FROM inbox_annotations WHERE contact_id = $1",
        ] {
            sqlx::query(sql)
                .bind(contact.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(count(done))
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
                  AND u.incoming AND u.at > coalesce( \
                    (SELECT m.up_to FROM inbox_read_marks m WHERE m.contact_id = e.contact_id), \
                    -9223372036854775808)) \
             FROM inbox_entries e \
             WHERE e.seq = (SELECT x.seq FROM inbox_entries x WHERE x.contact_id = e.contact_id \
                            ORDER BY x.at DESC, x.seq DESC LIMIT 1) \
               AND (e.at, e.contact_id) < ($1, $2) \
             ORDER BY e.at DESC, e.contact_id DESC LIMIT $3"
        ))
        .bind(at)
        .bind(contact)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1))
        .fetch_all(&self.shared.pool)
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
            "INSERT INTO inbox_read_marks (contact_id, up_to) VALUES ($1, $2) \
             ON CONFLICT (contact_id) DO UPDATE \
               SET up_to = GREATEST(inbox_read_marks.up_to, excluded.up_to)",
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
        // A redelivered event (same channel and event key) adds nothing.
        sqlx::query(
            "INSERT INTO inbox_annotations (contact_id, channel, message_id, at, event_key, content) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(contact.as_str())
        .bind(&channel)
        .bind(&annotation.message_id)
        .bind(annotation.at.as_millis())
        .bind(annotation.event_key.as_deref())
        .bind(&content)
        .execute(&self.shared.pool)
        .await
        .map_err(db)?;
        let target: Option<i64> = sqlx::query_scalar(
            "SELECT seq FROM inbox_entries \
               WHERE incoming AND channel = $1 AND message_id = $2 AND contact_id = $3 \
             UNION ALL \
             SELECT e.seq FROM inbox_message_ids i JOIN inbox_entries e ON e.seq = i.entry_seq \
               WHERE i.channel = $1 AND i.message_id = $2 AND e.contact_id = $3 \
             LIMIT 1",
        )
        .bind(&channel)
        .bind(&annotation.message_id)
        .bind(contact.as_str())
        .fetch_optional(&self.shared.pool)
        .await
        .map_err(db)?;
        target.map(entry_id).transpose()
    }
}
