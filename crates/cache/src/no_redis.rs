//! The shared tier of a build without the `redis` feature: [`NoRedis`] has no values, so the
//! cache's shared tier (`Inner::redis`) is always `None` and `tiered.rs` keeps one code path
//! for both builds; every Redis branch of it compiles to nothing here. A configuration that
//! names Redis is refused by the configuration's checks before a cache is built.

use std::sync::Arc;

use vitals_env::{ConfigError, Problem};

use crate::config::CacheConfig;
use crate::error::{CacheError, NO_REDIS_FEATURE};
use crate::stats::BreakerState;
use crate::tier::{Generations, Placement, Tier, Written};

/// No shared tier: a type without values (it can never be made).
#[derive(Debug)]
pub(crate) enum NoRedis {}

impl NoRedis {
    /// Never a tier: the configuration names Redis, which this build cannot reach (the
    /// configuration's checks already refuse it; this is their answer again).
    pub(crate) async fn open(config: &CacheConfig) -> Result<Self, CacheError> {
        let variable = match config.redis_url {
            Some(_) => "REDIS_URL",
            None => "REDIS_CLUSTER_NODES",
        };
        let problem = Problem::new("cache", variable, None, NO_REDIS_FEATURE);
        Err(ConfigError::one(problem).into())
    }

    pub(crate) async fn set_loaded(
        &self,
        _at: Placement<'_>,
        _value: &[u8],
        _since: &Generations,
    ) -> Result<Written, CacheError> {
        match *self {}
    }

    pub(crate) fn is_connected(&self) -> bool {
        match *self {}
    }

    pub(crate) fn used_memory(&self) -> Option<u64> {
        match *self {}
    }

    pub(crate) fn errors(&self) -> u64 {
        match *self {}
    }

    pub(crate) fn refuses_plaintext(&self) -> bool {
        match *self {}
    }

    pub(crate) fn refused_writes(&self) -> u64 {
        match *self {}
    }

    pub(crate) fn decode_errors(&self) -> u64 {
        match *self {}
    }

    pub(crate) fn breaker_state(&self) -> BreakerState {
        match *self {}
    }

    pub(crate) fn invalidations_sent(&self) -> u64 {
        match *self {}
    }
}

impl Tier for NoRedis {
    async fn get(&self, _key: &str) -> Result<Option<Arc<[u8]>>, CacheError> {
        match *self {}
    }

    async fn set(&self, _at: Placement<'_>, _value: Arc<[u8]>) -> Result<(), CacheError> {
        match *self {}
    }

    async fn delete(&self, _key: &str) -> Result<bool, CacheError> {
        match *self {}
    }

    async fn delete_many(&self, _keys: &[&str]) -> Result<u64, CacheError> {
        match *self {}
    }

    async fn invalidate_tag(&self, _tag: &str) -> Result<Vec<String>, CacheError> {
        match *self {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use vitals_env::pairs as env;

    use crate::config::CacheConfig;
    use crate::error::CacheError;
    use crate::tiered::TieredCache;

    const TTL: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn an_l1_only_cache_loads_once_serves_from_l1_and_invalidates() {
        let cache = TieredCache::l1_only().await;
        let loads = AtomicUsize::new(0);
        let tags = ["allergies", &TieredCache::group_tag("4f1c")];
        let load = || async {
            loads.fetch_add(1, Ordering::Relaxed);
            Ok::<_, CacheError>(vec!["peanut".to_owned()])
        };
        let first: Arc<Vec<String>> = cache
            .get_or_load("student:4f1c:allergies", TTL, &tags, load)
            .await
            .unwrap();
        let again: Arc<Vec<String>> = cache
            .get_or_load("student:4f1c:allergies", TTL, &tags, load)
            .await
            .unwrap();
        assert_eq!(*first, ["peanut"]);
        assert!(Arc::ptr_eq(&first, &again), "the second read is L1's value");
        assert_eq!(loads.load(Ordering::Relaxed), 1);

        cache
            .set("student:4f1c:summary", 7u32, TTL, &tags[1..])
            .await
            .unwrap();
        assert_eq!(
            cache.get::<u32>("student:4f1c:summary").await.as_deref(),
            Some(&7)
        );
        assert_eq!(cache.invalidate_group("4f1c").await, 2);
        assert!(cache.get::<u32>("student:4f1c:summary").await.is_none());
        cache.set("k", 1u8, TTL, &[]).await.unwrap();
        assert!(cache.delete("k").await);

        let s = cache.stats();
        assert_eq!((s.loads, s.l1_hits, s.l2_hits), (1, 2, 0), "{s:?}");
        assert!(!s.redis_configured && !s.redis_connected && !s.subscribed);
        assert_eq!(s.breaker, None);
        cache.shutdown().await;
    }

    #[test]
    fn configuration_naming_redis_is_refused_without_the_feature() {
        let err = CacheConfig::from_env_with(env(&[("REDIS_URL", "redis://:s3cret@h:6379/0")]))
            .unwrap_err();
        assert_eq!(err.variables(), ["REDIS_URL"]);
        assert!(err.to_string().contains("`redis` feature"), "{err}");
        let err = CacheConfig::from_env_with(env(&[
            ("REDIS_HOST", "cache.local"),
            ("REDIS_PASSWORD", "s3cret"),
            ("REDIS_CLUSTER_NODES", "redis://:s3cret@h1:7000"),
        ]))
        .unwrap_err();
        assert_eq!(
            err.variables(),
            ["REDIS_HOST", "REDIS_PASSWORD", "REDIS_CLUSTER_NODES"]
        );
        assert!(!err.to_string().contains("s3cret"), "{err}");
        let none = CacheConfig::from_env_with(env(&[("CACHE_L1_MAX_SIZE", "10")])).unwrap();
        assert!(!none.uses_redis());
    }

    #[tokio::test]
    async fn a_redis_url_set_in_code_is_refused_at_build() {
        let config = CacheConfig::default().with_redis_url(Some("redis://:s3cret@h:6379/0"));
        let err = TieredCache::builder(config).build().await.unwrap_err();
        let CacheError::Config(e) = err else {
            panic!("{err}")
        };
        assert_eq!(e.variables(), ["REDIS_URL"]);
        assert!(!e.to_string().contains("s3cret"), "{e}");
        let nodes = CacheConfig::default().with_cluster_nodes(["redis://h1:7000"]);
        let err = TieredCache::builder(nodes).build().await.unwrap_err();
        assert!(matches!(err, CacheError::Config(_)), "{err}");
    }
}
