//! What the [`MonitoredPool`](crate::MonitoredPool) measures: the state kept under its lock
//! (waiters, held connections, histograms, counters) and the [`HandleStats`] snapshot of it.

use std::panic::Location;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::by_id::ById;

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
/// [`MonitoredPool::take_stats`](crate::MonitoredPool::take_stats) (the [`PoolMonitor`](crate::PoolMonitor) takes one per
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

/// A connection held through the handle.
pub(crate) struct Held {
    pub(crate) since: Instant,
    pub(crate) location: Option<&'static Location<'static>>,
    /// Whether its leak was logged already (once per connection).
    pub(crate) reported: bool,
}

/// What the handle measures, kept under its lock.
pub(crate) struct State {
    pub(crate) next_id: u64,
    pub(crate) waiters: ById<Instant>,
    pub(crate) peak_waiting: usize,
    pub(crate) held: ById<Held>,
    pub(crate) acquire: Histogram<u64>,
    pub(crate) hold: Histogram<u64>,
    pub(crate) query: Histogram<u64>,
    pub(crate) acquired_total: u64,
    pub(crate) timeouts_total: u64,
    pub(crate) cancelled_total: u64,
    pub(crate) errors_total: u64,
    pub(crate) long_holds_total: u64,
    pub(crate) last_error: Option<String>,
}

impl State {
    pub(crate) fn new() -> Self {
        Self {
            next_id: 0,
            waiters: ById::new(),
            peak_waiting: 0,
            held: ById::new(),
            acquire: histogram(),
            hold: histogram(),
            query: histogram(),
            acquired_total: 0,
            timeouts_total: 0,
            cancelled_total: 0,
            errors_total: 0,
            long_holds_total: 0,
            last_error: None,
        }
    }

    /// The statistics at `now`; connections held past `leak_threshold` count as leaked (and
    /// are logged once each). `reset` starts a new window for percentiles and peak waiting.
    pub(crate) fn snapshot(
        &mut self,
        now: Instant,
        leak_threshold: Option<Duration>,
        benchmark: bool,
        reset: bool,
    ) -> HandleStats {
        let mut leaked = 0u32;
        let mut sites = Vec::new();
        if let Some(limit) = leak_threshold {
            for h in self.held.values_mut() {
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
            waiting: count(self.waiters.len()),
            peak_waiting: count(self.peak_waiting.max(self.waiters.len())),
            oldest_wait_ms: self.waiters.values().next().map(|t| {
                u64::try_from(now.saturating_duration_since(*t).as_millis()).unwrap_or(u64::MAX)
            }),
            held: count(self.held.len()),
            leaked,
            leak_sites: sites,
            acquire: LatencySummary::of(&self.acquire),
            hold: LatencySummary::of(&self.hold),
            query: benchmark.then(|| LatencySummary::of(&self.query)),
            acquired_total: self.acquired_total,
            acquire_timeouts_total: self.timeouts_total,
            cancelled_acquires_total: self.cancelled_total,
            acquire_errors_total: self.errors_total,
            long_holds_total: self.long_holds_total,
            last_acquire_error: self.last_error.clone(),
        };
        if reset {
            self.peak_waiting = self.waiters.len();
            self.acquire.reset();
            self.hold.reset();
            self.query.reset();
        }
        stats
    }
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 1 h at two significant digits: about 30 KB, 1 % resolution.
    match Histogram::new_with_bounds(1, 3_600_000_000, 2) {
        Ok(h) => h,
        // Invariant: these constant bounds are valid (low >= 1, high >= 2 * low, sigfig <= 5).
        Err(e) => unreachable!("constant hdrhistogram bounds rejected: {e}"),
    }
}

/// A duration in whole microseconds for the histograms, at least 1.
pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
