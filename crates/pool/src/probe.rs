//! [`PoolProbe`]: what a pool can tell about itself.

use serde::Serialize;

use crate::stats::HandleStats;

/// A pool's numbers at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PoolState {
    /// Open connections, busy and idle.
    pub size: u32,
    /// Idle connections.
    pub idle: u32,
    /// Upper bound of the pool.
    pub max: u32,
    /// Tasks waiting for a connection, when the pool can tell.
    pub waiting: Option<u32>,
    /// Whether `waiting` is exact (true for [`MonitoredPool`](crate::MonitoredPool); bb8's count drifts upward
    /// when a caller cancels a `get`).
    pub waiting_exact: bool,
}

impl PoolState {
    /// Busy connections (`size - idle`).
    #[must_use]
    pub fn active(&self) -> u32 {
        self.size.saturating_sub(self.idle)
    }

    /// Busy connections as a percentage of `max` (`active / max * 100`); 0 when `max` is 0.
    #[must_use]
    pub fn utilization_percent(&self) -> f64 {
        if self.max == 0 {
            0.0
        } else {
            f64::from(self.active()) * 100.0 / f64::from(self.max)
        }
    }
}

/// What a pool can tell: the seam between pools and the [`PoolMonitor`](crate::PoolMonitor).
///
/// Implemented for `sqlx::Pool<DB>` (no waiter count), `bb8::Pool<M>` (waiters from its
/// statistics, which drift on cancellation) and [`MonitoredPool`](crate::MonitoredPool)
/// (exact waiters, latencies; its impl is beside the handle, so this file knows only the seam).
pub trait PoolProbe: Send + Sync {
    /// Size, idle, max and waiting now.
    fn state(&self) -> PoolState;

    /// Statistics only a monitored handle has; takes the window (see [`HandleStats`]).
    fn take_handle_stats(&self) -> Option<HandleStats> {
        None
    }
}

impl<DB: sqlx::Database> PoolProbe for sqlx::Pool<DB> {
    fn state(&self) -> PoolState {
        PoolState {
            size: self.size(),
            idle: u32::try_from(self.num_idle()).unwrap_or(u32::MAX),
            max: self.options().get_max_connections(),
            waiting: None,
            waiting_exact: false,
        }
    }
}

#[cfg(feature = "bb8")]
impl<M: bb8::ManageConnection> PoolProbe for bb8::Pool<M> {
    fn state(&self) -> PoolState {
        let s = bb8::Pool::state(self);
        PoolState {
            size: s.connections,
            idle: s.idle_connections,
            max: self.config().max_size,
            waiting: Some(u32::try_from(s.statistics.pending_gets()).unwrap_or(u32::MAX)),
            waiting_exact: false,
        }
    }
}

impl<P: PoolProbe + ?Sized> PoolProbe for std::sync::Arc<P> {
    fn state(&self) -> PoolState {
        (**self).state()
    }
    fn take_handle_stats(&self) -> Option<HandleStats> {
        (**self).take_handle_stats()
    }
}
