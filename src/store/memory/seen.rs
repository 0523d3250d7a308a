use std::{collections::HashMap, sync::Mutex, time::Duration};

use async_trait::async_trait;

use crate::{clock::Timestamp, error::StoreError, seen::SeenEvents, sync::lock};

/// The fewest marks added between two sweeps of expired marks. A sweep also waits until as
/// many marks were added as the previous sweep left, so its cost (the whole set) is spread over
/// at least as many inserts: amortized O(1) per mark whatever the size.
const SWEEP_AT_LEAST_EVERY: usize = 4096;

#[derive(Debug, Default)]
struct State {
    expires: HashMap<String, Timestamp>,
    since_sweep: usize,
    /// How many marks the last sweep left.
    after_sweep: usize,
}

impl State {
    fn is_seen(&self, key: &str, now: Timestamp) -> bool {
        self.expires.get(key).is_some_and(|&e| e > now)
    }

    fn mark(&mut self, key: &str, now: Timestamp, ttl: Duration) -> bool {
        if self.is_seen(key, now) {
            return false;
        }
        self.since_sweep += 1;
        if self.since_sweep >= SWEEP_AT_LEAST_EVERY.max(self.after_sweep) {
            self.since_sweep = 0;
            self.expires.retain(|_, e| *e > now);
            self.after_sweep = self.expires.len();
        }
        self.expires.insert(key.to_owned(), now.saturating_add(ttl));
        true
    }
}

/// Seen keys in memory: a [`SeenEvents`] that sweeps expired marks as it goes, so memory stays
/// bounded by what is live.
#[derive(Debug, Default)]
pub struct MemorySeenEvents {
    state: Mutex<State>,
}

impl MemorySeenEvents {
    /// An empty set.
    pub fn new() -> Self {
        MemorySeenEvents::default()
    }

    /// How many marks are held (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        lock(&self.state).expires.len()
    }

    /// Whether no mark is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl SeenEvents for MemorySeenEvents {
    async fn is_seen(&self, key: &str, now: Timestamp) -> Result<bool, StoreError> {
        Ok(lock(&self.state).is_seen(key, now))
    }

    async fn mark_seen(
        &self,
        key: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        Ok(lock(&self.state).mark(key, now, ttl))
    }

    async fn forget(&self, key: &str) -> Result<(), StoreError> {
        lock(&self.state).expires.remove(key);
        Ok(())
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
        let mut state = lock(&self.state);
        let before = state.expires.len();
        state.expires.retain(|_, e| *e > now);
        Ok(before - state.expires.len())
    }

    async fn seen_many(&self, keys: &[&str], now: Timestamp) -> Result<Vec<bool>, StoreError> {
        let state = lock(&self.state);
        Ok(keys.iter().map(|k| state.is_seen(k, now)).collect())
    }

    async fn mark_many(
        &self,
        keys: &[&str],
        now: Timestamp,
        ttl: Duration,
    ) -> Result<Vec<bool>, StoreError> {
        let mut state = lock(&self.state);
        Ok(keys.iter().map(|k| state.mark(k, now, ttl)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_marks_are_swept_as_marks_are_added() {
        let mut state = State::default();
        let ttl = Duration::from_secs(10);
        for i in 0..SWEEP_AT_LEAST_EVERY {
            assert!(state.mark(&format!("old-{i}"), Timestamp::from_secs(0), ttl));
        }
        let later = Timestamp::from_secs(100);
        for i in 0..=SWEEP_AT_LEAST_EVERY {
            state.mark(&format!("new-{i}"), later, ttl);
        }
        assert!(
            state.expires.len() <= SWEEP_AT_LEAST_EVERY + 1,
            "the expired marks were swept: {} held",
            state.expires.len()
        );
    }
}
