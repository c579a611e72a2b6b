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
//! drifts over seconds falls on both sides of each difference. It prints this twice: for wall
//! time, and for the CPU time of the calling thread (Linux's `/proc/thread-self/schedstat`),
//! which is where all of the instrumentation runs (SQLite runs on sqlx's worker thread) and which
//! time spent waiting for a core does not inflate.
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

/// The peer of `vitals_otel`: `iters` statements on the bare sqlx pool, each in a span made by
/// hand with the attributes vitals' statement span carries (the conventions' set, values
/// given up front), so its cost under OpenTelemetry is what any instrumentation of a statement
/// with `tracing-opentelemetry` pays.
async fn hand_spans(pool: &sqlx::SqlitePool, iters: u64) -> Duration {
    use tracing::Instrument;
    let start = Instant::now();
    for _ in 0..iters {
        let span = tracing::info_span!(
            "db.statement",
            otel.name = "SELECT",
            otel.kind = "client",
            db.system.name = "sqlite",
            db.namespace = "main",
            db.query.text = SQL,
            db.operation.name = "SELECT",
            db.collection.name = tracing::field::Empty,
            db.response.returned_rows = 1i64,
        );
        let rows = sqlx::query(SQL).fetch_all(pool).instrument(span).await;
        black_box(rows.expect("statement"));
    }
    start.elapsed()
}

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
    // A second registered dispatcher, never installed: with just one, tracing computes a
    // callsite's interest from the thread's default at its first hit, so a statement callsite
    // first hit outside the OpenTelemetry scope would stay disabled inside it too.
    let _second = tracing::Dispatch::new(tracing_subscriber::registry());
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

    // The paired measurement (see the top of the file): every round runs the variants in
    // turn. Two more than the group: spans on into tracing's registry alone (what vitals'
    // spans cost with no exporter), and OpenTelemetry's batch processor (what a production
    // host installs: the export runs on the SDK's own thread, not the caller's).
    let batch_exporter = InMemorySpanExporter::default();
    let batch_provider = SdkTracerProvider::builder()
        .with_batch_exporter(batch_exporter.clone())
        .build();
    let otel_batch = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(batch_provider.tracer("bench"))),
    );
    let spans_only = tracing::Dispatch::new(tracing_subscriber::registry());
    let none = tracing::Dispatch::none();
    let mut wall: [Vec<f64>; VARIANTS.len()] = Default::default();
    let mut cpu: [Vec<f64>; VARIANTS.len()] = Default::default();
    let (sqlx_db, monitored_db, vitals_db) = (&pool, &monitored, &handle);
    rt.block_on(async {
        for round in 0..ROUNDS {
            // Each round starts at another variant, so no variant always follows the same one
            // (the span exports, their reset) or always runs first.
            let mut runs = [(0.0, None); VARIANTS.len()];
            for k in 0..VARIANTS.len() {
                let i = (round + k) % VARIANTS.len();
                let dispatch = match i {
                    3 => &spans_only,
                    4 => &otel_batch,
                    5 | 6 => &otel,
                    _ => &none,
                };
                let _guard = tracing::dispatcher::set_default(dispatch);
                runs[i] = match i {
                    0 => per_statement(statements!(sqlx_db, PER_ROUND)).await,
                    1 => per_statement(statements!(monitored_db, PER_ROUND)).await,
                    6 => per_statement(hand_spans(sqlx_db, PER_ROUND)).await,
                    _ => per_statement(statements!(vitals_db, PER_ROUND)).await,
                };
            }
            // Outside the timing: every statement of the OpenTelemetry runs exported its span.
            let _ = batch_provider.force_flush();
            for (e, runs) in [(&exporter, 2), (&batch_exporter, 1)] {
                let exported = e.get_finished_spans().map_or(0, |s| s.len());
                assert!(
                    exported as u64 >= runs * PER_ROUND,
                    "{exported} spans exported"
                );
                e.reset();
            }
            for (i, (w, c)) in runs.into_iter().enumerate() {
                wall[i].push(w);
                cpu[i].extend(c);
            }
        }
    });
    println!(
        "pool/instrumented_statement interleaved ({ROUNDS} rounds x {PER_ROUND} statements of each):"
    );
    report("wall time", &mut wall);
    if cpu[0].len() == ROUNDS {
        report("CPU time of the calling thread", &mut cpu);
    }
    let _ = batch_provider.shutdown();
    rt.block_on(async {
        vitals.shutdown().await;
        pool.close().await;
    });
}

/// The interleaved measurement's variants, in the order each round runs them.
const VARIANTS: [&str; 7] = [
    "sqlx_pool",
    "monitored_pool",
    "vitals",
    "vitals_spans",
    "vitals_otel_batch",
    "vitals_otel",
    "sqlx_hand_span_otel",
];

/// Rounds of the interleaved measurement, and statements per variant in each.
const ROUNDS: usize = 200;
const PER_ROUND: u64 = 400;

/// µs per statement of one variant's `PER_ROUND` statements: wall time, and the CPU time
/// the calling thread spent (`None` where `/proc/thread-self/schedstat` cannot be read).
async fn per_statement(run: impl std::future::Future<Output = Duration>) -> (f64, Option<f64>) {
    let cpu_before = thread_cpu_ns();
    let took = run.await;
    let cpu = match (cpu_before, thread_cpu_ns()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / 1e3 / PER_ROUND as f64),
        _ => None,
    };
    (took.as_secs_f64() * 1e6 / PER_ROUND as f64, cpu)
}

/// Nanoseconds this thread has run on a CPU (Linux's schedstat: the first field). The
/// current-thread runtime polls every statement, the observer, the logger, the metrics and
/// the span export on this thread, while SQLite runs on sqlx's worker thread: the difference
/// between two variants is what the instrumentation costs the caller, and time spent waiting
/// for a core on a loaded machine is not in it.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Prints the bare pool's median and each other variant's median difference from it in the
/// same round, with the rounds' interquartile range.
fn report(what: &str, runs: &mut [Vec<f64>; VARIANTS.len()]) {
    let diffs: Vec<Vec<f64>> = runs[1..]
        .iter()
        .map(|v| v.iter().zip(&runs[0]).map(|(x, bare)| x - bare).collect())
        .collect();
    let (bare, _, _) = quartiles(&mut runs[0]);
    println!(
        "  {what}: {} {bare:.2} µs per statement (median)",
        VARIANTS[0]
    );
    for (name, mut d) in VARIANTS[1..].iter().zip(diffs) {
        let (median, q1, q3) = quartiles(&mut d);
        println!(
            "    {name:<18} {median:+.2} µs per statement over {} (median of rounds; \
             IQR {q1:+.2} .. {q3:+.2})",
            VARIANTS[0]
        );
    }
}

/// Median, first and third quartile (sorts `xs`; the rounds are never empty).
fn quartiles(xs: &mut [f64]) -> (f64, f64, f64) {
    xs.sort_by(f64::total_cmp);
    let at = |q: f64| xs[((xs.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.25), at(0.75))
}

criterion_group!(benches, instrumentation);
criterion_main!(benches);
