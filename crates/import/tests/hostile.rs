//! Hostile input on SQLite, as a host's registry of its own meets it (students and their
//! vaccinations, in the style of `tests/sqlite.rs`): millions of bad rows, a NUL in a field,
//! a 5 MiB CSV field, a header naming a column twice or one no type has, a JSON array cut
//! short, and the exit statuses a command line derives from the errors.
//!
//! Run with `cargo test -p vitals-import --test hostile`. The tests take one lock each, so
//! the memory one measures its own import only.

mod common;

use std::io::{Cursor, Read};
use std::time::{Duration, Instant};

use common::from_text;
use sqlx::sqlite::SqlitePool;
use vitals_import::{
    Column, Format, ImportError, ImportOptions, ImportReport, Importer, KeyPart, RecordSpec,
    Registry, Source, SqliteSink,
};

const STUDENT: &str = "5a1c0e3e-0000-4000-8000-00000000000a";
const HEADER: &str = "student_id,vaccine_name,administered_on,dose_number,lot_number\n";

/// One test at a time: the memory test reads the whole process's peak.
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

fn registry() -> Registry {
    Registry::new([
        RecordSpec::new("student", "students")
            .column(Column::uuid("id").required())
            .column(Column::text("name").required())
            .natural_key([KeyPart::exact("id")]),
        RecordSpec::new("vaccination", "vaccinations")
            .column(Column::uuid("student_id").required())
            .column(Column::text("vaccine_name").required().max_chars(200))
            .column(Column::date("administered_on").required())
            .column(Column::int("dose_number").range(1, 10))
            .column(Column::text("lot_number"))
            .natural_key([
                KeyPart::exact("student_id"),
                KeyPart::lower_trim("vaccine_name"),
                KeyPart::exact("administered_on"),
            ])
            .foreign_key("student_id", "students", "id"),
    ])
    .unwrap()
}

/// A fresh database file with both tables and one student.
async fn database() -> (tempfile::TempDir, SqlitePool) {
    let (dir, pool) = common::sqlite_file(&[
        "CREATE TABLE students (id BLOB PRIMARY KEY, name TEXT NOT NULL)",
        "CREATE TABLE vaccinations (student_id BLOB NOT NULL REFERENCES students (id), \
         vaccine_name TEXT NOT NULL, administered_on TEXT NOT NULL, dose_number INTEGER, \
         lot_number TEXT)",
        "CREATE UNIQUE INDEX vaccinations_key ON vaccinations \
         (student_id, lower(trim(vaccine_name)), administered_on)",
    ])
    .await;
    sqlx::query("INSERT INTO students (id, name) VALUES ($1, 'Kim')")
        .bind(uuid::Uuid::parse_str(STUDENT).unwrap())
        .execute(&pool)
        .await
        .unwrap();
    (dir, pool)
}

async fn import(pool: &SqlitePool, source: Source, options: ImportOptions) -> ImportReport {
    common::import(registry(), pool, source, options).await
}

/// Asserts that the report's JSON (as a host reads it) holds none of `values`.
fn assert_report_hides(r: &ImportReport, values: &[&str]) {
    let json = serde_json::to_string(r).unwrap();
    for v in values {
        assert!(!json.contains(v), "{v:?} in {json}");
    }
}

/// The report's one warning (read from its JSON, as a host reads it): line, field, reason.
fn only_warning(r: &ImportReport) -> (u64, Option<String>, String) {
    let json = serde_json::to_value(r).unwrap();
    let warnings = json["warnings"].as_array().expect("a warnings list");
    assert_eq!(warnings.len(), 1, "{json}");
    let w = &warnings[0];
    (
        w["line"].as_u64().unwrap(),
        w["field"].as_str().map(str::to_owned),
        w["reason"].as_str().unwrap().to_owned(),
    )
}

/// `VmHWM` or `VmRSS` of this process, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Resets the peak resident size to the current one (Linux `clear_refs`), and returns it.
fn reset_peak() -> u64 {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    status_kib("VmRSS")
}

/// A vaccination CSV header, then `rows` lines `x`, generated as they are read.
struct BadRows {
    header: &'static [u8],
    left: u64,
}

impl Read for BadRows {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.header.is_empty() {
            let n = self.header.len().min(buf.len());
            buf[..n].copy_from_slice(&self.header[..n]);
            self.header = &self.header[n..];
            return Ok(n);
        }
        let mut n = 0;
        while n + 2 <= buf.len() && self.left > 0 {
            buf[n..n + 2].copy_from_slice(b"x\n");
            n += 2;
            self.left -= 1;
        }
        Ok(n)
    }
}

/// 64 MiB: the bound the peak resident size may grow by during an import of any size.
const MEMORY_BOUND_KIB: u64 = 64 * 1024;

#[tokio::test]
async fn four_million_bad_rows_keep_exact_counts_and_a_bounded_report() {
    let _serial = serial().await;
    const ROWS: u64 = 4_000_000;
    let (_dir, pool) = database().await;
    let rows = Source::from_reader(
        BadRows {
            header: HEADER.as_bytes(),
            left: ROWS,
        },
        Format::Csv,
    )
    .unwrap()
    .with_type("vaccination");
    let started = Instant::now();
    let before = reset_peak();
    let r = import(&pool, rows, ImportOptions::new()).await;
    let peak = status_kib("VmHWM");
    let growth = peak.saturating_sub(before);
    let elapsed = started.elapsed();
    eprintln!("4M bad rows: {elapsed:?}, peak RSS {before} kB -> {peak} kB (+{growth} kB)");

    assert_eq!((r.total, r.rejected, r.imported), (ROWS, ROWS, 0));
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["rejections"].as_array().unwrap().len(), 1000);
    assert_eq!(json["truncated"], true);
    assert_eq!(json["rejections_not_listed"], ROWS - 1000);
    // The first lines are the ones listed: the header is line 1.
    assert_eq!(r.rejections[0].line, 2);
    assert_eq!(r.rejections[999].line, 1001);
    assert_eq!(r.rejections[0].reason, "has 1 fields, the header has 5");
    assert!(
        growth < MEMORY_BOUND_KIB,
        "peak resident size grew by {growth} KiB (bound {MEMORY_BOUND_KIB} KiB)"
    );
    assert!(serde_json::to_vec(&r).unwrap().len() < 256 * 1024);
    assert!(elapsed < Duration::from_secs(60), "{elapsed:?}");
}

#[tokio::test]
async fn max_listed_bounds_rejections_and_duplicates_alike() {
    let _serial = serial().await;
    let (_dir, pool) = database().await;
    let mut csv = String::from(HEADER);
    for day in 1..=9 {
        csv.push_str(&format!("{STUDENT},MMR,2024-01-0{day},1,L\n"));
        csv.push_str(&format!("{STUDENT},mmr ,2024-01-0{day},2,L\n"));
        csv.push_str(&format!("{STUDENT},MMR,not-a-date,1,L\n"));
    }
    let source = from_text(csv, Format::Csv).with_type("vaccination");
    let r = import(
        &pool,
        source,
        ImportOptions::new().max_listed(3).chunk_size(4),
    )
    .await;
    assert_eq!((r.imported, r.duplicates, r.rejected), (9, 9, 9), "{r:#?}");
    assert_eq!(r.rejections.len(), 3);
    assert_eq!(r.duplicate_rows.len(), 3);
    assert_eq!(
        (r.rejections_not_listed, r.duplicate_rows_not_listed),
        (6, 6)
    );
    assert!(r.truncated);
    let lines: Vec<u64> = r.duplicate_rows.iter().map(|d| d.line).collect();
    assert_eq!(lines, [3, 6, 9]);
    let lines: Vec<u64> = r.rejections.iter().map(|d| d.line).collect();
    assert_eq!(lines, [4, 7, 10]);

    let (_dir, pool) = database().await;
    let r = import(
        &pool,
        from_text(format!("{HEADER}{STUDENT},MMR,bad,1,L\n"), Format::Csv).with_type("vaccination"),
        ImportOptions::new(),
    )
    .await;
    assert!(!r.truncated && r.rejections_not_listed == 0, "{r:#?}");
}

#[tokio::test]
async fn a_nul_character_is_a_rejection_of_its_field_not_a_failed_chunk() {
    let _serial = serial().await;
    let (_dir, pool) = database().await;
    let ndjson = format!(
        "{{\"type\":\"vaccination\",\"student_id\":\"{STUDENT}\",\"vaccine_name\":\"MMR\",\"administered_on\":\"2024-01-01\"}}\n\
         {{\"type\":\"vaccination\",\"student_id\":\"{STUDENT}\",\"vaccine_name\":\"Polio\",\"administered_on\":\"2024-01-02\",\"lot_number\":\"L\\u0000SECRET\"}}\n"
    );
    let r = import(
        &pool,
        from_text(ndjson, Format::Ndjson),
        ImportOptions::new(),
    )
    .await;
    assert_eq!((r.imported, r.rejected), (1, 1), "{r:#?}");
    let rejection = &r.rejections[0];
    assert_eq!(rejection.line, 2);
    assert_eq!(rejection.field.as_deref(), Some("lot_number"));
    assert_eq!(rejection.reason, "contains a NUL character");

    let csv = format!("{HEADER}{STUDENT},Hep\0B,2024-01-03,1,L\n{STUDENT},Flu,2024-01-04,1,L\n");
    let source = from_text(csv, Format::Csv).with_type("vaccination");
    let r = import(&pool, source, ImportOptions::new()).await;
    assert_eq!((r.imported, r.rejected), (1, 1), "{r:#?}");
    assert_eq!(
        (r.rejections[0].line, r.rejections[0].field.as_deref()),
        (2, Some("vaccine_name"))
    );
    assert_report_hides(&r, &["SECRET"]);
    assert_eq!(common::count(&pool, "vaccinations").await, 2);
}

#[tokio::test]
async fn a_5_mib_csv_field_is_rejected_by_line_and_reading_goes_on() {
    let _serial = serial().await;
    let (_dir, pool) = database().await;
    let huge = "y".repeat(5 << 20);
    let csv = format!(
        "{HEADER}{STUDENT},MMR,2024-01-01,1,L\n\
         {STUDENT},Polio,2024-01-02,1,\"{huge}\"\n\
         {STUDENT},Flu,2024-01-03,1,L\n"
    );
    let source = from_text(csv, Format::Csv).with_type("vaccination");
    drop(huge);
    let before = reset_peak();
    let r = import(&pool, source, ImportOptions::new()).await;
    let growth = status_kib("VmHWM").saturating_sub(before);
    eprintln!("5 MiB field: peak RSS +{growth} kB");
    assert_eq!((r.total, r.imported, r.rejected), (3, 2, 1), "{r:#?}");
    assert_eq!(r.rejections[0].line, 3);
    assert_eq!(r.rejections[0].field, None);
    assert_eq!(r.rejections[0].reason, "record longer than 1048576 bytes");
    // One record buffer of at most 1 MiB, not the field read whole (and copied).
    assert!(growth < 4 * 1024, "peak resident size grew by {growth} KiB");
    assert_eq!(common::count(&pool, "vaccinations").await, 2);
}

#[tokio::test]
async fn a_csv_header_naming_a_column_twice_is_an_input_error_naming_it() {
    let _serial = serial().await;
    let csv = format!("student_id,vaccine_name,student_id\n{STUDENT},MMR,{STUDENT}\n");
    let e = Source::from_reader(Cursor::new(csv), Format::Csv).unwrap_err();
    assert!(e.is_input_error(), "{e}");
    assert!(
        e.to_string()
            .contains("column \"student_id\" appears more than once"),
        "{e}"
    );
}

/// A JSON or NDJSON record's field that its type has no column for is warned once per type
/// and name, at its first line, never with a value; a key that may itself be a value (not a
/// lowercase identifier) is not named; past the listed bound one more warning says so. (Such
/// fields were dropped in silence; CSV warned.)
#[tokio::test]
async fn an_unknown_json_field_is_a_warning_listed_once_without_its_values() {
    let _serial = serial().await;
    let (_dir, pool) = database().await;
    let dose = |i: usize, extra: &str| {
        format!(
            r#"{{"type":"vaccination","student_id":"{STUDENT}","vaccine_name":"MMR {i}","administered_on":"2024-01-01"{extra}}}"#
        )
    };
    let ndjson = [
        dose(1, r#","ssn":"123-45-6789""#),
        dose(2, r#","ssn":"987-65-4321""#),
        dose(3, r#","123-45-6789":"x""#),
    ]
    .join("\n");
    for format in [Format::Ndjson, Format::Json] {
        let text = match format {
            Format::Json => format!("[{}]", ndjson.replace('\n', ",\n")),
            _ => ndjson.clone(),
        };
        let r = import(
            &pool,
            from_text(text, format),
            ImportOptions::new().dry_run(true),
        )
        .await;
        assert_eq!(r.imported, 3, "{r:#?}");
        let warned: Vec<(u64, Option<&str>)> = r
            .warnings
            .iter()
            .map(|w| (w.line, w.field.as_deref()))
            .collect();
        assert_eq!(warned, [(1, Some("ssn")), (3, None)], "{r:#?}");
        assert_eq!(
            r.warnings[0].reason,
            "unknown field of vaccination: its values are ignored"
        );
        assert_report_hides(&r, &["6789", "4321"]);
    }

    // Past the bound: the first 32 names, then one warning for the rest.
    let many: String = (0..40)
        .map(|i| dose(i, &format!(r#","extra_{i}":1"#)) + "\n")
        .collect();
    let r = import(
        &pool,
        from_text(many, Format::Ndjson),
        ImportOptions::new().dry_run(true),
    )
    .await;
    assert_eq!(r.warnings.len(), 33, "{r:#?}");
    assert_eq!(r.warnings[32].line, 33);
    assert!(r.warnings[32].reason.contains("not listed"), "{r:#?}");
}

/// An import stopped past `max_errors` still reports the warnings of what it read: the
/// reader hands them back however it ends (they were sent after its last chunk, and lost
/// when the database loop stopped first).
#[tokio::test]
async fn an_import_stopped_early_still_lists_the_warnings_of_what_it_read() {
    let _serial = serial().await;
    let (_dir, pool) = database().await;
    let dose = |name: &str, on: &str, extra: &str| {
        format!(
            r#"{{"type":"vaccination","student_id":"{STUDENT}","vaccine_name":"{name}","administered_on":"{on}"{extra}}}"#
        )
    };
    // The second record is refused (its date), which is past `max_errors(0)`.
    let ndjson = [
        dose("MMR", "2024-01-01", r#","ssn":"123-45-6789""#),
        dose("Flu", "not a date", ""),
        dose("Tdap", "2024-01-03", ""),
    ]
    .join("\n");
    let r = import(
        &pool,
        from_text(ndjson, Format::Ndjson),
        ImportOptions::new().max_errors(0),
    )
    .await;
    assert!(r.stopped_early, "{r:#?}");
    let (line, field, reason) = only_warning(&r);
    assert_eq!((line, field.as_deref()), (1, Some("ssn")), "{r:#?}");
    assert_eq!(
        reason,
        "unknown field of vaccination: its values are ignored"
    );
    assert_report_hides(&r, &["6789"]);
}

#[tokio::test]
async fn an_unknown_csv_column_is_a_warning_listed_once_without_its_values() {
    let _serial = serial().await;
    let (_dir, pool) = database().await;
    let csv = format!(
        "student_id,vaccine_name,administered_on,ssn\n\
         {STUDENT},MMR,2024-01-01,123-45-6789\n\
         {STUDENT},Flu,2024-01-02,987-65-4321\n"
    );
    let source = from_text(csv, Format::Csv).with_type("vaccination");
    let r = import(&pool, source, ImportOptions::new()).await;
    assert_eq!(r.imported, 2, "{r:#?}");
    let (line, field, reason) = only_warning(&r);
    assert_eq!((line, field.as_deref()), (1, Some("ssn")));
    assert_eq!(reason, "unknown column: its values are ignored");
    assert_report_hides(&r, &["6789", "4321"]);

    // Without a fixed type, a column is known when any type has it.
    let (_dir, pool) = database().await;
    let csv =
        format!("type,id,name,student_id,vaccine_name,administered_on\nstudent,{STUDENT},Kim,,,\n");
    let r = import(&pool, from_text(csv, Format::Csv), ImportOptions::new()).await;
    assert!(r.warnings.is_empty(), "{r:#?}");
}

#[tokio::test]
async fn a_csv_without_a_header_row_gives_warnings_without_its_first_rows_values() {
    let _serial = serial().await;
    for first in ["Ann,Lee,2014-03-02", "ann,lee,x"] {
        let (_dir, pool) = database().await;
        let csv = format!("{first}\nBo,Kim,2015-04-03\n");
        let source = from_text(csv, Format::Csv).with_type("vaccination");
        let r = import(&pool, source, ImportOptions::new()).await;
        let fields: Vec<_> = r.warnings.iter().map(|w| w.field.as_deref()).collect();
        assert_eq!(
            fields,
            [Some("column 1"), Some("column 2"), Some("column 3")],
            "{r:#?}"
        );
        let text = serde_json::to_string(&r.warnings).unwrap();
        for value in first.split(',') {
            assert!(!text.contains(value), "{value} in {text}");
        }
    }
}

#[tokio::test]
async fn a_truncated_json_array_or_data_after_it_is_a_warning_with_the_line() {
    let _serial = serial().await;
    let (_dir, pool) = database().await;
    let element = |day: u8| {
        format!(
            "{{\"type\":\"vaccination\",\"student_id\":\"{STUDENT}\",\"vaccine_name\":\"MMR\",\"administered_on\":\"2024-01-0{day}\"}}"
        )
    };
    let cut = format!("[\n{},\n{},\n", element(1), element(2));
    let r = import(&pool, from_text(cut, Format::Json), ImportOptions::new()).await;
    assert_eq!(r.imported, 2, "{r:#?}");
    let (line, field, reason) = only_warning(&r);
    assert_eq!((line, field), (4, None));
    assert!(reason.contains("ends without ']'"), "{reason}");

    let junk = format!("[{}]\n{}\n", element(3), element(4));
    let r = import(&pool, from_text(junk, Format::Json), ImportOptions::new()).await;
    assert_eq!(r.imported, 1, "{r:#?}");
    let (line, _, reason) = only_warning(&r);
    assert_eq!(line, 2);
    assert!(
        reason.contains("after the end of the JSON array"),
        "{reason}"
    );
    assert_report_hides(&r, &["2024-01-04"]);
}

#[tokio::test]
async fn exit_codes_are_two_for_bad_usage_and_empty_input_one_for_the_database() {
    let _serial = serial().await;
    for options in [
        ImportOptions::new().chunk_size(0),
        ImportOptions::new().workers(0),
    ] {
        let e = Importer::new(registry(), options).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
    }
    let dir = tempfile::tempdir().unwrap();
    for name in ["empty.csv", "empty.json", "empty.ndjson"] {
        let path = dir.path().join(name);
        std::fs::write(&path, "").unwrap();
        let importer = Importer::new(registry(), ImportOptions::new()).unwrap();
        let (_db, pool) = database().await;
        let e = match Source::open(&path, None) {
            Err(e) => e,
            Ok(source) => importer
                .run(source, &mut SqliteSink::new(pool))
                .await
                .unwrap_err(),
        };
        assert_eq!(e.exit_code(), 2, "{name}: {e}");
    }
    // A database without the tables: the lookups fail.
    let pool = SqlitePool::connect("sqlite::memory:").await.unwrap();
    let importer = Importer::new(registry(), ImportOptions::new()).unwrap();
    let source = from_text(
        format!("{HEADER}{STUDENT},MMR,2024-01-01,1,L\n"),
        Format::Csv,
    )
    .with_type("vaccination");
    let e = importer
        .run(source, &mut SqliteSink::new(pool))
        .await
        .unwrap_err();
    assert!(matches!(e, ImportError::Database { .. }), "{e}");
    assert_eq!(e.exit_code(), 1);
}
