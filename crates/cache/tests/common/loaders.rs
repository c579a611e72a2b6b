//! The loaders of the fail-safe and load-path tests: one that finds a value, one whose
//! database does not answer, and a look at Redis for the value itself.

use std::time::Duration;

use redis::AsyncCommands as _;
use vitals_cache::{LoadOptions, Loaded, TieredCache};

/// What the loaders of these tests fail with: a database that does not answer.
#[derive(Debug, PartialEq)]
pub struct DatabaseDown;

/// What `get_or_load_with` answers these loaders.
pub type Got = Result<Option<Loaded<String>>, DatabaseDown>;

/// `get_or_load_with` of `key` under `tags`, whose loader finds `v`.
pub async fn load(
    cache: &TieredCache,
    key: &str,
    ttl: Duration,
    tags: &[&str],
    o: &LoadOptions,
    v: &str,
) -> Got {
    let v = v.to_owned();
    cache
        .get_or_load_with(key, ttl, tags, o, move || async move { Ok(Some(v)) })
        .await
}

/// `get_or_load_with` of `key` under `tags`, whose loader fails with [`DatabaseDown`].
pub async fn fail(
    cache: &TieredCache,
    key: &str,
    ttl: Duration,
    tags: &[&str],
    o: &LoadOptions,
) -> Got {
    cache
        .get_or_load_with(key, ttl, tags, o, || async {
            Err::<Option<String>, _>(DatabaseDown)
        })
        .await
}

/// Whether Redis still holds `cache`'s value of `key`.
pub async fn in_redis(cache: &TieredCache, key: &str) -> bool {
    let data_key = cache.redis().unwrap().data_key(key);
    let mut conn = super::raw_conn(&super::redis_url()).await;
    conn.exists(data_key).await.unwrap()
}
