//! vitals' own statements through the facade's handle: an import's statements (BEGIN, the
//! lookups, the inserts, COMMIT; the forked writers' included) are in the query report and
//! the slow tier, sanitised, one per statement and as many as the import says it sent; the
//! pool monitor counts the import's connections; an import of many chunks is no N+1 finding,
//! even inside a request's scope; and the migrations a start applies are in the report. On
//! PostgreSQL (`#[sqlx::test]`: a fresh database, vitals migrating into its own schema) and
//! on SQLite (a file of its own).
//!
//! Run with `cargo test -p vitals --test import_observed` (PostgreSQL from `DATABASE_URL`).

mod common;

use std::time::Duration;

use common::import::file;
use sqlx::PgPool;
use uuid::Uuid;
use vitals::health::{records, MIGRATOR_POSTGRES, MIGRATOR_SQLITE};
use vitals::import::{ImportOptions, ImportReport, Source};
use vitals::pool::HandleStats;
use vitals::querylog::{FingerprintStats, LoggerConfig};
use vitals::{Config, Vitals};

/// Students per import, and rows per chunk: 6 chunks, above the N+1 threshold (5).
const STUDENTS: usize = 120;
const CHUNK: usize = 20;
const CHUNKS: u64 = (STUDENTS / CHUNK) as u64;

/// Literals of the synthetic CSV that no recorded statement or log may hold.
const FIRST_NAME: &str = "Quorvanth";
const VACCINE: &str = "Zyxovax";

/// Every statement in the slow tier (warning from 1 ns), and room for all of them in the
/// histories.
fn config() -> Config {
    let mut config = Config::defaults().unwrap();
    config.querylog = LoggerConfig::builder()
        .slow_warn(Duration::from_nanos(1))
        .slow_critical(Duration::from_secs(3600))
        .slow_capacity(10_000)
        .recent_capacity(10_000)
        .build()
        .unwrap();
    // Two writers: on PostgreSQL vaccination chunks go on forked connections, in tasks of
    // their own (outside the import's scope), and must be counted all the same.
    config.import = ImportOptions::new().chunk_size(CHUNK).workers(2);
    config
}

/// The students' CSV and their ids.
fn students_csv() -> (String, Vec<Uuid>) {
    let ids: Vec<Uuid> = (0..STUDENTS).map(|_| Uuid::new_v4()).collect();
    let mut csv = String::from("id,student_number,first_name,last_name,date_of_birth,grade\n");
    for (i, id) in ids.iter().enumerate() {
        csv.push_str(&format!(
            "{id},S-{i:05},{FIRST_NAME}{i},Testperson,2014-03-01,4\n"
        ));
    }
    (csv, ids)
}

/// One vaccination per student.
fn vaccinations_csv(ids: &[Uuid]) -> String {
    let mut csv = String::from("student_id,vaccine_name,dose_number,administered_on\n");
    for id in ids {
        csv.push_str(&format!("{id},{VACCINE},1,2015-03-01\n"));
    }
    csv
}

/// Every statement the logger recorded so far.
fn total(vitals: &Vitals) -> u64 {
    vitals.query_logger().statistics().total_queries
}

/// The fingerprints whose sanitised statement holds every one of `parts`.
fn matching<'a>(stats: &'a [FingerprintStats], parts: &[&str]) -> Vec<&'a FingerprintStats> {
    stats
        .iter()
        .filter(|s| parts.iter().all(|p| s.query.contains(p)))
        .collect()
}

/// Imports `csv` as records of `ty` inside a scope like the upload route's (a request's),
/// and checks the report and that the logger recorded exactly the statements it sent.
async fn import_observed(vitals: &Vitals, csv: &str, ty: &str) -> ImportReport {
    let f = file(".csv", csv);
    let before = total(vitals);
    let source = Source::open(f.path(), None).unwrap().with_type(ty);
    let outcome = vitals
        .query_logger()
        .in_scope("POST /import", vitals.import(source, None))
        .await
        .unwrap();
    let report = outcome.report;
    assert_eq!(
        (report.imported, report.rejected),
        (STUDENTS as u64, 0),
        "{report:#?}"
    );
    assert_eq!(
        total(vitals) - before,
        report.queries,
        "every statement the import sent is recorded, once"
    );
    report
}

/// No literal of the CSV (a name, a vaccine, a student id) in any recorded statement, the
/// report, or the logs.
fn assert_no_literal(vitals: &Vitals, ids: &[Uuid], logs: &str) {
    let logger = vitals.query_logger();
    let mut recorded: Vec<String> = logger
        .recent_queries(10_000)
        .into_iter()
        .chain(logger.slow_queries(10_000))
        .map(|r| format!("{} {:?}", r.sql, r.error))
        .collect();
    recorded.extend(logger.fingerprint_stats().into_iter().map(|s| s.query));
    recorded.push(logger.report().to_json().unwrap());
    recorded.push(logs.to_owned());
    for text in &recorded {
        assert!(!text.contains(FIRST_NAME), "a name in {text}");
        assert!(!text.contains(VACCINE), "a vaccine in {text}");
        for id in ids.iter().take(3) {
            assert!(!text.contains(&id.to_string()), "a student id in {text}");
        }
    }
}

/// The pool monitor counted the import's connections: at least one acquisition and one hold
/// per chunk's transaction.
fn assert_held(before: &HandleStats, after: &HandleStats, chunks: u64) {
    assert!(
        after.acquired_total - before.acquired_total >= chunks,
        "acquired {} → {}",
        before.acquired_total,
        after.acquired_total
    );
    assert!(
        after.hold.count - before.hold.count >= chunks,
        "holds {} → {}",
        before.hold.count,
        after.hold.count
    );
    assert_eq!(after.held, 0, "every connection given back");
}

/// What both engines check: the import of students then vaccinations, observed.
async fn imports_are_observed(vitals: &Vitals, insert_vaccinations: &[&str]) {
    let logs = common::global_capture(tracing::Level::DEBUG);
    let stats = |v: &Vitals| match v.db() {
        vitals::Db::Postgres(p) => p.stats(),
        vitals::Db::Sqlite(p) => p.stats(),
    };
    let (students, ids) = students_csv();
    let before = stats(vitals);
    let first = import_observed(vitals, &students, records::STUDENT).await;
    let second = import_observed(vitals, &vaccinations_csv(&ids), records::VACCINATION).await;
    assert_held(&before, &stats(vitals), 2 * CHUNKS);

    let fingerprints = vitals.query_logger().fingerprint_stats();
    let inserts = matching(&fingerprints, insert_vaccinations);
    assert_eq!(inserts.len(), 1, "{fingerprints:#?}");
    assert_eq!(inserts[0].count, CHUNKS, "one insert per chunk");
    assert_eq!(inserts[0].rows, STUDENTS as u64, "the rows it wrote");
    let commits = matching(&fingerprints, &["COMMIT"]);
    assert_eq!(commits.len(), 1, "{fingerprints:#?}");
    assert!(
        commits[0].count >= 2 * CHUNKS,
        "one transaction per chunk: {}",
        commits[0].count
    );
    assert!(first.queries >= 4 * CHUNKS && second.queries >= 4 * CHUNKS);

    // In the slow tier (warning from 1 ns) like any statement.
    let slow = vitals.query_logger().slow_queries(10_000);
    assert!(
        slow.iter()
            .filter(|r| r.fingerprint == inserts[0].fingerprint)
            .count() as u64
            == CHUNKS,
        "every insert in the slow history"
    );

    // Six chunks of the same statements, inside a request's scope: batch work, no N+1.
    assert!(
        vitals.query_logger().n_plus_one_findings().is_empty(),
        "{:#?}",
        vitals.query_logger().n_plus_one_findings()
    );
    assert_eq!(vitals.query_logger().statistics().n_plus_one_findings, 0);

    let captured = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert_no_literal(vitals, &ids, &captured);
}

#[sqlx::test]
async fn a_postgres_import_is_in_the_report_the_slow_tier_and_the_monitor(pool: PgPool) {
    // The monitor samples once an hour: nothing resets the handle's window meanwhile.
    let vitals = common::vitals_on_postgres(config(), pool, Some(Duration::from_secs(3600))).await;
    imports_are_observed(&vitals, &["INSERT INTO vitals.vaccinations", "unnest"]).await;
    vitals.shutdown().await;
}

#[tokio::test]
async fn an_sqlite_import_is_in_the_report_the_slow_tier_and_the_monitor() {
    let dir = tempfile::tempdir().unwrap();
    let vitals = Vitals::builder()
        .config(config())
        .database_url(Some(common::sqlite_file_url(&dir, "observed.db")))
        .monitor_interval(Duration::from_secs(3600))
        .build()
        .await
        .unwrap();
    imports_are_observed(&vitals, &["INSERT INTO vaccinations", "VALUES"]).await;
    vitals.shutdown().await;
}

/// The fingerprints of the up migrations of `migrator`, as `vitals`' logger makes them.
fn migration_counts(vitals: &Vitals, migrator: &sqlx::migrate::Migrator) -> Vec<u64> {
    let fp = vitals.query_logger().fingerprinter();
    let stats = vitals.query_logger().fingerprint_stats();
    migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| {
            let f = fp.fingerprint(&m.sql);
            stats
                .iter()
                .find(|s| s.fingerprint == f)
                .map_or(0, |s| s.count)
        })
        .collect()
}

#[sqlx::test]
async fn postgres_migrations_on_a_fresh_schema_are_in_the_report(pool: PgPool) {
    let first = common::start_on_own_pool(&pool, config()).await.unwrap();
    let applied = migration_counts(&first, &MIGRATOR_POSTGRES);
    assert!(!applied.is_empty());
    assert!(
        applied.iter().all(|&n| n == 1),
        "each migration applied is one statement: {applied:?}"
    );
    first.shutdown().await;
    // Migrated already: a second start applies, and records, none.
    let second = common::start_on_own_pool(&pool, config()).await.unwrap();
    let again = migration_counts(&second, &MIGRATOR_POSTGRES);
    assert!(again.iter().all(|&n| n == 0), "{again:?}");
    assert!(
        total(&second) > 0,
        "the history reads went through the handle"
    );
    second.shutdown().await;
}

#[tokio::test]
async fn sqlite_migrations_on_a_fresh_file_are_in_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let url = common::sqlite_file_url(&dir, "migrations.db");
    let start = || {
        Vitals::builder()
            .config(config())
            .database_url(Some(url.clone()))
            .build()
    };
    let first = start().await.unwrap();
    let applied = migration_counts(&first, &MIGRATOR_SQLITE);
    assert!(!applied.is_empty());
    assert!(applied.iter().all(|&n| n == 1), "{applied:?}");
    first.shutdown().await;
    let second = start().await.unwrap();
    let again = migration_counts(&second, &MIGRATOR_SQLITE);
    assert!(again.iter().all(|&n| n == 0), "{again:?}");
    second.shutdown().await;
}
