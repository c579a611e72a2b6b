//! A two-tier cache for health data: a bounded in-process cache of decoded values (L1:
//! recency order behind a TinyLFU admission) over
//! Redis (L2), kept coherent across instances by pub/sub invalidations, with
//! single-flight loads, tags and groups, a circuit breaker that keeps the
//! service up when Redis is down, lz4 compression of large payloads and
//! AES-256-GCM encryption of everything written to Redis.
//!
//! It caches serialisable values by key; it does not know what the values
//! are, which queries produce them (the loader and the [`Warmer`] do), or
//! where its statistics are exposed (the application's endpoints do). Keys
//! and tags must carry ids, never names or other PHI: they are stored and
//! broadcast in the clear.
//!
//! # Features
//!
//! - `redis` (default): the shared tier (`RedisTier` on one node or a Redis Cluster), the
//!   pub/sub coherence, the circuit breaker, TLS and the payload codec. Without it the crate
//!   is an L1-only cache: [`TieredCache`] over [`L1Cache`] and the loader (single flight,
//!   tags, groups, warming, stats), with no Redis client, no rustls and no background task;
//!   a configuration naming Redis (`REDIS_URL`, `REDIS_HOST`..., `REDIS_CLUSTER_NODES`, or
//!   [`CacheConfig::with_redis_url`]) is then a [`CacheError::Config`], never dropped in
//!   silence.
//! - `metrics`: get latency per tier, hits, misses, loads and breaker transitions through the
//!   `metrics` facade ([`metrics`]).
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use vitals_cache::{CacheConfig, CacheError, TieredCache};
//!
//! # async fn example() -> Result<(), CacheError> {
//! let cache = TieredCache::builder(CacheConfig::from_env()?).build().await?;
//! let student = "4f1c";
//! let allergies: std::sync::Arc<Vec<String>> = cache
//!     .get_or_load(
//!         &format!("student:{student}:allergies"),
//!         Duration::from_secs(600),
//!         &["allergies", &TieredCache::group_tag(student)],
//!         || async { Ok::<_, CacheError>(vec!["peanut".to_owned()]) },
//!     )
//!     .await?;
//! # let _ = allergies;
//! // An allergy changed: every instance drops the student's entries.
//! cache.invalidate_group(student).await;
//! cache.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

// Always: L1, the tiered cache over it, configuration, warming, statistics.
mod admission;
mod clock;
mod cluster_config;
mod config;
mod env;
mod epochs;
mod error;
mod fail_safe;
mod fetch;
mod flight;
mod fraction;
mod inner;
mod keyring;
mod l1;
mod l1_hash;
mod l1_key;
mod l1_shard;
mod load;
pub mod metrics;
mod poison;
mod stats;
mod striped;
mod tier;
mod tiered;
mod warm;

// The shared tier (feature `redis`): Redis, a cluster, coherence, the payload codec.
#[cfg(feature = "redis")]
mod arrivals;
#[cfg(feature = "redis")]
mod breaker;
#[cfg(feature = "redis")]
mod cluster_conn;
#[cfg(feature = "redis")]
mod cluster_ops;
#[cfg(feature = "redis")]
pub mod codec;
#[cfg(feature = "redis")]
mod coherence;
#[cfg(feature = "redis")]
mod conn;
#[cfg(feature = "redis")]
mod layout;
#[cfg(feature = "redis")]
mod load_lock;
#[cfg(feature = "redis")]
mod message;
#[cfg(feature = "redis")]
mod redis_conn;
#[cfg(feature = "redis")]
mod redis_ops;
#[cfg(feature = "redis")]
mod redis_tier;
#[cfg(feature = "redis")]
mod repair;
#[cfg(feature = "redis")]
mod repair_queue;
#[cfg(feature = "redis")]
mod scripts;
#[cfg(feature = "redis")]
mod tier_counters;
// Without it: the stand-in that keeps the cache's shared tier always absent.
#[cfg(not(feature = "redis"))]
mod no_redis;

pub use cluster_config::ClusterOptions;
#[cfg(feature = "redis")]
pub use codec::Codec;
pub use config::CacheConfig;
pub use error::CacheError;
#[cfg(feature = "redis")]
pub use error::ClusterNodeProblem;
pub use fail_safe::{LoadOptions, Loaded};
pub use keyring::{EncryptionKey, Keyring};
pub use l1::L1Cache;
#[cfg(feature = "redis")]
pub use redis_tier::RedisTier;
pub use stats::{BreakerState, CacheStats};
pub use tier::{Generations, Placement, Tier};
pub use tiered::{TieredCache, TieredCacheBuilder};
/// The configuration error and its problems are `vitals-env`'s, shared by every vitals
/// crate; `mask_url` is its URL masking (the password of the user information and of a
/// `password=` query parameter).
pub use vitals_env::{mask_url, ConfigError, Problem as ConfigProblem};
pub use warm::{WarmEntry, WarmError, WarmScheduler, WarmSummary, Warmer};

// The shared types cross threads: checked by every build, not only by the tests.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<(TieredCache, L1Cache, WarmScheduler, CacheError, CacheStats)>();
    #[cfg(feature = "redis")]
    send_sync::<RedisTier>();
};
