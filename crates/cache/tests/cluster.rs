//! The cache on a real Redis Cluster of three masters and three replicas that each test
//! starts on free loopback ports (`common/redis_cluster.rs`): get, set, tags and groups; clear
//! errors at start for bad seed nodes; a master killed and a resharding under the load of 16
//! readers and writers through two instances, with no caller failing and nothing stale after.
//! Run with `cargo test -p vitals-cache --test cluster` (needs redis-server and redis-cli 7).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::redis_cluster::{admin, TestCluster};
use common::{build, eventually, free_port, pair, quick, TestRedis};
use vitals_cache::{CacheConfig, CacheError, ClusterNodeProblem, RedisTier, TieredCache};

const TTL: Duration = Duration::from_secs(600);

/// The cache on `seeds`, with quick timeouts so a failover's calls give up fast.
fn config(name: &str, seeds: Vec<String>) -> CacheConfig {
    let cluster = CacheConfig::default().with_cluster_nodes(seeds);
    quick(
        cluster,
        name,
        Duration::from_millis(500),
        (5, Duration::from_millis(200)),
    )
}

/// Every key matching `pattern` on the cluster's masters.
async fn keys_on(cluster: &TestCluster, pattern: &str) -> Vec<String> {
    let mut all = Vec::new();
    for (port, _) in cluster.masters().await {
        let mut c = admin(port).await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut c)
            .await
            .unwrap();
        all.extend(keys);
    }
    all.sort();
    all
}

fn student_key(kind: &str, i: usize) -> (String, String) {
    let group = TieredCache::group_tag(&format!("student:s{i}"));
    (format!("health:{kind}:s{i}"), group)
}

#[tokio::test]
async fn get_set_tags_and_groups_on_a_cluster_with_nothing_orphaned() {
    let cluster = TestCluster::start().await;
    let cfg = config("basic", cluster.seeds());
    let p = cfg.key_prefix.clone();
    let (a, b) = pair(cfg).await;
    let tier = a.redis().unwrap();
    assert!(tier.is_cluster() && tier.is_connected());

    // Each instance listens on every master (a master delivers what its scripts publish to
    // its own subscribers, without the cluster bus's delay): two subscribers on each.
    let channel = tier.channel().to_owned();
    let listening = eventually(Duration::from_secs(10), || {
        let (cluster, channel) = (&cluster, &channel);
        async move {
            for (port, _) in cluster.masters().await {
                let mut c = admin(port).await.unwrap();
                let (_, n): (String, u64) = redis::cmd("PUBSUB")
                    .arg("NUMSUB")
                    .arg(channel)
                    .query_async(&mut c)
                    .await
                    .unwrap();
                if n < 2 {
                    return false;
                }
            }
            true
        }
    })
    .await;
    assert!(listening, "an instance is not subscribed on every master");

    for i in 0..40 {
        for kind in ["allergies", "conditions"] {
            let (key, group) = student_key(kind, i);
            a.set(&key, format!("{kind}-{i}"), TTL, &[kind, &group])
                .await
                .unwrap();
        }
    }
    // B reads what A wrote from the cluster (B's L1 is empty): spread over every master.
    for i in 0..40 {
        let (key, _) = student_key("allergies", i);
        assert_eq!(
            b.get_cloned::<String>(&key).await.as_deref(),
            Some(&*format!("allergies-{i}"))
        );
    }
    assert_eq!(b.stats().l2_hits, 40);
    let mut masters = std::collections::BTreeSet::new();
    for i in 0..40 {
        masters.insert(
            cluster
                .master_of(&tier.data_key(&student_key("allergies", i).0))
                .await,
        );
    }
    assert_eq!(masters.len(), 3, "the entries are spread over the masters");

    // A data type across every bucket: all 40 gone, from Redis and from B's L1.
    assert_eq!(a.invalidate_tag("allergies").await, 40);
    assert!(keys_on(&cluster, &format!("{p}:*:v:health:allergies:*"))
        .await
        .is_empty());
    assert!(keys_on(&cluster, &format!("{p}:*:t:allergies"))
        .await
        .is_empty());
    let gone = eventually(Duration::from_secs(5), || async {
        b.get_cloned::<String>("health:allergies:s7")
            .await
            .is_none()
    })
    .await;
    assert!(gone, "B's L1 still serves an invalidated entry");

    // One student's group: its one bucket.
    let (key, _) = student_key("conditions", 3);
    assert_eq!(
        b.get_cloned::<String>(&key).await.as_deref(),
        Some("conditions-3")
    );
    assert_eq!(a.invalidate_group("student:s3").await, 1);
    let gone = eventually(Duration::from_secs(5), || async {
        b.get_cloned::<String>(&key).await.is_none()
    })
    .await;
    assert!(gone);
    assert_eq!(tier.layout_faults(), 0);

    // Writes during invalidations of their tag: none is orphaned (a last invalidation
    // finds every entry that is still in Redis).
    let writer = {
        let a = a.clone();
        tokio::spawn(async move {
            for n in 0..300 {
                let key = format!("health:vaccinations:w{}", n % 60);
                a.set(&key, n, TTL, &["vaccinations"]).await.unwrap();
            }
        })
    };
    for _ in 0..5 {
        b.invalidate_tag("vaccinations").await;
    }
    writer.await.unwrap();
    b.invalidate_tag("vaccinations").await;
    assert!(keys_on(&cluster, &format!("{p}:*:v:health:vaccinations:*"))
        .await
        .is_empty());
    assert_eq!(tier.errors(), 0);

    // A key whose group is elsewhere is kept out of Redis, counted, and the caller is fine.
    a.set(
        "student:nogroupid:x",
        1,
        TTL,
        &[&TieredCache::group_tag("s9")],
    )
    .await
    .unwrap();
    assert_eq!(tier.layout_faults(), 1);
    assert!(keys_on(&cluster, &format!("{p}:*:v:student:nogroupid:x"))
        .await
        .is_empty());
    // Loaded, such a key is kept out of Redis but not taken for stale: L1 holds it.
    let loads = AtomicU64::new(0);
    for _ in 0..2 {
        let tags = [TieredCache::group_tag("s9")];
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        let v = a
            .get_or_load("student:nogroupid:y", TTL, &tags, || async {
                loads.fetch_add(1, Ordering::Relaxed);
                Ok::<_, CacheError>(5u32)
            })
            .await
            .unwrap();
        assert_eq!(*v, 5);
    }
    assert_eq!(
        loads.load(Ordering::Relaxed),
        1,
        "the second read is an L1 hit"
    );
    assert_eq!(tier.layout_faults(), 2);
    assert_eq!(a.stats().stale_loads, 0);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn bad_seed_nodes_are_clear_errors_at_start() {
    let plain = TestRedis::start().await;
    let protected = TestRedis::with_password("right").await;
    let dead = free_port();
    let connect = |nodes: Vec<String>| async move {
        let tier = RedisTier::new(&config("bad", nodes)).unwrap();
        tier.ensure_connected().await
    };
    let problem = |r: Result<(), CacheError>| match r {
        Err(CacheError::ClusterNode { node, problem }) => (node, problem),
        other => panic!("not a node error: {other:?}"),
    };

    let (node, p) = problem(connect(vec![plain.url()]).await);
    assert_eq!(p, ClusterNodeProblem::NotClusterMode);
    assert!(node.contains(&plain.port.to_string()));

    let wrong = format!("redis://:wrong@127.0.0.1:{}", protected.port);
    let (node, p) = problem(connect(vec![wrong]).await);
    assert_eq!(p, ClusterNodeProblem::WrongPassword);
    assert!(!node.contains("wrong"), "{node}");

    let (_, p) = problem(connect(vec![format!("redis://127.0.0.1:{dead}")]).await);
    assert!(matches!(p, ClusterNodeProblem::Unreachable(_)), "{p:?}");
    let msg = CacheError::ClusterNode {
        node: "redis://127.0.0.1:1".into(),
        problem: ClusterNodeProblem::NotClusterMode,
    }
    .to_string();
    assert!(msg.contains("not in cluster mode"), "{msg}");

    // The cache itself still starts (on L1 and its loaders) and serves.
    let cache = build(config("bad", vec![plain.url()])).await;
    let v = cache
        .get_or_load("k:1", TTL, &[], || async { Ok::<_, CacheError>(7u32) })
        .await
        .unwrap();
    assert_eq!(*v, 7);
    cache.shutdown().await;
}

/// The "database" the load writes to before the cache, and reads from on a miss.
type Db = Arc<Mutex<HashMap<String, u64>>>;

/// 8 writers and 8 readers over `keys` through `a` and `b`, until `stop` (bounded by 20 000
/// operations each); each writer owns its keys, so the database's order per key is the
/// cache's. Counts callers that failed or took more than 2 s (a call makes at most three
/// round trips of 500 ms at most each).
struct Load {
    db: Db,
    stop: Arc<AtomicBool>,
    failures: Arc<AtomicU64>,
    ops: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn tags_of(key: &str) -> [String; 2] {
    let id = key.rsplit(':').next().unwrap_or_default();
    [
        "vitals".to_owned(),
        TieredCache::group_tag(&format!("student:{id}")),
    ]
}

impl Load {
    fn start(a: &TieredCache, b: &TieredCache, keys: &[String]) -> Self {
        let db: Db = Arc::new(Mutex::new(keys.iter().map(|k| (k.clone(), 0)).collect()));
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(AtomicU64::new(0));
        let ops = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for w in 0..16usize {
            let caches = [a.clone(), b.clone()];
            let owned: Vec<String> = keys.iter().skip(w % 8).step_by(8).cloned().collect();
            let all = keys.to_vec();
            let (db, stop, failures, ops) =
                (db.clone(), stop.clone(), failures.clone(), ops.clone());
            tasks.push(tokio::spawn(async move {
                let mut pace = tokio::time::interval(Duration::from_millis(5));
                for n in 0..20_000usize {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    pace.tick().await;
                    let cache = &caches[n % 2];
                    let ok = if w < 8 {
                        let key = &owned[n % owned.len()];
                        let v = {
                            let mut db = db.lock().unwrap();
                            let v = db.get_mut(key).unwrap();
                            *v += 1;
                            *v
                        };
                        let tags = tags_of(key);
                        let tags = [tags[0].as_str(), tags[1].as_str()];
                        let call = cache.set(key, v, TTL, &tags);
                        matches!(
                            tokio::time::timeout(Duration::from_secs(2), call).await,
                            Ok(Ok(()))
                        )
                    } else {
                        let key = &all[(n * 7 + w) % all.len()];
                        let tags = tags_of(key);
                        let tags = [tags[0].as_str(), tags[1].as_str()];
                        let db = db.clone();
                        let call = cache.get_or_load(key, TTL, &tags, || async move {
                            Ok::<u64, CacheError>(db.lock().unwrap()[key])
                        });
                        matches!(
                            tokio::time::timeout(Duration::from_secs(2), call).await,
                            Ok(Ok(_))
                        )
                    };
                    if !ok {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    ops.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        Self {
            db,
            stop,
            failures,
            ops,
            tasks,
        }
    }

    /// Runs until `ops` more operations are done (or `limit` passes).
    async fn run_for(&self, ops: u64, limit: Duration) {
        let target = self.ops.load(Ordering::Relaxed) + ops;
        let ok = eventually(limit, || async {
            self.ops.load(Ordering::Relaxed) >= target
        })
        .await;
        assert!(ok, "the load stalled");
    }

    async fn stop(self) -> Db {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        assert_eq!(self.failures.load(Ordering::Relaxed), 0, "a caller failed");
        self.db
    }
}

fn load_keys() -> Vec<String> {
    (0..96).map(|i| format!("health:vitals:s{i}")).collect()
}

/// After the load: repairs done on both instances, then every key read through both equals
/// the database (the loader is the database, so a miss is never stale).
async fn nothing_stale(a: &TieredCache, b: &TieredCache, db: &Db) {
    for c in [a, b] {
        let tier = c.redis().unwrap();
        let settled = eventually(Duration::from_secs(10), || async {
            tier.pending_repairs() == 0 && c.is_subscribed()
        })
        .await;
        assert!(settled, "repairs pending: {}", tier.pending_repairs());
    }
    let db = db.lock().unwrap().clone();
    let stale = || async {
        let mut stale = Vec::new();
        for (key, want) in &db {
            for c in [a, b] {
                let tags = tags_of(key);
                let tags = [tags[0].as_str(), tags[1].as_str()];
                let got = c
                    .get_or_load(key, TTL, &tags, || async { Ok::<u64, CacheError>(*want) })
                    .await
                    .unwrap();
                if *got != *want {
                    stale.push((key.clone(), *got, *want));
                }
            }
        }
        stale
    };
    // The last repairs' messages may still be on their way: bounded.
    let settled = eventually(Duration::from_secs(3), || async {
        stale().await.is_empty()
    })
    .await;
    assert!(settled, "stale entries: {:?}", stale().await);
}

#[tokio::test]
async fn a_master_killed_under_load_fails_no_caller_and_leaves_nothing_stale() {
    let started = Instant::now();
    let mut cluster = TestCluster::start().await;
    let (a, b) = pair(config("failover", cluster.seeds())).await;
    let keys = load_keys();
    let load = Load::start(&a, &b, &keys);
    load.run_for(1_000, Duration::from_secs(15)).await;

    // Kill the master of the first key's slot; its replica takes over.
    let tier = a.redis().unwrap();
    let probe = tier.data_key(&keys[0]);
    let victim = cluster.master_of(&probe).await;
    cluster.kill(victim);
    cluster.wait_failover(victim).await;
    let promoted = cluster.master_of(&probe).await;
    assert_ne!(promoted, victim);
    let seen = eventually(Duration::from_secs(10), || async {
        a.redis().unwrap().topology_changes() > 0 && b.redis().unwrap().topology_changes() > 0
    })
    .await;
    assert!(seen, "an instance did not see the failover");
    load.run_for(1_000, Duration::from_secs(15)).await;
    let db = load.stop().await;

    // The promoted replica is used: A's write of the probe key lands on it (once the
    // breaker, opened by the failover's timeouts, lets writes through again).
    db.lock().unwrap().insert(keys[0].clone(), 1_000_000);
    let c = admin(promoted).await.unwrap();
    let on_promoted = eventually(Duration::from_secs(5), || {
        let (a, c, key, probe) = (&a, c.clone(), &keys[0], &probe);
        async move {
            a.set(key, 1_000_000u64, TTL, &[]).await.unwrap();
            let mut c = c;
            let raw: Option<Vec<u8>> = redis::cmd("GET")
                .arg(probe)
                .query_async(&mut c)
                .await
                .unwrap();
            raw.is_some_and(|r| r.ends_with(b"1000000"))
        }
    })
    .await;
    assert!(on_promoted, "the write did not reach the promoted replica");

    // Coherence is back: a write on A reaches B's L1.
    let key = &keys[1];
    let _ = b.get_cloned::<u64>(key).await;
    let received = b.stats().invalidations_received;
    a.set(key, 2_000_000u64, TTL, &[]).await.unwrap();
    db.lock().unwrap().insert(key.clone(), 2_000_000);
    let fresh = eventually(Duration::from_secs(5), || async {
        b.get_cloned::<u64>(key).await == Some(2_000_000)
    })
    .await;
    assert!(fresh && b.stats().invalidations_received > received);

    nothing_stale(&a, &b, &db).await;
    a.shutdown().await;
    b.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_resharding_under_load_fails_no_caller_and_leaves_nothing_stale() {
    let cluster = TestCluster::start().await;
    let (a, b) = pair(config("reshard", cluster.seeds())).await;
    let keys = load_keys();
    let load = Load::start(&a, &b, &keys);
    load.run_for(500, Duration::from_secs(15)).await;
    let masters = cluster.masters().await;
    // The first master's lowest 1500 slots (about 23 of the 256 buckets) move to the second.
    cluster.reshard(masters[0].0, masters[1].0, 1500).await;
    cluster.wait_ok().await;
    load.run_for(500, Duration::from_secs(15)).await;
    let db = load.stop().await;
    nothing_stale(&a, &b, &db).await;
    let (ta, tb) = (a.redis().unwrap(), b.redis().unwrap());
    assert!(ta.topology_changes() + tb.topology_changes() > 0);
    a.shutdown().await;
    b.shutdown().await;
}
