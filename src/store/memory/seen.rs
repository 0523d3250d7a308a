use std::{hash::BuildHasher, sync::Mutex, time::Duration};

use async_trait::async_trait;
use foldhash::fast::RandomState;
use hashbrown::{HashTable, hash_table::Entry};

use crate::{clock::Timestamp, error::StoreError, seen::SeenEvents, sync::lock};

/// The fewest marks added between two sweeps of expired marks. A sweep also waits until as
/// many marks were added as the previous sweep left, so its cost (the whole set) is spread over
/// at least as many inserts: amortized O(1) per mark whatever the size.
const SWEEP_AT_LEAST_EVERY: usize = 4096;

/// One mark: the key, its hash (kept so that growing the table never reads a key again) and
/// when the mark expires.
#[derive(Debug)]
struct Mark {
    hash: u64,
    key: Box<str>,
    until: Timestamp,
}

/// The marks, in a table keyed by a seeded hash of the key and compared on the exact key:
/// keys are hashed once per operation, and de-duplication stays exact.
#[derive(Debug, Default)]
struct State {
    marks: HashTable<Mark>,
    /// Seeded per store (`foldhash`), so the layout cannot be predicted from outside.
    hasher: RandomState,
    since_sweep: usize,
    /// How many marks the last sweep left.
    after_sweep: usize,
}

impl State {
    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    fn find(&self, key: &str) -> Option<&Mark> {
        self.marks.find(self.hash(key), |m| *m.key == *key)
    }

    fn is_seen(&self, key: &str, now: Timestamp) -> bool {
        self.find(key).is_some_and(|m| m.until > now)
    }

    /// Marks `key` until `now + ttl` with a single lookup; `false` if it is marked.
    fn mark(&mut self, key: &str, now: Timestamp, ttl: Duration) -> bool {
        let hash = self.hash(key);
        let until = now.saturating_add(ttl);
        // A sweep runs before a new mark is placed, so the table does not grow for marks
        // that the sweep frees.
        let sweep_due = self.since_sweep + 1 >= SWEEP_AT_LEAST_EVERY.max(self.after_sweep);
        let placed = match self.marks.entry(hash, |m| *m.key == *key, |m| m.hash) {
            Entry::Occupied(mut mark) => {
                if mark.get().until > now {
                    return false;
                }
                // Expired: marked again in place (a sweep keeps it, as it is live now).
                mark.get_mut().until = until;
                true
            }
            Entry::Vacant(slot) if !sweep_due => {
                slot.insert(Mark {
                    hash,
                    key: key.into(),
                    until,
                });
                true
            }
            Entry::Vacant(_) => false,
        };
        self.since_sweep += 1;
        if sweep_due {
            self.since_sweep = 0;
            self.sweep(now);
        }
        if !placed {
            self.marks.insert_unique(
                hash,
                Mark {
                    hash,
                    key: key.into(),
                    until,
                },
                |m| m.hash,
            );
        }
        true
    }

    /// Drops the marks expired at `now`; returns how many.
    fn sweep(&mut self, now: Timestamp) -> usize {
        let before = self.marks.len();
        self.marks.retain(|m| m.until > now);
        self.after_sweep = self.marks.len();
        before - self.after_sweep
    }

    fn forget(&mut self, key: &str) {
        if let Ok(mark) = self.marks.find_entry(self.hash(key), |m| *m.key == *key) {
            mark.remove();
        }
    }
}

/// Seen keys in memory: a [`SeenEvents`] that sweeps expired marks as it goes, so memory stays
/// bounded by what is live.
///
/// Keys are hashed once per operation with a per-store seeded hasher (`foldhash`) and compared
/// exactly; the table keeps each key's hash, so growing it never reads the keys again.
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
        lock(&self.state).marks.len()
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
        lock(&self.state).forget(key);
        Ok(())
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
        Ok(lock(&self.state).sweep(now))
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
            state.marks.len() <= SWEEP_AT_LEAST_EVERY + 1,
            "the expired marks were swept: {} held",
            state.marks.len()
        );
    }

    #[test]
    fn the_mark_that_triggers_a_sweep_is_kept_and_expired_marks_are_renewed() {
        let mut state = State::default();
        let ttl = Duration::from_secs(10);
        let t0 = Timestamp::from_secs(0);
        for i in 0..SWEEP_AT_LEAST_EVERY - 1 {
            assert!(state.mark(&format!("k-{i}"), t0, ttl));
        }
        // This one makes a sweep due: it is placed after the sweep.
        assert!(state.mark("trigger", t0, ttl));
        assert!(state.is_seen("trigger", t0));
        assert!(!state.mark("trigger", t0, ttl), "marked once");
        assert_eq!(state.marks.len(), SWEEP_AT_LEAST_EVERY);
        // Expired marks count as absent and are marked again in place.
        let later = Timestamp::from_secs(20);
        assert!(!state.is_seen("k-1", later));
        assert!(state.mark("k-1", later, ttl));
        assert!(state.is_seen("k-1", later));
        state.forget("k-1");
        assert!(!state.is_seen("k-1", later));
        assert_eq!(state.sweep(later), SWEEP_AT_LEAST_EVERY - 1);
        assert_eq!(state.marks.len(), 0);
    }
}
