use std::{collections::HashMap, sync::Mutex, time::Duration};

use async_trait::async_trait;

use crate::{clock::Timestamp, error::StoreError, seen::SeenEvents, sync::lock};

/// How many marks may be added between two sweeps of expired marks.
const SWEEP_EVERY: usize = 4096;

#[derive(Debug, Default)]
struct State {
    expires: HashMap<String, Timestamp>,
    since_sweep: usize,
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
        Ok(lock(&self.state).expires.get(key).is_some_and(|&e| e > now))
    }

    async fn mark_seen(
        &self,
        key: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut state = lock(&self.state);
        if state.expires.get(key).is_some_and(|&e| e > now) {
            return Ok(false);
        }
        state.since_sweep += 1;
        if state.since_sweep >= SWEEP_EVERY {
            state.since_sweep = 0;
            state.expires.retain(|_, e| *e > now);
        }
        state
            .expires
            .insert(key.to_owned(), now.saturating_add(ttl));
        Ok(true)
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
        let mut state = lock(&self.state);
        let before = state.expires.len();
        state.expires.retain(|_, e| *e > now);
        Ok(before - state.expires.len())
    }
}
