//! A table of hostile inputs per entry point, through the built examples as a user runs them:
//! the importer (`import`, one format at a time, each row on a fresh SQLite file), the
//! scrubber (`scrub`, a log on standard input) and the configuration (`health_server`, its
//! whole environment). Each row states the exit code, what the output (standard output and
//! error together) says, a value that must not appear in it, and the time and peak memory
//! (resident set, measured by GNU time) it must stay within. The HTTP routes' rows are in
//! `http_input.rs` and `serve.rs`.
//!
//! Run with `cargo test -p vitals --test hostile_tables` (the rows build the examples they run
//! and measure memory with GNU time, `/usr/bin/time`, Debian package `time`).

mod common;
#[path = "hostile_tables/runner.rs"]
mod runner;

use std::time::Duration;

use runner::{row, run_table, Entry, Row};

/// A synthetic password: it must never be shown.
const PASSWORD: &str = "pwZq9Secret";
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
            &["chunk size must be from 1 to 100000"],
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

/// Rows of a command that must exit `code` with `says` in its output and `secret` not (the
/// scrubber's: 0; a configuration's: 1).
fn hiding(code: i32) -> impl Fn(&'static str, Input, Says, &'static str) -> Row {
    move |what, input, says, secret| row(what, &[], "", input, code, says, Some(secret))
}

/// A row's input, and what its output must say.
type Input = fn() -> Vec<u8>;
type Says = &'static [&'static str];

fn scrub_rows() -> Vec<Row> {
    let scrub = hiding(0);
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

fn config_rows() -> Vec<Row> {
    let config = hiding(1);
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
