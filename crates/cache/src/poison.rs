//! Taking the crate's locks: a lock poisoned by a panic under it is taken over, since every
//! critical section here is one or a few map or field operations that leave the data
//! consistent (a panic cannot stop halfway through a step that matters). One place for that
//! rule, rather than `unwrap_or_else(PoisonError::into_inner)` at each lock.

use std::sync::{Mutex, MutexGuard, PoisonError};
#[cfg(feature = "redis")]
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// `m` locked, poisoned or not.
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `m` locked for reading, poisoned or not (the connection's and the cluster's slots).
#[cfg(feature = "redis")]
pub(crate) fn read<T: ?Sized>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(PoisonError::into_inner)
}

/// `m` locked for writing, poisoned or not.
#[cfg(feature = "redis")]
pub(crate) fn write<T: ?Sized>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(PoisonError::into_inner)
}
