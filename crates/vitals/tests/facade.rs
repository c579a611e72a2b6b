//! The facade as a host service uses it, on real PostgreSQL and Redis (and on SQLite): its
//! queries show in the query report, its reads in the cache stats, a write invalidates the
//! cached summary, the dashboard degrades figure by figure, and the warmer fills the cache.
//!
//! Run with `cargo test -p vitals --test facade`.

mod common;

use std::time::Duration;

use chrono::NaiveDate;
use sqlx::PgPool;
use uuid::Uuid;
use vitals::health::{self, HealthData, SchoolGenerator};
use vitals::{Engine, Vitals};

async fn host_on_postgres(pool: PgPool, test: &str) -> (Vitals, health::School) {
    let (vitals, school) = common::host_on_postgres(pool, test, 120, 5).await;
    assert_eq!(vitals.engine(), Engine::Postgres);
    (vitals, school)
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn host_queries_show_in_the_report_and_reads_in_the_cache_stats(pool: PgPool) {
    let (vitals, school) = host_on_postgres(pool, "report").await;
    let student = school.students[7].id;

    // A host's own sqlx query through the instrumented handle.
    let n: i64 = vitals::with_db!(vitals.db(), |db| {
        sqlx::query_scalar("SELECT COUNT(*) FROM students WHERE grade = $1")
            .bind("7")
            .fetch_one(db)
            .await
    })
    .unwrap();
    assert!(n >= 0);
    let stats = vitals.query_logger().statistics();
    assert!(stats.total_queries >= 1, "{stats:?}");
    let report = vitals.query_logger().report().to_text();
    assert!(report.contains("students"), "{report}");
    assert!(
        !report.contains("'7'"),
        "a literal reached the report: {report}"
    );

    // Miss, then an L1 hit.
    let first = common::cached_summary(&vitals, student).await;
    let second = common::cached_summary(&vitals, student).await;
    assert_eq!(first, second);
    let cache = vitals.cache_stats();
    assert!(cache.misses >= 1, "{cache:?}");
    assert!(cache.l1_hits >= 1, "{cache:?}");
    // The pool monitor saw the acquisitions.
    let metrics = vitals.pool_metrics();
    assert!(metrics.max_connections >= 1);
    let handle = metrics.handle.expect("the monitored handle's statistics");
    assert!(handle.acquired_total >= 1, "{handle:?}");
    // Reading the metrics did not take a sample; asking for one does.
    assert!(vitals.pool_history().is_empty());
    assert!(vitals.sample_pool_now().is_some());
    assert_eq!(vitals.pool_history().len(), 1);
    vitals.shutdown().await;
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn a_write_then_invalidation_serves_the_new_summary(pool: PgPool) {
    let (vitals, school) = host_on_postgres(pool, "invalidate").await;
    let student = school.students[3].id;
    let before = common::cached_summary(&vitals, student).await;

    let day = NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
    common::add_vaccination(&vitals, student, "Dengue", day)
        .await
        .unwrap();
    // Still the cached value until the write is announced.
    let cached = common::cached_summary(&vitals, student).await;
    assert_eq!(cached, before);

    vitals.health_cache().invalidate_student(student).await;
    let after = common::cached_summary(&vitals, student).await;
    assert_eq!(after.vaccinations.len(), before.vaccinations.len() + 1);
    assert!(after
        .vaccinations
        .iter()
        .any(|v| v.vaccine_name == "Dengue"));
    vitals.shutdown().await;
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn dashboard_stats_return_what_succeeded_and_name_the_failure(pool: PgPool) {
    let (vitals, school) = host_on_postgres(pool, "dashboard").await;
    let stats = vitals.dashboard().stats().await;
    assert!(stats.failures.is_empty(), "{stats:?}");
    let active = school.students.iter().filter(|s| s.active).count() as i64;
    assert_eq!(stats.active_students, Some(active));

    vitals::with_db!(vitals.db(), |db| sqlx::query("DROP TABLE appointments")
        .execute(db)
        .await
        .map(|_| ()))
    .unwrap();
    let stats = vitals.dashboard().stats().await;
    assert_eq!(stats.upcoming_appointments, None);
    assert_eq!(stats.failures.len(), 1, "{stats:?}");
    assert_eq!(stats.failures[0].stat, "upcoming_appointments");
    assert_eq!(
        stats.active_students,
        Some(active),
        "the other figures still arrive"
    );
    assert!(stats.critical_allergies.is_some());
    assert!(vitals.dashboard().recent_activities(10).await.is_err());
    vitals.shutdown().await;
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn warming_fills_the_cache_with_what_a_nurse_asks_for_first(pool: PgPool) {
    let (vitals, school) = host_on_postgres(pool, "warm").await;
    let summary = vitals.warm_now().await;
    assert!(summary.warmed > 0, "{summary:?}");
    assert_eq!(summary.failed, 0, "{summary:?}");

    // A student with a critical allergy has their allergies in L1 now.
    let critical = school
        .allergies
        .iter()
        .find(|a| a.severity.is_critical())
        .expect("the generated school has a critical allergy");
    let before = vitals.cache_stats();
    let allergies = vitals
        .health_cache()
        .allergies(critical.student_id)
        .await
        .unwrap();
    assert!(allergies.iter().any(|a| a.id == critical.id));
    let after = vitals.cache_stats();
    assert_eq!(after.misses, before.misses, "warmed: no miss");
    assert_eq!(after.l1_hits, before.l1_hits + 1);
    vitals.shutdown().await;
}

#[tokio::test]
async fn on_sqlite_with_no_configuration_the_facade_works_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let vitals =
        common::vitals_on_sqlite_file(&dir, "vitals.sqlite", Some(Duration::from_secs(3600))).await;
    assert_eq!(vitals.engine(), Engine::Sqlite);
    assert!(
        vitals.cache().redis().is_none(),
        "no REDIS_URL given: L1 only"
    );
    let school = SchoolGenerator::new(50).seed(9).generate();
    common::load_school(&vitals, &school).await;
    let student = school.students[0].id;
    let summary = common::cached_summary(&vitals, student).await;
    assert_eq!(summary.student.id, student);
    let key = HealthData::Summary.key(student);
    assert!(
        !key.contains(&school.students[0].last_name),
        "keys carry ids only"
    );
    assert!(vitals
        .health_cache()
        .student_health_summary(Uuid::new_v4())
        .await
        .unwrap()
        .is_none());
    let recent = vitals.dashboard().recent_activities(5).await.unwrap();
    assert!(recent.medications.len() <= 5);
    assert!(vitals.query_logger().statistics().total_queries > 0);
    vitals.shutdown().await;
}

/// On a fresh SQLite file with a `pupils` table holding one (synthetic) pupil, Núñez,
/// written by `insert`: runs each of `reads` (a count that finds the pupil only if SQLite
/// read its double-quoted token as a string), then checks that no statement the query log
/// recorded holds the name and that `expected` is one of them.
async fn assert_masked_on_sqlite(file: &str, insert: &str, reads: &[&str], expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let vitals = common::vitals_on_sqlite_file(&dir, file, None).await;
    let db = vitals.db().sqlite().unwrap();
    sqlx::query("CREATE TABLE pupils (id INTEGER PRIMARY KEY, last_name TEXT NOT NULL)")
        .execute(db)
        .await
        .unwrap();
    sqlx::query(insert).execute(db).await.unwrap();
    for sql in reads {
        let found: i64 = sqlx::query_scalar(sql).fetch_one(db).await.unwrap();
        assert_eq!(
            found, 1,
            "SQLite read the double-quoted token as a string: {sql}"
        );
    }
    let recorded = vitals.query_logger().recent_queries(10);
    let texts: Vec<&str> = recorded.iter().map(|r| r.sql.as_str()).collect();
    assert!(
        texts.iter().all(|t| !t.contains("Núñez")),
        "a name in the log: {texts:?}"
    );
    assert!(texts.contains(&expected), "{texts:?}");
    vitals.shutdown().await;
}

/// SQLite reads a double-quoted token as a string when no column has its name, so a host
/// can send a name in one: the statement the query log records has it masked, as a
/// single-quoted one would be (`querylog`'s `sanitize/quoted_value.rs`).
#[tokio::test]
async fn a_double_quoted_string_on_sqlite_is_masked_in_the_query_log() {
    assert_masked_on_sqlite(
        "quoted.sqlite",
        r#"INSERT INTO pupils (id, last_name) VALUES (1, "Núñez")"#,
        &[r#"SELECT count(*) FROM pupils WHERE last_name = "Núñez""#],
        "SELECT count(*) FROM pupils WHERE last_name = ?",
    )
    .await;
}

/// The same string as a function's argument, a `BETWEEN` bound and a `CASE` result: SQLite
/// reads each as a string, and the query log records each masked (the tracker masked only
/// comparisons, `IN` lists and `VALUES` rows before; these were recorded with the name).
#[tokio::test]
async fn a_double_quoted_string_passed_to_a_function_on_sqlite_is_masked_in_the_query_log() {
    assert_masked_on_sqlite(
        "quoted_call.sqlite",
        "INSERT INTO pupils (id, last_name) VALUES (1, 'Núñez')",
        &[
            r#"SELECT count(*) FROM pupils WHERE lower(last_name) = lower("Núñez")"#,
            r#"SELECT count(*) FROM pupils WHERE instr(last_name, "Núñez") > 0"#,
            r#"SELECT count(*) FROM pupils WHERE last_name BETWEEN "Núñez" AND "Núñez""#,
            r#"SELECT count(*) FROM pupils WHERE CASE WHEN id = 1 THEN "Núñez" END = last_name"#,
        ],
        "SELECT count(*) FROM pupils WHERE instr(last_name, ?) > ?",
    )
    .await;
}
