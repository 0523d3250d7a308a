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
//!
//! # Claims: handled once, even by handlers racing each other
//!
//! A webhook event must be routed once although Meta may deliver it again while the first
//! delivery is still being handled, and must not be lost if that first handler crashes. Marking
//! it "seen" before routing would lose it on a crash; marking it after would let two handlers
//! route it. A *claim* sits in between:
//!
//! - [`SeenEvents::claim`] places an unsettled mark that lasts `lease` and answers
//!   [`Claim::Acquired`] to exactly one of any number of concurrent callers; the others learn
//!   that the key is [`Claim::Held`] (someone is handling it: try again later) or
//!   [`Claim::Done`] (it was handled).
//! - [`SeenEvents::settle`] turns the mark into a settled one that lasts `ttl`: the key is
//!   done. [`SeenEvents::forget`] releases a claim whose work failed, so a redelivery can claim
//!   it at once.
//! - A handler that crashes does neither: its claim expires with the lease, and the next
//!   delivery acquires the key.
//!
//! [`mark_seen`](SeenEvents::mark_seen) is a claim settled at once; [`is_seen`](SeenEvents::is_seen)
//! is `true` for held and settled keys alike.
//!
//! The lease must outlast the work it covers: a claim that expires while its holder still
//! works lets a redelivery start the same work.

use std::time::Duration;

use async_trait::async_trait;

use crate::{clock::Timestamp, error::StoreError};

/// What [`SeenEvents::claim`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Claim {
    /// The key was free (never marked, expired or forgotten): the caller holds it now and must
    /// [`settle`](SeenEvents::settle) it when done, or [`forget`](SeenEvents::forget) it on
    /// failure.
    Acquired,
    /// Another caller holds the key and has not settled it.
    Held {
        /// When that claim's lease ends, if it is not settled first.
        until: Timestamp,
    },
    /// The key was handled: settled, or marked with [`mark_seen`](SeenEvents::mark_seen).
    Done,
}

impl Claim {
    /// Whether the caller acquired the key.
    pub fn is_acquired(self) -> bool {
        matches!(self, Claim::Acquired)
    }
}

/// A set of keys with expiry. See the [module docs](self) for the contract.
#[async_trait]
pub trait SeenEvents: Send + Sync {
    /// Whether `key` is marked at `now`.
    async fn is_seen(&self, key: &str, now: Timestamp) -> Result<bool, StoreError>;

    /// Marks `key` until `now + ttl`; `true` if it was not marked.
    async fn mark_seen(&self, key: &str, now: Timestamp, ttl: Duration)
    -> Result<bool, StoreError>;

    /// Claims `key` for `lease` unless it is marked (held or settled); see
    /// [Claims](self#claims-handled-once-even-by-handlers-racing-each-other). Concurrent
    /// claims of one key acquire it exactly once.
    async fn claim(&self, key: &str, now: Timestamp, lease: Duration) -> Result<Claim, StoreError>;

    /// Marks `key` settled until `now + ttl`, whatever its mark was (held by the caller,
    /// expired, or none).
    async fn settle(&self, key: &str, now: Timestamp, ttl: Duration) -> Result<(), StoreError>;

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

    /// [`claim`](SeenEvents::claim) for each of `keys`, in order. Override it when one round
    /// trip can claim a whole webhook batch; the webhook claims a batch of one event with
    /// `claim`, and never lists a key twice.
    async fn claim_many(
        &self,
        keys: &[&str],
        now: Timestamp,
        lease: Duration,
    ) -> Result<Vec<Claim>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.claim(key, now, lease).await?);
        }
        Ok(out)
    }

    /// [`settle`](SeenEvents::settle) for each of `keys`.
    async fn settle_many(
        &self,
        keys: &[&str],
        now: Timestamp,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        for key in keys {
            self.settle(key, now, ttl).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn _object_safe(_: &dyn SeenEvents) {}
}
