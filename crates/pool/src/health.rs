//! [`health_check`]: `SELECT 1` within a timeout, graded healthy, degraded or unhealthy.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Serialize;

use crate::classify::error_kind;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
use crate::handle::MonitoredPool;
use crate::probe::{PoolProbe, PoolState};

/// A pool that can run `SELECT 1` (the seam [`health_check`] needs besides [`PoolProbe`]).
pub trait HealthTarget: PoolProbe {
    /// Acquires a connection and runs `SELECT 1` on it.
    fn select_one(&self) -> BoxFuture<'_, Result<(), sqlx::Error>>;
}

// Concrete impls: a generic one trips over sqlx's higher-ranked executor bounds when the
// future must be `Send`.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
macro_rules! health_target {
    ($db:ty) => {
        impl HealthTarget for sqlx::Pool<$db> {
            fn select_one(&self) -> BoxFuture<'_, Result<(), sqlx::Error>> {
                Box::pin(async move {
                    let mut conn = self.acquire().await?;
                    sqlx::Executor::execute(&mut *conn, "SELECT 1").await?;
                    Ok(())
                })
            }
        }

        impl HealthTarget for MonitoredPool<$db> {
            fn select_one(&self) -> BoxFuture<'_, Result<(), sqlx::Error>> {
                Box::pin(async move {
                    // Leak site: this macro's invocation, as through `acquire()`. The error is
                    // sqlx's own, so a timeout comes back as `PoolTimedOut`.
                    let location = std::panic::Location::caller();
                    let mut conn = self.acquire_sqlx(Some(location)).await?;
                    sqlx::Executor::execute(&mut *conn, "SELECT 1").await?;
                    Ok(())
                })
            }
        }
    };
}

#[cfg(feature = "postgres")]
health_target!(sqlx::Postgres);
#[cfg(feature = "sqlite")]
health_target!(sqlx::Sqlite);

/// The grade of a health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// `SELECT 1` answered quickly and the pool has room.
    Healthy,
    /// It answered, but slowly (over half the timeout) or with the pool at or above 90 %.
    Degraded,
    /// It failed or did not answer within the timeout.
    Unhealthy,
}

/// The result of [`health_check`], ready to serialise for a health endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// The grade.
    pub status: HealthStatus,
    /// Time to acquire and run `SELECT 1`, ms (up to the timeout when it did not answer).
    pub latency_ms: f64,
    /// The timeout used, ms.
    pub timeout_ms: u64,
    /// Why it is not healthy (error kind or SQLSTATE, never data).
    pub reason: Option<String>,
    /// The pool's numbers when the check started.
    pub pool: PoolState,
    /// Utilisation when the check started, percent.
    pub utilization_percent: f64,
    /// When the check finished.
    pub checked_at: DateTime<Utc>,
}

/// Runs `SELECT 1` through `pool` within `timeout` and grades the result: unhealthy on error
/// or timeout; degraded when it took over half the timeout or utilisation is at least 90 %;
/// healthy otherwise.
pub async fn health_check<P: HealthTarget + ?Sized>(pool: &P, timeout: Duration) -> HealthReport {
    // Read the pool before the check: sqlx returns the check's own connection on a spawned
    // task, so right after it the pool would look one connection busier than it is.
    let state = pool.state();
    let start = Instant::now();
    let outcome = tokio::time::timeout(timeout, pool.select_one()).await;
    let elapsed = start.elapsed();
    let utilization = state.utilization_percent();
    let (status, reason) = match outcome {
        Err(_) => (
            HealthStatus::Unhealthy,
            Some(format!("no answer within {} ms", timeout.as_millis())),
        ),
        Ok(Err(e)) => (HealthStatus::Unhealthy, Some(error_kind(&e))),
        Ok(Ok(())) if elapsed > timeout / 2 => (
            HealthStatus::Degraded,
            Some(format!("slow: {} ms", elapsed.as_millis())),
        ),
        Ok(Ok(())) if utilization >= 90.0 => (
            HealthStatus::Degraded,
            Some(format!("pool utilisation {utilization:.0} %")),
        ),
        Ok(Ok(())) => (HealthStatus::Healthy, None),
    };
    HealthReport {
        status,
        latency_ms: elapsed.as_secs_f64() * 1000.0,
        timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        reason,
        pool: state,
        utilization_percent: utilization,
        checked_at: Utc::now(),
    }
}
