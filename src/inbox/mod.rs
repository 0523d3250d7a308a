//! The support inbox: every conversation with a contact, as entries in order.
//!
//! Incoming entries are what a contact wrote through any transport; outgoing entries are what
//! agents (or the platform) sent, with one [`DeliveryRecord`] per transport tried, so that the
//! inbox can show which transport delivered each message and how far it got (sent, delivered,
//! read) or why it did not (refused, failed).
//!
//! [`Support`] ([`support`]) is the agent-facing service: which transports reach a contact, and
//! replies through the ones an agent ticks.
//!
//! [`Inbox`] is the seam: the host usually already has a support inbox and implements it over
//! its own tables; `store::memory::MemoryInbox` is the reference implementation.
//!
//! # Contract
//!
//! - Recording an incoming entry whose `(channel, message_id)` is already recorded returns the
//!   existing entry's id and stores nothing new, so a redelivered webhook never duplicates a
//!   message. The same holds for `(channel, event_key)`, the key of the inbound event the
//!   entry records: an event without a transport message id (most Messenger postbacks) that
//!   is routed again after a crash is recorded once too.
//! - A conversation is ordered by the transport's timestamp (then by recording order), not by
//!   arrival, so events that arrive out of order still read in order.
//! - [`Inbox::reassign`] moves a whole conversation to another contact, merged into its
//!   conversation in transport-time order.
//! - Delivery statuses only move forward: `Sent` → `Delivered` → `Read`. A late delivery
//!   receipt never turns a read message back into a delivered one; refused and failed records
//!   are final.
//! - [`Inbox::forget_contact`] removes every entry of the contact's conversation with
//!   everything recorded about it (delivery records, the transport message ids that status
//!   updates and de-duplication look up) and returns how many entries went: afterwards the
//!   conversation is empty, a status update naming one of its message ids moves nothing, and
//!   a redelivery of one of its incoming messages is recorded as new. Other conversations are
//!   untouched; a contact with no entries gives 0 (its read mark goes too).
//! - [`Inbox::conversations`] lists conversations newest activity first (the time of each
//!   one's newest entry, then contact id, both descending), page by page with an opaque
//!   [`ConversationCursor`]: following `next` from the first page lists each conversation
//!   once, provided none changes meanwhile. Each comes with its newest entry and its unread
//!   count: the incoming entries later than the agents' read mark.
//! - [`Inbox::annotate`] records a reaction or an edit on the entry it targets, by the
//!   transport's message id ([`annotation`]): every entry an inbox returns carries the
//!   annotations of its contact that target it, in time order. One recorded before its target
//!   shows once the target is recorded; a redelivered one (same `(channel, event_key)`) adds
//!   nothing; [`Inbox::reassign`] moves them with the conversation and
//!   [`Inbox::forget_contact`] removes them.
//! - [`Inbox::mark_read`] moves a conversation's read mark forward to `up_to` (never back);
//!   without a mark every incoming entry is unread. [`Inbox::reassign`] keeps the later of the
//!   two marks.

use async_trait::async_trait;

pub mod annotation;
pub mod support;

pub use annotation::{Annotation, Change, Edit, Reaction};
use serde::{Deserialize, Serialize};
pub use support::{
    MAX_REPLY_CHOICES, Reply, ReplyReport, Support, SupportBuilder, SupportError, TransportOption,
};

use crate::{
    clock::Timestamp,
    contact::{Channel, ContactId},
    error::StoreError,
    message::{Attachment, Message},
};

string_id!(
    /// The inbox's id of an entry, assigned by the store.
    EntryId,
    "entry"
);

/// What a contact wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Incoming {
    /// The channel it came by.
    pub channel: Channel,
    /// The transport's id of the message, if it has one.
    #[serde(default)]
    pub message_id: Option<String>,
    /// The text, if any.
    #[serde(default)]
    pub text: Option<String>,
    /// Attachments, as references.
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// The payload of the choice the contact picked, when the message is an answer.
    #[serde(default)]
    pub choice: Option<String>,
    /// The key of the inbound event this entry records ([`Inbound::key`]), when it records
    /// one: the entry is recorded once per key, like once per message id.
    ///
    /// [`Inbound::key`]: crate::message::Inbound::key
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_key: Option<String>,
}

impl Incoming {
    /// An incoming entry on `channel` with nothing in it yet.
    pub fn new(channel: Channel) -> Self {
        Incoming {
            channel,
            message_id: None,
            text: None,
            attachments: Vec::new(),
            choice: None,
            event_key: None,
        }
    }

    /// Sets the key of the inbound event it records.
    pub fn with_event_key(mut self, key: impl Into<String>) -> Self {
        self.event_key = Some(key.into());
        self
    }

    /// Sets the transport's message id.
    pub fn with_message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(id.into());
        self
    }

    /// Sets the text.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    /// Adds an attachment.
    pub fn with_attachment(mut self, attachment: Attachment) -> Self {
        self.attachments.push(attachment);
        self
    }

    /// Marks the entry as an answer with the chosen payload.
    pub fn with_choice(mut self, payload: impl Into<String>) -> Self {
        self.choice = Some(payload.into());
        self
    }
}

/// How far one transport got with an outgoing message.
///
/// The order of the variants is the order statuses advance in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeliveryStatus {
    /// The transport accepted it.
    Sent,
    /// The transport reports it reached the contact's device.
    Delivered,
    /// The contact read it.
    Read,
    /// The transport refused it before sending (window closed, invalid for the transport).
    Refused,
    /// Sending failed.
    Failed,
}

impl DeliveryStatus {
    /// Whether the status can still change.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeliveryStatus::Read | DeliveryStatus::Refused | DeliveryStatus::Failed
        )
    }

    /// Whether a message in this status reached the transport.
    pub fn was_sent(self) -> bool {
        matches!(
            self,
            DeliveryStatus::Sent | DeliveryStatus::Delivered | DeliveryStatus::Read
        )
    }

    /// Whether moving from `self` to `next` is a step forward on the sent → delivered → read
    /// path.
    pub fn can_advance_to(self, next: DeliveryStatus) -> bool {
        self.was_sent() && next.was_sent() && next > self
    }
}

/// What happened to an outgoing message on one transport.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeliveryRecord {
    /// The transport's channel.
    pub channel: Channel,
    /// How far it got.
    pub status: DeliveryStatus,
    /// The transport's message ids, when it was sent.
    #[serde(default)]
    pub message_ids: Vec<String>,
    /// Why it was refused or failed.
    #[serde(default)]
    pub reason: Option<String>,
}

impl DeliveryRecord {
    /// Sent on `channel` with the transport's message ids.
    pub fn sent(channel: Channel, message_ids: Vec<String>) -> Self {
        DeliveryRecord {
            channel,
            status: DeliveryStatus::Sent,
            message_ids,
            reason: None,
        }
    }

    /// Refused by the transport on `channel` before sending, with the reason.
    pub fn refused(channel: Channel, reason: impl Into<String>) -> Self {
        DeliveryRecord {
            channel,
            status: DeliveryStatus::Refused,
            message_ids: Vec::new(),
            reason: Some(reason.into()),
        }
    }

    /// Failed on `channel`, with the reason.
    pub fn failed(channel: Channel, reason: impl Into<String>) -> Self {
        DeliveryRecord {
            channel,
            status: DeliveryStatus::Failed,
            message_ids: Vec::new(),
            reason: Some(reason.into()),
        }
    }
}

/// What was sent to a contact, and per transport what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Outgoing {
    /// The message.
    pub message: Message,
    /// Who wrote it (an agent id), if a person did.
    #[serde(default)]
    pub author: Option<String>,
    /// One record per transport tried. Empty means no transport could take it, which is
    /// recorded rather than dropped.
    #[serde(default)]
    pub deliveries: Vec<DeliveryRecord>,
}

impl Outgoing {
    /// An outgoing entry for `message` with no deliveries yet.
    pub fn new(message: Message) -> Self {
        Outgoing {
            message,
            author: None,
            deliveries: Vec::new(),
        }
    }

    /// Sets the author.
    pub fn with_author(mut self, author: impl Into<String>) -> Self {
        self.author = Some(author.into());
        self
    }

    /// Adds a delivery record.
    pub fn with_delivery(mut self, record: DeliveryRecord) -> Self {
        self.deliveries.push(record);
        self
    }
}

/// Either side of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "direction", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EntryContent {
    /// The contact wrote.
    Incoming(Incoming),
    /// The platform wrote.
    Outgoing(Outgoing),
}

/// One entry of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Entry {
    /// The store's id.
    pub id: EntryId,
    /// Whose conversation it is in.
    pub contact: ContactId,
    /// When it happened (the transport's time for incoming entries).
    pub at: Timestamp,
    /// What it is.
    pub content: EntryContent,
    /// The reactions and edits recorded on it, in time order (then recording order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<Annotation>,
}

impl Entry {
    /// An entry; stores use this to build what they return.
    pub fn new(id: EntryId, contact: ContactId, at: Timestamp, content: EntryContent) -> Self {
        Entry {
            id,
            contact,
            at,
            content,
            annotations: Vec::new(),
        }
    }

    /// Sets the annotations recorded on it (in time order); stores use this.
    pub fn with_annotations(mut self, annotations: Vec<Annotation>) -> Self {
        self.annotations = annotations;
        self
    }

    /// Whether `annotation` targets this entry: same channel, and the entry's transport id
    /// there (an incoming message's, or one an outgoing message was sent under) is its
    /// target's.
    pub fn is_target_of(&self, annotation: &Annotation) -> bool {
        match &self.content {
            EntryContent::Incoming(incoming) => {
                incoming.channel == annotation.channel
                    && incoming.message_id.as_deref() == Some(annotation.message_id.as_str())
            }
            EntryContent::Outgoing(outgoing) => outgoing.deliveries.iter().any(|d| {
                d.channel == annotation.channel && d.message_ids.contains(&annotation.message_id)
            }),
        }
    }

    /// The reaction the message carries now, if any.
    pub fn reaction(&self) -> Option<Reaction<'_>> {
        annotation::current_reaction(&self.annotations)
    }

    /// The edits of the message, first edit first.
    pub fn edits(&self) -> Vec<Edit<'_>> {
        annotation::edits(&self.annotations)
    }

    /// The text of an incoming message as it reads now: the last edit's, else the text it was
    /// written with. `None` for an outgoing entry or one without text.
    pub fn current_text(&self) -> Option<&str> {
        let EntryContent::Incoming(incoming) = &self.content else {
            return None;
        };
        self.edits()
            .last()
            .map(|e| e.text)
            .or(incoming.text.as_deref())
    }
}

/// A change of delivery status reported by a transport.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
#[non_exhaustive]
pub enum StatusUpdate {
    /// The message with this transport id reached `status`.
    Message {
        /// The transport's channel.
        channel: Channel,
        /// The transport's message id.
        message_id: String,
        /// The new status.
        status: DeliveryStatus,
    },
    /// Every message sent to `contact` on `channel` at or before `watermark` reached `status`
    /// (Messenger reports reads, and sometimes deliveries, this way).
    UpTo {
        /// Whose messages.
        contact: ContactId,
        /// The transport's channel.
        channel: Channel,
        /// Up to when.
        watermark: Timestamp,
        /// The new status.
        status: DeliveryStatus,
    },
}

/// One conversation as [`Inbox::conversations`] lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConversationSummary {
    /// Whose conversation it is.
    pub contact: ContactId,
    /// Its newest entry (by transport time, then recording order).
    pub last: Entry,
    /// Incoming entries later than the agents' read mark.
    pub unread: u64,
}

impl ConversationSummary {
    /// A summary; stores use this to build what they return.
    pub fn new(contact: ContactId, last: Entry, unread: u64) -> Self {
        ConversationSummary {
            contact,
            last,
            unread,
        }
    }

    /// The cursor that lists the conversations after this one.
    pub fn cursor(&self) -> ConversationCursor {
        ConversationCursor::after(self.last.at, &self.contact)
    }
}

/// Where a listing of conversations resumes: after the conversation whose newest entry is at
/// a time and whose contact is an id (the order of [`Inbox::conversations`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConversationCursor(String);

impl ConversationCursor {
    /// The cursor after the conversation of `contact` whose newest entry is at `at`.
    pub fn after(at: Timestamp, contact: &ContactId) -> Self {
        ConversationCursor(format!("{}:{}", at.as_millis(), contact))
    }

    /// Reads a cursor from its text (as [`as_str`](Self::as_str) gave it, e.g. in a URL).
    pub fn parse(text: &str) -> Result<(Timestamp, ContactId), StoreError> {
        let refuse = || StoreError::invalid(format!("{text:?} is not a conversation cursor"));
        let (at, contact) = text.split_once(':').ok_or_else(refuse)?;
        let at: i64 = at.parse().map_err(|_| refuse())?;
        let contact = ContactId::new(contact).map_err(|_| refuse())?;
        Ok((Timestamp::from_millis(at), contact))
    }

    /// Wraps a cursor's text.
    pub fn new(text: impl Into<String>) -> Self {
        ConversationCursor(text.into())
    }

    /// The cursor's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One page of [`Inbox::conversations`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConversationPage {
    /// The conversations, newest activity first.
    pub conversations: Vec<ConversationSummary>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<ConversationCursor>,
}

impl ConversationPage {
    /// A page; stores use this to build what they return.
    pub fn new(conversations: Vec<ConversationSummary>, next: Option<ConversationCursor>) -> Self {
        ConversationPage {
            conversations,
            next,
        }
    }
}

/// The conversations of contacts. See the [module docs](self) for the contract.
#[async_trait]
pub trait Inbox: Send + Sync {
    /// Records what `contact` wrote at `at`; idempotent on `(channel, message_id)` and on
    /// `(channel, event_key)`.
    async fn record_incoming(
        &self,
        contact: &ContactId,
        at: Timestamp,
        entry: Incoming,
    ) -> Result<EntryId, StoreError>;

    /// Records what was sent to `contact` at `at`, with per-transport delivery records.
    async fn record_outgoing(
        &self,
        contact: &ContactId,
        at: Timestamp,
        entry: Outgoing,
    ) -> Result<EntryId, StoreError>;

    /// Applies a status change; returns how many delivery records moved forward.
    async fn update_status(&self, update: &StatusUpdate) -> Result<usize, StoreError>;

    /// Moves every entry of `from`'s conversation into `into`'s (after contacts were merged),
    /// keeping transport-time order; returns how many entries moved.
    async fn reassign(&self, from: &ContactId, into: &ContactId) -> Result<usize, StoreError>;

    /// The last `limit` entries of `contact`'s conversation, oldest first.
    async fn conversation(
        &self,
        contact: &ContactId,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError>;

    /// Removes every entry of `contact`'s conversation, with its delivery records; returns how
    /// many entries.
    async fn forget_contact(&self, contact: &ContactId) -> Result<usize, StoreError>;

    /// Up to `limit` conversations after `after` (from the newest when `None`), newest activity
    /// first, each with its newest entry and unread count.
    async fn conversations(
        &self,
        after: Option<&ConversationCursor>,
        limit: usize,
    ) -> Result<ConversationPage, StoreError>;

    /// Records that agents read `contact`'s conversation up to `up_to` (the mark only moves
    /// forward).
    async fn mark_read(&self, contact: &ContactId, up_to: Timestamp) -> Result<(), StoreError>;

    /// Records a reaction or an edit `contact` made, on the entry of their conversation it
    /// targets; returns that entry's id, or `None` when the target is not recorded (yet).
    /// Idempotent on `(channel, event_key)`. An annotation whose target is not recorded is
    /// kept all the same, and shows on the entry once it is.
    async fn annotate(
        &self,
        contact: &ContactId,
        annotation: Annotation,
    ) -> Result<Option<EntryId>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn _object_safe(_: &dyn Inbox) {}

    #[test]
    fn statuses_only_advance_along_sent_delivered_read() {
        use DeliveryStatus::*;
        assert!(Sent.can_advance_to(Delivered));
        assert!(Sent.can_advance_to(Read));
        assert!(Delivered.can_advance_to(Read));
        assert!(!Read.can_advance_to(Delivered));
        assert!(!Delivered.can_advance_to(Delivered));
        assert!(!Failed.can_advance_to(Read));
        assert!(!Refused.can_advance_to(Delivered));
        assert!(!Sent.can_advance_to(Failed));
        assert!(Read.is_final() && Failed.is_final() && !Sent.is_final());
    }
}
