//! Benchmarks of vitals-cache on a Redis Cluster (issue 17, item 6), each beside a peer in
//! the same run.
//!
//! Run (short, the machine is shared):
//! `cargo bench -p vitals-benches --bench cache_cluster -- --warm-up-time 1 --measurement-time 5`
//!
//! Needs `redis-server` and `redis-cli` 7 on PATH: the bench starts its own cluster of three
//! masters and three replicas on free loopback ports with the cluster tests' harness
//! (`crates/cache/tests/common/redis_cluster.rs`), and kills every server by its pid when it
//! ends (the harness's processes are Drop guards, so also while a panic unwinds).
//!
//! - `cache_cluster/l2_hit`: the ~5 KB summary of `cache/l2_hit` (`common/summary.rs`), read
//!   through `TieredCache::get` with L1 off (every get an L2 hit, decode included) beside a
//!   bare redis-rs async cluster client reading the same key, with and without the same
//!   decode. Values as in `cache/l2_hit`: lz4-compressed (over the 1 024-byte threshold), not
//!   encrypted (no key, plaintext allowed). Then the same contenders interleaved get by get
//!   (10 000 rounds, the order rotated), with `RedisTier::get_with_ttl` and the bare pipeline
//!   without decode besides, their p50s and ratios printed to stderr: on a shared machine
//!   criterion's one-after-another samples drift with the load.
//! - `cache_cluster/invalidation_delay`: two `TieredCache`s A and B on the cluster, B's L1
//!   holding the key; A overwrites it, deletes it, or invalidates its tag in every bucket;
//!   the time from A's call to B's L1 no longer holding the key, B's L1 polled in a tight
//!   loop (no sleep). A bounded number of events (500 each, at most 30 s, each at most
//!   100 ms); p50, p99 and max printed to stderr, with the events over 5 ms during which the
//!   poller itself was off the CPU for over half the delay, beside the same measurement on the
//!   single Redis at REDIS_URL (default redis://127.0.0.1:6379) when it answers.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_main, Criterion, Throughput};
use hdrhistogram::Histogram;
use vitals_cache::{CacheConfig, Tier as _, TieredCache};

// The cluster tests' harness, included rather than copied: `redis_cluster` reaches
// `super::redis_server`, which is this crate's root module here as it is `common` there.
#[path = "../../crates/cache/tests/common/redis_cluster.rs"]
mod redis_cluster;
#[path = "../../crates/cache/tests/common/redis_server.rs"]
mod redis_server;
// The ~5 KB summary, shared with benches/benches/cache.rs.
#[path = "common/summary.rs"]
mod summary;
// The bare redis-rs GET (and decode) peers, shared with benches/benches/cache.rs.
#[path = "common/redis_get.rs"]
mod redis_get;
// Where Redis is, and the runtime, shared with benches/benches/cache.rs.
#[path = "common/setup.rs"]
mod setup;
// The L2 contenders interleaved get by get, shared with benches/benches/cache.rs.
#[path = "common/interleaved.rs"]
mod interleaved;

use interleaved::{get_pttl, histogram, micros, Contenders};
use redis_cluster::TestCluster;
use redis_get::{decode, get_raw, BareGet, Then};
use setup::{redis_url, runtime};
use summary::{summary, Summary};

const MIN: Duration = Duration::from_secs(60);
/// Events measured per case of `cache_cluster/invalidation_delay` (5 in criterion's test mode).
const EVENTS: usize = 500;
/// The longest one case of `cache_cluster/invalidation_delay` runs.
const CASE_LIMIT: Duration = Duration::from_secs(30);
/// The longest one event is awaited; one that takes longer is counted as a timeout.
const EVENT_LIMIT: Duration = Duration::from_millis(100);
/// The tags of the invalidation cases (`vaccinations-<n>`): data types, with a set in every
/// bucket (not a group's tag, which has one).
const TAG: &str = "vaccinations";

/// The 1-minute load average, to say how busy the machine was.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// Criterion's filter (its first positional argument), to skip the measurement criterion
/// does not run; and whether this is a benchmark run (`--bench`) or criterion's test mode.
struct Args {
    filter: Option<regex::Regex>,
    bench: bool,
}

impl Args {
    fn parse() -> Self {
        // Criterion's options that take a value (`--opt value`).
        const VALUED: &[&str] = &[
            "--warm-up-time",
            "--measurement-time",
            "--sample-size",
            "--nresamples",
            "--noise-threshold",
            "--confidence-level",
            "--significance-level",
            "--save-baseline",
            "--baseline",
            "--load-baseline",
            "--baseline-lenient",
            "--color",
            "--output-format",
            "--plotting-backend",
            "--profile-time",
            "--format",
        ];
        let mut filter = None;
        let mut bench = false;
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            if a == "--bench" {
                bench = true;
            } else if VALUED.contains(&a.as_str()) {
                args.next();
            } else if !a.starts_with('-') && filter.is_none() {
                filter = regex::Regex::new(&a).ok();
            }
        }
        Self { filter, bench }
    }

    fn selected(&self, name: &str) -> bool {
        self.filter.as_ref().is_none_or(|f| f.is_match(name))
    }
}

/// The cache on `seeds`, values unencrypted (`cache/l2_hit` measures that path too).
fn cluster_config(prefix: &str, seeds: &[String]) -> CacheConfig {
    CacheConfig::default()
        .with_cluster_nodes(seeds.to_vec())
        .with_key_prefix(prefix)
        .with_allow_plaintext(true)
}

/// `cache/l2_hit` on the cluster: an L2 hit of the ~5 KB summary through `TieredCache::get`
/// (L1 off: GET + PTTL in one pipeline, the entry's header decoded, lz4 decompressed, the
/// JSON deserialised) beside the bare redis-rs async cluster client: a GET of the same key,
/// the same GET followed by the same decode (`Codec::decode` and `serde_json`), and the
/// GET + PTTL pipeline the cache sends, with the decode. `RedisTier::get` (GET and header
/// only, no JSON) as in `cache/l2_hit`. No `ConnectionManager` peer: a cluster connection
/// reconnects by itself.
///
/// On a current-thread runtime, every contender alike, for the reason `cache/l2_hit` gives
/// (on a multi-thread one the timers the cache arms per call wake workers).
fn l2_hit(c: &mut Criterion, seeds: &[String]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let prefix = format!("bench-l2c-{}", std::process::id());
    let cfg = cluster_config(&prefix, seeds).with_l1(false, 1, MIN);
    let cache = rt.block_on(TieredCache::builder(cfg).build()).unwrap();
    let tier = cache.redis().unwrap().clone();
    rt.block_on(tier.ensure_connected()).unwrap();
    assert!(tier.is_cluster(), "the tier runs on the cluster");
    const KEY: &str = "student:1:summary";
    let value = summary(1);
    let json = serde_json::to_vec(&value).unwrap().len();
    // An hour: the group and the interleaved rounds take minutes, and an entry that expired
    // would turn every contender into a miss.
    rt.block_on(cache.set(KEY, value, Duration::from_secs(3600), &[]))
        .unwrap();
    let data_key = tier.data_key(KEY);
    let codec = vitals_cache::Codec::new(cache.config().compress_threshold, None);
    let client = redis::cluster::ClusterClientBuilder::new(seeds.to_vec())
        .username(redis_cluster::USER.to_owned())
        .password(redis_cluster::PASSWORD.to_owned())
        .build()
        .unwrap();
    let conn = rt.block_on(client.get_async_connection()).unwrap();
    let stored = rt.block_on(get_raw(&mut conn.clone(), &data_key));
    eprintln!(
        "cache_cluster/l2_hit: summary {json} bytes of JSON, {} bytes in Redis \
         (lz4 over {} bytes, not encrypted); load average {}",
        stored.len(),
        cache.config().compress_threshold,
        load()
    );
    // Every contender reads what the cache wrote: a hit that decodes.
    assert!(rt
        .block_on(cache.get::<Summary>(KEY))
        .is_some_and(|s| serde_json::to_vec(&*s).unwrap().len() == json));

    let mut g = c.benchmark_group("cache_cluster/l2_hit");
    g.throughput(Throughput::Elements(1));
    let bare = BareGet::new(&conn, &data_key, &codec, KEY);
    bare.bench(&mut g, &rt, "redis_rs_cluster_get", Then::Keep);
    bare.bench(&mut g, &rt, "redis_rs_cluster_get_and_decode", Then::Decode);
    g.bench_function("redis_rs_cluster_get_pttl_pipeline_and_decode", |b| {
        b.to_async(&rt).iter(|| {
            let mut conn = conn.clone();
            let (k, codec) = (&data_key, &codec);
            async move {
                let (v, ttl) = get_pttl(&mut conn, k).await;
                black_box((decode(codec, KEY, &v), ttl))
            }
        })
    });
    g.bench_function("vitals_redis_tier_get", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(tier.get(KEY).await.ok()) })
    });
    // A get that misses (a Redis call past the cache's 250 ms timeout on a loaded machine,
    // counted in the stats printed below) is not a failure of the bench.
    g.bench_function("vitals_tiered_get_l1_off", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(cache.get::<Summary>(KEY).await) })
    });
    g.finish();
    Contenders {
        group: "cache_cluster/l2_hit",
        peer: "redis_rs_cluster",
        conn: &conn,
        bare_key: &data_key,
        codec: &codec,
        cache: &cache,
        key: KEY,
    }
    .run(&rt);
    let stats = cache.stats();
    eprintln!(
        "cache_cluster/l2_hit: TieredCache l2_hits {}, misses {}, redis errors {}, cluster \
         faults {}, topology changes {}",
        stats.l2_hits,
        stats.misses,
        stats.redis_errors,
        tier.cluster_faults(),
        tier.topology_changes()
    );
    rt.block_on(async {
        cache.delete(KEY).await;
        cache.shutdown().await;
    });
}

/// What A does to the key that B's L1 holds.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// `set` of a new value (the single-node `cache/coherence` measures this).
    Set,
    /// `delete` of the key.
    Delete,
    /// `invalidate_tag` of the key's data type: every bucket, on every master.
    Tag,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Set => "set",
            Op::Delete => "delete",
            Op::Tag => "invalidate_tag",
        }
    }
}

/// Nanoseconds, 1 ns to 100 s, three significant digits.
/// Puts `key` (with `tag`) in B's L1, starts `op` of A on a task of its own and polls B's
/// L1 in a tight loop (yielding, no sleep) until it no longer holds the key, at most
/// [`EVENT_LIMIT`].
async fn one_event(
    a: &TieredCache,
    b: &TieredCache,
    op: Op,
    key: &str,
    tag: &str,
    n: usize,
) -> Event {
    let l1 = b.l1().unwrap();
    assert!(
        l1.insert(key, Arc::new(n), 8, MIN, &[tag]),
        "B's L1 takes the key"
    );
    let t0 = Instant::now();
    let call = {
        let (a, key, tag) = (a.clone(), key.to_owned(), tag.to_owned());
        tokio::spawn(async move {
            match op {
                Op::Set => a.set(&key, n, MIN, &[&tag]).await.unwrap(),
                Op::Delete => drop(a.delete(&key).await),
                Op::Tag => drop(a.invalidate_tag(&tag).await),
            }
            t0.elapsed()
        })
    };
    let (mut last, mut max_gap) = (t0, Duration::ZERO);
    let cleared = loop {
        let now = Instant::now();
        max_gap = max_gap.max(now - last);
        last = now;
        if !l1.contains(key) {
            break Some(t0.elapsed());
        }
        if t0.elapsed() > EVENT_LIMIT {
            break None;
        }
        // The poll runs on the main thread (`block_on`): give the core to a runnable thread
        // (B's subscriber, a Redis server) before polling again.
        std::thread::yield_now();
        tokio::task::yield_now().await;
    };
    Event {
        cleared,
        took: call.await.unwrap(),
        max_gap,
    }
}

/// What one event measured.
struct Event {
    /// From A's call to B's L1 seen without the key; `None` past [`EVENT_LIMIT`].
    cleared: Option<Duration>,
    /// A's call.
    took: Duration,
    /// The longest pause between two polls of B's L1 (the poller itself not running).
    max_gap: Duration,
}

/// A delay past which an event is looked at: the target's p99.
const SLOW: Duration = Duration::from_millis(5);

/// One case of `cache_cluster/invalidation_delay`: `events` times, on a key and a tag of
/// the event's own (so no message of an earlier event can clear it: `set` publishes one
/// message, a tag's invalidation one per master that held members, and one more), A's `op`
/// while B's L1 holds the key. Before a `delete` or a tag invalidation, A writes the key with
/// its tag (so Redis holds it in its bucket and tag set) and B is seen to drop it (that
/// write's own message, awaited the same way, unmeasured). Prints p50, p99 and max of the
/// delay and of A's call.
async fn delay_case(name: &str, a: &TieredCache, b: &TieredCache, op: Op, events: usize) {
    let (mut cleared, mut returned) = (histogram(), histogram());
    let (mut timeouts, mut unprepared, mut slow, mut slow_unpolled) = (0u64, 0u64, 0u64, 0u64);
    let case_start = Instant::now();
    for i in 0..events {
        if case_start.elapsed() > CASE_LIMIT {
            break;
        }
        // A key and a tag of this event's own (the prefix is this run's); the keys spread
        // over the buckets and so over the masters.
        let n = (op as usize) * 100_000 + i;
        let (key, tag) = (format!("student:{n}:immunisations"), format!("{TAG}-{n}"));
        if !matches!(op, Op::Set)
            && one_event(a, b, Op::Set, &key, &tag, n)
                .await
                .cleared
                .is_none()
        {
            unprepared += 1;
            continue;
        }
        let event = one_event(a, b, op, &key, &tag, n).await;
        match event.cleared {
            Some(d) => {
                cleared.saturating_record(d.as_nanos() as u64);
                if d > SLOW {
                    slow += 1;
                    // Most of the delay spent with the poller itself not running: the
                    // machine's scheduling, not the invalidation's path.
                    if event.max_gap * 2 > d {
                        slow_unpolled += 1;
                    }
                }
            }
            None => {
                timeouts += 1;
                cleared.saturating_record(EVENT_LIMIT.as_nanos() as u64);
            }
        }
        returned.saturating_record(event.took.as_nanos() as u64);
    }
    let q = |h: &Histogram<u64>| {
        format!(
            "p50 {} p99 {} max {}",
            micros(h.value_at_quantile(0.5)),
            micros(h.value_at_quantile(0.99)),
            micros(h.max())
        )
    };
    eprintln!(
        "{name}/{}: {} events in {:.1} s; B's L1 cleared after: {}; A's call returned after: \
         {}; over {slow_ms} ms: {slow}, of which {slow_unpolled} with the poller itself not \
         running for over half the delay; timeouts (> {limit} ms, counted as {limit} ms) \
         {timeouts}, not prepared {unprepared}; load average {}",
        op.name(),
        cleared.len(),
        case_start.elapsed().as_secs_f64(),
        q(&cleared),
        q(&returned),
        load(),
        limit = EVENT_LIMIT.as_millis(),
        slow_ms = SLOW.as_millis(),
    );
}

/// `cache_cluster/invalidation_delay`: each [`Op`] on a pair of instances on the cluster,
/// then on a pair on the single Redis at REDIS_URL if it answers (the same method, for
/// comparison). On a two-worker runtime, as `cache/coherence`: B's subscriber runs on a
/// worker while the poll runs on the main thread.
fn invalidation_delay(rt: &tokio::runtime::Runtime, seeds: &[String], events: usize) {
    let name = "cache_cluster/invalidation_delay";
    let pair = |cfg: CacheConfig| async move {
        let a = TieredCache::builder(cfg.clone()).build().await.ok()?;
        let b = TieredCache::builder(cfg).build().await.ok()?;
        (a.wait_subscribed(Duration::from_secs(5)).await
            && b.wait_subscribed(Duration::from_secs(5)).await)
            .then_some((a, b))
    };
    let prefix = format!("bench-invc-{}", std::process::id());
    let cluster = rt.block_on(pair(cluster_config(&prefix, seeds)));
    let (a, b) = cluster.expect("two instances subscribed on the cluster");
    assert!(a.redis().is_some_and(|r| r.is_cluster()));
    rt.block_on(async {
        for op in [Op::Set, Op::Delete, Op::Tag] {
            delay_case(&format!("{name}/cluster"), &a, &b, op, events).await;
        }
        a.shutdown().await;
        b.shutdown().await;
    });
    let prefix = format!("bench-invs-{}", std::process::id());
    let single = CacheConfig::default()
        .with_redis_url(Some(redis_url()))
        .with_key_prefix(prefix)
        .with_allow_plaintext(true);
    let Some((a, b)) = rt.block_on(pair(single)) else {
        eprintln!("{name}/single_node skipped: redis at REDIS_URL unreachable");
        return;
    };
    rt.block_on(async {
        for op in [Op::Set, Op::Delete, Op::Tag] {
            delay_case(&format!("{name}/single_node"), &a, &b, op, events).await;
        }
        a.shutdown().await;
        b.shutdown().await;
    });
}

/// Both groups on one cluster, in one run so the ratios come from one machine state.
fn benches() {
    let args = Args::parse();
    let have_tools = ["redis-server", "redis-cli"].iter().all(|tool| {
        std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !have_tools {
        eprintln!("cache_cluster skipped: redis-server and redis-cli 7 are needed on PATH");
        return;
    }
    let rt = runtime();
    let started = Instant::now();
    // Its six servers are killed by pid when it drops: at the end of this function, or
    // while a panic unwinds through it.
    let cluster = rt.block_on(TestCluster::start());
    let seeds = cluster.seeds();
    eprintln!(
        "cache_cluster: 3 masters + 3 replicas on 127.0.0.1 ports {:?}, up in {:.1} s; \
         load average {}",
        cluster.live_ports(),
        started.elapsed().as_secs_f64(),
        load()
    );
    let mut c = Criterion::default().configure_from_args();
    l2_hit(&mut c, &seeds);
    if args.selected("cache_cluster/invalidation_delay") {
        let events = if args.bench { EVENTS } else { 5 };
        invalidation_delay(&rt, &seeds, events);
    }
    drop(cluster);
}

criterion_main!(benches);
