//! `Vitals::import` keeps the health cache true, on real PostgreSQL and Redis: the cached data
//! of every student whose records an import wrote is dropped, and only theirs (not the
//! students of rejected rows, nothing in a dry run), and the outcome says how many.
//!
//! Run with `cargo test -p vitals --test import_cache`.

mod common;

use std::io::Cursor;

use common::import::{file, students_csv, STUDENT_A, STUDENT_B, VACCINATION_HEADER};
use common::{cached_summary, redis_config, vitals_on_postgres};
use sqlx::PgPool;
use uuid::Uuid;
use vitals::health::records;
use vitals::import::{Format, Source};
use vitals::Vitals;

/// `student`'s summary through the cache: its vaccinations, and whether it was loaded from
/// the database (rather than served from the cache).
async fn summary(vitals: &Vitals, student: Uuid) -> (usize, bool) {
    let loads = vitals.cache_stats().loads;
    let vaccinations = cached_summary(vitals, student).await.vaccinations.len();
    (vaccinations, vitals.cache_stats().loads > loads)
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn an_import_drops_the_cache_of_the_students_it_wrote_and_a_dry_run_drops_none(pool: PgPool) {
    let vitals = vitals_on_postgres(redis_config("import-cache"), pool, None).await;
    let (a, b): (Uuid, Uuid) = (STUDENT_A.parse().unwrap(), STUDENT_B.parse().unwrap());
    let students = file(".csv", &students_csv());
    let outcome = vitals
        .import_file(students.path(), None, Some(records::STUDENT), None)
        .await
        .unwrap();
    assert_eq!(
        (outcome.report.imported, outcome.students_invalidated),
        (2, 2)
    );
    assert_eq!(summary(&vitals, a).await, (0, true));
    assert_eq!(summary(&vitals, b).await, (0, true));
    assert_eq!(
        summary(&vitals, a).await,
        (0, false),
        "A's summary is cached"
    );

    // Two vaccinations of A, and a row of B refused (dose 0).
    let vaccinations = file(
        ".csv",
        &format!(
            "{VACCINATION_HEADER}{STUDENT_A},MMR,1,2015-03-01,,\n\
             {STUDENT_A},MMR,2,2016-03-01,,\n{STUDENT_B},MMR,0,2015-03-01,,\n"
        ),
    );
    let outcome = vitals
        .import_file(vaccinations.path(), None, Some(records::VACCINATION), None)
        .await
        .unwrap();
    assert_eq!(
        (outcome.report.imported, outcome.report.rejected),
        (2, 1),
        "{outcome:#?}"
    );
    assert_eq!(outcome.students_invalidated, 1);
    assert_eq!(
        summary(&vitals, a).await,
        (2, true),
        "A's summary is reloaded"
    );
    assert_eq!(summary(&vitals, b).await, (0, false), "B's stays cached");

    // A dry run writes nothing and drops nothing.
    let polio = format!("{VACCINATION_HEADER}{STUDENT_A},Polio,1,2015-04-01,,\n");
    let source = Source::from_reader(Cursor::new(polio.into_bytes()), Format::Csv)
        .unwrap()
        .with_type(records::VACCINATION);
    let options = vitals.config().import.clone().dry_run(true);
    let outcome = vitals.import(source, Some(options)).await.unwrap();
    assert!(outcome.report.dry_run);
    assert_eq!(
        (outcome.report.imported, outcome.students_invalidated),
        (1, 0)
    );
    assert_eq!(summary(&vitals, a).await, (2, false), "A's stays cached");

    // The outcome is the report's JSON plus the count (what the upload route answers).
    let json = serde_json::to_value(&outcome).unwrap();
    assert_eq!(
        (
            json["imported"].as_u64(),
            json["students_invalidated"].as_u64()
        ),
        (Some(1), Some(0))
    );
    vitals.shutdown().await;
}
