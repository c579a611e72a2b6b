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
//! printed), and that after the load every cached summary equals the database's; it prints
//! p50/p95/p99 per kind of operation.

mod common;

use common::{load_postgres_school, student_ids, vitals_on_postgres};

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use rand::{Rng, SeedableRng};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;
use vitals::cache::{EncryptionKey, Keyring};
use vitals::health::queries;
use vitals::import::{Format, ImportOptions, Source};
use vitals::{Config, Vitals};

const TASKS: usize = 200;

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

async fn one_op(
    v: &Vitals,
    op: Op,
    student: Uuid,
    rng: &mut rand::rngs::StdRng,
) -> Result<(), String> {
    match op {
        Op::CachedRead => {
            let h = v.health_cache();
            let r = match rng.gen_range(0..4) {
                0 => h.student_health_summary(student).await.and_then(|s| {
                    s.map(|_| ())
                        .ok_or_else(|| vitals::Error::from(sqlx::Error::RowNotFound))
                }),
                1 => h.vaccinations(student).await.map(|_| ()),
                2 => h.allergies(student).await.map(|_| ()),
                _ => h.chronic_conditions(student).await.map(|_| ()),
            };
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
            v.health_cache().invalidate_student(student).await;
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
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (v, stop, ids) = (vitals.clone(), stop.clone(), ids.clone());
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
                if let Err(e) = one_op(&v, op, ids[i], &mut rng).await {
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
    }
    vitals.shutdown().await;
}
