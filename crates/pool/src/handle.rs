//! [`MonitoredPool`]: a sqlx pool handle that counts its waiters exactly and times acquire,
//! hold and (optionally) every query.

use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::Database;

use crate::classify::error_kind;
use crate::error::PoolError;
use crate::stats::{micros, HandleStats, Held, State};

/// Sees every statement run through `&MonitoredPool` as an [`Executor`](sqlx::Executor).
///
/// This is the seam a query logger plugs into; the pool crate knows nothing of the logger.
/// `sql` is the statement text as written by the host (with placeholders, never bind values);
/// `elapsed` is the statement's time on its connection, without the wait for the connection
/// (that is the acquire histogram); `rows` is the rows returned or, for a statement that
/// returns none, the rows affected.
pub trait QueryObserver: Send + Sync {
    /// Called once per statement, after it finished, failed or its stream was dropped.
    fn on_query(&self, sql: &str, elapsed: Duration, rows: u64, error: Option<&sqlx::Error>);
}

pub(crate) struct Shared {
    state: Mutex<State>,
    leak_threshold: Option<Duration>,
    benchmark: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic (plain counters and maps).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A sqlx pool handle that sees its own acquisitions exactly.
///
/// Cloning is cheap (two `Arc`s); clones share the monitor state, so clone it into every task
/// rather than wrapping it in a lock. It is `Send + Sync`.
///
/// Everything acquired through the handle is counted: [`acquire`](Self::acquire), and every
/// query run with `&MonitoredPool` as an [`Executor`](sqlx::Executor) (`query(..).fetch_all(&pool)`).
/// Connections taken from [`inner`](Self::inner) directly are invisible to the waiter count
/// and histograms, but still show up in the pool's size and idle numbers (as busy).
pub struct MonitoredPool<DB: Database> {
    pool: sqlx::Pool<DB>,
    shared: Arc<Shared>,
    observer: Option<Arc<dyn QueryObserver>>,
}

impl<DB: Database> Clone for MonitoredPool<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            shared: Arc::clone(&self.shared),
            observer: self.observer.clone(),
        }
    }
}

impl<DB: Database> fmt::Debug for MonitoredPool<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredPool")
            .field("size", &self.pool.size())
            .field("idle", &self.pool.num_idle())
            .field("leak_threshold", &self.shared.leak_threshold)
            .field("benchmark", &self.shared.benchmark)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

/// Builder of [`MonitoredPool`].
#[must_use]
pub struct MonitoredPoolBuilder<DB: Database> {
    pool: sqlx::Pool<DB>,
    leak_threshold: Option<Duration>,
    benchmark: bool,
    observer: Option<Arc<dyn QueryObserver>>,
}

impl<DB: Database> fmt::Debug for MonitoredPoolBuilder<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredPoolBuilder")
            .field("leak_threshold", &self.leak_threshold)
            .field("benchmark", &self.benchmark)
            .finish_non_exhaustive()
    }
}

impl<DB: Database> MonitoredPoolBuilder<DB> {
    /// Connections held longer count as leaked (`None`: off; default 60 s).
    pub fn leak_threshold(mut self, threshold: Option<Duration>) -> Self {
        self.leak_threshold = threshold;
        self
    }
    /// Time every statement into a histogram (`DB_BENCHMARK`; default off).
    pub fn benchmark(mut self, on: bool) -> Self {
        self.benchmark = on;
        self
    }
    /// Call `observer` after every statement run through the handle as an executor.
    pub fn observer(mut self, observer: Arc<dyn QueryObserver>) -> Self {
        self.observer = Some(observer);
        self
    }
    /// The handle.
    pub fn build(self) -> MonitoredPool<DB> {
        MonitoredPool {
            pool: self.pool,
            shared: Arc::new(Shared {
                state: Mutex::new(State::new()),
                leak_threshold: self.leak_threshold,
                benchmark: self.benchmark,
            }),
            observer: self.observer,
        }
    }
}

impl<DB: Database> MonitoredPool<DB> {
    /// Wraps `pool` with the default settings (leak threshold 60 s, benchmark off, no observer).
    pub fn new(pool: sqlx::Pool<DB>) -> Self {
        Self::builder(pool).build()
    }

    /// A builder around `pool`.
    pub fn builder(pool: sqlx::Pool<DB>) -> MonitoredPoolBuilder<DB> {
        MonitoredPoolBuilder {
            pool,
            leak_threshold: Some(Duration::from_secs(60)),
            benchmark: false,
            observer: None,
        }
    }

    /// A handle sharing this one's pool and monitor state that reports every statement to
    /// `observer`.
    #[must_use]
    pub fn with_observer(&self, observer: Arc<dyn QueryObserver>) -> Self {
        Self {
            observer: Some(observer),
            ..self.clone()
        }
    }

    /// The wrapped sqlx pool. What is acquired from it directly is not counted (see the type
    /// docs).
    pub fn inner(&self) -> &sqlx::Pool<DB> {
        &self.pool
    }

    /// Acquires a connection through the monitored path.
    ///
    /// The caller counts as a waiter from the call until the connection arrives, the acquire
    /// fails, or the future is dropped (cancellation is counted, and the waiter count goes
    /// back down in `Drop`, so it never stays high).
    ///
    /// # Errors
    /// [`PoolError::AcquireTimeout`] after the pool's acquire timeout, [`PoolError::Acquire`]
    /// when connecting fails or the pool is closed.
    #[track_caller]
    pub fn acquire(
        &self,
    ) -> impl Future<Output = Result<MonitoredConnection<DB>, PoolError>> + Send + 'static {
        let location = Location::caller();
        let fut = acquire_monitored(self.pool.clone(), Arc::clone(&self.shared), Some(location));
        async move {
            fut.await.map_err(|(e, waited)| match e {
                sqlx::Error::PoolTimedOut => PoolError::AcquireTimeout { waited },
                other => PoolError::Acquire(other),
            })
        }
    }

    /// Acquires through the monitored path like [`acquire`](Self::acquire), but fails with
    /// sqlx's own error (a timeout is [`sqlx::Error::PoolTimedOut`]), as an [`Executor`](sqlx::Executor) must.
    /// `location` is the leak site reported while the connection is held (`None`: "executor").
    pub(crate) fn acquire_sqlx(
        &self,
        location: Option<&'static Location<'static>>,
    ) -> impl Future<Output = Result<MonitoredConnection<DB>, sqlx::Error>> + Send + 'static {
        let fut = acquire_monitored(self.pool.clone(), Arc::clone(&self.shared), location);
        async move { fut.await.map_err(|(e, _waited)| e) }
    }

    /// The current window of statistics, without resetting it.
    pub fn stats(&self) -> HandleStats {
        self.snapshot(false)
    }

    /// The statistics, and starts a new window for percentiles and peak waiting.
    pub fn take_stats(&self) -> HandleStats {
        self.snapshot(true)
    }

    /// Tasks waiting in `acquire` right now (exact).
    pub fn waiting(&self) -> usize {
        self.shared.lock().waiters.len()
    }

    fn snapshot(&self, reset: bool) -> HandleStats {
        let now = Instant::now();
        self.shared.lock().snapshot(
            now,
            self.shared.leak_threshold,
            self.shared.benchmark,
            reset,
        )
    }

    pub(crate) fn observe(
        &self,
        sql: &str,
        started: Instant,
        rows: u64,
        error: Option<&sqlx::Error>,
    ) {
        let elapsed = started.elapsed();
        if self.shared.benchmark {
            self.shared.lock().query.saturating_record(micros(elapsed));
        }
        if let Some(o) = &self.observer {
            o.on_query(sql, elapsed, rows, error);
        }
    }
}

/// Removes the waiter in `Drop`, so a dropped acquire future never leaves the count high.
struct WaitGuard<'a> {
    shared: &'a Shared,
    id: u64,
    done: bool,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut st = self.shared.lock();
            st.waiters.remove(&self.id);
            st.cancelled_total += 1;
        }
    }
}

async fn acquire_monitored<DB: Database>(
    pool: sqlx::Pool<DB>,
    shared: Arc<Shared>,
    location: Option<&'static Location<'static>>,
) -> Result<MonitoredConnection<DB>, (sqlx::Error, Duration)> {
    let start = Instant::now();
    let id = {
        let mut st = shared.lock();
        let id = st.next_id;
        st.next_id += 1;
        st.waiters.insert(id, start);
        st.peak_waiting = st.peak_waiting.max(st.waiters.len());
        id
    };
    let mut guard = WaitGuard {
        shared: &shared,
        id,
        done: false,
    };
    let result = pool.acquire().await;
    let now = Instant::now();
    let waited = now.saturating_duration_since(start);
    guard.done = true;
    drop(guard);
    let mut st = shared.lock();
    st.waiters.remove(&id);
    match result {
        Ok(conn) => {
            st.acquire.saturating_record(micros(waited));
            st.acquired_total += 1;
            st.held.insert(
                id,
                Held {
                    since: now,
                    location,
                    reported: false,
                },
            );
            drop(st);
            Ok(MonitoredConnection {
                conn,
                shared,
                id,
                since: now,
            })
        }
        Err(e) => {
            if matches!(e, sqlx::Error::PoolTimedOut) {
                st.timeouts_total += 1;
                // sqlx retries refused connections until the deadline and then reports a
                // timeout; a timeout while the pool is below its maximum means it could not
                // open a connection, so it counts as a connection error as well.
                if pool.size() < pool.options().get_max_connections() {
                    st.errors_total += 1;
                    st.last_error = Some("timed out opening a connection".to_owned());
                }
            } else {
                st.errors_total += 1;
                st.last_error = Some(error_kind(&e));
            }
            Err((e, waited))
        }
    }
}

/// A connection acquired through [`MonitoredPool`]; goes back to the pool on drop, and its
/// hold time is recorded then.
///
/// Derefs to the driver connection, so `&mut *conn` is an [`Executor`](sqlx::Executor), as with sqlx's own
/// `PoolConnection`. Start a transaction with `sqlx::Connection::begin(&mut *conn)`; the hold
/// time then covers the transaction.
pub struct MonitoredConnection<DB: Database> {
    conn: PoolConnection<DB>,
    shared: Arc<Shared>,
    id: u64,
    since: Instant,
}

impl<DB: Database> MonitoredConnection<DB> {
    /// The sqlx pool connection underneath.
    pub fn as_pool_connection(&mut self) -> &mut PoolConnection<DB> {
        &mut self.conn
    }

    /// How long the connection has been held.
    pub fn held_for(&self) -> Duration {
        self.since.elapsed()
    }
}

impl<DB: Database> fmt::Debug for MonitoredConnection<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredConnection")
            .field("held_for", &self.held_for())
            .finish()
    }
}

impl<DB: Database> Deref for MonitoredConnection<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl<DB: Database> DerefMut for MonitoredConnection<DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

impl<DB: Database> Drop for MonitoredConnection<DB> {
    fn drop(&mut self) {
        let held = self.since.elapsed();
        let mut st = self.shared.lock();
        st.held.remove(&self.id);
        st.hold.saturating_record(micros(held));
        if self.shared.leak_threshold.is_some_and(|t| held >= t) {
            st.long_holds_total += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_types_are_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<MonitoredPool<sqlx::Postgres>>();
        assert_send_sync::<MonitoredPool<sqlx::Sqlite>>();
        assert_send_sync::<MonitoredConnection<sqlx::Postgres>>();
        assert_send_sync::<HandleStats>();
    }
}
