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
//! A statement costs 20–110 µs here, with rounds' interquartile ranges of ±5–20 µs (sqlx's hop
//! to SQLite's worker thread), so these end-to-end figures cannot resolve a bound of 3 µs. The
//! second half of the bench (`instrumentation_alone`) therefore times what vitals adds to a
//! statement without the statement, on the real code paths, in two parts whose sum is the
//! whole instrumentation of one statement run with `&handle` as the executor:
//!
//! - `pool/instrumentation_alone/acquire_release`: acquire and release of an idle connection
//!   with no ping before acquire (`test_before_acquire(false)`), so nothing leaves the calling
//!   thread: the bare sqlx pool beside the facade's handle (waiter count, acquire and hold
//!   histograms, the Prometheus recorder's acquire-wait and hold histograms). Only the two calls
//!   are timed: sqlx's release pings the connection on its worker thread in a task it spawns,
//!   and that wait, the same on both sides, is left out.
//! - `pool/instrumentation_alone/statement_end`: what the handle does around a statement, with
//!   no database: the statement's span opened (`MonitoredPool::statement_span`), its end
//!   reported as the handle's executors report it (`MonitoredPool::report_statement`:
//!   the facade's observer: the query logger (sanitise once, fingerprint, statistics), the
//!   span's whole end in one record (`end_statement_span`: rows, attributes, name), the
//!   statement histogram), and the
//!   span closed (under OpenTelemetry: built and exported). Without a subscriber, with spans
//!   into tracing's registry alone, and with `tracing-opentelemetry` into the SDK's in-memory
//!   exporter; beside it, the peer: a span made by hand with the same attributes under the same
//!   pipeline, closed (what any `tracing-opentelemetry` instrumentation of a statement pays).
//!   For `SELECT 1` and for a typical read of a host (a table, placeholders, 120 bytes).
//!
//! Every run of the facade's observer checks that the sanitiser ran at most once for its text
//! (`vitals_querylog::sanitizer_runs_on_this_thread`; the logger remembers what it made of a
//! text); the end-to-end rounds check it too. After the groups, interleaved rounds of both parts print a table: each part's median per
//! operation, and the whole (the acquire's difference plus the statement's end, per round) beside
//! the 3 µs target.
//!
//! Not in the sum: the executor's glue around the driver's stream (`&MonitoredPool`'s
//! `fetch_many`: a channel of 8 and one boxed stream more than sqlx's `&Pool`, and two clock
//! reads), which cannot run without a statement; the end-to-end rounds bound it.
//!
//! `cargo bench -p vitals-benches --bench instrumentation -- --warm-up-time 1 --measurement-time 3`
// criterion_group! generates an undocumented `pub fn benches`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::{Sqlite, SqlitePool};
use tracing_subscriber::layer::SubscriberExt;
use vitals::{Config, Vitals};
use vitals_pool::MonitoredPool;
use vitals_querylog::sanitizer_runs_on_this_thread;

#[path = "common/runtime.rs"]
mod runtime;

/// The end-to-end rounds' variants and statistics.
#[path = "instrumentation/rounds.rs"]
mod rounds;

use rounds::{per_statement, quartiles, report, PER_ROUND, ROUNDS, VARIANTS};

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
    let rt = runtime::current_thread();
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
        b.to_async(&rt).iter_custom(|iters| async move {
            let runs = sanitizer_runs_on_this_thread();
            let took: Duration = statements!(db, iters).await;
            sanitised_at_most_once(runs, true);
            took
        });
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
                    let runs = sanitizer_runs_on_this_thread();
                    let took: Duration = statements!(db, iters).await;
                    sanitised_at_most_once(runs, true);
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
                let sanitised = sanitizer_runs_on_this_thread();
                runs[i] = match i {
                    0 => per_statement(statements!(sqlx_db, PER_ROUND)).await,
                    1 => per_statement(statements!(monitored_db, PER_ROUND)).await,
                    6 => per_statement(hand_spans(sqlx_db, PER_ROUND)).await,
                    _ => per_statement(statements!(vitals_db, PER_ROUND)).await,
                };
                // The facade's variants sanitise the text at most once; the others not at all.
                sanitised_at_most_once(sanitised, (2..=5).contains(&i));
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

/// Checks, outside any timing, how often the sanitiser ran on this thread since it had run
/// `before` times, for a run of one statement text: at most once for the facade (`facade`),
/// for the logger, the span and the metrics alike (the span's `db.query.text` and name and the
/// histogram's labels come from the logger's `RecordedQuery`, and the logger remembers what it
/// made of a text it saw), and never for the others. A span or a metric that sanitised on its
/// own would run it once per statement.
fn sanitised_at_most_once(before: u64, facade: bool) {
    let ran = sanitizer_runs_on_this_thread().wrapping_sub(before);
    let most = u64::from(facade);
    assert!(
        ran <= most,
        "sanitiser ran {ran} times for one text (at most {most})"
    );
}

/// The statement of the instrumentation-alone part beside `SELECT 1`: a host's typical read
/// (a table, placeholders, an ORDER BY), 120 bytes for the sanitiser.
const TYPICAL: &str = "SELECT s.id, s.first_name, s.last_name FROM students s \
                       WHERE s.school_id = $1 AND s.last_name = $2 ORDER BY s.last_name LIMIT 50";

/// What a reported statement says it took: under the logger's slow thresholds, as most are.
const ELAPSED: Duration = Duration::from_micros(40);

/// The statements of the instrumentation-alone part: the text, its label, and what the
/// hand-made span of the peer is given up front (its name, operation and table).
const TEXTS: [(&str, &str, &str, &str, Option<&str>); 2] = [
    (SQL, "select_1", "SELECT", "SELECT", None),
    (
        TYPICAL,
        "typical",
        "SELECT students",
        "SELECT",
        Some("students"),
    ),
];

/// An in-memory SQLite pool of one connection that is not pinged before it is handed out, so
/// acquiring it when idle is sqlx's bookkeeping alone, on the calling thread.
async fn no_ping_pool() -> SqlitePool {
    SqlitePoolOptions::new()
        .min_connections(1)
        .max_connections(1)
        .test_before_acquire(false)
        .connect("sqlite::memory:")
        .await
        .expect("in-memory SQLite")
}

/// `iters` acquires and releases of `pool`'s one connection through `acquire` (the bare pool's
/// or the handle's), timing only the two calls. Before each, untimed, it waits until the
/// connection is idle again: sqlx's release pings it on SQLite's worker thread in a task it
/// spawns, the same for both sides.
async fn acquire_release<C, E, Fut>(
    pool: &SqlitePool,
    mut acquire: impl FnMut() -> Fut,
    iters: u64,
) -> Duration
where
    E: std::fmt::Debug,
    Fut: std::future::Future<Output = Result<C, E>>,
{
    let mut timed = Duration::ZERO;
    for _ in 0..iters {
        while pool.num_idle() == 0 {
            tokio::task::yield_now().await;
        }
        let start = Instant::now();
        let conn = acquire().await.expect("acquire an idle connection");
        drop(black_box(conn));
        timed += start.elapsed();
    }
    timed
}

/// `iters` statement ends as the handle's executors make them, without the statement: the span
/// opened, the end reported (the facade's observer: the logger, the span's rows, attributes and
/// name in one record, the statement histogram), the span closed (exported under
/// OpenTelemetry). Checks the sanitiser ran at most once.
fn statement_ends(handle: &MonitoredPool<Sqlite>, sql: &str, iters: u64) -> Duration {
    let sanitised = sanitizer_runs_on_this_thread();
    let start = Instant::now();
    for _ in 0..iters {
        let span = handle.statement_span();
        handle.report_statement(&span, sql, ELAPSED, 1, None);
        drop(span);
    }
    let took = start.elapsed();
    sanitised_at_most_once(sanitised, true);
    took
}

/// The peer of `statement_ends`: `iters` spans made by hand with the attributes of vitals'
/// statement span, their values given up front (no sanitiser, no logger, no metrics), closed.
fn hand_span_ends(text: (&str, &str, &str, &str, Option<&str>), iters: u64) -> Duration {
    let (sql, _, name, operation, collection) = text;
    let start = Instant::now();
    for _ in 0..iters {
        let span = tracing::info_span!(
            "db.statement",
            otel.name = name,
            otel.kind = "client",
            db.system.name = "sqlite",
            db.query.text = sql,
            db.operation.name = operation,
            db.collection.name = collection,
            db.response.returned_rows = 1i64,
        );
        drop(black_box(span));
    }
    start.elapsed()
}

/// The subscriber settings of the instrumentation-alone part: none, spans into tracing's
/// registry alone, `tracing-opentelemetry` with the SDK's simple processor (the export on the
/// caller's thread) and with its batch processor (on the SDK's thread), each into an
/// in-memory exporter.
struct Subscribers {
    modes: [(&'static str, tracing::Dispatch); 4],
    simple: InMemorySpanExporter,
    batch: InMemorySpanExporter,
    batch_provider: SdkTracerProvider,
    /// Registered, never installed (see the same in `instrumentation`).
    _second: tracing::Dispatch,
}

impl Subscribers {
    fn new() -> Self {
        let simple = InMemorySpanExporter::default();
        let simple_provider = SdkTracerProvider::builder()
            .with_simple_exporter(simple.clone())
            .build();
        let batch = InMemorySpanExporter::default();
        let batch_provider = SdkTracerProvider::builder()
            .with_batch_exporter(batch.clone())
            .build();
        let otel = |p: &SdkTracerProvider| {
            tracing::Dispatch::new(
                tracing_subscriber::registry()
                    .with(tracing_opentelemetry::layer().with_tracer(p.tracer("bench"))),
            )
        };
        Self {
            modes: [
                ("no subscriber", tracing::Dispatch::none()),
                (
                    "spans into tracing's registry",
                    tracing::Dispatch::new(tracing_subscriber::registry()),
                ),
                ("OpenTelemetry, simple processor", otel(&simple_provider)),
                ("OpenTelemetry, batch processor", otel(&batch_provider)),
            ],
            simple,
            batch,
            batch_provider,
            _second: tracing::Dispatch::new(tracing_subscriber::registry()),
        }
    }

    /// The spans each exporter holds (after flushing the batch processor), then empties both.
    fn drain(&self) -> (usize, usize) {
        let _ = self.batch_provider.force_flush();
        let count = |e: &InMemorySpanExporter| e.get_finished_spans().map_or(0, |s| s.len());
        let counts = (count(&self.simple), count(&self.batch));
        self.simple.reset();
        self.batch.reset();
        counts
    }
}

/// What vitals adds to a statement, without the statement (see the top of the file): the
/// criterion groups, then the interleaved rounds and their table.
fn instrumentation_alone(c: &mut Criterion) {
    let rt = runtime::current_thread();
    let (pool, vitals) = rt.block_on(async {
        let pool = no_ping_pool().await;
        let vitals = Vitals::builder()
            .config(Config::defaults().expect("defaults"))
            .sqlite_pool(pool.clone())
            .health(false)
            .build()
            .await
            .expect("vitals on in-memory SQLite");
        (pool, vitals)
    });
    let handle = vitals.db().sqlite().expect("SQLite").clone();
    assert!(
        handle.observer().is_some(),
        "the facade's handle has its observer"
    );
    let subscribers = Subscribers::new();
    let [none, spans_only, otel, _] = &subscribers.modes;

    let mut group = c.benchmark_group("pool/instrumentation_alone/acquire_release");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sqlx_pool", |b| {
        let pool = &pool;
        b.to_async(&rt)
            .iter_custom(|iters| acquire_release(pool, || pool.acquire(), iters));
    });
    group.bench_function("vitals", |b| {
        let (pool, handle) = (&pool, &handle);
        b.to_async(&rt)
            .iter_custom(|iters| acquire_release(pool, || handle.acquire(), iters));
    });
    group.finish();

    let mut group = c.benchmark_group("pool/instrumentation_alone/statement_end");
    group.throughput(Throughput::Elements(1));
    for text in TEXTS {
        for (name, dispatch) in [
            ("vitals", &none.1),
            ("vitals_spans", &spans_only.1),
            ("vitals_otel", &otel.1),
        ] {
            let _guard = tracing::dispatcher::set_default(dispatch);
            group.bench_function(BenchmarkId::new(name, text.1), |b| {
                b.iter_custom(|iters| {
                    let took = statement_ends(&handle, text.0, iters);
                    subscribers.drain();
                    took
                });
            });
        }
        let _guard = tracing::dispatcher::set_default(&otel.1);
        group.bench_function(BenchmarkId::new("sqlx_hand_span_otel", text.1), |b| {
            b.iter_custom(|iters| {
                let took = hand_span_ends(text, iters);
                subscribers.drain();
                took
            });
        });
    }
    group.finish();

    alone_rounds(&rt, &pool, &handle, &subscribers);
    let _ = subscribers.batch_provider.shutdown();
    rt.block_on(async {
        vitals.shutdown().await;
        pool.close().await;
    });
}

/// Rounds of the instrumentation-alone table, and operations per job in each.
const ALONE_ROUNDS: usize = 101;
const ACQUIRES: u64 = 400;
const ENDS: u64 = 1000;

/// One timed job of the instrumentation-alone rounds.
#[derive(Clone, Copy)]
enum Job {
    /// Acquire and release through the bare pool (`false`) or the facade's handle (`true`).
    Acquire(bool),
    /// Statement ends of `TEXTS[text]` under `modes[mode]`: the facade's, or the peer's spans.
    End {
        text: usize,
        mode: usize,
        peer: bool,
    },
}

/// The interleaved rounds (each job `ACQUIRES` or `ENDS` times per round, the first job rotated
/// each round) and the table: medians over the rounds of µs per operation, and per round the
/// whole instrumentation of one statement, the handle's acquire and release less the bare
/// pool's plus the statement's end, against the 3 µs target.
fn alone_rounds(
    rt: &tokio::runtime::Runtime,
    pool: &SqlitePool,
    handle: &MonitoredPool<Sqlite>,
    subscribers: &Subscribers,
) {
    let mut jobs = vec![Job::Acquire(false), Job::Acquire(true)];
    for text in 0..TEXTS.len() {
        for mode in 0..subscribers.modes.len() {
            jobs.push(Job::End {
                text,
                mode,
                peer: false,
            });
        }
        for mode in [2, 3] {
            jobs.push(Job::End {
                text,
                mode,
                peer: true,
            });
        }
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(ALONE_ROUNDS); jobs.len()];
    let (mut issued_batch, mut exported_batch) = (0u64, 0u64);
    rt.block_on(async {
        for round in 0..ALONE_ROUNDS {
            let (mut simple_spans, mut batch_spans) = (0u64, 0u64);
            for k in 0..jobs.len() {
                let i = (round + k) % jobs.len();
                let us = match jobs[i] {
                    Job::Acquire(monitored) => {
                        let took = if monitored {
                            acquire_release(pool, || handle.acquire(), ACQUIRES).await
                        } else {
                            acquire_release(pool, || pool.acquire(), ACQUIRES).await
                        };
                        took.as_secs_f64() * 1e6 / ACQUIRES as f64
                    }
                    Job::End { text, mode, peer } => {
                        let _guard = tracing::dispatcher::set_default(&subscribers.modes[mode].1);
                        let took = if peer {
                            hand_span_ends(TEXTS[text], ENDS)
                        } else {
                            statement_ends(handle, TEXTS[text].0, ENDS)
                        };
                        match mode {
                            2 => simple_spans += ENDS,
                            3 => batch_spans += ENDS,
                            _ => {}
                        }
                        took.as_secs_f64() * 1e6 / ENDS as f64
                    }
                };
                times[i].push(us);
            }
            // Outside the timing: every span under OpenTelemetry was exported (the batch
            // processor drops spans when its queue is full: counted and printed).
            let (simple, batch) = subscribers.drain();
            assert_eq!(simple as u64, simple_spans, "spans of the simple processor");
            issued_batch += batch_spans;
            exported_batch += batch as u64;
        }
    });

    let acquire_diff: Vec<f64> = times[1].iter().zip(&times[0]).map(|(m, b)| m - b).collect();
    println!(
        "pool/instrumentation_alone interleaved ({ALONE_ROUNDS} rounds; medians over the rounds, \
         interquartile range in brackets; wall time per operation):"
    );
    let (bare, _, _) = quartiles(&mut times[0].clone());
    let (mon, _, _) = quartiles(&mut times[1].clone());
    let (d, q1, q3) = quartiles(&mut acquire_diff.clone());
    println!(
        "  acquire + release of an idle connection: sqlx_pool {bare:.3} µs, vitals {mon:.3} µs; \
         vitals adds {d:+.3} µs [{q1:+.3} .. {q3:+.3}]"
    );
    println!("  statement end (span opened, reported, closed; no database), then the whole (acquire difference + end) against 3 µs:");
    for (j, job) in jobs.iter().enumerate() {
        let Job::End { text, mode, peer } = *job else {
            continue;
        };
        let (end, q1, q3) = quartiles(&mut times[j].clone());
        let who = if peer {
            "peer: hand-made span"
        } else {
            "vitals"
        };
        let line = format!(
            "    {:<9} {who:<21} {:<32} end {end:.3} µs [{q1:.3} .. {q3:.3}]",
            TEXTS[text].1, subscribers.modes[mode].0
        );
        if peer {
            println!("{line}");
            continue;
        }
        let mut whole: Vec<f64> = times[j]
            .iter()
            .zip(&acquire_diff)
            .map(|(e, a)| e + a)
            .collect();
        let (w, wq1, wq3) = quartiles(&mut whole);
        let verdict = if wq3 < 3.0 {
            "< 3 µs"
        } else if w < 3.0 {
            "median < 3 µs"
        } else {
            "NOT < 3 µs"
        };
        println!("{line}; whole {w:.3} µs [{wq1:.3} .. {wq3:.3}] {verdict}");
    }
    if exported_batch < issued_batch {
        println!(
            "  the batch processor dropped {} of {issued_batch} spans (its queue was full)",
            issued_batch - exported_batch
        );
    }
}

criterion_group!(benches, instrumentation, instrumentation_alone);
criterion_main!(benches);
