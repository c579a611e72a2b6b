//! What vitals' instrumentation costs per statement (issue 16, item 5): one acquire and one
//! `SELECT 1` on an in-memory SQLite pool (a statement of a few µs, so the instrumentation is
//! not lost in a network round trip), four ways in one group:
//!
//! - `sqlx_pool`: the bare sqlx pool, no instrumentation;
//! - `monitored_pool`: the monitored acquire and hold, the statement's span opened (no
//!   subscriber: `Span::none()`), no observer;
//! - `vitals`: the facade's handle on the same pool: the query logger (sanitise, fingerprint, statistics), the
//!   statement histogram and the pool histograms into the installed Prometheus recorder; no
//!   subscriber (today's figure plus the metrics);
//! - `vitals_otel`: the same with `tracing-opentelemetry` and the OpenTelemetry SDK installed
//!   (a simple span processor into the in-memory exporter, emptied between samples), so every
//!   statement's span is built, named from the sanitised text and exported.
//!
//! Criterion runs the four one after another, so on a shared machine a change of load between
//! them is larger than what is measured (a few µs on ~20–50 µs). After the group, the bench
//! therefore also measures the four *interleaved*: 200 rounds, each running 400 statements of
//! every variant in turn, and prints, per variant, the median over the rounds of its per-statement
//! time minus the bare pool's in the same round, with the rounds' interquartile range. Load that
//! drifts over seconds falls on both sides of each difference.
//!
//! `cargo bench -p vitals-benches --bench instrumentation -- --warm-up-time 1 --measurement-time 3`
// criterion_group! generates an undocumented `pub fn benches`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use sqlx::sqlite::SqlitePoolOptions;
use tracing_subscriber::layer::SubscriberExt;
use vitals::{Config, Vitals};
use vitals_pool::MonitoredPool;

const SQL: &str = "SELECT 1";

/// Runs `iters` acquire + `SELECT 1` on `$db` (any executor) and returns the time taken.
macro_rules! statements {
    ($db:expr, $iters:expr) => {
        async move {
            let start = Instant::now();
            for _ in 0..$iters {
                black_box(sqlx::query(SQL).fetch_all($db).await.expect("statement"));
            }
            start.elapsed()
        }
    };
}

fn instrumentation(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let pool = rt.block_on(async {
        SqlitePoolOptions::new()
            .min_connections(2)
            .max_connections(2)
            .connect("sqlite::memory:")
            .await
            .expect("in-memory SQLite")
    });
    let monitored = MonitoredPool::new(pool.clone());
    let vitals = rt.block_on(async {
        Vitals::builder()
            .config(Config::defaults().expect("defaults"))
            .sqlite_pool(pool.clone())
            .health(false)
            .build()
            .await
            .expect("vitals on in-memory SQLite")
    });
    let handle = vitals.db().sqlite().expect("SQLite").clone();

    let mut group = c.benchmark_group("pool/instrumented_statement");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sqlx_pool", |b| {
        let pool = &pool;
        b.to_async(&rt)
            .iter_custom(|iters| statements!(pool, iters));
    });
    group.bench_function("monitored_pool", |b| {
        let db = &monitored;
        b.to_async(&rt).iter_custom(|iters| statements!(db, iters));
    });
    group.bench_function("vitals", |b| {
        let db = &handle;
        b.to_async(&rt).iter_custom(|iters| statements!(db, iters));
    });
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let otel = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"))),
    );
    {
        // This thread's subscriber; the current-thread runtime polls every statement here.
        let _guard = tracing::dispatcher::set_default(&otel);
        group.bench_function("vitals_otel", |b| {
            let db = &handle;
            b.to_async(&rt).iter_custom(|iters| {
                let exporter = exporter.clone();
                async move {
                    let took: Duration = statements!(db, iters).await;
                    // Outside the timing: the exported spans, so memory stays bounded.
                    assert!(exporter.get_finished_spans().map_or(0, |s| s.len()) > 0);
                    exporter.reset();
                    took
                }
            });
        });
    }
    group.finish();

    // The paired measurement (see the top of the file): every round runs the four in turn.
    let mut diffs: [Vec<f64>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    let mut bare_times = Vec::new();
    let (sqlx_db, monitored_db, vitals_db) = (&pool, &monitored, &handle);
    rt.block_on(async {
        for _ in 0..ROUNDS {
            let bare = per_statement(statements!(sqlx_db, PER_ROUND)).await;
            let monitored = per_statement(statements!(monitored_db, PER_ROUND)).await;
            let facade = per_statement(statements!(vitals_db, PER_ROUND)).await;
            let with_spans = {
                let _guard = tracing::dispatcher::set_default(&otel);
                per_statement(statements!(vitals_db, PER_ROUND)).await
            };
            exporter.reset();
            bare_times.push(bare);
            diffs[0].push(monitored - bare);
            diffs[1].push(facade - bare);
            diffs[2].push(with_spans - bare);
        }
    });
    let (bare_median, _, _) = quartiles(&mut bare_times);
    println!(
        "pool/instrumented_statement interleaved ({ROUNDS} rounds x {PER_ROUND} statements each): \
         sqlx_pool {bare_median:.2} µs per statement (median)"
    );
    for (name, d) in ["monitored_pool", "vitals", "vitals_otel"]
        .iter()
        .zip(diffs.iter_mut())
    {
        let (median, q1, q3) = quartiles(d);
        println!(
            "  {name:<15} {median:+.2} µs per statement over sqlx_pool (median of rounds; \
             IQR {q1:+.2} .. {q3:+.2})"
        );
    }
    rt.block_on(async {
        vitals.shutdown().await;
        pool.close().await;
    });
}

/// Rounds of the interleaved measurement, and statements per variant in each.
const ROUNDS: usize = 200;
const PER_ROUND: u64 = 400;

/// µs per statement of one variant's `PER_ROUND` statements.
async fn per_statement(run: impl std::future::Future<Output = Duration>) -> f64 {
    run.await.as_secs_f64() * 1e6 / PER_ROUND as f64
}

/// Median, first and third quartile (sorts `xs`; the rounds are never empty).
fn quartiles(xs: &mut [f64]) -> (f64, f64, f64) {
    xs.sort_by(f64::total_cmp);
    let at = |q: f64| xs[((xs.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.25), at(0.75))
}

criterion_group!(benches, instrumentation);
criterion_main!(benches);
