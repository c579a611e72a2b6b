//! What the importer's suites share: a pool on a database with the test's own schema, sources
//! read from text, a table's row count, and (SQLite) a fresh database file, an import into it
//! that checks the report's counts add up, and the rejection a report lists.
// Each suite uses only part of it.
#![allow(dead_code)]

use std::io::Cursor;

use sqlx::pool::PoolOptions;
use vitals_import::{Format, Rejection, Source};
#[cfg(feature = "sqlite")]
use {
    sqlx::sqlite::{SqliteConnectOptions, SqlitePool},
    vitals_import::{ImportOptions, ImportReport, Importer, Registry, SqliteSink},
};

/// A pool of at most `max` connections with `options`, after running `ddl` on it.
pub async fn pool_after<DB: sqlx::Database>(
    max: u32,
    options: <DB::Connection as sqlx::Connection>::Options,
    ddl: &[&str],
) -> sqlx::Pool<DB>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    let pool = PoolOptions::<DB>::new()
        .max_connections(max)
        .connect_with(options)
        .await
        .unwrap();
    for statement in ddl {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    pool
}

/// The rows `table` holds.
pub async fn count<DB: sqlx::Database>(pool: &sqlx::Pool<DB>, table: &str) -> i64
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    (i64,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// `text` read as a source of `format`.
pub fn from_text(text: impl Into<String>, format: Format) -> Source {
    Source::from_reader(Cursor::new(text.into()), format).unwrap()
}

/// `text` read as NDJSON.
pub fn ndjson(text: &str) -> Source {
    from_text(text, Format::Ndjson)
}

/// `text` read as CSV.
pub fn csv(text: &str) -> Source {
    from_text(text, Format::Csv)
}

/// A database file in a temporary directory (gone when the directory is dropped), with
/// foreign keys enforced, on one connection, after running `ddl`.
#[cfg(feature = "sqlite")]
pub async fn sqlite_file(ddl: &[&str]) -> (tempfile::TempDir, SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("test.db"))
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = pool_after(1, options, ddl).await;
    (dir, pool)
}

/// Imports `source` into `pool` with `registry`, and checks that every row is counted once.
#[cfg(feature = "sqlite")]
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
pub fn rejected(line: u64, type_name: &str, field: &str, reason: &str) -> Rejection {
    Rejection {
        line,
        type_name: Some(type_name.into()),
        field: Some(field.into()),
        reason: reason.into(),
    }
}
