//! The database side of an import: the [`Sink`] seam and its PostgreSQL and SQLite
//! implementations.

use std::future::Future;

use crate::spec::{Column, Kind, Normalise, RecordSpec, Value};

mod conn;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use conn::{ConnectionSource, StatementObserver};
#[cfg(feature = "postgres")]
pub use postgres::PgSink;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteSink;

/// One part of a [`Lookup`] key: a column of the probed table and how it is compared.
#[derive(Debug, Clone)]
pub struct LookupPart {
    /// The probed table's column.
    pub column: &'static str,
    /// The kind of the values bound for it.
    pub kind: Kind,
    /// How the column is compared (the bound values are already normalised).
    pub normalise: Normalise,
    /// The PostgreSQL type to cast bound values to before comparing, if not the kind's own.
    pub pg_cast: Option<&'static str>,
}

impl LookupPart {
    pub(crate) fn from_column(column: &Column, normalise: Normalise, on: &'static str) -> Self {
        Self {
            column: on,
            kind: column.kind().clone(),
            normalise,
            pg_cast: column.pg_cast(),
        }
    }

    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    pub(crate) fn sql(&self, alias: &str) -> String {
        match self.normalise {
            Normalise::Exact => format!("{alias}.{}", self.column),
            Normalise::LowerTrim => format!("lower(trim({alias}.{}))", self.column),
        }
    }
}

/// "Which of these keys exist in `table`?": one statement for many keys. Used for foreign
/// keys (one part: the referenced column) and for natural keys.
#[derive(Debug, Clone)]
pub struct Lookup<'a> {
    /// The probed table.
    pub table: &'static str,
    /// The key's parts.
    pub parts: Vec<LookupPart>,
    /// A predicate existing rows must satisfy (partial unique index).
    pub filter: Option<&'static str>,
    /// The keys, each with one value per part.
    pub keys: &'a [Vec<Value>],
}

/// Where an import writes. One or two statements per call; the importer counts on each
/// call being one round trip (or a few when a driver limit forces batches).
///
/// Calls between [`Sink::begin`] and [`Sink::commit`]/[`Sink::rollback`] run in that
/// transaction; outside one (dry runs) they run on their own.
///
/// A sink that can [`fork`](Sink::fork) lets the importer write one chunk on a second
/// connection while it checks the next (see [`ImportOptions::workers`]).
///
/// [`ImportOptions::workers`]: crate::ImportOptions::workers
pub trait Sink: Send + Sized + 'static {
    /// Starts a transaction.
    fn begin(&mut self) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Commits the transaction, if one is open.
    fn commit(&mut self) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Rolls the transaction back, if one is open.
    fn rollback(&mut self) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Returns the indices (into `lookup.keys`) of the keys that exist.
    fn find(
        &mut self,
        lookup: &Lookup<'_>,
    ) -> impl Future<Output = Result<Vec<usize>, sqlx::Error>> + Send;

    /// Inserts rows of `spec` (one value per column each), skipping rows that conflict with
    /// a unique index, and returns the natural-key values (one per key part, as stored) of
    /// the rows actually inserted.
    fn insert(
        &mut self,
        spec: &RecordSpec,
        rows: &[&[Value]],
    ) -> impl Future<Output = Result<Vec<Vec<Value>>, sqlx::Error>> + Send;

    /// Like [`Sink::insert`], but returns only how many rows were inserted: cheaper where
    /// every row is expected to go in (the keys come back only to find the skipped ones).
    /// The default calls [`Sink::insert`].
    fn insert_count(
        &mut self,
        spec: &RecordSpec,
        rows: &[&[Value]],
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send {
        async move { Ok(self.insert(spec, rows).await?.len() as u64) }
    }

    /// Statements sent so far, `BEGIN` and `COMMIT` included.
    fn statements(&self) -> u64;

    /// Another sink on the same database, with its own connection, transaction and
    /// statement count, or `None` (the default) when writes must stay on this one.
    fn fork(&self) -> Option<Self> {
        None
    }
}
