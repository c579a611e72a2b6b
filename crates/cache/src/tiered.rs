//! The two-tier cache: L1 in process over Redis, coherent through pub/sub,
//! with single-flight loads.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::breaker::BreakerState;
use crate::config::CacheConfig;
use crate::error::CacheError;
use crate::l1::L1Cache;
use crate::redis_tier::{Message, RedisTier};
use crate::stats::CacheStats;

const STRIPES: usize = 64;

#[derive(Clone)]
enum Flight {
    Pending,
    Done(Arc<[u8]>),
    Failed,
}

#[derive(Default)]
struct Counters {
    l1_hits: AtomicU64,
    l2_hits: AtomicU64,
    misses: AtomicU64,
    sets: AtomicU64,
    deletes: AtomicU64,
    loads: AtomicU64,
    coalesced: AtomicU64,
    load_errors: AtomicU64,
    received: AtomicU64,
    subscription_losses: AtomicU64,
    tag_invalidations: AtomicU64,
    stale_loads: AtomicU64,
    subscription_pings: AtomicU64,
}

pub(crate) struct Inner {
    pub(crate) config: CacheConfig,
    l1: Option<L1Cache>,
    redis: Option<RedisTier>,
    flights: Mutex<HashMap<String, watch::Receiver<Flight>>>,
    /// Invalidation epochs, striped by key hash: a reader fills L1 only if the
    /// stripe of its key did not move while it read from Redis or loaded.
    epochs: [AtomicU64; STRIPES],
    counters: Counters,
    subscribed: watch::Sender<bool>,
    pub(crate) shutdown: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    closed: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: stop the background tasks even without
        // an explicit shutdown (they only hold weak references).
        self.shutdown.cancel();
    }
}

/// A two-tier cache: a bounded in-process LRU ([`L1Cache`]) over Redis
/// ([`RedisTier`]), kept coherent across instances by pub/sub.
///
/// - `get` looks in L1, then Redis (filling L1 for the rest of the entry's
///   Redis TTL, capped by `l1_ttl`); `set` writes both and tells the other
///   instances to drop the key from their L1; `get_or_load` runs the loader
///   once for any number of concurrent misses of one key.
/// - Redis failures never reach the caller: a miss, a skipped write, and a
///   circuit breaker that stops calls from waiting on a dead Redis. Without
///   a Redis URL, or while Redis is down, the cache runs on L1 (and loaders).
/// - Tags (`"allergies"`) and groups (a student id, through
///   [`TieredCache::group_tag`]) invalidate sets of keys.
///
/// Cloning is cheap (an `Arc`); clone it into every task rather than wrapping
/// it in a lock. `TieredCache` is `Send + Sync`. Call
/// [`TieredCache::shutdown`] to stop its background tasks (subscriber,
/// reconnection, warming).
#[derive(Clone)]
pub struct TieredCache {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for TieredCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TieredCache")
            .field("l1", &self.inner.l1)
            .field("redis", &self.inner.redis)
            .finish_non_exhaustive()
    }
}

/// Builds a [`TieredCache`].
#[must_use]
#[derive(Debug)]
pub struct TieredCacheBuilder {
    config: CacheConfig,
    connect_wait: Option<Duration>,
}

impl TieredCacheBuilder {
    /// How long `build` waits for the first Redis connection, and then for
    /// the subscription, before starting degraded (default: the connect
    /// timeout; so `build` takes at most twice this).
    pub fn connect_wait(mut self, wait: Duration) -> Self {
        self.connect_wait = Some(wait);
        self
    }

    /// Validates the configuration and starts the cache.
    ///
    /// Does not fail when Redis is unreachable: the cache starts on L1 only
    /// and connects in the background (every `reconnect_interval`).
    ///
    /// # Errors
    /// [`CacheError::Config`] if the configuration is invalid.
    pub async fn build(self) -> Result<TieredCache, CacheError> {
        let config = self.config;
        config.validate()?;
        let l1 = config
            .l1_enabled
            .then(|| L1Cache::new(config.l1_max_size, config.l1_ttl, config.l1_shards));
        let redis = match &config.redis_url {
            Some(_) => Some(RedisTier::new(&config)?),
            None => None,
        };
        let wait = self.connect_wait.unwrap_or(config.connect_timeout);
        let (subscribed, _) = watch::channel(false);
        let cache = TieredCache {
            inner: Arc::new(Inner {
                config,
                l1,
                redis,
                flights: Mutex::new(HashMap::new()),
                epochs: std::array::from_fn(|_| AtomicU64::new(0)),
                counters: Counters::default(),
                subscribed,
                shutdown: CancellationToken::new(),
                tasks: Mutex::new(Vec::new()),
                closed: AtomicBool::new(false),
            }),
        };
        if let Some(redis) = &cache.inner.redis {
            let first = tokio::time::timeout(wait, redis.ensure_connected()).await;
            if let Some(e) = match first {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some(CacheError::Timeout(wait)),
            } {
                tracing::warn!(
                    target: "vitals_cache",
                    error = %e,
                    "redis unreachable at start: running on L1 until it is back"
                );
            }
            let sub = tokio::spawn(subscriber(Arc::downgrade(&cache.inner), redis.clone()));
            let maint = tokio::spawn(maintenance(Arc::downgrade(&cache.inner), redis.clone()));
            cache.add_task(sub);
            cache.add_task(maint);
            if redis.is_connected() {
                let mut rx = cache.inner.subscribed.subscribe();
                let _ = tokio::time::timeout(wait, rx.wait_for(|s| *s)).await;
            }
        }
        Ok(cache)
    }
}

fn stripe(key: &str) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for b in key.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h as usize % STRIPES
}

impl TieredCache {
    /// A builder for a cache of that configuration.
    pub fn builder(config: CacheConfig) -> TieredCacheBuilder {
        TieredCacheBuilder {
            config,
            connect_wait: None,
        }
    }

    /// The tag that registers a key in `group` (e.g. a student id), for
    /// [`TieredCache::set`]'s tags; [`TieredCache::invalidate_group`] drops
    /// every key of the group.
    pub fn group_tag(group: &str) -> String {
        format!("group:{group}")
    }

    /// The configuration the cache runs with.
    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    /// The L1 tier, if enabled.
    pub fn l1(&self) -> Option<&L1Cache> {
        self.inner.l1.as_ref()
    }

    /// The Redis tier, if configured.
    pub fn redis(&self) -> Option<&RedisTier> {
        self.inner.redis.as_ref()
    }

    /// Whether the invalidation subscription is live (false without Redis).
    pub fn is_subscribed(&self) -> bool {
        *self.inner.subscribed.borrow()
    }

    /// Waits until the invalidation subscription is live, at most `timeout`;
    /// returns whether it is.
    pub async fn wait_subscribed(&self, timeout: Duration) -> bool {
        let mut rx = self.inner.subscribed.subscribe();
        let r = tokio::time::timeout(timeout, rx.wait_for(|s| *s)).await;
        matches!(r, Ok(Ok(_)))
    }

    /// Keeps a background task, awaited by [`TieredCache::shutdown`].
    pub(crate) fn add_task(&self, task: JoinHandle<()>) {
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(task);
    }

    fn epoch(&self, key: &str) -> u64 {
        self.inner.epochs[stripe(key)].load(Ordering::Acquire)
    }

    fn bump(&self, key: &str) {
        self.inner.epochs[stripe(key)].fetch_add(1, Ordering::AcqRel);
    }

    fn bump_all(&self) {
        for e in &self.inner.epochs {
            e.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// The local half of a delete: moves the epoch of `key`, then drops it
    /// from L1; returns whether L1 held it.
    fn forget_local(&self, key: &str) -> bool {
        self.bump(key);
        self.inner.l1.as_ref().is_some_and(|l1| l1.remove(key))
    }

    /// The local half of a tag invalidation: moves every epoch, then drops
    /// the entries of `tag` from L1; returns their keys.
    fn invalidate_tag_local(&self, tag: &str) -> Vec<String> {
        self.bump_all();
        self.inner
            .l1
            .as_ref()
            .map(|l1| l1.invalidate_tag(tag))
            .unwrap_or_default()
    }

    /// The serialised value of `key` from L1 or Redis, filling L1 from Redis.
    async fn get_bytes(&self, key: &str) -> Option<Arc<[u8]>> {
        if let Some(l1) = &self.inner.l1 {
            if let Some(b) = l1.get(key) {
                self.inner.counters.l1_hits.fetch_add(1, Ordering::Relaxed);
                return Some(b);
            }
        }
        if let Some(redis) = &self.inner.redis {
            let e0 = self.epoch(key);
            match redis.get_with_ttl(key).await {
                Ok(Some((bytes, ttl))) => {
                    self.inner.counters.l2_hits.fetch_add(1, Ordering::Relaxed);
                    if let Some(l1) = &self.inner.l1 {
                        let ttl = ttl.unwrap_or(self.inner.config.l1_ttl);
                        l1.insert_if(key, bytes.clone(), ttl, &[], || self.epoch(key) == e0);
                    }
                    return Some(bytes);
                }
                Ok(None) => {}
                Err(e) => log_redis_error("get", &e),
            }
        }
        self.inner.counters.misses.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// The value of `key`, from L1 or Redis; `None` on a miss. A value that
    /// does not deserialise as `T`, and any Redis error, count as a miss.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let bytes = self.get_bytes(key).await?;
        match serde_json::from_slice(&bytes) {
            Ok(v) => Some(v),
            Err(_) => {
                tracing::debug!(target: "vitals_cache", "cached value of another type: treated as a miss");
                None
            }
        }
    }

    /// Stores `value` under `key` in L1 and Redis for `ttl`, indexed under
    /// `tags` (data types like `"allergies"`, and [`TieredCache::group_tag`]s),
    /// and tells the other instances to drop their L1 copy.
    ///
    /// A Redis failure leaves the value in L1 only (logged, counted).
    ///
    /// # Errors
    /// [`CacheError::Serde`] if `value` does not serialise.
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
        tags: &[&str],
    ) -> Result<(), CacheError> {
        let bytes: Arc<[u8]> = serde_json::to_vec(value)?.into();
        self.store(key, bytes, ttl, tags).await;
        Ok(())
    }

    pub(crate) async fn store(&self, key: &str, bytes: Arc<[u8]>, ttl: Duration, tags: &[&str]) {
        self.inner.counters.sets.fetch_add(1, Ordering::Relaxed);
        if let Some(redis) = &self.inner.redis {
            if let Err(e) = redis.set_inner(key, &bytes, ttl, tags, true, None).await {
                log_redis_error("set", &e);
            }
        }
        // After the Redis write, so a reader that got the old value from
        // Redis before it either sees the moved epoch or is overwritten below.
        self.bump(key);
        if let Some(l1) = &self.inner.l1 {
            l1.insert(key, bytes, ttl, tags);
        }
    }

    /// Stores a loader's result: in Redis only if no overwrite, delete or
    /// invalidation of the key or its tags happened since `gens` were read
    /// (on any instance); in L1 only if Redis took it (or is unavailable) and
    /// no local invalidation moved the key's epoch from `e0` meanwhile (the
    /// Redis write is an await: a delete can land between it and L1).
    async fn store_loaded(
        &self,
        key: &str,
        bytes: Arc<[u8]>,
        ttl: Duration,
        tags: &[&str],
        gens: Option<Vec<String>>,
        e0: u64,
    ) {
        if let (Some(redis), Some(gens)) = (&self.inner.redis, &gens) {
            match redis
                .set_inner(key, &bytes, ttl, tags, true, Some(gens))
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    self.inner
                        .counters
                        .stale_loads
                        .fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(e) => log_redis_error("set", &e),
            }
        }
        self.inner.counters.sets.fetch_add(1, Ordering::Relaxed);
        if let Some(l1) = &self.inner.l1 {
            // Checked under the shard lock: an invalidation bumps the epoch before it
            // removes from L1, so either this sees the bump or the removal comes after.
            if !l1.insert_if(key, bytes, ttl, tags, || self.epoch(key) == e0) {
                self.inner
                    .counters
                    .stale_loads
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        // After the insert: a reader that got an older value from Redis before our
        // write sees the moved epoch and does not fill L1 with it.
        self.bump(key);
    }

    /// The value of `key`, or the loader's, stored for `ttl` under `tags`.
    ///
    /// Any number of concurrent misses of one key run one loader (the others
    /// wait and share its value). If that load fails or is cancelled, one of
    /// the waiters loads next. A value loaded while an invalidation of its key
    /// arrived is returned but not cached, since it may predate the change:
    /// locally through the invalidation epochs, and in Redis through
    /// generations of the key and its tags read before the load and checked
    /// atomically by the write (so an overwrite, delete or invalidation on
    /// another instance whose message has not arrived yet also counts).
    ///
    /// # Errors
    /// The loader's error (for the caller whose loader ran).
    pub async fn get_or_load<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Duration,
        tags: &[&str],
        loader: F,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if let Some(v) = self.get(key).await {
            return Ok(v);
        }
        let guard = loop {
            let role = {
                let mut flights = self
                    .inner
                    .flights
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match flights.get(key) {
                    Some(rx) => Err(rx.clone()),
                    None => {
                        let (tx, rx) = watch::channel(Flight::Pending);
                        flights.insert(key.to_owned(), rx.clone());
                        Ok(FlightGuard {
                            cache: self,
                            key,
                            tx,
                            rx,
                        })
                    }
                }
            };
            match role {
                Ok(guard) => break guard,
                Err(mut rx) => {
                    self.inner
                        .counters
                        .coalesced
                        .fetch_add(1, Ordering::Relaxed);
                    let outcome = rx
                        .wait_for(|f| !matches!(f, Flight::Pending))
                        .await
                        .map(|f| f.clone());
                    if let Ok(Flight::Done(bytes)) = outcome {
                        if let Ok(v) = serde_json::from_slice(&bytes) {
                            return Ok(v);
                        }
                    }
                }
            }
        };
        // A flight that ended just before we led may have filled L1.
        if let Some(b) = self.inner.l1.as_ref().and_then(|l1| l1.get(key)) {
            if let Ok(v) = serde_json::from_slice(&b) {
                guard.finish(Flight::Done(b));
                return Ok(v);
            }
        }
        let e0 = self.epoch(key);
        let gens = match &self.inner.redis {
            Some(r) => r.generations(key, tags).await.ok(),
            None => None,
        };
        self.inner.counters.loads.fetch_add(1, Ordering::Relaxed);
        match loader().await {
            Ok(v) => {
                match serde_json::to_vec(&v) {
                    Ok(bytes) => {
                        let bytes: Arc<[u8]> = bytes.into();
                        if self.epoch(key) == e0 {
                            self.store_loaded(key, bytes.clone(), ttl, tags, gens, e0)
                                .await;
                        } else {
                            self.inner
                                .counters
                                .stale_loads
                                .fetch_add(1, Ordering::Relaxed);
                        }
                        guard.finish(Flight::Done(bytes));
                    }
                    Err(e) => {
                        tracing::warn!(target: "vitals_cache", error = %e, "loaded value does not serialise: not cached");
                        guard.finish(Flight::Failed);
                    }
                }
                Ok(v)
            }
            Err(e) => {
                self.inner
                    .counters
                    .load_errors
                    .fetch_add(1, Ordering::Relaxed);
                guard.finish(Flight::Failed);
                Err(e)
            }
        }
    }

    /// Removes `key` from both tiers (and from the other instances' L1);
    /// returns whether Redis or L1 held it.
    pub async fn delete(&self, key: &str) -> bool {
        self.delete_many(&[key]).await > 0
    }

    /// Removes `keys` from both tiers (and from the other instances' L1);
    /// returns how many were held (Redis count, or L1 count without Redis).
    pub async fn delete_many(&self, keys: &[&str]) -> u64 {
        self.inner
            .counters
            .deletes
            .fetch_add(keys.len() as u64, Ordering::Relaxed);
        let mut local = 0;
        for k in keys {
            local += u64::from(self.forget_local(k));
        }
        match &self.inner.redis {
            Some(redis) => match redis.delete_inner(keys).await {
                Ok(n) => n.max(local),
                Err(e) => {
                    log_redis_error("delete", &e);
                    local
                }
            },
            None => local,
        }
    }

    /// Removes every entry set with `tag`, here, in Redis and in the other
    /// instances' L1; returns the number of keys removed.
    pub async fn invalidate_tag(&self, tag: &str) -> usize {
        self.inner
            .counters
            .tag_invalidations
            .fetch_add(1, Ordering::Relaxed);
        let mut removed: std::collections::HashSet<String> =
            self.invalidate_tag_local(tag).into_iter().collect();
        if let Some(redis) = &self.inner.redis {
            match redis.invalidate_tag_inner(tag).await {
                Ok(keys) => {
                    if let Some(l1) = &self.inner.l1 {
                        for k in &keys {
                            l1.remove(k);
                        }
                    }
                    removed.extend(keys);
                }
                Err(e) => log_redis_error("invalidate_tag", &e),
            }
        }
        removed.len()
    }

    /// Removes every entry of `group` (keys set with
    /// [`TieredCache::group_tag`]`(group)` among their tags).
    pub async fn invalidate_group(&self, group: &str) -> usize {
        self.invalidate_tag(&Self::group_tag(group)).await
    }

    /// Drops every L1 entry of this instance (Redis is untouched).
    pub fn clear_l1(&self) {
        self.bump_all();
        if let Some(l1) = &self.inner.l1 {
            l1.clear();
        }
    }

    /// A snapshot of the counters and state. Redis used memory is the last
    /// value refreshed in the background (every `stats_refresh`).
    pub fn stats(&self) -> CacheStats {
        let c = &self.inner.counters;
        let l1_hits = c.l1_hits.load(Ordering::Relaxed);
        let l2_hits = c.l2_hits.load(Ordering::Relaxed);
        let misses = c.misses.load(Ordering::Relaxed);
        let lookups = l1_hits + l2_hits + misses;
        let redis = self.inner.redis.as_ref();
        CacheStats {
            l1_hits,
            l2_hits,
            hits: l1_hits + l2_hits,
            misses,
            hit_rate: if lookups == 0 {
                0.0
            } else {
                (l1_hits + l2_hits) as f64 / lookups as f64
            },
            sets: c.sets.load(Ordering::Relaxed),
            deletes: c.deletes.load(Ordering::Relaxed),
            loads: c.loads.load(Ordering::Relaxed),
            coalesced: c.coalesced.load(Ordering::Relaxed),
            load_errors: c.load_errors.load(Ordering::Relaxed),
            tag_invalidations: c.tag_invalidations.load(Ordering::Relaxed),
            stale_loads: c.stale_loads.load(Ordering::Relaxed),
            l1_entries: self.inner.l1.as_ref().map_or(0, L1Cache::len),
            l1_bytes: self.inner.l1.as_ref().map_or(0, L1Cache::bytes),
            redis_configured: redis.is_some(),
            redis_connected: redis.is_some_and(RedisTier::is_connected),
            redis_used_memory: redis.and_then(RedisTier::used_memory),
            redis_errors: redis.map_or(0, RedisTier::errors),
            decode_errors: redis.map_or(0, RedisTier::decode_errors),
            breaker: redis.map(RedisTier::breaker_state),
            subscribed: self.is_subscribed(),
            subscription_losses: c.subscription_losses.load(Ordering::Relaxed),
            subscription_pings: c.subscription_pings.load(Ordering::Relaxed),
            invalidations_sent: redis.map_or(0, |r| r.inner.sent.load(Ordering::Relaxed)),
            invalidations_received: c.received.load(Ordering::Relaxed),
        }
    }

    /// Stops the background tasks (subscriber, reconnection, warming) and
    /// waits for them. The cache still works afterwards, without coherence.
    pub async fn shutdown(&self) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.inner.shutdown.cancel();
        let tasks: Vec<JoinHandle<()>> = std::mem::take(
            &mut *self
                .inner
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for t in tasks {
            let _ = t.await;
        }
        self.inner.subscribed.send_replace(false);
    }

    fn apply(&self, msg: Message) {
        self.inner.counters.received.fetch_add(1, Ordering::Relaxed);
        if msg.clear {
            self.clear_l1();
            return;
        }
        if let Some(tag) = &msg.t {
            self.invalidate_tag_local(tag);
        }
        for k in &msg.k {
            self.forget_local(k);
        }
    }
}

struct FlightGuard<'a> {
    cache: &'a TieredCache,
    key: &'a str,
    tx: watch::Sender<Flight>,
    rx: watch::Receiver<Flight>,
}

impl FlightGuard<'_> {
    fn finish(self, outcome: Flight) {
        self.tx.send_replace(outcome);
    }
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let mut flights = self
            .cache
            .inner
            .flights
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if flights
            .get(self.key)
            .is_some_and(|rx| rx.same_channel(&self.rx))
        {
            flights.remove(self.key);
        }
        // Dropping `tx` wakes waiters of an unfinished flight: they retry.
    }
}

fn log_redis_error(op: &'static str, e: &CacheError) {
    match e {
        CacheError::BreakerOpen | CacheError::NotConnected => {
            tracing::trace!(target: "vitals_cache", op, error = %e, "redis skipped");
        }
        _ => tracing::debug!(target: "vitals_cache", op, error = %e, "redis call failed"),
    }
}

/// Keeps the invalidation subscription: applies messages of other instances
/// to L1; on a lost subscription clears L1 (what was missed can't be known)
/// and resubscribes every `reconnect_interval`.
async fn subscriber(weak: std::sync::Weak<Inner>, redis: RedisTier) {
    let Some(inner) = weak.upgrade() else { return };
    let token = inner.shutdown.clone();
    let interval = inner.config.reconnect_interval;
    let connect_timeout = inner.config.connect_timeout;
    let ping_every = inner
        .config
        .subscription_ping
        .max(Duration::from_millis(10));
    drop(inner);
    let mut lost_before = false;
    loop {
        let attempt = async {
            let mut ps = redis.inner.client.get_async_pubsub().await?;
            ps.subscribe(redis.channel()).await?;
            Ok::<_, redis::RedisError>(ps)
        };
        let ps = tokio::select! {
            () = token.cancelled() => return,
            r = tokio::time::timeout(connect_timeout, attempt) => r,
        };
        if let Ok(Ok(ps)) = ps {
            let Some(inner) = weak.upgrade() else { return };
            let cache = TieredCache { inner };
            if lost_before {
                // Entries filled while unsubscribed may have missed updates.
                cache.clear_l1();
                tracing::info!(target: "vitals_cache", "invalidation subscription restored: L1 cleared");
            }
            cache.inner.subscribed.send_replace(true);
            let (mut sink, mut stream) = ps.split();
            let origin = redis.inner.origin.clone();
            drop(cache);
            let mut ping =
                tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
            loop {
                let msg = tokio::select! {
                    () = token.cancelled() => return,
                    _ = ping.tick() => {
                        let pong = tokio::time::timeout(
                            connect_timeout,
                            sink.ping::<redis::Value>(),
                        )
                        .await;
                        if !matches!(pong, Ok(Ok(_))) {
                            break;
                        }
                        let Some(inner) = weak.upgrade() else { return };
                        inner.counters.subscription_pings.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    m = stream.next() => m,
                };
                let Some(msg) = msg else { break };
                let Some(inner) = weak.upgrade() else { return };
                match serde_json::from_slice::<Message>(msg.get_payload_bytes()) {
                    Ok(m) if m.o == origin => {}
                    Ok(m) => TieredCache { inner }.apply(m),
                    Err(_) => {
                        tracing::debug!(target: "vitals_cache", "malformed invalidation message ignored");
                    }
                }
            }
            let Some(inner) = weak.upgrade() else { return };
            let cache = TieredCache { inner };
            cache.inner.subscribed.send_replace(false);
            cache
                .inner
                .counters
                .subscription_losses
                .fetch_add(1, Ordering::Relaxed);
            cache.clear_l1();
            tracing::warn!(target: "vitals_cache", "invalidation subscription lost: L1 cleared, resubscribing");
            lost_before = true;
        }
        tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// Connects Redis when it is not yet, and refreshes its used memory.
async fn maintenance(weak: std::sync::Weak<Inner>, redis: RedisTier) {
    let Some(inner) = weak.upgrade() else { return };
    let token = inner.shutdown.clone();
    let interval = inner.config.reconnect_interval;
    let refresh = inner.config.stats_refresh;
    drop(inner);
    let mut last_refresh: Option<tokio::time::Instant> = None;
    loop {
        if weak.strong_count() == 0 {
            return;
        }
        if !redis.is_connected() {
            if let Err(e) = redis.ensure_connected().await {
                tracing::debug!(target: "vitals_cache", error = %e, "redis still unreachable");
            }
        }
        let Some(inner) = weak.upgrade() else { return };
        let subscribed = *inner.subscribed.borrow();
        drop(inner);
        if redis.is_connected() && (!subscribed || redis.breaker_state() != BreakerState::Closed) {
            // Redis looks unwell: a probe lets the connection manager notice a
            // dead connection and reconnect before callers pay for it.
            let _ = redis.ping().await;
        }
        if redis.is_connected()
            && redis.breaker_state() == BreakerState::Closed
            && last_refresh.is_none_or(|t| t.elapsed() >= refresh)
        {
            last_refresh = Some(tokio::time::Instant::now());
            if let Err(e) = redis.refresh_used_memory().await {
                tracing::debug!(target: "vitals_cache", error = %e, "redis INFO memory failed");
            }
        }
        tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}
