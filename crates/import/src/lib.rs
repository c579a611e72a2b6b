//! A streaming bulk importer: reads CSV, NDJSON or a JSON array with bounded memory,
//! validates every field, checks foreign keys with one query per referenced table per chunk,
//! drops duplicates (within the input and against the database) and inserts each record
//! type with one statement per chunk, then reports on every row by line number.
//!
//! The crate is generic: it knows record types only through [`RecordSpec`]s (table,
//! columns, natural key, foreign keys) gathered in a [`Registry`]. The healthcare types
//! live in `vitals::health::records`. It leaves the schema (migrations) and the
//! connection pool to its caller, and writes through a [`Sink`]: [`PgSink`] for
//! PostgreSQL, [`SqliteSink`] for SQLite.
//!
//! Rows move through chunks (5 000 rows by default): parse and validate fields (on a
//! reading thread) → resolve foreign keys (one lookup per referenced table) → de-duplicate
//! within the input → per type, parents first: de-duplicate against the database (one
//! lookup) → write, in one transaction per chunk. `ON CONFLICT DO NOTHING` stays as the
//! backstop for concurrent imports; the rows it skips count as duplicates. Reasons in the
//! report name the problem, never the value, since values may be health information.
//!
//! Memory stays bounded whatever the input: a record (a CSV row, an NDJSON line, a JSON
//! array element) above [`MAX_RECORD_BYTES`] is rejected by line without being kept, and the
//! report lists at most [`ImportOptions::max_listed`] rejections, duplicates and warnings
//! (counts stay exact; `truncated` says what was left out).
//!
//! On PostgreSQL, a chunk of types nothing references (vaccinations, not students) is
//! written on a second connection while the next chunk is checked
//! ([`ImportOptions::workers`], default 2), so the server inserts on two cores.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `postgres` | on | `PgSink` (sqlx's PostgreSQL driver, TLS through rustls) |
//! | `sqlite` | on | `SqliteSink` (sqlx's SQLite driver, SQLite built in) |
//!
//! With neither, the sources, validation, de-duplication and the report build on sqlx's
//! core alone, for a [`Sink`] of your own.
//!
//! # Example
//!
//! ```no_run
//! use vitals_import::{Column, ImportError, ImportOptions, Importer, KeyPart, PgSink, RecordSpec, Registry, Source};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = Registry::new([
//!     RecordSpec::new("student", "students")
//!         .column(Column::uuid("id").required())
//!         .column(Column::text("last_name").required())
//!         .natural_key([KeyPart::exact("id")]),
//!     RecordSpec::new("vaccination", "vaccinations")
//!         .column(Column::uuid("student_id").required())
//!         .column(Column::text("vaccine_name").required())
//!         .column(Column::date("administered_on").required())
//!         .natural_key([KeyPart::exact("student_id"), KeyPart::exact("vaccine_name"), KeyPart::exact("administered_on")])
//!         .foreign_key("student_id", "students", "id"),
//! ])?;
//! let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1/test").await?;
//! let importer = Importer::new(registry, ImportOptions::new().chunk_size(5000))?;
//! let source = Source::open("vaccinations.csv", None)?.with_type("vaccination");
//! let report = importer.run(source, &mut PgSink::new(pool)).await?;
//! println!("{}", serde_json::to_string_pretty(&report)?);
//! # Ok(())
//! # }
//! ```
//!
//! # Example: validate only
//!
//! ```no_run
//! # use vitals_import::{ImportOptions, Importer, Registry, Source, SqliteSink};
//! # async fn example(registry: Registry, pool: sqlx::SqlitePool) -> Result<(), vitals_import::ImportError> {
//! let importer = Importer::new(registry, ImportOptions::new().dry_run(true))?;
//! let report = importer.run(Source::open("records.ndjson", None)?, &mut SqliteSink::new(pool)).await?;
//! assert_eq!(report.imported + report.duplicates + report.rejected, report.total);
//! # Ok(())
//! # }
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod chunk;
mod date;
mod error;
mod importer;
mod keys;
pub mod metrics;
mod options;
mod pg_cast;
mod reader;
mod report;
mod row;
mod sink;
mod source;
mod spec;
mod state;
mod unknown_fields;
mod validate;
mod writers;

pub use error::{ImportError, SpecError};
pub use importer::Importer;
pub use options::{
    ImportOptions, Progress, ProgressFn, DEFAULT_CHUNK_SIZE, DEFAULT_MAX_LISTED, DEFAULT_WORKERS,
    MAX_CHUNK_SIZE,
};
pub use report::{DuplicateOf, DuplicateRow, ImportReport, Rejection, TypeCounts, Warning};
#[cfg(feature = "postgres")]
pub use sink::PgSink;
#[cfg(feature = "sqlite")]
pub use sink::SqliteSink;
pub use sink::{ConnectionSource, Lookup, LookupPart, Sink, StatementObserver};
pub use source::{Format, Item, RawRecord, RawValue, Source, MAX_RECORD_BYTES, TYPE_FIELD};
pub use spec::{
    Column, ForeignKey, KeyPart, Kind, Normalise, RecordSpec, Registry, Value, DEFAULT_MAX_TEXT,
};
pub use validate::{validate, Row};
/// Invalid import options read from the environment ([`ImportOptions::from_env`]): every bad
/// variable at once, each under the component `import`.
pub use vitals_env::ConfigError;

// The shared types cross threads (a `Source` is moved to the reading thread): checked by
// every build, not only by the tests.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    const fn send<T: Send>() {}
    send_sync::<(Importer, Registry, ImportReport, ConfigError)>();
    #[cfg(feature = "postgres")]
    send_sync::<PgSink>();
    #[cfg(feature = "sqlite")]
    send_sync::<SqliteSink>();
    send::<Source>();
};
