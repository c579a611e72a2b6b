//! [`MonitoredPool`]: a sqlx pool handle that counts its waiters exactly and times acquire,
//! hold and (optionally) every query.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt};
use futures::stream::{BoxStream, StreamExt};
use futures::SinkExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use sqlx::pool::PoolConnection;
use sqlx::{Database, Describe, Either, Execute, Executor};

use crate::error::PoolError;

/// Sees every statement run through `&MonitoredPool` as an [`Executor`].
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

/// The rows affected of a driver's query result (sqlx has no trait for it).
pub trait RowsAffected {
    /// Rows inserted, updated or deleted.
    fn rows_affected(&self) -> u64;
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

/// p50/p95/p99/max of a latency histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Number of recorded values.
    pub count: u64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Largest value, ms.
    pub max_ms: f64,
}

impl LatencySummary {
    fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

/// What only the monitored handle can tell: exact waiters, latencies and counters.
///
/// Percentiles and `peak_waiting` cover the window since the previous
/// [`MonitoredPool::take_stats`] (the [`PoolMonitor`](crate::PoolMonitor) takes one per
/// sample); the `*_total` counters are cumulative.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HandleStats {
    /// Tasks inside `acquire` right now.
    pub waiting: u32,
    /// Most tasks waiting at once during the window.
    pub peak_waiting: u32,
    /// Age of the oldest waiter, ms.
    pub oldest_wait_ms: Option<u64>,
    /// Connections held through the handle right now.
    pub held: u32,
    /// Connections held through the handle for longer than the leak threshold right now.
    pub leaked: u32,
    /// Where the leaked connections were acquired (`file:line`, up to 5).
    pub leak_sites: Vec<String>,
    /// Time to acquire a connection.
    pub acquire: LatencySummary,
    /// Time a connection was held before it went back.
    pub hold: LatencySummary,
    /// Statement time (only with benchmark on).
    pub query: Option<LatencySummary>,
    /// Acquisitions that returned a connection.
    pub acquired_total: u64,
    /// Acquisitions that hit the acquire timeout.
    pub acquire_timeouts_total: u64,
    /// Acquisitions dropped by their caller before they finished.
    pub cancelled_acquires_total: u64,
    /// Acquisitions that failed because no connection could be opened (an error, or a
    /// timeout while the pool was below its maximum size: sqlx retries refused connections
    /// until the acquire deadline).
    pub acquire_errors_total: u64,
    /// Connections released after having been held past the leak threshold.
    pub long_holds_total: u64,
    /// Kind of the latest acquire error (no message text that could carry data).
    pub last_acquire_error: Option<String>,
}

struct Held {
    since: Instant,
    location: Option<&'static Location<'static>>,
    reported: bool,
}

struct State {
    next_id: u64,
    waiters: BTreeMap<u64, Instant>,
    peak_waiting: usize,
    held: BTreeMap<u64, Held>,
    acquire: Histogram<u64>,
    hold: Histogram<u64>,
    query: Histogram<u64>,
    acquired_total: u64,
    timeouts_total: u64,
    cancelled_total: u64,
    errors_total: u64,
    long_holds_total: u64,
    last_error: Option<String>,
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 1 h at two significant digits: about 30 KB, 1 % resolution.
    match Histogram::new_with_bounds(1, 3_600_000_000, 2) {
        Ok(h) => h,
        // Invariant: these constant bounds are valid (low >= 1, high >= 2 * low, sigfig <= 5).
        Err(e) => unreachable!("constant hdrhistogram bounds rejected: {e}"),
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
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
/// query run with `&MonitoredPool` as an [`Executor`] (`query(..).fetch_all(&pool)`).
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
                state: Mutex::new(State {
                    next_id: 0,
                    waiters: BTreeMap::new(),
                    peak_waiting: 0,
                    held: BTreeMap::new(),
                    acquire: histogram(),
                    hold: histogram(),
                    query: histogram(),
                    acquired_total: 0,
                    timeouts_total: 0,
                    cancelled_total: 0,
                    errors_total: 0,
                    long_holds_total: 0,
                    last_error: None,
                }),
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
    /// sqlx's own error (a timeout is [`sqlx::Error::PoolTimedOut`]), as an [`Executor`] must.
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
        let threshold = self.shared.leak_threshold;
        let mut st = self.shared.lock();
        let mut leaked = 0u32;
        let mut sites = Vec::new();
        if let Some(limit) = threshold {
            for h in st.held.values_mut() {
                let age = now.saturating_duration_since(h.since);
                if age >= limit {
                    leaked += 1;
                    let site = h.location.map_or_else(
                        || "executor".to_owned(),
                        |l| format!("{}:{}", l.file(), l.line()),
                    );
                    if !h.reported {
                        h.reported = true;
                        tracing::warn!(
                            held_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
                            site = %site,
                            "pool connection held past the leak threshold"
                        );
                    }
                    if sites.len() < 5 {
                        sites.push(format!("{site} (held {} ms)", age.as_millis()));
                    }
                }
            }
        }
        let stats = HandleStats {
            waiting: count(st.waiters.len()),
            peak_waiting: count(st.peak_waiting.max(st.waiters.len())),
            oldest_wait_ms: st.waiters.values().next().map(|t| {
                u64::try_from(now.saturating_duration_since(*t).as_millis()).unwrap_or(u64::MAX)
            }),
            held: count(st.held.len()),
            leaked,
            leak_sites: sites,
            acquire: LatencySummary::of(&st.acquire),
            hold: LatencySummary::of(&st.hold),
            query: self.shared.benchmark.then(|| LatencySummary::of(&st.query)),
            acquired_total: st.acquired_total,
            acquire_timeouts_total: st.timeouts_total,
            cancelled_acquires_total: st.cancelled_total,
            acquire_errors_total: st.errors_total,
            long_holds_total: st.long_holds_total,
            last_acquire_error: st.last_error.clone(),
        };
        if reset {
            st.peak_waiting = st.waiters.len();
            st.acquire.reset();
            st.hold.reset();
            st.query.reset();
        }
        stats
    }

    fn observe(&self, sql: &str, started: Instant, rows: u64, error: Option<&sqlx::Error>) {
        let elapsed = started.elapsed();
        if self.shared.benchmark {
            self.shared.lock().query.saturating_record(micros(elapsed));
        }
        if let Some(o) = &self.observer {
            o.on_query(sql, elapsed, rows, error);
        }
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
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

/// A short description of an error that carries no data: the I/O kind or the SQLSTATE.
pub(crate) fn error_kind(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) => format!("io: {:?}", io.kind()),
        sqlx::Error::Database(db) => format!(
            "database error, sqlstate {}",
            db.code().as_deref().unwrap_or("unknown")
        ),
        sqlx::Error::Tls(_) => "tls error".to_owned(),
        sqlx::Error::PoolTimedOut => "pool timed out".to_owned(),
        sqlx::Error::PoolClosed => "pool closed".to_owned(),
        sqlx::Error::Protocol(_) => "protocol error".to_owned(),
        sqlx::Error::Configuration(_) => "configuration error".to_owned(),
        _ => "other error".to_owned(),
    }
}

/// A connection acquired through [`MonitoredPool`]; goes back to the pool on drop, and its
/// hold time is recorded then.
///
/// Derefs to the driver connection, so `&mut *conn` is an [`Executor`], as with sqlx's own
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

/// Calls the observer if the statement stream is dropped before it finished.
struct Observation<'a, DB: Database> {
    pool: &'a MonitoredPool<DB>,
    sql: &'a str,
    started: Instant,
    returned: u64,
    affected: u64,
    done: bool,
}

impl<DB: Database> Observation<'_, DB> {
    fn finish(&mut self, error: Option<&sqlx::Error>) {
        if !self.done {
            self.done = true;
            // PostgreSQL reports a SELECT's row count as rows affected too: prefer the rows
            // returned, and fall back to rows affected for INSERT/UPDATE/DELETE.
            let rows = if self.returned > 0 {
                self.returned
            } else {
                self.affected
            };
            self.pool.observe(self.sql, self.started, rows, error);
        }
    }
}

impl<DB: Database> Drop for Observation<'_, DB> {
    fn drop(&mut self) {
        self.finish(None);
    }
}

/// Each statement acquires through the monitored path, like sqlx's `impl Executor for &Pool`.
///
/// `fetch_many` streams: a producer owning the connection feeds a bounded channel of 8
/// items, so a large result is not collected in memory. When the caller drops the stream
/// early, the observer still hears of the statement, with the rows produced so far (up to
/// the channel's buffer more than the caller read).
impl<'p, DB: Database> Executor<'p> for &'_ MonitoredPool<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::QueryResult: RowsAffected,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, sqlx::Error>>
    where
        E: 'q + Execute<'q, DB>,
    {
        let pool = self.clone();
        let sql = query.sql();
        let (mut tx, rx) = futures::channel::mpsc::channel(8);
        let producer = async move {
            let mut conn = match pool.acquire_sqlx(None).await {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let mut obs = Observation {
                pool: &pool,
                sql,
                started: Instant::now(),
                returned: 0,
                affected: 0,
                done: false,
            };
            let mut stream = (&mut *conn).fetch_many(query);
            while let Some(item) = stream.next().await {
                match &item {
                    Ok(Either::Left(done)) => obs.affected += done.rows_affected(),
                    Ok(Either::Right(_)) => obs.returned += 1,
                    Err(e) => obs.finish(Some(e)),
                }
                if tx.send(item).await.is_err() {
                    break; // the caller dropped the stream
                }
            }
            obs.finish(None);
        };
        let producer = producer.into_stream().filter_map(|()| async { None });
        Box::pin(futures::stream::select(producer, rx))
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
    where
        E: 'q + Execute<'q, DB>,
    {
        let pool = self.clone();
        let sql = query.sql();
        Box::pin(async move {
            let mut conn = pool.acquire_sqlx(None).await?;
            let started = Instant::now();
            let result = (&mut *conn).fetch_optional(query).await;
            let rows = u64::from(matches!(result, Ok(Some(_))));
            pool.observe(sql, started, rows, result.as_ref().err());
            result
        })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement<'q>, sqlx::Error>> {
        let pool = self.clone();
        Box::pin(async move {
            let mut conn = pool.acquire_sqlx(None).await?;
            (&mut *conn).prepare_with(sql, parameters).await
        })
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> BoxFuture<'e, Result<Describe<DB>, sqlx::Error>> {
        let pool = self.clone();
        Box::pin(async move {
            let mut conn = pool.acquire_sqlx(None).await?;
            (&mut *conn).describe(sql).await
        })
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
