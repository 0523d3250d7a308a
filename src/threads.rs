//! Who owns each conversation thread: this app, or another one (a human inbox such as the
//! Page Inbox, another bot).
//!
//! Messenger lets several apps serve one Page; only the thread's owner may answer, and the
//! others receive its events as *standby*. The [`Hub`](crate::hub::Hub) keeps what
//! thread-control and standby events say in a [`ThreadOwners`] store, so that senders can ask
//! before they answer:
//!
//! | event | the thread's owner becomes |
//! |---|---|
//! | control passed to this app | [`ThreadOwner::This`] |
//! | control taken from this app | [`ThreadOwner::Other`], the app that took it |
//! | a standby event (another app owns the thread) | [`ThreadOwner::Other`] (its app id kept when known) |
//! | control requested by another app | unchanged: the request is reported to the host |
//!
//! # Contract
//!
//! - [`ThreadOwners::set`] keeps the new owner unless the stored one was set by a later event
//!   (events processed out of order never move ownership back), and says whether it did.
//! - [`ThreadOwners::get`] returns the stored owner with the time it was set, or `None` for a
//!   thread no event spoke about (the app owns threads nobody passed or took).
//! - [`ThreadOwners::forget`] removes the record of one address, and says whether there was one.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{clock::Timestamp, contact::Address, error::StoreError};

/// Who owns a thread.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "owner", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ThreadOwner {
    /// This app: it may answer.
    This,
    /// Another app: this one receives the thread's events as standby and must not answer.
    Other {
        /// The owning app's id, where an event named it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        app_id: Option<String>,
    },
}

/// A thread's owner and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ThreadState {
    /// Who owns it.
    pub owner: ThreadOwner,
    /// The time of the event that said so.
    pub since: Timestamp,
}

impl ThreadState {
    /// A state; stores use this to build what they return.
    pub fn new(owner: ThreadOwner, since: Timestamp) -> Self {
        ThreadState { owner, since }
    }

    /// Whether this app may answer the thread.
    pub fn is_ours(&self) -> bool {
        self.owner == ThreadOwner::This
    }
}

/// The owner of each thread, by the person's address. See the [module docs](self).
#[async_trait]
pub trait ThreadOwners: Send + Sync {
    /// Records that `owner` owns the thread of `address` since `at`, unless a later event
    /// said otherwise; whether it was kept.
    async fn set(
        &self,
        address: &Address,
        owner: ThreadOwner,
        at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// The thread's owner, if an event named one.
    async fn get(&self, address: &Address) -> Result<Option<ThreadState>, StoreError>;

    /// Removes the record of `address`; whether there was one.
    async fn forget(&self, address: &Address) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn _object_safe(_: &dyn ThreadOwners) {}
}
