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

mod admission;
mod breaker;
mod clock;
mod cluster_config;
mod cluster_conn;
mod cluster_ops;
pub mod codec;
mod coherence;
mod config;
mod conn;
mod env;
mod error;
mod flight;
mod inner;
mod keyring;
mod l1;
mod l1_hash;
mod l1_shard;
mod layout;
mod message;
pub mod metrics;
mod redis_conn;
mod redis_ops;
mod redis_tier;
mod repair;
mod repair_queue;
mod scripts;
mod stats;
mod tier;
mod tier_counters;
mod tiered;
mod warm;

pub use breaker::BreakerState;
pub use cluster_config::ClusterOptions;
pub use codec::Codec;
pub use config::CacheConfig;
pub use error::{CacheError, ClusterNodeProblem};
pub use keyring::{EncryptionKey, Keyring};
pub use l1::L1Cache;
pub use redis_tier::RedisTier;
pub use stats::CacheStats;
pub use tier::{Generations, Tier};
pub use tiered::{TieredCache, TieredCacheBuilder};
/// The configuration error and its problems are `vitals-env`'s, shared by every vitals
/// crate; `mask_url` is its URL masking (the password of the user information and of a
/// `password=` query parameter).
pub use vitals_env::{mask_url, ConfigError, Problem as ConfigProblem};
pub use warm::{WarmEntry, WarmError, WarmScheduler, WarmSummary, Warmer};

// The shared types cross threads: checked by every build, not only by the tests.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<(
        TieredCache,
        L1Cache,
        RedisTier,
        WarmScheduler,
        CacheError,
        CacheStats,
    )>();
};
