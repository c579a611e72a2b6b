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

/// Which tier answered a get, in the order of [`GetFigures`]' handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answered {
    L1 = 0,
    L2 = 1,
    Miss = 2,
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
/// (every 64th get of the thread: the choice does not depend on the hit's time, so the
/// distribution is unbiased; its count is about the hits / 64). Hits are still counted one
/// by one (`vitals_cache_hits_total`, [`CacheStats`](crate::CacheStats)); L2 hits and misses
/// are all timed.
pub const L1_TIMED_ONE_IN: u32 = 64;

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

/// A cache's get figures (the latency histogram and the hit and miss counters, one handle
/// per tier), registered once when the cache is built, so that a get costs a record and an
/// increment rather than a key built (its label list allocated) and looked up in the
/// recorder's registry at each call: the `metrics` crate's advice for hot paths. Bound to the
/// recorder current when they were registered: a get made while another one is current (the
/// host installed its recorder after building the cache, or a test's local recorder)
/// registers into that one as the macros do (the slower path, for the life of a cache built
/// before any recorder was installed: the facade installs its recorder first). Recorders are
/// told apart by address, as the pool's histograms do (`vitals_pool::metrics`): one global
/// recorder (a service's) always is; a local recorder dropped and rebuilt at the same
/// address, or two zero-sized recorders, may look alike, so a test that swaps local recorders
/// builds its cache inside each one's scope. The `l2` histogram is registered only for a
/// cache with Redis, so that a scrape shows no empty `tier="l2"` series where L2 cannot answer.
pub(crate) struct GetFigures {
    #[cfg(feature = "metrics")]
    cached: Cached,
}

#[cfg(feature = "metrics")]
struct Cached {
    /// The recorder the handles were registered with (its address; see [`recorder_id`]).
    recorder: usize,
    /// `vitals_cache_get_seconds` by tier, in [`Answered`]'s order.
    seconds: [metrics::Histogram; 3],
    /// `vitals_cache_hits_total{tier="l1"}`, `{tier="l2"}`, then `vitals_cache_misses_total`.
    counts: [metrics::Counter; 3],
}

/// The address of the recorder a `metrics` call would reach now (the thread's local one, else
/// the global one, else the no-op): equal addresses, the same recorder.
#[cfg(feature = "metrics")]
#[inline]
fn recorder_id() -> usize {
    metrics::with_recorder(|r| std::ptr::from_ref(r).cast::<()>() as usize)
}

#[cfg(feature = "metrics")]
fn seconds_histogram(tier: Answered) -> metrics::Histogram {
    metrics::histogram!(GET_SECONDS, "tier" => tier.label())
}

#[cfg(feature = "metrics")]
fn count_counter(tier: Answered) -> metrics::Counter {
    match tier {
        Answered::Miss => metrics::counter!("vitals_cache_misses_total"),
        hit => metrics::counter!("vitals_cache_hits_total", "tier" => hit.label()),
    }
}

#[cfg(feature = "metrics")]
const TIERS: [Answered; 3] = [Answered::L1, Answered::L2, Answered::Miss];

impl GetFigures {
    /// Registers the handles with the recorder current now (`with_l2`: the cache has Redis).
    pub(crate) fn new(with_l2: bool) -> Self {
        #[cfg(not(feature = "metrics"))]
        let _ = with_l2;
        Self {
            #[cfg(feature = "metrics")]
            cached: Cached {
                recorder: recorder_id(),
                seconds: TIERS.map(|tier| {
                    if tier == Answered::L2 && !with_l2 {
                        metrics::Histogram::noop()
                    } else {
                        seconds_histogram(tier)
                    }
                }),
                counts: TIERS.map(count_counter),
            },
        }
    }

    /// The latency of a get answered by `tier` (out of line: one L1 hit in
    /// [`L1_TIMED_ONE_IN`] is timed, and the hit path stays small enough to inline).
    #[cfg(feature = "metrics")]
    #[inline(never)]
    fn time(&self, tier: Answered, started: Instant, current: bool) {
        let elapsed = started.elapsed().as_secs_f64();
        if current {
            self.cached.seconds[tier as usize].record(elapsed);
        } else {
            seconds_histogram(tier).record(elapsed);
        }
    }

    /// One get answered by `tier`, timed from `started` if its clock was read.
    #[inline(always)]
    fn record(&self, tier: Answered, started: Option<Instant>) {
        #[cfg(feature = "metrics")]
        {
            let current = self.cached.recorder == recorder_id();
            if let Some(started) = started {
                self.time(tier, started, current);
            }
            if current {
                self.cached.counts[tier as usize].increment(1);
            } else {
                count_counter(tier).increment(1);
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (tier, started);
    }
}

/// One get being answered: its `cache.get` span (a child of the caller's span) and its
/// clock; [`done`](Self::done) records the tier that answered.
///
/// The clock is read at the start of 1 get in [`L1_TIMED_ONE_IN`] only; a get that L1 did
/// not answer reads it after the L1 lookup ([`past_l1`](Self::past_l1)) if it was not read
/// yet, so every L2 hit and miss is timed (without the L1 lookup's tens of nanoseconds, for
/// those not sampled).
pub(crate) struct Get {
    /// `None` without a subscriber, or one that does not want it: dropped inline, where a
    /// disabled `Span`'s drop is a call. Boxed, so that the get is three words a hit keeps in
    /// registers: built in place, a `Span` (five words) made every hit write it and read it
    /// back whole (a stall on store forwarding, a fifth of the hit's own time in a profile);
    /// a span a subscriber records costs far more than the box.
    span: Option<Box<tracing::Span>>,
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))] // read by the metrics only
    started: Option<Instant>,
}

impl Get {
    #[inline]
    pub(crate) fn start() -> Self {
        // Without a subscriber (the level filter is off) no span at all, rather than a
        // disabled one: tracing's `log` feature, which sqlx turns on, records a disabled
        // span's fields and logs its drop. With one, the span's own callsite decides, so a
        // filter on its name or fields works as before. No field value is built here:
        // `cache.tier` is recorded by `done`.
        let span = tracing::level_enabled!(tracing::Level::INFO)
            .then(get_span)
            .flatten();
        Self {
            span,
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
    /// histogram (an L1 hit's only if its clock was read at the start), through `figures`.
    #[inline(always)]
    pub(crate) fn done(self, tier: Answered, figures: &GetFigures) {
        // The span is moved out and ended out of line: without one, nothing is dropped here.
        if let Some(span) = self.span {
            end_span(span, tier);
        }
        figures.record(tier, self.started);
    }
}

/// A get's `cache.get` span (out of line, as [`end_span`]: the L1 hit path inlines
/// [`Get::start`] and [`Get::done`], which call these only under a subscriber), boxed, or
/// `None` if the subscriber does not want it (a filter that leaves `vitals_cache` out): no
/// box is allocated for a span that would record nothing.
#[inline(never)]
fn get_span() -> Option<Box<tracing::Span>> {
    let span = tracing::info_span!(
        target: "vitals_cache",
        "cache.get",
        cache.tier = tracing::field::Empty
    );
    (!span.is_disabled()).then(|| Box::new(span))
}

/// Records the tier that answered in a get's span (never a disabled one: [`get_span`] keeps
/// none) and ends it. Takes the box so that its drop, and the span's, happen here, out of
/// the hit path.
#[allow(clippy::boxed_local)]
#[inline(never)]
fn end_span(span: Box<tracing::Span>, tier: Answered) {
    span.record("cache.tier", tier.label());
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
            "Time of a cache get, by the tier that answered (l1, l2, miss); 1 in 64 L1 hits \
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

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use std::time::Duration;

    use futures::FutureExt;
    use metrics_exporter_prometheus::PrometheusBuilder;

    use crate::{CacheConfig, TieredCache};

    /// An L1-only cache holding `"k"`, built on a runtime of its own.
    fn cache_holding_k(rt: &tokio::runtime::Runtime) -> TieredCache {
        rt.block_on(async {
            let cfg = CacheConfig::default().with_l1(true, 16, Duration::from_secs(60));
            let cache = TieredCache::builder(cfg).build().await.unwrap();
            cache
                .set("k", 7_u32, Duration::from_secs(60), &[])
                .await
                .unwrap();
            cache
        })
    }

    /// The value of `name` (with its labels, as rendered) in a Prometheus text body.
    fn value(body: &str, name: &str) -> Option<f64> {
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// Three L1 hits and one miss under a fresh Prometheus recorder, the cache built inside
    /// the recorder's scope or (`inside` false) before it; returns the rendered L1 hits,
    /// misses and timed misses.
    fn figures(inside: bool) -> (Option<f64>, Option<f64>, Option<f64>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let outside = (!inside).then(|| cache_holding_k(&rt));
        let recorder = PrometheusBuilder::new().build_recorder();
        metrics::with_local_recorder(&recorder, || {
            let cache = outside.clone().unwrap_or_else(|| cache_holding_k(&rt));
            for _ in 0..3 {
                let hit = cache.get::<u32>("k").now_or_never().flatten();
                assert_eq!(hit.as_deref(), Some(&7));
            }
            assert!(cache
                .get::<u32>("absent")
                .now_or_never()
                .flatten()
                .is_none());
        });
        let body = recorder.handle().render();
        (
            value(&body, r#"vitals_cache_hits_total{tier="l1"}"#),
            value(&body, "vitals_cache_misses_total"),
            value(&body, r#"vitals_cache_get_seconds_count{tier="miss"}"#),
        )
    }

    /// The handles registered when the cache was built serve the recorder current then.
    #[test]
    fn a_cache_built_under_the_recorder_counts_every_get_into_it() {
        assert_eq!(figures(true), (Some(3.0), Some(1.0), Some(1.0)));
    }

    /// A cache built before the host's recorder (here a local one) loses nothing: each get
    /// registers into the recorder current at the get, as the macros do.
    #[test]
    fn a_cache_built_before_the_recorder_still_counts_every_get_into_it() {
        assert_eq!(figures(false), (Some(3.0), Some(1.0), Some(1.0)));
    }

    /// A subscriber that wants only the `cache.get` span (an `EnvFilter` directive on the
    /// span's name, nothing else on) gets one per get, with the tier that answered.
    #[test]
    fn a_filter_on_the_span_name_gets_the_cache_get_span() {
        use std::sync::{Arc, Mutex};

        use tracing_subscriber::layer::{Context, SubscriberExt};
        use tracing_subscriber::Layer;

        #[derive(Clone, Default)]
        struct Seen(Arc<Mutex<Vec<String>>>);
        impl<S: tracing::Subscriber> Layer<S> for Seen {
            fn on_new_span(
                &self,
                attrs: &tracing::span::Attributes<'_>,
                _: &tracing::span::Id,
                _: Context<'_, S>,
            ) {
                self.0
                    .lock()
                    .unwrap()
                    .push(attrs.metadata().name().to_owned());
            }
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let cache = cache_holding_k(&rt);
        let seen = Seen::default();
        let filter = tracing_subscriber::EnvFilter::new("off,[cache.get]=info");
        let subscriber = tracing_subscriber::registry().with(seen.clone().with_filter(filter));
        tracing::subscriber::with_default(subscriber, || {
            assert!(cache.get::<u32>("k").now_or_never().flatten().is_some());
            assert!(cache
                .get::<u32>("absent")
                .now_or_never()
                .flatten()
                .is_none());
        });
        assert_eq!(*seen.0.lock().unwrap(), ["cache.get", "cache.get"]);
    }
}
