//! Runs the `demo` example's logic with tiny sizes (50 students, 20- and 100-record imports)
//! on SQLite, on PostgreSQL with Redis, and with an unreachable Redis, and checks the report
//! has every section and no PHI. Run with `cargo test -p vitals --test demo`; the PostgreSQL
//! test reads `DATABASE_URL` and `REDIS_URL` (defaults: the local servers) and works in a
//! schema of its own, dropped at the end.

#[allow(dead_code)] // The example's `main` and helpers the tests do not call.
#[path = "../../../examples/demo/main.rs"]
mod demo;

use demo::{render_text, run, Args, Report};
use vitals::health::SchoolGenerator;

fn tiny() -> Args {
    Args {
        progress: false,
        ..Args::default().quick()
    }
}

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn redis_url() -> String {
    std::env::var("REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into())
}

/// Every section of the JSON document is there and holds what the demo measured.
fn assert_every_section(report: &Report, args: &Args) -> serde_json::Value {
    let json = serde_json::to_value(report).unwrap();
    for key in [
        "engine",
        "redis",
        "school",
        "concurrent_requests",
        "import",
        "health_summary",
        "dashboard",
        "recent_activities",
        "summary",
        "pool_summary",
        "cache_stats",
        "query_report",
        "notes",
        "elapsed_ms",
    ] {
        assert!(json.get(key).is_some(), "section {key} missing");
    }
    assert_eq!(report.school.tables.students, args.students as i64);

    let loads = &report.concurrent_requests.loads;
    assert_eq!(
        loads.iter().map(|l| l.load).collect::<Vec<_>>(),
        ["latency-bound", "cpu-bound"]
    );
    for l in loads {
        for p in [&l.small, &l.large] {
            assert_eq!(
                p.errors, 0,
                "{} pool {} had errors",
                l.load, p.max_connections
            );
            assert!(p.throughput_rps > 0.0);
            assert_eq!(p.latency.count, args.requests * args.rounds);
        }
        assert_eq!(l.small.max_connections, args.pools.0);
        assert_eq!(l.large.max_connections, args.pools.1);
        assert!(!l.verdict.is_empty());
    }

    assert_eq!(
        report.import.iter().map(|i| i.records).collect::<Vec<_>>(),
        args.import_sizes
    );
    for i in &report.import {
        // Both paths see the same shape of input: the same outcome, far fewer statements.
        let (a, b) = (&i.row_by_row, &i.importer);
        assert_eq!(a.extrapolated_from, None);
        assert_eq!(
            (a.imported, a.duplicates, a.rejected),
            (b.imported, b.duplicates, b.rejected)
        );
        assert_eq!(a.imported + a.duplicates + a.rejected, i.records as u64);
        assert!(
            b.statements < a.statements,
            "{} < {}",
            b.statements,
            a.statements
        );
    }
    let hundred = report.import.iter().find(|i| i.records == 100).unwrap();
    assert_eq!(
        (
            hundred.importer.imported,
            hundred.importer.duplicates,
            hundred.importer.rejected
        ),
        (98, 1, 1)
    );

    let s = &report.health_summary;
    assert_eq!(s.uncached.count, s.students);
    assert_eq!(s.l1_hit.count, s.students * 5);
    for c in [&report.dashboard, &report.recent_activities] {
        assert_eq!(c.sequential.count, c.parallel.count);
        assert!(c.sequential.p50_ms > 0.0 && c.parallel.p50_ms > 0.0);
    }
    assert_eq!(
        report
            .summary
            .iter()
            .map(|r| r.operation)
            .collect::<Vec<_>>()[..2],
        ["Concurrent Requests", "Import 100 Records"]
    );
    assert!(report.summary.len() >= 5);
    assert!(report.cache_stats.l1_hits >= (s.students * 5) as u64);
    assert!(report.query_report.statistics.total_queries > 0);
    assert!(report.pool_summary.is_some());
    json
}

/// No student's name or number appears anywhere in the text or the JSON.
fn assert_no_phi(report: &Report, args: &Args) {
    let school = SchoolGenerator::new(args.students)
        .seed(args.seed)
        .generate();
    let text = render_text(report);
    let json = serde_json::to_string(report).unwrap();
    for s in &school.students {
        for needle in [
            format!("{} {}", s.first_name, s.last_name),
            s.student_number.clone(),
            s.id.to_string(),
        ] {
            assert!(!text.contains(&needle), "the text output holds PHI");
            assert!(!json.contains(&needle), "the JSON output holds PHI");
        }
    }
    for section in [
        "1. Concurrent requests",
        "2. Imports",
        "3. A student's health summary",
        "4. The dashboard",
        "5. Recent activities",
        "Summary beside",
        "Query performance report",
    ] {
        assert!(text.contains(section), "text lacks {section:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_l1_only_report_has_every_section() {
    let args = tiny();
    let report = run(args.clone()).await.unwrap();
    assert!(report.engine.starts_with("SQLite"), "{}", report.engine);
    assert_eq!(report.redis.mode, "l1-only");
    assert!(report.health_summary.l2_hit.is_none());
    assert_every_section(&report, &args);
    assert_no_phi(&report, &args);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_and_redis_report_has_every_section_and_l2_hits() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let args = Args {
        database_url: Some(database_url()),
        redis_url: Some(redis_url()),
        schema: format!("vitals_demo_t{}_{nanos}", std::process::id()),
        drop_schema_after: true,
        ..tiny()
    };
    let report = run(args.clone()).await.unwrap();
    assert!(report.engine.contains(&args.schema), "{}", report.engine);
    assert_eq!(report.redis.mode, "redis", "{}", report.redis.detail);
    let s = &report.health_summary;
    assert_eq!(s.l2_hit.map(|p| p.count), Some(s.students));
    assert_eq!(s.l2_hits_counted, Some(s.students as u64));
    assert_every_section(&report, &args);
    assert_no_phi(&report, &args);

    // The schema is gone; nothing else was touched.
    let pool = sqlx::PgPool::connect(&database_url()).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_namespace WHERE nspname = $1")
        .bind(&args.schema)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "schema {} left behind", args.schema);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_still_completes_on_l1_and_says_so() {
    // Nothing listens on port 1 of the loopback: the connection is refused at once.
    let args = Args {
        redis_url: Some("redis://127.0.0.1:1".into()),
        ..tiny()
    };
    let report = run(args.clone()).await.unwrap();
    assert_eq!(report.redis.mode, "unreachable");
    assert!(report.health_summary.l2_hit.is_none());
    assert!(
        report.notes.iter().any(|n| n.contains("unreachable")),
        "{:?}",
        report.notes
    );
    assert!(render_text(&report).contains("unreachable"));
    assert_every_section(&report, &args);
}

#[test]
fn options_are_parsed_and_bad_ones_named() {
    let env = |name: &str| match name {
        "DATABASE_URL" => Some("postgres://u:secret@127.0.0.1/test".to_owned()),
        _ => None,
    };
    let args = Args::parse(
        ["--students", "300", "--seed", "7", "--json"].map(String::from),
        env,
    )
    .unwrap();
    assert_eq!((args.students, args.seed, args.json), (300, 7, true));
    assert!(args.database_url.is_some() && args.redis_url.is_none());

    let err = Args::parse(["--students", "many"].map(String::from), env).unwrap_err();
    assert!(err.contains("--students") && err.contains("many"), "{err}");
    let err = Args::parse(["--fast"].map(String::from), env).unwrap_err();
    assert!(err.contains("--fast"), "{err}");
    let quick = Args::parse(["--quick"].map(String::from), env).unwrap();
    assert_eq!(quick.students, 50);
}
