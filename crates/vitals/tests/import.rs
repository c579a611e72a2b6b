//! The healthcare import end to end, on PostgreSQL (`#[sqlx::test]`, a fresh database per
//! test with the migrations applied) and on SQLite (in memory): what goes in, what is
//! reported, and what is refused. The parallel writers are in `import_workers.rs`.
//!
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo test -p vitals --test import`.

mod common;

use common::import::*;
use sqlx::PgPool;
use uuid::Uuid;
use vitals::health::records;
use vitals::import::{DuplicateOf, DuplicateRow, ImportOptions, Importer, PgSink, Source};

fn mixed_ndjson() -> String {
    format!(
        r#"{{"type":"student","id":"{STUDENT_A}","student_number":"S-1","first_name":"Ann","last_name":"O'Brien","date_of_birth":"2014-03-01","grade":"4"}}
{{"type":"vaccination","student_id":"{STUDENT_A}","vaccine_name":"MMR","dose_number":1,"administered_on":"2015-03-01"}}
{{"type":"allergy","student_id":"{STUDENT_A}","allergen":"Peanut","severity":"SEVERE","reaction":"hives"}}
{{"type":"chronic_condition","student_id":"{STUDENT_A}","condition":"Asthma","icd10_code":"J45.909","status":"ACTIVE","diagnosed_on":"2019-05-02"}}
"#
    )
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn importing_the_same_file_twice_imports_nothing_the_second_time(pool: PgPool) {
    let f = file(".ndjson", &mixed_ndjson());
    let first = import_pg(&pool, &f, None, ImportOptions::new()).await;
    assert_eq!(
        (first.total, first.imported, first.rejected),
        (4, 4, 0),
        "{first:#?}"
    );
    assert_eq!(first.by_type["allergy"].imported, 1);

    let second = import_pg(&pool, &f, None, ImportOptions::new()).await;
    assert_eq!((second.imported, second.duplicates), (0, 4), "{second:#?}");
    assert!(second
        .duplicate_rows
        .iter()
        .all(|d| d.of == DuplicateOf::Existing));
    let lines: Vec<u64> = second.duplicate_rows.iter().map(|d| d.line).collect();
    assert_eq!(lines, vec![1, 2, 3, 4]);
    for table in [
        "students",
        "vaccinations",
        "allergies",
        "chronic_conditions",
    ] {
        assert_eq!(count(&pool, table).await, 1, "{table}");
    }
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn bad_rows_are_reported_by_line_and_the_good_ones_go_in(pool: PgPool) {
    with_students(&pool).await;
    let long = "x".repeat(1001);
    let unknown = Uuid::new_v4();
    let csv = format!(
        "student_id,vaccine_name,dose_number,administered_on,administered_by,lot_number\n\
         {STUDENT_A},MMR,1,2015-03-01,Nurse Joy,L1\n\
         {STUDENT_A},MMR,2,2015-02-30,,\n\
         {unknown},MMR,1,2015-03-01,,\n\
         {STUDENT_B},\"Hep\nB\",0,2015-03-01,,\n\
         {STUDENT_B},{long},1,2015-03-01,,\n\
         {STUDENT_A},MMR,1,2015-03-01,Someone else,L2\n\
         {STUDENT_B},,1,2015-03-01\n\
         {STUDENT_B},DTaP,1,2016-01-01,,\n"
    );
    let f = file(".csv", &csv);
    let r = import_pg(&pool, &f, Some(records::VACCINATION), ImportOptions::new()).await;
    assert_eq!(
        (r.total, r.imported, r.duplicates, r.rejected),
        (8, 2, 1, 5),
        "{r:#?}"
    );
    let got: Vec<(u64, Option<&str>, &str)> = r
        .rejections
        .iter()
        .map(|x| (x.line, x.field.as_deref(), x.reason.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (3, Some("administered_on"), "not a date (YYYY-MM-DD)"),
            (4, Some("student_id"), "unknown student_id"),
            // Line 5 starts a record whose quoted field spans two lines.
            (5, Some("dose_number"), "out of range 1..=20"),
            (7, Some("vaccine_name"), "longer than 1000 characters"),
            (9, None, "has 4 fields, the header has 6"),
        ]
    );
    assert_eq!(
        r.duplicate_rows,
        vec![DuplicateRow {
            line: 8,
            of: DuplicateOf::Line(2)
        }]
    );
    let json = serde_json::to_string(&r).unwrap();
    assert!(
        !json.contains(&unknown.to_string()) && !json.contains(&long),
        "no PHI in the report"
    );
    assert_eq!(count(&pool, "vaccinations").await, 2);
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn injection_strings_are_stored_verbatim(pool: PgPool) {
    with_students(&pool).await;
    let evil = "'); DROP TABLE students; --";
    let f = file(
        ".json",
        &serde_json::json!([
            {"type": "allergy", "student_id": STUDENT_A, "allergen": evil, "severity": "mild", "reaction": "O'Hara \"quoted\" \\ back"},
        ])
        .to_string(),
    );
    let r = import_pg(&pool, &f, None, ImportOptions::new()).await;
    assert_eq!(r.imported, 1, "{r:#?}");
    let (allergen, severity, reaction): (String, String, String) =
        sqlx::query_as("SELECT allergen, severity, reaction FROM allergies")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(allergen, evil);
    assert_eq!(severity, "MILD");
    assert_eq!(reaction, "O'Hara \"quoted\" \\ back");
    assert_eq!(count(&pool, "students").await, 2);
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn allergies_are_compared_trimmed_and_case_insensitively(pool: PgPool) {
    with_students(&pool).await;
    sqlx::query(
        "INSERT INTO allergies (student_id, allergen, severity) VALUES ($1, 'Peanut', 'MILD')",
    )
    .bind(Uuid::parse_str(STUDENT_A).unwrap())
    .execute(&pool)
    .await
    .unwrap();
    let csv = format!(
        "student_id,allergen,severity,reaction,diagnosed_on\n\
         {STUDENT_A}, peanut ,SEVERE,,\n\
         {STUDENT_B},Latex,MILD,,2020-01-01\n\
         {STUDENT_B},LATEX,MILD,,\n\
         {STUDENT_B},Bees,EXTREME,,\n"
    );
    let f = file(".csv", &csv);
    let r = import_pg(&pool, &f, Some(records::ALLERGY), ImportOptions::new()).await;
    assert_eq!((r.imported, r.duplicates, r.rejected), (1, 2, 1), "{r:#?}");
    assert_eq!(
        r.duplicate_rows,
        vec![
            DuplicateRow {
                line: 2,
                of: DuplicateOf::Existing
            },
            DuplicateRow {
                line: 4,
                of: DuplicateOf::Line(3)
            },
        ]
    );
    assert_eq!(
        r.rejections[0].reason,
        "not one of MILD, MODERATE, SEVERE, LIFE_THREATENING"
    );
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn all_or_nothing_rolls_everything_back(pool: PgPool) {
    let mut content = mixed_ndjson();
    content.push_str("{\"type\":\"vaccination\",\"student_id\":\"nope\"}\n");
    let f = file(".ndjson", &content);
    // Chunks of 2: the first chunk is written before the bad row is read.
    let all_or_nothing = |f| {
        import_pg(
            &pool,
            f,
            None,
            ImportOptions::new().all_or_nothing(true).chunk_size(2),
        )
    };
    let r = all_or_nothing(&f).await;
    assert!(r.rolled_back, "{r:#?}");
    assert_eq!((r.imported, r.rejected, r.total), (0, 5, 5));
    assert_eq!(
        r.rejections.len(),
        4,
        "student_id, vaccine_name, dose_number, administered_on"
    );
    assert!(r.rejections.iter().all(|x| x.line == 5));
    assert_eq!(count(&pool, "students").await, 0);

    let f = file(".ndjson", &mixed_ndjson());
    let r = all_or_nothing(&f).await;
    assert!(!r.rolled_back);
    assert_eq!(r.imported, 4);
    assert_eq!(count(&pool, "chronic_conditions").await, 1);
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn dry_run_validates_and_writes_nothing(pool: PgPool) {
    let f = file(
        ".ndjson",
        &format!("{}{{\"type\":\"nurse\"}}\nnot json\n", mixed_ndjson()),
    );
    let r = import_pg(&pool, &f, None, ImportOptions::new().dry_run(true)).await;
    assert!(r.dry_run);
    assert_eq!((r.imported, r.rejected), (4, 2), "{r:#?}");
    assert_eq!(r.rejections[0].line, 5);
    assert_eq!(r.rejections[0].reason, "unknown record type");
    assert_eq!(r.rejections[1].line, 6);
    assert!(r.rejections[1].reason.starts_with("malformed JSON"));
    assert_eq!(count(&pool, "students").await, 0);
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn a_student_brought_earlier_by_the_same_file_satisfies_the_foreign_key(pool: PgPool) {
    let new_student = Uuid::new_v4();
    let later_student = Uuid::new_v4();
    let content = format!(
        r#"{{"type":"student","id":"{new_student}","student_number":"S-9","first_name":"Cy","last_name":"Dee","date_of_birth":"2012-01-01","grade":"6"}}
{{"type":"vaccination","student_id":"{later_student}","vaccine_name":"MMR","dose_number":1,"administered_on":"2015-03-01"}}
{{"type":"vaccination","student_id":"{new_student}","vaccine_name":"MMR","dose_number":1,"administered_on":"2015-03-01"}}
{{"type":"vaccination","student_id":"{new_student}","vaccine_name":"MMR","dose_number":2,"administered_on":"2016-03-01"}}
{{"type":"student","id":"{later_student}","student_number":"S-10","first_name":"Ed","last_name":"Fo","date_of_birth":"2012-01-01","grade":"6"}}
"#
    );
    let f = file(".ndjson", &content);
    // Chunks of 3: the second dose's student came in the previous chunk.
    let r = import_pg(&pool, &f, None, ImportOptions::new().chunk_size(3)).await;
    assert_eq!((r.imported, r.rejected), (4, 1), "{r:#?}");
    assert_eq!(
        r.rejections[0].line, 2,
        "the student comes later in the file"
    );
    assert_eq!(r.rejections[0].reason, "unknown student_id");
    assert_eq!(count(&pool, "vaccinations").await, 2);
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn a_student_refused_by_another_unique_index_rejects_its_records_not_the_chunk(pool: PgPool) {
    with_students(&pool).await;
    // A new id with the student_number S-1 of an existing student: ON CONFLICT skips it
    // (counted as a duplicate of an existing row), so its vaccination has no student and must
    // be rejected by line, while the other vaccination of the chunk still goes in.
    const NEW_ID: &str = "0b7f5c2e-0000-4000-8000-0000000000cc";
    let f = file(
        ".ndjson",
        &format!(
            r#"{{"type":"student","id":"{NEW_ID}","student_number":"S-1","first_name":"Cy","last_name":"Ng","date_of_birth":"2014-01-01","grade":"4"}}
{{"type":"vaccination","student_id":"{NEW_ID}","vaccine_name":"MMR","dose_number":1,"administered_on":"2015-03-01"}}
{{"type":"vaccination","student_id":"{STUDENT_B}","vaccine_name":"MMR","dose_number":1,"administered_on":"2015-03-01"}}
"#
        ),
    );
    let r = import_pg(&pool, &f, None, ImportOptions::new()).await;
    assert_eq!((r.imported, r.duplicates, r.rejected), (1, 1, 1), "{r:#?}");
    assert_eq!(
        r.duplicate_rows,
        [DuplicateRow {
            line: 1,
            of: DuplicateOf::Existing
        }]
    );
    assert_eq!(r.rejections.len(), 1, "{r:#?}");
    assert_eq!(r.rejections[0].line, 2);
    assert_eq!(r.rejections[0].field.as_deref(), Some("student_id"));
    assert_eq!(count(&pool, "vaccinations").await, 1);
    assert_eq!(count(&pool, "students").await, 2);
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn a_hundred_records_take_at_most_six_statements(pool: PgPool) {
    with_students(&pool).await;
    let mut csv = String::from(VACCINATION_HEADER);
    for i in 0..100 {
        let student = if i % 2 == 0 { STUDENT_A } else { STUDENT_B };
        csv.push_str(&format!("{student},Vaccine {i},1,2020-01-01,Nurse,L{i}\n"));
    }
    let f = file(".csv", &csv);
    let r = import_pg(&pool, &f, Some(records::VACCINATION), ImportOptions::new()).await;
    assert_eq!(r.imported, 100);
    assert!(r.queries <= 6, "{} statements", r.queries);
    assert_eq!(count(&pool, "vaccinations").await, 100);
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn max_errors_stops_reading(pool: PgPool) {
    let mut content = String::new();
    for _ in 0..10 {
        content.push_str("{\"type\":\"student\"}\n");
    }
    let f = file(".ndjson", &content);
    let r = import_pg(&pool, &f, None, ImportOptions::new().max_errors(3)).await;
    assert!(r.stopped_early);
    assert_eq!(r.total, 4);
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn unreadable_input_is_an_input_error(pool: PgPool) {
    let importer = Importer::new(records::registry(), ImportOptions::new()).unwrap();
    let f = file(".csv", &students_csv());
    let source = Source::open(f.path(), None).unwrap().with_type("nurse");
    let e = importer
        .run(source, &mut PgSink::new(pool))
        .await
        .unwrap_err();
    assert!(e.is_input_error(), "{e}");
    assert!(Source::open("/no/such/file.csv", None)
        .unwrap_err()
        .is_input_error());
    let empty = file(".csv", "");
    assert!(Source::open(empty.path(), None)
        .unwrap_err()
        .is_input_error());
}

#[tokio::test]
async fn sqlite_imports_once_checks_keys_and_stores_text_verbatim() {
    let pool = common::sqlite_memory().await;
    let evil = "Robert'); DROP TABLE students; --";
    let content = format!(
        "{}{{\"type\":\"allergy\",\"student_id\":\"{STUDENT_A}\",\"allergen\":\"{evil}\",\"severity\":\"MILD\"}}\n\
         {{\"type\":\"allergy\",\"student_id\":\"{STUDENT_A}\",\"allergen\":\" peanut \",\"severity\":\"MILD\"}}\n\
         {{\"type\":\"allergy\",\"student_id\":\"{STUDENT_B}\",\"allergen\":\"Dust\",\"severity\":\"MILD\"}}\n",
        mixed_ndjson()
    );
    let f = file(".ndjson", &content);
    let first = import_sqlite(&pool, &f, ImportOptions::new()).await;
    assert_eq!(
        (first.imported, first.duplicates, first.rejected),
        (5, 1, 1),
        "{first:#?}"
    );
    assert_eq!(
        first.duplicate_rows,
        vec![DuplicateRow {
            line: 6,
            of: DuplicateOf::Line(3)
        }]
    );
    assert_eq!(first.rejections[0].line, 7);
    assert_eq!(first.rejections[0].reason, "unknown student_id");

    let second = import_sqlite(&pool, &f, ImportOptions::new()).await;
    assert_eq!(
        (second.imported, second.duplicates, second.rejected),
        (0, 6, 1),
        "{second:#?}"
    );

    let stored: String =
        sqlx::query_scalar("SELECT allergen FROM allergies WHERE allergen LIKE 'Robert%'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored, evil);
    let students: i64 = sqlx::query_scalar("SELECT count(*) FROM students")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(students, 1);
}

#[tokio::test]
async fn sqlite_all_or_nothing_and_dry_run() {
    let pool = common::sqlite_memory().await;
    let f = file(".ndjson", &format!("{}{{broken\n", mixed_ndjson()));
    let r = import_sqlite(&pool, &f, ImportOptions::new().all_or_nothing(true)).await;
    assert!(r.rolled_back);
    assert_eq!((r.imported, r.rejected), (0, 5));
    let r = import_sqlite(&pool, &f, ImportOptions::new().dry_run(true)).await;
    assert_eq!((r.imported, r.rejected), (4, 1));
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM vaccinations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}
