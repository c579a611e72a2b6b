//! Benchmarks of vitals-pool against real PostgreSQL (DATABASE_URL, default
//! postgres://postgres@127.0.0.1:5432/test).
//!
//! `cargo bench -p vitals-benches --bench pool -- pool/acquire --warm-up-time 1 --measurement-time 3`
//! compares acquire + release through `MonitoredPool` with the bare sqlx pool, on the same pool.
//!
//! `cargo bench -p vitals-benches --bench pool -- pool/transaction --warm-up-time 2 --measurement-time 5`
//! compares one statement inside a transaction through `MonitoredPool::begin` (observer
//! attached) with the same statement inside a bare sqlx transaction, on the same pool; and a
//! whole transaction (BEGIN, the statement, COMMIT) both ways.
//!
//! `cargo bench -p vitals-benches --bench pool -- pool/sizes` prints throughput and p99 of a
//! latency-bound and a CPU-bound query at pool sizes 5, 10, 25 and 50 (not a criterion
//! measurement: a fixed 2 s run per cell with 100 client tasks; it runs only when asked for).
// criterion_group! generates an undocumented `pub fn benches`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sqlx::postgres::{PgPool, PgPoolOptions};
use vitals_pool::{MonitoredPool, QueryObserver};

#[path = "common/runtime.rs"]
mod runtime;

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Pool options of exactly `size` connections, all opened by [`connect`] and kept, so no
/// connect falls inside a measurement.
fn sized(size: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .min_connections(size)
        .max_connections(size)
}

/// A pool with `options` on `DATABASE_URL`.
async fn connect(options: PgPoolOptions) -> PgPool {
    options
        .connect(&database_url())
        .await
        .expect("connect to DATABASE_URL")
}

fn multi_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Acquire and release one connection, through `MonitoredPool` and through the bare sqlx pool
/// it wraps (same pool, 4 connections), with sqlx's default ping before acquire and without.
/// A current-thread runtime keeps cross-thread wake-ups out of the comparison.
fn acquire_release(c: &mut Criterion) {
    let rt = runtime::current_thread();
    for ping in [true, false] {
        let pool = rt.block_on(connect(sized(4).test_before_acquire(ping)));
        let monitored = MonitoredPool::new(pool.clone());
        let label = if ping { "ping" } else { "no_ping" };
        let mut group = c.benchmark_group(format!("pool/acquire_release/{label}"));
        group.bench_function("sqlx_pool", |b| {
            b.to_async(&rt).iter(|| async {
                let conn = pool.acquire().await.expect("acquire");
                drop(std::hint::black_box(conn));
            });
        });
        group.bench_function("monitored_pool", |b| {
            b.to_async(&rt).iter(|| async {
                let conn = monitored.acquire().await.expect("acquire");
                drop(std::hint::black_box(conn));
            });
        });
        group.finish();
        rt.block_on(pool.close());
    }
}

/// Counts the statements it is told of: the cheapest observer that still makes the call.
#[derive(Default)]
struct Count(AtomicU64);

impl QueryObserver for Count {
    fn on_query(&self, _: &str, _: Duration, _: u64, _: Option<&sqlx::Error>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// A future timing `$iters` `SQL` statements in one transaction of `$db` (a pool, monitored
/// or not), without its `BEGIN` and `ROLLBACK`: one body for both sides of the comparison
/// (a macro because sqlx's and the monitored transaction are different types).
macro_rules! statements_in_one_transaction {
    ($db:expr, $iters:expr) => {
        async move {
            let mut tx = $db.begin().await.expect("begin");
            let start = Instant::now();
            for _ in 0..$iters {
                black_box(sqlx::query(SQL).execute(&mut *tx).await.expect("statement"));
            }
            let elapsed = start.elapsed();
            tx.rollback().await.expect("rollback");
            elapsed
        }
    };
}

/// `SELECT 1` inside an open transaction, through a `MonitoredTransaction` (`&mut *tx`, each
/// statement timed into an observer; with the benchmark histogram off, as in development, and
/// on, as in production) and through a bare sqlx `Transaction` on the same pool; then a whole
/// transaction per iteration (BEGIN, `SELECT 1`, COMMIT: three round trips, all observed on
/// the monitored side). The transaction of the first pair is opened before the timed loop
/// and rolled back after it, so only the statement is timed. Current-thread runtime, as above.
fn transaction(c: &mut Criterion) {
    let rt = runtime::current_thread();
    let pool = rt.block_on(connect(sized(2)));
    let observed = Arc::new(Count::default());
    let monitored = MonitoredPool::builder(pool.clone())
        .observer(observed.clone())
        .build();
    let benchmarked = MonitoredPool::builder(pool.clone())
        .observer(observed.clone())
        .benchmark(true)
        .build();
    const SQL: &str = "SELECT 1";

    let mut group = c.benchmark_group("pool/transaction/statement");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sqlx_transaction", |b| {
        let pool = &pool;
        b.to_async(&rt)
            .iter_custom(|iters| statements_in_one_transaction!(pool, iters));
    });
    for (name, handle) in [
        ("monitored_transaction", &monitored),
        ("monitored_transaction_benchmark_on", &benchmarked),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt)
                .iter_custom(|iters| statements_in_one_transaction!(handle, iters));
        });
    }
    group.finish();

    let mut group = c.benchmark_group("pool/transaction/begin_statement_commit");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sqlx_transaction", |b| {
        b.to_async(&rt).iter(|| async {
            let mut tx = pool.begin().await.expect("begin");
            black_box(sqlx::query(SQL).execute(&mut *tx).await.expect("statement"));
            tx.commit().await.expect("commit");
        });
    });
    group.bench_function("monitored_transaction", |b| {
        b.to_async(&rt).iter(|| async {
            let mut tx = monitored.begin().await.expect("begin");
            black_box(sqlx::query(SQL).execute(&mut *tx).await.expect("statement"));
            tx.commit().await.expect("commit");
        });
    });
    group.finish();
    rt.block_on(pool.close());
}

/// The same comparison as `pool/transaction/statement`, paired so that neither load from other
/// processes nor a difference between backends can favour one side: one monitored transaction,
/// and 200 rounds each timing 200 `SELECT 1` through it (`&mut *tx`, observed) and 200 on its
/// driver connection (`&mut **tx`, bare sqlx, same backend, same transaction), alternating
/// which goes first. Prints the median per-statement time of each side over the rounds, and
/// the median of the rounds' differences and ratios. Not a criterion measurement; runs when a
/// filter names `pool/transaction`.
fn transaction_paired(_c: &mut Criterion) {
    if !std::env::args().any(|a| a.contains("pool/transaction")) {
        return;
    }
    let rt = runtime::current_thread();
    rt.block_on(async {
        let pool = connect(sized(2)).await;
        let observed = Arc::new(Count::default());
        let monitored = MonitoredPool::builder(pool.clone())
            .observer(observed.clone())
            .build();
        let mut tx = monitored.begin().await.expect("begin");
        const N: u32 = 200;
        let (mut bare, mut mon, mut diff, mut ratio) = (vec![], vec![], vec![], vec![]);
        for round in 0..200 {
            let mut b = Duration::ZERO;
            let mut m = Duration::ZERO;
            for side in [round % 2, 1 - round % 2] {
                let start = Instant::now();
                for _ in 0..N {
                    if side == 0 {
                        black_box(sqlx::query("SELECT 1").execute(&mut **tx).await)
                            .expect("statement");
                    } else {
                        black_box(sqlx::query("SELECT 1").execute(&mut *tx).await)
                            .expect("statement");
                    }
                }
                if side == 0 {
                    b = start.elapsed() / N;
                } else {
                    m = start.elapsed() / N;
                }
            }
            bare.push(b.as_secs_f64() * 1e6);
            mon.push(m.as_secs_f64() * 1e6);
            diff.push((m.as_secs_f64() - b.as_secs_f64()) * 1e6);
            ratio.push(m.as_secs_f64() / b.as_secs_f64());
        }
        tx.rollback().await.expect("rollback");
        pool.close().await;
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "pool/transaction/paired: per statement, median of 200 rounds of {N}: \
             bare (&mut **tx) {:.2} µs, monitored (&mut *tx) {:.2} µs, \
             difference {:+.2} µs, ratio {:.3}",
            median(&mut bare),
            median(&mut mon),
            median(&mut diff),
            median(&mut ratio)
        );
    });
}

struct Cell {
    queries: usize,
    wall: Duration,
    p50: Duration,
    p99: Duration,
    errors: usize,
}

async fn run_cell(size: u32, sql: &'static str, clients: usize, run_for: Duration) -> Cell {
    let pool = connect(sized(size).acquire_timeout(Duration::from_secs(30))).await;
    let pool = MonitoredPool::new(pool);
    let start = Instant::now();
    let deadline = start + run_for;
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match sqlx::query(sql).execute(&pool).await {
                        Ok(_) => lat.push(t.elapsed()),
                        Err(_) => errors += 1,
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await.expect("client task");
        all.extend(lat);
        errors += e;
    }
    // Queries started before the deadline finish after it: divide by the whole run.
    let wall = start.elapsed();
    pool.inner().close().await;
    all.sort();
    let q = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Cell {
        queries: all.len(),
        wall,
        p50: q(0.50),
        p99: q(0.99),
        errors,
    }
}

/// Throughput and p99 of `pg_sleep(0.005)` (latency-bound) and a 200 000-row
/// `generate_series` count (CPU-bound) with 100 clients at pool sizes 5, 10, 25, 50.
fn pool_sizes(_c: &mut Criterion) {
    if !std::env::args().any(|a| a.contains("pool/sizes")) {
        return;
    }
    let rt = multi_thread_runtime();
    let run_for = Duration::from_secs(2);
    println!("workload | pool size | queries/s | p50 ms | p99 ms | errors");
    for (name, sql) in [
        ("latency-bound pg_sleep(0.005)", "SELECT pg_sleep(0.005)"),
        (
            "cpu-bound count(generate_series(1,200000))",
            "SELECT count(*) FROM generate_series(1, 200000)",
        ),
    ] {
        for size in [5u32, 10, 25, 50] {
            let cell = rt.block_on(run_cell(size, sql, 100, run_for));
            println!(
                "{name} | {size} | {:.0} | {:.1} | {:.1} | {}",
                cell.queries as f64 / cell.wall.as_secs_f64(),
                cell.p50.as_secs_f64() * 1000.0,
                cell.p99.as_secs_f64() * 1000.0,
                cell.errors
            );
        }
    }
}

criterion_group!(
    benches,
    acquire_release,
    transaction,
    transaction_paired,
    pool_sizes
);
criterion_main!(benches);
