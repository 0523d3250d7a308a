//! A send rate shared by every process that sends for one key (a Messenger Page).
//!
//! Meta caps sends per Page (about 300 a second); several workers sending for one Page must
//! stay under the cap *together*. A [`SendBudget`] hands out send slots: each reservation gets
//! `n` consecutive slots, spaced by the budget's interval, after every slot reserved before,
//! whoever reserved it (a GCRA schedule: one "next free slot" time per key). Since every send
//! waits for a slot of its own, no window of one second holds more than the rate's sends
//! plus the jitter between a slot and the moment its request reaches Meta (the reservation's
//! round trip, the sender's timer, the network). On a loaded machine that jitter reaches a few
//! tens of milliseconds, so set the budget about 10 % under the cap you must not cross.
//!
//! The PostgreSQL store keeps the schedule in one row per key, updated by one statement per
//! reservation and read on the database's clock, so workers on several machines agree
//! ([`PgSendBudget`](crate::store::postgres::PgSendBudget)); [`MemorySendBudget`] does the same
//! for the tasks of one process. A [`Pacer`] in front of either reserves a few slots at a time,
//! so that a worker pays one round trip per few sends.
//!
//! Why a shared schedule rather than one worker holding a lease per Page: no worker has to be
//! elected or replaced when it dies (a dead worker holds nothing but the few slots it had
//! reserved, which pass unused), any number of workers share a Page's rate without being told
//! their share, and a worker that joins late gets slots at once.

use std::{collections::HashMap, collections::VecDeque, fmt, sync::Arc, time::Duration};

use async_trait::async_trait;

use crate::{clock::SharedClock, error::StoreError, sync::lock};

/// Slots a [`SendBudget`] handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reservation {
    /// How long after the reservation the first slot starts (zero when the key was idle).
    pub starts_in: Duration,
    /// The time between two slots (one over the rate).
    pub spacing: Duration,
    /// How many slots.
    pub slots: u32,
}

/// A send rate per key, shared by every holder of the store. See the [module docs](self).
#[async_trait]
pub trait SendBudget: Send + Sync {
    /// Reserves `n` (at least 1) consecutive slots of `key`'s rate after every slot reserved
    /// before.
    async fn reserve(&self, key: &str, n: u32) -> Result<Reservation, StoreError>;
}

/// The spacing of slots at `per_second` (at least one a second).
pub(crate) fn spacing(per_second: u32) -> Duration {
    Duration::from_micros(1_000_000 / u64::from(per_second.max(1)))
}

/// A [`SendBudget`] for the tasks of one process.
pub struct MemorySendBudget {
    spacing: Duration,
    clock: SharedClock,
    /// Per key, the next free slot (microseconds on the clock).
    next: std::sync::Mutex<HashMap<String, i64>>,
}

impl fmt::Debug for MemorySendBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySendBudget")
            .field("spacing", &self.spacing)
            .finish_non_exhaustive()
    }
}

impl MemorySendBudget {
    /// `per_second` sends a second per key, on the system clock.
    pub fn per_second(per_second: u32) -> Self {
        MemorySendBudget {
            spacing: spacing(per_second),
            clock: crate::clock::SystemClock::shared(),
            next: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Reads time from `clock` (a manual clock in tests).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
}

#[async_trait]
impl SendBudget for MemorySendBudget {
    async fn reserve(&self, key: &str, n: u32) -> Result<Reservation, StoreError> {
        let n = n.max(1);
        let now = self.clock.now().as_millis().saturating_mul(1000);
        let step = i64::try_from(self.spacing.as_micros()).unwrap_or(i64::MAX);
        let mut next = lock(&self.next);
        let free = next.entry(key.to_owned()).or_insert(now);
        let start = (*free).max(now);
        *free = start.saturating_add(step.saturating_mul(i64::from(n)));
        Ok(Reservation {
            starts_in: Duration::from_micros(u64::try_from(start - now).unwrap_or(0)),
            spacing: self.spacing,
            slots: n,
        })
    }
}

/// Waits for slots of a [`SendBudget`], reserving a few at a time per key.
///
/// A slot missed by more than [`Pacer::LATE`] (the sender was busy) is let go rather than
/// used late, where it could fall beside other senders' slots.
pub struct Pacer {
    budget: Arc<dyn SendBudget>,
    batch: u32,
    /// Per key, the reserved slots not used yet, in order.
    slots: tokio::sync::Mutex<HashMap<String, VecDeque<tokio::time::Instant>>>,
}

impl fmt::Debug for Pacer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pacer")
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl Pacer {
    /// How late a reserved slot may still be used.
    pub const LATE: Duration = Duration::from_millis(20);

    /// Slots from `budget`, `batch` (at least 1) reserved per round trip. A larger batch
    /// costs fewer round trips and lets more slots go unused when a worker stops.
    pub fn new(budget: Arc<dyn SendBudget>, batch: u32) -> Self {
        Pacer {
            budget,
            batch: batch.max(1),
            slots: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Waits for the next slot of `key`.
    pub async fn wait(&self, key: &str) -> Result<(), StoreError> {
        let slot = {
            let mut slots = self.slots.lock().await;
            let queue = slots.entry(key.to_owned()).or_default();
            let now = tokio::time::Instant::now();
            while queue.front().is_some_and(|s| *s + Self::LATE < now) {
                queue.pop_front();
            }
            if queue.is_empty() {
                // Reserved under the lock: the tasks of this process share one reservation.
                let reservation = self.budget.reserve(key, self.batch).await?;
                let start = tokio::time::Instant::now() + reservation.starts_in;
                queue.extend((0..reservation.slots).map(|i| start + reservation.spacing * i));
            }
            queue.pop_front()
        };
        if let Some(slot) = slot {
            tokio::time::sleep_until(slot).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ManualClock, Timestamp};

    #[tokio::test]
    async fn reservations_follow_each_other_at_the_rate() {
        let clock = ManualClock::new(Timestamp::from_secs(1_000));
        let budget = MemorySendBudget::per_second(100).clock(clock.shared());
        let a = budget.reserve("page", 10).await.unwrap();
        let b = budget.reserve("page", 10).await.unwrap();
        assert_eq!(a.starts_in, Duration::ZERO);
        assert_eq!(a.spacing, Duration::from_millis(10));
        assert_eq!(
            b.starts_in,
            Duration::from_millis(100),
            "after a's ten slots"
        );
        let other = budget.reserve("other-page", 1).await.unwrap();
        assert_eq!(other.starts_in, Duration::ZERO, "keys do not share a rate");
        clock.advance(Duration::from_secs(5));
        let idle = budget.reserve("page", 1).await.unwrap();
        assert_eq!(
            idle.starts_in,
            Duration::ZERO,
            "an idle key saves up no burst"
        );
    }

    #[tokio::test]
    async fn a_pacer_spaces_sends_of_many_tasks() {
        let pacer = Arc::new(Pacer::new(Arc::new(MemorySendBudget::per_second(200)), 5));
        let start = tokio::time::Instant::now();
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let pacer = pacer.clone();
                tokio::spawn(async move {
                    pacer.wait("page").await.unwrap();
                    tokio::time::Instant::now() - start
                })
            })
            .collect();
        let mut at = Vec::new();
        for t in tasks {
            at.push(t.await.unwrap());
        }
        at.sort();
        // 20 sends at 200 a second: the last one no sooner than 19 spacings after the first
        // (less a millisecond of timer rounding).
        assert!(
            at[19] - at[0] >= Duration::from_millis(19 * 5 - 1),
            "{at:?}"
        );
    }
}
