//! Small synchronisation helpers shared by the in-crate implementations.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, recovering the data if another thread panicked while holding it.
///
/// Every critical section in this crate leaves the data consistent before it can panic (it
/// validates first and mutates last), so a poisoned lock carries no broken invariant and
/// refusing service forever would only turn one bug into an outage.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
