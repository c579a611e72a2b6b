//! HTTP for a host service (feature `http`): the health endpoints and `/metrics`; the
//! cache-invalidation layers for write routes are re-exported here from `vitals::health`, the
//! only code that knows students.
//!
//! [`router`] returns an axum `Router` the host merges into its own:
//!
//! | route | what |
//! |---|---|
//! | `GET /api/health/database/pool` | pool metrics now, the monitor's summary, a health check (503 when it is `unhealthy`) |
//! | `GET /api/health/cache/stats` | the cache's statistics |
//! | `GET /api/health/database/performance` | the query performance report (sanitised) |
//! | `GET /api/health/database/slow-queries?limit=N` | the last slow queries (sanitised) |
//! | `GET /api/health/dashboard` | an HTML page of the figures below, refreshing itself; with `Accept: application/json`, its data ([`DashboardSnapshot`]) |
//! | `GET /metrics` | histograms, counters and gauges in Prometheus text format (`metrics-exporter-prometheus`) |
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

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
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

/// 200, or 503 when the primary's check is `unhealthy` (its `SELECT 1` failed or timed out),
/// with the same body: a load balancer or a readiness probe can read the status alone.
/// `degraded` stays 200 (the database answers), and so does a replica's failure (its reads go
/// to the primary).
async fn pool(State(vitals): State<Vitals>) -> (StatusCode, Json<PoolHealth>) {
    let body = PoolHealth {
        engine: vitals.engine(),
        metrics: vitals.pool_metrics(),
        summary: vitals.pool_summary(),
        health: vitals.pool_health(HEALTH_CHECK_TIMEOUT).await,
        replicas: vitals.replica_reports(HEALTH_CHECK_TIMEOUT).await,
    };
    let status = if body.health.status == vitals_pool::HealthStatus::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, Json(body))
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

/// The `/metrics` body, rendered by `metrics-exporter-prometheus` (see
/// [`crate::metrics`]).
pub use crate::metrics::prometheus_text;

/// A JSON error body for the host's handlers: `{"error": "..."}` with a status.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// What went wrong, without PHI.
    pub error: String,
}
