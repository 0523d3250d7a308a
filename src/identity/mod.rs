//! Who is who: the [`Directory`] of contacts and the addresses linked to them.
//!
//! The host owns its users; the crate needs only to find a contact by id or by a linked address,
//! create one (auto-registration), link and unlink addresses, and merge a technical contact into
//! a real one. [`Directory`] is that seam. `store::memory::MemoryDirectory` implements it
//! in memory; a host implements it over its own user table.
//!
//! [`Connector`] ([`connect`]) builds on it: connect tokens, referrals, auto-registration.
//!
//! # Contract
//!
//! - An address is linked to at most one contact. [`Directory::link`] of an address linked to
//!   another contact fails with [`StoreError::Conflict`]; linking it again to the same contact
//!   succeeds and changes nothing.
//! - [`Directory::create`] links the new contact's addresses atomically: if any of them is
//!   already linked, nothing is created and the call fails with a conflict. Two concurrent
//!   "create a contact for this new sender" calls therefore create one contact.
//! - [`Directory::merge`] moves every address of `from` to `into`, fills `into`'s missing data
//!   from `from` (never the technical marker [`connect::TECHNICAL_FIELD`]: a real contact must
//!   not become technical), and retires `from`, which the host may delete or keep as an alias.
//!   The crate never deletes host data itself. Merging a contact into itself changes nothing
//!   and fails with [`StoreError::Conflict`]; a `from` or `into` that does not exist fails with
//!   [`StoreError::NotFound`].
//! - [`Directory::forget_contact`] removes the contact and unlinks every address linked to it,
//!   in one step: afterwards [`get`](Directory::get) returns `None`, no
//!   [`find_by_address`](Directory::find_by_address) of its addresses finds anyone, and the
//!   addresses can be linked again to any contact. It returns the contact as it was, addresses
//!   included, and `None` (not an error) for an unknown contact, so an erasure can be run
//!   again. Other contacts are untouched, and [`Directory::create`] never assigns a forgotten
//!   id again (signed tokens in the wild name contacts by id). It is the one deletion the crate
//!   asks for, on the person's behalf (GDPR erasure, see [`Erasure`](crate::erasure::Erasure)),
//!   never of its own accord.

use async_trait::async_trait;

pub mod confirm;
pub mod connect;

pub use confirm::{ConfirmLinks, LinkChange, LinkQuestion};
pub use connect::{
    ConnectOutcome, ConnectPolicy, Connector, ConnectorBuilder, MergeHook, Refusal, Sender,
};

use crate::{
    contact::{Address, Contact, ContactId, NewContact},
    error::StoreError,
};

/// The contacts and their linked addresses. See the [module docs](self) for the contract.
#[async_trait]
pub trait Directory: Send + Sync {
    /// The contact with id `id`.
    async fn get(&self, id: &ContactId) -> Result<Option<Contact>, StoreError>;

    /// The contact `address` is linked to.
    async fn find_by_address(&self, address: &Address) -> Result<Option<Contact>, StoreError>;

    /// Creates a contact and links its addresses; the store assigns the id.
    async fn create(&self, new: NewContact) -> Result<Contact, StoreError>;

    /// Links `address` to contact `id`.
    async fn link(&self, id: &ContactId, address: &Address) -> Result<(), StoreError>;

    /// Unlinks `address`, returning the contact it was linked to, if any.
    async fn unlink(&self, address: &Address) -> Result<Option<ContactId>, StoreError>;

    /// Merges contact `from` into contact `into` and returns the merged contact. `from ==
    /// into` is a [`StoreError::Conflict`] (nothing changes); an unknown contact is
    /// [`StoreError::NotFound`].
    async fn merge(&self, from: &ContactId, into: &ContactId) -> Result<Contact, StoreError>;

    /// Removes contact `id` and every address linked to it; returns the contact as it was, or
    /// `None` if there is no such contact.
    async fn forget_contact(&self, id: &ContactId) -> Result<Option<Contact>, StoreError>;
}

/// What [`Directory::merge`] makes of `into` when `from` merges into it: `into`'s missing data
/// filled from `from` (never the technical marker), tags united, `from`'s addresses appended.
/// One rule for every store of the crate.
#[cfg_attr(not(any(feature = "memory", feature = "sqlite")), allow(dead_code))]
pub(crate) fn absorb(into: &mut Contact, from: Contact) {
    into.email = into.email.take().or(from.email);
    into.first_name = into.first_name.take().or(from.first_name);
    into.last_name = into.last_name.take().or(from.last_name);
    for (k, v) in from.fields {
        // A real contact never inherits the technical marker.
        if k != connect::TECHNICAL_FIELD {
            into.fields.entry(k).or_insert(v);
        }
    }
    into.tags.extend(from.tags);
    for a in from.addresses {
        if !into.addresses.contains(&a) {
            into.addresses.push(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn _object_safe(_: &dyn Directory) {}
}
