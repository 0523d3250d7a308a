//! Remembering what was already handled: webhook event ids, single-use token nonces.
//!
//! Meta redelivers webhook batches it thinks failed, for up to 36 hours, and a single-use
//! token must be refused the second time. Both need a set of keys that forgets each key once
//! it can no longer come back. [`SeenEvents`] is that set; keys are namespaced by the caller
//! (`"messenger:<mid>"`, `"nonce:<hex>"`) so one store serves every use.
//!
//! # Contract
//!
//! - [`SeenEvents::mark_seen`] returns `true` if the key was not seen (or its mark had
//!   expired) and marks it until `now + ttl`; `false` if it is marked. Concurrent calls for
//!   the same key return `true` exactly once.
//! - [`SeenEvents::is_seen`] does not mark; [`SeenEvents::forget`] removes a mark.
//! - Expired marks count as absent and are removed by [`SeenEvents::purge_expired`] (stores
//!   may also drop them on their own).

use std::time::Duration;

use async_trait::async_trait;

use crate::{clock::Timestamp, error::StoreError};

/// A set of keys with expiry. See the [module docs](self) for the contract.
#[async_trait]
pub trait SeenEvents: Send + Sync {
    /// Whether `key` is marked at `now`.
    async fn is_seen(&self, key: &str, now: Timestamp) -> Result<bool, StoreError>;

    /// Marks `key` until `now + ttl`; `true` if it was not marked.
    async fn mark_seen(&self, key: &str, now: Timestamp, ttl: Duration)
    -> Result<bool, StoreError>;

    /// Removes the mark of `key`, if any (a claim that must be released after a failure).
    async fn forget(&self, key: &str) -> Result<(), StoreError>;

    /// Removes marks expired at `now`; returns how many.
    async fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError>;

    /// [`is_seen`](SeenEvents::is_seen) for each of `keys`, in order. Override it when one
    /// round trip can answer for a whole webhook batch (an SQL `IN` query); the webhook asks
    /// about a batch of one event with `is_seen`.
    async fn seen_many(&self, keys: &[&str], now: Timestamp) -> Result<Vec<bool>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.is_seen(key, now).await?);
        }
        Ok(out)
    }

    /// [`mark_seen`](SeenEvents::mark_seen) for each of `keys`, in order (the webhook marks
    /// a batch of one event with `mark_seen`).
    async fn mark_many(
        &self,
        keys: &[&str],
        now: Timestamp,
        ttl: Duration,
    ) -> Result<Vec<bool>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.mark_seen(key, now, ttl).await?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn _object_safe(_: &dyn SeenEvents) {}
}
