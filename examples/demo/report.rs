//! The report's JSON document: one type per section, as printed (text) or serialised
//! (`--json`).

use super::*;

/// Everything the demo measured, as printed (text) or serialised (`--json`).
#[derive(Debug, Serialize)]
pub struct Report {
    /// `PostgreSQL (schema vitals_demo)` or `SQLite (temporary file)`.
    pub engine: String,
    /// How the cache ran: L1 only, L1 + Redis, or Redis unreachable.
    pub redis: RedisStatus,
    /// The synthetic school.
    pub school: SchoolInfo,
    /// Row 1: concurrent requests, pool of 10 against pool of 50.
    pub concurrent_requests: ConcurrentSection,
    /// Row 2: importing records, one row at a time against the importer.
    pub import: Vec<ImportRow>,
    /// Row 3: a student's health summary, uncached, L1 and L2.
    pub health_summary: SummarySection,
    /// Row 4: the dashboard, sequential against parallel.
    pub dashboard: Comparison,
    /// Row 5: recent activities, sequential against parallel.
    pub recent_activities: Comparison,
    /// The report's summary rows beside what was measured here.
    pub summary: Vec<SummaryRow>,
    /// The facade pool's monitor summary at the end.
    pub pool_summary: Option<PoolSummary>,
    /// The cache's statistics at the end.
    pub cache_stats: CacheStats,
    /// The query logger's performance report (sanitised SQL only).
    pub query_report: PerformanceReport,
    /// Plain statements about what contradicts or qualifies the report.
    pub notes: Vec<String>,
    /// Wall time of the whole run.
    pub elapsed_ms: f64,
}

/// How the cache ran.
#[derive(Debug, Serialize)]
pub struct RedisStatus {
    /// `"l1-only"`, `"redis"` or `"unreachable"`.
    pub mode: &'static str,
    /// A sentence for the text output.
    pub detail: String,
}

/// The synthetic school.
#[derive(Debug, Serialize)]
pub struct SchoolInfo {
    /// Students generated.
    pub students: usize,
    /// Seed.
    pub seed: u64,
    /// Rows per table after the load.
    pub tables: TableCounts,
    /// Time to load it.
    pub load_ms: f64,
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
}

/// One pool size under one load.
#[derive(Debug, Serialize)]
pub struct PoolRun {
    /// `max_connections`.
    pub max_connections: u32,
    /// Requests per second of the median round.
    pub throughput_rps: f64,
    /// Per-request latency (acquire wait included), over every round.
    pub latency: Percentiles,
    /// Most tasks waiting for a connection at once (exact, from the monitored handle).
    pub peak_waiting: u32,
    /// The monitor's average utilisation while the load ran.
    pub avg_utilization_percent: f64,
    /// The monitor's peak utilisation.
    pub peak_utilization_percent: f64,
    /// Connections handed out while the load ran.
    pub acquired: u64,
    /// Median wait for a connection: the monitor's windows' medians, weighted by acquisitions
    /// (the monitor takes the handle's statistics window by window).
    pub acquire_p50_ms: f64,
    /// The highest 95th percentile of the wait for a connection in any monitor window (50 ms).
    pub acquire_p95_worst_window_ms: f64,
    /// Alerts the monitor raised, by kind.
    pub alerts: BTreeMap<String, u64>,
    /// Requests that failed (an acquire timeout, say).
    pub errors: u64,
}

/// Both pool sizes under one load.
#[derive(Debug, Serialize)]
pub struct LoadComparison {
    /// `latency-bound` or `cpu-bound`.
    pub load: &'static str,
    /// What one request does.
    pub request: String,
    /// The smaller pool (the report's "before").
    pub small: PoolRun,
    /// The larger pool (the report's "after").
    pub large: PoolRun,
    /// Throughput of the large pool over the small one.
    pub throughput_ratio: f64,
    /// The plain reading.
    pub verdict: String,
}

/// Row 1.
#[derive(Debug, Serialize)]
pub struct ConcurrentSection {
    /// Concurrent clients.
    pub clients: usize,
    /// Requests per round.
    pub requests: usize,
    /// Rounds per pool and load.
    pub rounds: usize,
    /// Cores of this machine (the database shares them).
    pub cores: usize,
    /// One comparison per load.
    pub loads: Vec<LoadComparison>,
}

/// One import size.
#[derive(Debug, Serialize)]
pub struct ImportRow {
    /// Records in the input.
    pub records: usize,
    /// One INSERT per row with a foreign-key check and a duplicate check per row.
    pub row_by_row: ImportRun,
    /// `vitals.import(…)`: chunked validation and bulk inserts.
    pub importer: ImportRun,
    /// Row-by-row time over importer time.
    pub speedup: f64,
}

/// One import.
#[derive(Debug, Serialize)]
pub struct ImportRun {
    /// Wall time (extrapolated when `extrapolated_from` is set).
    pub ms: f64,
    /// Statements sent to the database (extrapolated likewise).
    pub statements: u64,
    /// Rows written.
    pub imported: u64,
    /// Rows skipped as duplicates.
    pub duplicates: u64,
    /// Rows rejected (unknown student).
    pub rejected: u64,
    /// When the time budget ran out: the rows actually done, from which `ms` and
    /// `statements` are extrapolated linearly.
    pub extrapolated_from: Option<usize>,
}

/// Row 3.
#[derive(Debug, Serialize)]
pub struct SummarySection {
    /// Students sampled.
    pub students: usize,
    /// The five reads against the database, no cache.
    pub uncached: Percentiles,
    /// A miss: the database read plus filling the cache.
    pub miss_and_fill: Percentiles,
    /// L1 hits.
    pub l1_hit: Percentiles,
    /// L2 (Redis) hits with L1 cleared; `None` without Redis.
    pub l2_hit: Option<Percentiles>,
    /// L2 hits the cache counted during the L2 pass (should equal the samples).
    pub l2_hits_counted: Option<u64>,
    /// Uncached median over L1 median.
    pub l1_speedup: f64,
    /// Uncached median over L2 median.
    pub l2_speedup: Option<f64>,
}

/// Sequential against parallel.
#[derive(Debug, Serialize)]
pub struct Comparison {
    /// What one sample does.
    pub what: String,
    /// Statements per sample.
    pub statements: usize,
    /// One after another (the report's "before").
    pub sequential: Percentiles,
    /// At once (the report's "after").
    pub parallel: Percentiles,
    /// Sequential median over parallel median.
    pub speedup: f64,
}

/// One row of the report's table beside the measurement.
#[derive(Debug, Serialize)]
pub struct SummaryRow {
    /// The report's operation.
    pub operation: &'static str,
    /// The report's before → after.
    pub report: &'static str,
    /// The report's improvement.
    pub report_improvement: &'static str,
    /// What was measured here, before → after.
    pub measured: String,
    /// The measured ratio, as text.
    pub measured_improvement: String,
}
