//! The cache's Redis Cluster settings: the seed nodes (`REDIS_CLUSTER_NODES`), how writes wait
//! for a replica, their reading from the environment and their checks. The cluster client
//! they make is `cluster_conn.rs`'s.

use std::time::Duration;

#[cfg(feature = "redis")]
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo as _};
use vitals_env::{mask_url, Env, Problems};

/// The Redis Cluster the shared tier runs on, if any
/// ([`CacheConfig::redis_cluster`](crate::CacheConfig::redis_cluster)).
///
/// With seed nodes, the tier talks to the cluster through the redis crate's async cluster
/// client (following `MOVED`/`ASK` and failovers) and lays keys out so every script touches
/// one slot (docs/cache.md, "Redis Cluster"). Without, it is the single node of
/// [`CacheConfig::redis_url`](crate::CacheConfig::redis_url).
///
/// ```
/// use vitals_cache::CacheConfig;
///
/// let config = CacheConfig::default().with_cluster_nodes([
///     "redis://cache:pw@10.0.0.1:7000",
///     "redis://cache:pw@10.0.0.2:7000",
/// ]);
/// assert!(config.uses_redis());
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct ClusterOptions {
    /// Seed nodes (`redis://` or `rediss://` URLs, one ACL user and password for all: a node
    /// given without them takes the first node's); empty: no cluster.
    pub nodes: Vec<String>,
    /// Replicas a write waits for (`WAIT`, in the write's own round trip), so a failover
    /// does not lose a write, its generation or its invalidation (`REDIS_CLUSTER_WAIT_REPLICAS`,
    /// default 1; 0 for a cluster without replicas).
    pub wait_replicas: u32,
    /// The longest a write waits for them (`REDIS_CLUSTER_WAIT_MS`, default 10 ms); a write
    /// not acknowledged in time is counted, not failed. A master whose replica is gone is
    /// not waited on.
    pub wait_timeout: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            nodes: Vec::new(),
            wait_replicas: 1,
            wait_timeout: Duration::from_millis(10),
        }
    }
}

impl std::fmt::Debug for ClusterOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nodes: Vec<String> = self.nodes.iter().map(|n| mask_url(n)).collect();
        f.debug_struct("ClusterOptions")
            .field("nodes", &nodes)
            .field("wait_replicas", &self.wait_replicas)
            .field("wait_timeout", &self.wait_timeout)
            .finish()
    }
}

/// The connection information of each seed node, or what is wrong with each bad one (its
/// 1-based position and what was expected).
#[cfg(feature = "redis")]
pub(crate) fn seeds(nodes: &[String]) -> Result<Vec<ConnectionInfo>, Vec<(usize, String)>> {
    let mut infos: Vec<(usize, ConnectionInfo)> = Vec::new();
    let mut bad = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let n = i + 1;
        if !(node.starts_with("redis://") || node.starts_with("rediss://")) {
            bad.push((n, "a redis:// or rediss:// URL".to_owned()));
            continue;
        }
        match node.as_str().into_connection_info() {
            Ok(info) => infos.push((n, info)),
            Err(e) => bad.push((n, format!("a redis URL ({e})"))),
        }
    }
    if let Some((_, first)) = infos.first().cloned() {
        for (n, info) in infos.iter().skip(1) {
            let creds = info.redis.username.is_some() || info.redis.password.is_some();
            if creds
                && (info.redis.username != first.redis.username
                    || info.redis.password != first.redis.password)
            {
                bad.push((
                    *n,
                    "the first node's ACL user and password (a cluster has one ACL)".to_owned(),
                ));
            }
            if is_tls(&info.addr) != is_tls(&first.addr) {
                bad.push((*n, "the first node's scheme (all TLS or none)".to_owned()));
            }
        }
    }
    bad.sort_by_key(|(n, _)| *n);
    if bad.is_empty() {
        Ok(infos.into_iter().map(|(_, info)| info).collect())
    } else {
        Err(bad)
    }
}

#[cfg(feature = "redis")]
fn is_tls(addr: &ConnectionAddr) -> bool {
    matches!(addr, ConnectionAddr::TcpTls { .. })
}

/// The problems of the cluster settings, named by their variables; none without nodes.
/// `single_node`: a single node's URL is configured too; `key_prefix`: the keys' prefix.
#[cfg(feature = "redis")]
pub(crate) fn validate(
    options: &ClusterOptions,
    single_node: bool,
    key_prefix: &str,
    problems: &mut Problems,
) {
    let nodes = &options.nodes;
    if nodes.is_empty() {
        return;
    }
    if single_node {
        problems.relation(
            "REDIS_CLUSTER_NODES",
            "either REDIS_URL (one node) or REDIS_CLUSTER_NODES (a cluster), not both",
        );
    }
    if let Err(bad) = seeds(nodes) {
        for (n, expected) in bad {
            problems.bad(
                "REDIS_CLUSTER_NODES",
                format_args!("node {n} {}", vitals_env::mask_bad_url(&nodes[n - 1])),
                expected,
            );
        }
    }
    if key_prefix.contains(['{', '}']) {
        problems.bad(
            "CACHE_KEY_PREFIX",
            key_prefix,
            "no '{' or '}' on a cluster (they would choose the keys' slot)",
        );
    }
}

/// Without the `redis` feature, seed nodes are a problem of their own: there is no cluster
/// client to use them.
#[cfg(not(feature = "redis"))]
pub(crate) fn validate(
    options: &ClusterOptions,
    _single_node: bool,
    _key_prefix: &str,
    problems: &mut Problems,
) {
    if !options.nodes.is_empty() {
        problems.relation("REDIS_CLUSTER_NODES", crate::error::NO_REDIS_FEATURE);
    }
}

/// Reads `REDIS_CLUSTER_NODES` (comma-separated URLs), `REDIS_CLUSTER_WAIT_REPLICAS` and
/// `REDIS_CLUSTER_WAIT_MS`; the nodes are checked with the rest of the configuration.
pub(crate) fn read(env: &mut Env<'_>) -> ClusterOptions {
    let mut options = ClusterOptions::default();
    if let Some(list) = env.string("REDIS_CLUSTER_NODES") {
        options.nodes = list
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect();
    }
    if let Some(n) = env.whole::<u32>("REDIS_CLUSTER_WAIT_REPLICAS", 0..=16) {
        options.wait_replicas = n;
    }
    if let Some(t) = env.millis("REDIS_CLUSTER_WAIT_MS", 1) {
        options.wait_timeout = t;
    }
    options
}

#[cfg(feature = "redis")] // the tests read nodes, refused without the feature
#[cfg(test)]
mod tests {
    use vitals_env::pairs as env;

    use crate::config::CacheConfig;

    #[test]
    fn cluster_nodes_are_read_and_the_single_node_stays_the_default() {
        let c = CacheConfig::from_env_with(|_| None).unwrap();
        assert!(!c.uses_cluster() && c.redis_cluster.nodes.is_empty());
        let c = CacheConfig::from_env_with(env(&[(
            "REDIS_CLUSTER_NODES",
            "redis://app:pw@10.0.0.1:7000, redis://10.0.0.2:7001,",
        )]))
        .unwrap();
        assert_eq!(c.redis_cluster.nodes.len(), 2);
        assert!(c.uses_cluster() && c.uses_redis() && c.refuses_plaintext());
        let dbg = format!("{c:?}");
        assert!(!dbg.contains(":pw@"), "{dbg}");
    }

    #[test]
    fn bad_nodes_are_named_by_position_without_their_password() {
        let err = CacheConfig::from_env_with(env(&[(
            "REDIS_CLUSTER_NODES",
            "redis://app:s3cret@h1:7000,http://h2:7000,redis://other:s3cret@h3:7000,rediss://h4:7000",
        )]))
        .unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.variables(), ["REDIS_CLUSTER_NODES"; 3], "{msg}");
        assert!(!msg.contains("s3cret"), "{msg}");
        for n in ["node 2", "node 3", "node 4"] {
            assert!(msg.contains(n), "{msg}");
        }
        let both = CacheConfig::from_env_with(env(&[
            ("REDIS_URL", "redis://h:1/0"),
            ("REDIS_CLUSTER_NODES", "redis://h1:7000"),
        ]))
        .unwrap_err();
        assert_eq!(both.variables(), ["REDIS_CLUSTER_NODES"]);
    }
}
