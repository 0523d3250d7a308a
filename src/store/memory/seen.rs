use std::{fmt, sync::Mutex, time::Duration};

use async_trait::async_trait;
use hashbrown::{HashTable, hash_table::Entry};
use xxhash_rust::xxh3::xxh3_128_with_secret;

use crate::{
    clock::Timestamp,
    error::StoreError,
    seen::{Claim, SeenEvents},
    sync::lock,
};

/// The fewest marks added between two sweeps of expired marks. A sweep also waits until as
/// many marks were added as the previous sweep left, so its cost (the whole set) is spread over
/// at least as many inserts: amortized O(1) per mark whatever the size.
const SWEEP_AT_LEAST_EVERY: usize = 4096;

/// A key's keyed fingerprint: 127 bits of a 128-bit hash (the lowest bit of the second half
/// is always clear). The first half places it in the table.
type Fingerprint = [u64; 2];

/// The bit of a [`Mark`]'s second half that says it is settled (clear in every fingerprint).
const SETTLED: u64 = 1;

/// One mark: the fingerprint of the key, whether it is settled or only claimed, and when it
/// expires (24 bytes, no allocation).
#[derive(Debug)]
struct Mark {
    /// The fingerprint's first half.
    slot: u64,
    /// The fingerprint's second half, with [`SETTLED`] set once the mark is settled.
    rest: u64,
    until: Timestamp,
}

impl Mark {
    fn new(fingerprint: Fingerprint, until: Timestamp, settled: bool) -> Mark {
        Mark {
            slot: fingerprint[0],
            rest: fingerprint[1] | if settled { SETTLED } else { 0 },
            until,
        }
    }

    fn is(&self, fingerprint: Fingerprint) -> bool {
        self.slot == fingerprint[0] && self.rest & !SETTLED == fingerprint[1]
    }

    fn settled(&self) -> bool {
        self.rest & SETTLED != 0
    }

    fn set(&mut self, until: Timestamp, settled: bool) {
        self.until = until;
        self.rest = self.rest & !SETTLED | if settled { SETTLED } else { 0 };
    }

    /// What a claim of this mark finds at `now`, if the mark is live.
    fn live(&self, now: Timestamp) -> Option<Claim> {
        (self.until > now).then(|| {
            if self.settled() {
                Claim::Done
            } else {
                Claim::Held { until: self.until }
            }
        })
    }
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
        // Both halves of the 128-bit hash (truncation is the point), less the bit a mark
        // uses for its state.
        #[allow(clippy::cast_possible_truncation)]
        [hash as u64, (hash >> 64) as u64 & !SETTLED]
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
            .find(fingerprint[0], |m| m.is(fingerprint))
            .is_some_and(|m| m.until > now)
    }

    /// Places a mark of `fingerprint` until `now + ttl` unless a live one is there, with a
    /// single lookup: [`Claim::Acquired`] if it was placed, else what the live mark is.
    fn place(
        &mut self,
        fingerprint: Fingerprint,
        now: Timestamp,
        ttl: Duration,
        settled: bool,
    ) -> Claim {
        let until = now.saturating_add(ttl);
        // A sweep runs before a new mark is placed, so the table does not grow for marks
        // that the sweep frees.
        let sweep_due = self.since_sweep + 1 >= SWEEP_AT_LEAST_EVERY.max(self.after_sweep);
        let placed = match self
            .marks
            .entry(fingerprint[0], |m| m.is(fingerprint), |m| m.slot)
        {
            Entry::Occupied(mut mark) => {
                if let Some(found) = mark.get().live(now) {
                    return found;
                }
                // Expired: marked again in place (a sweep keeps it, as it is live now).
                mark.get_mut().set(until, settled);
                true
            }
            Entry::Vacant(slot) if !sweep_due => {
                slot.insert(Mark::new(fingerprint, until, settled));
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
                fingerprint[0],
                Mark::new(fingerprint, until, settled),
                |m| m.slot,
            );
        }
        Claim::Acquired
    }

    /// Marks `fingerprint` until `now + ttl`; `false` if it is marked.
    fn mark(&mut self, fingerprint: Fingerprint, now: Timestamp, ttl: Duration) -> bool {
        self.place(fingerprint, now, ttl, true).is_acquired()
    }

    /// Settles the mark of `fingerprint` until `now + ttl`, placing it if need be.
    fn settle(&mut self, fingerprint: Fingerprint, now: Timestamp, ttl: Duration) {
        let until = now.saturating_add(ttl);
        match self.marks.find_mut(fingerprint[0], |m| m.is(fingerprint)) {
            Some(mark) => mark.set(until, true),
            None => {
                self.place(fingerprint, now, ttl, true);
            }
        }
    }

    /// Drops the marks expired at `now`; returns how many.
    fn sweep(&mut self, now: Timestamp) -> usize {
        let before = self.marks.len();
        self.marks.retain(|m| m.until > now);
        self.after_sweep = self.marks.len();
        before - self.after_sweep
    }

    fn forget(&mut self, fingerprint: Fingerprint) {
        if let Ok(mark) = self.marks.find_entry(fingerprint[0], |m| m.is(fingerprint)) {
            mark.remove();
        }
    }
}

/// Seen keys in memory: a [`SeenEvents`] that sweeps expired marks as it goes, so memory stays
/// bounded by what is live.
///
/// A mark holds a 127-bit fingerprint of its key (XXH3-128 under a random secret per store,
/// less one bit that says whether the mark is settled or only claimed) and its expiry: 24 bytes
/// in the table, no allocation per mark, and the keys themselves (which can carry tokens from
/// `ref` parameters) are never held. Two different keys share a fingerprint with a probability
/// of about 2<sup>-127</sup> per pair: with ten million live marks and a trillion lookups,
/// about one chance in 10<sup>19</sup> that an event is taken for a redelivery.
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

    async fn claim(&self, key: &str, now: Timestamp, lease: Duration) -> Result<Claim, StoreError> {
        let fingerprint = self.keyer.fingerprint(key);
        Ok(lock(&self.state).place(fingerprint, now, lease, false))
    }

    async fn settle(&self, key: &str, now: Timestamp, ttl: Duration) -> Result<(), StoreError> {
        let fingerprint = self.keyer.fingerprint(key);
        lock(&self.state).settle(fingerprint, now, ttl);
        Ok(())
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

    async fn claim_many(
        &self,
        keys: &[&str],
        now: Timestamp,
        lease: Duration,
    ) -> Result<Vec<Claim>, StoreError> {
        Ok(self.with_fingerprints(keys, |fingerprints| {
            let mut state = lock(&self.state);
            fingerprints
                .iter()
                .map(|&f| state.place(f, now, lease, false))
                .collect()
        }))
    }

    async fn settle_many(
        &self,
        keys: &[&str],
        now: Timestamp,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.with_fingerprints(keys, |fingerprints| {
            let mut state = lock(&self.state);
            for &f in fingerprints {
                state.settle(f, now, ttl);
            }
        });
        Ok(())
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
    fn a_mark_keeps_its_state_in_the_fingerprint_and_stays_24_bytes() {
        assert_eq!(std::mem::size_of::<Mark>(), 24);
        let mut state = Keyed::default();
        let (t0, lease, ttl) = (
            Timestamp::from_secs(0),
            Duration::from_secs(60),
            Duration::from_secs(3600),
        );
        let f = state.keyer.fingerprint("k");
        assert_eq!(
            f[1] & SETTLED,
            0,
            "the state bit is never part of a fingerprint"
        );
        assert_eq!(state.state.place(f, t0, lease, false), Claim::Acquired);
        assert_eq!(
            state.state.place(f, t0, lease, false),
            Claim::Held {
                until: t0.saturating_add(lease)
            }
        );
        state.state.settle(f, t0, ttl);
        assert_eq!(state.state.marks.len(), 1, "settled in place");
        let later = t0.saturating_add(2 * lease);
        assert_eq!(state.state.place(f, later, lease, false), Claim::Done);
        assert!(state.is_seen("k", later));
        state.forget("k");
        assert!(
            state.state.marks.is_empty(),
            "a settled mark is found to forget"
        );
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
