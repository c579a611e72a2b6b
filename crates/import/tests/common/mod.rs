//! What the SQLite suites share: a fresh database file with a schema of the test's own, an
//! import into it that checks the report's counts add up, and the rejection a report lists.

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use vitals_import::{
    ImportOptions, ImportReport, Importer, Registry, Rejection, Source, SqliteSink,
};

/// A database file in a temporary directory (gone when the directory is dropped), with
/// foreign keys enforced, on one connection, after running `ddl`.
pub async fn sqlite_file(ddl: &[&str]) -> (tempfile::TempDir, SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("test.db"))
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    for statement in ddl {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    (dir, pool)
}

/// Imports `source` into `pool` with `registry`, and checks that every row is counted once.
pub async fn import(
    registry: Registry,
    pool: &SqlitePool,
    source: Source,
    options: ImportOptions,
) -> ImportReport {
    let importer = Importer::new(registry, options).unwrap();
    let report = importer
        .run(source, &mut SqliteSink::new(pool.clone()))
        .await
        .unwrap();
    assert_eq!(
        report.imported + report.duplicates + report.rejected,
        report.total,
        "{report:#?}"
    );
    report
}

/// The rejection of the `type_name` row on `line` for its `field`.
#[allow(dead_code)] // not every suite that includes this module checks rejections whole
pub fn rejected(line: u64, type_name: &str, field: &str, reason: &str) -> Rejection {
    Rejection {
        line,
        type_name: Some(type_name.into()),
        field: Some(field.into()),
        reason: reason.into(),
    }
}
