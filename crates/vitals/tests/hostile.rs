//! Hostile input: random and malformed CSV/NDJSON/JSON through the healthcare importer
//! (never a panic; every row accounted for), random configuration values (never a panic;
//! every bad variable named; no password shown), and injection strings in every text field
//! of every record type, stored verbatim and read back equal on PostgreSQL and SQLite,
//! through the bulk loader, the importer and the cache.
//!
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo test -p vitals --test hostile`.
//! The proptest case counts are modest (CI); raise them with `PROPTEST_CASES=N`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use proptest::prelude::*;
use sqlx::{PgPool, SqlitePool};
use uuid::Uuid;
use vitals::health::{
    self, records, Allergy, Appointment, ChronicCondition, IncidentReport, MedicationLog, School,
    SchoolGenerator, Student, Vaccination,
};
use vitals::import::{Format, ImportOptions, ImportReport, Importer, Source, SqliteSink};
use vitals::{Config, Vitals};

/// `PROPTEST_CASES` when set, else `n`.
fn cases(n: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n)
}

// ---------------------------------------------------------------------------------------------
// The importer under random input (SQLite in memory, one database for every case).

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// A migrated in-memory SQLite database with two known students.
fn sqlite() -> &'static SqlitePool {
    static POOL: OnceLock<SqlitePool> = OnceLock::new();
    POOL.get_or_init(|| {
        runtime().block_on(async {
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect("sqlite::memory:")
                .await
                .unwrap();
            health::migrate_sqlite(&pool).await.unwrap();
            for id in KNOWN {
                sqlx::query(
                    "INSERT INTO students (id, student_number, first_name, last_name, date_of_birth, grade) \
                     VALUES ($1, $2, 'K', 'N', '2012-01-01', '5')",
                )
                .bind(Uuid::parse_str(id).unwrap())
                .bind(id)
                .execute(&pool)
                .await
                .unwrap();
            }
            pool
        })
    })
}

const KNOWN: [&str; 2] = [
    "0b7f5c2e-0000-4000-8000-0000000000a1",
    "0b7f5c2e-0000-4000-8000-0000000000b2",
];

/// Imports `bytes` in `format` (every row of type `ty` when given); `Ok` holds the report,
/// whose counts must add up; `Err` must be an input error (the input could not be read).
fn import(bytes: Vec<u8>, format: Format, ty: Option<&str>, chunk: usize) -> Option<ImportReport> {
    let pool = sqlite().clone();
    runtime().block_on(async {
        let importer =
            Importer::new(records::registry(), ImportOptions::new().chunk_size(chunk)).unwrap();
        let source = match Source::from_reader(std::io::Cursor::new(bytes), format) {
            Ok(s) => s,
            Err(e) => {
                assert!(e.is_input_error(), "{e}");
                return None;
            }
        };
        let source = match ty {
            Some(t) => source.with_type(t),
            None => source,
        };
        match importer.run(source, &mut SqliteSink::new(pool)).await {
            Ok(r) => {
                assert_eq!(
                    r.imported + r.duplicates + r.rejected,
                    r.total,
                    "rows unaccounted for: {r:#?}"
                );
                let by_type: u64 = r.by_type.values().map(|c| c.total).sum();
                assert!(by_type <= r.total, "{r:#?}");
                Some(r)
            }
            Err(e) => {
                assert!(e.is_input_error(), "not an input error: {e}");
                None
            }
        }
    })
}

/// A value for a field: good, empty, wrong type, hostile or huge.
fn field_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(KNOWN[0].to_owned()),
        Just(KNOWN[1].to_owned()),
        Just(Uuid::new_v4().to_string()),
        Just(String::new()),
        Just("2015-03-01".to_owned()),
        Just("2015-02-30".to_owned()),
        Just("MILD".to_owned()),
        Just("ACTIVE".to_owned()),
        Just("J45.909".to_owned()),
        (-3i64..30).prop_map(|n| n.to_string()),
        Just("99999999999999999999".to_owned()),
        Just("'); DROP TABLE students; --".to_owned()),
        Just("\"quoted, with comma\"".to_owned()),
        Just("line\nbreak\r\nand\ttab".to_owned()),
        Just("x".repeat(1001)),
        "\\PC{0,24}",
    ]
}

/// One CSV record, every field quoted (quotes doubled), ended by CRLF.
fn csv_line<S: AsRef<str>>(fields: &[S]) -> String {
    let quoted: Vec<String> = fields
        .iter()
        .map(|f| format!("\"{}\"", f.as_ref().replace('"', "\"\"")))
        .collect();
    format!("{}\r\n", quoted.join(","))
}

const VACCINATION_COLUMNS: [&str; 6] = [
    "student_id",
    "vaccine_name",
    "dose_number",
    "administered_on",
    "administered_by",
    "lot_number",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(48), failure_persistence: None, ..ProptestConfig::default() })]

    /// Any bytes, read as CSV, NDJSON or a JSON array, with or without a fixed type: no panic,
    /// and a report whose counts add up, or an input error.
    #[test]
    fn arbitrary_bytes_never_panic_and_every_row_is_accounted_for(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        format in 0u8..3,
        typed in any::<bool>(),
        chunk in 1usize..8,
    ) {
        let format = [Format::Csv, Format::Ndjson, Format::Json][usize::from(format)];
        let ty = typed.then_some(records::VACCINATION);
        import(bytes, format, ty, chunk);
    }

    /// CSV of random rows (good, bad and hostile values; some with a field missing or one too
    /// many), written with proper quoting: one row in the report per record written.
    #[test]
    fn random_csv_rows_are_each_reported_once(
        rows in proptest::collection::vec(
            (proptest::collection::vec(field_value(), 6), 0u8..10),
            0..30,
        ),
        chunk in 1usize..12,
    ) {
        let mut text = csv_line(&VACCINATION_COLUMNS);
        for (fields, shape) in &rows {
            let mut fields = fields.clone();
            match shape {
                0 => { fields.pop(); }
                1 => fields.push("extra".into()),
                _ => {}
            }
            text.push_str(&csv_line(&fields));
        }
        let bytes = text.into_bytes();
        let r = import(bytes, Format::Csv, Some(records::VACCINATION), chunk)
            .expect("well-formed CSV is readable");
        prop_assert_eq!(r.total, rows.len() as u64, "{:#?}", r);
    }

    /// NDJSON lines that are records of random types and fields, or garbage: one row in the
    /// report per non-blank line.
    #[test]
    fn random_ndjson_lines_are_each_reported_once(
        lines in proptest::collection::vec(
            (0u8..6, proptest::collection::vec(field_value(), 6), "[^\n]{1,40}"),
            0..30,
        ),
        chunk in 1usize..12,
    ) {
        let types = ["student", "vaccination", "allergy", "chronic_condition", "nurse", ""];
        let mut text = String::new();
        let mut expected = 0u64;
        for (ty, fields, garbage) in &lines {
            if *ty == 5 {
                if garbage.trim().is_empty() {
                    continue;
                }
                text.push_str(garbage);
            } else {
                let mut obj = serde_json::Map::new();
                obj.insert("type".into(), types[usize::from(*ty)].into());
                for (name, value) in ["id", "student_id", "vaccine_name", "dose_number", "administered_on", "allergen"].iter().zip(fields) {
                    obj.insert((*name).into(), value.clone().into());
                }
                text.push_str(&serde_json::Value::Object(obj).to_string());
            }
            text.push('\n');
            expected += 1;
        }
        let r = import(text.into_bytes(), Format::Ndjson, None, chunk)
            .expect("NDJSON is always readable");
        prop_assert_eq!(r.total, expected, "{:#?}", r);
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration from random values.

/// Every variable the facade reads.
const VARIABLES: &[&str] = &[
    "DATABASE_URL",
    "VITALS_SQLITE_URL",
    "VITALS_MIGRATE",
    "DB_PROFILE",
    "DB_POOL_MIN",
    "DB_POOL_MAX",
    "DB_ACQUIRE_TIMEOUT",
    "DB_IDLE_TIMEOUT",
    "DB_POOL_EVICT",
    "DB_STATEMENT_TIMEOUT",
    "DB_IDLE_IN_TRANSACTION_TIMEOUT",
    "DB_SQLITE_BUSY_TIMEOUT",
    "DB_RETRY_MAX",
    "DB_RETRY_BASE_DELAY",
    "DB_RETRY_MAX_DELAY",
    "DB_POOL_LEAK_THRESHOLD",
    "DB_POOL_MONITOR_INTERVAL",
    "DB_HANDLE_DISCONNECTS",
    "DB_BENCHMARK",
    "DB_POOL_ALERT_WARNING",
    "DB_POOL_ALERT_CRITICAL",
    "DB_POOL_ALERT_WAITING",
    "DB_SLOW_QUERY_WARN_MS",
    "DB_SLOW_QUERY_CRITICAL_MS",
    "DB_QUERYLOG_RECENT",
    "DB_QUERYLOG_SLOW_HISTORY",
    "DB_QUERYLOG_MAX_FINGERPRINTS",
    "DB_QUERYLOG_N_PLUS_ONE_THRESHOLD",
    "DB_QUERYLOG_SUMMARY_SECS",
    "DB_QUERYLOG_FINGERPRINT_KEY",
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_DB",
    "REDIS_PASSWORD",
    "REDIS_TTL_DEFAULT",
    "CACHE_KEY_PREFIX",
    "CACHE_ENABLE_L1",
    "CACHE_L1_MAX_SIZE",
    "CACHE_L1_TTL",
    "CACHE_L1_SHARDS",
    "CACHE_COMPRESS_THRESHOLD",
    "CACHE_REDIS_TIMEOUT_MS",
    "CACHE_REDIS_CONNECT_TIMEOUT_MS",
    "CACHE_RECONNECT_INTERVAL_MS",
    "CACHE_BREAKER_THRESHOLD",
    "CACHE_BREAKER_COOLDOWN_MS",
    "CACHE_WARMING_ENABLED",
    "CACHE_WARMING_DELAY",
    "CACHE_WARMING_INTERVAL",
    "CACHE_WARMING_BATCH_SIZE",
    "CACHE_WARMING_CONCURRENCY",
    "VITALS_IMPORT_CHUNK_SIZE",
    "VITALS_IMPORT_MAX_ERRORS",
    "VITALS_IMPORT_WORKERS",
];

/// Variables whose validity depends on another one (a minimum under a maximum, a profile
/// that changes the defaults, a host/port/password assembled into one URL): a value bad
/// alone may be fine beside another, so only the others are checked one by one.
const COUPLED: &[&str] = &[
    "DB_PROFILE",
    "DB_POOL_MIN",
    "DB_POOL_MAX",
    "DB_POOL_ALERT_WARNING",
    "DB_POOL_ALERT_CRITICAL",
    "DB_SLOW_QUERY_WARN_MS",
    "DB_SLOW_QUERY_CRITICAL_MS",
    "DB_RETRY_BASE_DELAY",
    "DB_RETRY_MAX_DELAY",
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_DB",
    "REDIS_PASSWORD",
    "CACHE_REDIS_TIMEOUT_MS",
    "CACHE_REDIS_CONNECT_TIMEOUT_MS",
    "CACHE_L1_MAX_SIZE",
    "CACHE_L1_SHARDS",
    "CACHE_WARMING_ENABLED",
];

const PASSWORD: &str = "pwZq9Secret";

/// The variables that may carry a password.
const SECRET_VARIABLES: &[&str] = &["DATABASE_URL", "REDIS_URL", "REDIS_PASSWORD"];

fn config_value() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..100_000).prop_map(|n| n.to_string()),
        (-100i64..0).prop_map(|n| n.to_string()),
        Just("99999999999999999999999".to_owned()),
        Just("1.5".to_owned()),
        Just("true".to_owned()),
        Just("off".to_owned()),
        Just("production".to_owned()),
        Just(" ".to_owned()),
        Just(format!("postgres://app:{PASSWORD}@127.0.0.1:5432/x")),
        Just(format!("redis://:{PASSWORD}@127.0.0.1:6379/0")),
        Just(format!("mysql://root:{PASSWORD}@h/x")),
        Just(PASSWORD.to_owned()),
        Just("sqlite::memory:".to_owned()),
        "\\PC{0,16}",
    ]
}

fn lookup<'a>(map: &'a BTreeMap<&'static str, String>) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| map.get(name).cloned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(256), failure_persistence: None, ..ProptestConfig::default() })]

    /// Random values for random variables: never a panic; an error names a variable in each
    /// problem, names every independent variable that is bad on its own, and never shows the
    /// password of a URL.
    #[test]
    fn random_configuration_never_panics_and_names_every_bad_variable(
        picks in proptest::collection::btree_map(0..VARIABLES.len(), config_value(), 0..8),
    ) {
        let mut map: BTreeMap<&'static str, String> =
            picks.into_iter().map(|(i, v)| (VARIABLES[i], v)).collect();
        // The password is a secret only where a secret belongs (a URL or password variable):
        // elsewhere (a URL pasted into DB_PROFILE) the value is echoed as given, and says so.
        // VITALS_SQLITE_URL's masking has a test of its own below.
        // A bare password pasted into a URL variable is not a URL: it is echoed too.
        for (name, value) in map.iter_mut() {
            let secret_here = match *name {
                "REDIS_PASSWORD" => true,
                _ => SECRET_VARIABLES.contains(name) && value.contains("://"),
            };
            if !secret_here {
                *value = value.replace(PASSWORD, "not-a-secret");
            }
        }
        match Config::from_env_with(lookup(&map)) {
            Ok(_) => {}
            Err(e) => {
                let text = e.to_string();
                prop_assert!(!e.problems().is_empty());
                prop_assert!(!text.contains(PASSWORD), "password shown: {}", text);
                for p in e.problems() {
                    prop_assert!(
                        VARIABLES.iter().any(|v| p.message.contains(v)),
                        "a problem names no variable: {}", p
                    );
                    prop_assert!(["pool", "querylog", "cache", "import", "vitals"].contains(&p.component));
                }
                for (name, value) in &map {
                    if COUPLED.contains(name) {
                        continue;
                    }
                    let alone: BTreeMap<&'static str, String> = [(*name, value.clone())].into();
                    if Config::from_env_with(lookup(&alone)).is_err() {
                        prop_assert!(
                            text.contains(name),
                            "{}={:?} is bad alone but not named: {}", name, value, text
                        );
                    }
                }
            }
        }
    }
}

/// A URL with a password given where an SQLite URL is expected is echoed in the error.
#[test]
fn a_password_in_the_sqlite_url_variable_is_masked() {
    let url = format!("postgres://app:{PASSWORD}@127.0.0.1:5432/x");
    let err =
        Config::from_env_with(|n| (n == "VITALS_SQLITE_URL").then(|| url.clone())).unwrap_err();
    assert!(err.to_string().contains("VITALS_SQLITE_URL"), "{err}");
    assert!(!err.to_string().contains(PASSWORD), "password shown: {err}");
}

// ---------------------------------------------------------------------------------------------
// Injection strings, stored verbatim.

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
        let students: Vec<Student> = sqlx::query_as(
            "SELECT id, student_number, first_name, last_name, date_of_birth, grade, active FROM students",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        assert_eq!(sorted(&students, |r| r.id), sorted(&school.students, |r| r.id));
        let rows: Vec<Vaccination> = sqlx::query_as(
            "SELECT id, student_id, vaccine_name, dose_number, administered_on, administered_by, lot_number FROM vaccinations",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        assert_eq!(sorted(&rows, |r| r.id), sorted(&school.vaccinations, |r| r.id));
        let rows: Vec<Allergy> = sqlx::query_as(
            "SELECT id, student_id, allergen, severity, reaction, diagnosed_on, active FROM allergies",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        assert_eq!(sorted(&rows, |r| r.id), sorted(&school.allergies, |r| r.id));
        let rows: Vec<ChronicCondition> = sqlx::query_as(
            "SELECT id, student_id, condition, icd10_code, status, diagnosed_on, notes FROM chronic_conditions",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        assert_eq!(sorted(&rows, |r| r.id), sorted(&school.chronic_conditions, |r| r.id));
        let rows: Vec<MedicationLog> = sqlx::query_as(
            "SELECT id, student_id, medication, dosage, administered_at, administered_by FROM medication_logs",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        assert_eq!(sorted(&rows, |r| r.id), sorted(&school.medication_logs, |r| r.id));
        let rows: Vec<IncidentReport> = sqlx::query_as(
            "SELECT id, student_id, occurred_at, kind, severity, description FROM incident_reports",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        assert_eq!(sorted(&rows, |r| r.id), sorted(&school.incident_reports, |r| r.id));
        let rows: Vec<Appointment> =
            sqlx::query_as("SELECT id, student_id, scheduled_at, kind, status FROM appointments")
                .fetch_all(pool)
                .await
                .unwrap();
        assert_eq!(sorted(&rows, |r| r.id), sorted(&school.appointments, |r| r.id));
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

#[sqlx::test(migrations = "migrations/postgres")]
async fn hostile_text_in_every_field_is_stored_verbatim_on_postgres(pool: PgPool) {
    // The bulk loader: every text field of all seven record types.
    let school = hostile_school();
    health::load_school_postgres(&pool, &school).await.unwrap();
    assert_tables_equal!(&pool, &school);

    // Through the facade's cache (Redis, encrypted, then a second instance reads L2).
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut config = Config::defaults().unwrap();
    config.cache = config
        .cache
        .with_redis_url(Some(redis))
        .with_key_prefix(format!("vt-hostile-{}", Uuid::new_v4().simple()));
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
    for s in &school.students {
        let fresh = health::queries::health_summary_postgres(&pool, s.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(fresh.student, *s);
        let via_a = a
            .health_cache()
            .student_health_summary(s.id)
            .await
            .unwrap()
            .unwrap();
        let via_b = b
            .health_cache()
            .student_health_summary(s.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(via_a, fresh);
        assert_eq!(via_b, fresh);
    }
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
    let url = format!("sqlite://{}", dir.path().join("hostile.sqlite").display());
    let vitals = Vitals::builder()
        .database_url(Some(url))
        .build()
        .await
        .unwrap();
    let pool = vitals.db().sqlite().unwrap().inner().clone();
    let school = hostile_school();
    health::load_school_sqlite(&pool, &school).await.unwrap();
    assert_tables_equal!(&pool, &school);
    for s in &school.students {
        let fresh = health::queries::health_summary_sqlite(&pool, s.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(fresh.student, *s);
        let cached = vitals
            .health_cache()
            .student_health_summary(s.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cached, fresh);
        let again = vitals
            .health_cache()
            .student_health_summary(s.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again, fresh, "the L1 copy");
    }

    sqlx::query("DELETE FROM students")
        .execute(&pool)
        .await
        .unwrap();
    let (ndjson, texts) = hostile_ndjson(Uuid::new_v4());
    let source =
        Source::from_reader(std::io::Cursor::new(ndjson.into_bytes()), Format::Ndjson).unwrap();
    let r = vitals.import(source, None).await.unwrap();
    assert_eq!((r.imported, r.rejected), (r.total, 0), "{r:#?}");
    assert_imported_verbatim!(&pool, &texts);
    vitals.shutdown().await;
}

/// CSV quoting: hostile student names (quotes, commas, line breaks, spaces at both ends)
/// through a CSV file come back exactly as written.
#[tokio::test]
async fn hostile_text_through_csv_is_stored_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("csv.sqlite").display());
    let vitals = Vitals::builder()
        .database_url(Some(url))
        .build()
        .await
        .unwrap();
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
        .unwrap();
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
