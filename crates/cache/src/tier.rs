//! The seam between [`TieredCache`](crate::TieredCache) and its tiers.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::error::CacheError;

/// What a tier recorded of a key and its tags at one moment: read before a load
/// ([`Tier::generations`]) so that the loaded value is written only if none of them moved
/// meanwhile ([`Tier::set_if_unchanged`]). Opaque to the cache; empty for a tier that keeps
/// no generations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Generations(Vec<String>);

impl Generations {
    /// Generations of that tier's making, in its own order.
    #[must_use]
    pub fn new(values: Vec<String>) -> Self {
        Self(values)
    }

    /// The values, in the order the tier made them.
    #[must_use]
    pub fn values(&self) -> &[String] {
        &self.0
    }
}

/// Where a tier keeps a value and for how long: its key, its life and the tags it is indexed
/// under (data types like `"allergies"`, and group tags). Keys and tags carry ids, never
/// names or other PHI.
///
/// ```
/// use std::time::Duration;
/// use vitals_cache::Placement;
///
/// let at = Placement::new("student:42:allergies", Duration::from_secs(300), &["allergies"]);
/// assert_eq!(at.ttl, Duration::from_secs(300));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement<'a> {
    /// The key.
    pub key: &'a str,
    /// How long the value lives.
    pub ttl: Duration,
    /// The tags it is indexed under.
    pub tags: &'a [&'a str],
}

impl<'a> Placement<'a> {
    /// `key`, kept for `ttl` under `tags`.
    #[must_use]
    pub fn new(key: &'a str, ttl: Duration, tags: &'a [&'a str]) -> Self {
        Self { key, ttl, tags }
    }
}

/// What a write of a value to Redis did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))] // made by the Redis tier only
pub(crate) enum Written {
    /// Stored.
    Stored,
    /// Not stored: a generation moved since it was read, the value may be stale.
    Stale,
    /// Not stored: its group's set is in another cluster slot, so it is kept out of Redis
    /// (the value is not stale: L1 may hold it).
    Misplaced,
}

/// One level of cache holding serialised values (plaintext bytes) by key.
///
/// Implemented by [`L1Cache`](crate::L1Cache) (in process) and, with the `redis` feature,
/// `RedisTier` (which encodes what it writes). Keys carry ids, never names or other PHI.
///
/// What [`TieredCache`](crate::TieredCache) asks of its shared tier is exactly this
/// trait: reads with the remaining TTL ([`Tier::get_with_ttl`]), writes (plain, or a
/// loader's result with [`Tier::generations`] and [`Tier::set_if_unchanged`]), deletes
/// and tag invalidations. A shared tier tells the other instances of each write, delete
/// and invalidation itself, so that they drop their L1 copies. The provided methods suit
/// a tier that knows no remaining TTL and keeps no generations.
pub trait Tier: Send + Sync {
    /// The value of `key`, if present.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Arc<[u8]>>, CacheError>> + Send;

    /// Stores `value` under `at.key` for `at.ttl`, indexed under `at.tags`.
    fn set(
        &self,
        at: Placement<'_>,
        value: Arc<[u8]>,
    ) -> impl Future<Output = Result<(), CacheError>> + Send;

    /// Removes `key`; true if it was present.
    fn delete(&self, key: &str) -> impl Future<Output = Result<bool, CacheError>> + Send;

    /// Removes `keys`; returns how many were present.
    fn delete_many(&self, keys: &[&str]) -> impl Future<Output = Result<u64, CacheError>> + Send;

    /// Removes every entry indexed under `tag`; returns their keys.
    fn invalidate_tag(
        &self,
        tag: &str,
    ) -> impl Future<Output = Result<Vec<String>, CacheError>> + Send;

    /// The value of `key` and how long it still lives in this tier (`None`: not known),
    /// so a copy kept closer lives no longer.
    #[allow(clippy::type_complexity)] // spelled out so implementors see what to return
    fn get_with_ttl(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<(Arc<[u8]>, Option<Duration>)>, CacheError>> + Send
    {
        async move { Ok(self.get(key).await?.map(|v| (v, None))) }
    }

    /// The generations of `key` and of `tags` now, read before a load.
    fn generations(
        &self,
        key: &str,
        tags: &[&str],
    ) -> impl Future<Output = Result<Generations, CacheError>> + Send {
        let _ = (key, tags);
        async { Ok(Generations::default()) }
    }

    /// Stores `value` as [`Tier::set`] does, but only if no write, delete or invalidation
    /// of `at.key` or of `at.tags` moved their generations from `since`; returns whether it
    /// stored. A tier that keeps no generations always stores.
    fn set_if_unchanged(
        &self,
        at: Placement<'_>,
        value: Arc<[u8]>,
        since: &Generations,
    ) -> impl Future<Output = Result<bool, CacheError>> + Send {
        let _ = since;
        async move { self.set(at, value).await.map(|()| true) }
    }
}
