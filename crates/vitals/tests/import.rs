//! The healthcare import end to end, on PostgreSQL (`#[sqlx::test]`, a fresh database per
//! test with the migrations applied) and on SQLite (in memory).
//!
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo test -p vitals --test import`.

use std::io::Write;

use sqlx::{PgPool, SqlitePool};
use uuid::Uuid;
use vitals::health::{self, records};
use vitals::import::{
    DuplicateOf, DuplicateRow, ImportOptions, ImportReport, Importer, PgSink, Source, SqliteSink,
};

const STUDENT_A: &str = "0b7f5c2e-0000-4000-8000-00000000000a";
const STUDENT_B: &str = "0b7f5c2e-0000-4000-8000-00000000000b";

const VACCINATION_HEADER: &str =
    "student_id,vaccine_name,dose_number,administered_on,administered_by,lot_number\n";

fn file(suffix: &str, content: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(suffix).tempfile().unwrap();
    f.write_all(content.as_bytes()).unwrap();
    f.flush().unwrap();
    f
}

fn students_csv() -> String {
    format!(
        "id,student_number,first_name,last_name,date_of_birth,grade\n\
         {STUDENT_A},S-1,Ann,O'Brien,2014-03-01,4\n\
         {STUDENT_B},S-2,Bo,Lee,2013-07-12,5\n"
    )
}

async fn import_pg(
    pool: &PgPool,
    f: &tempfile::NamedTempFile,
    ty: Option<&str>,
    options: ImportOptions,
) -> ImportReport {
    let importer = Importer::new(records::registry(), options).unwrap();
    let mut source = Source::open(f.path(), None).unwrap();
    if let Some(t) = ty {
        source = source.with_type(t);
    }
    let report = importer
        .run(source, &mut PgSink::new(pool.clone()))
        .await
        .unwrap();
    assert_eq!(
        report.imported + report.duplicates + report.rejected,
        report.total,
        "{report:#?}"
    );
    report
}

async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn with_students(pool: &PgPool) {
    let f = file(".csv", &students_csv());
    let r = import_pg(pool, &f, Some(records::STUDENT), ImportOptions::new()).await;
    assert_eq!(r.imported, 2, "{r:#?}");
}

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
    let r = import_pg(
        &pool,
        &f,
        None,
        ImportOptions::new().all_or_nothing(true).chunk_size(2),
    )
    .await;
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
    let r = import_pg(
        &pool,
        &f,
        None,
        ImportOptions::new().all_or_nothing(true).chunk_size(2),
    )
    .await;
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

async fn sqlite() -> SqlitePool {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    health::migrate_sqlite(&pool).await.unwrap();
    pool
}

async fn import_sqlite(
    pool: &SqlitePool,
    f: &tempfile::NamedTempFile,
    options: ImportOptions,
) -> ImportReport {
    let importer = Importer::new(records::registry(), options).unwrap();
    let source = Source::open(f.path(), None).unwrap();
    let r = importer
        .run(source, &mut SqliteSink::new(pool.clone()))
        .await
        .unwrap();
    assert_eq!(r.imported + r.duplicates + r.rejected, r.total, "{r:#?}");
    r
}

#[tokio::test]
async fn sqlite_imports_once_checks_keys_and_stores_text_verbatim() {
    let pool = sqlite().await;
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
    let pool = sqlite().await;
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

/// 1 000 vaccination rows for two students, with in-file duplicates (every 7th row repeats
/// the row before it), rows already in the database (the first 30) and rows of an unknown
/// student (every 50th).
fn many_vaccinations() -> String {
    let mut csv = String::from(VACCINATION_HEADER);
    let mut last = String::new();
    for i in 0..1000 {
        let line = if i % 7 == 6 {
            last.clone()
        } else if i % 50 == 49 {
            format!("{},Vaccine {i},1,2020-01-01,Nurse,L{i}\n", Uuid::nil())
        } else {
            let student = if i % 2 == 0 { STUDENT_A } else { STUDENT_B };
            format!("{student},Vaccine {i},1,2020-01-01,Nurse,L{i}\n")
        };
        csv.push_str(&line);
        last = line;
    }
    csv
}

/// Runs `body` (PL/pgSQL, ending in `RETURN NEW`) before every insert of a vaccination row.
async fn before_vaccination_insert(pool: &PgPool, body: &str) {
    sqlx::raw_sql(&format!(
        "CREATE FUNCTION test_trigger() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} END $$; \
         CREATE TRIGGER test_trigger BEFORE INSERT ON vaccinations \
           FOR EACH ROW EXECUTE FUNCTION test_trigger();"
    ))
    .execute(pool)
    .await
    .unwrap();
}

/// A CSV file of `n` vaccinations of `student`, lots `L0`, `L1`, …
fn vaccinations_csv(student: &str, n: usize) -> tempfile::NamedTempFile {
    let mut csv = String::from(VACCINATION_HEADER);
    for i in 0..n {
        csv.push_str(&format!("{student},Vaccine {i},1,2020-01-01,Nurse,L{i}\n"));
    }
    file(".csv", &csv)
}

async fn lots(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT lot_number FROM vaccinations ORDER BY lot_number")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn parallel_writes_report_and_store_exactly_what_one_connection_does(pool: PgPool) {
    with_students(&pool).await;
    let csv = many_vaccinations();
    let head: String = csv.lines().take(31).map(|l| format!("{l}\n")).collect();
    let existing = file(".csv", &head);
    let f = file(".csv", &csv);
    let mut outcomes = Vec::new();
    for workers in [1, 4] {
        sqlx::query("TRUNCATE vaccinations")
            .execute(&pool)
            .await
            .unwrap();
        let options = || ImportOptions::new().chunk_size(50).workers(workers);
        import_pg(&pool, &existing, Some(records::VACCINATION), options()).await;
        let r = import_pg(&pool, &f, Some(records::VACCINATION), options()).await;
        outcomes.push((r, lots(&pool).await));
    }
    let (one, four) = (&outcomes[0], &outcomes[1]);
    assert!(one.0.imported > 800 && one.0.duplicates > 100 && one.0.rejected == 20);
    let (a, b) = (&one.0, &four.0);
    assert_eq!(
        (a.total, a.imported, a.duplicates, a.rejected),
        (b.total, b.imported, b.duplicates, b.rejected)
    );
    assert_eq!(a.duplicate_rows, b.duplicate_rows);
    assert_eq!(a.rejections.len(), b.rejections.len());
    assert!(a
        .rejections
        .iter()
        .zip(&b.rejections)
        .all(|(x, y)| (x.line, &x.field) == (y.line, &y.field)));
    assert_eq!(a.by_type, b.by_type);
    assert_eq!(one.1, four.1, "the same rows are stored");
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn a_failed_chunk_is_rolled_back_the_ones_before_stay_and_nothing_after_the_window_is_written(
    pool: PgPool,
) {
    with_students(&pool).await;
    // Refuses one lot, slowly: the two chunks after it (three workers) are already being
    // written when its failure is known; nothing after them may be.
    before_vaccination_insert(
        &pool,
        "IF NEW.lot_number = 'L25' THEN PERFORM pg_sleep(0.3); \
           RAISE EXCEPTION 'lot refused by the test'; END IF; RETURN NEW;",
    )
    .await;
    let f = vaccinations_csv(STUDENT_A, 100);
    let importer = Importer::new(
        records::registry(),
        ImportOptions::new().chunk_size(10).workers(3),
    )
    .unwrap();
    let source = Source::open(f.path(), None)
        .unwrap()
        .with_type(records::VACCINATION);
    let err = importer
        .run(source, &mut PgSink::new(pool.clone()))
        .await
        .unwrap_err();
    // Row 25 is on line 27, in the chunk of lines 22..=31.
    assert!(
        matches!(err, vitals::import::ImportError::Database { line: 22, .. }),
        "{err}"
    );
    let stored = lots(&pool).await;
    let mut expected: Vec<String> = (0..20).chain(30..50).map(|i| format!("L{i}")).collect();
    expected.sort();
    assert_eq!(
        stored, expected,
        "the chunks before the failure and the two beside it stay; the failed one and all later are not written"
    );
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn a_row_another_writer_brings_meanwhile_is_a_duplicate_on_one_connection_or_two(
    pool: PgPool,
) {
    with_students(&pool).await;
    // Another writer, made deterministic: inserting lot RACE first inserts a row with the
    // same natural key (after the importer's lookup found none), so ON CONFLICT skips it.
    before_vaccination_insert(
        &pool,
        "IF NEW.lot_number = 'RACE' THEN \
           INSERT INTO vaccinations (student_id, vaccine_name, dose_number, administered_on, \
             administered_by, lot_number) VALUES (NEW.student_id, NEW.vaccine_name, \
             NEW.dose_number, NEW.administered_on, 'another writer', 'RACE-OTHER'); \
         END IF; RETURN NEW;",
    )
    .await;
    let mut csv = String::from(VACCINATION_HEADER);
    for i in 0..20 {
        let lot = if i == 13 {
            "RACE".to_owned()
        } else {
            format!("L{i}")
        };
        csv.push_str(&format!(
            "{STUDENT_B},Vaccine {i},1,2020-01-01,Nurse,{lot}\n"
        ));
    }
    let f = file(".csv", &csv);
    for workers in [1, 2] {
        sqlx::query("TRUNCATE vaccinations")
            .execute(&pool)
            .await
            .unwrap();
        let options = ImportOptions::new().chunk_size(10).workers(workers);
        let r = import_pg(&pool, &f, Some(records::VACCINATION), options).await;
        assert_eq!(
            (r.imported, r.duplicates),
            (19, 1),
            "workers {workers}: {r:#?}"
        );
        assert_eq!(
            r.duplicate_rows,
            vec![DuplicateRow {
                line: 15,
                of: DuplicateOf::Existing
            }],
            "workers {workers}"
        );
        let stored = lots(&pool).await;
        assert_eq!(stored.len(), 20, "workers {workers}: {stored:?}");
        assert!(stored.contains(&"RACE-OTHER".to_owned()));
        assert!(!stored.contains(&"RACE".to_owned()));
    }
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn a_cancelled_import_commits_none_of_the_chunks_it_was_writing(pool: PgPool) {
    with_students(&pool).await;
    // Every chunk's insert takes half a second, so both chunks (two workers) are being
    // written when the import is cancelled.
    before_vaccination_insert(
        &pool,
        "IF NEW.lot_number LIKE 'L%5' THEN PERFORM pg_sleep(0.5); END IF; RETURN NEW;",
    )
    .await;
    let f = vaccinations_csv(STUDENT_A, 20);
    let importer = Importer::new(
        records::registry(),
        ImportOptions::new().chunk_size(10).workers(2),
    )
    .unwrap();
    let source = Source::open(f.path(), None)
        .unwrap()
        .with_type(records::VACCINATION);
    let mut sink = PgSink::new(pool.clone());
    let mut run = Box::pin(importer.run(source, &mut sink));
    // Polls (the database offers no event to wait on), within a deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let next_poll = || async {
        assert!(
            std::time::Instant::now() < deadline,
            "the database did not reach the state in 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    // Cancel once both inserts are running: two backends sleeping in the trigger.
    let both_writing = async {
        loop {
            let sleeping: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event = 'PgSleep'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            if sleeping == 2 {
                break;
            }
            next_poll().await;
        }
    };
    tokio::select! {
        r = &mut run => panic!("the import ended before it was cancelled: {r:?}"),
        () = both_writing => {}
    }
    drop(run); // the import's future, and with it its pending writes
               // Wait until the database has finished with both transactions, then look.
    loop {
        let busy: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid() AND (state = 'active' OR state LIKE 'idle in transaction%')",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if busy == 0 {
            break;
        }
        next_poll().await;
    }
    assert_eq!(count(&pool, "vaccinations").await, 0);
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn two_workers_on_a_pool_of_one_connection_take_turns(pool: PgPool) {
    with_students(&pool).await;
    let one = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(30))
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap();
    let f = vaccinations_csv(STUDENT_B, 100);
    let r = import_pg(
        &one,
        &f,
        Some(records::VACCINATION),
        ImportOptions::new().chunk_size(10).workers(2),
    )
    .await;
    assert_eq!(r.imported, 100, "{r:#?}");
    assert_eq!(count(&pool, "vaccinations").await, 100);
}
