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
        EntryView {
            id: entry.id.to_string(),
            at: entry.at.as_millis(),
            direction,
            text,
            choice,
            attachments,
            author,
            deliveries,
        }
    }
}
