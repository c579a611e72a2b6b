//! The seam between [`TieredCache`](crate::TieredCache) and its tiers.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::error::CacheError;

/// One level of cache holding serialised values (plaintext bytes) by key.
///
/// Implemented by [`L1Cache`](crate::L1Cache) (in process) and
/// [`RedisTier`](crate::RedisTier) (which encodes what it writes). Keys carry
/// ids, never names or other PHI.
pub trait Tier: Send + Sync {
    /// The value of `key`, if present.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Arc<[u8]>>, CacheError>> + Send;

    /// Stores `value` under `key` for `ttl`, indexed under `tags`.
    fn set(
        &self,
        key: &str,
        value: Arc<[u8]>,
        ttl: Duration,
        tags: &[&str],
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
}
