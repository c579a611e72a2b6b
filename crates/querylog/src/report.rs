//! Statistics and the performance report (text and, through serde, JSON).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::fingerprint::Fingerprint;
use crate::record::QueryRecord;

/// Statistics of one fingerprint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FingerprintStats {
    /// The fingerprint.
    pub fingerprint: Fingerprint,
    /// The sanitised statement.
    pub query: String,
    /// The derived model, if any.
    pub model: Option<String>,
    /// The derived operation.
    pub operation: String,
    /// Executions.
    pub count: u64,
    /// Failed executions.
    pub errors: u64,
    /// Rows returned or affected, summed.
    pub rows: u64,
    /// Mean duration (ms).
    pub avg_ms: f64,
    /// Shortest duration (ms).
    pub min_ms: f64,
    /// Longest duration (ms).
    pub max_ms: f64,
    /// Median duration (ms, within 1 %).
    pub p50_ms: f64,
    /// 95th percentile (ms, within 1 %).
    pub p95_ms: f64,
    /// 99th percentile (ms, within 1 %).
    pub p99_ms: f64,
}

/// The logger's statistics, as in the report's `QueryStatistics` plus
/// percentiles, failures and eviction counts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueryStatistics {
    /// Queries recorded.
    pub total_queries: u64,
    /// Queries at or above the warning threshold (critical ones included).
    pub slow_queries: u64,
    /// Queries at or above the critical threshold.
    pub critical_queries: u64,
    /// Queries recorded with an error.
    pub failed_queries: u64,
    /// Mean duration (ms).
    pub avg_duration_ms: f64,
    /// Shortest duration (ms).
    pub min_duration_ms: f64,
    /// Longest duration (ms).
    pub max_duration_ms: f64,
    /// Queries per model.
    pub queries_by_model: BTreeMap<String, u64>,
    /// The 10 fingerprints with the longest single execution, slowest first.
    pub slowest_queries: Vec<FingerprintStats>,
    /// The 10 most executed fingerprints, most frequent first.
    pub most_frequent_queries: Vec<FingerprintStats>,
    /// Fingerprints with statistics now.
    pub distinct_fingerprints: u64,
    /// Fingerprints evicted to respect the cap.
    pub evicted_fingerprints: u64,
    /// Queries of the evicted fingerprints (still in the totals).
    pub evicted_queries: u64,
    /// N+1 findings made since start.
    pub n_plus_one_findings: u64,
}

/// One N+1 finding: a fingerprint repeated in one scope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NPlusOneFinding {
    /// When the scope ended.
    pub at: DateTime<Utc>,
    /// The scope's (scrubbed) name or span name.
    pub scope: String,
    /// The repeated statement's fingerprint.
    pub fingerprint: Fingerprint,
    /// The sanitised statement.
    pub query: String,
    /// Its model, if any.
    pub model: Option<String>,
    /// How many times it ran in the scope.
    pub count: u64,
    /// Their total duration (ms).
    pub total_ms: f64,
}

/// The performance report: statistics, the latest slow queries and N+1
/// findings. `to_text()` gives the "Database Query Performance Report"; serde
/// gives the same as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PerformanceReport {
    /// When the report was made.
    pub generated_at: DateTime<Utc>,
    /// The statistics.
    pub statistics: QueryStatistics,
    /// The latest slow queries, newest first (at most 10).
    pub slow_queries: Vec<QueryRecord>,
    /// The latest N+1 findings, newest first (at most 10).
    pub n_plus_one: Vec<NPlusOneFinding>,
}

/// Orders by count, highest first, then by fingerprint: the "most frequent" order of the
/// statistics' lists and of the N+1 findings.
pub(crate) fn by_count_desc(a: (u64, Fingerprint), b: (u64, Fingerprint)) -> Ordering {
    b.0.cmp(&a.0).then(a.1.cmp(&b.1))
}

/// `1234567` → `1,234,567`.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Milliseconds with two decimals and thousands separators.
fn fmt_ms(ms: f64) -> String {
    let whole = ms.trunc();
    let frac = ((ms - whole) * 100.0).round();
    let (whole, frac) = if frac >= 100.0 {
        (whole + 1.0, 0.0)
    } else {
        (whole, frac)
    };
    // Durations are non-negative and far below u64::MAX milliseconds.
    format!("{}.{:02}ms", thousands(whole as u64), frac as u64)
}

impl FingerprintStats {
    /// What the report names a statement by: its model, else its operation.
    fn label(&self) -> &str {
        self.model.as_deref().unwrap_or(&self.operation)
    }
}

/// A "Top 5 … Queries" section of the text report: its heading, then the first five
/// entries, numbered from 1, each written by `line`.
fn top_five(
    t: &mut String,
    what: &str,
    entries: &[FingerprintStats],
    line: impl Fn(&FingerprintStats) -> String,
) {
    // Writing to a String cannot fail.
    let _ = writeln!(t, "\nTop 5 {what} Queries:");
    for (i, q) in entries.iter().take(5).enumerate() {
        let _ = writeln!(t, "  {}. {}", i + 1, line(q));
    }
}

impl PerformanceReport {
    /// The report as text, like section 5 of the performance report.
    ///
    /// ```
    /// use std::time::Duration;
    /// use vitals_querylog::{LoggerConfig, QueryEvent, QueryLogger};
    ///
    /// let logger = QueryLogger::new(LoggerConfig::default());
    /// logger.record(QueryEvent::new("SELECT * FROM students WHERE id = 1", Duration::from_millis(5)));
    /// let text = logger.report().to_text();
    /// assert!(text.starts_with("=== Database Query Performance Report ==="));
    /// assert!(text.contains("Student: 1 queries"));
    /// ```
    #[must_use]
    pub fn to_text(&self) -> String {
        let s = &self.statistics;
        let mut t = String::new();
        let pct = if s.total_queries == 0 {
            0.0
        } else {
            s.slow_queries as f64 * 100.0 / s.total_queries as f64
        };
        // Writing to a String cannot fail.
        let _ = writeln!(t, "=== Database Query Performance Report ===");
        let _ = writeln!(t, "Total Queries: {}", thousands(s.total_queries));
        let _ = writeln!(t, "Slow Queries: {} ({pct:.2}%)", thousands(s.slow_queries));
        let _ = writeln!(t, "Critical Queries: {}", thousands(s.critical_queries));
        let _ = writeln!(t, "Failed Queries: {}", thousands(s.failed_queries));
        let _ = writeln!(t, "Average Duration: {}", fmt_ms(s.avg_duration_ms));
        let _ = writeln!(t, "Min Duration: {}", fmt_ms(s.min_duration_ms));
        let _ = writeln!(t, "Max Duration: {}", fmt_ms(s.max_duration_ms));
        let _ = writeln!(
            t,
            "Distinct Statements: {} ({} evicted, {} queries)",
            thousands(s.distinct_fingerprints),
            thousands(s.evicted_fingerprints),
            thousands(s.evicted_queries)
        );
        let _ = writeln!(t, "\nQueries by Model:");
        let mut models: Vec<_> = s.queries_by_model.iter().collect();
        models.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (m, n) in models {
            let _ = writeln!(t, "  {m}: {} queries", thousands(*n));
        }
        top_five(&mut t, "Slowest", &s.slowest_queries, |q| {
            format!(
                "[{}] {}: {} ({}, p95 {})",
                fmt_ms(q.max_ms),
                q.label(),
                q.query,
                q.fingerprint,
                fmt_ms(q.p95_ms)
            )
        });
        top_five(&mut t, "Most Frequent", &s.most_frequent_queries, |q| {
            format!(
                "[{}x, avg {}, p50 {}, p95 {}, p99 {}] {}: {} ({})",
                thousands(q.count),
                fmt_ms(q.avg_ms),
                fmt_ms(q.p50_ms),
                fmt_ms(q.p95_ms),
                fmt_ms(q.p99_ms),
                q.label(),
                q.query,
                q.fingerprint
            )
        });
        if !self.n_plus_one.is_empty() {
            let _ = writeln!(t, "\nN+1 Findings:");
            for f in &self.n_plus_one {
                let _ = writeln!(
                    t,
                    "  - {}: {}x in {:?}, total {} {}: {}",
                    f.fingerprint,
                    thousands(f.count),
                    f.scope,
                    fmt_ms(f.total_ms),
                    f.model.as_deref().unwrap_or("-"),
                    f.query
                );
            }
        }
        t
    }

    /// The report as pretty JSON.
    ///
    /// # Errors
    ///
    /// Only if serialisation fails, which these plain types do not.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers_like_the_report() {
        for (n, text) in [(1234, "1,234"), (123, "123"), (1_234_567, "1,234,567")] {
            assert_eq!(thousands(n), text);
        }
        for (ms, text) in [
            (3456.0, "3,456.00ms"),
            (125.434, "125.43ms"),
            (0.999, "1.00ms"),
        ] {
            assert_eq!(fmt_ms(ms), text);
        }
    }
}
