//! Hostile input: random and malformed CSV/NDJSON/JSON through the healthcare importer
//! (never a panic; every row accounted for) and random configuration values (never a panic;
//! every bad variable named; no password shown). The table of hostile inputs per entry point,
//! through the built examples, is `hostile_tables.rs`; injection strings stored verbatim are
//! in `hostile_text.rs`.
//!
//! Run with `cargo test -p vitals --test hostile`.
//! The proptest case counts are modest (CI); raise them with `PROPTEST_CASES=N`.

mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use common::csv_line;
use proptest::prelude::*;
use sqlx::SqlitePool;
use uuid::Uuid;
use vitals::health::records;
use vitals::import::{Format, ImportOptions, ImportReport, Importer, Source, SqliteSink};
use vitals::Config;

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
            let pool = common::sqlite_memory().await;
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
                        VARIABLES.iter().any(|v| p.to_string().contains(v)),
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
