//! The Prometheus side of vitals' metrics (feature `metrics`): the process's recorder and the
//! `/metrics` body, both rendered by `metrics-exporter-prometheus`, not by hand.
//!
//! Two kinds of figures, one body:
//! - What happens (a statement's duration, an acquire's wait, a cache get, an imported row) is
//!   recorded where it happens through the `metrics` facade, into whatever recorder the
//!   process installed. [`install_prometheus`] installs the Prometheus one (the first
//!   [`Vitals`] built calls it; a host that installed its own recorder first,
//!   an OpenTelemetry or StatsD one, keeps it, and these figures go there instead).
//! - What one [`Vitals`] holds now (L1 entries, Redis up, the query logger's
//!   totals, N+1 findings) is read from its snapshots when `/metrics` is rendered, through a
//!   recorder of the render's own, so two instances in one process never mix their figures.
//!
//! Histograms (`*_seconds`) have the buckets of [`BUCKETS`], so `histogram_quantile` works
//! across instances.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::Vitals;

/// The upper bounds of every `*_seconds` histogram's buckets: 100 µs to 10 s.
pub const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// How often the recorder drains its histograms when nobody scrapes (bounded memory).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Installs the Prometheus recorder as the process's `metrics` recorder, once, and returns its
/// handle; `None` when another recorder was installed first (the host's: vitals' figures go
/// to it, and `/metrics` shows only the snapshot figures). Idempotent and cheap after the first
/// call. A host that wants `/metrics` and installs nothing itself need not call it: building
/// a [`Vitals`] does.
pub fn install_prometheus() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = builder().install_recorder().ok()?;
            describe();
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("vitals-metrics-upkeep".to_owned())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                });
            if spawned.is_err() {
                tracing::warn!("no metrics upkeep thread: histograms drain at each scrape only");
            }
            Some(handle)
        })
        .as_ref()
}

fn builder() -> PrometheusBuilder {
    let matcher = Matcher::Suffix("_seconds".to_owned());
    match PrometheusBuilder::new().set_buckets_for_metric(matcher, BUCKETS) {
        Ok(b) => b,
        // Invariant: BUCKETS is not empty, the one condition `set_buckets_for_metric` checks.
        Err(e) => unreachable!("constant histogram buckets rejected: {e}"),
    }
}

/// The help texts and units of the event figures, for the recorder just installed.
fn describe() {
    vitals_pool::metrics::describe_pool_metrics();
    describe_histogram!(
        crate::telemetry::STATEMENT_DURATION,
        Unit::Seconds,
        "Statement time on its connection, by engine, operation, table and outcome."
    );
    vitals_cache::metrics::describe_cache_metrics();
    vitals_import::metrics::describe_import_metrics();
}

/// The `/metrics` body: the process's event figures (histograms, counters) and this
/// instance's snapshot figures, in Prometheus text format.
pub fn prometheus_text(vitals: &Vitals) -> String {
    vitals_pool::metrics::record_pool_gauges(&vitals.pool_metrics());
    let mut out = install_prometheus().map_or_else(String::new, PrometheusHandle::render);
    let local = PrometheusBuilder::new().build_recorder();
    metrics::with_local_recorder(&local, || snapshot(vitals));
    out.push_str(&local.handle().render());
    out
}

/// This instance's figures now, into the current (the render's own) recorder.
fn snapshot(vitals: &Vitals) {
    let m = vitals.pool_metrics();
    describe_gauge!(
        "vitals_pool_utilization_percent",
        Unit::Percent,
        "Active over max, percent."
    );
    gauge!("vitals_pool_utilization_percent").set(m.utilization_percent);
    if let Some(s) = vitals.pool_summary() {
        describe_gauge!(
            "vitals_pool_alerts_active",
            "Pool alerts raised and not cleared."
        );
        gauge!("vitals_pool_alerts_active").set(s.active_alerts.len() as f64);
    }

    let c = vitals.cache_stats();
    let counters: [(&str, &str, u64); 7] = [
        ("vitals_cache_sets_total", "Cache writes.", c.sets),
        ("vitals_cache_deletes_total", "Cache deletes.", c.deletes),
        (
            "vitals_cache_redis_errors_total",
            "Redis calls that failed.",
            c.redis_errors,
        ),
        (
            "vitals_cache_redis_refused_writes_total",
            "Writes whose value was kept out of Redis for want of an encryption key.",
            c.redis_refused_writes,
        ),
        (
            "vitals_cache_stale_loads_total",
            "Loaded values returned uncached: their key or a tag changed during the load.",
            c.stale_loads,
        ),
        (
            "vitals_cache_l1_evictions_total",
            "L1 entries dropped to make room for another.",
            c.l1_evictions,
        ),
        (
            "vitals_cache_l1_expired_total",
            "L1 entries found past their TTL.",
            c.l1_expired,
        ),
    ];
    for (name, help, value) in counters {
        describe_counter!(name, help);
        counter!(name).absolute(value);
    }
    describe_counter!(
        "vitals_cache_invalidations_total",
        "Invalidations published and received over pub/sub."
    );
    counter!("vitals_cache_invalidations_total", "direction" => "sent")
        .absolute(c.invalidations_sent);
    counter!("vitals_cache_invalidations_total", "direction" => "received")
        .absolute(c.invalidations_received);
    let flag = |on: bool| if on { 1.0 } else { 0.0 };
    let gauges: [(&str, &str, f64); 5] = [
        ("vitals_cache_hit_rate", "Hits over lookups, 0 to 1.", c.hit_rate),
        ("vitals_cache_l1_entries", "Entries in L1.", c.l1_entries as f64),
        ("vitals_cache_l1_bytes", "Bytes of values in L1.", c.l1_bytes as f64),
        (
            "vitals_cache_redis_up",
            "1 when Redis is configured and connected.",
            flag(c.redis_connected),
        ),
        (
            "vitals_cache_redis_plaintext_refused",
            "1 when values are kept out of Redis: no CACHE_ENCRYPTION_KEY and no CACHE_ALLOW_PLAINTEXT.",
            flag(c.redis_plaintext_refused),
        ),
    ];
    for (name, help, value) in gauges {
        describe_gauge!(name, help);
        gauge!(name).set(value);
    }
    if let Some(bytes) = c.redis_used_memory {
        describe_gauge!(
            "vitals_cache_redis_used_memory_bytes",
            Unit::Bytes,
            "Redis INFO used_memory."
        );
        gauge!("vitals_cache_redis_used_memory_bytes").set(bytes as f64);
    }

    let q = vitals.query_logger().statistics();
    describe_counter!("vitals_queries_total", "Statements recorded.");
    counter!("vitals_queries_total").absolute(q.total_queries);
    describe_counter!(
        "vitals_slow_queries_total",
        "Statements over the slow thresholds."
    );
    counter!("vitals_slow_queries_total", "tier" => "warning")
        .absolute(q.slow_queries.saturating_sub(q.critical_queries));
    counter!("vitals_slow_queries_total", "tier" => "critical").absolute(q.critical_queries);
    describe_counter!("vitals_failed_queries_total", "Statements that failed.");
    counter!("vitals_failed_queries_total").absolute(q.failed_queries);
    describe_counter!(
        "vitals_query_n_plus_one_findings_total",
        "N+1 patterns found in request scopes."
    );
    counter!("vitals_query_n_plus_one_findings_total").absolute(q.n_plus_one_findings);
}
