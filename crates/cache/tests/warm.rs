//! Cache warming: batches, failures skipped, schedule and on demand.
//! Run with `cargo test -p vitals-cache --test warm` (L1 only, no server).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use vitals_cache::{CacheConfig, TieredCache, WarmEntry, WarmError, WarmScheduler, Warmer};

struct Students {
    n: usize,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

impl Warmer for Students {
    async fn keys(&self) -> Result<Vec<String>, WarmError> {
        Ok((0..self.n)
            .map(|i| format!("student:{i}:summary"))
            .collect())
    }

    async fn load(&self, key: &str) -> Result<WarmEntry, WarmError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::task::yield_now().await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if key.starts_with("student:1") && key.len() == "student:13:summary".len() {
            return Err("record locked".into());
        }
        Ok(WarmEntry::new(
            key.len(),
            Duration::from_secs(60),
            &["summary"],
        )?)
    }
}

fn students(n: usize) -> (Students, Arc<AtomicUsize>) {
    let max = Arc::new(AtomicUsize::new(0));
    (
        Students {
            n,
            in_flight: Arc::new(AtomicUsize::new(0)),
            max_in_flight: max.clone(),
        },
        max,
    )
}

#[tokio::test]
async fn warm_now_loads_in_bounded_batches_and_skips_failures() {
    let mut cfg = CacheConfig::default();
    cfg.warming_enabled = false;
    cfg.warming_concurrency = 4;
    let cache = TieredCache::builder(cfg).build().await.unwrap();
    let (w, max) = students(120);
    let sched = WarmScheduler::start(&cache, w);
    let s = sched.warm_now().await;
    // student:10..19 fail (10 keys), the other 110 are cached.
    assert_eq!((s.warmed, s.failed), (110, 10));
    assert_eq!(sched.last_summary(), Some(s));
    assert!(max.load(Ordering::SeqCst) <= 4);
    assert_eq!(
        cache.get_cloned::<usize>("student:5:summary").await,
        Some(17)
    );
    assert_eq!(cache.get_cloned::<usize>("student:12:summary").await, None);
    assert_eq!(cache.invalidate_tag("summary").await, 110);
    cache.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn scheduled_warming_runs_after_the_delay_then_every_interval() {
    let mut cfg = CacheConfig::default();
    cfg.warming_enabled = true;
    cfg.warming_delay = Duration::from_secs(5);
    cfg.warming_interval = Duration::from_secs(3600);
    let cache = TieredCache::builder(cfg).build().await.unwrap();
    let (w, _) = students(3);
    let sched = WarmScheduler::start(&cache, w);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(sched.last_summary(), None, "not before the delay");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sched.last_summary().map(|s| s.warmed), Some(3));
    cache.clear_l1();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(
        cache.get_cloned::<usize>("student:0:summary").await,
        Some(17)
    );
    cache.shutdown().await;
}
