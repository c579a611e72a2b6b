//! [`PoolMetrics`]: one sample of a pool's figures, the shape the monitor keeps, alerts on and
//! serves, and the `metrics` gauges are set from. Its own file so that the monitor and the
//! metrics both read it without reading each other.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::probe::PoolState;
use crate::stats::HandleStats;

/// One sample, in the report's `PoolMetrics` shape. Serialised with snake_case field names
/// (`active_connections`, `utilization_percent`, ...).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolMetrics {
    /// Busy connections.
    pub active_connections: u32,
    /// Idle connections.
    pub idle_connections: u32,
    /// Tasks waiting for a connection (`None` when the pool cannot tell, as a bare sqlx pool).
    pub waiting_requests: Option<u32>,
    /// Whether `waiting_requests` is exact (see [`PoolState::waiting_exact`]).
    pub waiting_exact: bool,
    /// Open connections.
    pub total_connections: u32,
    /// Pool upper bound.
    pub max_connections: u32,
    /// `active / max`, percent.
    pub utilization_percent: f64,
    /// When the sample was taken.
    pub timestamp: DateTime<Utc>,
    /// Handle-only numbers (exact waiters, oldest waiter, peak, latencies, leaks), when the
    /// probe is a [`MonitoredPool`](crate::MonitoredPool).
    pub handle: Option<HandleStats>,
}

impl PoolMetrics {
    /// Builds a sample from a probe reading.
    #[must_use]
    pub fn from_state(state: PoolState, handle: Option<HandleStats>) -> Self {
        Self {
            active_connections: state.active(),
            idle_connections: state.idle,
            waiting_requests: state.waiting,
            waiting_exact: state.waiting_exact,
            total_connections: state.size,
            max_connections: state.max,
            utilization_percent: state.utilization_percent(),
            timestamp: Utc::now(),
            handle,
        }
    }
}
