//! Errors of the cache.

use vitals_env::ConfigError;

/// An error of the cache.
///
/// The [`TieredCache`](crate::TieredCache) never returns Redis errors to its
/// callers (it falls back to L1 and the loader); these errors come from the
/// tiers used directly, from configuration and from encoding.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Redis answered with an error or the connection failed.
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis did not answer within the configured timeout.
    #[error("redis did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The circuit breaker is open: Redis is skipped until the cool-down ends.
    #[error("circuit breaker open: redis skipped")]
    BreakerOpen,
    /// No Redis connection is established (yet).
    #[error("redis not connected")]
    NotConnected,
    /// A seed node of `REDIS_CLUSTER_NODES` cannot serve (named with its password masked).
    #[error("redis cluster node {node}: {problem}")]
    ClusterNode {
        /// The node's address.
        node: String,
        /// What is wrong with it.
        problem: crate::cluster_conn::ClusterNodeProblem,
    },
    /// A value could not be serialised or deserialised.
    #[error("value (de)serialisation failed: {0}")]
    Serde(#[from] serde_json::Error),
    /// A stored payload is malformed (bad header, bad compression).
    #[error("malformed cached payload: {0}")]
    Decode(&'static str),
    /// A payload could not be encrypted or decrypted (wrong key, tampering).
    #[error("encryption failed: {0}")]
    Crypto(String),
}
