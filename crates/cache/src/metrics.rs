//! The cache's figures through the `metrics` facade (feature `metrics`), and the `cache.get`
//! span's tier; without the feature, or with no recorder installed, the metric calls are
//! no-ops.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `vitals_cache_get_seconds` | histogram | `tier` (`l1`, `l2`, `miss`): the tier that answered |
//! | `vitals_cache_hits_total` | counter | `tier` (`l1`, `l2`) |
//! | `vitals_cache_misses_total` | counter | |
//! | `vitals_cache_loads_total` | counter | |
//! | `vitals_cache_breaker_transitions_total` | counter | `to` (`open`, `half_open`, `closed`) |
//!
//! Invalidations sent and received are counted by the cache's statistics and published by
//! the facade's `/metrics` (`vitals_cache_invalidations_total{direction}`).

use std::time::Instant;

/// The get latency histogram's name.
pub const GET_SECONDS: &str = "vitals_cache_get_seconds";

/// Which tier answered a get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answered {
    L1,
    L2,
    Miss,
}

impl Answered {
    fn label(self) -> &'static str {
        match self {
            Self::L1 => "l1",
            Self::L2 => "l2",
            Self::Miss => "miss",
        }
    }
}

/// One get being answered: its `cache.get` span (a child of the caller's span) and its
/// clock; [`done`](Self::done) records the tier that answered.
pub(crate) struct Get {
    span: tracing::Span,
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))] // read by the metrics only
    started: Instant,
}

impl Get {
    pub(crate) fn start() -> Self {
        Self {
            span: tracing::info_span!(
                target: "vitals_cache",
                "cache.get",
                cache.tier = tracing::field::Empty
            ),
            started: Instant::now(),
        }
    }

    /// The get was answered by `tier`: the span's `cache.tier`, the counters and the latency
    /// histogram.
    pub(crate) fn done(self, tier: Answered) {
        self.span.record("cache.tier", tier.label());
        #[cfg(feature = "metrics")]
        {
            let elapsed = self.started.elapsed().as_secs_f64();
            metrics::histogram!(GET_SECONDS, "tier" => tier.label()).record(elapsed);
            match tier {
                Answered::Miss => metrics::counter!("vitals_cache_misses_total").increment(1),
                hit => {
                    metrics::counter!("vitals_cache_hits_total", "tier" => hit.label())
                        .increment(1);
                }
            }
        }
    }
}

/// One loader run after a miss.
pub(crate) fn load() {
    #[cfg(feature = "metrics")]
    metrics::counter!("vitals_cache_loads_total").increment(1);
}

/// The breaker moved to `to` (`open`, `half_open`, `closed`).
#[cfg(feature = "redis")]
pub(crate) fn breaker_transition(to: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("vitals_cache_breaker_transitions_total", "to" => to).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = to;
}

/// Describes the cache's metrics to the installed recorder (units, help texts) and registers
/// the counters at zero, so a scrape shows them before the first get.
pub fn describe_cache_metrics() {
    #[cfg(feature = "metrics")]
    {
        use metrics::{describe_counter, describe_histogram, Unit};
        describe_histogram!(
            GET_SECONDS,
            Unit::Seconds,
            "Time of a cache get, by the tier that answered (l1, l2, miss)."
        );
        describe_counter!("vitals_cache_hits_total", "Cache hits by tier.");
        describe_counter!("vitals_cache_misses_total", "Cache misses.");
        describe_counter!("vitals_cache_loads_total", "Loader runs after a miss.");
        describe_counter!(
            "vitals_cache_breaker_transitions_total",
            "Redis circuit breaker state changes, by the state entered."
        );
        for tier in ["l1", "l2"] {
            metrics::counter!("vitals_cache_hits_total", "tier" => tier).increment(0);
        }
        metrics::counter!("vitals_cache_misses_total").increment(0);
        metrics::counter!("vitals_cache_loads_total").increment(0);
        for to in ["open", "half_open", "closed"] {
            metrics::counter!("vitals_cache_breaker_transitions_total", "to" => to).increment(0);
        }
    }
}
