//! Hostile input: random and malformed CSV/NDJSON/JSON through the healthcare importer
//! (never a panic; every row accounted for) and random configuration values (never a panic;
//! every bad variable named; no password shown), and a table of hostile inputs per entry
//! point run through the built examples (`import` per format, `scrub`, `health_server`'s
//! configuration: exit code, message, no value echoed, time and peak memory bounded).
//! Injection strings stored verbatim are in `hostile_text.rs`.
//!
//! Run with `cargo test -p vitals --test hostile` (the tables build the examples they run
//! and measure memory with GNU time, `/usr/bin/time`).
//! The proptest case counts are modest (CI); raise them with `PROPTEST_CASES=N`.

mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

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

// ---------------------------------------------------------------------------------------------
// A table of hostile inputs per entry point, through the built examples as a user runs them:
// the importer (`import`, one format at a time, each row on a fresh SQLite file), the
// scrubber (`scrub`, a log on standard input) and the configuration (`health_server`, its
// whole environment). Each row states the exit code, what the output (standard output and
// error together) says, a value that must not appear in it, and the time and peak memory
// (resident set, measured by GNU time) it must stay within. The HTTP routes' rows are in
// `http_input.rs` and `serve.rs`.

/// GNU time: `%M` is the child's peak resident set in KiB (from `wait4`).
const GNU_TIME: &str = "/usr/bin/time";
/// A synthetic name standing for PHI in the rows' records.
const NAME: &str = "Qzorbly";
/// A synthetic social security number.
const SSN: &str = "123-45-6789";
/// The start of a huge field (the rest is `A`s); never echoed.
const HUGE_MARK: &str = "HUGEFIELDSTART";
/// A huge field: 80 MiB, far past the 1 MiB cap of every format, so that a reader that held
/// it whole would pass the rows' 64 MiB bound.
const HUGE: usize = 80 << 20;
const STUDENT_HEADER: &str = "id,student_number,first_name,last_name,date_of_birth,grade\n";
const STUDENT_ID: &str = "0b7f5c2e-0000-4000-8000-0000000000c1";
const OTHER_ID: &str = "0b7f5c2e-0000-4000-8000-0000000000c2";

/// Where a row's input goes.
#[derive(Clone, Copy, Debug)]
enum Entry {
    /// The `import` example: the input is its file (`input.{ext}`), the row's arguments
    /// before it, a fresh SQLite database.
    Import,
    /// The `scrub` example (vitals-querylog): the input is its standard input.
    Scrub,
    /// The `health_server` example: the input is its whole environment, `NAME=VALUE` lines.
    Config,
}

/// One hostile input and what must come of it.
struct Row {
    what: &'static str,
    /// Arguments before the input file (imports only).
    args: &'static [&'static str],
    /// The input's file extension (imports only).
    ext: &'static str,
    input: fn() -> Vec<u8>,
    code: i32,
    /// Parts the output holds.
    says: &'static [&'static str],
    /// What the output must not hold.
    secret: Option<&'static str>,
    within: Duration,
    rss_mib: u64,
}

/// The bounds most rows share: 30 s (a debug build on a loaded 2-core machine; each takes
/// well under 1 s alone) and 64 MiB resident (each stays under 25 MiB).
const WITHIN: Duration = Duration::from_secs(30);
const RSS_MIB: u64 = 64;

fn row(
    what: &'static str,
    args: &'static [&'static str],
    ext: &'static str,
    input: fn() -> Vec<u8>,
    code: i32,
    says: &'static [&'static str],
    secret: Option<&'static str>,
) -> Row {
    Row {
        what,
        args,
        ext,
        input,
        code,
        says,
        secret,
        within: WITHIN,
        rss_mib: RSS_MIB,
    }
}

/// A student as a JSON object, `first_name` as given (JSON-escaped by the caller).
fn student_json(id: &str, first_name: &str) -> String {
    format!(
        r#"{{"type":"student","id":"{id}","student_number":"S-{id}","first_name":"{first_name}","last_name":"Quirk","date_of_birth":"2012-03-04","grade":"5"}}"#
    )
}

/// A field of [`HUGE`] bytes starting with [`HUGE_MARK`].
fn huge_field() -> String {
    format!("{HUGE_MARK}{}", "A".repeat(HUGE - HUGE_MARK.len()))
}

fn import_rows() -> Vec<Row> {
    const S: &[&str] = &["--type", "student"];
    vec![
        // Item 11: an empty file is unusable input (exit 2) in every format.
        row("empty CSV", S, "csv", Vec::new, 2, &["is empty"], None),
        row("empty JSON", S, "json", Vec::new, 2, &["is empty"], None),
        row(
            "empty NDJSON",
            &[],
            "ndjson",
            Vec::new,
            2,
            &["is empty"],
            None,
        ),
        // Item 3: a NUL is a rejection of its field, with a reason, in every format.
        row(
            "NUL in a CSV field",
            S,
            "csv",
            || format!("{STUDENT_HEADER}{STUDENT_ID},S-1,{NAME}\0x,Quirk,2012-03-04,5\n").into(),
            0,
            &[r#""field": "first_name""#, "contains a NUL character"],
            Some(NAME),
        ),
        row(
            "NUL in a JSON field",
            S,
            "json",
            || format!("[{}]", student_json(STUDENT_ID, &format!("{NAME}\\u0000x"))).into(),
            0,
            &[r#""field": "first_name""#, "contains a NUL character"],
            Some(NAME),
        ),
        row(
            "NUL in an NDJSON field",
            &[],
            "ndjson",
            || format!("{}\n", student_json(STUDENT_ID, &format!("{NAME}\\u0000x"))).into(),
            0,
            &[r#""field": "first_name""#, "contains a NUL character"],
            Some(NAME),
        ),
        // Item 6: every format caps a record at 1 MiB, rejects it by line, reads on, and
        // never holds it whole (80 MiB field, 64 MiB bound).
        row(
            "80 MiB CSV field",
            S,
            "csv",
            || {
                format!(
                    "{STUDENT_HEADER}{STUDENT_ID},S-1,{},Quirk,2012-03-04,5\n{OTHER_ID},S-2,Ann,Bee,2012-03-04,5\n",
                    huge_field()
                )
                .into()
            },
            0,
            &[
                r#""line": 2"#,
                "record longer than 1048576 bytes",
                r#""imported": 1"#,
            ],
            Some(HUGE_MARK),
        ),
        row(
            "80 MiB JSON element",
            S,
            "json",
            || {
                format!(
                    "[{},\n{}]",
                    student_json(STUDENT_ID, &huge_field()),
                    student_json(OTHER_ID, "Ann")
                )
                .into()
            },
            0,
            &[
                r#""line": 1"#,
                "element longer than 1048576 bytes",
                r#""imported": 1"#,
            ],
            Some(HUGE_MARK),
        ),
        row(
            "80 MiB NDJSON line",
            &[],
            "ndjson",
            || {
                format!(
                    "{}\n{}\n",
                    student_json(STUDENT_ID, &huge_field()),
                    student_json(OTHER_ID, "Ann")
                )
                .into()
            },
            0,
            &[
                r#""line": 1"#,
                "line longer than 1048576 bytes",
                r#""imported": 1"#,
            ],
            Some(HUGE_MARK),
        ),
        // Item 9: a column named twice is an error; an unknown one a warning, by name.
        row(
            "CSV header naming a column twice",
            S,
            "csv",
            || format!("id,id,first_name\n{STUDENT_ID},{STUDENT_ID},{NAME}\n").into(),
            2,
            &[r#"column "id" appears more than once"#],
            Some(NAME),
        ),
        row(
            "unknown CSV column (ssn)",
            S,
            "csv",
            || {
                format!("id,student_number,first_name,last_name,date_of_birth,grade,ssn\n{STUDENT_ID},S-1,Ann,Bee,2012-03-04,5,{SSN}\n")
                    .into()
            },
            0,
            &[
                r#""field": "ssn""#,
                "unknown column: its values are ignored",
                r#""imported": 1"#,
            ],
            Some(SSN),
        ),
        row(
            "CSV without a header row (its first row is data)",
            S,
            "csv",
            || {
                format!("{STUDENT_ID},S-1,{NAME},Quirk,2012-03-04,{SSN}\n{OTHER_ID},S-2,Ann,Bee,2012-03-04,5\n").into()
            },
            0,
            &[r#""field": "column 3""#, "unknown column"],
            Some(NAME),
        ),
        // Item 10: a JSON array cut short, or with data after it, is a warning with the line.
        row(
            "JSON array without ']'",
            S,
            "json",
            || format!("[{},\n", student_json(STUDENT_ID, NAME)).into(),
            0,
            &[
                r#""line": 2"#,
                "the JSON array ends without ']'",
                r#""imported": 1"#,
            ],
            Some(NAME),
        ),
        row(
            "data after the JSON array's ']'",
            S,
            "json",
            || {
                format!(
                    "[{}]\n{{\"first_name\":\"{NAME}\"}}",
                    student_json(STUDENT_ID, "Ann")
                )
                .into()
            },
            0,
            &[
                r#""line": 2"#,
                "data after the end of the JSON array is ignored",
            ],
            Some(NAME),
        ),
        row(
            "JSON that is not an array",
            S,
            "json",
            || student_json(STUDENT_ID, NAME).into(),
            2,
            &["is not a JSON array"],
            Some(NAME),
        ),
        row(
            "JSON array element that is not an object",
            S,
            "json",
            || format!("[\"{NAME}\", 42]").into(),
            0,
            &["not a JSON object", r#""rejected": 2"#],
            Some(NAME),
        ),
        row(
            "NDJSON lines malformed, not objects, of the wrong types",
            &[],
            "ndjson",
            || {
                format!(
                    "\"{NAME}\"\n{{\"type\":\"student\",\"first_name\":\"{NAME}\" \n{}\n",
                    student_json(STUDENT_ID, "Ann")
                        .replace(r#""grade":"5""#, &format!(r#""grade":["{NAME}"]"#))
                        .replace("2012-03-04", "2012-02-30")
                )
                .into()
            },
            0,
            &[
                "not a JSON object",
                "malformed JSON at column",
                "not a date (YYYY-MM-DD)",
                "not text",
            ],
            Some(NAME),
        ),
        // Item 11: bad usage is exit 2, not a database error.
        row(
            "--chunk-size 0",
            &["--chunk-size", "0"],
            "ndjson",
            || format!("{}\n", student_json(STUDENT_ID, NAME)).into(),
            2,
            &["chunk size must be above 0"],
            Some(NAME),
        ),
        row(
            "--workers 0",
            &["--workers", "0"],
            "ndjson",
            || format!("{}\n", student_json(STUDENT_ID, NAME)).into(),
            2,
            &["workers must be above 0"],
            Some(NAME),
        ),
        // Item 1 through the command line (the in-process bound is
        // vitals-import's four_million_bad_rows_keep_exact_counts_and_a_bounded_report):
        // exact counts, 1 000 listed, memory bounded (every rejection kept was 600 MB).
        Row {
            within: Duration::from_secs(120),
            ..row(
                "4 000 000 bad vaccination rows",
                &["--type", "vaccination"],
                "csv",
                || {
                    let mut s = String::from(
                        "student_id,vaccine_name,dose_number,administered_on,administered_by,lot_number\n",
                    );
                    for _ in 0..4_000_000 {
                        s.push_str(NAME);
                        s.push('\n');
                    }
                    s.into()
                },
                0,
                &[
                    r#""total": 4000000"#,
                    r#""rejected": 4000000"#,
                    r#""truncated": true"#,
                    r#""rejections_not_listed": 3999000"#,
                ],
                Some(NAME),
            )
        },
    ]
}

/// A scrubber row: exit 0, `says` in the output, `secret` not.
fn scrub(
    what: &'static str,
    input: fn() -> Vec<u8>,
    says: &'static [&'static str],
    secret: &'static str,
) -> Row {
    row(what, &[], "", input, 0, says, Some(secret))
}

fn scrub_rows() -> Vec<Row> {
    vec![
        // Item 2: the DETAIL of the allergies' natural key (an expression index).
        scrub(
            "DETAIL of a key on an expression",
            || {
                b"2026-12-02 10:00:00 UTC [71] DETAIL:  Key (student_id, lower(TRIM(BOTH FROM allergen)))=(0000abc0-0000-4000-8000-000000000000, peanut) already exists.\n".to_vec()
            },
            &["Key (student_id, lower(TRIM(BOTH FROM allergen)))=([VALUE]) already exists."],
            "peanut",
        ),
        scrub(
            "DETAIL of a key whose expression holds quotes and parentheses",
            || {
                format!("DETAIL:  Key (lower(first_name || ' (' || last_name || ')'))=({NAME} (quirk)) already exists.\n").into()
            },
            &["=([VALUE]) already exists."],
            NAME,
        ),
        scrub(
            "DETAIL: Failing row contains",
            || {
                format!("DETAIL:  Failing row contains (7f1e0000-0000-4000-8000-000000000001, S-77, {NAME}, Quirk, 2012-03-04, 5, t).\n").into()
            },
            &["Failing row contains ([ROW])"],
            NAME,
        ),
        scrub(
            "CONTEXT of a COPY naming a column's value",
            || format!("CONTEXT:  COPY students, line 2, column first_name: \"{NAME}\"\n").into(),
            &["column first_name: [VALUE]"],
            NAME,
        ),
        scrub(
            "STATEMENT with a quote never closed",
            || {
                format!("STATEMENT:  INSERT INTO students (first_name, last_name) VALUES ('Ann', '{NAME}\n").into()
            },
            &["VALUES (?, ?"],
            NAME,
        ),
        scrub(
            "a dollar quote never closed",
            || format!("LOG:  execute <unnamed>: SELECT 1 WHERE last_name = $tag${NAME}\n").into(),
            &["last_name = ?"],
            NAME,
        ),
        scrub(
            "NUL bytes and bytes that are not UTF-8",
            || {
                let mut line = format!("ERROR: a\0b ssn {SSN} ").into_bytes();
                line.extend([0xff, 0xfe, b'\n']);
                line
            },
            &["ERROR: a\0b"],
            SSN,
        ),
        scrub(
            "a 4 MiB line ending in an e-mail address",
            || format!("ERROR: {} qzorbly.quirk@example.com\n", "x".repeat(4 << 20)).into(),
            &["[EMAIL]"],
            "qzorbly.quirk@example.com",
        ),
        scrub(
            "200 000 nested parentheses in a key's column list",
            || {
                format!(
                    "DETAIL:  Key ({}a{})=({NAME}) already exists.\n",
                    "(".repeat(200_000),
                    ")".repeat(200_000)
                )
                .into()
            },
            &["already exists."],
            NAME,
        ),
    ]
}

/// A configuration row: exit 1, `says` in the output, `secret` not.
fn config(
    what: &'static str,
    input: fn() -> Vec<u8>,
    says: &'static [&'static str],
    secret: &'static str,
) -> Row {
    row(what, &[], "", input, 1, says, Some(secret))
}

fn config_rows() -> Vec<Row> {
    vec![
        config(
            "CACHE_ENCRYPTION_KEY of 11 bytes",
            // base64 of "pwZq9Secret"
            || b"CACHE_ENCRYPTION_KEY=cHdacTlTZWNyZXQ=".to_vec(),
            &["CACHE_ENCRYPTION_KEY=\"***\"", "base64 of exactly 32 bytes"],
            "cHdacTlTZWNyZXQ=",
        ),
        config(
            "CACHE_ENCRYPTION_KEY not base64",
            || format!("CACHE_ENCRYPTION_KEY={PASSWORD}!").into(),
            &["CACHE_ENCRYPTION_KEY=\"***\"", "base64 of exactly 32 bytes"],
            PASSWORD,
        ),
        config(
            "CACHE_ENCRYPTION_OLD_KEYS written key first",
            || {
                format!(
                    "CACHE_ENCRYPTION_OLD_KEYS={PASSWORD}/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:old"
                )
                .into()
            },
            &["CACHE_ENCRYPTION_OLD_KEYS=\"***\""],
            PASSWORD,
        ),
        config(
            "DB_QUERYLOG_FINGERPRINT_KEY not hex",
            || format!("DB_QUERYLOG_FINGERPRINT_KEY={PASSWORD}").into(),
            &["DB_QUERYLOG_FINGERPRINT_KEY=\"***\"", "32 hex digits"],
            PASSWORD,
        ),
        config(
            "DATABASE_URL of another database, with a password",
            || format!("DATABASE_URL=mysql://root:{PASSWORD}@127.0.0.1/x").into(),
            &["DATABASE_URL=\"mysql://root:***@127.0.0.1/x\""],
            PASSWORD,
        ),
        config(
            "REDIS_URL of another scheme, with a password",
            || format!("REDIS_URL=http://:{PASSWORD}@127.0.0.1:6379").into(),
            &["REDIS_URL=\"http://:***@127.0.0.1:6379\""],
            PASSWORD,
        ),
        config(
            "REDIS_URL with a bad database number, with a password",
            || format!("REDIS_URL=redis://:{PASSWORD}@127.0.0.1:6379/x").into(),
            &["REDIS_URL=\"redis://:***@127.0.0.1:6379/x\""],
            PASSWORD,
        ),
        config(
            "REDIS_PASSWORD beside a bad REDIS_PORT",
            || format!("REDIS_PASSWORD={PASSWORD}\nREDIS_PORT=port").into(),
            &["REDIS_PORT=\"port\""],
            PASSWORD,
        ),
        config(
            "VITALS_SQLITE_URL of PostgreSQL, with a password",
            || format!("VITALS_SQLITE_URL=postgres://app:{PASSWORD}@127.0.0.1:5432/x").into(),
            &["VITALS_SQLITE_URL=\"postgres://app:***@127.0.0.1:5432/x\""],
            PASSWORD,
        ),
    ]
}

/// What a run gave.
struct Outcome {
    code: Option<i32>,
    output: String,
    rss_kib: u64,
    elapsed: Duration,
    timed_out: bool,
}

/// Runs `program` under GNU time in a process group of its own (killed, by that group's id,
/// if it outlives `limit`), in `dir`, with only `env` for environment and `stdin` on its
/// standard input.
fn run_measured(
    program: &std::path::Path,
    args: &[String],
    env: &[(String, String)],
    stdin: Vec<u8>,
    dir: &std::path::Path,
    limit: Duration,
) -> Outcome {
    use std::io::{Read as _, Write as _};
    use std::os::unix::process::CommandExt as _;
    use std::process::{Command, Stdio};

    assert!(
        std::path::Path::new(GNU_TIME).exists(),
        "GNU time at {GNU_TIME} measures the rows' memory (Debian package `time`)"
    );
    let rss_file = dir.join("rss");
    let start = std::time::Instant::now();
    let mut child = Command::new(GNU_TIME)
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss_file)
        .arg(program)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(dir)
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example under GNU time");
    let group = child.id();
    let mut input = child.stdin.take().unwrap();
    // A program that stops reading (or never reads) must not block the writer for ever:
    // a broken pipe ends it.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let read = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let (status, timed_out) = match rx.recv_timeout(limit) {
        Ok(status) => (status, false),
        Err(_) => {
            // Our own group: GNU time and the example under it.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{group}")])
                .status();
            (rx.recv().expect("the waiter reports"), true)
        }
    };
    let elapsed = start.elapsed();
    let _ = writer.join();
    let mut output = String::from_utf8_lossy(&stdout.join().unwrap()).into_owned();
    output.push_str(&String::from_utf8_lossy(&stderr.join().unwrap()));
    // GNU time writes "Command exited with non-zero status N" first when it is not 0.
    let rss_kib = std::fs::read_to_string(&rss_file)
        .ok()
        .and_then(|t| t.lines().last().and_then(|l| l.trim().parse().ok()))
        .unwrap_or(0);
    Outcome {
        code: status.expect("wait for the example").code(),
        output,
        rss_kib,
        elapsed,
        timed_out,
    }
}

/// Runs every row of `rows` at `entry` and checks it; reports every failing row at once and
/// prints each row's figures.
fn run_table(entry: Entry, rows: Vec<Row>) {
    let program = match entry {
        Entry::Import => common::example::example("vitals", "import"),
        Entry::Scrub => common::example::example("vitals-querylog", "scrub"),
        Entry::Config => common::example::example("vitals", "health_server"),
    };
    let mut failures = Vec::new();
    for r in rows {
        let dir = tempfile::tempdir().unwrap();
        let input = (r.input)();
        let (args, env, stdin) = match entry {
            Entry::Import => {
                let file = dir.path().join(format!("input.{}", r.ext));
                std::fs::write(&file, &input).unwrap();
                let mut args = vec![
                    "--database-url".to_owned(),
                    format!(
                        "sqlite://{}?mode=rwc",
                        dir.path().join("db.sqlite").display()
                    ),
                ];
                args.extend(r.args.iter().map(|a| (*a).to_owned()));
                args.push(file.display().to_string());
                (args, Vec::new(), Vec::new())
            }
            Entry::Scrub => (Vec::new(), Vec::new(), input),
            Entry::Config => {
                let env = String::from_utf8(input)
                    .unwrap()
                    .lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                let args = ["--addr", "127.0.0.1:0", "--demo-students", "0"];
                (args.map(String::from).to_vec(), env, Vec::new())
            }
        };
        let out = run_measured(&program, &args, &env, stdin, dir.path(), r.within);
        let mut wrong = Vec::new();
        if out.timed_out || out.elapsed > r.within {
            wrong.push(format!("took {:?}, bound {:?}", out.elapsed, r.within));
        }
        if out.code != Some(r.code) {
            wrong.push(format!("exit {:?}, expected {}", out.code, r.code));
        }
        for part in r.says {
            if !out.output.contains(part) {
                wrong.push(format!("does not say {part:?}"));
            }
        }
        if let Some(secret) = r.secret {
            if out.output.contains(secret) {
                wrong.push(format!("echoes {secret:?}"));
            }
        }
        if out.rss_kib == 0 || out.rss_kib > r.rss_mib * 1024 {
            wrong.push(format!(
                "peak resident {} KiB, bound {} MiB",
                out.rss_kib, r.rss_mib
            ));
        }
        eprintln!(
            "{entry:?}: {:<60} exit {:?}  {:>6.2} s  {:>6} KiB",
            r.what,
            out.code,
            out.elapsed.as_secs_f64(),
            out.rss_kib
        );
        if !wrong.is_empty() {
            let mut shown: String = out.output.chars().take(2_000).collect();
            if let Some(secret) = r.secret {
                shown = shown.replace(secret, "<secret>");
            }
            failures.push(format!("{}: {}\n{shown}", r.what, wrong.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} row(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Hostile files through the `import` command line, per format: exit code, message, no
/// value echoed, time and memory bounded.
#[test]
fn hostile_files_through_the_import_command_table() {
    run_table(Entry::Import, import_rows());
}

/// Hostile log lines through the `scrub` filter: every value masked, time and memory
/// bounded.
#[test]
fn hostile_log_lines_through_the_scrub_filter_table() {
    run_table(Entry::Scrub, scrub_rows());
}

/// A secret in a bad variable: `health_server` exits 1 naming the variable, never the
/// secret.
#[test]
fn secrets_in_bad_variables_through_health_server_table() {
    run_table(Entry::Config, config_rows());
}

/// A log line of many `Key (` openings: the scrubber took quadratic time on it (debug build:
/// 8 000 openings, a 112 KB line, 3.7 s; 100 000, 1.4 MB, 371 s) until its scan got a
/// budget (`scrub/details.rs`); the bound is 10 s.
#[test]
fn a_log_line_of_many_key_openings_is_scrubbed_in_bounded_time() {
    run_table(
        Entry::Scrub,
        vec![Row {
            within: Duration::from_secs(10),
            ..row(
                "40 000 `Key (` openings (560 KB)",
                &[],
                "",
                || {
                    format!(
                        "DETAIL:  {}a)=({NAME}) already exists.\n",
                        "Key (".repeat(40_000)
                    )
                    .into()
                },
                0,
                &["already exists."],
                Some(NAME),
            )
        }],
    );
}
