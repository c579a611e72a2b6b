//! A bounded soak through the facade on real PostgreSQL and Redis: 200 concurrent tasks mix
//! cached reads, writes with invalidation and dashboard queries while imports run, for
//! `SOAK_SECS` seconds (default 15; 60 for the issue's soak):
//!
//! ```text
//! SOAK_SECS=60 DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo test -p vitals --test soak -- --nocapture
//! ```
//!
//! It asserts no error of any kind, resident memory flat after warm-up (a generous bound,
//! printed), the cached reads' hit rate (at least 0.7 in a run of 60 s), and that after the load
//! every cached entry equals the database's; it prints p50/p95/p99 per kind of operation.
//! A write adds a vaccination and invalidates what that changes, the vaccinations and the
//! summary (the report's `@InvalidateCache` on `addVaccination`).

mod common;

use common::{load_postgres_school, student_ids, vitals_on_postgres};

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use rand::{Rng, SeedableRng};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;
use vitals::cache::{EncryptionKey, Keyring};
use vitals::health::{queries, HealthData};
use vitals::import::{Format, ImportOptions, Source};
use vitals::{Config, Vitals};

const TASKS: usize = 200;

/// What a write (a vaccination added) invalidates, as the report's `@InvalidateCache` on
/// `addVaccination` does (`invalidateTypes: ['vaccinations', 'health-summary']`): the kinds of
/// a cached read it changes, by their index in [`one_op`] (0 the summary, 1 the
/// vaccinations). The allergies and conditions it does not change stay cached.
const WRITE_INVALIDATES: [(usize, HealthData); 2] =
    [(0, HealthData::Summary), (1, HealthData::Vaccinations)];

fn soak_duration() -> Duration {
    let secs = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(15);
    Duration::from_secs(secs.max(3))
}

/// Resident set size of this process, in bytes (`VmRSS` of `/proc/self/status`).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/self/status");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Op {
    CachedRead,
    Write,
    Dashboard,
    Import,
}

/// Asserts that a read through the cache (awaited first) returns what the database returns.
async fn assert_fresh<T, E1, E2>(
    what: &str,
    cached: impl Future<Output = Result<T, E1>>,
    fresh: impl Future<Output = Result<T, E2>>,
) where
    T: PartialEq + std::fmt::Debug,
    E1: std::fmt::Debug,
    E2: std::fmt::Debug,
{
    let cached = cached.await.unwrap();
    let fresh = fresh.await.unwrap();
    assert_eq!(
        cached, fresh,
        "stale cached {what} of a student after the soak"
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn import_batch(batch: usize) -> String {
    let mut s = String::new();
    for i in 0..50 {
        let id = Uuid::new_v4();
        s.push_str(&format!(
            "{{\"type\":\"student\",\"id\":\"{id}\",\"student_number\":\"SOAK-{batch}-{i}\",\"first_name\":\"Sk\",\"last_name\":\"Bt\",\"date_of_birth\":\"2013-05-05\",\"grade\":\"6\"}}\n\
             {{\"type\":\"vaccination\",\"student_id\":\"{id}\",\"vaccine_name\":\"HepB\",\"dose_number\":1,\"administered_on\":\"2014-01-01\"}}\n"
        ));
    }
    s
}

/// What the mix itself did to a cached entry before a read of it: the causes of the misses
/// a cache can't avoid, counted by the soak (not the cache) to tell them from the others;
/// and how many loads a write could legitimately have overtaken.
#[derive(Default)]
struct Mix {
    entries: std::sync::Mutex<std::collections::HashMap<(Uuid, usize), Entry>>,
    /// Reads of an entry never read before (a miss, cold).
    first_reads: AtomicU64,
    /// Reads whose entry a write of its student invalidated since its last read (a miss,
    /// legitimately).
    after_write: AtomicU64,
    /// Reads of an entry read before and not written since (a hit, unless the cache lost it
    /// or its load is still in flight).
    repeat_reads: AtomicU64,
    /// Entries a write invalidated while a read of them was in progress: the most loads the
    /// writes can have overtaken (a delete makes uncacheable at most the one load of its key
    /// in flight, and a load in flight is a read in progress).
    overtakable: AtomicU64,
}

#[derive(Default)]
struct Entry {
    read_before: bool,
    written_since: bool,
    reading: u32,
}

impl Mix {
    fn read_starts(&self, student: Uuid, kind: usize) {
        let counter = {
            let mut entries = self.entries.lock().unwrap();
            let e = entries.entry((student, kind)).or_default();
            let counter = match (e.read_before, e.written_since) {
                (false, _) => &self.first_reads,
                (true, true) => &self.after_write,
                (true, false) => &self.repeat_reads,
            };
            (e.read_before, e.written_since) = (true, false);
            e.reading += 1;
            counter
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn read_ends(&self, student: Uuid, kind: usize) {
        if let Some(e) = self.entries.lock().unwrap().get_mut(&(student, kind)) {
            e.reading -= 1;
        }
    }

    /// The kinds of `student` being read now.
    fn reading(&self, student: Uuid) -> [bool; 4] {
        let entries = self.entries.lock().unwrap();
        std::array::from_fn(|k| entries.get(&(student, k)).is_some_and(|e| e.reading > 0))
    }

    /// A write of `student` invalidated its entries of [`WRITE_INVALIDATES`]; `before` is
    /// [`Mix::reading`] of just before the invalidation (a load that ends during it was in
    /// progress then, one that starts during it still is after).
    fn wrote(&self, student: Uuid, before: [bool; 4]) {
        let after = self.reading(student);
        let kinds = WRITE_INVALIDATES.map(|(k, _)| k);
        let overtakable = kinds.iter().filter(|&&k| before[k] || after[k]).count();
        self.overtakable
            .fetch_add(overtakable as u64, Ordering::Relaxed);
        let mut entries = self.entries.lock().unwrap();
        for kind in kinds {
            entries.entry((student, kind)).or_default().written_since = true;
        }
    }
}

async fn one_op(
    v: &Vitals,
    op: Op,
    student: Uuid,
    rng: &mut rand::rngs::StdRng,
    mix: &Mix,
) -> Result<(), String> {
    match op {
        Op::CachedRead => {
            let h = v.health_cache();
            let kind = rng.gen_range(0..4);
            mix.read_starts(student, kind);
            let r = match kind {
                0 => h.student_health_summary(student).await.and_then(|s| {
                    s.map(|_| ())
                        .ok_or_else(|| vitals::Error::from(sqlx::Error::RowNotFound))
                }),
                1 => h.vaccinations(student).await.map(|_| ()),
                2 => h.allergies(student).await.map(|_| ()),
                _ => h.chronic_conditions(student).await.map(|_| ()),
            };
            mix.read_ends(student, kind);
            r.map_err(|e| format!("read: {e}"))
        }
        Op::Write => {
            let vaccine = format!("Soak-{}", Uuid::new_v4().simple());
            let day = NaiveDate::from_ymd_opt(2026, 1, 1 + rng.gen_range(0..28)).unwrap();
            let n = common::add_vaccination(v, student, &vaccine, day)
                .await
                .map_err(|e| format!("write: {e}"))?;
            if n != 1 {
                return Err(format!("write: {n} rows"));
            }
            let before = mix.reading(student);
            v.health_cache()
                .invalidate(student, &WRITE_INVALIDATES.map(|(_, kind)| kind))
                .await;
            mix.wrote(student, before);
            Ok(())
        }
        Op::Dashboard => {
            if rng.gen_bool(0.5) {
                let stats = v.dashboard().stats().await;
                if stats.failures.is_empty() {
                    Ok(())
                } else {
                    Err(format!("dashboard: {:?}", stats.failures))
                }
            } else {
                v.dashboard()
                    .recent_activities(10)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("recent activities: {e}"))
            }
        }
        Op::Import => unreachable!("imports run in their own task"),
    }
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn soak_through_the_facade_has_no_error_flat_memory_and_coherent_cache(
    opts: PgPoolOptions,
    conn: PgConnectOptions,
) {
    let duration = soak_duration();
    let pool = opts.max_connections(16).connect_with(conn).await.unwrap();
    let mut config = Config::from_env_with(|name| match name {
        "CACHE_WARMING_ENABLED" => Some("false".into()),
        _ => None,
    })
    .unwrap();
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let ring = Keyring::new(EncryptionKey::new("soak", [7; 32]).unwrap(), []);
    config.cache = config
        .cache
        .with_redis_url(Some(redis))
        .with_key_prefix(format!("vt-soak-{}", Uuid::new_v4().simple()))
        .with_encryption(Some(ring));
    let vitals = vitals_on_postgres(config, pool.clone(), Some(Duration::from_secs(1))).await;
    let school = load_postgres_school(&pool, 300, 21).await;
    let ids = student_ids(&school);

    let stop = Arc::new(AtomicBool::new(false));
    let mix = Arc::new(Mix::default());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (v, stop, ids, mix) = (vitals.clone(), stop.clone(), ids.clone(), mix.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(t as u64);
            let mut samples: Vec<(Op, Duration)> = Vec::new();
            let mut errors: Vec<String> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let op = match rng.gen_range(0..100) {
                    0..85 => Op::CachedRead,
                    85..90 => Op::Write,
                    _ => Op::Dashboard,
                };
                // A skewed choice: a fifth of the students get most of the traffic.
                let i = if rng.gen_bool(0.8) {
                    rng.gen_range(0..ids.len() / 5)
                } else {
                    rng.gen_range(0..ids.len())
                };
                let t0 = Instant::now();
                if let Err(e) = one_op(&v, op, ids[i], &mut rng, &mix).await {
                    errors.push(e);
                }
                samples.push((op, t0.elapsed()));
            }
            (samples, errors)
        }));
    }
    // Imports run beside the load, one after another.
    let importer = {
        let (v, stop) = (vitals.clone(), stop.clone());
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut errors = Vec::new();
            let mut batch = 0;
            while !stop.load(Ordering::Relaxed) {
                let source = Source::from_reader(
                    std::io::Cursor::new(import_batch(batch).into_bytes()),
                    Format::Ndjson,
                )
                .unwrap();
                let t0 = Instant::now();
                match v
                    .import(source, Some(ImportOptions::new().chunk_size(40)))
                    .await
                    .map(|outcome| outcome.report)
                {
                    Ok(r) if r.imported == 100 && r.total == 100 => {}
                    Ok(r) => errors.push(format!("import: {r:?}")),
                    Err(e) => errors.push(format!("import: {e}")),
                }
                samples.push((Op::Import, t0.elapsed()));
                batch += 1;
            }
            (samples, errors)
        })
    };
    // Resident memory, sampled every 250 ms.
    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut rss = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                rss.push((started.elapsed(), rss_bytes()));
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            rss
        })
    };
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);

    let mut samples = Vec::new();
    let mut errors = Vec::new();
    for t in tasks {
        let (s, e) = t.await.unwrap();
        samples.extend(s);
        errors.extend(e);
    }
    let (s, e) = importer.await.unwrap();
    samples.extend(s);
    errors.extend(e);
    let rss = sampler.await.unwrap();
    let elapsed = started.elapsed();

    // Figures.
    let mut by_op: std::collections::BTreeMap<Op, Vec<Duration>> = Default::default();
    for (op, d) in &samples {
        by_op.entry(*op).or_default().push(*d);
    }
    eprintln!(
        "soak: {TASKS} tasks + 1 importer for {:.1} s: {} operations ({:.0}/s), {} errors",
        elapsed.as_secs_f64(),
        samples.len(),
        samples.len() as f64 / elapsed.as_secs_f64(),
        errors.len()
    );
    let mut all: Vec<Duration> = samples.iter().map(|(_, d)| *d).collect();
    all.sort();
    for (op, mut d) in by_op
        .into_iter()
        .map(|(k, v)| (format!("{k:?}"), v))
        .chain([("All".to_owned(), all)])
    {
        d.sort();
        eprintln!(
            "  {op:<11} n={:<7} p50={:>9.2?} p95={:>9.2?} p99={:>9.2?} max={:>9.2?}",
            d.len(),
            percentile(&d, 0.50),
            percentile(&d, 0.95),
            percentile(&d, 0.99),
            d.last().copied().unwrap_or_default()
        );
    }
    let stats = vitals.cache_stats();
    eprintln!(
        "  cache: hit rate {:.2}, l1 entries {}, l1 bytes {}, loads {}, coalesced {}, redis errors {}",
        stats.hit_rate, stats.l1_entries, stats.l1_bytes, stats.loads, stats.coalesced, stats.redis_errors
    );
    // Every cached read is one lookup (the dashboard and the imports make none), so the
    // cache's hit rate is the cached reads' (the coherence check below runs after this).
    let reads = samples
        .iter()
        .filter(|(op, _)| *op == Op::CachedRead)
        .count() as u64;
    assert_eq!(
        stats.hits + stats.misses,
        reads,
        "lookups other than the cached reads"
    );
    let cached_read_hit_rate = stats.hits as f64 / reads.max(1) as f64;
    let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let (first, after_write) = (n(&mix.first_reads), n(&mix.after_write));
    let mix_allows = 1.0 - (first + after_write) as f64 / reads.max(1) as f64;
    eprintln!(
        "  cached reads {reads}: hit rate {cached_read_hit_rate:.2} (hits {}: l1 {}, l2 {}; misses {}), the most the mix allows {mix_allows:.2}",
        stats.hits, stats.l1_hits, stats.l2_hits, stats.misses
    );
    eprintln!(
        "  misses the mix makes: first reads {first}, first reads after a write of the entry {after_write}; \
         misses from loads in flight: waited on one {}, loads returned uncached (overtaken by a write) {} of at most {}, of them by Redis {}; \
         l1 evictions {}, l1 expired {}, type mismatches {}, load errors {}, repeats {}",
        stats.coalesced,
        stats.stale_loads,
        n(&mix.overtakable),
        stats.redis_stale_loads,
        stats.l1_evictions,
        stats.l1_expired,
        stats.type_mismatches,
        stats.load_errors,
        n(&mix.repeat_reads),
    );
    let mut slow: Vec<Duration> = samples
        .iter()
        .filter(|(op, d)| *op == Op::CachedRead && *d >= Duration::from_millis(1))
        .map(|(_, d)| *d)
        .collect();
    slow.sort();
    eprintln!(
        "  cached reads over 1 ms (the misses, waiting on a load, and slow L2 hits): {}, p50 {:.2?}",
        slow.len(),
        percentile(&slow, 0.5)
    );
    let warm_end = duration / 3;
    let baseline = rss
        .iter()
        .filter(|(t, _)| *t <= warm_end)
        .map(|(_, b)| *b)
        .max()
        .unwrap_or_else(rss_bytes);
    let peak_after = rss
        .iter()
        .filter(|(t, _)| *t > warm_end)
        .map(|(_, b)| *b)
        .max()
        .unwrap_or(baseline);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    eprintln!(
        "  rss: at start {:.1} MiB, peak during warm-up ({:.0} s) {:.1} MiB, peak after {:.1} MiB, at end {:.1} MiB",
        mib(rss.first().map_or(0, |r| r.1)),
        warm_end.as_secs_f64(),
        mib(baseline),
        mib(peak_after),
        mib(rss.last().map_or(0, |r| r.1)),
    );

    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert!(
        samples.len() > TASKS,
        "the load hardly ran: {} operations",
        samples.len()
    );
    // Flat: after warm-up, growth stays within 64 MiB or half the warm-up peak, whichever is
    // larger (the tables, and so the cached summaries, keep growing with the writes).
    let allowed = (64 * 1024 * 1024).max(baseline / 2);
    assert!(
        peak_after <= baseline + allowed,
        "resident memory grew from {:.1} MiB to {:.1} MiB after warm-up",
        mib(baseline),
        mib(peak_after)
    );

    // Invalidation does not starve the cache (issue 15 item 3). A load is returned uncached
    // only when a write of its own key overtook it (no other change moves its epochs) ...
    let overtakable = n(&mix.overtakable);
    assert!(
        stats.stale_loads <= overtakable + overtakable / 20 + 10,
        "{} loads returned uncached, but writes overtook at most {overtakable}",
        stats.stale_loads
    );
    // ... and the reads that ran a load of their own (misses that did not wait on a load in
    // flight) stay near what the mix forces (first reads, first reads after a write:
    // 1 - mix_allows). The strict hit rate also counts the reads that waited on a load in
    // flight as misses: how many there are follows how long a miss waits for the database
    // (docs/cache.md, Coherence).
    let ran_a_load = (stats.misses - stats.coalesced) as f64 / reads.max(1) as f64;
    assert!(
        cached_read_hit_rate + stats.coalesced as f64 / reads.max(1) as f64 >= 0.7,
        "{:.2} of the cached reads ran a load (the mix makes {:.2})",
        ran_a_load,
        1.0 - mix_allows
    );
    // The strict hit rate, at least 0.7 in the issue's soak (60 s: 0.75 measured on a quiet
    // machine, docs/cache.md). Not asserted in the default 15 s run: its first reads and its
    // waits on the database grow with the machine's load (a CI run at load 11 made 4 239
    // cached reads where a quiet one makes 25 000), so a fixed floor there would say more
    // about the machine than about the cache; the two assertions above hold at any load.
    if duration >= Duration::from_secs(60) {
        assert!(
            cached_read_hit_rate >= 0.7,
            "cached reads' hit rate {cached_read_hit_rate:.2} under 0.7 (the mix allows {mix_allows:.2})"
        );
    }

    // Every write was announced: what the cache serves now equals the database.
    let (db, tables, cache) = (
        vitals.db().postgres().unwrap(),
        vitals.tables(),
        vitals.health_cache(),
    );
    for &id in ids.iter().take(60) {
        let summary = queries::health_summary_postgres(db, tables, id);
        let cached = async {
            let s = cache.student_health_summary(id).await;
            s.map(|s| s.map(|s| vitals::health::HealthSummary::clone(&s)))
        };
        assert_fresh("summary", cached, summary).await;
        let vaccinations = queries::vaccinations_postgres(db, tables, id);
        let cached = async { cache.vaccinations(id).await.map(|v| Vec::clone(&v)) };
        assert_fresh("vaccinations", cached, vaccinations).await;
        // What the writes did not invalidate was not changed by them either.
        let allergies = queries::allergies_postgres(db, tables, id);
        let cached = async { cache.allergies(id).await.map(|v| Vec::clone(&v)) };
        assert_fresh("allergies", cached, allergies).await;
        let conditions = queries::chronic_conditions_postgres(db, tables, id);
        let cached = async { cache.chronic_conditions(id).await.map(|v| Vec::clone(&v)) };
        assert_fresh("conditions", cached, conditions).await;
    }
    vitals.shutdown().await;
}
