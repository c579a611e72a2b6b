//! HTTP for a host service (feature `http`): the health endpoints and `/metrics`; the
//! cache-invalidation layers for write routes are re-exported here from `vitals::health`, the
//! only code that knows students.
//!
//! [`router`] returns an axum `Router` the host merges into its own:
//!
//! | route | what |
//! |---|---|
//! | `GET /api/health/database/pool` | pool metrics now, the monitor's summary, a health check |
//! | `GET /api/health/cache/stats` | the cache's statistics |
//! | `GET /api/health/database/performance` | the query performance report (sanitised) |
//! | `GET /api/health/database/slow-queries?limit=N` | the last slow queries (sanitised) |
//! | `GET /api/health/dashboard` | an HTML page of the figures below, refreshing itself; with `Accept: application/json`, its data ([`DashboardSnapshot`]) |
//! | `GET /metrics` | the same figures in Prometheus text format |
//!
//! [`InvalidateCacheLayer`] is the report's `@InvalidateCache({studentIdPath,
//! invalidateTypes})`; [`BulkInvalidateLayer`] its `BulkCacheInvalidationInterceptor`.
//!
//! # Example
//! ```no_run
//! # async fn example(vitals: vitals::Vitals) -> Result<(), Box<dyn std::error::Error>> {
//! use axum::routing::post;
//! use vitals::health::HealthData;
//! use vitals::http::{InvalidateCacheLayer, StudentId};
//!
//! async fn add_vaccination() -> &'static str { "ok" }
//!
//! let app = axum::Router::new()
//!     .route(
//!         "/api/students/{student_id}/vaccinations",
//!         post(add_vaccination).route_layer(InvalidateCacheLayer::new(
//!             vitals.health_cache().clone(),
//!             StudentId::PathParam("student_id"),
//!             [HealthData::Vaccinations, HealthData::Summary],
//!         )),
//!     )
//!     .merge(vitals::http::router(vitals.clone()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! // Header-read and idle timeouts, a connection bound and a shutdown deadline
//! // (`VITALS_HTTP_*`, see `ServeOptions`); `axum::serve` has none of them.
//! let options = vitals::http::ServeOptions::from_env()?;
//! let _summary = vitals::http::serve(listener, app, options).await;
//! # Ok(())
//! # }
//! ```

use std::fmt::Write as _;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

pub use crate::error_response::{
    FieldProblem, InputBytes, InputJson, InputPath, InputQuery, InputRejection,
};
pub use crate::health::invalidate::{
    BulkInvalidate, BulkInvalidateLayer, Invalidate, InvalidateCache, InvalidateCacheLayer,
    StudentId, TouchedStudents,
};
pub use crate::query_scope::{QueryScope, QueryScopeLayer, UNMATCHED_ROUTE};
pub use crate::read_scope::{ReadYourWrites, ReadYourWritesLayer};
pub use crate::serve::{serve, Serve, ServeOptions, ServeOptionsBuilder, ServeSummary};
use crate::Vitals;
pub use dashboard_page::{
    CachePanel, DashboardAlert, DashboardSnapshot, PoolPanel, PoolPoint, StatementsPanel,
    DASHBOARD_PATH,
};

mod dashboard_page;

/// How long `/api/health/database/pool`'s `SELECT 1` may take before the pool is unhealthy.
pub const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The health router; merge it into the host's router.
pub fn router(vitals: Vitals) -> Router {
    Router::new()
        .route("/api/health/database/pool", get(pool))
        .route("/api/health/cache/stats", get(cache_stats))
        .route("/api/health/database/performance", get(performance))
        .route("/api/health/database/slow-queries", get(slow_queries))
        .route("/metrics", get(metrics))
        .merge(dashboard_page::routes())
        .with_state(vitals)
}

/// The body of `GET /api/health/database/pool`.
#[derive(Debug, Serialize)]
pub struct PoolHealth {
    /// `postgres` or `sqlite`.
    pub engine: crate::Engine,
    /// The pool now (reading it does not disturb the monitor).
    pub metrics: vitals_pool::PoolMetrics,
    /// The monitor's summary (averages, peaks, alerts by kind, active alerts).
    pub summary: Option<vitals_pool::PoolSummary>,
    /// `SELECT 1` within 2 s.
    pub health: vitals_pool::HealthReport,
    /// Each read replica (`DATABASE_REPLICA_URLS`): fit or why not, lag, its pool's metrics,
    /// its monitor's summary and alerts, `SELECT 1` on it. Empty without replicas.
    pub replicas: Vec<vitals_pool::ReplicaReport>,
}

async fn pool(State(vitals): State<Vitals>) -> Json<PoolHealth> {
    Json(PoolHealth {
        engine: vitals.engine(),
        metrics: vitals.pool_metrics(),
        summary: vitals.pool_summary(),
        health: vitals.pool_health(HEALTH_CHECK_TIMEOUT).await,
        replicas: vitals.replica_reports(HEALTH_CHECK_TIMEOUT).await,
    })
}

async fn cache_stats(State(vitals): State<Vitals>) -> Json<vitals_cache::CacheStats> {
    Json(vitals.cache_stats())
}

async fn performance(State(vitals): State<Vitals>) -> Json<vitals_querylog::PerformanceReport> {
    Json(vitals.query_logger().report())
}

/// The query of `GET /api/health/database/slow-queries`.
#[derive(Debug, Deserialize)]
pub struct SlowQueryParams {
    /// At most this many, newest first (default 20, at most 100).
    pub limit: Option<usize>,
}

/// The body of `GET /api/health/database/slow-queries`.
#[derive(Debug, Serialize)]
pub struct SlowQueries {
    /// Slow queries, sanitised, newest first.
    pub slow_queries: Vec<vitals_querylog::QueryRecord>,
    /// The warning threshold, ms.
    pub warn_ms: u128,
    /// The critical threshold, ms.
    pub critical_ms: u128,
}

async fn slow_queries(
    State(vitals): State<Vitals>,
    InputQuery(params): InputQuery<SlowQueryParams>,
) -> Json<SlowQueries> {
    let logger = vitals.query_logger();
    let limit = params.limit.unwrap_or(20).min(100);
    Json(SlowQueries {
        slow_queries: logger.slow_queries(limit),
        warn_ms: logger.config().slow_warn().as_millis(),
        critical_ms: logger.config().slow_critical().as_millis(),
    })
}

async fn metrics(State(vitals): State<Vitals>) -> Response {
    let body = prometheus_text(&vitals);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The `/metrics` body: pool, cache and query figures in Prometheus text format.
pub fn prometheus_text(vitals: &Vitals) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    {
        let m = vitals.pool_metrics();
        metric(
            "vitals_pool_active_connections",
            "gauge",
            "Connections in use.",
            &[("", f64::from(m.active_connections))],
        );
        metric(
            "vitals_pool_idle_connections",
            "gauge",
            "Connections open and idle.",
            &[("", f64::from(m.idle_connections))],
        );
        metric(
            "vitals_pool_max_connections",
            "gauge",
            "The pool's ceiling.",
            &[("", f64::from(m.max_connections))],
        );
        metric(
            "vitals_pool_waiting_requests",
            "gauge",
            "Tasks waiting for a connection.",
            &[("", f64::from(m.waiting_requests.unwrap_or(0)))],
        );
        metric(
            "vitals_pool_utilization_percent",
            "gauge",
            "Active over max, percent.",
            &[("", m.utilization_percent)],
        );
    }
    if let Some(s) = vitals.pool_summary() {
        metric(
            "vitals_pool_alerts_active",
            "gauge",
            "Pool alerts raised and not cleared.",
            &[("", s.active_alerts.len() as f64)],
        );
    }
    let c = vitals.cache_stats();
    metric(
        "vitals_cache_hits_total",
        "counter",
        "Cache hits by tier.",
        &[
            ("{tier=\"l1\"}", c.l1_hits as f64),
            ("{tier=\"l2\"}", c.l2_hits as f64),
        ],
    );
    metric(
        "vitals_cache_misses_total",
        "counter",
        "Cache misses.",
        &[("", c.misses as f64)],
    );
    metric(
        "vitals_cache_sets_total",
        "counter",
        "Cache writes.",
        &[("", c.sets as f64)],
    );
    metric(
        "vitals_cache_deletes_total",
        "counter",
        "Cache deletes.",
        &[("", c.deletes as f64)],
    );
    metric(
        "vitals_cache_hit_rate",
        "gauge",
        "Hits over lookups, 0 to 1.",
        &[("", c.hit_rate)],
    );
    metric(
        "vitals_cache_l1_entries",
        "gauge",
        "Entries in L1.",
        &[("", c.l1_entries as f64)],
    );
    metric(
        "vitals_cache_l1_bytes",
        "gauge",
        "Bytes of values in L1.",
        &[("", c.l1_bytes as f64)],
    );
    metric(
        "vitals_cache_redis_errors_total",
        "counter",
        "Redis calls that failed.",
        &[("", c.redis_errors as f64)],
    );
    metric(
        "vitals_cache_redis_up",
        "gauge",
        "1 when Redis is configured and connected.",
        &[("", if c.redis_connected { 1.0 } else { 0.0 })],
    );
    metric(
        "vitals_cache_redis_plaintext_refused",
        "gauge",
        "1 when values are kept out of Redis: no CACHE_ENCRYPTION_KEY and no CACHE_ALLOW_PLAINTEXT.",
        &[("", if c.redis_plaintext_refused { 1.0 } else { 0.0 })],
    );
    metric(
        "vitals_cache_redis_refused_writes_total",
        "counter",
        "Writes whose value was kept out of Redis for want of an encryption key.",
        &[("", c.redis_refused_writes as f64)],
    );
    if let Some(bytes) = c.redis_used_memory {
        metric(
            "vitals_cache_redis_used_memory_bytes",
            "gauge",
            "Redis INFO used_memory.",
            &[("", bytes as f64)],
        );
    }
    metric(
        "vitals_cache_invalidations_total",
        "counter",
        "Invalidations published and received over pub/sub.",
        &[
            ("{direction=\"sent\"}", c.invalidations_sent as f64),
            ("{direction=\"received\"}", c.invalidations_received as f64),
        ],
    );
    let q = vitals.query_logger().statistics();
    metric(
        "vitals_queries_total",
        "counter",
        "Statements recorded.",
        &[("", q.total_queries as f64)],
    );
    metric(
        "vitals_slow_queries_total",
        "counter",
        "Statements over the slow thresholds.",
        &[
            (
                "{tier=\"warning\"}",
                q.slow_queries.saturating_sub(q.critical_queries) as f64,
            ),
            ("{tier=\"critical\"}", q.critical_queries as f64),
        ],
    );
    metric(
        "vitals_failed_queries_total",
        "counter",
        "Statements that failed.",
        &[("", q.failed_queries as f64)],
    );
    metric(
        "vitals_query_duration_avg_ms",
        "gauge",
        "Average statement time, ms.",
        &[("", q.avg_duration_ms)],
    );
    metric(
        "vitals_query_duration_max_ms",
        "gauge",
        "Longest statement time, ms.",
        &[("", q.max_duration_ms)],
    );
    metric(
        "vitals_query_n_plus_one_findings_total",
        "counter",
        "N+1 patterns found in request scopes.",
        &[("", q.n_plus_one_findings as f64)],
    );
    out
}

/// A JSON error body for the host's handlers: `{"error": "..."}` with a status.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// What went wrong, without PHI.
    pub error: String,
}
