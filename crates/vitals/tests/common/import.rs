//! Helpers of the import tests (`import.rs`, `import_workers.rs`): two known students, CSV
//! files, and an import that checks every row is accounted for.

use std::io::Write;

use sqlx::{PgPool, SqlitePool};
use vitals::health::records;
use vitals::import::{ImportOptions, ImportReport, Importer, PgSink, Sink, Source, SqliteSink};

pub const STUDENT_A: &str = "0b7f5c2e-0000-4000-8000-00000000000a";
pub const STUDENT_B: &str = "0b7f5c2e-0000-4000-8000-00000000000b";

pub const VACCINATION_HEADER: &str =
    "student_id,vaccine_name,dose_number,administered_on,administered_by,lot_number\n";

/// A temporary file named `*{suffix}` holding `content`.
pub fn file(suffix: &str, content: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(suffix).tempfile().unwrap();
    f.write_all(content.as_bytes()).unwrap();
    f.flush().unwrap();
    f
}

/// Students A and B, as CSV.
pub fn students_csv() -> String {
    format!(
        "id,student_number,first_name,last_name,date_of_birth,grade\n\
         {STUDENT_A},S-1,Ann,O'Brien,2014-03-01,4\n\
         {STUDENT_B},S-2,Bo,Lee,2013-07-12,5\n"
    )
}

/// Every row is imported, a duplicate or rejected.
fn assert_accounted(report: &ImportReport) {
    assert_eq!(
        report.imported + report.duplicates + report.rejected,
        report.total,
        "{report:#?}"
    );
}

/// An importer with the health registry, and `f` as a source of type `ty` (from the file
/// when `None`).
pub fn importer_of(
    f: &tempfile::NamedTempFile,
    ty: Option<&str>,
    options: ImportOptions,
) -> (Importer, Source) {
    let importer = Importer::new(records::registry(), options).unwrap();
    let mut source = Source::open(f.path(), None).unwrap();
    if let Some(t) = ty {
        source = source.with_type(t);
    }
    (importer, source)
}

/// Imports `f` (of type `ty`, from the file when `None`) into `sink`, and checks every row is
/// accounted for.
pub async fn import_into<S: Sink>(
    sink: &mut S,
    f: &tempfile::NamedTempFile,
    ty: Option<&str>,
    options: ImportOptions,
) -> ImportReport {
    let (importer, source) = importer_of(f, ty, options);
    let report = importer.run(source, sink).await.unwrap();
    assert_accounted(&report);
    report
}

/// Imports `f` into PostgreSQL.
pub async fn import_pg(
    pool: &PgPool,
    f: &tempfile::NamedTempFile,
    ty: Option<&str>,
    options: ImportOptions,
) -> ImportReport {
    import_into(&mut PgSink::new(pool.clone()), f, ty, options).await
}

/// Imports `f` into SQLite.
pub async fn import_sqlite(
    pool: &SqlitePool,
    f: &tempfile::NamedTempFile,
    options: ImportOptions,
) -> ImportReport {
    import_into(&mut SqliteSink::new(pool.clone()), f, None, options).await
}

/// The rows of `table`.
pub async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Imports students A and B.
pub async fn with_students(pool: &PgPool) {
    let f = file(".csv", &students_csv());
    let r = import_pg(pool, &f, Some(records::STUDENT), ImportOptions::new()).await;
    assert_eq!(r.imported, 2, "{r:#?}");
}
