//! Time as the crate sees it: a millisecond [`Timestamp`] and the [`Clock`] it is read from.
//!
//! Nothing in the crate calls `SystemTime::now` directly (clippy enforces it): token expiry,
//! the messaging window, waits and timeouts all read an injected [`Clock`]. Production code uses
//! [`SystemClock`]; tests move a [`ManualClock`] instead of sleeping.
//!
//! ```
//! use std::time::Duration;
//! use tidings::clock::{Clock, ManualClock, Timestamp};
//!
//! let clock = ManualClock::new(Timestamp::from_millis(1_718_000_000_000));
//! let start = clock.now();
//! clock.advance(Duration::from_secs(24 * 3600));
//! assert_eq!(clock.now().saturating_duration_since(start), Duration::from_secs(86_400));
//! ```

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};

/// A point in time: milliseconds since the Unix epoch (UTC).
///
/// Milliseconds are what Messenger and most transports report, so an event's time is kept as the
/// transport sent it. The type is `Copy`, totally ordered and serializes as a plain integer,
/// which makes it cheap to store and to index.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch, 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: Timestamp = Timestamp(0);

    /// A timestamp from milliseconds since the Unix epoch.
    pub const fn from_millis(millis: i64) -> Self {
        Timestamp(millis)
    }

    /// A timestamp from whole seconds since the Unix epoch (saturating).
    pub const fn from_secs(secs: i64) -> Self {
        Timestamp(secs.saturating_mul(1000))
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Whole seconds since the Unix epoch, rounded towards negative infinity.
    pub const fn as_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// This timestamp moved forward by `d` (saturating at the representable maximum).
    pub fn saturating_add(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(duration_millis(d)))
    }

    /// This timestamp moved back by `d` (saturating at the representable minimum).
    pub fn saturating_sub(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_sub(duration_millis(d)))
    }

    /// The time elapsed from `earlier` to `self`, or zero when `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        let diff = self.0.saturating_sub(earlier.0);
        Duration::from_millis(u64::try_from(diff).unwrap_or(0))
    }
}

fn duration_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({}ms)", self.0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(1000);
        let millis = self.0.rem_euclid(1000);
        write!(f, "{secs}.{millis:03}s")
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(after) => Timestamp(duration_millis(after)),
            Err(before) => Timestamp(duration_millis(before.duration()).saturating_neg()),
        }
    }
}

/// A [`Timestamp`] outside the platform's `SystemTime` range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timestamp {0} is outside the range of SystemTime on this platform")]
pub struct OutOfRange(pub Timestamp);

impl TryFrom<Timestamp> for SystemTime {
    type Error = OutOfRange;
    fn try_from(t: Timestamp) -> Result<Self, OutOfRange> {
        let magnitude = Duration::from_millis(t.0.unsigned_abs());
        let time = if t.0 >= 0 {
            UNIX_EPOCH.checked_add(magnitude)
        } else {
            UNIX_EPOCH.checked_sub(magnitude)
        };
        time.ok_or(OutOfRange(t))
    }
}

/// A source of the current time.
///
/// Implementations must be cheap to call and safe to share across tasks; the crate keeps them as
/// [`SharedClock`].
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// A clock shared by the components that read time.
pub type SharedClock = Arc<dyn Clock>;

/// The wall clock of the machine. The default everywhere a clock is optional.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    /// The system clock as a [`SharedClock`].
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

impl Clock for SystemClock {
    // The one place in the crate that reads the wall clock; everything else goes through `Clock`.
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> Timestamp {
        Timestamp::from(SystemTime::now())
    }
}

/// A clock that only moves when told to, for tests and simulations.
///
/// Clones share the same time, so a test can keep one handle and give another to the component
/// under test.
#[derive(Debug, Clone)]
pub struct ManualClock {
    millis: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock {
            millis: Arc::new(AtomicI64::new(start.as_millis())),
        }
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let step = duration_millis(d);
        // `fetch_update` with a closure that never refuses cannot fail.
        let _ = self
            .millis
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |m| {
                Some(m.saturating_add(step))
            });
    }

    /// Sets the clock to `t` (which may be in the past).
    pub fn set(&self, t: Timestamp) {
        self.millis.store(t.as_millis(), Ordering::SeqCst);
    }

    /// This clock as a [`SharedClock`] (sharing its time with `self`).
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.millis.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_time() {
        let clock = ManualClock::new(Timestamp::from_secs(100));
        let other = clock.clone();
        assert_eq!(clock.now(), Timestamp::from_secs(100));
        other.advance(Duration::from_millis(1500));
        assert_eq!(clock.now(), Timestamp::from_millis(101_500));
        clock.set(Timestamp::from_secs(5));
        assert_eq!(other.now().as_secs(), 5);
    }

    #[test]
    fn arithmetic_saturates_instead_of_overflowing() {
        let max = Timestamp::from_millis(i64::MAX);
        assert_eq!(max.saturating_add(Duration::from_secs(1)), max);
        assert_eq!(
            Timestamp::from_secs(1).saturating_duration_since(Timestamp::from_secs(2)),
            Duration::ZERO
        );
        assert_eq!(Timestamp::from_millis(-1).as_secs(), -1);
    }

    #[test]
    fn system_time_round_trips_at_millisecond_precision() {
        let t = Timestamp::from_millis(1_718_000_000_123);
        assert_eq!(SystemTime::try_from(t).map(Timestamp::from), Ok(t));
        let before = Timestamp::from_millis(-2500);
        assert_eq!(
            SystemTime::try_from(before).map(Timestamp::from),
            Ok(before)
        );
    }

    #[test]
    fn serializes_as_a_plain_integer() {
        let t = Timestamp::from_millis(1_718_000_000_001);
        assert_eq!(serde_json::to_string(&t).unwrap(), "1718000000001");
        assert_eq!(t.to_string(), "1718000000.001s");
    }
}
