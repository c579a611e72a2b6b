//! The query logger: the public API that ties the mechanisms together. Recording sanitises
//! and hashes outside the lock, then counts the query in the statistics store and keeps it
//! in the bounded histories in one short critical section; slow ones go to the sink after.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::Utc;

use crate::config::LoggerConfig;
use crate::fingerprint::{Fingerprint, Fingerprinter};
use crate::history::History;
use crate::record::{
    Kept, QueryEvent, QueryRecord, Recorded, RecordedQuery, SlowQuerySink, SlowTier, TracingSink,
};
use crate::report::{FingerprintStats, NPlusOneFinding, PerformanceReport, QueryStatistics};
use crate::sanitize::sanitize_sql;
use crate::scope::{self, Scope, ScopeEnd, ScopeTracker, Scoped};
use crate::scrub::scrub_log_line;
use crate::stats::{us, Sample, Stats};
use crate::summary::SummaryHandle;
use crate::texts::Texts;

/// How many N+1 findings are kept.
const FINDINGS_KEPT: usize = 100;

/// Everything behind the logger's lock.
struct State {
    stats: Stats,
    recent: History<Kept>,
    slow: History<Kept>,
    findings: History<NPlusOneFinding>,
    findings_total: u64,
}

struct Inner {
    config: LoggerConfig,
    fingerprinter: Fingerprinter,
    sink: Arc<dyn SlowQuerySink>,
    /// What the sanitiser made of each text, so a repeated statement is not sanitised again.
    texts: Texts,
    state: Mutex<State>,
}

/// A PHI-safe query logger. Record every statement with [`record`](Self::record);
/// read [`statistics`](Self::statistics), [`slow_queries`](Self::slow_queries),
/// [`recent_queries`](Self::recent_queries), [`report`](Self::report).
///
/// Cloning is cheap (one `Arc`): clone it into every task and layer rather than
/// wrapping it in a lock. It is `Send + Sync`; recording sanitises and hashes
/// outside its single short critical section. Memory is bounded: at most
/// `max_fingerprints` statistics entries (the least used is evicted and
/// counted), `recent_capacity` and `slow_capacity` kept queries, 100 N+1 findings.
/// Only sanitised statements and scrubbed errors are ever kept.
///
/// ```
/// use std::time::Duration;
/// use vitals_querylog::{LoggerConfig, QueryEvent, QueryLogger};
///
/// let logger = QueryLogger::new(LoggerConfig::default());
/// logger.record(QueryEvent::new("SELECT * FROM students WHERE id = 42", Duration::from_millis(3)));
/// let stats = logger.statistics();
/// assert_eq!(stats.total_queries, 1);
/// assert_eq!(stats.queries_by_model["Student"], 1);
/// assert_eq!(stats.most_frequent_queries[0].query, "SELECT * FROM students WHERE id = ?");
/// ```
#[derive(Clone)]
pub struct QueryLogger {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for QueryLogger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryLogger")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl QueryLogger {
    /// A logger that sends slow-query alerts to [`TracingSink`].
    #[must_use]
    pub fn new(config: LoggerConfig) -> Self {
        Self::with_sink(config, Arc::new(TracingSink))
    }

    /// A logger that sends slow-query alerts to `sink`.
    #[must_use]
    pub fn with_sink(config: LoggerConfig, sink: Arc<dyn SlowQuerySink>) -> Self {
        let fingerprinter = Fingerprinter::new(config.fingerprint_key());
        let state = Mutex::new(State {
            stats: Stats::new(config.max_fingerprints()),
            recent: History::new(config.recent_capacity()),
            slow: History::new(config.slow_capacity()),
            findings: History::new(FINDINGS_KEPT),
            findings_total: 0,
        });
        Self {
            inner: Arc::new(Inner {
                config,
                fingerprinter,
                sink,
                texts: Texts::new(),
                state,
            }),
        }
    }

    /// The configuration in force.
    #[must_use]
    pub fn config(&self) -> &LoggerConfig {
        &self.inner.config
    }

    /// The fingerprinter this logger uses (with the configured key).
    #[must_use]
    pub fn fingerprinter(&self) -> Fingerprinter {
        self.inner.fingerprinter
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state()
    }

    /// Records one executed statement and returns its fingerprint. Slow ones
    /// (at or above the warning threshold) go to the slow history and the sink.
    /// When called inside a [`Scope`] this logger opened (see
    /// [`in_scope`](Self::in_scope)), the statement is counted in it too.
    pub fn record(&self, event: QueryEvent<'_>) -> Fingerprint {
        self.record_scoped(&event).fingerprint
    }

    /// Records one executed statement like [`record`](Self::record) and returns what the
    /// logger made of it (sanitised text, operation, table), for a span or a metric of the
    /// same statement: the sanitiser runs once for all of them.
    pub fn record_query(&self, event: QueryEvent<'_>) -> RecordedQuery {
        RecordedQuery::from(&self.record_scoped(&event))
    }

    /// [`record_batch`](Self::record_batch), returning what [`record_query`](Self::record_query)
    /// returns.
    pub fn record_batch_query(&self, event: QueryEvent<'_>) -> RecordedQuery {
        RecordedQuery::from(&self.record_inner(&event))
    }

    fn record_scoped(&self, event: &QueryEvent<'_>) -> Recorded {
        let recorded = self.record_inner(event);
        scope::observe_current(Arc::as_ptr(&self.inner).cast::<()>(), &recorded);
        recorded
    }

    /// Records one executed statement like [`record`](Self::record), but counts it in no
    /// N+1 scope: for batch work whose statements repeat once per batch by design (the
    /// importer's lookups and inserts, one of each per chunk), which would otherwise read as
    /// N+1 in whatever scope runs it. Statistics, histories and slow tiers are the same.
    pub fn record_batch(&self, event: QueryEvent<'_>) -> Fingerprint {
        self.record_inner(&event).fingerprint
    }

    pub(crate) fn record_inner(&self, e: &QueryEvent<'_>) -> Recorded {
        let cfg = &self.inner.config;
        let (sanitized, fp) = self.inner.texts.get(e.sql, |sql| {
            let sanitized = sanitize_sql(sql);
            let fp = self.inner.fingerprinter.fingerprint_sanitized(&sanitized);
            (Arc::from(sanitized), fp)
        });
        let error: Option<Arc<str>> = e.error.map(|t| Arc::from(scrub_log_line(t)));
        let tier = if e.duration >= cfg.slow_critical() {
            Some(SlowTier::Critical)
        } else if e.duration >= cfg.slow_warn() {
            Some(SlowTier::Warning)
        } else {
            None
        };
        let sample = Sample {
            fingerprint: fp,
            sanitized,
            duration_us: us(e.duration),
            tier,
            failed: error.is_some(),
            rows: e.rows,
            model: e.model,
            operation: e.operation,
        };
        let at = Utc::now();

        let mut guard = self.state();
        let st = &mut *guard;
        let described = st.stats.add(sample);
        let rec = Kept {
            at,
            fingerprint: fp,
            sql: described.sql.clone(),
            model: described.model.clone(),
            operation: described.operation.clone(),
            duration: e.duration,
            rows: e.rows,
            error,
            tier,
        };
        // A cheap clone (`Arc`s) under the lock; the public record is built after it.
        let alert = tier.is_some().then(|| rec.clone());
        if tier.is_some() && st.slow.keeps() {
            st.slow.push(rec.clone());
        }
        if st.recent.keeps() {
            st.recent.push(rec);
        }
        // The sink runs outside the lock: it may be slow or record itself.
        drop(guard);
        if let Some(rec) = alert {
            self.inner.sink.on_slow_query(&rec.to_public());
        }
        Recorded {
            fingerprint: fp,
            sql: described.sql,
            model: described.model,
            operation: described.operation,
            collection: described.collection,
            duration: e.duration,
        }
    }

    /// Current statistics: totals, per model, the slowest and the most frequent
    /// statements (10 each) with p50/p95/p99.
    #[must_use]
    pub fn statistics(&self) -> QueryStatistics {
        let st = self.state();
        st.stats.statistics(st.findings_total)
    }

    /// Statistics of every tracked fingerprint, most frequent first.
    #[must_use]
    pub fn fingerprint_stats(&self) -> Vec<FingerprintStats> {
        self.state().stats.fingerprint_stats()
    }

    /// The latest slow queries, newest first, at most `limit`.
    #[must_use]
    pub fn slow_queries(&self, limit: usize) -> Vec<QueryRecord> {
        newest(&self.state().slow, limit)
    }

    /// The latest queries, newest first, at most `limit`.
    #[must_use]
    pub fn recent_queries(&self, limit: usize) -> Vec<QueryRecord> {
        newest(&self.state().recent, limit)
    }

    /// The latest N+1 findings, newest first.
    #[must_use]
    pub fn n_plus_one_findings(&self) -> Vec<NPlusOneFinding> {
        self.state().findings.newest().cloned().collect()
    }

    /// A report (text with [`PerformanceReport::to_text`], JSON through serde).
    #[must_use]
    pub fn report(&self) -> PerformanceReport {
        let statistics = self.statistics();
        PerformanceReport {
            generated_at: Utc::now(),
            statistics,
            slow_queries: self.slow_queries(10),
            n_plus_one: self.state().findings.newest().take(10).cloned().collect(),
        }
    }

    /// Writes one `info` line (target `vitals_querylog`) with the totals.
    pub fn log_summary(&self) {
        let s = self.statistics();
        let top = s.most_frequent_queries.first();
        tracing::info!(
            target: "vitals_querylog",
            total = s.total_queries,
            slow = s.slow_queries,
            critical = s.critical_queries,
            failed = s.failed_queries,
            avg_ms = s.avg_duration_ms,
            max_ms = s.max_duration_ms,
            fingerprints = s.distinct_fingerprints,
            evicted = s.evicted_fingerprints,
            n_plus_one = s.n_plus_one_findings,
            top_fingerprint = %top.map(|t| t.fingerprint.to_string()).unwrap_or_default(),
            top_count = top.map_or(0, |t| t.count),
            "query summary"
        );
    }

    /// Starts a thread that calls [`log_summary`](Self::log_summary) every
    /// `interval` until the handle is dropped or stopped. A thread rather than a
    /// task so that it works under any runtime, or none.
    ///
    /// # Errors
    ///
    /// [`crate::Error::SpawnSummary`] when the thread cannot be started.
    pub fn spawn_summary(&self, interval: Duration) -> Result<SummaryHandle, crate::Error> {
        let logger = self.clone();
        SummaryHandle::spawn(interval, move || logger.log_summary())
            .map_err(crate::Error::SpawnSummary)
    }

    /// Starts the summary thread at the configured interval
    /// (`DB_QUERYLOG_SUMMARY_SECS`); `None` when that is off.
    ///
    /// # Errors
    ///
    /// [`crate::Error::SpawnSummary`] when the thread cannot be started.
    pub fn start_configured_summary(&self) -> Result<Option<SummaryHandle>, crate::Error> {
        match self.inner.config.summary_interval() {
            Some(interval) => self.spawn_summary(interval).map(Some),
            None => Ok(None),
        }
    }

    /// Opens an N+1 detection scope (e.g. one request). Queries recorded through
    /// the guard, and every [`record`](Self::record) inside a future it
    /// [`run`](ScopeGuard::run)s, are counted per fingerprint; when the scope ends
    /// (the guard drops, and every future it was carried into), each fingerprint
    /// seen `n_plus_one_threshold` times or more becomes a finding.
    /// The name is scrubbed (a route may hold an id).
    #[must_use]
    pub fn scope(&self, name: &str) -> ScopeGuard {
        ScopeGuard {
            logger: self.clone(),
            scope: self.open_scope(name),
        }
    }

    /// Runs `future` inside a new N+1 detection scope named `name` (scrubbed): every
    /// [`record`](Self::record) on this logger while it runs is counted in the scope, across
    /// `.await`s and on whatever worker thread, with no guard passed around. Tasks it spawns
    /// are counted when their futures are wrapped with [`scoped`](crate::scoped). The scope
    /// ends when the returned future is dropped (normally right after it completes) and
    /// every future it was carried into has finished; each fingerprint seen
    /// `n_plus_one_threshold` times or more (default 5) is then one finding, in
    /// [`n_plus_one_findings`](Self::n_plus_one_findings), the report and the statistics,
    /// and one `warn` event (target `vitals_querylog`) naming the scope, the fingerprint and
    /// the sanitised statement. Scopes nest: a statement counts in the innermost one only.
    ///
    /// Nothing in it is HTTP-specific: a tower layer wraps each request's future with it,
    /// and a job or an import wraps its own work the same way:
    ///
    /// ```
    /// use std::time::Duration;
    /// use vitals_querylog::{LoggerConfig, QueryEvent, QueryLogger};
    ///
    /// /// A nightly job that looks up each student's allergies one by one.
    /// async fn nightly_allergy_check(logger: QueryLogger) {
    ///     for id in 0..6 {
    ///         let sql = format!("SELECT * FROM allergies WHERE student_id = {id}");
    ///         // As the pool's observer does: a plain `record`, no scope in hand.
    ///         logger.record(QueryEvent::new(&sql, Duration::from_millis(2)));
    ///         tokio::task::yield_now().await;
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let logger = QueryLogger::new(LoggerConfig::default());
    /// logger
    ///     .in_scope("job nightly_allergy_check", nightly_allergy_check(logger.clone()))
    ///     .await;
    /// let finding = &logger.n_plus_one_findings()[0];
    /// assert_eq!(finding.scope, "job nightly_allergy_check");
    /// assert_eq!(finding.query, "SELECT * FROM allergies WHERE student_id = ?");
    /// assert_eq!(finding.count, 6);
    /// assert_eq!(logger.statistics().n_plus_one_findings, 1);
    /// # }
    /// ```
    pub fn in_scope<F: Future>(&self, name: &str, future: F) -> Scoped<F> {
        self.open_scope(name).wrap(future)
    }

    /// Runs `f` inside a new N+1 detection scope named `name`, on this thread: the
    /// synchronous form of [`in_scope`](Self::in_scope) (a job with no runtime, a
    /// `spawn_blocking` closure). The scope ends when `f` returns.
    ///
    /// ```
    /// use std::time::Duration;
    /// use vitals_querylog::{LoggerConfig, QueryEvent, QueryLogger};
    ///
    /// let logger = QueryLogger::new(LoggerConfig::default());
    /// logger.in_scope_sync("import vaccinations.csv", || {
    ///     for id in 0..5 {
    ///         let sql = format!("SELECT id FROM students WHERE external_id = '{id}'");
    ///         logger.record(QueryEvent::new(&sql, Duration::from_millis(1)));
    ///     }
    /// });
    /// assert_eq!(logger.n_plus_one_findings()[0].count, 5);
    /// ```
    ///
    /// # Panics
    ///
    /// As [`Scope::wrap_sync`]: only while this thread's thread-locals are being destroyed.
    pub fn in_scope_sync<R>(&self, name: &str, f: impl FnOnce() -> R) -> R {
        self.open_scope(name).wrap_sync(f)
    }

    fn open_scope(&self, name: &str) -> Scope {
        Scope::open(name, self.inner.clone())
    }

    /// Ends an N+1 scope: logs its findings and keeps them.
    #[cfg(feature = "layer")]
    pub(crate) fn finish_scope(&self, tracker: ScopeTracker) {
        self.inner.end_scope(tracker);
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves counters at worst one event
        // behind; keep serving rather than poisoning every caller.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ScopeEnd for Inner {
    fn end_scope(&self, tracker: ScopeTracker) {
        let findings = tracker.finish(self.config.n_plus_one_threshold());
        if findings.is_empty() {
            return;
        }
        for f in &findings {
            // One event per finding; the statement is the sanitised one.
            tracing::warn!(
                target: "vitals_querylog",
                scope = %f.scope, fingerprint = %f.fingerprint, count = f.count,
                total_ms = f.total_ms, sql = %f.query, "possible N+1 query pattern"
            );
        }
        let mut st = self.state();
        for f in findings {
            st.findings_total += 1;
            st.findings.push(f);
        }
    }
}

/// The newest `limit` records of `history`, newest first.
fn newest(history: &History<Kept>, limit: usize) -> Vec<QueryRecord> {
    history.newest().take(limit).map(Kept::to_public).collect()
}

/// An N+1 detection scope from [`QueryLogger::scope`]. Record through it, or
/// [`run`](Self::run) a future inside it; its findings are made when it drops (and every
/// future it was carried into has finished). `Send + Sync`, so it can be held across
/// `.await` and shared by reference among the futures of one request.
pub struct ScopeGuard {
    logger: QueryLogger,
    scope: Scope,
}

impl std::fmt::Debug for ScopeGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopeGuard").finish_non_exhaustive()
    }
}

impl ScopeGuard {
    /// Records the event in the logger and counts it in this scope.
    pub fn record(&self, event: QueryEvent<'_>) -> Fingerprint {
        let r = self.logger.record_inner(&event);
        self.scope.observe(&r);
        r.fingerprint
    }

    /// Runs `future` inside this scope: every [`QueryLogger::record`] on the guard's logger
    /// while it runs is counted here, as with [`QueryLogger::in_scope`].
    pub fn run<F: Future>(&self, future: F) -> Scoped<F> {
        self.scope.clone().wrap(future)
    }

    /// The scope, to carry into a spawned task with [`Scope::wrap`].
    #[must_use]
    pub fn as_scope(&self) -> &Scope {
        &self.scope
    }
}
