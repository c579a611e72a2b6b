//! The vitals demo: builds a synthetic school, loads it, and measures each row of the
//! performance report's "Overall Performance Impact Summary" beside the report's estimate.
//!
//! Run with `cargo run --release --example demo` (embedded SQLite in a temporary file, L1
//! cache only), or with PostgreSQL and Redis:
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test REDIS_URL=redis://127.0.0.1:6379 \
//!     cargo run --release --example demo
//! ```
//!
//! On PostgreSQL the demo works in a schema of its own (`vitals_demo`, dropped and recreated
//! at start) and touches nothing else; in Redis it uses a key prefix unique to the run and an
//! encryption key made for the run. With `REDIS_URL` set but Redis unreachable it completes on
//! L1 and says so.
//!
//! Options: `--students N` (2 000), `--seed N` (42), `--json` (one JSON document on stdout,
//! progress on stderr), `--quick` (small sizes, for a smoke run). `docs/demo.md` explains the
//! output.
//!
//! Nothing printed holds PHI: counts, timings and sanitised SQL only.
//!
//! This file parses the arguments and runs the sections in order; each section of the report
//! has a module (`pool`, `bulk_import`, `health_summary`, `parallel`), beside the target
//! database (`target`), the JSON document (`report`), the summary table (`summary`), figures
//! (`stats`) and the text output (`text`). The modules share this file's imports
//! (`use super::*`). `crates/vitals/tests/demo.rs` includes this file as a module.

mod bulk_import;
mod health_summary;
mod parallel;
mod pool;
mod report;
mod stats;
mod summary;
mod target;
mod text;

pub(crate) use bulk_import::*;
pub(crate) use health_summary::*;
pub(crate) use parallel::*;
pub(crate) use pool::*;
pub(crate) use report::*;
pub(crate) use stats::*;
pub(crate) use summary::*;
pub(crate) use target::*;
pub(crate) use text::*;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;
use vitals::cache::{CacheStats, EncryptionKey, Keyring};
use vitals::health::{self, queries, HealthSummary, School, SchoolGenerator, TableCounts};
use vitals::import::{Format, Source};
use vitals::pool::{MonitoredPool, PoolConfig, PoolMonitor, PoolSummary, TracingAlertSink};
use vitals::querylog::PerformanceReport;
use vitals::{with_db, Config, Db, Vitals};

/// Any error of the demo (they are reported and end the run).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What to run, and how big.
#[derive(Debug, Clone)]
pub struct Args {
    /// Students in the synthetic school.
    pub students: usize,
    /// Seed of the generator.
    pub seed: u64,
    /// Print one JSON document instead of text.
    pub json: bool,
    /// `postgres://…` or `None` for the embedded SQLite database (a temporary file).
    pub database_url: Option<String>,
    /// `redis://…` or `None` for L1 only.
    pub redis_url: Option<String>,
    /// The PostgreSQL schema the demo owns (dropped and recreated).
    pub schema: String,
    /// Drop the schema at the end (tests); the demo leaves it for inspection.
    pub drop_schema_after: bool,
    /// The two pool sizes compared (the report's 10 and 50).
    pub pools: (u32, u32),
    /// Concurrent clients of the pool comparison.
    pub clients: usize,
    /// Requests per round of the pool comparison.
    pub requests: usize,
    /// Rounds per pool and load (the median round is reported).
    pub rounds: usize,
    /// Record counts of the import comparison (the report's 100, and 10 000).
    pub import_sizes: Vec<usize>,
    /// Longest time the one-row-at-a-time import may run per size; past it the rest is
    /// extrapolated from the rows done (and the output says so).
    pub row_by_row_budget: Duration,
    /// Students sampled for the health-summary timings.
    pub summary_samples: usize,
    /// Samples of each dashboard variant.
    pub dashboard_samples: usize,
    /// Print progress on stderr.
    pub progress: bool,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            students: 2_000,
            seed: 42,
            json: false,
            database_url: None,
            redis_url: None,
            schema: "vitals_demo".into(),
            drop_schema_after: false,
            pools: (10, 50),
            clients: 100,
            requests: 1_000,
            rounds: 3,
            import_sizes: vec![100, 10_000],
            row_by_row_budget: Duration::from_secs(8),
            summary_samples: 200,
            dashboard_samples: 30,
            progress: true,
        }
    }
}

impl Args {
    /// Small sizes: a smoke run in a few seconds.
    pub fn quick(mut self) -> Self {
        self.students = self.students.min(50);
        self.pools = (2, 4);
        self.clients = 8;
        self.requests = 40;
        self.rounds = 1;
        self.import_sizes = vec![20, 100];
        self.summary_samples = 10;
        self.dashboard_samples = 3;
        self
    }

    /// Parses the command line (without the program name); `DATABASE_URL` and `REDIS_URL`
    /// come from `env`.
    ///
    /// # Errors
    /// A message naming the bad option and value.
    pub fn parse<I, F>(argv: I, env: F) -> Result<Args, String>
    where
        I: IntoIterator<Item = String>,
        F: Fn(&str) -> Option<String>,
    {
        let mut args = Args {
            database_url: env("DATABASE_URL").filter(|u| !u.trim().is_empty()),
            redis_url: env("REDIS_URL").filter(|u| !u.trim().is_empty()),
            ..Args::default()
        };
        let mut quick = false;
        let mut it = argv.into_iter();
        while let Some(flag) = it.next() {
            let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
            match flag.as_str() {
                "--students" => {
                    let v = value("--students")?;
                    args.students = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        format!("--students: expected a positive whole number, got {v:?}")
                    })?;
                }
                "--seed" => {
                    let v = value("--seed")?;
                    args.seed = v
                        .parse()
                        .map_err(|_| format!("--seed: expected a whole number, got {v:?}"))?;
                }
                "--json" => args.json = true,
                "--quick" => quick = true,
                "-h" | "--help" => return Err(USAGE.to_owned()),
                other => return Err(format!("unknown option {other:?}; try --help")),
            }
        }
        if quick {
            let students = args.students;
            args = args.quick();
            args.students = students.min(50);
        }
        Ok(args)
    }
}

const USAGE: &str = "usage: demo [--students N] [--seed N] [--json] [--quick]\n\
    Reads DATABASE_URL (postgres://…; unset: embedded SQLite) and REDIS_URL (unset: L1 only).";

pub(crate) fn say(args: &Args, msg: impl AsRef<str>) {
    if args.progress {
        eprintln!("demo: {}", msg.as_ref());
    }
}

/// Runs the whole demo and returns what it measured.
///
/// # Errors
/// When the database cannot be reached or set up, or a measurement fails.
pub async fn run(args: Args) -> Result<Report, BoxError> {
    let started = Instant::now();
    let mut notes = Vec::new();
    if args.pools.0 == 0 || args.pools.1 == 0 || args.clients == 0 || args.rounds == 0 {
        return Err("pool sizes, clients and rounds must be at least 1".into());
    }
    let school = SchoolGenerator::new(args.students)
        .seed(args.seed)
        .generate();
    say(
        &args,
        format!(
            "generated a school of {} students ({} rows)",
            school.students.len(),
            school.total_rows()
        ),
    );

    // The target database: a schema of our own, or a temporary SQLite file.
    let mut _tempdir = None;
    let target = match args.database_url.as_deref() {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Target::Postgres(Box::new(prepare_schema(url, &args.schema).await?))
        }
        Some(other) => {
            return Err(format!(
                "DATABASE_URL must be a postgres:// URL for the demo (got {:?}); \
                 unset it to run on a temporary SQLite file",
                vitals::pool::mask_url(other)
            )
            .into())
        }
        None => {
            let dir = tempfile::tempdir()?;
            let url = format!("sqlite://{}", dir.path().join("demo.sqlite").display());
            _tempdir = Some(dir);
            Target::Sqlite(url)
        }
    };

    let vitals = open_vitals(&args, &target).await?;
    let stats = vitals.cache_stats();
    let redis = match (&args.redis_url, stats.redis_connected) {
        (None, _) => RedisStatus {
            mode: "l1-only",
            detail: "REDIS_URL not set: cache is L1 (in-process) only; the L2 row is not measured"
                .into(),
        },
        (Some(url), true) => RedisStatus {
            mode: "redis",
            detail: format!(
                "L1 over Redis at {} (key prefix unique to this run, encrypted with a key made for it)",
                vitals::cache::mask_url(url)
            ),
        },
        (Some(url), false) => {
            let detail = format!(
                "REDIS_URL is set but Redis at {} is unreachable: the demo runs on L1 only and \
                 the L2 row is not measured",
                vitals::cache::mask_url(url)
            );
            notes.push(detail.clone());
            RedisStatus {
                mode: "unreachable",
                detail,
            }
        }
    };
    say(&args, &redis.detail);

    let load_started = Instant::now();
    match vitals.db() {
        Db::Postgres(p) => {
            health::load_school_postgres(p.inner(), vitals.tables(), &school).await?
        }
        Db::Sqlite(p) => health::load_school_sqlite(p.inner(), vitals.tables(), &school).await?,
    };
    let load_ms = ms(load_started.elapsed());
    let tables = match vitals.db() {
        Db::Postgres(p) => health::table_counts_postgres(p.inner(), vitals.tables()).await?,
        Db::Sqlite(p) => health::table_counts_sqlite(p.inner(), vitals.tables()).await?,
    };
    say(
        &args,
        format!("loaded {} rows in {load_ms:.0} ms", tables.total()),
    );
    let ids: Arc<Vec<Uuid>> = Arc::new(school.students.iter().map(|s| s.id).collect());

    let mut measure = Measure {
        args: &args,
        vitals: &vitals,
        target: &target,
        school: &school,
        ids: &ids,
        notes,
    };
    let result = measure_all(&mut measure).await;
    let notes = measure.notes;
    let report = match result {
        Ok((concurrent, import, summary_section, dashboard, recent)) => {
            vitals.sample_pool_now();
            let pool_summary = vitals.pool_summary();
            let cache_stats = vitals.cache_stats();
            let query_report = vitals.query_logger().report();
            let summary = summary_rows(&concurrent, &import, &summary_section, &dashboard, &recent);
            let mut report = Report {
                engine: target.describe(&args.schema),
                redis,
                school: SchoolInfo {
                    students: school.students.len(),
                    seed: args.seed,
                    tables,
                    load_ms,
                },
                concurrent_requests: concurrent,
                import,
                health_summary: summary_section,
                dashboard,
                recent_activities: recent,
                summary,
                pool_summary,
                cache_stats,
                query_report,
                notes,
                elapsed_ms: ms(started.elapsed()),
            };
            add_readings(&mut report);
            Ok(report)
        }
        Err(e) => Err(e),
    };

    // Leave Redis as we found it (our prefix only: entries, type tags and student groups; the
    // cache's own short-lived bookkeeping keys expire by themselves), then stop.
    for tag in health::tags::ALL {
        vitals.health_cache().invalidate_tag(tag).await;
    }
    if vitals.cache_stats().redis_connected {
        // The entries went with the type tags; each student's group set is left.
        for id in ids.iter() {
            vitals
                .cache()
                .invalidate_group(&health::student_group(*id))
                .await;
        }
    }
    vitals.shutdown().await;
    if let (Target::Postgres(options), true) = (&target, args.drop_schema_after) {
        drop_schema(options, &args.schema).await?;
    }
    report
}

pub(crate) type Sections = (
    ConcurrentSection,
    Vec<ImportRow>,
    SummarySection,
    Comparison,
    Comparison,
);

/// What every section measures on, and the notes the sections add to.
pub(crate) struct Measure<'a> {
    /// What to run, and how big.
    pub(crate) args: &'a Args,
    /// The facade on the target database, with the school loaded.
    pub(crate) vitals: &'a Vitals,
    /// The target database.
    pub(crate) target: &'a Target,
    /// The synthetic school.
    pub(crate) school: &'a School,
    /// Its students' ids.
    pub(crate) ids: &'a Arc<Vec<Uuid>>,
    /// Plain statements about what contradicts or qualifies the report ([`Report::notes`]).
    pub(crate) notes: Vec<String>,
}

pub(crate) async fn measure_all(m: &mut Measure<'_>) -> Result<Sections, BoxError> {
    let args = m.args;
    say(
        args,
        "1/5 concurrent requests: pool of 10 against pool of 50",
    );
    let concurrent = measure_pools(m).await?;
    say(args, "2/5 imports: one row at a time against the importer");
    let mut import = Vec::new();
    for (i, &n) in args.import_sizes.iter().enumerate() {
        import.push(measure_import(m, n, i).await?);
    }
    say(args, "3/5 a student's health summary: uncached, L1, L2");
    let summary = measure_summary(m).await?;
    say(args, "4/5 the dashboard: sequential against parallel");
    let dashboard = measure_dashboard(m).await?;
    say(args, "5/5 recent activities: sequential against parallel");
    let recent = measure_recent(m).await?;
    Ok((concurrent, import, summary, dashboard, recent))
}

#[allow(dead_code)] // The test includes this file as a module and calls `run` itself.
#[tokio::main]
async fn main() {
    let mut args = match Args::parse(std::env::args().skip(1), |n| std::env::var(n).ok()) {
        Ok(a) => a,
        Err(e) if e == USAGE => {
            println!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("demo: {e}");
            std::process::exit(2);
        }
    };
    args.progress = true;
    let json = args.json;
    match run(args).await {
        Ok(report) => {
            if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("demo: cannot serialise the report: {e}");
                        std::process::exit(1);
                    }
                }
            } else {
                print!("{}", render_text(&report));
            }
        }
        Err(e) => {
            eprintln!("demo: {e}");
            std::process::exit(1);
        }
    }
}
