//! Benchmarks of vitals-cache, each beside a peer in the same group.
//!
//! Run (short, the machine is shared):
//! `cargo bench -p vitals-benches --bench cache -- --warm-up-time 1 --measurement-time 3`
//! Needs Redis at REDIS_URL (default redis://127.0.0.1:6379) for the L2 and
//! coherence groups. The Zipf and scan hit rates of all three caches, the single-flight
//! load counts and the interleaved L2 hits are printed to stderr.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_main, BenchmarkId, Criterion, Throughput};
use futures::FutureExt as _;
use rand::{Rng, SeedableRng};
use redis::AsyncCommands as _;
use vitals_cache::{CacheConfig, L1Cache, Tier as _, TieredCache};

// The ~5 KB summary, shared with benches/benches/cache_cluster.rs.
#[path = "common/summary.rs"]
mod summary;
use summary::{summary, Summary};
// The bare redis-rs GET (and decode) peers, shared with benches/benches/cache_cluster.rs.
#[path = "common/redis_get.rs"]
mod redis_get;
use redis_get::{get_raw, BareGet, Then};
// Where Redis is, and the runtime, shared with benches/benches/cache_cluster.rs.
#[path = "common/setup.rs"]
mod setup;
use setup::{redis_url, runtime};
// The L2 contenders interleaved get by get, shared with benches/benches/cache_cluster.rs.
#[path = "common/interleaved.rs"]
mod interleaved;
use interleaved::Contenders;

const KEYS: usize = 1000;
const MIN: Duration = Duration::from_secs(60);
/// The life of the entries the hit benches read: longer than a run.
const HOUR: Duration = Duration::from_secs(3600);

fn keys() -> Vec<String> {
    (0..KEYS)
        .map(|i| format!("student:{i}:allergies"))
        .collect()
}

/// Runs `op(thread, i)` `iters` times on each of `threads` threads; returns
/// the wall time (throughput is set to `threads` elements per iteration).
fn on_threads<F>(threads: usize, iters: u64, op: F) -> Duration
where
    F: Fn(usize, u64) + Sync,
{
    let barrier = std::sync::Barrier::new(threads);
    let start = std::sync::Mutex::new(None::<Instant>);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (op, barrier, start) = (&op, &barrier, &start);
            s.spawn(move || {
                if barrier.wait().is_leader() {
                    *start.lock().unwrap() = Some(Instant::now());
                }
                for i in 0..iters {
                    op(t, i);
                }
            });
        }
    });
    let started = *start.lock().unwrap();
    started.map_or(Duration::ZERO, |s| s.elapsed())
}

/// A typed L1 hit of a ~5 KB summary (1 000 entries, all present) at 1 and 2 threads:
/// vitals `L1Cache::get::<Summary>` and the whole `TieredCache::get::<Summary>` path
/// (polled once in place, as `.await` polls it: an L1 hit never waits; [`poll_in_place`])
/// beside moka's sync cache and quick_cache holding the same `Arc<Summary>` values. Every
/// contender returns an `Arc<Summary>`. The interleaved rounds also time the get polled by
/// `now_or_never`, as this bench did before 2026-12-05.
fn l1_hit(c: &mut Criterion) {
    let keys = keys();
    let values: Vec<Arc<Summary>> = (0..KEYS).map(|i| Arc::new(summary(i))).collect();
    let weight = serde_json::to_vec(&*values[0]).unwrap().len();
    eprintln!("l1_hit: a summary is {weight} bytes of JSON");
    // Entries live an hour (HOUR): the groups and the interleaved rounds take over a
    // minute, and an entry that expired would make its contender time misses (checked at
    // the end). Room for twice the keys, so that every one is held whatever its shard.
    let l1 = L1Cache::new(2 * KEYS, HOUR, 16);
    let moka: moka::sync::Cache<String, Arc<Summary>> = moka::sync::Cache::new(2 * KEYS as u64);
    let quick: quick_cache::sync::Cache<String, Arc<Summary>> =
        quick_cache::sync::Cache::new(2 * KEYS);
    let rt = runtime();
    let cfg = CacheConfig::default().with_l1(true, 2 * KEYS, HOUR);
    let cache = rt.block_on(TieredCache::builder(cfg).build()).unwrap();
    for (k, v) in keys.iter().zip(&values) {
        assert!(l1.insert(k, v.clone(), weight, HOUR, &[]));
        moka.insert(k.clone(), v.clone());
        quick.insert(k.clone(), v.clone());
        rt.block_on(cache.set(k, Summary::clone(v), HOUR, &[]))
            .unwrap();
    }
    moka.run_pending_tasks();
    assert_eq!(cache.stats().l1_entries, KEYS, "every summary in L1");
    let mut g = c.benchmark_group("cache/l1_hit");
    for threads in [1usize, 2] {
        g.throughput(Throughput::Elements(threads as u64));
        let idx = |t: usize, i: u64| (i as usize * 7 + t * 501) % KEYS;
        g.bench_function(BenchmarkId::new("vitals_l1", threads), |b| {
            b.iter_custom(|n| {
                on_threads(threads, n, |t, i| {
                    black_box(l1.get::<Summary>(&keys[idx(t, i)]));
                })
            })
        });
        g.bench_function(BenchmarkId::new("vitals_tiered_get", threads), |b| {
            b.iter_custom(|n| {
                on_threads(threads, n, |t, i| {
                    black_box(poll_in_place(cache.get::<Summary>(&keys[idx(t, i)])));
                })
            })
        });
        g.bench_function(BenchmarkId::new("moka_sync", threads), |b| {
            b.iter_custom(|n| {
                on_threads(threads, n, |t, i| {
                    black_box(moka.get(&keys[idx(t, i)]));
                })
            })
        });
        g.bench_function(BenchmarkId::new("quick_cache", threads), |b| {
            b.iter_custom(|n| {
                on_threads(threads, n, |t, i| {
                    black_box(quick.get(&keys[idx(t, i)]));
                })
            })
        });
    }
    g.finish();
    let get = |c: usize, key: &String| match c {
        0 => drop(black_box(l1.get::<Summary>(key))),
        1 => drop(black_box(poll_in_place(cache.get::<Summary>(key)))),
        2 => drop(black_box(cache.get::<Summary>(key).now_or_never())),
        3 => drop(black_box(moka.get(key))),
        _ => drop(black_box(quick.get(key))),
    };
    let names = [
        "vitals_l1",
        "vitals_tiered_get",
        "vitals_tiered_get_now_or_never",
        "moka_sync",
        "quick_cache",
    ];
    for threads in [1usize, 2] {
        l1_interleaved(threads, &names, |t, c, i| {
            get(c, &keys[(i * 7 + t * 501) % KEYS])
        });
    }
    let s = cache.stats();
    eprintln!(
        "l1_hit: TieredCache l1_hits {}, misses {}, type_mismatches {}",
        s.l1_hits, s.misses, s.type_mismatches
    );
    assert_eq!(
        (s.misses, s.type_mismatches),
        (0, 0),
        "every TieredCache get a hit"
    );
    let held = keys.iter().filter(|k| l1.contains(k)).count();
    assert_eq!(held, KEYS, "every L1Cache get a hit");
    rt.block_on(cache.shutdown());
}

/// The output of `f` if its first poll completes it: `f` polled where it stands, with a
/// static no-op waker (nothing made or dropped per get), as `.await` polls a get (in the
/// caller's state, with the caller's context; `Fetch::poll` inlined into the caller).
/// Inlined, so that the harness adds no call. `now_or_never` moves the future into a call of
/// its own and makes and drops a waker per get: 1-5 ns more per L1 hit than this in the
/// interleaved rounds (`vitals_tiered_get_now_or_never`). Before `Fetch::poll` was always
/// inlined, the two polled alike, both through a call (docs/cache.md).
#[inline(always)]
fn poll_in_place<F: std::future::Future>(f: F) -> Option<F::Output> {
    let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
    match std::future::Future::poll(std::pin::pin!(f), &mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

/// Rounds of the interleaved L1 comparison, and the gets of one contender's batch in each.
const L1_ROUNDS: usize = 1_000;
const L1_BATCH: usize = 1_000;

/// The L1 contenders interleaved batch by batch, beside criterion's one-after-another
/// groups, whose medians drift with the shared machine's load from one contender to the next
/// (the same binary measured 1.2x and 1.6x quick_cache in two runs): each of [`L1_ROUNDS`]
/// rounds times a batch of [`L1_BATCH`] gets of every contender in turn (the order rotated
/// each round; each batch after an untimed pass over the keys), `threads` threads running
/// each batch at once (a barrier before and after it), so the load falls on all of them
/// alike. `get(thread, contender, i)` makes the `i`th get. Prints each contender's median
/// and p90 time per get (a thread's batch time over its gets) and its median's ratio to
/// quick_cache's and to the faster peer's.
fn l1_interleaved<F>(threads: usize, names: &[&str], get: F)
where
    F: Fn(usize, usize, usize) + Sync,
{
    let n = names.len();
    let barrier = std::sync::Barrier::new(threads);
    let per_thread: Vec<Vec<Vec<f64>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (get, barrier) = (&get, &barrier);
                s.spawn(move || {
                    let mut times = vec![Vec::with_capacity(L1_ROUNDS); n];
                    for round in 0..L1_ROUNDS {
                        for k in 0..n {
                            let c = (round + k) % n;
                            // Untimed, a pass over every key first: the batch is timed
                            // warm, as criterion's steady state is, not after the other
                            // contenders' batches pushed this one's entries out of the CPU's
                            // caches.
                            for j in 0..KEYS {
                                get(t, c, j);
                            }
                            barrier.wait();
                            let t0 = Instant::now();
                            for j in 0..L1_BATCH {
                                get(t, c, round * L1_BATCH + j);
                            }
                            let ns = t0.elapsed().as_nanos() as f64;
                            times[c].push(ns / L1_BATCH as f64);
                            // No thread's next warm pass runs beside another's timed batch.
                            barrier.wait();
                        }
                    }
                    times
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let quantile = |c: usize, q: f64| {
        let mut all: Vec<f64> = per_thread.iter().flat_map(|t| t[c].clone()).collect();
        all.sort_by(f64::total_cmp);
        all[((all.len() - 1) as f64 * q) as usize]
    };
    let p50: Vec<f64> = (0..n).map(|c| quantile(c, 0.5)).collect();
    let quick = p50[n - 1];
    let faster_peer = p50[n - 2].min(quick);
    for (c, name) in names.iter().enumerate() {
        eprintln!(
            "cache/l1_hit interleaved ({L1_ROUNDS} rounds of {L1_BATCH} gets, {threads} \
             thread(s)): {name}: p50 {:.1} ns p90 {:.1} ns; p50 {:.2}x quick_cache's, {:.2}x \
             the faster peer's",
            p50[c],
            quantile(c, 0.9),
            p50[c] / quick,
            p50[c] / faster_peer
        );
    }
}

/// An L2 hit (L1 disabled) of the ~5 KB summary: vitals `RedisTier::get` (GET + header
/// decode and lz4) and `TieredCache::get::<Summary>` (a GET, payload and JSON decode; with
/// an L1 it would send GET + PTTL) beside a bare redis-rs `GET` of the same bytes on a
/// multiplexed connection, alone and followed by the same decode (`Codec::decode` and
/// `serde_json`). Then the same contenders interleaved get by get (`common/interleaved.rs`),
/// their p50s and ratios printed to stderr.
///
/// On a current-thread runtime, all four alike: on a multi-thread one the future is polled
/// by criterion's `block_on` outside the workers, and every timer armed (vitals bounds each
/// Redis call with `tokio::time::timeout`) may wake the worker that owns the time driver,
/// which on a 2-core VM moved the ratio between 0.96x and 1.45x from run to run.
fn l2_hit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let prefix = format!("bench-l2-{}", std::process::id());
    let cfg = CacheConfig::default()
        .with_redis_url(Some(redis_url()))
        .with_key_prefix(&prefix)
        // Without a key values stay out of Redis unless plaintext is allowed; the bench
        // measures the unencrypted path it always did.
        .with_allow_plaintext(true)
        .with_l1(false, 1, MIN);
    let Ok(cache) = rt.block_on(TieredCache::builder(cfg).build()) else {
        eprintln!("cache/l2_hit skipped: bad config");
        return;
    };
    if !cache.redis().is_some_and(|r| r.is_connected()) {
        eprintln!("cache/l2_hit skipped: redis unreachable");
        return;
    }
    const KEY: &str = "student:1:summary";
    // An hour, the copy under `raw_key` too: the group and the interleaved rounds take over
    // a minute, and an entry that expired would turn every contender into a miss.
    rt.block_on(cache.set(KEY, summary(1), HOUR, &[])).unwrap();
    let tier = cache.redis().unwrap().clone();
    let data_key = tier.data_key(KEY);
    let codec = vitals_cache::Codec::new(cache.config().compress_threshold, None);
    let raw_key = format!("{prefix}:raw");
    let mut conn = rt.block_on(async {
        let c = redis::Client::open(redis_url().as_str()).unwrap();
        c.get_multiplexed_async_connection().await.unwrap()
    });
    let stored = rt.block_on(get_raw(&mut conn, &data_key));
    rt.block_on(async {
        redis::cmd("SET")
            .arg(&raw_key)
            .arg(&stored)
            .arg("EX")
            .arg(HOUR.as_secs())
            .query_async::<()>(&mut conn)
            .await
            .unwrap()
    });
    let mut g = c.benchmark_group("cache/l2_hit");
    g.throughput(Throughput::Elements(1));
    let bare = BareGet::new(&conn, &raw_key, &codec, KEY);
    bare.bench(&mut g, &rt, "redis_rs_bare_get", Then::Keep);
    bare.bench(&mut g, &rt, "redis_rs_bare_get_and_decode", Then::Decode);
    let mut cm = rt.block_on(async {
        let c = redis::Client::open(redis_url().as_str()).unwrap();
        redis::aio::ConnectionManager::new(c).await.unwrap()
    });
    let cm_get = BareGet::new(&cm, &raw_key, &codec, KEY);
    cm_get.bench(&mut g, &rt, "redis_rs_connection_manager_get", Then::Keep);
    g.bench_function("vitals_redis_tier_get", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(tier.get(KEY).await.unwrap()) })
    });
    g.bench_function("vitals_tiered_get_l1_off", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(cache.get::<Summary>(KEY).await.unwrap()) })
    });
    g.finish();
    Contenders {
        group: "cache/l2_hit",
        peer: "redis_rs_bare",
        conn: &conn,
        bare_key: &raw_key,
        codec: &codec,
        cache: &cache,
        key: KEY,
    }
    .run(&rt);
    rt.block_on(async {
        cache.delete(KEY).await;
        let _: () = cm.del(&raw_key).await.unwrap();
        cache.shutdown().await;
    });
}

/// 100 concurrent `get_or_load` misses of one fresh key (L1 only, the loader
/// sleeps 1 ms): time for all 100 to return; the loader count is printed
/// (expected: 1 per round).
fn single_flight(c: &mut Criterion) {
    let rt = runtime();
    let cache = rt
        .block_on(TieredCache::builder(CacheConfig::default()).build())
        .unwrap();
    let loads = Arc::new(AtomicUsize::new(0));
    let rounds = Arc::new(AtomicUsize::new(0));
    let mut g = c.benchmark_group("cache/single_flight");
    g.throughput(Throughput::Elements(100));
    g.bench_function("vitals_100_concurrent_misses", |b| {
        b.to_async(&rt).iter(|| {
            let (cache, loads, rounds) = (cache.clone(), loads.clone(), rounds.clone());
            async move {
                let key = format!("k{}", rounds.fetch_add(1, Ordering::Relaxed));
                let tasks: Vec<_> = (0..100)
                    .map(|_| {
                        let (cache, loads, key) = (cache.clone(), loads.clone(), key.clone());
                        tokio::spawn(async move {
                            cache
                                .get_or_load(&key, MIN, &[], || async move {
                                    loads.fetch_add(1, Ordering::Relaxed);
                                    tokio::time::sleep(Duration::from_millis(1)).await;
                                    Ok::<_, std::io::Error>(42u32)
                                })
                                .await
                                .unwrap()
                        })
                    })
                    .collect();
                for t in tasks {
                    black_box(t.await.unwrap());
                }
            }
        })
    });
    g.finish();
    let (l, r) = (
        loads.load(Ordering::Relaxed),
        rounds.load(Ordering::Relaxed),
    );
    eprintln!("single_flight: {l} loads for {r} rounds of 100 concurrent misses");
}

/// Keys of a Zipf(s = 1.0) distribution over 10 000 keys, `len` of them (seeded).
fn zipf_keys(len: usize, seed: u64) -> Vec<String> {
    const N: usize = 10_000;
    let mut cdf = Vec::with_capacity(N);
    let mut acc = 0.0;
    for i in 1..=N {
        acc += 1.0 / i as f64;
        cdf.push(acc);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..len)
        .map(|_| {
            let u = rng.gen::<f64>() * acc;
            let k = cdf.partition_point(|&x| x < u);
            format!("student:{k}")
        })
        .collect()
}

/// The Zipf trace with scans: after every 8 000 Zipf lookups, 2 000 keys read once in
/// order and never again (a report walking every student), twice the cache's size.
fn scan_keys(len: usize) -> Vec<String> {
    let zipf = zipf_keys(len, 11);
    let mut out = Vec::with_capacity(len);
    let mut scanned = 0usize;
    for chunk in zipf.chunks(8_000) {
        out.extend_from_slice(chunk);
        out.extend((0..2_000).map(|j| format!("scan:{}", scanned + j)));
        scanned += 2_000;
    }
    out.truncate(len);
    out
}

/// Replays `trace` through one cache: a lookup per key (`hit`), an `insert` on a miss;
/// returns the hits.
fn replay(trace: &[String], hit: impl Fn(&String) -> bool, insert: impl Fn(&String)) -> usize {
    let mut hits = 0usize;
    for k in trace {
        if hit(k) {
            hits += 1;
        } else {
            insert(k);
        }
    }
    hits
}

/// Runs a trace (get, insert on miss) through vitals L1, moka and quick_cache of 1 000
/// entries: prints the hit rates, and times each run in group `name`.
fn trace_group(c: &mut Criterion, name: &str, what: &str, trace: &[String]) {
    // One shared value: the policies, not the values, are measured.
    let value = Arc::new(summary(0));
    let run_l1 = || {
        let l1 = L1Cache::new(KEYS, MIN, 16);
        replay(
            trace,
            |k| l1.get::<Summary>(k).is_some(),
            |k| {
                l1.insert(k, value.clone(), 5_000, MIN, &[]);
            },
        )
    };
    let run_moka = || {
        let m: moka::sync::Cache<String, Arc<Summary>> = moka::sync::Cache::new(KEYS as u64);
        replay(
            trace,
            |k| m.get(k).is_some(),
            |k| m.insert(k.clone(), value.clone()),
        )
    };
    let run_quick = || {
        let q: quick_cache::sync::Cache<String, Arc<Summary>> = quick_cache::sync::Cache::new(KEYS);
        replay(
            trace,
            |k| q.get(k).is_some(),
            |k| q.insert(k.clone(), value.clone()),
        )
    };
    let pct = |h: usize| 100.0 * h as f64 / trace.len() as f64;
    eprintln!(
        "{name} hit rate ({what}): vitals_l1 {:.1}%, moka {:.1}%, quick_cache {:.1}%",
        pct(run_l1()),
        pct(run_moka()),
        pct(run_quick())
    );
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(trace.len() as u64));
    g.sample_size(10);
    g.bench_function("vitals_l1", |b| b.iter(|| black_box(run_l1())));
    g.bench_function("moka_sync", |b| b.iter(|| black_box(run_moka())));
    g.bench_function("quick_cache", |b| b.iter(|| black_box(run_quick())));
    g.finish();
}

/// A Zipf(s = 1.0) trace over 10 000 keys, 200 000 lookups, caches of 1 000
/// entries (get, insert on miss): time per lookup for vitals L1 beside moka
/// and quick_cache; hit rates are printed. Then the same with scans mixed in
/// (`cache/scan_trace`: 20 % of lookups are keys read once, in runs of 2 000).
fn zipf(c: &mut Criterion) {
    const LEN: usize = 200_000;
    let what = "s=1.0, 10k keys, 1k entries, 200k lookups";
    trace_group(c, "cache/zipf_trace", what, &zipf_keys(LEN, 7));
    let what = "zipf with a 2k-key scan after every 8k lookups, 1k entries, 200k lookups";
    trace_group(c, "cache/scan_trace", what, &scan_keys(LEN));
}

/// Coherence delay: time from `set` on instance A to the key leaving
/// instance B's L1 (pub/sub through the local Redis), B polling every 50 µs.
fn coherence(c: &mut Criterion) {
    let rt = runtime();
    let cfg = CacheConfig::default()
        .with_redis_url(Some(redis_url()))
        .with_key_prefix(format!("bench-coh-{}", std::process::id()));
    let pair = rt.block_on(async {
        let a = TieredCache::builder(cfg.clone()).build().await.ok()?;
        let b = TieredCache::builder(cfg).build().await.ok()?;
        (a.wait_subscribed(Duration::from_secs(2)).await
            && b.wait_subscribed(Duration::from_secs(2)).await)
            .then_some((a, b))
    });
    let Some((a, b)) = pair else {
        eprintln!("cache/coherence skipped: redis unreachable");
        return;
    };
    let mut g = c.benchmark_group("cache/coherence");
    g.sample_size(20);
    g.bench_function("set_on_a_to_evicted_on_b", |bch| {
        bch.to_async(&rt).iter_custom(|iters| {
            let (a, b) = (a.clone(), b.clone());
            async move {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    b.l1().unwrap().insert("k", Arc::new(i), 8, MIN, &[]);
                    let t0 = Instant::now();
                    a.set("k", i, MIN, &[]).await.unwrap();
                    while b.l1().unwrap().contains("k") {
                        tokio::time::sleep(Duration::from_micros(50)).await;
                    }
                    total += t0.elapsed();
                }
                total
            }
        })
    });
    g.finish();
    rt.block_on(async {
        a.delete("k").await;
        a.shutdown().await;
        b.shutdown().await;
    });
}

/// Every cache bench, in one run so each ratio comes from one machine state.
fn benches() {
    let mut c = Criterion::default().configure_from_args();
    l1_hit(&mut c);
    l2_hit(&mut c);
    single_flight(&mut c);
    zipf(&mut c);
    coherence(&mut c);
}

criterion_main!(benches);
