//! [`MonitoredPool`]: a sqlx pool handle that counts its waiters exactly and times acquire,
//! hold and (optionally) every query.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::Database;

use crate::classify::error_kind;
use crate::connection::{HoldGuard, MonitoredConnection, ObservedConnection};
use crate::error::PoolError;
use crate::metrics::{Acquired, Histograms};
use crate::observer::{QueryObserver, Reporter, Shared};
use crate::pgbouncer::wrap::TransactionPooling;
use crate::probe::{PoolProbe, PoolState};
use crate::spans::Peer;
use crate::stats::{micros, HandleStats, Held, State};
use crate::transaction::MonitoredTransaction;

/// A sqlx pool handle that sees its own acquisitions exactly.
///
/// Cloning is cheap (two `Arc`s); clones share the monitor state, so clone it into every task
/// rather than wrapping it in a lock. It is `Send + Sync`.
///
/// Everything acquired through the handle is counted: [`acquire`](Self::acquire),
/// [`begin`](Self::begin), every query run with `&MonitoredPool` as an
/// [`Executor`](sqlx::Executor) (`query(..).fetch_all(&pool)`), and `&MonitoredPool` as an
/// [`sqlx::Acquire`] (see that impl for what the generic path observes). Connections taken
/// from [`inner`](Self::inner) directly are invisible to the waiter count and histograms, but
/// still show up in the pool's size and idle numbers (as busy).
pub struct MonitoredPool<DB: Database> {
    pool: sqlx::Pool<DB>,
    pub(crate) shared: Arc<Shared>,
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
    pooling: Option<TransactionPooling>,
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
    /// Run statements under PgBouncer's transaction pooling (set by
    /// [`PoolConfig::monitored`](crate::PoolConfig::monitored) when `DB_PGBOUNCER=transaction`).
    pub(crate) fn transaction_pooling(mut self, pooling: Option<TransactionPooling>) -> Self {
        self.pooling = pooling;
        self
    }
    /// The handle.
    pub fn build(self) -> MonitoredPool<DB> {
        let peer = Peer::of(&self.pool);
        MonitoredPool {
            pool: self.pool,
            shared: Arc::new(Shared {
                state: Mutex::new(State::new()),
                leak_threshold: self.leak_threshold,
                benchmark: self.benchmark,
                pooling: self.pooling,
                peer,
                histograms: Histograms::new(),
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
            pooling: None,
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

    /// The observer every statement is reported to, if any (a handle derived from this one,
    /// such as a read replica's or the replica router's write handle, chains it).
    pub fn observer(&self) -> Option<&Arc<dyn QueryObserver>> {
        self.observer.as_ref()
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
    /// back down in `Drop`, so it never stays high). While the connection is held it counts
    /// in [`HandleStats::held`], and past the leak threshold as leaked, with the `file:line`
    /// of this call.
    ///
    /// `&mut *conn` is an [`Executor`](sqlx::Executor) whose every statement is timed into
    /// the handle's [`QueryObserver`]; `conn.begin()` starts a [`MonitoredTransaction`] on it;
    /// `&mut **conn` is the driver connection (statements on it are not observed).
    ///
    /// # Errors
    /// [`PoolError::AcquireTimeout`] after the pool's acquire timeout, [`PoolError::Acquire`]
    /// when connecting fails or the pool is closed.
    #[track_caller]
    pub fn acquire(
        &self,
    ) -> impl Future<Output = Result<MonitoredConnection<DB>, PoolError>> + Send + 'static {
        let location = Location::caller();
        let fut = acquire_monitored(self.pool.clone(), self.reporter(), Some(location));
        async move {
            fut.await
                .map(MonitoredConnection::new)
                .map_err(|(e, waited)| match e {
                    sqlx::Error::PoolTimedOut => PoolError::AcquireTimeout { waited },
                    other => PoolError::Acquire(other),
                })
        }
    }

    /// Acquires a connection through the monitored path and starts a transaction on it, the
    /// way [`sqlx::Pool::begin`] does.
    ///
    /// `&mut *tx` is an [`Executor`](sqlx::Executor) whose every statement is timed into the
    /// handle's [`QueryObserver`], and so are the transaction's `BEGIN`, `COMMIT` and
    /// `ROLLBACK` (reported with those texts). The connection counts as held, and past the
    /// leak threshold as leaked with the `file:line` of this call, until the transaction is
    /// committed, rolled back or dropped. Dropping it uncommitted rolls it back, as sqlx's
    /// [`Transaction`](sqlx::Transaction) does.
    ///
    /// # Example
    /// ```no_run
    /// use sqlx::Postgres;
    /// use vitals_pool::{MonitoredPool, PoolError};
    ///
    /// /// Records a visit and returns the student's visit count, in one transaction.
    /// async fn record_visit(pool: &MonitoredPool<Postgres>, student: i64) -> Result<i64, PoolError> {
    ///     let mut tx = pool.begin().await?; // BEGIN, observed; the connection counts as held
    ///     sqlx::query("INSERT INTO visits (student_id, reason) VALUES ($1, $2)")
    ///         .bind(student)
    ///         .bind("headache")
    ///         .execute(&mut *tx) // observed, like every statement on `&mut *tx`
    ///         .await?;
    ///     sqlx::query("UPDATE students SET last_visit = now() WHERE id = $1")
    ///         .bind(student)
    ///         .execute(&mut *tx)
    ///         .await?;
    ///     let visits: i64 = sqlx::query_scalar("SELECT count(*) FROM visits WHERE student_id = $1")
    ///         .bind(student)
    ///         .fetch_one(&mut *tx)
    ///         .await?;
    ///     tx.commit().await?; // COMMIT, observed; dropping `tx` instead rolls back
    ///     Ok(visits)
    /// }
    /// ```
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire); [`PoolError::Sqlx`] when `BEGIN` fails (the connection
    /// then goes back to the pool).
    #[track_caller]
    pub fn begin(
        &self,
    ) -> impl Future<Output = Result<MonitoredTransaction<'static, DB>, PoolError>> + Send + 'static
    {
        let acquire = self.acquire();
        async move {
            let conn = acquire.await?;
            Ok(MonitoredTransaction::begin_owned(conn.into_observed()).await?)
        }
    }

    /// Acquires through the monitored path like [`acquire`](Self::acquire), but fails with
    /// sqlx's own error (a timeout is [`sqlx::Error::PoolTimedOut`]), as an [`Executor`](sqlx::Executor) must.
    /// `location` is the leak site reported while the connection is held (`None`: "executor").
    pub(crate) fn acquire_sqlx(
        &self,
        location: Option<&'static Location<'static>>,
    ) -> impl Future<Output = Result<ObservedConnection<DB>, sqlx::Error>> + Send + 'static {
        let fut = acquire_monitored(self.pool.clone(), self.reporter(), location);
        async move { fut.await.map_err(|(e, _waited)| e) }
    }

    /// A span for a statement run on this pool's connection outside the handle's executors
    /// (an importer's sink on the driver connection): the one the handle opens for its own
    /// statements (OpenTelemetry's database attributes, a child of the current span). Run the
    /// statement in it, then record its end with [`finish_statement_span`](crate::finish_statement_span)
    /// (or, with a sanitised description, [`end_statement_span`](crate::end_statement_span)).
    pub fn statement_span(&self) -> tracing::Span {
        self.shared.peer.span()
    }

    /// Reports one statement at its end exactly as the handle's executors do (the benchmark
    /// histogram when on, [`finish_statement_span`](crate::finish_statement_span) on `span`
    /// unless the observer [records the span's end](QueryObserver::records_span_end) itself,
    /// then the observer's [`on_statement`](QueryObserver::on_statement)), for a statement the
    /// caller did not run through the handle. `span` is one [`statement_span`](Self::statement_span)
    /// opened; it stays the caller's to close.
    ///
    /// Not part of the stable API: it lets `benches/benches/instrumentation.rs` time what the
    /// handle adds to a statement without the database's round trip.
    #[doc(hidden)]
    pub fn report_statement(
        &self,
        span: &tracing::Span,
        sql: &str,
        elapsed: Duration,
        rows: u64,
        error: Option<&sqlx::Error>,
    ) {
        self.reporter().observe(span, sql, elapsed, rows, error);
    }

    /// Under PgBouncer's transaction mode (`DB_PGBOUNCER=transaction`), the statement this
    /// handle begins its transactions with (`BEGIN; SET LOCAL statement_timeout = …; SET LOCAL
    /// idle_in_transaction_session_timeout = …`); `None` otherwise.
    ///
    /// For code that runs statements on the driver connection (`&mut **conn`, an importer's
    /// sink): when this is `Some`, it must begin its transactions with it, run each statement
    /// with `.persistent(false)` and none outside a transaction, as the handle's own
    /// executors do.
    #[must_use]
    pub fn transaction_begin_statement(&self) -> Option<Cow<'static, str>> {
        self.shared
            .pooling
            .as_ref()
            .map(TransactionPooling::begin_statement)
    }

    fn reporter(&self) -> Reporter {
        Reporter {
            shared: Arc::clone(&self.shared),
            observer: self.observer.clone(),
        }
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
}

impl<DB: Database> PoolProbe for MonitoredPool<DB> {
    fn state(&self) -> PoolState {
        let mut s = self.inner().state();
        s.waiting = Some(u32::try_from(self.waiting()).unwrap_or(u32::MAX));
        s.waiting_exact = true;
        s
    }

    fn take_handle_stats(&self) -> Option<HandleStats> {
        Some(self.take_stats())
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
            st.waiters.remove(self.id);
            st.cancelled_total += 1;
        }
    }
}

async fn acquire_monitored<DB: Database>(
    pool: sqlx::Pool<DB>,
    reporter: Reporter,
    location: Option<&'static Location<'static>>,
) -> Result<ObservedConnection<DB>, (sqlx::Error, Duration)> {
    let shared = &reporter.shared;
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
        shared,
        id,
        done: false,
    };
    let result = pool.acquire().await;
    let now = Instant::now();
    let waited = now.saturating_duration_since(start);
    guard.done = true;
    drop(guard);
    let outcome = match &result {
        Ok(_) => Acquired::Ok,
        Err(sqlx::Error::PoolTimedOut) => Acquired::Timeout,
        Err(_) => Acquired::Error,
    };
    shared.histograms.acquire_wait(waited, outcome);
    let mut st = shared.lock();
    st.waiters.remove(id);
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
            let hold = HoldGuard::new(Arc::clone(shared), id, now);
            Ok(ObservedConnection::new(conn, reporter, hold))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_types_are_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<MonitoredPool<sqlx::Postgres>>();
        assert_send_sync::<MonitoredPool<sqlx::Sqlite>>();
        assert_send_sync::<MonitoredConnection<sqlx::Postgres>>();
        assert_send_sync::<ObservedConnection<sqlx::Sqlite>>();
        assert_send_sync::<MonitoredTransaction<'static, sqlx::Postgres>>();
        assert_send_sync::<MonitoredTransaction<'static, sqlx::Sqlite>>();
        assert_send_sync::<HandleStats>();
    }
}
