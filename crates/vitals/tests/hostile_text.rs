//! Injection strings in every text field of every record type, stored verbatim and read
//! back equal on PostgreSQL and SQLite, through the bulk loader, the importer and the cache.
//!
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo test -p vitals --test hostile_text`.

mod common;

use std::collections::BTreeMap;

use common::{cached_summary, csv_line, vitals_on_sqlite_file};
use sqlx::PgPool;
use uuid::Uuid;
use vitals::health::{
    self, records, Allergy, Appointment, ChronicCondition, IncidentReport, MedicationLog, School,
    SchoolGenerator, Student, Vaccination,
};
use vitals::import::{Format, ImportOptions, Importer, Source};
use vitals::{Config, Vitals};

/// Strings that break naive SQL, CSV, JSON, COPY or log handling. No NUL: PostgreSQL text
/// cannot hold one.
const HOSTILE: &[&str] = &[
    "'); DROP TABLE students; --",
    "Robert'); DROP TABLE students;--",
    "' OR '1'='1",
    "\"double\" and 'single' quotes",
    "back\\slash \\' \\\\ \\n",
    "O'Brien-D'Arcy",
    "$$dollar$$ $tag$x$tag$",
    "%_wild%_",
    "E'\\x27' U&'\\0041'",
    "/* comment */ -- line",
    "Zoë Ñúñez 李小龍 🙂 ﷽",
    "\u{202E}rtl\u{200B}zero\u{FEFF}width",
    "tab\tcr\rlf\nbell\u{7}esc\u{1b}del\u{7f}",
    "   leading and trailing spaces   ",
    "\\N",
    "NULL",
    "{\"json\": [1, \"two\"]}",
    "<script>alert('x')</script>",
    "a,b;c|d\"e",
];

/// The `n`th hostile string, made unique by a numeric suffix (some columns are keys).
fn evil(n: &mut usize) -> String {
    let s = format!("{}#{n}", HOSTILE[*n % HOSTILE.len()]);
    *n += 1;
    s
}

/// A small school whose every text field holds a hostile string.
fn hostile_school() -> School {
    let mut school = SchoolGenerator::new(6).seed(77).generate();
    let mut n = 0;
    for s in &mut school.students {
        s.student_number = evil(&mut n);
        s.first_name = evil(&mut n);
        s.last_name = evil(&mut n);
        s.grade = evil(&mut n);
    }
    for v in &mut school.vaccinations {
        v.vaccine_name = evil(&mut n);
        v.administered_by = Some(evil(&mut n));
        v.lot_number = Some(evil(&mut n));
    }
    for a in &mut school.allergies {
        a.allergen = evil(&mut n);
        a.reaction = Some(evil(&mut n));
    }
    for c in &mut school.chronic_conditions {
        c.condition = evil(&mut n);
        c.icd10_code = evil(&mut n);
        c.notes = Some(evil(&mut n));
    }
    for m in &mut school.medication_logs {
        m.medication = evil(&mut n);
        m.dosage = evil(&mut n);
        m.administered_by = evil(&mut n);
    }
    for i in &mut school.incident_reports {
        i.kind = evil(&mut n);
        i.description = evil(&mut n);
    }
    for a in &mut school.appointments {
        a.kind = evil(&mut n);
    }
    assert!(n > 2 * HOSTILE.len(), "every hostile string is used");
    school
}

fn sorted<T: Clone, K: Ord>(rows: &[T], key: impl Fn(&T) -> K) -> Vec<T> {
    let mut v = rows.to_vec();
    v.sort_by_key(key);
    v
}

/// Reads every table back and compares it with the school, row by row, field by field.
macro_rules! assert_tables_equal {
    ($pool:expr, $school:expr) => {{
        let pool = $pool;
        let school: &School = $school;
        assert_tables_equal!(@table pool, Student, school.students, "SELECT id, student_number, first_name, last_name, date_of_birth, grade, active FROM students");
        assert_tables_equal!(@table pool, Vaccination, school.vaccinations, "SELECT id, student_id, vaccine_name, dose_number, administered_on, administered_by, lot_number FROM vaccinations");
        assert_tables_equal!(@table pool, Allergy, school.allergies, "SELECT id, student_id, allergen, severity, reaction, diagnosed_on, active FROM allergies");
        assert_tables_equal!(@table pool, ChronicCondition, school.chronic_conditions, "SELECT id, student_id, condition, icd10_code, status, diagnosed_on, notes FROM chronic_conditions");
        assert_tables_equal!(@table pool, MedicationLog, school.medication_logs, "SELECT id, student_id, medication, dosage, administered_at, administered_by FROM medication_logs");
        assert_tables_equal!(@table pool, IncidentReport, school.incident_reports, "SELECT id, student_id, occurred_at, kind, severity, description FROM incident_reports");
        assert_tables_equal!(@table pool, Appointment, school.appointments, "SELECT id, student_id, scheduled_at, kind, status FROM appointments");
    }};
    (@table $pool:ident, $row:ty, $expected:expr, $sql:literal) => {{
        let rows: Vec<$row> = sqlx::query_as($sql).fetch_all($pool).await.unwrap();
        assert_eq!(sorted(&rows, |r| r.id), sorted(&$expected, |r| r.id));
    }};
}

/// The four importable types as NDJSON, every text field hostile (ICD-10 codes are at most
/// 16 characters, so theirs are short hostile strings).
fn hostile_ndjson(student: Uuid) -> (String, BTreeMap<&'static str, Vec<String>>) {
    let mut n = 1000;
    let mut texts: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let mut out = String::new();
    let mut add = |value: serde_json::Value| {
        out.push_str(&value.to_string());
        out.push('\n');
    };
    fn t(
        texts: &mut BTreeMap<&'static str, Vec<String>>,
        field: &'static str,
        n: &mut usize,
    ) -> String {
        let s = evil(n);
        texts.entry(field).or_default().push(s.clone());
        s
    }
    let (sn, f, l, g) = (
        t(&mut texts, "student_number", &mut n),
        t(&mut texts, "first_name", &mut n),
        t(&mut texts, "last_name", &mut n),
        t(&mut texts, "grade", &mut n),
    );
    add(
        serde_json::json!({"type": "student", "id": student, "student_number": sn, "first_name": f, "last_name": l, "date_of_birth": "2012-02-02", "grade": g}),
    );
    for _ in 0..3 {
        let (v, by, lot) = (
            t(&mut texts, "vaccine_name", &mut n),
            t(&mut texts, "vaccination.administered_by", &mut n),
            t(&mut texts, "lot_number", &mut n),
        );
        add(
            serde_json::json!({"type": "vaccination", "student_id": student, "vaccine_name": v, "dose_number": 1, "administered_on": "2016-06-06", "administered_by": by, "lot_number": lot}),
        );
        let (a, r) = (
            t(&mut texts, "allergen", &mut n),
            t(&mut texts, "reaction", &mut n),
        );
        add(
            serde_json::json!({"type": "allergy", "student_id": student, "allergen": a, "severity": "SEVERE", "reaction": r}),
        );
        let c = t(&mut texts, "condition", &mut n);
        let code: String = format!("{}{n}", &HOSTILE[n % 4][..8]);
        n += 1;
        texts.entry("icd10_code").or_default().push(code.clone());
        add(
            serde_json::json!({"type": "chronic_condition", "student_id": student, "condition": c, "icd10_code": code, "status": "ACTIVE"}),
        );
    }
    (out, texts)
}

macro_rules! assert_imported_verbatim {
    ($pool:expr, $texts:expr) => {{
        let pool = $pool;
        let texts: &BTreeMap<&'static str, Vec<String>> = $texts;
        for (field, sql) in [
            ("student_number", "SELECT student_number FROM students"),
            ("first_name", "SELECT first_name FROM students"),
            ("last_name", "SELECT last_name FROM students"),
            ("grade", "SELECT grade FROM students"),
            ("vaccine_name", "SELECT vaccine_name FROM vaccinations"),
            (
                "vaccination.administered_by",
                "SELECT administered_by FROM vaccinations",
            ),
            ("lot_number", "SELECT lot_number FROM vaccinations"),
            ("allergen", "SELECT allergen FROM allergies"),
            ("reaction", "SELECT reaction FROM allergies"),
            ("condition", "SELECT condition FROM chronic_conditions"),
            ("icd10_code", "SELECT icd10_code FROM chronic_conditions"),
        ] {
            let mut got: Vec<String> = sqlx::query_scalar(sql).fetch_all(pool).await.unwrap();
            let mut want = texts[field].clone();
            got.sort();
            want.sort();
            assert_eq!(got, want, "{field} not stored verbatim");
        }
    }};
}

/// Each student's health summary, read from the tables (through the first of `reads`'
/// database), holds the student as generated, and each of `reads`' cached summaries, in
/// turn, is that summary.
async fn assert_summaries_verbatim(school: &School, reads: &[(&Vitals, &str)]) {
    let (db, tables) = (reads[0].0.db(), reads[0].0.tables());
    for s in &school.students {
        let fresh = vitals::with_db!(@call db, health::queries => health_summary(tables, s.id))
            .unwrap()
            .unwrap();
        assert_eq!(fresh.student, *s);
        for (vitals, what) in reads {
            assert_eq!(cached_summary(vitals, s.id).await, fresh, "{what}");
        }
    }
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn hostile_text_in_every_field_is_stored_verbatim_on_postgres(pool: PgPool) {
    // The bulk loader: every text field of all seven record types.
    let school = hostile_school();
    health::load_school_postgres(&pool, &health::Tables::unqualified(), &school)
        .await
        .unwrap();
    assert_tables_equal!(&pool, &school);

    // Through the facade's cache (Redis, encrypted, then a second instance reads L2).
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut config = Config::defaults().unwrap();
    config.cache = config
        .cache
        .with_redis_url(Some(redis))
        .with_key_prefix(format!("vt-hostile-{}", Uuid::new_v4().simple()))
        .with_encryption(Some(common::test_keyring()));
    let a = Vitals::builder()
        .config(config.clone())
        .postgres_pool(pool.clone())
        .build()
        .await
        .unwrap();
    let b = Vitals::builder()
        .config(config)
        .postgres_pool(pool.clone())
        .build()
        .await
        .unwrap();
    assert_summaries_verbatim(&school, &[(&a, "via A"), (&b, "via B")]).await;
    assert!(
        b.cache_stats().l2_hits >= 1,
        "B read A's entries from Redis"
    );

    // The importer: every text field of the four importable types.
    sqlx::query("TRUNCATE students CASCADE")
        .execute(&pool)
        .await
        .unwrap();
    let (ndjson, texts) = hostile_ndjson(Uuid::new_v4());
    let importer = Importer::new(records::registry(), ImportOptions::new()).unwrap();
    let source =
        Source::from_reader(std::io::Cursor::new(ndjson.into_bytes()), Format::Ndjson).unwrap();
    let r = importer
        .run(source, &mut vitals::import::PgSink::new(pool.clone()))
        .await
        .unwrap();
    assert_eq!((r.imported, r.rejected), (r.total, 0), "{r:#?}");
    assert_imported_verbatim!(&pool, &texts);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM students")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1, "the students table is still there, with its one row");
    // Last: shutting down closes the shared pool.
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn hostile_text_in_every_field_is_stored_verbatim_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let vitals = vitals_on_sqlite_file(&dir, "hostile.sqlite", None).await;
    let pool = vitals.db().sqlite().unwrap().inner().clone();
    let school = hostile_school();
    health::load_school_sqlite(&pool, vitals.tables(), &school)
        .await
        .unwrap();
    assert_tables_equal!(&pool, &school);
    assert_summaries_verbatim(&school, &[(&vitals, "cached"), (&vitals, "the L1 copy")]).await;

    sqlx::query("DELETE FROM students")
        .execute(&pool)
        .await
        .unwrap();
    let (ndjson, texts) = hostile_ndjson(Uuid::new_v4());
    let source =
        Source::from_reader(std::io::Cursor::new(ndjson.into_bytes()), Format::Ndjson).unwrap();
    let r = vitals.import(source, None).await.unwrap().report;
    assert_eq!((r.imported, r.rejected), (r.total, 0), "{r:#?}");
    assert_imported_verbatim!(&pool, &texts);
    vitals.shutdown().await;
}

/// CSV quoting: hostile student names (quotes, commas, line breaks, spaces at both ends)
/// through a CSV file come back exactly as written.
#[tokio::test]
async fn hostile_text_through_csv_is_stored_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let vitals = vitals_on_sqlite_file(&dir, "csv.sqlite", None).await;
    let mut text = csv_line(&[
        "id",
        "student_number",
        "first_name",
        "last_name",
        "date_of_birth",
        "grade",
    ]);
    let mut want = Vec::new();
    for (i, h) in HOSTILE.iter().enumerate() {
        let id = Uuid::new_v4();
        let number = format!("CSV-{i}");
        text.push_str(&csv_line(&[
            id.to_string().as_str(),
            &number,
            h,
            h,
            "2011-11-11",
            h,
        ]));
        want.push((number, h.to_string()));
    }
    let path = dir.path().join("students.csv");
    std::fs::write(&path, text).unwrap();
    let r = vitals
        .import_file(&path, None, Some(records::STUDENT), None)
        .await
        .unwrap()
        .report;
    assert_eq!(
        (r.imported, r.total),
        (HOSTILE.len() as u64, HOSTILE.len() as u64),
        "{r:#?}"
    );
    let pool = vitals.db().sqlite().unwrap().inner().clone();
    let mut got: Vec<(String, String, String, String)> =
        sqlx::query_as("SELECT student_number, first_name, last_name, grade FROM students")
            .fetch_all(&pool)
            .await
            .unwrap();
    got.sort();
    want.sort();
    for ((number, first, last, grade), (want_number, h)) in got.iter().zip(&want) {
        assert_eq!(number, want_number);
        assert_eq!((first, last, grade), (h, h, h), "{number}");
    }
    vitals.shutdown().await;
}
