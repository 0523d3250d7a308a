//! When each address last wrote: the basis of messaging windows and "recently active" segments.
//!
//! Messenger lets a Page send freely for 24 hours after the person's last message; a
//! newsletter segment may target people active on a channel within N hours. Both read the
//! time of the last inbound message per address. The webhook side feeds [`LastInbound`]; the
//! send side and segment queries read it.
//!
//! # Contract
//!
//! - [`LastInbound::record`] keeps the later of the stored time and the new one, so events
//!   processed out of order never move an address's last activity back.
//! - [`LastInbound::last`] returns the stored time, or `None` for an address never recorded.
//! - [`LastInbound::forget`] removes the record of one address and says whether there was
//!   one: afterwards `last` is `None`, and a later `record` starts afresh (an earlier time
//!   than the forgotten one is kept as it is). Other addresses are untouched.

use async_trait::async_trait;

use crate::{clock::Timestamp, contact::Address, error::StoreError};

/// The time of the last inbound message per address. See the [module docs](self).
#[async_trait]
pub trait LastInbound: Send + Sync {
    /// Records that `address` wrote at `at` (keeping the later time).
    async fn record(&self, address: &Address, at: Timestamp) -> Result<(), StoreError>;

    /// When `address` last wrote, if ever.
    async fn last(&self, address: &Address) -> Result<Option<Timestamp>, StoreError>;

    /// Removes the record of `address`; whether there was one.
    async fn forget(&self, address: &Address) -> Result<bool, StoreError>;

    /// [`record`](LastInbound::record) for each pair, in order. Override it when one round
    /// trip can take a whole webhook batch.
    async fn record_many(&self, records: &[(&Address, Timestamp)]) -> Result<(), StoreError> {
        for (address, at) in records {
            self.record(address, *at).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn _object_safe(_: &dyn LastInbound) {}
}
