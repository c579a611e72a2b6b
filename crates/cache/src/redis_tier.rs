//! The shared tier: Redis through a `ConnectionManager` (one node) or the cluster client,
//! behind a timeout and a circuit breaker. This file holds its state and how it is made from
//! the configuration; its connection and guarded command path are in `redis_conn.rs`, its
//! reads, writes and invalidations (the `Tier` seam) in `redis_ops.rs`, its counters in
//! `tier_counters.rs`. What only a cluster needs (the tag sweep over buckets, deletes per
//! bucket) is in `cluster_ops.rs`, the repairs of failed cluster writes in `repair.rs`.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use vitals_env::{mask_bad_url, mask_url, ConfigError, Problem};

use crate::breaker::Breaker;
use crate::cluster_conn::{client as cluster_client, seed_infos, shown, Client, Cluster};
use crate::codec::Codec;
use crate::config::CacheConfig;
use crate::conn::Conn;
use crate::error::CacheError;
use crate::layout::Layout;
use crate::repair_queue::Repairs;
use crate::scripts::{BUCKET_INVALIDATE_SCRIPT, DELETE_SCRIPT, INVALIDATE_SCRIPT, SET_SCRIPT};

pub(crate) struct RedisInner {
    pub(crate) client: Client,
    pub(crate) conn: RwLock<Option<Conn>>,
    pub(crate) connecting: tokio::sync::Mutex<()>,
    pub(crate) codec: Codec,
    pub(crate) layout: Layout,
    pub(crate) channel: String,
    pub(crate) origin: String,
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) reconnect_interval: Duration,
    pub(crate) breaker: Breaker,
    pub(crate) set_script: redis::Script,
    pub(crate) invalidate_script: redis::Script,
    pub(crate) bucket_invalidate_script: redis::Script,
    pub(crate) delete_script: redis::Script,
    pub(crate) errors: AtomicU64,
    pub(crate) decode_errors: AtomicU64,
    pub(crate) used_memory: AtomicU64,
    pub(crate) sent: AtomicU64,
    /// No keyring and plaintext not allowed: values are never written (or read).
    pub(crate) refuse_values: bool,
    pub(crate) refused_writes: AtomicU64,
    pub(crate) connected_once: AtomicBool,
    pub(crate) url_masked: String,
    /// Replicas a cluster write waits for, and how long (none on a single node).
    pub(crate) wait: Option<(u32, Duration)>,
    /// Cluster fault replies (MOVED, ASK, TRYAGAIN, CLUSTERDOWN, CROSSSLOT…) that reached
    /// the tier: counted among `errors` too.
    pub(crate) cluster_faults: AtomicU64,
    /// Cluster writes not acknowledged by `wait`'s replicas in time.
    pub(crate) unreplicated_writes: AtomicU64,
    /// Writes whose group tag is in another bucket than their key (kept out of Redis).
    pub(crate) layout_faults: AtomicU64,
    /// Changes of the cluster's masters seen (failovers, resharding).
    pub(crate) topology_changes: AtomicU64,
    /// Keys and tags whose cluster write failed, replayed as deletes.
    pub(crate) repairs: Repairs,
}

/// The Redis tier. Cheap to clone (an `Arc`), `Send + Sync`.
///
/// Every command is bounded by the configured timeout and goes through a
/// circuit breaker: after `breaker_threshold` consecutive failures Redis is
/// skipped (calls fail at once with [`CacheError::BreakerOpen`]) until the
/// cool-down ends and a probe succeeds. The connection is made lazily by
/// [`RedisTier::ensure_connected`]; once made, the `ConnectionManager`
/// reconnects by itself.
///
/// Values are encoded by the [`Codec`] (compression, encryption) on the way
/// in and decoded on the way out. Without a keyring, and unless the config
/// allows plaintext, no value is written or read: writes only move the key's
/// generation and publish the overwrite ([`RedisTier::refuses_plaintext`]); keys are namespaced as `{prefix}:v:{key}`,
/// tags as `{prefix}:t:{tag}` (a sorted set of keys scored by expiry), and
/// invalidations are published on `{prefix}:inval`. On a Redis Cluster
/// ([`CacheConfig::redis_cluster`](crate::CacheConfig::redis_cluster)) the keys carry a bucket's hash tag
/// (`{prefix}:{b17}:v:{key}`) so that every script touches one slot; docs/cache.md, "Redis
/// Cluster", has the layout.
#[derive(Clone)]
pub struct RedisTier {
    pub(crate) inner: Arc<RedisInner>,
}

impl std::fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTier")
            .field("url", &self.inner.url_masked)
            .field("layout", &self.inner.layout)
            .field("connected", &self.is_connected())
            .field("breaker", &self.breaker_state())
            .finish()
    }
}

/// The CA file to trust: set, and the URL (or a cluster node) is a `rediss://` one.
fn tls_ca(config: &CacheConfig) -> Option<&std::path::Path> {
    let ca = config.redis_tls_ca.as_deref()?;
    let mut urls = config.redis_url.iter().chain(&config.redis_cluster.nodes);
    urls.any(|u| u.starts_with("rediss://")).then_some(ca)
}

fn unreadable_ca(ca: &std::path::Path, e: &std::io::Error) -> ConfigError {
    ConfigError::one(Problem::new(
        "cache",
        "REDIS_TLS_CA_FILE",
        Some(ca.display().to_string()),
        format!("a readable PEM file ({e})"),
    ))
}

impl RedisTier {
    /// A tier for `config.redis_url` (not yet connected). Reads the TLS CA file, if any, on
    /// this thread: from async code, [`TieredCache::builder`](crate::TieredCache::builder)
    /// reads it without blocking.
    ///
    /// # Errors
    /// [`CacheError::Config`] if there is no Redis URL or it is invalid, or the CA file
    /// cannot be read.
    pub fn new(config: &CacheConfig) -> Result<Self, CacheError> {
        let pem = match tls_ca(config) {
            Some(ca) => Some(std::fs::read(ca).map_err(|e| unreadable_ca(ca, &e))?),
            None => None,
        };
        Self::with_ca_pem(config, pem)
    }

    /// As [`new`](Self::new), reading the CA file with `tokio::fs` so an async caller's
    /// worker thread is not blocked on the disk.
    pub(crate) async fn open(config: &CacheConfig) -> Result<Self, CacheError> {
        let pem = match tls_ca(config) {
            Some(ca) => Some(
                tokio::fs::read(ca)
                    .await
                    .map_err(|e| unreadable_ca(ca, &e))?,
            ),
            None => None,
        };
        Self::with_ca_pem(config, pem)
    }

    /// The tier, trusting `ca_pem` (the contents of [`tls_ca`]'s file) when given.
    fn with_ca_pem(config: &CacheConfig, ca_pem: Option<Vec<u8>>) -> Result<Self, CacheError> {
        if config.uses_cluster() {
            let seeds = seed_infos(&config.redis_cluster)?;
            let (connect, command) = (config.connect_timeout, config.redis_timeout);
            let client = cluster_client(&seeds, ca_pem.clone(), connect, command)?;
            let shown_seeds: Vec<String> = seeds.iter().map(shown).collect();
            let cluster = Cluster::new(client, seeds, ca_pem);
            let wait = config.redis_cluster.wait_replicas;
            let wait = (wait > 0).then_some((wait, config.redis_cluster.wait_timeout));
            let url = format!("cluster {}", shown_seeds.join(","));
            return Ok(Self::with_client(
                config,
                Client::Cluster(Box::new(cluster)),
                url,
                wait,
            ));
        }
        let Some(url) = &config.redis_url else {
            let problem =
                Problem::new("cache", "REDIS_URL", None, "a redis URL for the Redis tier");
            return Err(ConfigError::one(problem).into());
        };
        let client = match ca_pem {
            Some(pem) => {
                let certs = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                };
                redis::Client::build_with_tls(url.as_str(), certs)
            }
            None => redis::Client::open(url.as_str()),
        }
        .map_err(|e| {
            ConfigError::one(Problem::new(
                "cache",
                "REDIS_URL",
                Some(mask_bad_url(url)),
                format!("a redis URL ({e})"),
            ))
        })?;
        Ok(Self::with_client(
            config,
            Client::Single(client),
            mask_url(url),
            None,
        ))
    }

    fn with_client(
        config: &CacheConfig,
        client: Client,
        url_masked: String,
        wait: Option<(u32, Duration)>,
    ) -> Self {
        let origin = format!("{:016x}", rand::random::<u64>());
        let cluster = matches!(client, Client::Cluster(_));
        Self {
            inner: Arc::new(RedisInner {
                client,
                conn: RwLock::new(None),
                connecting: tokio::sync::Mutex::new(()),
                codec: Codec::new(config.compress_threshold, config.encryption.clone()),
                layout: Layout::new(&config.key_prefix, cluster),
                channel: format!("{}:inval", config.key_prefix),
                origin,
                timeout: config.redis_timeout,
                connect_timeout: config.connect_timeout,
                reconnect_interval: config.reconnect_interval,
                breaker: Breaker::new(config.breaker_threshold, config.breaker_cooldown),
                set_script: redis::Script::new(SET_SCRIPT),
                invalidate_script: redis::Script::new(INVALIDATE_SCRIPT),
                bucket_invalidate_script: redis::Script::new(BUCKET_INVALIDATE_SCRIPT),
                delete_script: redis::Script::new(DELETE_SCRIPT),
                errors: AtomicU64::new(0),
                decode_errors: AtomicU64::new(0),
                used_memory: AtomicU64::new(u64::MAX),
                sent: AtomicU64::new(0),
                refuse_values: config.encryption.is_none() && !config.allow_plaintext,
                refused_writes: AtomicU64::new(0),
                connected_once: AtomicBool::new(false),
                url_masked,
                wait,
                cluster_faults: AtomicU64::new(0),
                unreplicated_writes: AtomicU64::new(0),
                layout_faults: AtomicU64::new(0),
                topology_changes: AtomicU64::new(0),
                repairs: Repairs::default(),
            }),
        }
    }

    /// The Redis key of a cache key.
    pub fn data_key(&self, key: &str) -> String {
        self.inner.layout.data_key(key)
    }

    /// The pub/sub channel of invalidations.
    pub fn channel(&self) -> &str {
        &self.inner.channel
    }
}
