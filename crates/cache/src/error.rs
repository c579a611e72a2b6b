//! Errors of the cache, and what can be wrong with a cluster's seed node (an error's part).

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
    #[cfg(feature = "redis")]
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
    #[cfg(feature = "redis")]
    #[error("redis cluster node {node}: {problem}")]
    ClusterNode {
        /// The node's address.
        node: String,
        /// What is wrong with it.
        problem: ClusterNodeProblem,
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

/// Why a seed node cannot serve: each is a clear error when the tier connects.
#[cfg(feature = "redis")]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterNodeProblem {
    /// No connection within the connect timeout (refused, unresolvable, silent).
    #[error("unreachable ({0})")]
    Unreachable(String),
    /// The node refused the ACL user or password.
    #[error("wrong user or password")]
    WrongPassword,
    /// The node answers but is not in cluster mode (`cluster-enabled no`).
    #[error("not in cluster mode (cluster-enabled no): use REDIS_URL for a single node")]
    NotClusterMode,
    /// The node is in a cluster that cannot serve (`cluster_state` not `ok`).
    #[error("cluster_state is {0}, not ok")]
    ClusterNotOk(String),
}

/// What a variable naming Redis expects in a build without the `redis` feature: a
/// configuration that asks for Redis is refused, not run on L1 alone in silence (the other
/// instances' writes would never reach this one's L1).
#[cfg(not(feature = "redis"))]
pub(crate) const NO_REDIS_FEATURE: &str =
    "unset: vitals-cache is built without its `redis` feature (L1 only)";
