//! [`DashboardSnapshot`]: everything the dashboard page draws, read from memory (the pool
//! monitor's history, the cache's history, the query logger's statistics): building one
//! sends nothing to the database, so a page left open does not show up in its own figures.

use chrono::{DateTime, Utc};
use serde::Serialize;
use vitals_cache::{BreakerState, CacheStats};
use vitals_pool::{PoolMetrics, PoolSummary, Severity};
use vitals_querylog::{FingerprintStats, NPlusOneFinding};

use crate::cache_history::CacheSample;
use crate::{Engine, Vitals};

/// The JSON of `GET /api/health/dashboard` with `Accept: application/json`, what the page
/// refreshes from. Every statement in it is sanitised (literals are `$n`/`?`).
#[derive(Debug, Clone, Serialize)]
pub struct DashboardSnapshot {
    /// When it was read.
    pub generated_at: DateTime<Utc>,
    /// `postgres` or `sqlite`.
    pub engine: Engine,
    /// The pool now and over the monitor's history.
    pub pool: PoolPanel,
    /// The cache now and its hit rates per interval.
    pub cache: CachePanel,
    /// Statement totals and the slowest and most frequent statements with percentiles.
    pub statements: StatementsPanel,
    /// The latest N+1 findings, newest first (at most 10).
    pub n_plus_one: Vec<NPlusOneFinding>,
    /// What needs a look now: the pool's raised alerts, then the cache's and the queries'.
    pub alerts: Vec<DashboardAlert>,
}

/// The pool: now, the monitor's summary and its samples.
#[derive(Debug, Clone, Serialize)]
pub struct PoolPanel {
    /// The pool now.
    pub now: PoolPoint,
    /// The monitor's summary over its history (flattened into the panel:
    /// `average_utilization_percent`, `peak_utilization_percent`, `peak_waiting`,
    /// `alerts_by_kind`, ...); all zero and empty when the pool has no monitor.
    #[serde(flatten)]
    pub summary: PoolSummary,
    /// The monitor's samples, oldest first (`DB_POOL_MONITOR_INTERVAL` apart).
    pub history: Vec<PoolPoint>,
}

/// One reading of the pool.
#[derive(Debug, Clone, Serialize)]
pub struct PoolPoint {
    /// When.
    pub timestamp: DateTime<Utc>,
    /// Active over max, percent.
    pub utilization_percent: f64,
    /// Connections in use.
    pub active: u32,
    /// Connections open and idle.
    pub idle: u32,
    /// The pool's ceiling.
    pub max: u32,
    /// Tasks waiting at the reading (`None` when the pool cannot tell).
    pub waiting: Option<u32>,
    /// Most tasks waiting at once since the previous sample (monitored handle only).
    pub peak_waiting: Option<u32>,
}

impl From<&PoolMetrics> for PoolPoint {
    fn from(m: &PoolMetrics) -> Self {
        PoolPoint {
            timestamp: m.timestamp,
            utilization_percent: m.utilization_percent,
            active: m.active_connections,
            idle: m.idle_connections,
            max: m.max_connections,
            waiting: m.waiting_requests,
            peak_waiting: m.handle.as_ref().map(|h| h.peak_waiting),
        }
    }
}

/// The cache: its statistics since start and the hit rates per interval.
#[derive(Debug, Clone, Serialize)]
pub struct CachePanel {
    /// The cache's statistics since start (flattened into the panel: `l1_hits`, `l2_hits`,
    /// `misses`, `hit_rate`, `l1_entries`, `redis_configured`, `redis_connected`, ...).
    #[serde(flatten)]
    pub stats: CacheStats,
    /// One entry per pool-monitor interval, oldest first.
    pub history: Vec<CacheSample>,
}

/// The query logger's statistics for the page.
#[derive(Debug, Clone, Serialize)]
pub struct StatementsPanel {
    /// Statements recorded.
    pub total: u64,
    /// At or over the warning threshold (critical included).
    pub slow: u64,
    /// At or over the critical threshold.
    pub critical: u64,
    /// Failed.
    pub failed: u64,
    /// The warning threshold, ms.
    pub warn_ms: u128,
    /// The critical threshold, ms.
    pub critical_ms: u128,
    /// The 10 with the longest single execution, with p50/p95/p99.
    pub slowest: Vec<FingerprintStats>,
    /// The 10 most executed, with p50/p95/p99.
    pub most_frequent: Vec<FingerprintStats>,
}

/// One thing that needs a look, for humans (figures only, no data).
#[derive(Debug, Clone, Serialize)]
pub struct DashboardAlert {
    /// `pool`, `cache` or `queries`.
    pub source: &'static str,
    /// Warning or critical.
    pub severity: Severity,
    /// What it is.
    pub message: String,
    /// Since when, where known.
    pub since: Option<DateTime<Utc>>,
}

impl DashboardSnapshot {
    /// Reads one from `vitals` (memory only; see the module's doc).
    pub fn read(vitals: &Vitals) -> Self {
        let summary = vitals.pool_summary();
        let now = vitals.pool_metrics();
        let cache = vitals.cache_stats();
        let logger = vitals.query_logger();
        let report = logger.report();
        let q = report.statistics;

        let mut alerts: Vec<DashboardAlert> = summary
            .iter()
            .flat_map(|s| &s.active_alerts)
            .map(|a| DashboardAlert {
                source: "pool",
                severity: a.severity,
                message: a.message.clone(),
                since: Some(a.timestamp),
            })
            .collect();
        let mut also = |source, severity, message: String| {
            alerts.push(DashboardAlert {
                source,
                severity,
                message,
                since: None,
            })
        };
        if cache.redis_configured && !cache.redis_connected {
            also(
                "cache",
                Severity::Critical,
                "Redis is configured and not connected: lookups are answered by L1 or the database"
                    .into(),
            );
        } else if cache.breaker == Some(BreakerState::Open) {
            also(
                "cache",
                Severity::Warning,
                "the Redis circuit breaker is open: Redis is skipped until the cool-down ends"
                    .into(),
            );
        }
        if cache.redis_plaintext_refused {
            also(
                "cache",
                Severity::Warning,
                "values are kept out of Redis: no CACHE_ENCRYPTION_KEY and no CACHE_ALLOW_PLAINTEXT"
                    .into(),
            );
        }
        if q.critical_queries > 0 {
            also(
                "queries",
                Severity::Warning,
                format!(
                    "{} statements took {} ms or more since start",
                    q.critical_queries,
                    logger.config().slow_critical().as_millis()
                ),
            );
        }
        if q.n_plus_one_findings > 0 {
            also(
                "queries",
                Severity::Warning,
                format!("{} N+1 findings since start", q.n_plus_one_findings),
            );
        }

        DashboardSnapshot {
            generated_at: Utc::now(),
            engine: vitals.engine(),
            pool: PoolPanel {
                now: PoolPoint::from(&now),
                summary: summary.unwrap_or_else(no_monitor),
                history: vitals.pool_history().iter().map(PoolPoint::from).collect(),
            },
            cache: CachePanel {
                stats: cache,
                history: vitals.cache_history(),
            },
            statements: StatementsPanel {
                total: q.total_queries,
                slow: q.slow_queries,
                critical: q.critical_queries,
                failed: q.failed_queries,
                warn_ms: logger.config().slow_warn().as_millis(),
                critical_ms: logger.config().slow_critical().as_millis(),
                slowest: q.slowest_queries,
                most_frequent: q.most_frequent_queries,
            },
            n_plus_one: report.n_plus_one,
            alerts,
        }
    }
}

/// The summary of a pool without a monitor (it was stopped): no samples, no alerts.
fn no_monitor() -> PoolSummary {
    PoolSummary {
        samples: 0,
        average_utilization_percent: 0.0,
        peak_utilization_percent: 0.0,
        peak_waiting: None,
        alerts_by_kind: Default::default(),
        active_alerts: Vec::new(),
        latest: None,
    }
}
