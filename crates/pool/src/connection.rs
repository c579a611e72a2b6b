//! The connections the [`MonitoredPool`](crate::MonitoredPool) hands out: the hold guard that
//! keeps the monitor's `held` and leak figures, the [`ObservedConnection`] whose statements
//! are reported, and the [`MonitoredConnection`] guard that derefs to it.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::Database;

use crate::observer::{Reporter, Shared};
use crate::stats::micros;

/// Counts a connection as held from its acquire until `Drop`, which records the hold time.
pub(crate) struct HoldGuard {
    shared: Arc<Shared>,
    id: u64,
    since: Instant,
    tracked: bool,
}

impl HoldGuard {
    pub(crate) fn new(shared: Arc<Shared>, id: u64, since: Instant) -> Self {
        Self {
            shared,
            id,
            since,
            tracked: true,
        }
    }

    /// Stops counting the connection as held without recording a hold time: it was handed to
    /// code the handle cannot follow (sqlx's own `Transaction`, see `acquire.rs`).
    pub(crate) fn untrack(mut self) {
        self.tracked = false;
        self.shared.lock().held.remove(self.id);
    }
}

impl Drop for HoldGuard {
    fn drop(&mut self) {
        if !self.tracked {
            return;
        }
        let held = self.since.elapsed();
        self.shared.histograms.connection_hold(held);
        let mut st = self.shared.lock();
        st.held.remove(self.id);
        st.hold.saturating_record(micros(held));
        if self.shared.leak_threshold.is_some_and(|t| held >= t) {
            st.long_holds_total += 1;
        }
    }
}

/// A pooled connection whose statements are reported: `&mut ObservedConnection` is an
/// [`Executor`](sqlx::Executor) that times every statement into the handle's
/// [`QueryObserver`](crate::QueryObserver), as `&MonitoredPool` does.
///
/// It is what `&mut *conn` and `&mut *tx` are for a [`MonitoredConnection`] and a
/// [`MonitoredTransaction`](crate::MonitoredTransaction), so a helper that takes `&mut ObservedConnection<DB>` (or any
/// `impl Executor`) works inside and outside a transaction. It derefs to the driver
/// connection (`DB::Connection`) for code that needs it; statements run there are not
/// observed. It goes back to the pool on drop, and its hold time is recorded then.
pub struct ObservedConnection<DB: Database> {
    conn: PoolConnection<DB>,
    pub(crate) reporter: Reporter,
    hold: HoldGuard,
}

impl<DB: Database> ObservedConnection<DB> {
    pub(crate) fn new(conn: PoolConnection<DB>, reporter: Reporter, hold: HoldGuard) -> Self {
        Self {
            conn,
            reporter,
            hold,
        }
    }

    /// The driver connection and the reporter, borrowed apart (an executor needs both).
    pub(crate) fn split(&mut self) -> (&mut DB::Connection, &Reporter) {
        (&mut self.conn, &self.reporter)
    }

    /// The sqlx pool connection, the reporter and the hold guard.
    pub(crate) fn into_parts(self) -> (PoolConnection<DB>, Reporter, HoldGuard) {
        (self.conn, self.reporter, self.hold)
    }

    /// The sqlx pool connection underneath.
    pub fn as_pool_connection(&mut self) -> &mut PoolConnection<DB> {
        &mut self.conn
    }

    /// How long the connection has been held.
    pub fn held_for(&self) -> Duration {
        self.hold.since.elapsed()
    }
}

impl<DB: Database> fmt::Debug for ObservedConnection<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObservedConnection")
            .field("held_for", &self.held_for())
            .finish()
    }
}

impl<DB: Database> Deref for ObservedConnection<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl<DB: Database> DerefMut for ObservedConnection<DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

/// A connection acquired through [`MonitoredPool::acquire`](crate::MonitoredPool::acquire);
/// goes back to the pool on drop, and its hold time is recorded then.
///
/// Used as sqlx's `PoolConnection` is: `&mut *conn` is an [`Executor`](sqlx::Executor)
/// (an [`ObservedConnection`], every statement reported), `conn.begin()` starts a
/// [`MonitoredTransaction`](crate::MonitoredTransaction) whose hold this connection's covers, and `&mut **conn` is the
/// driver connection for code that needs it (statements there are not observed).
#[derive(Debug)] // the observed connection's: how long it has been held, nothing else
pub struct MonitoredConnection<DB: Database> {
    inner: ObservedConnection<DB>,
}

impl<DB: Database> MonitoredConnection<DB> {
    pub(crate) fn new(inner: ObservedConnection<DB>) -> Self {
        Self { inner }
    }

    /// The observed connection, out of its guard (it is what `&mut *conn` borrows).
    pub fn into_observed(self) -> ObservedConnection<DB> {
        self.inner
    }

    /// The sqlx pool connection underneath.
    pub fn as_pool_connection(&mut self) -> &mut PoolConnection<DB> {
        self.inner.as_pool_connection()
    }

    /// How long the connection has been held.
    pub fn held_for(&self) -> Duration {
        self.inner.held_for()
    }
}

impl<DB: Database> Deref for MonitoredConnection<DB> {
    type Target = ObservedConnection<DB>;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl<DB: Database> DerefMut for MonitoredConnection<DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}
