//! What the Redis tier knows of a cluster and how it connects to one: its seed nodes (each
//! checked at connection with a clear error), the cluster client they make, its masters and
//! their slots (to send one pipeline per master), and the node its invalidation subscription
//! is on. The connection type of both modes is `conn.rs`'s.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, ErrorKind, Value};
use vitals_env::{mask_url, ConfigError, Problem};

use crate::cluster_config::{seeds, ClusterOptions};
use crate::conn::Conn;
use crate::error::{CacheError, ClusterNodeProblem};

/// A master and the slots it serves, from `CLUSTER SLOTS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlotRange {
    pub(crate) start: u16,
    pub(crate) end: u16,
    pub(crate) master: (String, u16),
    pub(crate) replicas: Vec<(String, u16)>,
}

/// The cluster's seeds and what was learnt of its topology.
pub(crate) struct Cluster {
    pub(crate) client: ClusterClient,
    pub(crate) seeds: Vec<ConnectionInfo>,
    ca_pem: Option<Vec<u8>>,
    /// The masters and their slots, as last read.
    slots: RwLock<Arc<Vec<SlotRange>>>,
    /// Rotates the node the invalidation subscription is made on.
    next_subscription: AtomicUsize,
}

/// The single node's client or the cluster's.
pub(crate) enum Client {
    Single(redis::Client),
    Cluster(Box<Cluster>),
}

fn addr_of(info: &ConnectionInfo) -> String {
    match &info.addr {
        ConnectionAddr::Tcp(h, p)
        | ConnectionAddr::TcpTls {
            host: h, port: p, ..
        } => {
            format!("{h}:{p}")
        }
        ConnectionAddr::Unix(path) => path.display().to_string(),
    }
}

/// A seed's address with its scheme, masked user information left out, for errors and logs.
pub(crate) fn shown(info: &ConnectionInfo) -> String {
    let scheme = match info.addr {
        ConnectionAddr::TcpTls { .. } => "rediss",
        _ => "redis",
    };
    mask_url(&format!("{scheme}://{}", addr_of(info)))
}

/// `info` for another node of the same cluster: same scheme, user and password.
fn at(info: &ConnectionInfo, host: &str, port: u16) -> ConnectionInfo {
    let addr = match &info.addr {
        ConnectionAddr::TcpTls { insecure, .. } => ConnectionAddr::TcpTls {
            host: host.to_owned(),
            port,
            insecure: *insecure,
            tls_params: None,
        },
        _ => ConnectionAddr::Tcp(host.to_owned(), port),
    };
    ConnectionInfo {
        addr,
        redis: info.redis.clone(),
    }
}

impl Cluster {
    pub(crate) fn new(
        client: ClusterClient,
        seeds: Vec<ConnectionInfo>,
        ca_pem: Option<Vec<u8>>,
    ) -> Self {
        Self {
            client,
            seeds,
            ca_pem,
            slots: RwLock::new(Arc::new(Vec::new())),
            next_subscription: AtomicUsize::new(0),
        }
    }

    /// A plain client of one node (a seed, or a node learnt from the slots).
    fn node_client(&self, info: ConnectionInfo) -> redis::RedisResult<redis::Client> {
        match &self.ca_pem {
            Some(pem) if matches!(info.addr, ConnectionAddr::TcpTls { .. }) => {
                redis::Client::build_with_tls(
                    info,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem.clone()),
                    },
                )
            }
            _ => redis::Client::open(info),
        }
    }

    /// Checks one seed: reachable, the password accepted, in cluster mode, its cluster ok.
    async fn check_seed(
        &self,
        info: &ConnectionInfo,
        timeout: Duration,
    ) -> Result<(), ClusterNodeProblem> {
        let client = self
            .node_client(info.clone())
            .map_err(|e| ClusterNodeProblem::Unreachable(e.to_string()))?;
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout);
        let connect = client.get_multiplexed_async_connection_with_config(&cfg);
        let mut conn: MultiplexedConnection = match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(classify(&e)),
            Err(_) => {
                return Err(ClusterNodeProblem::Unreachable(format!(
                    "no answer in {timeout:?}"
                )))
            }
        };
        let info: String = match tokio::time::timeout(
            timeout,
            redis::cmd("CLUSTER").arg("INFO").query_async(&mut conn),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(classify(&e)),
            Err(_) => {
                return Err(ClusterNodeProblem::Unreachable(format!(
                    "no answer in {timeout:?}"
                )))
            }
        };
        let state = info
            .lines()
            .find_map(|l| l.strip_prefix("cluster_state:"))
            .map_or("unknown", str::trim);
        if state == "ok" {
            Ok(())
        } else {
            Err(ClusterNodeProblem::ClusterNotOk(state.to_owned()))
        }
    }

    /// Checks every seed (concurrently), then connects the cluster client. A seed with a
    /// wrong password or not in cluster mode is an error (the list is wrong); unreachable
    /// seeds are logged and passed over while one answers.
    pub(crate) async fn connect(&self, timeout: Duration) -> Result<ClusterConnection, CacheError> {
        let checks =
            futures::future::join_all(self.seeds.iter().map(|s| self.check_seed(s, timeout))).await;
        let mut reachable = 0usize;
        let mut first_unreachable = None;
        for (seed, check) in self.seeds.iter().zip(checks) {
            match check {
                Ok(()) => reachable += 1,
                Err(p @ ClusterNodeProblem::Unreachable(_)) => {
                    tracing::warn!(target: "vitals_cache", node = %shown(seed), problem = %p, "redis cluster seed node unreachable");
                    first_unreachable.get_or_insert((shown(seed), p));
                }
                Err(problem) => {
                    return Err(CacheError::ClusterNode {
                        node: shown(seed),
                        problem,
                    })
                }
            }
        }
        if reachable == 0 {
            if let Some((node, problem)) = first_unreachable {
                return Err(CacheError::ClusterNode { node, problem });
            }
        }
        let conn = tokio::time::timeout(timeout * 3, self.client.get_async_connection())
            .await
            .map_err(|_| CacheError::Timeout(timeout * 3))??;
        Ok(conn)
    }

    /// A new connection to the cluster: seeds checked, slots read, scripts loaded.
    pub(crate) async fn open(&self, timeout: Duration) -> Result<Conn, CacheError> {
        let mut conn = self.connect(timeout).await?;
        self.refresh_slots(&mut conn, None).await?;
        let mut conn = Conn::Cluster(conn);
        crate::scripts::load_all(&mut conn).await?;
        Ok(conn)
    }

    /// Reads the masters and their slots through `conn` and keeps them; returns whether a
    /// range changed master since the last read (a failover, a resharding).
    ///
    /// Asks the node at `at`, or any node the client picks.
    pub(crate) async fn refresh_slots(
        &self,
        conn: &mut ClusterConnection,
        at: Option<(String, u16)>,
    ) -> Result<bool, CacheError> {
        let routing = RoutingInfo::SingleNode(match at {
            Some((host, port)) => SingleNodeRoutingInfo::ByAddress { host, port },
            None => SingleNodeRoutingInfo::Random,
        });
        let v = conn
            .route_command(redis::cmd("CLUSTER").arg("SLOTS"), routing)
            .await?;
        let mut slots = parse_slots(&v).ok_or(CacheError::Decode("CLUSTER SLOTS reply"))?;
        slots.sort_by_key(|r| r.start);
        let masters = |s: &[SlotRange]| -> Vec<(u16, u16, (String, u16))> {
            s.iter()
                .map(|r| (r.start, r.end, r.master.clone()))
                .collect()
        };
        let mut held = crate::poison::write(&self.slots);
        let changed = !held.is_empty() && masters(&held) != masters(&slots);
        *held = Arc::new(slots);
        Ok(changed)
    }

    /// The masters and their slots, as last read (empty before the first read).
    pub(crate) fn slots(&self) -> Arc<Vec<SlotRange>> {
        crate::poison::read(&self.slots).clone()
    }

    /// The master serving `slot`, as last read.
    pub(crate) fn master_of(&self, slot: u16) -> Option<(String, u16)> {
        self.slots()
            .iter()
            .find(|r| r.start <= slot && slot <= r.end)
            .map(|r| r.master.clone())
    }

    /// The replicas of the master serving `slot`, as last read.
    pub(crate) fn replicas_of(&self, slot: u16) -> usize {
        self.slots()
            .iter()
            .find(|r| r.start <= slot && slot <= r.end)
            .map_or(0, |r| r.replicas.len())
    }

    /// Clients of every master learnt from the slots, one subscription each: the cache's
    /// scripts publish on the master of the entry's slot, and a subscriber on that master
    /// hears it straight away, while the copy a cluster forwards to its other nodes crosses
    /// the cluster bus, whose links Redis 7.0 opens without `TCP_NODELAY` (a ~40 ms tail
    /// under Nagle and delayed ACKs). An empty list when no slot is known yet.
    pub(crate) fn master_clients(&self) -> redis::RedisResult<Vec<redis::Client>> {
        let Some(template) = self.seeds.first() else {
            return Ok(Vec::new());
        };
        let mut masters: Vec<(String, u16)> =
            self.slots().iter().map(|r| r.master.clone()).collect();
        masters.sort();
        masters.dedup();
        masters
            .into_iter()
            .map(|(h, p)| self.node_client(at(template, &h, p)))
            .collect()
    }

    /// A client of the next node to subscribe on: the nodes learnt from the slots (masters
    /// and replicas: a cluster's `PUBLISH` reaches every node) and the seeds, in turn.
    pub(crate) fn subscription_client(&self) -> redis::RedisResult<redis::Client> {
        let template = self.seeds.first().ok_or_else(|| {
            redis::RedisError::from((ErrorKind::InvalidClientConfig, "no seed nodes"))
        })?;
        let mut nodes: Vec<ConnectionInfo> = Vec::new();
        for r in self.slots().iter() {
            for (h, p) in std::iter::once(&r.master).chain(&r.replicas) {
                nodes.push(at(template, h, *p));
            }
        }
        nodes.extend(self.seeds.iter().cloned());
        let i = self.next_subscription.fetch_add(1, Ordering::Relaxed) % nodes.len();
        self.node_client(nodes.swap_remove(i))
    }
}

/// The problem an error of a seed's connection or `CLUSTER INFO` shows.
fn classify(e: &redis::RedisError) -> ClusterNodeProblem {
    let text = e.to_string();
    if e.kind() == ErrorKind::AuthenticationFailed
        || text.contains("WRONGPASS")
        || text.contains("NOAUTH")
        || text.contains("invalid password")
    {
        ClusterNodeProblem::WrongPassword
    } else if text.contains("cluster support disabled") {
        ClusterNodeProblem::NotClusterMode
    } else {
        ClusterNodeProblem::Unreachable(text)
    }
}

/// Whether `e` is a cluster fault reply (a redirection the client could not follow in
/// time, a slot being migrated, a cluster down): counted apart from other errors.
pub(crate) fn is_cluster_fault(e: &redis::RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Moved
            | ErrorKind::Ask
            | ErrorKind::TryAgain
            | ErrorKind::ClusterDown
            | ErrorKind::CrossSlot
            | ErrorKind::MasterDown
            | ErrorKind::ClusterConnectionNotFound
    )
}

fn node_of(v: &Value) -> Option<(String, u16)> {
    let Value::Array(parts) = v else { return None };
    let host = match parts.first()? {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok()?,
        Value::SimpleString(s) => s.clone(),
        _ => return None,
    };
    let Value::Int(port) = parts.get(1)? else {
        return None;
    };
    Some((host, u16::try_from(*port).ok()?))
}

/// `CLUSTER SLOTS`: `[[start, end, [host, port, id], replicas…], …]`.
fn parse_slots(v: &Value) -> Option<Vec<SlotRange>> {
    let Value::Array(ranges) = v else { return None };
    let mut out = Vec::with_capacity(ranges.len());
    for r in ranges {
        let Value::Array(parts) = r else { return None };
        let (Some(Value::Int(start)), Some(Value::Int(end))) = (parts.first(), parts.get(1)) else {
            return None;
        };
        let master = node_of(parts.get(2)?)?;
        let replicas = parts.iter().skip(3).filter_map(node_of).collect();
        out.push(SlotRange {
            start: u16::try_from(*start).ok()?,
            end: u16::try_from(*end).ok()?,
            master,
            replicas,
        });
    }
    Some(out)
}

/// The seed nodes' connection information (checked by the configuration's validation).
pub(crate) fn seed_infos(options: &ClusterOptions) -> Result<Vec<ConnectionInfo>, CacheError> {
    seeds(&options.nodes).map_err(|bad| {
        let problems = bad
            .into_iter()
            .map(|(n, expected)| {
                Problem::new(
                    "cache",
                    "REDIS_CLUSTER_NODES",
                    Some(format!("node {n} {}", mask_url(&options.nodes[n - 1]))),
                    expected,
                )
            })
            .collect();
        CacheError::Config(ConfigError::new(problems))
    })
}

/// The cluster client of `seeds`, trusting `ca_pem` for `rediss://` nodes when given, with
/// the first node's ACL user and password for every node, and these connect and command
/// timeouts.
pub(crate) fn client(
    seeds: &[ConnectionInfo],
    ca_pem: Option<Vec<u8>>,
    connect_timeout: Duration,
    response_timeout: Duration,
) -> Result<ClusterClient, CacheError> {
    let mut builder = ClusterClientBuilder::new(seeds.to_vec())
        .connection_timeout(connect_timeout)
        .response_timeout(response_timeout)
        // Redirections (MOVED, ASK) and TRYAGAIN are retried within the command's timeout.
        .retries(3)
        .min_retry_wait(5)
        .max_retry_wait(50);
    if let Some(first) = seeds.first() {
        if let Some(user) = &first.redis.username {
            builder = builder.username(user.clone());
        }
        if let Some(pw) = &first.redis.password {
            builder = builder.password(pw.clone());
        }
    }
    if let Some(pem) = ca_pem {
        builder = builder.certs(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        });
    }
    builder.build().map_err(|e| {
        let problem = Problem::new(
            "cache",
            "REDIS_CLUSTER_NODES",
            None,
            format!("seed nodes the cluster client accepts ({e})"),
        );
        CacheError::Config(ConfigError::one(problem))
    })
}
