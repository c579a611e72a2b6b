//! The query logger: statistics per fingerprint, slow tiers, history, N+1 scopes.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::config::LoggerConfig;
use crate::fingerprint::{Fingerprint, Fingerprinter};
use crate::report::{FingerprintStats, NPlusOneFinding, PerformanceReport, QueryStatistics};
use crate::sanitize::sanitize_sql;
use crate::scrub::{scrub_log_line, scrub_text};

/// One executed statement, as handed to [`QueryLogger::record`]. Borrowed, so
/// recording never copies the raw statement; the logger keeps only its
/// sanitised form.
#[derive(Clone, Copy, Debug)]
pub struct QueryEvent<'a> {
    /// The statement as executed (raw: it is sanitised before anything keeps it).
    pub sql: &'a str,
    /// The model (e.g. `Student`); derived from the first table when `None`.
    pub model: Option<&'a str>,
    /// The operation (e.g. `SELECT`); derived from the statement when `None`.
    pub operation: Option<&'a str>,
    /// How long it took.
    pub duration: Duration,
    /// Rows returned or affected, if known.
    pub rows: Option<u64>,
    /// The error text, if it failed (scrubbed before it is kept).
    pub error: Option<&'a str>,
}

impl<'a> QueryEvent<'a> {
    /// An event for `sql` that took `duration`.
    #[must_use]
    pub fn new(sql: &'a str, duration: Duration) -> Self {
        Self {
            sql,
            model: None,
            operation: None,
            duration,
            rows: None,
            error: None,
        }
    }

    /// Sets the model.
    #[must_use]
    pub fn with_model(mut self, model: &'a str) -> Self {
        self.model = Some(model);
        self
    }

    /// Sets the operation.
    #[must_use]
    pub fn with_operation(mut self, operation: &'a str) -> Self {
        self.operation = Some(operation);
        self
    }

    /// Sets the row count.
    #[must_use]
    pub fn with_rows(mut self, rows: u64) -> Self {
        self.rows = Some(rows);
        self
    }

    /// Sets the error text (raw; it is scrubbed).
    #[must_use]
    pub fn with_error(mut self, error: &'a str) -> Self {
        self.error = Some(error);
        self
    }
}

/// How slow a query was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlowTier {
    /// At or above the warning threshold.
    Warning,
    /// At or above the critical threshold.
    Critical,
}

/// A kept query: sanitised statement, scrubbed error, never a literal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueryRecord {
    /// When it was recorded.
    pub at: DateTime<Utc>,
    /// Its fingerprint.
    pub fingerprint: Fingerprint,
    /// The sanitised statement.
    pub sql: String,
    /// The model, given or derived.
    pub model: Option<String>,
    /// The operation, given or derived.
    pub operation: String,
    /// Duration in milliseconds.
    pub duration_ms: f64,
    /// Rows returned or affected, if known.
    pub rows: Option<u64>,
    /// The scrubbed error text, if it failed.
    pub error: Option<String>,
    /// The slow tier, if slow.
    pub tier: Option<SlowTier>,
}

/// Where slow-query alerts go. One method, so a pager, a metrics counter or a
/// channel is a few lines; [`TracingSink`] is the default.
pub trait SlowQuerySink: Send + Sync {
    /// Called once per query at or above the warning threshold, after it is recorded.
    fn on_slow_query(&self, query: &QueryRecord);
}

/// The default sink: a `warn` event for the warning tier and an `error` event
/// for the critical tier, target `vitals_querylog`, with the sanitised statement.
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingSink;

impl SlowQuerySink for TracingSink {
    fn on_slow_query(&self, q: &QueryRecord) {
        let fp = q.fingerprint.to_string();
        let model = q.model.as_deref().unwrap_or("-");
        match q.tier {
            Some(SlowTier::Critical) => tracing::error!(
                target: "vitals_querylog",
                fingerprint = %fp, model, operation = %q.operation, duration_ms = q.duration_ms,
                sql = %q.sql, "critical slow query"
            ),
            _ => tracing::warn!(
                target: "vitals_querylog",
                fingerprint = %fp, model, operation = %q.operation, duration_ms = q.duration_ms,
                sql = %q.sql, "slow query"
            ),
        }
    }
}

/// What the logger kept of one event, handed to N+1 scopes.
#[derive(Clone, Debug)]
pub(crate) struct Recorded {
    pub(crate) fingerprint: Fingerprint,
    pub(crate) sql: Arc<str>,
    pub(crate) model: Option<Arc<str>>,
    pub(crate) duration: Duration,
}

#[derive(Clone, Debug)]
struct Rec {
    at: DateTime<Utc>,
    fingerprint: Fingerprint,
    sql: Arc<str>,
    model: Option<Arc<str>>,
    operation: Arc<str>,
    duration: Duration,
    rows: Option<u64>,
    error: Option<Arc<str>>,
    tier: Option<SlowTier>,
}

impl Rec {
    fn to_public(&self) -> QueryRecord {
        QueryRecord {
            at: self.at,
            fingerprint: self.fingerprint,
            sql: self.sql.to_string(),
            model: self.model.as_deref().map(str::to_string),
            operation: self.operation.to_string(),
            duration_ms: ms(self.duration),
            rows: self.rows,
            error: self.error.as_deref().map(str::to_string),
            tier: self.tier,
        }
    }
}

/// Milliseconds to the microsecond: a 16-digit fraction in a log line is noise, and long
/// digit runs can look like card numbers to a PHI scanner.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// `x` to three decimals (microseconds, for values in ms).
pub(crate) fn round_ms(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

struct Entry {
    sql: Arc<str>,
    model: Option<Arc<str>>,
    operation: Arc<str>,
    count: u64,
    total_us: u64,
    min_us: u64,
    max_us: u64,
    errors: u64,
    rows: u64,
    hist: Option<Histogram<u32>>,
    last_seen: u64,
}

impl Entry {
    /// The longest execution in milliseconds ([`FingerprintStats::max_ms`]).
    fn max_ms(&self) -> f64 {
        self.max_us as f64 / 1000.0
    }

    fn stats(&self, fp: Fingerprint) -> FingerprintStats {
        let q = |p: f64| {
            self.hist
                .as_ref()
                .map_or(0.0, |h| h.value_at_quantile(p) as f64 / 1000.0)
        };
        FingerprintStats {
            fingerprint: fp,
            query: self.sql.to_string(),
            model: self.model.as_deref().map(str::to_string),
            operation: self.operation.to_string(),
            count: self.count,
            errors: self.errors,
            rows: self.rows,
            avg_ms: if self.count == 0 {
                0.0
            } else {
                round_ms(self.total_us as f64 / self.count as f64 / 1000.0)
            },
            min_ms: self.min_us as f64 / 1000.0,
            max_ms: self.max_ms(),
            p50_ms: q(0.50),
            p95_ms: q(0.95),
            p99_ms: q(0.99),
        }
    }
}

#[derive(Default)]
struct State {
    total: u64,
    slow: u64,
    critical: u64,
    errors: u64,
    total_us: u64,
    min_us: Option<u64>,
    max_us: u64,
    seq: u64,
    by_model: HashMap<Arc<str>, u64>,
    fingerprints: HashMap<Fingerprint, Entry>,
    evicted_fingerprints: u64,
    evicted_queries: u64,
    recent: VecDeque<Rec>,
    slow_history: VecDeque<Rec>,
    findings: VecDeque<NPlusOneFinding>,
    findings_total: u64,
}

/// The model bucket used once the per-model map is as large as the fingerprint cap.
const OTHER_MODEL: &str = "(other)";
/// How many N+1 findings are kept.
const FINDINGS_KEPT: usize = 100;
/// How many queries the statistics' top lists hold.
const TOP: usize = 10;

struct Inner {
    config: LoggerConfig,
    fingerprinter: Fingerprinter,
    sink: Arc<dyn SlowQuerySink>,
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
        Self {
            inner: Arc::new(Inner {
                config,
                fingerprinter,
                sink,
                state: Mutex::new(State::default()),
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
        // A panic while holding the lock leaves counters at worst one event
        // behind; keep serving rather than poisoning every caller.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records one executed statement and returns its fingerprint. Slow ones
    /// (at or above the warning threshold) go to the slow history and the sink.
    pub fn record(&self, event: QueryEvent<'_>) -> Fingerprint {
        self.record_inner(&event).fingerprint
    }

    pub(crate) fn record_inner(&self, e: &QueryEvent<'_>) -> Recorded {
        let cfg = &self.inner.config;
        let sanitized = sanitize_sql(e.sql);
        let fp = self.inner.fingerprinter.fingerprint_sanitized(&sanitized);
        let error: Option<Arc<str>> = e.error.map(|t| Arc::from(scrub_log_line(t)));
        let tier = if e.duration >= cfg.slow_critical() {
            Some(SlowTier::Critical)
        } else if e.duration >= cfg.slow_warn() {
            Some(SlowTier::Warning)
        } else {
            None
        };
        let d_us = us(e.duration);
        let at = Utc::now();

        let mut guard = self.state();
        let st = &mut *guard;
        st.seq += 1;
        st.total += 1;
        st.total_us = st.total_us.saturating_add(d_us);
        st.min_us = Some(st.min_us.map_or(d_us, |m| m.min(d_us)));
        st.max_us = st.max_us.max(d_us);
        if tier.is_some() {
            st.slow += 1;
        }
        if tier == Some(SlowTier::Critical) {
            st.critical += 1;
        }
        if error.is_some() {
            st.errors += 1;
        }

        if st.fingerprints.len() >= cfg.max_fingerprints() && !st.fingerprints.contains_key(&fp) {
            evict_one(st);
        }
        let seq = st.seq;
        let entry = st.fingerprints.entry(fp).or_insert_with(|| {
            let (operation, model) = describe(&sanitized);
            Entry {
                sql: Arc::from(sanitized),
                model,
                operation,
                count: 0,
                total_us: 0,
                min_us: u64::MAX,
                max_us: 0,
                errors: 0,
                rows: 0,
                hist: Histogram::new(2).ok(),
                last_seen: 0,
            }
        });
        entry.count += 1;
        entry.total_us = entry.total_us.saturating_add(d_us);
        entry.min_us = entry.min_us.min(d_us);
        entry.max_us = entry.max_us.max(d_us);
        entry.last_seen = seq;
        if error.is_some() {
            entry.errors += 1;
        }
        entry.rows = entry.rows.saturating_add(e.rows.unwrap_or(0));
        if let Some(h) = entry.hist.as_mut() {
            // `record` grows the histogram; clamp only if it cannot grow further.
            if h.record(d_us).is_err() {
                h.saturating_record(d_us);
            }
        }
        let model = match e.model {
            Some(m) if entry.model.as_deref() == Some(m) => entry.model.clone(),
            Some(m) => Some(Arc::from(scrub_text(m))),
            None => entry.model.clone(),
        };
        let operation = match e.operation {
            Some(o) if &*entry.operation != o => Arc::from(scrub_text(o)),
            _ => entry.operation.clone(),
        };
        let sql = entry.sql.clone();

        if let Some(m) = &model {
            if let Some(n) = st.by_model.get_mut(&**m) {
                *n += 1;
            } else if st.by_model.len() < cfg.max_fingerprints() {
                st.by_model.insert(m.clone(), 1);
            } else {
                *st.by_model.entry(Arc::from(OTHER_MODEL)).or_insert(0) += 1;
            }
        }

        let rec = Rec {
            at,
            fingerprint: fp,
            sql: sql.clone(),
            model: model.clone(),
            operation,
            duration: e.duration,
            rows: e.rows,
            error,
            tier,
        };
        // A cheap clone (`Arc`s) under the lock; the public record is built after it.
        let alert = tier.is_some().then(|| rec.clone());
        if tier.is_some() && cfg.slow_capacity() > 0 {
            if st.slow_history.len() >= cfg.slow_capacity() {
                st.slow_history.pop_front();
            }
            st.slow_history.push_back(rec.clone());
        }
        if cfg.recent_capacity() > 0 {
            if st.recent.len() >= cfg.recent_capacity() {
                st.recent.pop_front();
            }
            st.recent.push_back(rec);
        }
        // The sink runs outside the lock: it may be slow or record itself.
        drop(guard);
        if let Some(rec) = alert {
            self.inner.sink.on_slow_query(&rec.to_public());
        }
        Recorded {
            fingerprint: fp,
            sql,
            model,
            duration: e.duration,
        }
    }

    /// Current statistics: totals, per model, the slowest and the most frequent
    /// statements (10 each) with p50/p95/p99.
    #[must_use]
    pub fn statistics(&self) -> QueryStatistics {
        let st = self.state();
        let slowest = top_stats(&st.fingerprints, TOP, slowest_first);
        let most_frequent = top_stats(&st.fingerprints, TOP, most_frequent_first);
        QueryStatistics {
            total_queries: st.total,
            slow_queries: st.slow,
            critical_queries: st.critical,
            failed_queries: st.errors,
            avg_duration_ms: if st.total == 0 {
                0.0
            } else {
                round_ms(st.total_us as f64 / st.total as f64 / 1000.0)
            },
            min_duration_ms: st.min_us.unwrap_or(0) as f64 / 1000.0,
            max_duration_ms: st.max_us as f64 / 1000.0,
            queries_by_model: st
                .by_model
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<BTreeMap<_, _>>(),
            slowest_queries: slowest,
            most_frequent_queries: most_frequent,
            distinct_fingerprints: st.fingerprints.len() as u64,
            evicted_fingerprints: st.evicted_fingerprints,
            evicted_queries: st.evicted_queries,
            n_plus_one_findings: st.findings_total,
        }
    }

    /// Statistics of every tracked fingerprint, most frequent first.
    #[must_use]
    pub fn fingerprint_stats(&self) -> Vec<FingerprintStats> {
        let st = self.state();
        top_stats(&st.fingerprints, usize::MAX, most_frequent_first)
    }

    /// The latest slow queries, newest first, at most `limit`.
    #[must_use]
    pub fn slow_queries(&self, limit: usize) -> Vec<QueryRecord> {
        newest(&self.state().slow_history, limit)
    }

    /// The latest queries, newest first, at most `limit`.
    #[must_use]
    pub fn recent_queries(&self, limit: usize) -> Vec<QueryRecord> {
        newest(&self.state().recent, limit)
    }

    /// The latest N+1 findings, newest first.
    #[must_use]
    pub fn n_plus_one_findings(&self) -> Vec<NPlusOneFinding> {
        self.state().findings.iter().rev().cloned().collect()
    }

    /// A report (text with [`PerformanceReport::to_text`], JSON through serde).
    #[must_use]
    pub fn report(&self) -> PerformanceReport {
        let statistics = self.statistics();
        PerformanceReport {
            generated_at: Utc::now(),
            statistics,
            slow_queries: self.slow_queries(10),
            n_plus_one: self
                .state()
                .findings
                .iter()
                .rev()
                .take(10)
                .cloned()
                .collect(),
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
        let (tx, rx) = mpsc::channel::<()>();
        let logger = self.clone();
        let thread = std::thread::Builder::new()
            .name("querylog-summary".into())
            .spawn(move || {
                // Stops when the handle sends or is dropped (disconnected).
                while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(interval) {
                    logger.log_summary();
                }
            })
            .map_err(crate::Error::SpawnSummary)?;
        Ok(SummaryHandle {
            stop: Some(tx),
            thread: Some(thread),
        })
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
    /// the guard are counted per fingerprint; when the guard drops, each
    /// fingerprint seen `n_plus_one_threshold` times or more becomes a finding.
    /// The name is scrubbed (a route may hold an id).
    #[must_use]
    pub fn scope(&self, name: &str) -> ScopeGuard {
        ScopeGuard {
            logger: self.clone(),
            tracker: Mutex::new(ScopeTracker::new(name)),
        }
    }

    pub(crate) fn add_findings(&self, findings: Vec<NPlusOneFinding>) {
        if findings.is_empty() {
            return;
        }
        for f in &findings {
            tracing::warn!(
                target: "vitals_querylog",
                scope = %f.scope, fingerprint = %f.fingerprint, count = f.count,
                total_ms = f.total_ms, sql = %f.query, "possible N+1 query pattern"
            );
        }
        let mut st = self.state();
        for f in findings {
            st.findings_total += 1;
            if st.findings.len() >= FINDINGS_KEPT {
                st.findings.pop_front();
            }
            st.findings.push_back(f);
        }
    }
}

/// The newest `limit` records of `queue` (oldest at the front), newest first.
fn newest(queue: &VecDeque<Rec>, limit: usize) -> Vec<QueryRecord> {
    queue.iter().rev().take(limit).map(Rec::to_public).collect()
}

/// Orders by count, highest first, then by fingerprint (the statistics' and the
/// N+1 findings' "most frequent" order).
fn by_count_desc(a: (u64, Fingerprint), b: (u64, Fingerprint)) -> Ordering {
    b.0.cmp(&a.0).then(a.1.cmp(&b.1))
}

type Tracked<'a> = (&'a Fingerprint, &'a Entry);

/// Most executed first, then by fingerprint.
fn most_frequent_first(a: &Tracked<'_>, b: &Tracked<'_>) -> Ordering {
    by_count_desc((a.1.count, *a.0), (b.1.count, *b.0))
}

/// Longest single execution first, then by fingerprint. Compares
/// [`FingerprintStats::max_ms`] (milliseconds as `f64`), not the raw
/// microseconds, so that ties are broken exactly as on the reported values.
fn slowest_first(a: &Tracked<'_>, b: &Tracked<'_>) -> Ordering {
    b.1.max_ms().total_cmp(&a.1.max_ms()).then(a.0.cmp(b.0))
}

/// Statistics of the first `n` fingerprints in `order`. Only those are turned
/// into [`FingerprintStats`]; the rest are compared in place.
fn top_stats(
    fingerprints: &HashMap<Fingerprint, Entry>,
    n: usize,
    order: fn(&Tracked<'_>, &Tracked<'_>) -> Ordering,
) -> Vec<FingerprintStats> {
    let mut all: Vec<Tracked<'_>> = fingerprints.iter().collect();
    if n < all.len() {
        // Partition so that the first `n` are the smallest in `order`; then sort only those.
        all.select_nth_unstable_by(n, order);
        all.truncate(n);
    }
    all.sort_unstable_by(order);
    all.into_iter().map(|(fp, e)| e.stats(*fp)).collect()
}

fn evict_one(st: &mut State) {
    let victim = st
        .fingerprints
        .iter()
        .min_by_key(|(_, e)| (e.count, e.last_seen))
        .map(|(fp, _)| *fp);
    if let Some(fp) = victim {
        if let Some(e) = st.fingerprints.remove(&fp) {
            st.evicted_fingerprints += 1;
            st.evicted_queries += e.count;
        }
    }
}

/// Stops the summary thread of [`QueryLogger::spawn_summary`] when dropped.
#[derive(Debug)]
pub struct SummaryHandle {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl SummaryHandle {
    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            // The thread only logs; if it panicked there is nothing to recover.
            let _ = t.join();
        }
    }
}

impl Drop for SummaryHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Most distinct fingerprints one scope tracks (bounded memory per request).
const SCOPE_MAX_FINGERPRINTS: usize = 256;

struct ScopeEntry {
    count: u64,
    total: Duration,
    sql: Arc<str>,
    model: Option<Arc<str>>,
}

/// Per-scope counts for N+1 detection (used by [`ScopeGuard`] and the layer).
#[derive(Default)]
pub(crate) struct ScopeTracker {
    name: String,
    entries: HashMap<Fingerprint, ScopeEntry>,
}

impl ScopeTracker {
    pub(crate) fn new(name: &str) -> Self {
        Self {
            name: scrub_text(name),
            entries: HashMap::new(),
        }
    }

    pub(crate) fn observe(&mut self, r: &Recorded) {
        // Statements on no table (`BEGIN`, `SELECT ?`) are not N+1 material.
        if r.model.is_none() {
            return;
        }
        if let Some(e) = self.entries.get_mut(&r.fingerprint) {
            e.count += 1;
            e.total += r.duration;
        } else if self.entries.len() < SCOPE_MAX_FINGERPRINTS {
            self.entries.insert(
                r.fingerprint,
                ScopeEntry {
                    count: 1,
                    total: r.duration,
                    sql: r.sql.clone(),
                    model: r.model.clone(),
                },
            );
        }
    }

    pub(crate) fn finish(self, logger: &QueryLogger) {
        let threshold = u64::from(logger.config().n_plus_one_threshold());
        let at = Utc::now();
        let mut findings: Vec<NPlusOneFinding> = self
            .entries
            .into_iter()
            .filter(|(_, e)| e.count >= threshold)
            .map(|(fp, e)| NPlusOneFinding {
                at,
                scope: self.name.clone(),
                fingerprint: fp,
                query: e.sql.to_string(),
                model: e.model.as_deref().map(str::to_string),
                count: e.count,
                total_ms: ms(e.total),
            })
            .collect();
        findings.sort_by(|a, b| by_count_desc((a.count, a.fingerprint), (b.count, b.fingerprint)));
        logger.add_findings(findings);
    }
}

/// An N+1 detection scope from [`QueryLogger::scope`]. Record through it; its
/// findings are made when it drops. `Send + Sync`, so it can be held across
/// `.await` and shared by reference among the futures of one request.
pub struct ScopeGuard {
    logger: QueryLogger,
    tracker: Mutex<ScopeTracker>,
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
        self.tracker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .observe(&r);
        r.fingerprint
    }
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        let tracker = std::mem::take(
            self.tracker
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner),
        );
        tracker.finish(&self.logger);
    }
}

/// Derives the operation and the model from a sanitised statement: the main
/// verb (through `WITH`), and the first table after `FROM` / `INTO` / `UPDATE`,
/// singular and in PascalCase (`health_records` → `HealthRecord`).
pub(crate) fn describe(sanitized: &str) -> (Arc<str>, Option<Arc<str>>) {
    let toks = tokens(sanitized);
    let first = toks.first().map_or("", |t| t.0);
    let verbs = ["SELECT", "INSERT", "UPDATE", "DELETE"];
    let (op_idx, op) = if first == "WITH" || first == "(" {
        match toks
            .iter()
            .enumerate()
            .filter(|(_, t)| verbs.contains(&t.0))
            .min_by_key(|(_, t)| t.1)
        {
            Some((i, t)) => (i, t.0),
            None => (0, first),
        }
    } else {
        (0, first)
    };
    let operation: Arc<str> = if op.is_empty() {
        Arc::from("UNKNOWN")
    } else {
        Arc::from(op)
    };
    let depth = toks.get(op_idx).map_or(0, |t| t.1);
    let after = match op {
        "SELECT" | "DELETE" => "FROM",
        "INSERT" => "INTO",
        "UPDATE" => "UPDATE",
        _ => return (operation, None),
    };
    let start = if op == "UPDATE" {
        Some(op_idx)
    } else {
        toks.iter()
            .enumerate()
            .skip(op_idx)
            .find(|(_, t)| t.0 == after && t.1 == depth)
            .map(|(i, _)| i)
    };
    let model = start.and_then(|i| {
        let mut j = i + 1;
        if toks.get(j).map(|t| t.0) == Some("ONLY") {
            j += 1;
        }
        let mut name = toks.get(j)?.0;
        // `schema.table`: the table is the last part.
        while toks.get(j + 1).map(|t| t.0) == Some(".") {
            j += 2;
            name = toks.get(j)?.0;
        }
        let name = name.trim_matches('"');
        let ok = name
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_');
        ok.then(|| Arc::from(model_name(name)))
    });
    (operation, model)
}

/// Splits a sanitised statement into (token, paren depth).
fn tokens(s: &str) -> Vec<(&str, u32)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut depth = 0u32;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' => i += 1,
            b'(' | b')' | b',' | b'.' | b';' => {
                if c == b')' {
                    depth = depth.saturating_sub(1);
                }
                out.push((&s[i..i + 1], depth));
                if c == b'(' {
                    depth += 1;
                }
                i += 1;
            }
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += 1;
                }
                let end = (j + 1).min(b.len());
                out.push((&s[i..end], depth));
                i = end;
            }
            _ => {
                let mut j = i + 1;
                while j < b.len() && !matches!(b[j], b' ' | b'(' | b')' | b',' | b'.' | b';' | b'"')
                {
                    j += 1;
                }
                out.push((&s[i..j], depth));
                i = j;
            }
        }
    }
    out
}

/// `health_records` → `HealthRecord`, `allergies` → `Allergy`.
fn model_name(table: &str) -> String {
    let parts: Vec<&str> = table.split('_').filter(|p| !p.is_empty()).collect();
    let mut out = String::with_capacity(table.len());
    for (i, part) in parts.iter().enumerate() {
        let lower = part.to_lowercase();
        let word = if i + 1 == parts.len() {
            singular(&lower)
        } else {
            lower
        };
        let mut chars = word.chars();
        if let Some(c) = chars.next() {
            out.extend(c.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

fn singular(w: &str) -> String {
    if let Some(stem) = w.strip_suffix("ies") {
        if !stem.is_empty() {
            return format!("{stem}y");
        }
    }
    for suffix in ["sses", "shes", "ches", "xes", "zes", "uses"] {
        if w.ends_with(suffix) {
            return w[..w.len() - 2].to_string();
        }
    }
    if w.ends_with('s') && !w.ends_with("ss") && w.len() > 1 {
        return w[..w.len() - 1].to_string();
    }
    w.to_string()
}
