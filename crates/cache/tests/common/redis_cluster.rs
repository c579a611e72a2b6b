//! A Redis Cluster of the test's own: six `redis-server --cluster-enabled yes` on free
//! loopback ports (their node files in a tempdir), joined by `redis-cli --cluster create
//! --cluster-replicas 1 --cluster-yes` into three masters with a replica each, an ACL user
//! for the cache on every node; each server killed by its pid on drop (also on panic).
#![allow(dead_code)]

use std::process::Stdio;
use std::time::Duration;

use super::redis_server::{eventually, RedisProcess};

/// The password of the `default` user (redis-cli and replication use it).
const ADMIN_PASSWORD: &str = "admin-pw";
/// The ACL user the cache connects as.
pub const USER: &str = "vitals";
/// Its password.
pub const PASSWORD: &str = "vitals-pw";

/// One node: its port and its process (`None` once killed).
struct Node {
    port: u16,
    process: Option<RedisProcess>,
}

/// A running cluster of three masters and three replicas.
pub struct TestCluster {
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

/// A port that is free with its cluster bus port (`port + 10000`), from 20000–29999.
fn free_pair() -> u16 {
    for _ in 0..1000 {
        let port = 20_000 + rand::random::<u16>() % 10_000;
        let a = std::net::TcpListener::bind(("127.0.0.1", port));
        let b = std::net::TcpListener::bind(("127.0.0.1", port + 10_000));
        if a.is_ok() && b.is_ok() {
            return port;
        }
    }
    panic!("no free port pair for a cluster node");
}

/// A plain connection to one node as the admin.
pub async fn admin(port: u16) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let url = format!("redis://:{ADMIN_PASSWORD}@127.0.0.1:{port}");
    redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await
}

/// The node says `cluster_state:ok` and, if it is a replica, is in sync with its master
/// (a replica that never synced cannot take over).
async fn cluster_ok(port: u16) -> bool {
    let Ok(mut c) = admin(port).await else {
        return false;
    };
    let info: redis::RedisResult<String> =
        redis::cmd("CLUSTER").arg("INFO").query_async(&mut c).await;
    if !info.is_ok_and(|i| i.contains("cluster_state:ok")) {
        return false;
    }
    let repl: redis::RedisResult<String> = redis::cmd("INFO")
        .arg("replication")
        .query_async(&mut c)
        .await;
    repl.is_ok_and(|r| !r.contains("role:slave") || r.contains("master_link_status:up"))
}

/// `CLUSTER NODES` as node `port` sees it, for a failure's message.
async fn nodes_text(port: u16) -> String {
    match admin(port).await {
        Ok(mut c) => redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut c)
            .await
            .unwrap_or_default(),
        Err(e) => e.to_string(),
    }
}

/// `redis-cli --cluster <args>` as the admin, to its end; panics if it fails.
async fn redis_cli(args: &[String]) {
    let out = tokio::process::Command::new("redis-cli")
        .args(["-a", ADMIN_PASSWORD, "--no-auth-warning", "--cluster"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("redis-cli on PATH");
    assert!(
        out.status.success(),
        "redis-cli --cluster {args:?}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

impl TestCluster {
    /// Starts the six servers, creates the cluster, adds the ACL user and waits until every
    /// node says `cluster_state:ok`.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        for _ in 0..6 {
            let port = free_pair();
            let conf = dir.path().join(format!("nodes-{port}.conf"));
            let process = RedisProcess::spawn([
                "--port".to_owned(),
                port.to_string(),
                "--cluster-enabled".to_owned(),
                "yes".to_owned(),
                "--cluster-config-file".to_owned(),
                conf.display().to_string(),
                "--cluster-node-timeout".to_owned(),
                "1000".to_owned(),
                "--dir".to_owned(),
                dir.path().display().to_string(),
                "--requirepass".to_owned(),
                ADMIN_PASSWORD.to_owned(),
                "--masterauth".to_owned(),
                ADMIN_PASSWORD.to_owned(),
            ]);
            nodes.push(Node {
                port,
                process: Some(process),
            });
        }
        for n in &nodes {
            let port = n.port;
            let up = eventually(Duration::from_secs(10), || async move {
                admin(port).await.is_ok()
            })
            .await;
            assert!(up, "cluster node {port} did not start");
            // The cache's ACL user, on every node (a cluster has no shared ACL).
            let mut c = admin(port).await.unwrap();
            let () = redis::cmd("ACL")
                .arg(&[
                    "SETUSER",
                    USER,
                    "on",
                    &format!(">{PASSWORD}"),
                    "~*",
                    "&*",
                    "+@all",
                ])
                .query_async(&mut c)
                .await
                .unwrap();
        }
        let mut args = vec!["create".to_owned()];
        args.extend(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)));
        args.extend(["--cluster-replicas", "1", "--cluster-yes"].map(str::to_owned));
        redis_cli(&args).await;
        let cluster = Self { nodes, _dir: dir };
        cluster.wait_ok().await;
        cluster
    }

    /// The seed URLs the cache is given, with its ACL user and password.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://{USER}:{PASSWORD}@127.0.0.1:{}", n.port))
            .collect()
    }

    /// The ports of the nodes still running.
    pub fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.process.is_some())
            .map(|n| n.port)
            .collect()
    }

    /// Waits until every running node says `cluster_state:ok` and they agree on the
    /// masters.
    pub async fn wait_ok(&self) {
        let ports = self.live_ports();
        let ok = eventually(Duration::from_secs(20), || {
            let ports = ports.clone();
            async move {
                for p in &ports {
                    if !cluster_ok(*p).await {
                        return false;
                    }
                }
                let mut views = Vec::new();
                for p in &ports {
                    views.push(self.masters_seen_by(*p).await);
                }
                views.windows(2).all(|w| w[0] == w[1]) && views[0].len() == 3
            }
        })
        .await;
        assert!(ok, "cluster not ok on every node");
    }

    /// Waits until the master on `port` (killed) is replaced by its replica on every
    /// running node, and the cluster is ok.
    pub async fn wait_failover(&self, port: u16) {
        let ports = self.live_ports();
        let replaced = eventually(Duration::from_secs(20), || {
            let ports = ports.clone();
            async move {
                for p in &ports {
                    let masters = self.masters_seen_by(*p).await;
                    if masters.len() != 3 || masters.iter().any(|(m, _)| *m == port) {
                        return false;
                    }
                }
                true
            }
        })
        .await;
        assert!(
            replaced,
            "no replica took over from {port}:\n{}",
            nodes_text(ports[0]).await
        );
        self.wait_ok().await;
    }

    /// The masters (port, id, serving slots) that node `port` sees, sorted by port.
    async fn masters_seen_by(&self, port: u16) -> Vec<(u16, String)> {
        let Ok(mut c) = admin(port).await else {
            return Vec::new();
        };
        let Ok(text) = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async::<String>(&mut c)
            .await
        else {
            return Vec::new();
        };
        let mut masters: Vec<(u16, String)> = text
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                let flags = *f.get(2)?;
                let serving = f.len() > 8;
                (flags.contains("master") && !flags.contains("fail") && serving).then(|| {
                    let addr = f[1].split('@').next().unwrap_or("");
                    let p = addr.rsplit(':').next()?.parse().ok()?;
                    Some((p, f[0].to_owned()))
                })?
            })
            .collect();
        masters.sort();
        masters
    }

    /// The masters (port, node id), as a running node sees them.
    pub async fn masters(&self) -> Vec<(u16, String)> {
        self.masters_seen_by(self.live_ports()[0]).await
    }

    /// The port of the master serving `key` (its slot by `CLUSTER KEYSLOT`).
    pub async fn master_of(&self, key: &str) -> u16 {
        let mut c = admin(self.live_ports()[0]).await.unwrap();
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut c)
            .await
            .unwrap();
        let shards: redis::Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut c)
            .await
            .unwrap();
        let redis::Value::Array(ranges) = shards else {
            panic!("CLUSTER SLOTS: {shards:?}")
        };
        for r in ranges {
            let redis::Value::Array(parts) = r else {
                continue;
            };
            let (redis::Value::Int(a), redis::Value::Int(b)) = (&parts[0], &parts[1]) else {
                continue;
            };
            if (*a..=*b).contains(&i64::from(slot)) {
                let redis::Value::Array(master) = &parts[2] else {
                    continue;
                };
                let redis::Value::Int(port) = master[1] else {
                    continue;
                };
                return u16::try_from(port).unwrap();
            }
        }
        panic!("slot {slot} not served");
    }

    /// Kills the node on `port` (SIGKILL, by its pid).
    pub fn kill(&mut self, port: u16) {
        for n in &mut self.nodes {
            if n.port == port {
                n.process = None;
            }
        }
    }

    /// `redis-cli --cluster reshard`: moves `slots` slots from the master on `from` to the
    /// master on `to`, with their keys.
    pub async fn reshard(&self, from: u16, to: u16, slots: u32) {
        let masters = self.masters().await;
        let id = |port: u16| {
            masters
                .iter()
                .find(|(p, _)| *p == port)
                .map(|(_, id)| id.clone())
                .unwrap()
        };
        redis_cli(&[
            "reshard".to_owned(),
            format!("127.0.0.1:{from}"),
            "--cluster-from".to_owned(),
            id(from),
            "--cluster-to".to_owned(),
            id(to),
            "--cluster-slots".to_owned(),
            slots.to_string(),
            "--cluster-yes".to_owned(),
        ])
        .await;
    }
}
