//! The school-health migrations on real PostgreSQL and on SQLite: they apply, a generated school
//! loads, and the constraints hold the same way on both engines.
//!
//! Run with `cargo test -p vitals --test schema` (PostgreSQL from `DATABASE_URL`).

mod common;

use chrono::NaiveDate;
use sqlx::PgPool;
use uuid::Uuid;
use vitals::health::{self, SchoolGenerator};

/// The SQLSTATE of a failed statement, for asserting which constraint refused it.
fn sqlstate(err: &sqlx::Error) -> String {
    err.as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned())
        .unwrap_or_else(|| format!("not a database error: {err}"))
}

/// Runs the same constraint checks on either engine; `$unique`, `$fk`, `$check` are the codes
/// each engine reports (PostgreSQL SQLSTATEs, SQLite extended result codes).
macro_rules! constraint_checks {
    ($pool:expr, $load:path, $counts:path, unique = $unique:expr, fk = $fk:expr, check = $check:expr) => {{
        let pool = $pool;
        // Bare names: `#[sqlx::test]` migrated into `public` (the pool's search_path), SQLite into `main`.
        let t = &health::Tables::unqualified();
        let school = SchoolGenerator::new(100).seed(3).generate();
        let written = $load(&pool, t, &school).await.unwrap();
        assert_eq!(written as usize, school.total_rows());
        let counts = $counts(&pool, t).await.unwrap();
        assert_eq!(counts.students, 100);
        assert_eq!(counts.total() as usize, school.total_rows());

        let student = school.students[0].id;
        let day = NaiveDate::from_ymd_opt(2026, 9, 1).unwrap();
        let insert_vaccination = "INSERT INTO vaccinations (id, student_id, vaccine_name, dose_number, administered_on) VALUES ($1, $2, 'MMR', 1, $3)";
        sqlx::query(insert_vaccination)
            .bind(Uuid::new_v4()).bind(student).bind(day)
            .execute(&pool).await.unwrap();
        let dup = sqlx::query(insert_vaccination)
            .bind(Uuid::new_v4()).bind(student).bind(day)
            .execute(&pool).await.unwrap_err();
        assert_eq!(sqlstate(&dup), $unique, "a duplicate vaccination is refused");

        let insert_allergy = "INSERT INTO allergies (id, student_id, allergen, severity, active) VALUES ($1, $2, $3, 'SEVERE', $4)";
        sqlx::query(insert_allergy)
            .bind(Uuid::new_v4()).bind(student).bind("Kiwi").bind(true)
            .execute(&pool).await.unwrap();
        let dup = sqlx::query(insert_allergy)
            .bind(Uuid::new_v4()).bind(student).bind("  kiwi ").bind(true)
            .execute(&pool).await.unwrap_err();
        assert_eq!(sqlstate(&dup), $unique, "an active allergy is unique trimmed and case-insensitively");
        sqlx::query(insert_allergy)
            .bind(Uuid::new_v4()).bind(student).bind("KIWI").bind(false)
            .execute(&pool).await.expect("an inactive duplicate is history, and allowed");

        let orphan = sqlx::query(insert_vaccination)
            .bind(Uuid::new_v4()).bind(Uuid::new_v4()).bind(day)
            .execute(&pool).await.unwrap_err();
        assert_eq!(sqlstate(&orphan), $fk, "a vaccination of no student is refused");

        let bad_severity = sqlx::query("INSERT INTO allergies (id, student_id, allergen, severity) VALUES ($1, $2, 'Oats', 'VERY_BAD')")
            .bind(Uuid::new_v4()).bind(student)
            .execute(&pool).await.unwrap_err();
        assert_eq!(sqlstate(&bad_severity), $check, "an unknown severity is refused");

        let dup_condition = "INSERT INTO chronic_conditions (id, student_id, condition, icd10_code, status) VALUES ($1, $2, 'Asthma', 'J45.998', 'ACTIVE')";
        sqlx::query(dup_condition).bind(Uuid::new_v4()).bind(student).execute(&pool).await.unwrap();
        let dup = sqlx::query(dup_condition).bind(Uuid::new_v4()).bind(student).execute(&pool).await.unwrap_err();
        assert_eq!(sqlstate(&dup), $unique, "one condition per student and ICD-10 code");

        // Rows decode into the model types on this engine.
        let summary_allergies: Vec<health::Allergy> =
            sqlx::query_as("SELECT id, student_id, allergen, severity, reaction, diagnosed_on, active FROM allergies WHERE student_id = $1")
                .bind(student).fetch_all(&pool).await.unwrap();
        assert!(summary_allergies.iter().any(|a| a.allergen == "Kiwi" && a.severity == health::AllergySeverity::Severe));
        let students: Vec<health::Student> = sqlx::query_as(
            "SELECT id, student_number, first_name, last_name, date_of_birth, grade, active FROM students ORDER BY student_number",
        ).fetch_all(&pool).await.unwrap();
        let mut expected = school.students.clone();
        expected.sort_by(|a, b| a.student_number.cmp(&b.student_number));
        assert_eq!(students, expected, "students round-trip exactly");
        let logs: Vec<health::MedicationLog> = sqlx::query_as(
            "SELECT id, student_id, medication, dosage, administered_at, administered_by FROM medication_logs",
        ).fetch_all(&pool).await.unwrap();
        assert_eq!(logs.len(), school.medication_logs.len());
    }};
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn postgres_migrations_apply_and_constraints_hold(pool: PgPool) {
    constraint_checks!(
        pool,
        health::load_school_postgres,
        health::table_counts_postgres,
        unique = "23505",
        fk = "23503",
        check = "23514"
    );
}

#[tokio::test]
async fn sqlite_migrations_apply_and_constraints_hold() {
    // SQLite's extended result codes: 2067 UNIQUE, 787 FOREIGN KEY, 275 CHECK.
    constraint_checks!(
        common::sqlite_memory().await,
        health::load_school_sqlite,
        health::table_counts_sqlite,
        unique = "2067",
        fk = "787",
        check = "275"
    );
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn postgres_migrations_are_idempotent(pool: PgPool) {
    // Where `#[sqlx::test]` applied them (`public`), and in a schema of their own.
    let vitals = health::Tables::in_schema(health::DEFAULT_PG_SCHEMA).unwrap();
    for tables in [health::Tables::unqualified(), vitals.clone(), vitals] {
        health::migrate_postgres(&pool, &tables).await.unwrap();
    }
}

#[tokio::test]
async fn sqlite_and_postgres_migrations_create_the_same_tables() {
    let lite = common::sqlite_memory().await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite%' ORDER BY name",
    )
    .fetch_all(&lite)
    .await
    .unwrap();
    assert_eq!(tables, common::VITALS_TABLES);
}
