//! The cache's hit rates over time: a sampler that reads the cache's cumulative counters at
//! the pool monitor's interval and keeps, per interval, the lookups and what each tier
//! answered (the health dashboard's "cache hit rate per tier over time").

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::task::JoinHandle;
use vitals_cache::{CacheStats, TieredCache};

/// Intervals kept, as many as the pool monitor's default history.
pub const CACHE_HISTORY_SAMPLES: usize = 100;

/// One interval of the cache: the lookups between two samples and which tier answered them.
///
/// # Example
/// ```
/// # fn example(vitals: &vitals::Vitals) {
/// for s in vitals.cache_history() {
///     println!("{} lookups, L1 {:?}, L2 {:?}", s.lookups, s.l1_hit_rate, s.l2_hit_rate);
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheSample {
    /// When the interval ended.
    pub timestamp: DateTime<Utc>,
    /// Lookups in the interval (`l1_hits + l2_hits + misses`).
    pub lookups: u64,
    /// Lookups L1 answered.
    pub l1_hits: u64,
    /// Lookups Redis answered (L1 missed).
    pub l2_hits: u64,
    /// Lookups neither tier answered.
    pub misses: u64,
    /// L1's hit rate: `l1_hits / lookups`, 0 to 1; `None` without lookups.
    pub l1_hit_rate: Option<f64>,
    /// L2's hit rate over the lookups that reached it: `l2_hits / (l2_hits + misses)`, 0 to
    /// 1; `None` when none reached it.
    pub l2_hit_rate: Option<f64>,
    /// Either tier: `(l1_hits + l2_hits) / lookups`; `None` without lookups.
    pub hit_rate: Option<f64>,
}

impl CacheSample {
    /// The interval between two readings of the counters (`before` earlier than `after`).
    fn between(before: &Counters, after: &Counters, timestamp: DateTime<Utc>) -> Self {
        let l1_hits = after.l1_hits.saturating_sub(before.l1_hits);
        let l2_hits = after.l2_hits.saturating_sub(before.l2_hits);
        let misses = after.misses.saturating_sub(before.misses);
        let lookups = l1_hits + l2_hits + misses;
        let ratio = |part: u64, whole: u64| (whole > 0).then(|| part as f64 / whole as f64);
        CacheSample {
            timestamp,
            lookups,
            l1_hits,
            l2_hits,
            misses,
            l1_hit_rate: ratio(l1_hits, lookups),
            l2_hit_rate: ratio(l2_hits, l2_hits + misses),
            hit_rate: ratio(l1_hits + l2_hits, lookups),
        }
    }
}

/// The cumulative counters a sample is the difference of.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    l1_hits: u64,
    l2_hits: u64,
    misses: u64,
}

impl From<&CacheStats> for Counters {
    fn from(s: &CacheStats) -> Self {
        Counters {
            l1_hits: s.l1_hits,
            l2_hits: s.l2_hits,
            misses: s.misses,
        }
    }
}

struct Ring {
    last: Counters,
    samples: VecDeque<CacheSample>,
}

struct Shared {
    cache: TieredCache,
    ring: Mutex<Ring>,
}

impl Shared {
    fn sample(&self) -> CacheSample {
        let now = Counters::from(&self.cache.stats());
        // A poisoned lock is taken over: a panic between two assignments leaves a ring
        // whose worst fault is one interval counted twice.
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        let sample = CacheSample::between(&ring.last, &now, Utc::now());
        ring.last = now;
        if ring.samples.len() >= CACHE_HISTORY_SAMPLES {
            ring.samples.pop_front();
        }
        ring.samples.push_back(sample.clone());
        sample
    }
}

/// Samples a cache every interval on a tokio task; aborted by [`stop`](Self::stop) or on drop.
pub(crate) struct CacheHistory {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl CacheHistory {
    /// Starts sampling `cache` every `every` (the first interval ends one `every` from now).
    ///
    /// # Panics
    /// When called outside a tokio runtime (as `tokio::spawn`).
    pub(crate) fn spawn(cache: TieredCache, every: Duration) -> Self {
        let last = Counters::from(&cache.stats());
        let shared = Arc::new(Shared {
            cache,
            ring: Mutex::new(Ring {
                last,
                samples: VecDeque::new(),
            }),
        });
        let sampler = Arc::clone(&shared);
        // `interval` panics on a zero period; the pool's configuration allows 0 ms.
        let every = every.max(Duration::from_millis(1));
        let task = tokio::spawn(async move {
            let start = tokio::time::Instant::now() + every;
            let mut ticker = tokio::time::interval_at(start, every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                sampler.sample();
            }
        });
        CacheHistory { shared, task }
    }

    /// Ends the interval now, as if the period had passed.
    pub(crate) fn sample_now(&self) -> CacheSample {
        self.shared.sample()
    }

    /// The intervals kept, oldest first.
    pub(crate) fn samples(&self) -> Vec<CacheSample> {
        let ring = self
            .shared
            .ring
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        ring.samples.iter().cloned().collect()
    }

    /// Stops sampling; the samples stay readable.
    pub(crate) fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for CacheHistory {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(l1_hits: u64, l2_hits: u64, misses: u64) -> Counters {
        Counters {
            l1_hits,
            l2_hits,
            misses,
        }
    }

    #[test]
    fn a_sample_is_the_difference_with_each_tier_over_what_reached_it() {
        let s = CacheSample::between(&counters(10, 2, 4), &counters(16, 3, 7), Utc::now());
        assert_eq!((s.lookups, s.l1_hits, s.l2_hits, s.misses), (10, 6, 1, 3));
        assert_eq!(s.l1_hit_rate, Some(0.6));
        assert_eq!(s.l2_hit_rate, Some(0.25));
        assert_eq!(s.hit_rate, Some(0.7));
    }

    #[test]
    fn an_interval_without_lookups_has_no_rates() {
        let s = CacheSample::between(&counters(5, 5, 5), &counters(5, 5, 5), Utc::now());
        assert_eq!(s.lookups, 0);
        assert_eq!(
            (s.l1_hit_rate, s.l2_hit_rate, s.hit_rate),
            (None, None, None)
        );
        let only_l1 = CacheSample::between(&counters(0, 0, 0), &counters(3, 0, 0), Utc::now());
        assert_eq!(only_l1.l1_hit_rate, Some(1.0));
        assert_eq!(only_l1.l2_hit_rate, None);
    }
}
