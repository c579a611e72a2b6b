//! The cache's configuration as data: its fields, defaults, setters and validation. Reading
//! it from the environment is `env.rs`'s part.

use std::time::Duration;

use vitals_env::{mask_bad_url, mask_url, ConfigError, Problems};

use crate::cluster_config::{self, ClusterOptions};
use crate::keyring::Keyring;

/// The longest key prefix: it starts every Redis key and the channel's name.
const MAX_KEY_PREFIX: usize = 64;
/// The largest `CACHE_L1_MAX_SIZE` accepted: a larger one is a typo more likely than a plan
/// (the admission sketch is bounded anyway, see `admission.rs`).
pub(crate) const MAX_L1_SIZE: usize = 10_000_000;

/// Configuration of a [`TieredCache`](crate::TieredCache).
///
/// Start from [`CacheConfig::default`] (L1 only, no Redis) or
/// [`CacheConfig::from_env`], then adjust fields or use the `with_` setters.
/// `Debug` masks the Redis password and never shows encryption keys.
#[derive(Clone)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Redis URL (`redis://`, or `rediss://` for TLS); `None` runs the cache
    /// on L1 only. Without the `redis` feature, a URL is a configuration error.
    pub redis_url: Option<String>,
    /// The Redis Cluster to run on instead of `redis_url` (`REDIS_CLUSTER_NODES`); no nodes
    /// by default. Without the `redis` feature, nodes are a configuration error.
    pub redis_cluster: ClusterOptions,
    /// PEM file of the certificate authority a `rediss://` server's
    /// certificate is checked against (`REDIS_TLS_CA_FILE`); `None` uses the
    /// system's trust store.
    pub redis_tls_ca: Option<std::path::PathBuf>,
    /// Namespace of every Redis key and of the invalidation channel.
    pub key_prefix: String,
    /// TTL used by callers that have no better one (`REDIS_TTL_DEFAULT`).
    pub default_ttl: Duration,
    /// Whether the in-process L1 is used.
    pub l1_enabled: bool,
    /// Maximum number of entries in L1 (`CACHE_L1_MAX_SIZE`, 1 to 10 000 000).
    pub l1_max_size: usize,
    /// Maximum bytes in L1 (`CACHE_L1_MAX_BYTES`): keys plus each value's encoded size,
    /// split evenly over the shards; a value larger than a shard's part is not kept in L1.
    pub l1_max_bytes: usize,
    /// Upper bound of an entry's life in L1 (the entry's own TTL may be shorter).
    pub l1_ttl: Duration,
    /// Number of L1 shards (a power of two); more shards, less lock contention.
    pub l1_shards: usize,
    /// Payloads longer than this (bytes) are lz4-compressed before Redis.
    pub compress_threshold: usize,
    /// Encryption of everything written to Redis; `None` writes no value to Redis
    /// (L1 only, coherence kept) unless `allow_plaintext`.
    pub encryption: Option<Keyring>,
    /// Whether, without `encryption`, values are written to Redis in the clear
    /// (`CACHE_ALLOW_PLAINTEXT`, default `false`: values may be PHI, so an operator
    /// must say so).
    pub allow_plaintext: bool,
    /// Time allowed for one Redis command before it counts as a failure.
    pub redis_timeout: Duration,
    /// Time allowed to establish a Redis connection.
    pub connect_timeout: Duration,
    /// Pause between reconnection attempts (connection and subscription).
    pub reconnect_interval: Duration,
    /// Consecutive Redis failures that open the circuit breaker.
    pub breaker_threshold: u32,
    /// How long an open breaker skips Redis before one probe call.
    pub breaker_cooldown: Duration,
    /// How often Redis used memory (INFO memory) is refreshed for stats.
    pub stats_refresh: Duration,
    /// How often the invalidation subscription is PINGed, so a silently dead
    /// connection (no FIN) is noticed and L1 cleared.
    pub subscription_ping: Duration,
    /// Whether concurrent misses of one key on several instances make one load in all
    /// (`CACHE_LOAD_LOCK`, default `true`): the first takes a short Redis lock, the others
    /// wait for its value (docs/cache.md, "One load across instances").
    pub load_lock: bool,
    /// Life of that lock (`CACHE_LOAD_LOCK_TTL_MS`): how long a crashed holder keeps the
    /// others waiting; a load that takes longer may run again elsewhere.
    pub load_lock_ttl: Duration,
    /// Longest wait for another instance's load (`CACHE_LOAD_LOCK_WAIT_MS`) before loading
    /// here.
    pub load_lock_wait: Duration,
    /// Whether scheduled cache warming runs (default `false`: a host turns it on with
    /// `CACHE_WARMING_ENABLED=true`, as the seed's production `.env` does).
    pub warming_enabled: bool,
    /// Delay before the first scheduled warming.
    pub warming_delay: Duration,
    /// Interval between scheduled warmings.
    pub warming_interval: Duration,
    /// Keys per warming batch.
    pub warming_batch_size: usize,
    /// Concurrent loads within a warming batch.
    pub warming_concurrency: usize,
    /// How long past its TTL [`TieredCache::get_or_load_with`](crate::TieredCache::get_or_load_with)
    /// may serve a value whose reload failed, flagged stale (`CACHE_FAIL_SAFE_MAX`, s; zero,
    /// the default, turns fail-safe off). The default of [`LoadOptions`](crate::LoadOptions).
    pub fail_safe_max: Duration,
    /// The fraction of its TTL after which a hit of
    /// [`TieredCache::get_or_load_with`](crate::TieredCache::get_or_load_with) reloads the
    /// value in the background (`CACHE_EAGER_REFRESH`, e.g. `0.9`; between 0 and 1
    /// exclusive; `None`, the default, turns eager refresh off).
    pub eager_refresh: Option<f64>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            redis_url: None,
            redis_cluster: ClusterOptions::default(),
            redis_tls_ca: None,
            key_prefix: "vitals".into(),
            default_ttl: Duration::from_secs(300),
            l1_enabled: true,
            l1_max_size: 1000,
            l1_max_bytes: 64 * 1024 * 1024,
            l1_ttl: Duration::from_secs(60),
            l1_shards: 16,
            compress_threshold: 1024,
            encryption: None,
            allow_plaintext: false,
            redis_timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(1),
            reconnect_interval: Duration::from_secs(1),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(5),
            stats_refresh: Duration::from_secs(10),
            subscription_ping: Duration::from_secs(10),
            load_lock: true,
            load_lock_ttl: Duration::from_millis(1000),
            load_lock_wait: Duration::from_millis(1500),
            warming_enabled: false,
            warming_delay: Duration::from_secs(5),
            warming_interval: Duration::from_secs(3600),
            warming_batch_size: 50,
            warming_concurrency: 8,
            fail_safe_max: Duration::ZERO,
            eager_refresh: None,
        }
    }
}

vitals_env::debug_fields!(CacheConfig as c {
    redis_url: c.redis_url.as_deref().map(mask_url),
    key_prefix,
    default_ttl,
    l1_enabled,
    l1_max_size,
    l1_max_bytes,
    l1_ttl,
    l1_shards,
    compress_threshold,
    encryption_key_id: c.encryption.as_ref().map(|k| k.current().id().to_owned()),
    allow_plaintext,
    redis_timeout,
    connect_timeout,
    breaker_threshold,
    breaker_cooldown,
    warming_enabled,
    fail_safe_max,
    eager_refresh,
    ..
});

impl CacheConfig {
    /// Sets the Redis URL (`None`: L1 only).
    #[must_use]
    pub fn with_redis_url(mut self, url: Option<impl Into<String>>) -> Self {
        self.redis_url = url.map(Into::into);
        self
    }

    /// Checks a `rediss://` server's certificate against this PEM file (a
    /// private CA) instead of the system's trust store.
    #[must_use]
    pub fn with_tls_ca(mut self, pem_file: Option<impl Into<std::path::PathBuf>>) -> Self {
        self.redis_tls_ca = pem_file.map(Into::into);
        self
    }

    /// Sets the namespace of Redis keys and of the invalidation channel: 1 to 64
    /// characters without spaces (checked when the cache is built).
    #[must_use]
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    vitals_env::setter!(
        /// Sets the encryption keyring (`None`: no value in Redis, unless
        /// [`CacheConfig::with_allow_plaintext`]).
        #[must_use]
        with_encryption => encryption: Option<Keyring>;
        /// Lets values be written to Redis in the clear when no keyring is set
        /// (`CACHE_ALLOW_PLAINTEXT=true`). Without it and without a keyring, Redis
        /// carries only invalidations and generations: values stay in L1.
        #[must_use]
        with_allow_plaintext => allow_plaintext: bool
    );

    /// Whether values are kept out of Redis because they would be written in the
    /// clear: Redis configured, no keyring, plaintext not allowed.
    #[must_use]
    pub fn refuses_plaintext(&self) -> bool {
        self.uses_redis() && self.encryption.is_none() && !self.allow_plaintext
    }

    vitals_env::setter!(
        /// Sets the Redis command timeout, the connect timeout and the pause
        /// between reconnection attempts.
        #[must_use]
        with_redis_timeouts(
            command: Duration => redis_timeout,
            connect: Duration => connect_timeout,
            reconnect_interval: Duration => reconnect_interval,
        );
        /// Sets the circuit breaker: failures that open it, and its cool-down.
        #[must_use]
        with_breaker(
            threshold: u32 => breaker_threshold,
            cooldown: Duration => breaker_cooldown,
        );
        /// Sets the lock of one load across instances: on or off, its life, and the longest
        /// wait for another instance's load.
        #[must_use]
        with_load_lock(
            enabled: bool => load_lock,
            ttl: Duration => load_lock_ttl,
            wait: Duration => load_lock_wait,
        );
        /// Sets L1: enabled, maximum entries and maximum entry life.
        #[must_use]
        with_l1(
            enabled: bool => l1_enabled,
            max_size: usize => l1_max_size,
            ttl: Duration => l1_ttl,
        );
        /// Sets fail-safe's longest serve past a TTL (zero: off) and eager refresh's fraction
        /// of the TTL (`None`: off), the defaults of [`LoadOptions`](crate::LoadOptions).
        #[must_use]
        with_fail_safe(
            max: Duration => fail_safe_max,
            eager_refresh: Option<f64> => eager_refresh,
        );
        /// Sets L1's bound in bytes (keys plus encoded values).
        #[must_use]
        with_l1_max_bytes(max_bytes: usize => l1_max_bytes)
    );

    /// Checks what the setters cannot: every bad field at once, each named by the variable
    /// it is read from (component `cache`), so [`CacheConfig::from_env_with`] reports these
    /// problems as its own and a field set in code gets the same rules.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Problems::new("cache");
        let prefix = &self.key_prefix;
        if prefix.is_empty()
            || prefix.len() > MAX_KEY_PREFIX
            || prefix.chars().any(char::is_whitespace)
        {
            problems.bad(
                "CACHE_KEY_PREFIX",
                prefix,
                "1 to 64 characters without spaces",
            );
        }
        let (size, shards) = (self.l1_max_size, self.l1_shards);
        if size == 0 || size > MAX_L1_SIZE {
            problems.bad("CACHE_L1_MAX_SIZE", size, "1 to 10000000 entries");
        }
        if self.l1_max_bytes == 0 {
            problems.bad("CACHE_L1_MAX_BYTES", 0, "at least 1");
        }
        if !shards.is_power_of_two() || shards > 1024 {
            problems.bad("CACHE_L1_SHARDS", shards, "a power of two up to 1024");
        }
        if self.breaker_threshold == 0 {
            problems.bad("CACHE_BREAKER_THRESHOLD", 0, "at least 1");
        }
        if self.redis_timeout.is_zero() {
            problems.bad("CACHE_REDIS_TIMEOUT_MS", 0, "more than 0");
        }
        let (batch, concurrency) = (self.warming_batch_size, self.warming_concurrency);
        if batch == 0 || concurrency == 0 {
            problems.bad(
                "CACHE_WARMING_BATCH_SIZE/CACHE_WARMING_CONCURRENCY",
                format_args!("{batch}/{concurrency}"),
                "at least 1 each",
            );
        }
        if let Some(url) = &self.redis_url {
            #[cfg(feature = "redis")]
            if let Err(e) = redis::Client::open(url.as_str()) {
                problems.bad("REDIS_URL", mask_bad_url(url), format!("a redis URL ({e})"));
            }
            #[cfg(not(feature = "redis"))]
            problems.bad(
                "REDIS_URL",
                mask_bad_url(url),
                crate::error::NO_REDIS_FEATURE,
            );
        }
        if let Some(f) = self.eager_refresh {
            if !(f > 0.0 && f < 1.0) {
                problems.bad("CACHE_EAGER_REFRESH", f, crate::fraction::EAGER_EXPECTED);
            }
        }
        let single_node = self.redis_url.is_some();
        cluster_config::validate(&self.redis_cluster, single_node, prefix, &mut problems);
        problems.finish(())
    }
}

impl CacheConfig {
    /// Runs the shared tier on the Redis Cluster of these seed nodes (checked when the
    /// cache is built); an empty list keeps the single node of `redis_url`.
    #[must_use]
    pub fn with_cluster_nodes<S: Into<String>>(
        mut self,
        nodes: impl IntoIterator<Item = S>,
    ) -> Self {
        self.redis_cluster.nodes = nodes.into_iter().map(Into::into).collect();
        self
    }

    /// Whether a shared tier is configured: a Redis URL or cluster nodes.
    #[must_use]
    pub fn uses_redis(&self) -> bool {
        self.redis_url.is_some() || !self.redis_cluster.nodes.is_empty()
    }

    /// Whether the shared tier is a cluster.
    #[must_use]
    pub fn uses_cluster(&self) -> bool {
        !self.redis_cluster.nodes.is_empty()
    }
}
