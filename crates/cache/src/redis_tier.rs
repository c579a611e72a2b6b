//! The shared tier: Redis through a `ConnectionManager`, behind a timeout and
//! a circuit breaker, with tag bookkeeping and invalidation messages.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use vitals_env::{mask_url, ConfigError, Problem};

use crate::breaker::{Breaker, BreakerState};
use crate::codec::Codec;
use crate::config::CacheConfig;
use crate::error::CacheError;
use crate::tier::{Generations, Tier};

/// Sets the value, adds the key to each tag's sorted set (score = expiry in
/// ms), prunes expired members, keeps each tag set alive as long as its
/// longest-lived member, bumps the key's generation, then publishes the
/// overwrite. Atomic, so an invalidation of a tag sees the entry either
/// entirely before or entirely after: an entry written during an
/// invalidation is never orphaned.
///
/// Conditional form (a loader's result): written only if the generations of
/// the key and of its tags are still those read before the load, so a value
/// loaded before an overwrite, delete or tag invalidation on any instance is
/// not put back into Redis. Returns 1 if written, 0 if not.
///
/// Without the value (store '0': values refused because they would be in the
/// clear) it writes neither the value nor the tag sets, but still checks and
/// bumps the generation and publishes, so coherence across instances holds.
///
/// KEYS: data, n tag sets, key generation, n tag generations.
/// ARGV: value ('' when not stored), ttl ms, member, channel, message, n,
/// conditional ('1'), store ('1'), expected generations (n + 1, '' for none).
const SET_SCRIPT: &str = r"
local n = tonumber(ARGV[6])
if ARGV[7] == '1' then
  for i = 0, n do
    local cur = redis.call('GET', KEYS[n + 2 + i]) or ''
    if cur ~= ARGV[9 + i] then return 0 end
  end
end
if ARGV[8] == '1' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local ttl = tonumber(ARGV[2])
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
  local exp = now + ttl
  for i = 2, n + 1 do
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
    redis.call('ZADD', KEYS[i], exp, ARGV[3])
    local top = redis.call('ZRANGE', KEYS[i], -1, -1, 'WITHSCORES')
    redis.call('PEXPIREAT', KEYS[i], top[2])
  end
end
redis.call('INCR', KEYS[n + 2])
redis.call('PEXPIRE', KEYS[n + 2], 60000)
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
";

/// Deletes every member of a tag and the tag set itself, bumps the tag's
/// generation, then publishes the invalidation (a [`Message`] with the
/// origin, the removed keys and the tag), atomically; returns the members
/// whose entry still existed.
///
/// KEYS: tag set, tag generation.
/// ARGV: data key prefix, channel, origin, tag.
const INVALIDATE_SCRIPT: &str = r"
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local removed = {}
for _, m in ipairs(members) do
  if redis.call('UNLINK', ARGV[1] .. m) == 1 then table.insert(removed, m) end
end
redis.call('UNLINK', KEYS[1])
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], 60000)
-- cjson encodes an empty table as {}, not []: leave `k` out when empty
-- (Message.k defaults to empty, as when serialised in Rust).
local msg = { o = ARGV[3], t = ARGV[4] }
if #removed > 0 then msg.k = removed end
redis.call('PUBLISH', ARGV[2], cjson.encode(msg))
return removed
";

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

struct RedisInner {
    client: redis::Client,
    conn: RwLock<Option<ConnectionManager>>,
    connecting: tokio::sync::Mutex<()>,
    codec: Codec,
    prefix: String,
    channel: String,
    origin: String,
    timeout: Duration,
    connect_timeout: Duration,
    reconnect_interval: Duration,
    breaker: Breaker,
    set_script: redis::Script,
    invalidate_script: redis::Script,
    errors: AtomicU64,
    decode_errors: AtomicU64,
    used_memory: AtomicU64,
    sent: AtomicU64,
    /// No keyring and plaintext not allowed: values are never written (or read).
    refuse_values: bool,
    refused_writes: AtomicU64,
    connected_once: AtomicBool,
    url_masked: String,
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
/// invalidations are published on `{prefix}:inval`.
#[derive(Clone)]
pub struct RedisTier {
    inner: Arc<RedisInner>,
}

impl std::fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTier")
            .field("url", &self.inner.url_masked)
            .field("prefix", &self.inner.prefix)
            .field("connected", &self.is_connected())
            .field("breaker", &self.breaker_state())
            .finish()
    }
}

/// The CA file to trust: set, and the URL is a `rediss://` one.
fn tls_ca(config: &CacheConfig) -> Option<&std::path::Path> {
    let url = config.redis_url.as_deref()?;
    let ca = config.redis_tls_ca.as_deref()?;
    url.starts_with("rediss://").then_some(ca)
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
        let origin = format!("{:016x}", rand::random::<u64>());
        Ok(Self {
            inner: Arc::new(RedisInner {
                client,
                conn: RwLock::new(None),
                connecting: tokio::sync::Mutex::new(()),
                codec: Codec::new(config.compress_threshold, config.encryption.clone()),
                prefix: config.key_prefix.clone(),
                channel: format!("{}:inval", config.key_prefix),
                origin,
                timeout: config.redis_timeout,
                connect_timeout: config.connect_timeout,
                reconnect_interval: config.reconnect_interval,
                breaker: Breaker::new(config.breaker_threshold, config.breaker_cooldown),
                set_script: redis::Script::new(SET_SCRIPT),
                invalidate_script: redis::Script::new(INVALIDATE_SCRIPT),
                errors: AtomicU64::new(0),
                decode_errors: AtomicU64::new(0),
                used_memory: AtomicU64::new(u64::MAX),
                sent: AtomicU64::new(0),
                refuse_values: config.encryption.is_none() && !config.allow_plaintext,
                refused_writes: AtomicU64::new(0),
                connected_once: AtomicBool::new(false),
                url_masked: mask_url(url),
            }),
        })
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
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(self.inner.connect_timeout)
            .set_response_timeout(self.inner.timeout)
            .set_number_of_retries(1)
            .set_factor(10)
            .set_max_delay(self.inner.reconnect_interval.as_millis() as u64);
        let fut = ConnectionManager::new_with_config(self.inner.client.clone(), cfg);
        let budget = self.inner.connect_timeout * 3;
        let cm = match tokio::time::timeout(budget, fut).await {
            Ok(Ok(cm)) => cm,
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(CacheError::Timeout(budget)),
        };
        *self
            .inner
            .conn
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(cm);
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

    /// State of the circuit breaker.
    pub fn breaker_state(&self) -> BreakerState {
        self.inner.breaker.state()
    }

    /// Redis errors (failures and timeouts) so far.
    pub fn errors(&self) -> u64 {
        self.inner.errors.load(Ordering::Relaxed)
    }

    /// Payloads that could not be decoded (treated as misses) so far.
    pub fn decode_errors(&self) -> u64 {
        self.inner.decode_errors.load(Ordering::Relaxed)
    }

    /// Redis `used_memory` as last refreshed, if known.
    pub fn used_memory(&self) -> Option<u64> {
        match self.inner.used_memory.load(Ordering::Relaxed) {
            u64::MAX => None,
            n => Some(n),
        }
    }

    /// Whether values are kept out of Redis because no encryption key is configured
    /// and plaintext is not allowed (`CACHE_ALLOW_PLAINTEXT`): writes then carry only
    /// their invalidation and generation, and reads find nothing.
    pub fn refuses_plaintext(&self) -> bool {
        self.inner.refuse_values
    }

    /// Writes whose value was kept out of Redis (see [`RedisTier::refuses_plaintext`]).
    pub fn refused_writes(&self) -> u64 {
        self.inner.refused_writes.load(Ordering::Relaxed)
    }

    /// Invalidation messages published so far (writes, deletes, tag invalidations).
    pub fn invalidations_sent(&self) -> u64 {
        self.inner.sent.load(Ordering::Relaxed)
    }

    /// A new pub/sub connection subscribed to the invalidation channel.
    pub(crate) async fn subscribe(&self) -> Result<redis::aio::PubSub, redis::RedisError> {
        let mut ps = self.inner.client.get_async_pubsub().await?;
        ps.subscribe(&self.inner.channel).await?;
        Ok(ps)
    }

    /// Whether this instance sent `message` (an instance ignores its own).
    pub(crate) fn is_own(&self, message: &Message) -> bool {
        message.o == self.inner.origin
    }

    /// The Redis key of a cache key.
    pub fn data_key(&self, key: &str) -> String {
        format!("{}:v:{key}", self.inner.prefix)
    }

    fn tag_key(&self, tag: &str) -> String {
        format!("{}:t:{tag}", self.inner.prefix)
    }

    /// The pub/sub channel of invalidations.
    pub fn channel(&self) -> &str {
        &self.inner.channel
    }

    /// Runs one command through the breaker and the timeout.
    async fn run<T, F, Fut>(&self, f: F) -> Result<T, CacheError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.inner.breaker.allow() {
            return Err(CacheError::BreakerOpen);
        }
        let conn = self
            .inner
            .conn
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let Some(conn) = conn else {
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

    fn message(&self, keys: Vec<String>, tag: Option<String>) -> String {
        let m = Message {
            o: self.inner.origin.clone(),
            k: keys,
            t: tag,
            clear: false,
        };
        // Serialising a struct of strings can't fail.
        serde_json::to_string(&m).unwrap_or_default()
    }

    fn gen_key(&self, key: &str) -> String {
        format!("{}:g:{key}", self.inner.prefix)
    }

    fn tag_gen_key(&self, tag: &str) -> String {
        format!("{}:gt:{tag}", self.inner.prefix)
    }

    /// The generation keys of `key` and of `tags`, in that order.
    fn gen_keys(&self, key: &str, tags: &[&str]) -> Vec<String> {
        std::iter::once(self.gen_key(key))
            .chain(tags.iter().map(|t| self.tag_gen_key(t)))
            .collect()
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
    /// [`Tier::generations`]), writes only if they did not move; returns
    /// whether it wrote.
    async fn set_inner(
        &self,
        key: &str,
        plain: &[u8],
        ttl: Duration,
        tags: &[&str],
        expected: Option<&[String]>,
    ) -> Result<bool, CacheError> {
        let store = !self.inner.refuse_values;
        let payload = if store {
            self.inner.codec.encode(key, plain)?
        } else {
            Vec::new()
        };
        let ttl_ms = ttl.as_millis().clamp(1, u128::from(u64::MAX)) as u64;
        let data_key = self.data_key(key);
        let tag_keys: Vec<String> = tags.iter().map(|t| self.tag_key(t)).collect();
        let gen_keys = self.gen_keys(key, tags);
        let msg = self.message(vec![key.to_owned()], None);
        let script = &self.inner.set_script;
        let channel = &self.inner.channel;
        let written = self
            .run(|mut conn| async move {
                let mut inv = script.key(&data_key);
                for k in tag_keys.iter().chain(&gen_keys) {
                    inv.key(k);
                }
                inv.arg(payload)
                    .arg(ttl_ms)
                    .arg(key)
                    .arg(channel)
                    .arg(&msg)
                    .arg(tags.len())
                    .arg(if expected.is_some() { "1" } else { "0" })
                    .arg(if store { "1" } else { "0" });
                for g in expected.unwrap_or_default() {
                    inv.arg(g);
                }
                inv.invoke_async::<i64>(&mut conn).await
            })
            .await?
            == 1;
        if written {
            self.inner.sent.fetch_add(1, Ordering::Relaxed);
            if !store {
                self.inner.refused_writes.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(written)
    }

    /// Deletes keys and broadcasts it.
    async fn delete_inner(&self, keys: &[&str]) -> Result<u64, CacheError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let data_keys: Vec<String> = keys.iter().map(|k| self.data_key(k)).collect();
        let gen_keys: Vec<String> = keys.iter().map(|k| self.gen_key(k)).collect();
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
    async fn invalidate_tag_inner(&self, tag: &str) -> Result<Vec<String>, CacheError> {
        let tag_key = self.tag_key(tag);
        let tag_gen = self.tag_gen_key(tag);
        let data_prefix = format!("{}:v:", self.inner.prefix);
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
        self.run(
            |mut conn| async move { redis::cmd("PING").query_async::<String>(&mut conn).await },
        )
        .await
        .map(drop)
    }

    /// Reads `INFO memory` and keeps `used_memory` for [`RedisTier::used_memory`].
    ///
    /// # Errors
    /// Any Redis error, timeout or open breaker.
    pub async fn refresh_used_memory(&self) -> Result<u64, CacheError> {
        let info: String = self
            .run(|mut conn| async move {
                redis::cmd("INFO")
                    .arg("memory")
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let used = info
            .lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or(CacheError::Decode("INFO memory without used_memory"))?;
        self.inner.used_memory.store(used, Ordering::Relaxed);
        Ok(used)
    }
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
        self.set_inner(key, &value, ttl, tags, None).await.map(drop)
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        Ok(self.delete_inner(&[key]).await? > 0)
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<u64, CacheError> {
        self.delete_inner(keys).await
    }

    async fn invalidate_tag(&self, tag: &str) -> Result<Vec<String>, CacheError> {
        self.invalidate_tag_inner(tag).await
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
        let keys = self.gen_keys(key, tags);
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
        self.set_inner(key, &value, ttl, tags, Some(since.values()))
            .await
    }
}
