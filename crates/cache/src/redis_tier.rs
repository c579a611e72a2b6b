//! The shared tier: Redis through a `ConnectionManager` (one node) or the cluster client,
//! behind a timeout and a circuit breaker, with tag bookkeeping and invalidation messages.
//! What only a cluster needs (the tag sweep over buckets, the repairs of failed writes) is
//! in `cluster_sweep.rs` and `repair.rs`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use vitals_env::{mask_url, ConfigError, Problem};

use crate::breaker::Breaker;
use crate::cluster_conn::{is_cluster_fault, shown, Client, Cluster, Conn};
use crate::codec::Codec;
use crate::config::CacheConfig;
use crate::error::CacheError;
use crate::layout::Layout;
use crate::repair::Repairs;
use crate::scripts::{BUCKET_INVALIDATE_SCRIPT, DELETE_SCRIPT, INVALIDATE_SCRIPT, SET_SCRIPT};
use crate::tier::{Generations, Tier, Written};

/// An invalidation broadcast on the channel: keys to drop from every L1, an
/// optional tag whose local entries to drop too, or a full clear.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Message {
    /// Origin instance; an instance ignores its own messages.
    pub(crate) o: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) k: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) t: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) clear: bool,
}

pub(crate) struct RedisInner {
    pub(crate) client: Client,
    conn: RwLock<Option<Conn>>,
    connecting: tokio::sync::Mutex<()>,
    codec: Codec,
    pub(crate) layout: Layout,
    pub(crate) channel: String,
    pub(crate) origin: String,
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
    reconnect_interval: Duration,
    pub(crate) breaker: Breaker,
    set_script: redis::Script,
    invalidate_script: redis::Script,
    pub(crate) bucket_invalidate_script: redis::Script,
    pub(crate) delete_script: redis::Script,
    pub(crate) errors: AtomicU64,
    pub(crate) decode_errors: AtomicU64,
    pub(crate) used_memory: AtomicU64,
    pub(crate) sent: AtomicU64,
    /// No keyring and plaintext not allowed: values are never written (or read).
    pub(crate) refuse_values: bool,
    pub(crate) refused_writes: AtomicU64,
    connected_once: AtomicBool,
    url_masked: String,
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
/// ([`CacheConfig::redis_cluster`]) the keys carry a bucket's hash tag
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
            let seeds = crate::cluster_config::seed_infos(config)?;
            let client = crate::cluster_config::client(config, &seeds, ca_pem.clone())?;
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
                Some(mask_url(url)),
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

    /// Connects if no connection is established yet.
    ///
    /// # Errors
    /// [`CacheError::Redis`] or [`CacheError::Timeout`] if the connection
    /// can't be made within the connect timeout.
    pub async fn ensure_connected(&self) -> Result<(), CacheError> {
        if self.is_connected() {
            return Ok(());
        }
        let _guard = self.inner.connecting.lock().await;
        if self.is_connected() {
            return Ok(());
        }
        let cm = match &self.inner.client {
            Client::Single(client) => {
                let cfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(self.inner.connect_timeout)
                    .set_response_timeout(self.inner.timeout)
                    .set_number_of_retries(1)
                    .set_factor(10)
                    .set_max_delay(self.inner.reconnect_interval.as_millis() as u64);
                let fut = ConnectionManager::new_with_config(client.clone(), cfg);
                let budget = self.inner.connect_timeout * 3;
                match tokio::time::timeout(budget, fut).await {
                    Ok(Ok(cm)) => Conn::Single(cm),
                    Ok(Err(e)) => return Err(e.into()),
                    Err(_) => return Err(CacheError::Timeout(budget)),
                }
            }
            Client::Cluster(cluster) => {
                crate::cluster_ops::connect(cluster, self.inner.connect_timeout).await?
            }
        };
        self.set_conn(cm);
        if !self.inner.connected_once.swap(true, Ordering::Relaxed) {
            tracing::info!(target: "vitals_cache", url = %self.inner.url_masked, "redis connected");
        }
        Ok(())
    }

    /// Whether a connection (manager) is established.
    pub fn is_connected(&self) -> bool {
        self.inner
            .conn
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some()
    }

    /// A new pub/sub connection subscribed to the invalidation channel.
    ///
    /// On a cluster, the subscription is on one node (a `PUBLISH` reaches every node of a
    /// cluster), the next one in turn each time it is made again.
    pub(crate) async fn subscribe(&self) -> Result<redis::aio::PubSub, redis::RedisError> {
        let mut ps = match &self.inner.client {
            Client::Single(client) => client.get_async_pubsub().await?,
            Client::Cluster(cluster) => cluster.subscription_client()?.get_async_pubsub().await?,
        };
        ps.subscribe(&self.inner.channel).await?;
        Ok(ps)
    }

    /// Whether this instance sent `message` (an instance ignores its own).
    pub(crate) fn is_own(&self, message: &Message) -> bool {
        message.o == self.inner.origin
    }

    /// The Redis key of a cache key.
    pub fn data_key(&self, key: &str) -> String {
        self.inner.layout.data_key(key)
    }

    /// The pub/sub channel of invalidations.
    pub fn channel(&self) -> &str {
        &self.inner.channel
    }

    /// Puts `conn` in place of the connection (the old one closes when its last clone goes).
    pub(crate) fn set_conn(&self, conn: Conn) {
        *self
            .inner
            .conn
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(conn);
    }

    /// The connection, if made.
    pub(crate) fn conn(&self) -> Option<Conn> {
        self.inner
            .conn
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Runs one command through the breaker and the timeout.
    pub(crate) async fn run<T, F, Fut>(&self, f: F) -> Result<T, CacheError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.inner.breaker.allow() {
            return Err(CacheError::BreakerOpen);
        }
        let Some(conn) = self.conn() else {
            self.inner.breaker.failure();
            return Err(CacheError::NotConnected);
        };
        match tokio::time::timeout(self.inner.timeout, f(conn)).await {
            Ok(Ok(v)) => {
                self.inner.breaker.success();
                Ok(v)
            }
            Ok(Err(e)) => {
                self.inner.errors.fetch_add(1, Ordering::Relaxed);
                if is_cluster_fault(&e) {
                    self.inner.cluster_faults.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(target: "vitals_cache", kind = ?e.kind(), "redis cluster fault reply");
                }
                self.inner.breaker.failure();
                Err(e.into())
            }
            Err(_) => {
                self.inner.errors.fetch_add(1, Ordering::Relaxed);
                self.inner.breaker.failure();
                Err(CacheError::Timeout(self.inner.timeout))
            }
        }
    }

    pub(crate) fn message(&self, keys: Vec<String>, tag: Option<String>) -> String {
        let m = Message {
            o: self.inner.origin.clone(),
            k: keys,
            t: tag,
            clear: false,
        };
        // Serialising a struct of strings can't fail.
        serde_json::to_string(&m).unwrap_or_default()
    }

    /// Decodes a payload read from under `key`, counting a failure in
    /// `decode_errors`.
    fn decode(&self, key: &str, raw: &[u8]) -> Result<Arc<[u8]>, CacheError> {
        self.inner
            .codec
            .decode(key, raw)
            .map(Arc::from)
            .inspect_err(|_| {
                self.inner.decode_errors.fetch_add(1, Ordering::Relaxed);
            })
    }

    /// Stores the encoded value and broadcasts the overwrite so other
    /// instances drop `key` from their L1. With `expected` generations (from
    /// [`Tier::generations`]), writes only if they did not move; says which way it went.
    async fn set_inner(
        &self,
        key: &str,
        plain: &[u8],
        ttl: Duration,
        tags: &[&str],
        expected: Option<&[String]>,
    ) -> Result<Written, CacheError> {
        let store = !self.inner.refuse_values;
        let payload = if store {
            self.inner.codec.encode(key, plain)?
        } else {
            Vec::new()
        };
        let layout = &self.inner.layout;
        if !layout.misplaced_groups(key, tags).is_empty() {
            // Its group's set is in another slot: indexing it there is not atomic with the
            // write, so the entry stays out of Redis (a delete keeps the others coherent).
            if self.inner.layout_faults.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!(target: "vitals_cache", "a key not ending with its group's id is kept out of the Redis Cluster (docs/cache.md, Redis Cluster)");
            }
            self.delete_inner(&[key]).await?;
            return Ok(Written::Misplaced);
        }
        let ttl_ms = ttl.as_millis().clamp(1, u128::from(u64::MAX)) as u64;
        let bucket = layout.bucket(key);
        let mut keys = vec![layout.data_key(key)];
        keys.extend(tags.iter().map(|t| layout.tag_key(bucket, t)));
        keys.extend(layout.gen_keys(key, tags));
        let msg = self.message(vec![key.to_owned()], None);
        let mut cmd = crate::scripts::evalsha(&self.inner.set_script, &keys);
        cmd.arg(payload)
            .arg(ttl_ms)
            .arg(key)
            .arg(&self.inner.channel)
            .arg(&msg)
            .arg(tags.len())
            .arg(if expected.is_some() { "1" } else { "0" })
            .arg(if store { "1" } else { "0" });
        for g in expected.unwrap_or_default() {
            cmd.arg(g);
        }
        let written = self.eval::<i64>(SET_SCRIPT, &cmd, bucket).await? == 1;
        if written {
            self.inner.sent.fetch_add(1, Ordering::Relaxed);
            if !store {
                self.inner.refused_writes.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(if written {
            Written::Stored
        } else {
            Written::Stale
        })
    }

    /// [`Tier::set_if_unchanged`], telling a stale value from one the cluster's layout keeps
    /// out of Redis.
    pub(crate) async fn set_loaded(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        tags: &[&str],
        since: &Generations,
    ) -> Result<Written, CacheError> {
        let r = self
            .set_inner(key, value, ttl, tags, Some(since.values()))
            .await;
        self.repair_on_error(r, &[key], None)
    }

    /// Runs a script's `EVALSHA` (loading the script once if Redis lacks it) and, on a
    /// cluster, the `WAIT` for replicas in the same round trip.
    pub(crate) async fn eval<T: redis::FromRedisValue + Send>(
        &self,
        src: &str,
        cmd: &redis::Cmd,
        bucket: u16,
    ) -> Result<T, CacheError> {
        let wait = self.wait_at(bucket);
        let (v, acks) =
            self.run(|mut conn| async move {
                crate::scripts::eval::<T>(&mut conn, src, cmd, wait).await
            })
            .await?;
        self.count_acks(acks);
        Ok(v)
    }

    /// Counts a write its replicas did not acknowledge in time.
    pub(crate) fn count_acks(&self, acks: Option<u32>) {
        if let (Some(acks), Some((want, _))) = (acks, self.inner.wait) {
            if acks < want {
                self.inner
                    .unreplicated_writes
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Deletes keys and broadcasts it.
    pub(crate) async fn delete_inner(&self, keys: &[&str]) -> Result<u64, CacheError> {
        if keys.is_empty() {
            return Ok(0);
        }
        if self.inner.layout.is_cluster() {
            return self.delete_in_buckets(keys).await;
        }
        let layout = &self.inner.layout;
        let data_keys: Vec<String> = keys.iter().map(|k| layout.data_key(k)).collect();
        let gen_keys: Vec<String> = keys.iter().map(|k| layout.gen_key(k)).collect();
        let msg = self.message(keys.iter().map(|k| (*k).to_owned()).collect(), None);
        let channel = &self.inner.channel;
        let (n,): (u64,) = self
            .run(|mut conn| async move {
                let mut p = redis::pipe();
                p.atomic().cmd("DEL").arg(&data_keys);
                // A delete moves the generation, so in-flight loads don't
                // write back what was deleted.
                for g in &gen_keys {
                    p.cmd("INCR").arg(g).ignore();
                    p.cmd("PEXPIRE").arg(g).arg(60_000).ignore();
                }
                p.cmd("PUBLISH").arg(channel).arg(&msg).ignore();
                p.query_async(&mut conn).await
            })
            .await?;
        self.inner.sent.fetch_add(1, Ordering::Relaxed);
        Ok(n)
    }

    /// Deletes the entries of `tag` and broadcasts it; returns their keys.
    pub(crate) async fn invalidate_tag_inner(&self, tag: &str) -> Result<Vec<String>, CacheError> {
        if self.inner.layout.is_cluster() {
            return self.sweep_tag(tag).await;
        }
        let layout = &self.inner.layout;
        let tag_key = layout.tag_key(0, tag);
        let tag_gen = layout.tag_gen_key(0, tag);
        let data_prefix = layout.data_prefix(0);
        let script = &self.inner.invalidate_script;
        let channel = &self.inner.channel;
        let origin = &self.inner.origin;
        // One round trip: the script publishes the invalidation itself.
        let members: Vec<String> = self
            .run(|mut conn| async move {
                script
                    .key(&tag_key)
                    .key(&tag_gen)
                    .arg(&data_prefix)
                    .arg(channel)
                    .arg(origin)
                    .arg(tag)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        self.inner.sent.fetch_add(1, Ordering::Relaxed);
        Ok(members)
    }

    /// Sends a PING (through the breaker and timeout).
    ///
    /// # Errors
    /// Any Redis error, timeout or open breaker.
    pub async fn ping(&self) -> Result<(), CacheError> {
        self.run(|conn| async move {
            match conn {
                // One node, not the cluster client's default of every node.
                Conn::Cluster(mut c) => {
                    use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
                    let random = SingleNodeRoutingInfo::Random;
                    c.route_command(&redis::cmd("PING"), RoutingInfo::SingleNode(random))
                        .await
                        .map(drop)
                }
                mut single => redis::cmd("PING")
                    .query_async::<String>(&mut single)
                    .await
                    .map(drop),
            }
        })
        .await
    }

    /// Reads `INFO memory` and keeps `used_memory` for [`RedisTier::used_memory`].
    ///
    /// # Errors
    /// Any Redis error, timeout or open breaker.
    pub async fn refresh_used_memory(&self) -> Result<u64, CacheError> {
        if self.inner.layout.is_cluster() {
            let used = self.cluster_used_memory().await?;
            self.inner.used_memory.store(used, Ordering::Relaxed);
            return Ok(used);
        }
        let info: String = self
            .run(|mut conn| async move {
                redis::cmd("INFO")
                    .arg("memory")
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let used = used_memory_of(&info)?;
        self.inner.used_memory.store(used, Ordering::Relaxed);
        Ok(used)
    }
}

/// `used_memory` of an `INFO memory` reply.
pub(crate) fn used_memory_of(info: &str) -> Result<u64, CacheError> {
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or(CacheError::Decode("INFO memory without used_memory"))
}

impl Tier for RedisTier {
    async fn get(&self, key: &str) -> Result<Option<Arc<[u8]>>, CacheError> {
        if self.inner.refuse_values {
            return Ok(None);
        }
        let data_key = self.data_key(key);
        let raw: Option<Vec<u8>> = self
            .run(|mut conn| async move {
                redis::cmd("GET")
                    .arg(&data_key)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let Some(raw) = raw else { return Ok(None) };
        self.decode(key, &raw).map(Some)
    }

    async fn set(
        &self,
        key: &str,
        value: Arc<[u8]>,
        ttl: Duration,
        tags: &[&str],
    ) -> Result<(), CacheError> {
        let r = self.set_inner(key, &value, ttl, tags, None).await;
        self.repair_on_error(r, &[key], None).map(drop)
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        let r = self.delete_inner(&[key]).await;
        Ok(self.repair_on_error(r, &[key], None)? > 0)
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<u64, CacheError> {
        let r = self.delete_inner(keys).await;
        self.repair_on_error(r, keys, None)
    }

    async fn invalidate_tag(&self, tag: &str) -> Result<Vec<String>, CacheError> {
        let r = self.invalidate_tag_inner(tag).await;
        self.repair_on_error(r, &[], Some(tag))
    }

    /// GET and PTTL in one round trip.
    async fn get_with_ttl(
        &self,
        key: &str,
    ) -> Result<Option<(Arc<[u8]>, Option<Duration>)>, CacheError> {
        if self.inner.refuse_values {
            // Nothing of ours is there to read: no round trip.
            return Ok(None);
        }
        let data_key = self.data_key(key);
        let (raw, pttl): (Option<Vec<u8>>, i64) = self
            .run(|mut conn| async move {
                redis::pipe()
                    .cmd("GET")
                    .arg(&data_key)
                    .cmd("PTTL")
                    .arg(&data_key)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let Some(raw) = raw else { return Ok(None) };
        let ttl = u64::try_from(pttl).ok().map(Duration::from_millis);
        Ok(Some((self.decode(key, &raw)?, ttl)))
    }

    /// One MGET of the generation keys of `key` and of `tags`.
    async fn generations(&self, key: &str, tags: &[&str]) -> Result<Generations, CacheError> {
        let keys = self.inner.layout.gen_keys(key, tags);
        let gens: Vec<Option<String>> =
            self.run(|mut conn| async move {
                redis::cmd("MGET").arg(&keys).query_async(&mut conn).await
            })
            .await?;
        Ok(Generations::new(
            gens.into_iter().map(Option::unwrap_or_default).collect(),
        ))
    }

    /// The write script in its conditional form: the generations are compared in Redis,
    /// atomically with the write.
    async fn set_if_unchanged(
        &self,
        key: &str,
        value: Arc<[u8]>,
        ttl: Duration,
        tags: &[&str],
        since: &Generations,
    ) -> Result<bool, CacheError> {
        Ok(self.set_loaded(key, &value, ttl, tags, since).await? == Written::Stored)
    }
}
