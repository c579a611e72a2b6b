//! Helpers of the Redis tests: unique prefixes, configs, built caches, and the harness of
//! `redis_server.rs` (a poll, a free port, a private redis-server).
#![allow(dead_code, unused_imports)]

pub mod redis_cluster;
mod redis_server;

use std::time::Duration;

use redis::AsyncCommands as _;
pub use redis_server::{eventually, free_port, keyspace, RedisProcess, TestRedis};
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
    CacheConfig::default()
        .with_redis_url(Some(url))
        .with_key_prefix(prefix(name))
        .with_allow_plaintext(true)
        .with_redis_timeouts(
            Duration::from_millis(500),
            Duration::from_millis(300),
            Duration::from_millis(50),
        )
        .with_breaker(2, Duration::from_millis(150))
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
