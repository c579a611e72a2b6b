//! A circuit breaker in front of Redis (its state, as the stats show it, is `stats.rs`'s).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::stats::BreakerState;

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    failures: u32,
    open_until: Instant,
}

/// Opens after `threshold` consecutive failures, lets one probe through
/// after `cooldown`, closes on a success.
#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    cooldown: Duration,
    inner: Mutex<Inner>,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                failures: 0,
                open_until: Instant::now(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        crate::poison::lock(&self.inner)
    }

    /// Whether a call may go to Redis now.
    pub(crate) fn allow(&self) -> bool {
        let mut g = self.lock();
        match g.state {
            BreakerState::Closed => true,
            BreakerState::HalfOpen => false,
            BreakerState::Open => {
                if Instant::now() >= g.open_until {
                    g.state = BreakerState::HalfOpen;
                    crate::metrics::breaker_transition("half_open");
                    true
                } else {
                    false
                }
            }
        }
    }

    pub(crate) fn success(&self) {
        let mut g = self.lock();
        if g.state != BreakerState::Closed {
            tracing::info!(target: "vitals_cache", "redis healthy again: circuit breaker closed");
            crate::metrics::breaker_transition("closed");
        }
        g.state = BreakerState::Closed;
        g.failures = 0;
    }

    pub(crate) fn failure(&self) {
        let mut g = self.lock();
        g.failures = g.failures.saturating_add(1);
        let open = match g.state {
            BreakerState::HalfOpen => true,
            BreakerState::Closed => g.failures >= self.threshold,
            BreakerState::Open => false,
        };
        if open {
            if g.state == BreakerState::Closed {
                tracing::warn!(
                    target: "vitals_cache",
                    failures = g.failures,
                    cooldown_ms = self.cooldown.as_millis() as u64,
                    "redis failing: circuit breaker open, serving from L1 and loaders"
                );
            }
            g.state = BreakerState::Open;
            crate::metrics::breaker_transition("open");
            g.open_until = Instant::now() + self.cooldown;
        }
    }

    pub(crate) fn state(&self) -> BreakerState {
        self.lock().state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_probes_after_cooldown() {
        let b = Breaker::new(3, Duration::ZERO);
        b.failure();
        b.failure();
        assert_eq!(b.state(), BreakerState::Closed);
        b.failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.allow(), "cool-down of zero lets a probe through");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(!b.allow(), "only one probe at a time");
        b.failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.allow());
        b.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow());
    }

    #[test]
    fn open_breaker_refuses_during_cooldown() {
        let b = Breaker::new(1, Duration::from_secs(3600));
        b.failure();
        assert!(!b.allow());
    }

    #[test]
    fn success_resets_consecutive_count() {
        let b = Breaker::new(2, Duration::from_secs(3600));
        b.failure();
        b.success();
        b.failure();
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
