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
    Ok = 0,
    Timeout = 1,
    Error = 2,
}

/// The handle's two histograms, registered once when the handle is built, so that an acquire
/// and a release each cost a record rather than a key built and looked up in the recorder's
/// registry (the `metrics` crate's advice for hot paths). A handle is bound to the recorder
/// current when it was registered: when another one is current at a record (the host
/// installed its recorder after building the handle, or a test's local recorder), that record
/// registers anew into it, as the `histogram!` macro does, so nothing is lost. A recorder is
/// told apart by its address: one global recorder (a service's) always is; a local recorder
/// dropped and rebuilt at the same address, or two zero-sized recorders, may look alike, so a
/// test that swaps local recorders builds its handle inside each one's scope.
pub(crate) struct Histograms {
    #[cfg(feature = "metrics")]
    cached: Cached,
}

#[cfg(feature = "metrics")]
struct Cached {
    /// The recorder the handles were registered with (its address; see [`recorder_id`]).
    recorder: usize,
    /// The acquire wait by outcome, in [`Acquired`]'s order.
    wait: [metrics::Histogram; 3],
    hold: metrics::Histogram,
}

/// The address of the recorder a `metrics` call would reach now (the thread's local one, else
/// the global one, else the no-op): equal addresses, the same recorder.
#[cfg(feature = "metrics")]
fn recorder_id() -> usize {
    metrics::with_recorder(|r| std::ptr::from_ref(r).cast::<()>() as usize)
}

#[cfg(feature = "metrics")]
fn wait_histogram(outcome: Acquired) -> metrics::Histogram {
    let outcome = match outcome {
        Acquired::Ok => "ok",
        Acquired::Timeout => "timeout",
        Acquired::Error => "error",
    };
    metrics::histogram!(ACQUIRE_WAIT, "outcome" => outcome)
}

#[cfg(feature = "metrics")]
fn hold_histogram() -> metrics::Histogram {
    metrics::histogram!(CONNECTION_HOLD)
}

impl Histograms {
    /// Registers the histograms with the recorder current now.
    pub(crate) fn new() -> Self {
        Self {
            #[cfg(feature = "metrics")]
            cached: Cached {
                recorder: recorder_id(),
                wait: [Acquired::Ok, Acquired::Timeout, Acquired::Error].map(wait_histogram),
                hold: hold_histogram(),
            },
        }
    }

    /// Whether the handles were registered with the recorder current now.
    #[cfg(feature = "metrics")]
    fn current(&self) -> bool {
        self.cached.recorder == recorder_id()
    }

    /// One acquire's wait.
    pub(crate) fn acquire_wait(&self, waited: Duration, outcome: Acquired) {
        #[cfg(feature = "metrics")]
        {
            let seconds = waited.as_secs_f64();
            if self.current() {
                self.cached.wait[outcome as usize].record(seconds);
            } else {
                wait_histogram(outcome).record(seconds);
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (waited, outcome);
    }

    /// One connection's hold, from its acquire to its return.
    pub(crate) fn connection_hold(&self, held: Duration) {
        #[cfg(feature = "metrics")]
        {
            let seconds = held.as_secs_f64();
            if self.current() {
                self.cached.hold.record(seconds);
            } else {
                hold_histogram().record(seconds);
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = held;
    }
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

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use metrics_exporter_prometheus::PrometheusBuilder;

    use super::*;

    /// Runs `record` under a fresh Prometheus recorder and returns the counts of the acquire
    /// waits (`ok`, `timeout`, `error`) and of the holds it rendered.
    fn counts(record: impl FnOnce()) -> [Option<u64>; 4] {
        let recorder = PrometheusBuilder::new().build_recorder();
        metrics::with_local_recorder(&recorder, record);
        let body = recorder.handle().render();
        let count = |name: &str, labels: &str| {
            let prefix = format!("{name}_count{labels} ");
            body.lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .and_then(|n| n.trim().parse().ok())
        };
        [
            count(ACQUIRE_WAIT, "{outcome=\"ok\"}"),
            count(ACQUIRE_WAIT, "{outcome=\"timeout\"}"),
            count(ACQUIRE_WAIT, "{outcome=\"error\"}"),
            count(CONNECTION_HOLD, ""),
        ]
    }

    #[test]
    fn handles_registered_with_the_current_recorder_are_the_ones_recorded_into() {
        let counts = counts(|| {
            let h = Histograms::new();
            assert!(h.current());
            for _ in 0..2 {
                h.acquire_wait(Duration::from_millis(2), Acquired::Ok);
                h.connection_hold(Duration::from_millis(3));
            }
            h.acquire_wait(Duration::from_secs(1), Acquired::Timeout);
        });
        // `error`: registered with this recorder (count 0), never recorded.
        assert_eq!(counts, [Some(2), Some(1), Some(0), Some(2)]);
    }

    /// A handle built before the host's recorder (here: with none, the no-op one) still
    /// reaches the recorder current at each record: nothing is lost to the cache.
    #[test]
    fn a_handle_built_before_the_recorder_records_into_the_current_one() {
        let h = metrics::with_local_recorder(&metrics::NoopRecorder, Histograms::new);
        let counts = counts(|| {
            assert!(!h.current());
            h.acquire_wait(Duration::from_millis(2), Acquired::Error);
            h.connection_hold(Duration::from_millis(3));
        });
        // `ok` and `timeout`: registered with the no-op recorder only, never with this one.
        assert_eq!(counts, [None, None, Some(1), Some(1)]);
    }
}
