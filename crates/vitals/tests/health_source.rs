//! The health cache, the warmer and the dashboard over a host's own tables: the source of
//! `examples/host_tables` (schema `school`: `pupils`, `immunisations`, `sensitivities`,
//! `conditions`) handed to `Vitals::builder().health_source(..).dashboard_source(..)`. Each
//! test starts on a fresh database (`#[sqlx::test]`) with vitals' own tables migrated and
//! empty beside the host's, so a figure that came from vitals' schema would be 0.
//!
//! Run with `cargo test -p vitals --test health_source` (PostgreSQL from `DATABASE_URL`).

mod common;
#[allow(dead_code)] // the example uses every helper; a test binary only some
#[path = "../../../examples/host_tables/source.rs"]
mod source;

use std::sync::Arc;

use source::HostTables;
use sqlx::PgPool;
use uuid::Uuid;
use vitals::health::{AllergySeverity, ConditionStatus, LabelCount};
use vitals::{Config, Vitals};

/// vitals on a pool of its own to the test's database, reading through the host's tables
/// (created here).
async fn start(pool: &PgPool) -> Vitals {
    let vitals = Vitals::builder()
        .config(Config::defaults().unwrap())
        .postgres_pool(common::own_pool(pool).await)
        .health_source(Arc::new(HostTables))
        .dashboard_source(Arc::new(HostTables))
        .build()
        .await
        .unwrap();
    source::create_tables(vitals.db()).await.unwrap();
    vitals
}

/// Statements vitals has seen so far.
fn statements(vitals: &Vitals) -> u64 {
    vitals.query_logger().statistics().total_queries
}

/// A test pupil in the host's tables: one MMR dose `dosed_days_ago` days ago, its
/// sensitivities `(substance, level)` and one condition `(title, icd, state)`.
struct Pupil<'a> {
    admission_no: &'a str,
    given: &'a str,
    dosed_days_ago: i64,
    sensitivities: &'a [(&'a str, &'a str)],
    condition: (&'a str, &'a str, &'a str),
}

/// Writes `pupil` to the host's tables (family name `Testpupil`); its id.
async fn add(vitals: &Vitals, pupil: Pupil<'_>) -> Uuid {
    let db = vitals.db();
    let id = source::add_pupil(db, pupil.admission_no, pupil.given, "Testpupil")
        .await
        .unwrap();
    source::add_immunisation(db, id, "MMR", 1, pupil.dosed_days_ago)
        .await
        .unwrap();
    for (substance, level) in pupil.sensitivities {
        source::add_sensitivity(db, id, substance, level)
            .await
            .unwrap();
    }
    let (title, icd, state) = pupil.condition;
    source::add_condition(db, id, title, icd, state)
        .await
        .unwrap();
    id
}

/// A pupil with a dose 10 days ago, an anaphylactic and a mild sensitivity and an active
/// condition.
async fn ada(vitals: &Vitals) -> Uuid {
    let ada = Pupil {
        admission_no: "HT-1",
        given: "Ada",
        dosed_days_ago: 10,
        sensitivities: &[("Peanut", "anaphylaxis"), ("Dust", "mild")],
        condition: ("Asthma", "J45", "active"),
    };
    add(vitals, ada).await
}

#[sqlx::test(migrations = false)]
async fn the_summary_comes_from_the_hosts_tables_then_from_the_cache(pool: PgPool) {
    let vitals = start(&pool).await;
    let ada = ada(&vitals).await;
    let health = vitals.health_cache();

    let (before, stats) = (statements(&vitals), vitals.cache_stats());
    let summary = health.student_health_summary(ada).await.unwrap().unwrap();
    assert_eq!(
        (
            summary.student.first_name.as_str(),
            summary.student.student_number.as_str(),
            summary.student.grade.as_str()
        ),
        ("Ada", "HT-1", "Year 4"),
        "the host's pupils row, in vitals' Student"
    );
    let vaccines: Vec<_> = summary
        .vaccinations
        .iter()
        .map(|v| v.vaccine_name.as_str())
        .collect();
    assert_eq!(vaccines, ["MMR"]);
    let severities: Vec<_> = summary.allergies.iter().map(|a| a.severity).collect();
    assert_eq!(
        severities,
        [AllergySeverity::LifeThreatening, AllergySeverity::Mild],
        "the host's 'anaphylaxis' first, in vitals' words"
    );
    assert_eq!(
        summary.chronic_conditions[0].status,
        ConditionStatus::Active
    );
    let first_read = statements(&vitals) - before;
    assert_eq!(first_read, 4, "a pupil and three lists, on vitals' handle");
    assert!(
        vitals
            .query_logger()
            .fingerprint_stats()
            .iter()
            .any(|f| f.query.contains("school.pupils")),
        "the host's statements are in vitals' query report"
    );
    let students = format!("SELECT COUNT(*) FROM {}", vitals.tables().table("students"));
    assert_eq!(
        common::count(&pool, &students).await,
        0,
        "not from vitals' own tables"
    );

    let again = health.student_health_summary(ada).await.unwrap().unwrap();
    assert_eq!(again, summary);
    let after = vitals.cache_stats();
    assert_eq!(
        statements(&vitals) - before,
        first_read,
        "the second read ran no statement"
    );
    assert_eq!(after.hits, stats.hits + 1, "the second read is a hit");
    assert_eq!(after.loads, stats.loads + 1, "one load, for the first read");

    // A new row of the host's: the cached summary does not see it until the pupil is
    // invalidated.
    source::add_immunisation(vitals.db(), ada, "MMR", 2, 1)
        .await
        .unwrap();
    let cached = health.student_health_summary(ada).await.unwrap().unwrap();
    assert_eq!(cached.vaccinations.len(), 1, "still the cached summary");
    health.invalidate_student(ada).await;
    let fresh = health.student_health_summary(ada).await.unwrap().unwrap();
    let doses: Vec<_> = fresh.vaccinations.iter().map(|v| v.dose_number).collect();
    assert_eq!(doses, [2, 1], "the host's new row, newest first");

    // The lists too, each cached on its own.
    let (before, hits) = (statements(&vitals), vitals.cache_stats().hits);
    assert_eq!(*health.allergies(ada).await.unwrap(), fresh.allergies);
    assert_eq!(*health.allergies(ada).await.unwrap(), fresh.allergies);
    assert_eq!(
        *health.chronic_conditions(ada).await.unwrap(),
        fresh.chronic_conditions
    );
    assert_eq!(*health.vaccinations(ada).await.unwrap(), fresh.vaccinations);
    assert_eq!(
        statements(&vitals) - before,
        3,
        "one statement per list, once"
    );
    assert_eq!(vitals.cache_stats().hits, hits + 1);

    assert_eq!(
        health.student_health_summary(Uuid::new_v4()).await.unwrap(),
        None
    );
    vitals.shutdown().await;
}

#[sqlx::test(migrations = false)]
async fn the_warmer_warms_through_the_hosts_source(pool: PgPool) {
    let vitals = start(&pool).await;
    let ada = ada(&vitals).await;
    // Immunised long ago, nothing critical or active: only her summary is warmed (a recent
    // student by the host's measure).
    let bea = Pupil {
        admission_no: "HT-2",
        given: "Bea",
        dosed_days_ago: 400,
        sensitivities: &[("Pollen", "moderate")],
        condition: ("Eczema", "L20", "resolved"),
    };
    let bea = add(&vitals, bea).await;

    let warmed = vitals.warm_now().await;
    assert_eq!(
        (warmed.warmed, warmed.failed),
        (5, 0),
        "Ada's summary, allergies, conditions and vaccinations, and Bea's summary: {warmed:?}"
    );

    let (before, stats) = (statements(&vitals), vitals.cache_stats());
    let health = vitals.health_cache();
    let summary = health.student_health_summary(ada).await.unwrap().unwrap();
    assert_eq!(summary.student.first_name, "Ada");
    assert_eq!(health.allergies(ada).await.unwrap().len(), 2);
    assert_eq!(health.chronic_conditions(ada).await.unwrap().len(), 1);
    assert_eq!(health.vaccinations(ada).await.unwrap().len(), 1);
    assert_eq!(
        health
            .student_health_summary(bea)
            .await
            .unwrap()
            .unwrap()
            .student
            .first_name,
        "Bea"
    );
    assert_eq!(
        statements(&vitals),
        before,
        "every read answered by the warmed cache"
    );
    assert_eq!(vitals.cache_stats().hits, stats.hits + 5);
    assert_eq!(vitals.cache_stats().loads, stats.loads);

    // Not warmed: Bea's allergies (not critical) are read from the host's table.
    assert_eq!(
        health.allergies(bea).await.unwrap()[0].severity,
        AllergySeverity::Moderate
    );
    assert_eq!(statements(&vitals), before + 1);
    vitals.shutdown().await;
}

#[sqlx::test(migrations = false)]
async fn the_dashboard_reads_through_the_hosts_source(pool: PgPool) {
    let vitals = start(&pool).await;
    ada(&vitals).await;
    let bea = source::add_pupil(vitals.db(), "HT-2", "Bea", "Testpupil")
        .await
        .unwrap();
    source::add_immunisation(vitals.db(), bea, "MMR", 1, 400)
        .await
        .unwrap();
    source::add_immunisation(vitals.db(), bea, "DTaP", 1, 400)
        .await
        .unwrap();

    let stats = vitals.dashboard().stats().await;
    assert!(stats.failures.is_empty(), "{:?}", stats.failures);
    assert_eq!(
        (
            stats.active_students,
            stats.critical_allergies,
            stats.active_conditions,
            stats.vaccinations_last_30_days,
            stats.upcoming_appointments
        ),
        (Some(2), Some(1), Some(1), Some(1), Some(0))
    );
    let charts = vitals.dashboard().chart_data(false).await.unwrap();
    let label = |label: &str, count| LabelCount {
        label: label.into(),
        count,
    };
    assert_eq!(
        charts.vaccinations_by_vaccine,
        [label("MMR", 2), label("DTaP", 1)]
    );
    assert_eq!(
        charts.allergies_by_severity,
        [label("LIFE_THREATENING", 1), label("MILD", 1)]
    );
    let recent = vitals.dashboard().recent_activities(10).await.unwrap();
    assert!(recent.medications.is_empty() && recent.upcoming_appointments.is_empty());
    assert_eq!(
        vitals
            .dashboard()
            .activity_counts(true)
            .await
            .unwrap()
            .medications_today,
        0
    );
    vitals.shutdown().await;
}

/// A failing statement of the host's source is the facade's `Error`, its SQLSTATE kept; the
/// dashboard names the one figure it could not read.
#[sqlx::test(migrations = false)]
async fn a_hosts_failure_is_a_vitals_error(pool: PgPool) {
    let vitals = start(&pool).await;
    let ada = ada(&vitals).await;
    sqlx::query("DROP TABLE school.conditions")
        .execute(&pool)
        .await
        .unwrap();

    let err = vitals
        .health_cache()
        .chronic_conditions(ada)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("42P01"), "undefined table: {err}");
    assert!(
        vitals
            .health_cache()
            .student_health_summary(ada)
            .await
            .is_err(),
        "a summary needs the conditions"
    );
    let stats = vitals.dashboard().stats().await;
    let failed: Vec<_> = stats.failures.iter().map(|f| f.stat).collect();
    assert_eq!(failed, ["active_conditions"]);
    assert_eq!(stats.active_students, Some(1));
    vitals.shutdown().await;
}
