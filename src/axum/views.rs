//! Contacts and inbox entries as the desk shows them.

use serde::Serialize;

use crate::{
    contact::{Contact, ContactId},
    identity::connect::is_technical,
    inbox::{DeliveryRecord, Entry, EntryContent},
    message::Attachment,
};

/// A contact as the desk shows it.
#[derive(Debug, Serialize)]
pub(super) struct ContactView {
    id: ContactId,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    technical: bool,
}

impl ContactView {
    pub(super) fn of(contact: &Contact) -> Self {
        ContactView {
            id: contact.id.clone(),
            email: contact.email.clone(),
            first_name: contact.first_name.clone(),
            last_name: contact.last_name.clone(),
            technical: is_technical(contact),
        }
    }

    pub(super) fn unknown(id: ContactId) -> Self {
        ContactView {
            id,
            email: None,
            first_name: None,
            last_name: None,
            technical: false,
        }
    }
}

/// An inbox entry as the desk shows it.
#[derive(Debug, Serialize)]
pub(super) struct EntryView {
    id: String,
    pub(super) at: i64,
    pub(super) direction: &'static str,
    pub(super) text: Option<String>,
    choice: Option<String>,
    attachments: Vec<Attachment>,
    author: Option<String>,
    deliveries: Vec<DeliveryRecord>,
    /// The reaction the message carries now.
    #[serde(skip_serializing_if = "Option::is_none")]
    reaction: Option<ReactionView>,
    /// The text as first written, when the message was edited since (`text` reads as now).
    #[serde(skip_serializing_if = "Option::is_none")]
    original_text: Option<String>,
    /// The edits, first edit first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    edits: Vec<EditView>,
}

/// A reaction as the desk shows it.
#[derive(Debug, Serialize)]
struct ReactionView {
    emoji: Option<String>,
    name: Option<String>,
    at: i64,
}

/// One edit as the desk shows it.
#[derive(Debug, Serialize)]
struct EditView {
    text: String,
    at: i64,
}

impl EntryView {
    pub(super) fn of(entry: &Entry) -> Self {
        let (direction, text, choice, attachments, author, deliveries) = match &entry.content {
            EntryContent::Incoming(i) => (
                "incoming",
                i.text.clone(),
                i.choice.clone(),
                i.attachments.clone(),
                None,
                Vec::new(),
            ),
            EntryContent::Outgoing(o) => (
                "outgoing",
                Some(o.message.text_body().to_owned()),
                None,
                Vec::new(),
                o.author.clone(),
                o.deliveries.clone(),
            ),
        };
        let edits: Vec<EditView> = entry
            .edits()
            .iter()
            .map(|e| EditView {
                text: e.text.to_owned(),
                at: e.at.as_millis(),
            })
            .collect();
        let (text, original_text) = match (direction, edits.last()) {
            ("incoming", Some(last)) => (Some(last.text.clone()), text),
            _ => (text, None),
        };
        EntryView {
            id: entry.id.to_string(),
            at: entry.at.as_millis(),
            direction,
            text,
            choice,
            attachments,
            author,
            deliveries,
            reaction: entry.reaction().map(|r| ReactionView {
                emoji: r.emoji.map(str::to_owned),
                name: r.name.map(str::to_owned),
                at: r.at.as_millis(),
            }),
            original_text,
            edits,
        }
    }
}
