//! How the crate's types sit in SQL columns, the same in every dialect: times as
//! milliseconds since the Unix epoch, an address as three text columns, structured values as
//! JSON text, delivery statuses as their rank.

use serde::{Serialize, de::DeserializeOwned};

use crate::{
    clock::Timestamp,
    contact::{Address, Channel, Contact, ContactId},
    error::{DbFailure, StoreError},
    inbox::{Annotation, DeliveryStatus, Entry, EntryContent, EntryId},
    newsletter::{CampaignId, OutcomeRecord},
    process::ProcessInstance,
};

/// Stored data that does not decode into the crate's types: the database was changed by
/// something other than these stores, or is damaged.
pub(crate) fn corrupt(what: &str, cause: impl std::fmt::Display) -> StoreError {
    StoreError::Database {
        failure: DbFailure::Corrupt,
        source: format!("stored {what} does not decode: {cause}").into(),
    }
}

/// An address as its three key columns: channel, scope (`''` for none), id.
pub(crate) fn address_key(address: &Address) -> (String, &str, &str) {
    (
        address.channel().to_string(),
        address.scope().unwrap_or(""),
        address.id(),
    )
}

/// The address stored as `(channel, scope, id)`.
pub(crate) fn address_from(channel: &str, scope: &str, id: &str) -> Result<Address, StoreError> {
    let channel: Channel = channel.parse().map_err(|e| corrupt("address", e))?;
    let scope = (!scope.is_empty()).then(|| scope.to_owned());
    Address::new(channel, scope, id).map_err(|e| corrupt("address", e))
}

/// `value` as JSON text.
pub(crate) fn to_json<T: Serialize + ?Sized>(what: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::invalid(format!("{what}: {e}")))
}

/// JSON text read back.
pub(crate) fn from_json<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(what, e))
}

/// A contact id read back.
pub(crate) fn contact_id(text: String) -> Result<ContactId, StoreError> {
    ContactId::new(text).map_err(|e| corrupt("contact id", e))
}

/// A contact as the stores read it: id, e-mail, first and last name, fields (a JSON object),
/// addresses (a JSON array of `[channel, scope, id]` in link order), tags (a JSON array).
pub(crate) type ContactRow = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
);

/// The contact of a [`ContactRow`].
pub(crate) fn contact_from_row(row: ContactRow) -> Result<Contact, StoreError> {
    let (id, email, first_name, last_name, fields, addresses, tags) = row;
    let mut contact = Contact::new(contact_id(id)?);
    contact.email = email;
    contact.first_name = first_name;
    contact.last_name = last_name;
    contact.fields = from_json("contact fields", &fields)?;
    contact.tags = from_json("contact tags", &tags)?;
    let parts: Vec<(String, String, String)> = from_json("contact addresses", &addresses)?;
    contact.addresses = parts
        .iter()
        .map(|(channel, scope, id)| address_from(channel, scope, id))
        .collect::<Result<_, _>>()?;
    Ok(contact)
}

/// The rank of a status in a `status` column (the order statuses advance in).
pub(crate) fn rank(status: DeliveryStatus) -> i64 {
    match status {
        DeliveryStatus::Sent => 0,
        DeliveryStatus::Delivered => 1,
        DeliveryStatus::Read => 2,
        DeliveryStatus::Refused => 3,
        DeliveryStatus::Failed => 4,
    }
}

/// The status of a rank read back.
pub(crate) fn status_of(rank: i64) -> Result<DeliveryStatus, StoreError> {
    Ok(match rank {
        0 => DeliveryStatus::Sent,
        1 => DeliveryStatus::Delivered,
        2 => DeliveryStatus::Read,
        3 => DeliveryStatus::Refused,
        4 => DeliveryStatus::Failed,
        other => return Err(corrupt("delivery status", other)),
    })
}

/// The entry id of an inbox row's sequence number.
pub(crate) fn entry_id(seq: i64) -> Result<EntryId, StoreError> {
    EntryId::new(format!("e{seq}")).map_err(StoreError::backend)
}

/// An inbox entry as the stores read it: seq, contact, time, content (JSON), delivery status
/// ranks (a JSON array in delivery order), annotations (a JSON array), and one count (the
/// unread count of a conversation summary, 0 elsewhere).
pub(crate) type EntryRow = (i64, String, i64, String, String, String, i64);

/// The entry of an [`EntryRow`].
pub(crate) fn entry_from(row: EntryRow) -> Result<Entry, StoreError> {
    let (seq, contact, at, content, statuses, annotations, _) = row;
    let annotations: Vec<Annotation> = from_json("annotations", &annotations)?;
    let mut content: EntryContent = from_json("inbox entry", &content)?;
    if let EntryContent::Outgoing(out) = &mut content {
        let statuses: Vec<i64> = from_json("delivery statuses", &statuses)?;
        for (delivery, rank) in out.deliveries.iter_mut().zip(statuses) {
            delivery.status = status_of(rank)?;
        }
    }
    Ok(Entry::new(
        entry_id(seq)?,
        contact_id(contact)?,
        Timestamp::from_millis(at),
        content,
    )
    .with_annotations(annotations))
}

/// A campaign outcome as the stores read it: campaign, contact, outcome (JSON), time.
pub(crate) type OutcomeRow = (String, String, String, i64);

/// The record of an [`OutcomeRow`].
pub(crate) fn outcome_from(row: OutcomeRow) -> Result<OutcomeRecord, StoreError> {
    let (campaign, contact, outcome, at) = row;
    Ok(OutcomeRecord::new(
        CampaignId::new(campaign).map_err(|e| corrupt("campaign id", e))?,
        contact_id(contact)?,
        from_json("campaign outcome", &outcome)?,
        Timestamp::from_millis(at),
    ))
}

/// A flow instance read back from its JSON and its revision column (the column is the truth).
pub(crate) fn instance_from(instance: &str, revision: i64) -> Result<ProcessInstance, StoreError> {
    let mut instance: ProcessInstance = from_json("process instance", instance)?;
    instance.revision =
        u64::try_from(revision).map_err(|e| corrupt("process instance revision", e))?;
    Ok(instance)
}

/// An instance's revision as a column value.
pub(crate) fn revision_of(instance: &ProcessInstance) -> Result<i64, StoreError> {
    i64::try_from(instance.revision)
        .map_err(|_| StoreError::invalid(format!("instance {} revision overflow", instance.id)))
}

/// An opt-in from its row `(contact_id, channel, at, optin)`.
pub(crate) fn opt_in_from(
    (contact, channel, at, optin): (String, String, i64, String),
) -> Result<crate::optin::OptInRecord, StoreError> {
    let channel: crate::contact::Channel = channel
        .parse()
        .map_err(|_| corrupt("opt-in channel", &channel))?;
    Ok(crate::optin::OptInRecord::new(
        contact_id(contact)?,
        channel,
        crate::clock::Timestamp::from_millis(at),
        from_json("opt-in", &optin)?,
    ))
}

/// A row count as the traits report it.
pub(crate) fn count(rows: u64) -> usize {
    usize::try_from(rows).unwrap_or(usize::MAX)
}
