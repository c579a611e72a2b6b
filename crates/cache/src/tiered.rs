//! The two-tier cache's public API: L1 in process over Redis. How concurrent misses
//! coalesce is `flight.rs`; the subscriber and maintenance tasks that keep it coherent are
//! `coherence.rs`; the state they share is `inner.rs`.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::task::JoinHandle;

#[cfg(feature = "redis")]
use crate::coherence;
use crate::config::CacheConfig;
use crate::epochs::Snapshot;
use crate::error::CacheError;
use crate::fail_safe::{Load, LoadOptions};
use crate::fetch::Fetch;
use crate::inner::{Inner, SharedTier};
use crate::l1::{Inserted, L1Cache, Lookup, Value};
use crate::metrics::{Answered, Get};
#[cfg(feature = "redis")]
use crate::redis_tier::RedisTier;
use crate::stats::CacheStats;
use crate::tier::{Generations, Placement, Tier, Written};

/// A two-tier cache: a bounded in-process LRU ([`L1Cache`]) over Redis
/// (`RedisTier`, feature `redis`), kept coherent across instances by pub/sub. Without the
/// feature it is L1 over the loader alone.
///
/// - `get` looks in L1, then Redis (filling L1 for the rest of the entry's
///   Redis TTL, capped by `l1_ttl`); `set` writes both and tells the other
///   instances to drop the key from their L1; `get_or_load` runs the loader
///   once for any number of concurrent misses of one key.
/// - L1 holds decoded values: `get` and `get_or_load` return an `Arc<T>` (the
///   main path: an L1 hit clones the `Arc`, nothing is decoded or copied). Bytes
///   (JSON, then compressed and encrypted) exist only on the way to and from
///   Redis. A key read as another type than it was stored as is a miss, counted
///   in [`CacheStats::type_mismatches`].
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
    #[cfg_attr(not(feature = "redis"), allow(dead_code))] // read when there is Redis to wait for
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
        let l1 = config.l1_enabled.then(|| {
            L1Cache::with_max_bytes(
                config.l1_max_size,
                config.l1_max_bytes,
                config.l1_ttl,
                config.l1_shards,
            )
        });
        let redis = match config.uses_redis() {
            true => Some(SharedTier::open(&config).await?),
            false => None,
        };
        warn_if_plaintext(&config);
        let cache = TieredCache {
            inner: Arc::new(Inner::new(config, l1, redis)),
        };
        #[cfg(feature = "redis")]
        if let Some(redis) = &cache.inner.redis {
            let wait = self
                .connect_wait
                .unwrap_or(cache.inner.config.connect_timeout);
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
            for task in coherence::spawn(&cache.inner, redis) {
                cache.add_task(task);
            }
            if redis.is_connected() {
                let mut rx = cache.inner.subscribed.subscribe();
                let _ = tokio::time::timeout(wait, rx.wait_for(|s| *s)).await;
            }
        }
        Ok(cache)
    }
}

impl TieredCache {
    /// A builder for a cache of that configuration.
    pub fn builder(config: CacheConfig) -> TieredCacheBuilder {
        TieredCacheBuilder {
            config,
            connect_wait: None,
        }
    }

    /// What every [`group_tag`](Self::group_tag) starts with: `group_tag(g)` is this
    /// followed by `g`, for a caller that writes a tag into a buffer of its own.
    pub const GROUP_TAG_PREFIX: &'static str = "group:";

    /// The tag that registers a key in `group` (e.g. a student id), for
    /// [`TieredCache::set`]'s tags; [`TieredCache::invalidate_group`] drops
    /// every key of the group.
    pub fn group_tag(group: &str) -> String {
        let mut tag = String::with_capacity(Self::GROUP_TAG_PREFIX.len() + group.len());
        tag.push_str(Self::GROUP_TAG_PREFIX);
        tag.push_str(group);
        tag
    }

    /// The configuration the cache runs with.
    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    /// The L1 tier, if enabled.
    pub fn l1(&self) -> Option<&L1Cache> {
        self.inner.l1.as_ref()
    }

    /// The Redis tier, if configured (feature `redis`).
    #[cfg(feature = "redis")]
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
        crate::poison::lock(&self.inner.tasks).push(task);
    }

    /// The value of `key` as a `T` from L1, or from Redis (decoded, then held in L1): the
    /// future of `fetch.rs`, which makes the Redis read ([`fetch_shared`](Self::fetch_shared),
    /// a boxed future of its own) only when L1 did not answer.
    pub(crate) fn fetch<'a, T>(&'a self, key: &'a str) -> Fetch<'a, T>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        Fetch::new(self, key)
    }

    /// [`fetch`](Self::fetch)'s L1 lookup: its answer (a hit; `None` for a value of another
    /// type, or a miss with no Redis to ask), or the get to go on with in Redis, boxed: the
    /// result of a hit is then two words, returned in registers, where a `Get` in it made
    /// every hit write and copy its span and clock (a store-forwarding stall in a profile).
    pub(crate) fn fetch_l1<T>(&self, key: &str) -> Result<Option<Arc<T>>, Box<Get>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let c = &self.inner.counters;
        let mut get = Get::start();
        if let Some(l1) = &self.inner.l1 {
            match l1.lookup::<T>(key) {
                Lookup::Hit(v) => {
                    c.l1_hits.add(1);
                    get.done(Answered::L1, &self.inner.figures);
                    return Ok(Some(v));
                }
                Lookup::Mismatch => {
                    get.past_l1();
                    c.type_mismatches.fetch_add(1, Ordering::Relaxed);
                    self.missed(get);
                    return Ok(None);
                }
                Lookup::Miss => {}
            }
        }
        get.past_l1();
        if self.inner.redis.is_some() {
            return Err(Box::new(get));
        }
        self.missed(get);
        Ok(None)
    }

    /// Ends `get` as a miss: counted in the statistics and the get figures.
    fn missed(&self, get: Get) {
        self.inner.counters.misses.fetch_add(1, Ordering::Relaxed);
        get.done(Answered::Miss, &self.inner.figures);
    }

    /// [`fetch`](Self::fetch)'s read from Redis, which ends `get`: the value decoded as a
    /// `T` (an L2 hit, counted and timed before it is held in L1 for the rest of its Redis
    /// TTL, capped by `CACHE_L1_TTL`; that TTL is read, in the same round trip, only when
    /// there is an L1), or `None` (a miss) when Redis has none, fails, or
    /// holds a payload that does not decode as `T` (counted in `type_mismatches`).
    ///
    /// With `get` `None` nothing is counted or timed: a read of the load path (another
    /// instance's value arriving, `load_lock.rs`) whose lookup was counted already.
    pub(crate) async fn fetch_shared<T>(&self, key: &str, get: Option<Get>) -> Option<Arc<T>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let c = &self.inner.counters;
        if let Some(redis) = &self.inner.redis {
            // The key's epoch only: the tags of a value read from Redis are not known
            // here, and a tag invalidation that removes it names the key.
            let e0 = self.inner.watch(key, &[]);
            // The rest of its TTL only bounds the L1 copy: without L1, a plain GET.
            let read = match &self.inner.l1 {
                Some(_) => redis.get_with_ttl(key).await,
                None => redis.get(key).await.map(|v| v.map(|bytes| (bytes, None))),
            };
            match read {
                Ok(Some((bytes, ttl))) => match serde_json::from_slice::<T>(&bytes) {
                    Ok(v) => {
                        if let Some(get) = get {
                            c.l2_hits.fetch_add(1, Ordering::Relaxed);
                            get.done(Answered::L2, &self.inner.figures);
                        }
                        let v = Arc::new(v);
                        if let Some(l1) = &self.inner.l1 {
                            let ttl = ttl.unwrap_or(self.inner.config.l1_ttl);
                            l1.fill_if(key, v.clone(), bytes.len(), ttl, || e0.unchanged());
                        }
                        return Some(v);
                    }
                    Err(_) => {
                        if get.is_some() {
                            c.type_mismatches.fetch_add(1, Ordering::Relaxed);
                        }
                        tracing::debug!(
                            target: "vitals_cache",
                            "value in redis does not decode as the type asked for (another \
                             type, or an older format): a miss"
                        );
                    }
                },
                Ok(None) => {}
                Err(e) => log_redis_error("get", &e),
            }
        }
        if let Some(get) = get {
            self.missed(get);
        }
        None
    }

    /// The value of `key`, from L1 or Redis; `None` on a miss. The main read path: the
    /// value is shared (`Arc<T>`), decoded once when it came from Redis and never on an L1
    /// hit. A value stored as another type (in L1), one whose JSON does not deserialise as
    /// `T` (in Redis: another type, or an older format after a deploy), and any Redis error
    /// count as a miss; the first two in `type_mismatches`.
    ///
    /// ```no_run
    /// # async fn example(cache: vitals_cache::TieredCache) {
    /// let allergies: Option<std::sync::Arc<Vec<String>>> =
    ///     cache.get("student:4f1c:allergies").await;
    /// # }
    /// ```
    pub fn get<'a, T>(&'a self, key: &'a str) -> impl Future<Output = Option<Arc<T>>> + Send + 'a
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        self.fetch(key)
    }

    /// [`TieredCache::get`], the value cloned out of its `Arc` (a clone of `T` per call:
    /// for small values and tests; `get` is the path to use on a hot read).
    pub async fn get_cloned<T>(&self, key: &str) -> Option<T>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.fetch::<T>(key).await.map(|v| T::clone(&v))
    }

    /// Stores `value` under `key` in L1 and Redis for `ttl`, indexed under
    /// `tags` (data types like `"allergies"`, and [`TieredCache::group_tag`]s),
    /// and tells the other instances to drop their L1 copy.
    ///
    /// L1 keeps `value` itself (read back as a `T`: a `get::<String>` of a value set as a
    /// `&str` is a type mismatch); Redis gets its JSON. A Redis failure leaves the value in
    /// L1 only (logged, counted).
    ///
    /// # Errors
    /// [`CacheError::Serde`] if `value` does not serialise.
    pub async fn set<T>(
        &self,
        key: &str,
        value: T,
        ttl: Duration,
        tags: &[&str],
    ) -> Result<(), CacheError>
    where
        T: Serialize + Send + Sync + 'static,
    {
        let bytes: Arc<[u8]> = serde_json::to_vec(&value)?.into();
        let at = Placement::new(key, ttl, tags);
        self.store(at, Arc::new(value), bytes).await;
        Ok(())
    }

    /// Stores a value and its JSON (`bytes`, also its weight in L1).
    pub(crate) async fn store(&self, at: Placement<'_>, value: Value, bytes: Arc<[u8]>) {
        let Placement { key, ttl, tags } = at;
        self.inner.counters.sets.fetch_add(1, Ordering::Relaxed);
        let weight = bytes.len();
        let e0 = self.inner.watch(key, tags);
        if let Some(redis) = &self.inner.redis {
            if let Err(e) = redis.set(at, bytes).await {
                log_redis_error("set", &e);
            }
        }
        // After the Redis write, so a reader that got the old value from
        // Redis before it either sees the moved epoch or is overwritten below.
        self.inner.changed(key);
        if let Some(l1) = &self.inner.l1 {
            // Only if nothing else changed the key or its tags since the write began: a
            // concurrent store of the key here (whose Redis write may have landed after
            // ours), a delete, an invalidation. Else the key leaves L1, so L1 never keeps a
            // value Redis was given before another, and the next read takes Redis's.
            let held = l1.insert_if(key, value, weight, ttl, tags, || e0.moved_once());
            if held == Inserted::ConditionFailed {
                l1.remove(key);
            }
        }
    }

    /// Stores a loader's result (`value` and its JSON, `bytes`) under `load.at.key`: in Redis
    /// only if no overwrite, delete or invalidation of the key or its tags happened since
    /// `gens` were read (on any instance); in L1 only if Redis took it (or is unavailable)
    /// and no local invalidation moved the epoch of the key or of its tags since `e0`
    /// meanwhile (the Redis write is an await: a delete can land between it and L1).
    pub(crate) async fn store_loaded(
        &self,
        load: &Load<'_>,
        value: Value,
        bytes: Arc<[u8]>,
        gens: Option<Generations>,
        e0: &Snapshot<'_>,
    ) {
        let Placement { key, ttl, tags } = load.at;
        let weight = bytes.len();
        if let (Some(redis), Some(gens)) = (&self.inner.redis, &gens) {
            // Misplaced (kept out of the cluster by its layout): not stale, L1 takes it.
            match redis.set_loaded(load.at, &bytes, gens).await {
                Ok(Written::Stored | Written::Misplaced) => {}
                Ok(Written::Stale) => {
                    let c = &self.inner.counters;
                    c.stale_loads.fetch_add(1, Ordering::Relaxed);
                    c.redis_stale_loads.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(e) => log_redis_error("set", &e),
            }
        }
        self.inner.counters.sets.fetch_add(1, Ordering::Relaxed);
        // After the Redis write and before the insert, as `store` does: a reader that got an
        // older value from Redis before our write sees the moved epoch when it comes to fill
        // L1, whether that is before or after our insert, and does not fill L1 with it (moved
        // after the insert, a fill between the two would overwrite our value).
        self.inner.bump(key);
        if let Some(l1) = &self.inner.l1 {
            // Checked under the shard lock: our own bump and nothing else (an invalidation
            // bumps the epoch before it removes from L1, so either this sees the bump or the
            // removal comes after). A refusal (admission, size) is counted in
            // `l1_rejected`, not as stale. On a refusal the key leaves L1, as in `store`: two
            // overlapping stores of the key both see the other's bump and both refuse, and
            // the entry they meant to replace may be older than what Redis holds now.
            let inserted = l1.insert_if(key, value, weight, ttl, tags, || e0.moved_once());
            if inserted == Inserted::ConditionFailed {
                l1.remove(key);
                self.inner
                    .counters
                    .stale_loads
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The value of `key`, or the loader's, stored for `ttl` under `tags`: shared, as
    /// [`TieredCache::get`] returns it (a value found under `key` as another type is a miss,
    /// loaded and stored again as a `T`; so is one in Redis that no longer decodes).
    ///
    /// Any number of concurrent misses of one key run one loader (the others
    /// wait and share its value, the same `Arc`). If that load fails or is cancelled, one of
    /// the waiters loads next; so does one that waited on a `get_or_load_with` whose loader
    /// found nothing. This is [`TieredCache::get_or_load_with`]'s load with
    /// [`LoadOptions::OFF`] (`load.rs`). A value loaded while an invalidation of its key
    /// arrived is returned but not cached, since it may predate the change:
    /// locally through the invalidation epochs of the key and of `tags` (an
    /// invalidation of another tag or group leaves it cacheable), and in Redis through
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
    ) -> Result<Arc<T>, E>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if let Some(v) = self.fetch::<T>(key).await {
            return Ok(v);
        }
        // `get_or_load_with`'s load with its options off (`load.rs`).
        let load = Load::new(key, ttl, tags, &LoadOptions::OFF);
        self.load_miss::<T, Arc<T>, E, F>(load, loader).await
    }

    /// Removes `key` from both tiers (and from the other instances' L1);
    /// returns whether Redis or L1 held it.
    pub async fn delete(&self, key: &str) -> bool {
        self.delete_many(&[key]).await > 0
    }

    /// Removes `keys` from both tiers (and from the other instances' L1);
    /// returns how many were held: the larger of Redis's count and this instance's L1
    /// count (L1's alone without Redis, or when Redis's DEL failed).
    pub async fn delete_many(&self, keys: &[&str]) -> u64 {
        self.inner
            .counters
            .deletes
            .fetch_add(keys.len() as u64, Ordering::Relaxed);
        self.remove_many(keys, false).await
    }

    /// [`delete_many`](Self::delete_many) without counting `deletes`, for the cache's own
    /// removals: `leader` is the leader of the flight of each key, whose load found it gone
    /// (its flight is kept: its followers get that answer, and a miss meanwhile waits for it
    /// rather than load a deleted record again).
    pub(crate) async fn remove_many(&self, keys: &[&str], leader: bool) -> u64 {
        let forget = |k: &str| match leader {
            true => self.inner.forget_local_in_flight(k),
            false => self.inner.forget_local(k),
        };
        let mut local = 0;
        for k in keys {
            local += u64::from(forget(k));
        }
        let Some(redis) = &self.inner.redis else {
            return local;
        };
        let deleted = redis.delete_many(keys).await;
        // Again after Redis: a read of this instance that fetched a key before the DEL (and
        // watched after the first forget) may have filled L1 with it, and this instance
        // ignores its own message, so nothing else would drop it. So too when the DEL failed:
        // one that timed out may still run (and the repair queue retries it).
        for k in keys {
            forget(k);
        }
        match deleted {
            Ok(n) => n.max(local),
            Err(e) => {
                log_redis_error("delete", &e);
                local
            }
        }
    }

    /// Removes every entry set with `tag`, here, in Redis and in the other
    /// instances' L1; returns the number of keys removed.
    pub async fn invalidate_tag(&self, tag: &str) -> usize {
        self.inner
            .counters
            .tag_invalidations
            .fetch_add(1, Ordering::Relaxed);
        let mut removed: HashSet<String> =
            self.inner.invalidate_tag_local(tag).into_iter().collect();
        if let Some(redis) = &self.inner.redis {
            match redis.invalidate_tag(tag).await {
                Ok(keys) => {
                    // Forgotten, not just removed: moving each key's epoch keeps a read
                    // of its old value from Redis, in flight here, out of L1.
                    for k in &keys {
                        self.inner.forget_local(k);
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
        self.inner.clear_l1();
    }

    /// A snapshot of the counters and state. Redis used memory is the last
    /// value refreshed in the background (every `stats_refresh`).
    pub fn stats(&self) -> CacheStats {
        let c = &self.inner.counters;
        let l1_hits = c.l1_hits.get();
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
            load_locks: c.load_locks.load(Ordering::Relaxed),
            load_lock_waits: c.load_lock_waits.load(Ordering::Relaxed),
            coalesced_remote: c.coalesced_remote.load(Ordering::Relaxed),
            load_lock_timeouts: c.load_lock_timeouts.load(Ordering::Relaxed),
            load_errors: c.load_errors.load(Ordering::Relaxed),
            tag_invalidations: c.tag_invalidations.load(Ordering::Relaxed),
            stale_loads: c.stale_loads.load(Ordering::Relaxed),
            redis_stale_loads: c.redis_stale_loads.load(Ordering::Relaxed),
            type_mismatches: c.type_mismatches.load(Ordering::Relaxed),
            stale_served: c.stale_served.load(Ordering::Relaxed),
            not_found: c.not_found.load(Ordering::Relaxed),
            eager_refreshes: c.eager_refreshes.load(Ordering::Relaxed),
            l1_entries: self.inner.l1.as_ref().map_or(0, L1Cache::len),
            l1_bytes: self.inner.l1.as_ref().map_or(0, L1Cache::bytes),
            l1_rejected: self.inner.l1.as_ref().map_or(0, L1Cache::rejected),
            l1_evictions: self.inner.l1.as_ref().map_or(0, L1Cache::evictions),
            l1_expired: self.inner.l1.as_ref().map_or(0, L1Cache::expired),
            redis_configured: redis.is_some(),
            redis_connected: redis.is_some_and(SharedTier::is_connected),
            redis_used_memory: redis.and_then(SharedTier::used_memory),
            redis_errors: redis.map_or(0, SharedTier::errors),
            redis_plaintext_refused: redis.is_some_and(SharedTier::refuses_plaintext),
            redis_refused_writes: redis.map_or(0, SharedTier::refused_writes),
            decode_errors: redis.map_or(0, SharedTier::decode_errors),
            breaker: redis.map(SharedTier::breaker_state),
            subscribed: self.is_subscribed(),
            subscription_losses: c.subscription_losses.load(Ordering::Relaxed),
            subscription_pings: c.subscription_pings.load(Ordering::Relaxed),
            invalidations_sent: redis.map_or(0, SharedTier::invalidations_sent),
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
        let tasks: Vec<JoinHandle<()>> =
            std::mem::take(&mut *crate::poison::lock(&self.inner.tasks));
        for t in tasks {
            let _ = t.await;
        }
        self.inner.subscribed.send_replace(false);
    }
}

/// Says at start what becomes of values in Redis without an encryption key: kept out
/// (the default), or written in the clear because the operator allowed it.
fn warn_if_plaintext(config: &CacheConfig) {
    if !config.uses_redis() || config.encryption.is_some() {
        return;
    }
    if config.allow_plaintext {
        tracing::warn!(
            target: "vitals_cache",
            "CACHE_ALLOW_PLAINTEXT=true and no CACHE_ENCRYPTION_KEY: cached values are written \
             to Redis in the clear"
        );
    } else {
        tracing::warn!(
            target: "vitals_cache",
            "no CACHE_ENCRYPTION_KEY: cached values are kept in L1 only, never written to Redis \
             in the clear (invalidations still reach every instance); set CACHE_ENCRYPTION_KEY \
             (base64 of 32 bytes) to share them through Redis, or CACHE_ALLOW_PLAINTEXT=true to \
             write them unencrypted"
        );
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

#[cfg(test)]
impl TieredCache {
    /// An L1-only cache of the default configuration (no Redis), for the unit tests.
    pub(crate) async fn l1_only() -> Self {
        Self::builder(CacheConfig::default())
            .build()
            .await
            .expect("an L1-only cache of the defaults builds")
    }
}
