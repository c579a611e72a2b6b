//! Helpers of the Redis tests: unique prefixes, configs, built caches, and the harness of
//! `redis_server.rs` (a poll, a free port, a private redis-server).
#![allow(dead_code, unused_imports)]

pub mod loaders;
pub mod redis_cluster;
mod redis_server;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands as _;
pub use redis_server::{eventually, free_port, keyspace, wait_for_ping, RedisProcess, TestRedis};
use vitals_cache::{CacheConfig, TieredCache};

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A key prefix no other test (or run) uses; the channel name derives from it.
pub fn prefix(name: &str) -> String {
    format!(
        "vt-{name}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// A config with quick timeouts so failure paths finish fast. Values go to Redis
/// unencrypted (`allow_plaintext`): these tests read what Redis holds, and the
/// ones about encryption, or about keeping values out, set their own.
pub fn config(name: &str, url: &str) -> CacheConfig {
    let redis = CacheConfig::default().with_redis_url(Some(url));
    quick(
        redis,
        name,
        Duration::from_millis(300),
        (2, Duration::from_millis(150)),
    )
}

/// `redis` (a config naming its Redis) as a test's: under a [`prefix`] of `name`, values
/// unencrypted (`allow_plaintext`), a 500 ms command timeout, `connect` to connect, a
/// reconnect every 50 ms, and the breaker opening after `breaker.0` failures for `breaker.1`.
pub fn quick(
    redis: CacheConfig,
    name: &str,
    connect: Duration,
    breaker: (u32, Duration),
) -> CacheConfig {
    redis
        .with_key_prefix(prefix(name))
        .with_allow_plaintext(true)
        .with_redis_timeouts(
            Duration::from_millis(500),
            connect,
            Duration::from_millis(50),
        )
        .with_breaker(breaker.0, breaker.1)
}

/// The cache of test `name`, on the Redis at `REDIS_URL` under a prefix of its own.
pub async fn own_cache(name: &str) -> TieredCache {
    build(config(name, &redis_url())).await
}

/// Two instances of the cache of test `name` (as [`own_cache`]), both subscribed to its
/// invalidations.
pub async fn own_pair(name: &str) -> (TieredCache, TieredCache) {
    pair(config(name, &redis_url())).await
}

/// A cache built from `cfg` (a Redis that is down does not fail the build).
pub async fn build(cfg: CacheConfig) -> TieredCache {
    TieredCache::builder(cfg).build().await.unwrap()
}

/// Two instances on `cfg`, both subscribed to its invalidations.
pub async fn pair(cfg: CacheConfig) -> (TieredCache, TieredCache) {
    let a = build(cfg.clone()).await;
    let b = build(cfg).await;
    assert!(a.wait_subscribed(Duration::from_secs(5)).await);
    assert!(b.wait_subscribed(Duration::from_secs(5)).await);
    (a, b)
}

/// A plain connection to `url`, to read what Redis holds past the cache.
pub async fn raw_conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The bytes the Redis at `REDIS_URL` holds for `cache`'s `key`.
pub async fn stored(cache: &TieredCache, key: &str) -> Vec<u8> {
    let data_key = cache.redis().unwrap().data_key(key);
    raw_conn(&redis_url()).await.get(data_key).await.unwrap()
}

/// The string `cache` reads under `key` (`get_cloned`: L1, then Redis).
pub async fn read_string(cache: &TieredCache, key: &str) -> Option<String> {
    cache.get_cloned::<String>(key).await
}

/// `a` sets `key` to `value` (a minute, no tag); once `b` has received that write's
/// invalidation (its `n`-th in all), `b` reads `value`, from Redis.
pub async fn set_then_read(a: &TieredCache, b: &TieredCache, key: &str, value: &str, n: u64) {
    a.set(key, value.to_owned(), Duration::from_secs(60), &[])
        .await
        .unwrap();
    received(b, n).await;
    assert_eq!(read_string(b, key).await.as_deref(), Some(value));
}

/// `cache`'s `get_or_load` of `key` (a minute, `tags`) whose loader awaits `during` (what
/// happens while the load runs), then returns `loaded`: the caller gets `loaded`.
pub async fn load_during(
    cache: &TieredCache,
    key: &str,
    tags: &[&str],
    during: impl Future<Output = ()>,
    loaded: &str,
) {
    let v: Result<Arc<String>, std::io::Error> = cache
        .get_or_load(key, Duration::from_secs(60), tags, || async move {
            during.await;
            Ok(loaded.to_owned())
        })
        .await;
    assert_eq!(*v.unwrap(), loaded);
}

/// Waits until `cache` has applied `n` invalidations of other instances, so a
/// read that follows can't overlap their delivery (a read that does is not
/// put in L1, by design).
pub async fn received(cache: &TieredCache, n: u64) {
    let ok = eventually(Duration::from_secs(5), || async {
        cache.stats().invalidations_received >= n
    })
    .await;
    assert!(
        ok,
        "only {} invalidations received",
        cache.stats().invalidations_received
    );
}
