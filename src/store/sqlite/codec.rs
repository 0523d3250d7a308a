//! How the crate's types sit in SQLite columns.

use serde::{Serialize, de::DeserializeOwned};

use super::error::corrupt;
use crate::{
    contact::{Address, Channel, Contact, ContactId},
    error::StoreError,
};

/// An address as its three key columns: channel, scope (`''` for none), id.
pub(super) fn address_key(address: &Address) -> (String, &str, &str) {
    (
        address.channel().to_string(),
        address.scope().unwrap_or(""),
        address.id(),
    )
}

/// The address stored as `(channel, scope, id)`.
pub(super) fn address_from(channel: &str, scope: &str, id: &str) -> Result<Address, StoreError> {
    let channel: Channel = channel.parse().map_err(|e| corrupt("address", e))?;
    let scope = (!scope.is_empty()).then(|| scope.to_owned());
    Address::new(channel, scope, id).map_err(|e| corrupt("address", e))
}

/// `value` as JSON text.
pub(super) fn to_json<T: Serialize + ?Sized>(what: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::invalid(format!("{what}: {e}")))
}

/// JSON text read back.
pub(super) fn from_json<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(what, e))
}

/// A contact id read back.
pub(super) fn contact_id(text: String) -> Result<ContactId, StoreError> {
    ContactId::new(text).map_err(|e| corrupt("contact id", e))
}

/// The columns a contact is read from, in this order, for `FROM contacts c`.
pub(super) const CONTACT_COLUMNS: &str = "c.id, c.email, c.first_name, c.last_name, c.fields, \
     (SELECT json_group_array(json_array(a.channel, a.scope, a.address) ORDER BY a.seq) \
        FROM contact_addresses a WHERE a.contact_id = c.id), \
     (SELECT json_group_array(t.tag ORDER BY t.tag) FROM contact_tags t WHERE t.contact_id = c.id)";

/// A row of [`CONTACT_COLUMNS`].
pub(super) type ContactRow = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
);

/// The contact of a row of [`CONTACT_COLUMNS`].
pub(super) fn contact_from_row(row: ContactRow) -> Result<Contact, StoreError> {
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
