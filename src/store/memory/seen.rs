use std::{fmt, sync::Mutex, time::Duration};

use async_trait::async_trait;
use hashbrown::{HashTable, hash_table::Entry};
use xxhash_rust::xxh3::xxh3_128_with_secret;

use crate::{clock::Timestamp, error::StoreError, seen::SeenEvents, sync::lock};

/// The fewest marks added between two sweeps of expired marks. A sweep also waits until as
/// many marks were added as the previous sweep left, so its cost (the whole set) is spread over
/// at least as many inserts: amortized O(1) per mark whatever the size.
const SWEEP_AT_LEAST_EVERY: usize = 4096;

/// A key's 128-bit keyed fingerprint. The first half places it in the table.
type Fingerprint = [u64; 2];

/// One mark: the fingerprint of the key and when the mark expires (24 bytes, no allocation).
#[derive(Debug)]
struct Mark {
    fingerprint: Fingerprint,
    until: Timestamp,
}

/// The size of a [`Keyer`]'s secret: XXH3's default secret size.
const SECRET_LEN: usize = 192;

/// Fingerprints keys: XXH3-128 under a random 192-byte secret per store. Immutable: keys are
/// hashed before the lock is taken.
///
/// Why a fast hash and not a keyed PRF such as SipHash (which this used to be, at twice the
/// cost on a webhook event's 120-byte key): a fingerprint must not collide by accident, and
/// XXH3-128 is built for that (about 2<sup>-128</sup> per pair). What a PRF adds is that nobody
/// can make two keys collide on purpose, and that buys nothing here: to have an event taken
/// for another one, an attacker would need to choose both keys, while the keys the crate
/// stores are Meta's message ids, or carry a SHA-256 digest, a person's id and a time, or a
/// platform-signed nonce; and where a host's transport lets a sender choose a key (an e-mail
/// `Message-ID`), sending the same key again has the same effect without any collision. The
/// secret still keeps fingerprints unpredictable, so nobody can aim keys at one table slot.
struct Keyer {
    secret: [u8; SECRET_LEN],
}

impl Default for Keyer {
    fn default() -> Self {
        Keyer {
            secret: random_secret(),
        }
    }
}

impl fmt::Debug for Keyer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret stays out of logs.
        f.write_str("Keyer([redacted])")
    }
}

impl Keyer {
    fn fingerprint(&self, key: &str) -> Fingerprint {
        let hash = xxh3_128_with_secret(key.as_bytes(), &self.secret);
        // Both halves of the 128-bit hash: truncation is the point.
        #[allow(clippy::cast_possible_truncation)]
        [hash as u64, (hash >> 64) as u64]
    }
}

/// The marks, in a table keyed by each key's fingerprint.
#[derive(Debug, Default)]
struct State {
    marks: HashTable<Mark>,
    since_sweep: usize,
    /// How many marks the last sweep left.
    after_sweep: usize,
}

/// A random secret. Without an OS random source (which `getrandom` reports rather than
/// panicking), the process's hash seeds stand in: they are random per process too.
fn random_secret() -> [u8; SECRET_LEN] {
    let mut secret = [0u8; SECRET_LEN];
    if getrandom::fill(&mut secret).is_err() {
        use std::hash::{BuildHasher, RandomState};
        let seeds = RandomState::new();
        for (i, chunk) in secret.chunks_exact_mut(8).enumerate() {
            chunk.copy_from_slice(&seeds.hash_one(i).to_le_bytes());
        }
    }
    secret
}

impl State {
    fn is_seen(&self, fingerprint: Fingerprint, now: Timestamp) -> bool {
        self.marks
            .find(fingerprint[0], |m| m.fingerprint == fingerprint)
            .is_some_and(|m| m.until > now)
    }

    /// Marks the key of `fingerprint` until `now + ttl` with a single lookup; `false` if it is
    /// marked.
    fn mark(&mut self, fingerprint: Fingerprint, now: Timestamp, ttl: Duration) -> bool {
        let until = now.saturating_add(ttl);
        // A sweep runs before a new mark is placed, so the table does not grow for marks
        // that the sweep frees.
        let sweep_due = self.since_sweep + 1 >= SWEEP_AT_LEAST_EVERY.max(self.after_sweep);
        let placed = match self.marks.entry(
            fingerprint[0],
            |m| m.fingerprint == fingerprint,
            |m| m.fingerprint[0],
        ) {
            Entry::Occupied(mut mark) => {
                if mark.get().until > now {
                    return false;
                }
                // Expired: marked again in place (a sweep keeps it, as it is live now).
                mark.get_mut().until = until;
                true
            }
            Entry::Vacant(slot) if !sweep_due => {
                slot.insert(Mark { fingerprint, until });
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
            self.marks
                .insert_unique(fingerprint[0], Mark { fingerprint, until }, |m| {
                    m.fingerprint[0]
                });
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

    fn forget(&mut self, fingerprint: Fingerprint) {
        if let Ok(mark) = self
            .marks
            .find_entry(fingerprint[0], |m| m.fingerprint == fingerprint)
        {
            mark.remove();
        }
    }
}

/// Seen keys in memory: a [`SeenEvents`] that sweeps expired marks as it goes, so memory stays
/// bounded by what is live.
///
/// A mark holds a 128-bit fingerprint of its key (XXH3-128 under a random secret per store)
/// and its expiry: 24 bytes in the table, no allocation per mark, and the keys themselves
/// (which can carry tokens from `ref` parameters) are never held. Two different keys share a
/// fingerprint with a probability of about 2<sup>-128</sup> per pair: with ten million live
/// marks and a trillion lookups, about one chance in 10<sup>19</sup> that an event is taken
/// for a redelivery.
#[derive(Debug, Default)]
pub struct MemorySeenEvents {
    keyer: Keyer,
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

    /// Calls `f` with the fingerprints of `keys`, kept on the stack for small batches (a
    /// single-event webhook request allocates nothing here).
    fn with_fingerprints<R>(&self, keys: &[&str], f: impl FnOnce(&[Fingerprint]) -> R) -> R {
        const ON_STACK: usize = 8;
        if keys.len() <= ON_STACK {
            let mut fingerprints = [[0u64; 2]; ON_STACK];
            for (slot, key) in fingerprints.iter_mut().zip(keys) {
                *slot = self.keyer.fingerprint(key);
            }
            f(&fingerprints[..keys.len()])
        } else {
            let fingerprints: Vec<Fingerprint> =
                keys.iter().map(|k| self.keyer.fingerprint(k)).collect();
            f(&fingerprints)
        }
    }
}

#[async_trait]
impl SeenEvents for MemorySeenEvents {
    async fn is_seen(&self, key: &str, now: Timestamp) -> Result<bool, StoreError> {
        let fingerprint = self.keyer.fingerprint(key);
        Ok(lock(&self.state).is_seen(fingerprint, now))
    }

    async fn mark_seen(
        &self,
        key: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let fingerprint = self.keyer.fingerprint(key);
        Ok(lock(&self.state).mark(fingerprint, now, ttl))
    }

    async fn forget(&self, key: &str) -> Result<(), StoreError> {
        let fingerprint = self.keyer.fingerprint(key);
        lock(&self.state).forget(fingerprint);
        Ok(())
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
        Ok(lock(&self.state).sweep(now))
    }

    async fn seen_many(&self, keys: &[&str], now: Timestamp) -> Result<Vec<bool>, StoreError> {
        // Hashed before the lock is taken; the probes then run back to back, so the CPU
        // overlaps their cache misses.
        Ok(self.with_fingerprints(keys, |fingerprints| {
            let state = lock(&self.state);
            fingerprints
                .iter()
                .map(|&f| state.is_seen(f, now))
                .collect()
        }))
    }

    async fn mark_many(
        &self,
        keys: &[&str],
        now: Timestamp,
        ttl: Duration,
    ) -> Result<Vec<bool>, StoreError> {
        Ok(self.with_fingerprints(keys, |fingerprints| {
            let mut state = lock(&self.state);
            fingerprints
                .iter()
                .map(|&f| state.mark(f, now, ttl))
                .collect()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store's state with its keyer, used synchronously.
    #[derive(Default)]
    struct Keyed {
        keyer: Keyer,
        state: State,
    }

    impl Keyed {
        fn mark(&mut self, key: &str, now: Timestamp, ttl: Duration) -> bool {
            self.state.mark(self.keyer.fingerprint(key), now, ttl)
        }
        fn is_seen(&self, key: &str, now: Timestamp) -> bool {
            self.state.is_seen(self.keyer.fingerprint(key), now)
        }
        fn forget(&mut self, key: &str) {
            self.state.forget(self.keyer.fingerprint(key));
        }
    }

    #[test]
    fn keys_that_differ_in_one_byte_are_told_apart() {
        let mut state = Keyed::default();
        let ttl = Duration::from_secs(60);
        let t0 = Timestamp::from_secs(0);
        let base =
            "messenger:m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlq";
        for i in 0..20_000 {
            assert!(state.mark(&format!("{base}{i}"), t0, ttl), "{i} is new");
        }
        for i in 0..20_000 {
            assert!(state.is_seen(&format!("{base}{i}"), t0));
            assert!(!state.is_seen(&format!("{base}{i}x"), t0));
        }
        // Two stores key their fingerprints differently.
        assert_ne!(
            Keyer::default().fingerprint(base),
            Keyer::default().fingerprint(base)
        );
    }

    #[test]
    fn debug_output_keeps_the_hash_key_out() {
        let store = MemorySeenEvents::new();
        let shown = format!("{store:?}");
        assert!(shown.contains("Keyer([redacted])"), "{shown}");
        // No run of the secret's bytes, as `Debug` of a byte array would print them.
        let secret = format!("{:?}", &store.keyer.secret[..4]);
        assert!(!shown.contains(secret.trim_end_matches(']')), "{shown}");
    }

    #[test]
    fn expired_marks_are_swept_as_marks_are_added() {
        let mut state = Keyed::default();
        let ttl = Duration::from_secs(10);
        for i in 0..SWEEP_AT_LEAST_EVERY {
            assert!(state.mark(&format!("old-{i}"), Timestamp::from_secs(0), ttl));
        }
        let later = Timestamp::from_secs(100);
        for i in 0..=SWEEP_AT_LEAST_EVERY {
            state.mark(&format!("new-{i}"), later, ttl);
        }
        assert!(
            state.state.marks.len() <= SWEEP_AT_LEAST_EVERY + 1,
            "the expired marks were swept: {} held",
            state.state.marks.len()
        );
    }

    #[test]
    fn expired_marks_never_take_more_room_than_the_live_ones() {
        let mut state = Keyed::default();
        // One mark a second, each live for 40,000 seconds: 40,000 live in the steady state.
        let live = 40_000u64;
        let ttl = Duration::from_secs(live);
        let mut most = 0;
        for i in 0..4 * live {
            assert!(state.mark(&format!("k-{i}"), Timestamp::from_secs(i as i64), ttl));
            most = most.max(state.state.marks.len());
        }
        let live = live as usize;
        assert!(most > live, "expired marks wait for a sweep");
        let bound = 2 * live + 1;
        assert!(most <= bound, "at most {bound} held, {most} seen");
    }

    #[test]
    fn the_mark_that_triggers_a_sweep_is_kept_and_expired_marks_are_renewed() {
        let mut state = Keyed::default();
        let ttl = Duration::from_secs(10);
        let t0 = Timestamp::from_secs(0);
        for i in 0..SWEEP_AT_LEAST_EVERY - 1 {
            assert!(state.mark(&format!("k-{i}"), t0, ttl));
        }
        // This one makes a sweep due: it is placed after the sweep.
        assert!(state.mark("trigger", t0, ttl));
        assert!(state.is_seen("trigger", t0));
        assert!(!state.mark("trigger", t0, ttl), "marked once");
        assert_eq!(state.state.marks.len(), SWEEP_AT_LEAST_EVERY);
        // Expired marks count as absent and are marked again in place.
        let later = Timestamp::from_secs(20);
        assert!(!state.is_seen("k-1", later));
        assert!(state.mark("k-1", later, ttl));
        assert!(state.is_seen("k-1", later));
        state.forget("k-1");
        assert!(!state.is_seen("k-1", later));
        assert_eq!(state.state.sweep(later), SWEEP_AT_LEAST_EVERY - 1);
        assert_eq!(state.state.marks.len(), 0);
    }
}
