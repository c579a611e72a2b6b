//! Cache warming: a [`Warmer`] says what to load, a [`WarmScheduler`] runs it
//! at start (after a delay), periodically and on demand.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde::Serialize;

use crate::error::CacheError;
use crate::l1::Value;
use crate::tier::Placement;
use crate::tiered::TieredCache;

/// The error a [`Warmer`] may return; logged and skipped.
pub type WarmError = Box<dyn std::error::Error + Send + Sync>;

/// What to cache for one key: the value (L1 holds it as it is, read back as a `T`), its
/// JSON (for Redis), its TTL and tags.
#[derive(Clone)]
pub struct WarmEntry {
    value: Value,
    bytes: Arc<[u8]>,
    ttl: Duration,
    tags: Vec<String>,
}

impl std::fmt::Debug for WarmEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the value: it may be PHI.
        f.debug_struct("WarmEntry")
            .field("bytes", &self.bytes.len())
            .field("ttl", &self.ttl)
            .field("tags", &self.tags)
            .finish_non_exhaustive()
    }
}

impl WarmEntry {
    /// An entry of `value` for `ttl` under `tags`. Give it the type the readers ask for
    /// (`get::<T>`, `get_or_load` of a `T`): in L1 another type is a miss.
    ///
    /// # Errors
    /// [`CacheError::Serde`] if `value` does not serialise.
    pub fn new<T>(value: T, ttl: Duration, tags: &[&str]) -> Result<Self, CacheError>
    where
        T: Serialize + Send + Sync + 'static,
    {
        Ok(Self {
            bytes: serde_json::to_vec(&value)?.into(),
            value: Arc::new(value),
            ttl,
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        })
    }
}

/// Says what to warm: which keys now, and what to cache for each.
///
/// Implemented by the application (e.g. the students with recent health
/// activity, and their allergies); the scheduler batches and bounds it.
pub trait Warmer: Send + Sync + 'static {
    /// The keys to warm in this run.
    fn keys(&self) -> impl Future<Output = Result<Vec<String>, WarmError>> + Send;

    /// What to cache under `key`.
    fn load(&self, key: &str) -> impl Future<Output = Result<WarmEntry, WarmError>> + Send;
}

/// The outcome of one warming run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct WarmSummary {
    /// Keys loaded and cached.
    pub warmed: usize,
    /// Keys whose load failed (logged and skipped).
    pub failed: usize,
    /// Duration of the run in milliseconds.
    pub elapsed_ms: u64,
}

type RunFn = dyn Fn() -> Pin<Box<dyn Future<Output = WarmSummary> + Send>> + Send + Sync;

/// Runs a [`Warmer`] against a cache: once `warming_delay` after start, then
/// every `warming_interval` (when `warming_enabled`), and on demand with
/// [`WarmScheduler::warm_now`]. Keys go in batches of `warming_batch_size`,
/// at most `warming_concurrency` loads at a time; runs never overlap.
///
/// Cheap to clone, `Send + Sync`. The scheduled task stops with
/// [`TieredCache::shutdown`].
#[derive(Clone)]
pub struct WarmScheduler {
    run: Arc<RunFn>,
    lock: Arc<tokio::sync::Mutex<()>>,
    last: Arc<Mutex<Option<WarmSummary>>>,
}

impl std::fmt::Debug for WarmScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarmScheduler")
            .field("last", &self.last_summary())
            .finish_non_exhaustive()
    }
}

impl WarmScheduler {
    /// Starts warming `cache` with `warmer`; the schedule runs only if
    /// `warming_enabled` (on-demand runs always work). Must be called within a
    /// tokio runtime.
    pub fn start<W: Warmer>(cache: &TieredCache, warmer: W) -> Self {
        let warmer = Arc::new(warmer);
        // Weak, so a scheduler alone does not keep a dropped cache alive.
        let weak = Arc::downgrade(&cache.inner);
        let run: Arc<RunFn> = Arc::new(move || {
            let weak = weak.clone();
            let warmer = warmer.clone();
            Box::pin(async move {
                match weak.upgrade() {
                    Some(inner) => warm(&TieredCache { inner }, &*warmer).await,
                    None => WarmSummary::default(),
                }
            })
        });
        let sched = Self {
            run,
            lock: Arc::new(tokio::sync::Mutex::new(())),
            last: Arc::new(Mutex::new(None)),
        };
        let cfg = cache.config();
        if cfg.warming_enabled {
            let token = cache.inner.shutdown.child_token();
            let (delay, every) = (cfg.warming_delay, cfg.warming_interval);
            let s = sched.clone();
            let task = tokio::spawn(async move {
                let mut wait = delay;
                loop {
                    tokio::select! {
                        () = token.cancelled() => return,
                        () = tokio::time::sleep(wait) => {}
                    }
                    tokio::select! {
                        () = token.cancelled() => return,
                        _ = s.warm_now() => {}
                    }
                    wait = every;
                }
            });
            cache.add_task(task);
        }
        sched
    }

    /// Runs a warming now (after any run in progress) and returns its summary.
    pub async fn warm_now(&self) -> WarmSummary {
        let _g = self.lock.lock().await;
        let summary = (self.run)().await;
        *crate::poison::lock(&self.last) = Some(summary);
        summary
    }

    /// The summary of the last finished run.
    pub fn last_summary(&self) -> Option<WarmSummary> {
        *crate::poison::lock(&self.last)
    }
}

async fn warm<W: Warmer>(cache: &TieredCache, warmer: &W) -> WarmSummary {
    let start = Instant::now();
    let cfg = cache.config();
    // Both at least 1: the builder validates the configuration.
    let (batch, concurrency) = (cfg.warming_batch_size, cfg.warming_concurrency);
    let mut summary = WarmSummary::default();
    let keys = match warmer.keys().await {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(target: "vitals_cache", error = %e, "cache warming: listing keys failed");
            summary.failed = 1;
            summary.elapsed_ms = start.elapsed().as_millis() as u64;
            return summary;
        }
    };
    for chunk in keys.chunks(batch) {
        let mut loads = futures::stream::iter(chunk.iter().cloned())
            .map(move |k: String| async move {
                let r = warmer.load(&k).await;
                (k, r)
            })
            .buffer_unordered(concurrency);
        while let Some((key, r)) = loads.next().await {
            match r {
                Ok(e) => {
                    let tags: Vec<&str> = e.tags.iter().map(String::as_str).collect();
                    cache
                        .store(Placement::new(&key, e.ttl, &tags), e.value, e.bytes)
                        .await;
                    summary.warmed += 1;
                }
                Err(e) => {
                    summary.failed += 1;
                    tracing::warn!(target: "vitals_cache", error = %e, "cache warming: one item failed, skipped");
                }
            }
        }
    }
    summary.elapsed_ms = start.elapsed().as_millis() as u64;
    tracing::info!(
        target: "vitals_cache",
        warmed = summary.warmed,
        failed = summary.failed,
        elapsed_ms = summary.elapsed_ms,
        "cache warming done"
    );
    summary
}
