//! The cache's figures through the `metrics` facade (feature `metrics`), and the `cache.get`
//! span's tier; without the feature, or with no recorder installed, the metric calls are
//! no-ops.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `vitals_cache_get_seconds` | histogram | `tier` (`l1`, `l2`, `miss`): the tier that answered; L1 hits sampled, 1 in [`L1_TIMED_ONE_IN`] timed, L2 hits and misses all |
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

/// One in this many L1 hits of a thread is timed into `vitals_cache_get_seconds{tier="l1"}`
/// (every 16th get of the thread: the choice does not depend on the hit's time, so the
/// distribution is unbiased; its count is about the hits / 16). Hits are still counted one
/// by one (`vitals_cache_hits_total`, [`CacheStats`](crate::CacheStats)); L2 hits and misses
/// are all timed.
pub const L1_TIMED_ONE_IN: u32 = 16;

#[cfg(feature = "metrics")]
thread_local! {
    /// Gets started on this thread, modulo [`L1_TIMED_ONE_IN`].
    static GETS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// The clock of a get starting now, if it is this thread's turn to be timed (1 in
/// [`L1_TIMED_ONE_IN`]; never without the feature `metrics`).
#[inline]
fn sampled_now() -> Option<Instant> {
    #[cfg(feature = "metrics")]
    {
        let turn = GETS.with(|n| {
            let v = n.get();
            n.set((v + 1) % L1_TIMED_ONE_IN);
            v == 0
        });
        if turn {
            return Some(Instant::now());
        }
    }
    None
}

/// One get being answered: its `cache.get` span (a child of the caller's span) and its
/// clock; [`done`](Self::done) records the tier that answered.
///
/// The clock is read at the start of 1 get in [`L1_TIMED_ONE_IN`] only; a get that L1 did
/// not answer reads it after the L1 lookup ([`past_l1`](Self::past_l1)) if it was not read
/// yet, so every L2 hit and miss is timed (without the L1 lookup's tens of nanoseconds, for
/// those not sampled).
pub(crate) struct Get {
    span: tracing::Span,
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))] // read by the metrics only
    started: Option<Instant>,
}

impl Get {
    #[inline]
    pub(crate) fn start() -> Self {
        Self {
            // No field value is built here: `cache.tier` is recorded by `done`, and only
            // if a subscriber wants the span (a disabled span is `Span::none()`).
            span: tracing::info_span!(
                target: "vitals_cache",
                "cache.get",
                cache.tier = tracing::field::Empty
            ),
            started: sampled_now(),
        }
    }

    /// L1 did not answer (a miss, or a value of another type): the clock starts now if it
    /// did not at [`start`](Self::start), so that what comes next is timed whatever the
    /// sampling of L1 hits.
    #[inline]
    pub(crate) fn past_l1(&mut self) {
        #[cfg(feature = "metrics")]
        if self.started.is_none() {
            self.started = Some(Instant::now());
        }
    }

    /// The get was answered by `tier`: the span's `cache.tier`, the counters and the latency
    /// histogram (an L1 hit's only if its clock was read at the start).
    #[inline]
    pub(crate) fn done(self, tier: Answered) {
        if !self.span.is_disabled() {
            self.span.record("cache.tier", tier.label());
        }
        #[cfg(feature = "metrics")]
        {
            if let Some(started) = self.started {
                let elapsed = started.elapsed().as_secs_f64();
                metrics::histogram!(GET_SECONDS, "tier" => tier.label()).record(elapsed);
            }
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
            "Time of a cache get, by the tier that answered (l1, l2, miss); 1 in 16 L1 hits \
             timed, every L2 hit and miss."
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
