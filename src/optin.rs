//! Notification opt-ins kept per contact: what a business needs to message a person outside
//! the messaging window (Messenger's Marketing Messages).
//!
//! A person who accepts a notification request gives the business a token (with a frequency,
//! a topic, an expiry); a newsletter sent outside the 24-hour window addresses the person by
//! that token. The [`Hub`](crate::hub::Hub) records each opt-in it routes in an [`OptIns`]
//! store; a person who stops the notifications sends the same topic again with a stop status,
//! which replaces the record (keep reading [`NotificationOptIn::is_stopped`] before sending).
//!
//! # Contract
//!
//! - One record per `(contact, channel, topic)` (no topic is a topic of its own):
//!   [`OptIns::record`] replaces the record unless the stored one is later (a redelivered
//!   older event never overwrites a newer status), and says whether it did.
//! - [`OptIns::list`] returns the contact's records, by channel then topic.
//! - [`OptIns::reassign`] moves a contact's records to another (contacts merged); where both
//!   hold the same `(channel, topic)`, the later record stays.
//! - [`OptIns::forget_contact`] removes every record of the contact and says how many went.
//!
//! The token lets anyone holding it message the person: stores keep it as carefully as
//! access tokens, and `Debug` output never shows it.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{
    clock::Timestamp,
    contact::{Channel, ContactId},
    error::StoreError,
    message::NotificationOptIn,
};

/// One stored opt-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OptInRecord {
    /// Whose it is.
    pub contact: ContactId,
    /// The channel it was given on.
    pub channel: Channel,
    /// When it was given (the transport's time).
    pub at: Timestamp,
    /// What the person agreed to, with the token.
    pub optin: NotificationOptIn,
}

impl OptInRecord {
    /// A record; stores use this to build what they return.
    pub fn new(
        contact: ContactId,
        channel: Channel,
        at: Timestamp,
        optin: NotificationOptIn,
    ) -> Self {
        OptInRecord {
            contact,
            channel,
            at,
            optin,
        }
    }

    /// The topic it is kept under (`""` when the opt-in named none).
    pub fn topic(&self) -> &str {
        self.optin.topic.as_deref().unwrap_or("")
    }
}

/// Notification opt-ins per contact. See the [module docs](self).
#[async_trait]
pub trait OptIns: Send + Sync {
    /// Keeps `record`, replacing the contact's record of the same channel and topic unless
    /// that one is later; whether it was kept.
    async fn record(&self, record: OptInRecord) -> Result<bool, StoreError>;

    /// The contact's opt-ins, by channel then topic.
    async fn list(&self, contact: &ContactId) -> Result<Vec<OptInRecord>, StoreError>;

    /// Moves `from`'s opt-ins to `into` (the later of two records of one topic stays); how
    /// many moved.
    async fn reassign(&self, from: &ContactId, into: &ContactId) -> Result<usize, StoreError>;

    /// Removes every opt-in of `contact`; how many went.
    async fn forget_contact(&self, contact: &ContactId) -> Result<usize, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn _object_safe(_: &dyn OptIns) {}
}
