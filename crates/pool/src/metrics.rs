//! The pool's figures through the `metrics` facade (feature `metrics`), so whatever exporter
//! the host installed (Prometheus, OpenTelemetry, StatsD) receives them; without the feature,
//! or with no recorder installed, each call is a no-op.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `vitals_pool_acquire_wait_seconds` | histogram | `outcome` (`ok`, `timeout`, `error`) |
//! | `vitals_pool_connection_hold_seconds` | histogram | |
//! | `vitals_pool_active_connections`, `_idle_connections`, `_waiting_requests`, `_max_connections` | gauge | |
//!
//! The gauges are set at every monitor sample ([`PoolMonitor`](crate::PoolMonitor)) and by
//! [`record_pool_gauges`] (the facade calls it before rendering `/metrics`).

use std::time::Duration;

use crate::sample::PoolMetrics;

/// The acquire wait histogram's name.
pub const ACQUIRE_WAIT: &str = "vitals_pool_acquire_wait_seconds";
/// The connection hold histogram's name.
pub const CONNECTION_HOLD: &str = "vitals_pool_connection_hold_seconds";

/// How an acquire ended, the `outcome` label of [`ACQUIRE_WAIT`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Acquired {
    Ok,
    Timeout,
    Error,
}

/// One acquire's wait.
pub(crate) fn acquire_wait(waited: Duration, outcome: Acquired) {
    #[cfg(feature = "metrics")]
    {
        let outcome = match outcome {
            Acquired::Ok => "ok",
            Acquired::Timeout => "timeout",
            Acquired::Error => "error",
        };
        metrics::histogram!(ACQUIRE_WAIT, "outcome" => outcome).record(waited.as_secs_f64());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (waited, outcome);
}

/// One connection's hold, from its acquire to its return.
pub(crate) fn connection_hold(held: Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(CONNECTION_HOLD).record(held.as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = held;
}

/// One pool gauge: name, help text, and the value a sample gives (waiting is 0 when the
/// probe cannot tell).
#[cfg(feature = "metrics")]
type Gauge = (&'static str, &'static str, fn(&PoolMetrics) -> u32);

/// The pool's four gauges.
#[cfg(feature = "metrics")]
const GAUGES: [Gauge; 4] = [
    (
        "vitals_pool_active_connections",
        "Connections in use.",
        |m| m.active_connections,
    ),
    (
        "vitals_pool_idle_connections",
        "Connections open and idle.",
        |m| m.idle_connections,
    ),
    (
        "vitals_pool_waiting_requests",
        "Tasks waiting for a connection.",
        |m| m.waiting_requests.unwrap_or(0),
    ),
    ("vitals_pool_max_connections", "The pool's ceiling.", |m| {
        m.max_connections
    }),
];

/// Sets the pool gauges from a sample: active, idle, waiting (0 when the probe cannot tell)
/// and max connections.
pub fn record_pool_gauges(m: &PoolMetrics) {
    #[cfg(feature = "metrics")]
    for (name, _, value) in GAUGES {
        metrics::gauge!(name).set(f64::from(value(m)));
    }
    #[cfg(not(feature = "metrics"))]
    let _ = m;
}

/// Describes the pool's metrics to the installed recorder (units and help texts), once at
/// start; the exporter shows them as `# HELP` lines.
pub fn describe_pool_metrics() {
    #[cfg(feature = "metrics")]
    {
        use metrics::{describe_gauge, describe_histogram, Unit};
        for (name, help) in [
            (
                ACQUIRE_WAIT,
                "Time to acquire a connection through the monitored handle.",
            ),
            (
                CONNECTION_HOLD,
                "Time a connection was held before it went back to the pool.",
            ),
        ] {
            describe_histogram!(name, Unit::Seconds, help);
        }
        for (name, help, _) in GAUGES {
            describe_gauge!(name, help);
        }
    }
}
