//! [`Vitals::import`] and [`Vitals::import_file`]: the importer of the school-health record
//! types, run on the facade's database inside a query scope named `import`, then the cache
//! made true again for the owners of the rows it wrote.
//!
//! Every statement of an import goes through the facade's handle: the sinks acquire their
//! connections through the monitored pool ([`Monitored`], so the pool monitor counts the wait
//! and the hold of each chunk's transaction, the forked writers' included), and report each
//! statement (`BEGIN`, the foreign-key and existing-key lookups, the insert, `COMMIT`) to the
//! query logger ([`ImportObserver`]), which sanitises it: it is in the query report, the slow
//! tiers and the history like any other work. They are recorded as batch statements
//! ([`QueryLogger::record_batch`]): one of each per chunk by design, never N+1 findings.
//!
//! Which rows were written is seen at the [`Sink`] seam, not guessed from the input: an
//! [`OwnerSink`] wraps the engine's sink and keeps, per transaction, the owner id of every
//! row an insert put in (the owner column of each record type is the cache's to name,
//! [`HealthDataCache::student_column`]); a commit makes them written, a rollback forgets them.
//! Rejected rows never reach an insert, a dry run inserts nothing, and an all-or-nothing
//! import that rolls back wrote nothing.

use std::collections::HashSet;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::Database;
use uuid::Uuid;
use vitals_import::{
    ConnectionSource, Format, ImportOptions, ImportReport, Importer, Lookup, PgSink, RecordSpec,
    Sink, Source, SqliteSink, StatementObserver, Value,
};
use vitals_pool::{MonitoredPool, ObservedConnection};
use vitals_querylog::QueryLogger;

use crate::db::Db;
use crate::health::{self, HealthDataCache};
use crate::telemetry::{self, Scoped};
use crate::{Error, Vitals};

/// What [`Vitals::import`] and [`Vitals::import_file`] return: the importer's report and how
/// many students' cached data the import dropped. Serialised as the report's fields plus
/// `students_invalidated` (what the upload route answers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ImportOutcome {
    /// The importer's report: counts, rejections and duplicates by line.
    #[serde(flatten)]
    pub report: ImportReport,
    /// Students whose cached health data was dropped because the import wrote records of
    /// theirs (committed rows only: not rejected rows, not a dry run, not a rolled-back
    /// all-or-nothing import).
    pub students_invalidated: usize,
}

impl Vitals {
    /// Imports a file of school-health records (`student`, `vaccination`, `allergy`,
    /// `chronic_condition`) with the configured options, or `options` when given.
    /// `record_type` is the type of every row when the file has no `type` field (CSV).
    /// As [`import`](Self::import): in the query scope `import`, and the cache of every
    /// student it wrote records of dropped.
    ///
    /// On PostgreSQL an import holds up to `VITALS_IMPORT_WORKERS` (default 2) of the pool's
    /// connections while it runs (see [`ImportOptions::workers`]).
    ///
    /// # Errors
    /// [`Error::Import`] when the file cannot be read at all or the database fails.
    pub async fn import_file(
        &self,
        path: impl AsRef<Path>,
        format: Option<Format>,
        record_type: Option<&str>,
        options: Option<ImportOptions>,
    ) -> Result<ImportOutcome, Error> {
        let mut source = Source::open(path.as_ref(), format)?;
        if let Some(t) = record_type {
            source = source.with_type(t);
        }
        self.import(source, options).await
    }

    /// Imports from any [`Source`] (a file, bytes of an upload), inside the query scope
    /// `import` (N+1 findings of its statements name it), then drops the cached health data
    /// of every student whose records it wrote, 256 students per Redis pipeline
    /// ([`HealthDataCache::invalidate_students`]); [`ImportOutcome::students_invalidated`]
    /// says how many.
    ///
    /// The students of chunks committed before a failure are dropped too, before the error
    /// is returned. An import whose future is dropped before it ends drops nothing.
    ///
    /// # Errors
    /// [`Error::Import`] when the source cannot be read at all or the database fails.
    pub async fn import(
        &self,
        source: Source,
        options: Option<ImportOptions>,
    ) -> Result<ImportOutcome, Error> {
        let custom;
        let importer = match options {
            Some(o) => {
                custom = Importer::new(health::records::registry_in(self.tables()), o)?;
                &custom
            }
            None => self.importer(),
        };
        let written = Written::default();
        let observer: Arc<dyn StatementObserver> = Arc::new(ImportObserver {
            logger: self.query_logger().clone(),
            db: self.db().clone(),
            metrics: self.statement_metrics(),
        });
        let run = async {
            match self.db() {
                Db::Postgres(p) => {
                    let sink = PgSink::on(Monitored(p.clone())).observed_by(observer);
                    let report = importer.run(source, &mut written.wrap(sink)).await;
                    // The sink writes on raw connections, from the importer's writer tasks:
                    // no statement passed the write handle in this task, so mark the caller's
                    // read-your-writes scope here (whatever the outcome: chunks may have
                    // committed before an error).
                    vitals_pool::note_write();
                    report
                }
                Db::Sqlite(p) => {
                    let sink = SqliteSink::on(Monitored(p.clone())).observed_by(observer);
                    importer.run(source, &mut written.wrap(sink)).await
                }
            }
        };
        let result = self.query_logger().in_scope("import", run).await;
        let students = written.take();
        self.health_cache().invalidate_students(&students).await;
        Ok(ImportOutcome {
            report: result?,
            students_invalidated: students.len(),
        })
    }
}

/// The monitored pool as the importer's [`ConnectionSource`]: each connection a sink takes
/// (one per chunk's transaction, one per statement of a dry run) is acquired through the
/// monitored path, so the pool monitor counts its wait and its hold (with this file's
/// `file:line` as the leak site). The sink runs its statements on the driver connection
/// underneath and reports them itself, to [`ImportObserver`].
struct Monitored<DB: Database>(MonitoredPool<DB>);

// By hand: a derive would ask `DB: Clone`.
impl<DB: Database> Clone for Monitored<DB> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<DB: Database> ConnectionSource<DB> for Monitored<DB> {
    type Connection = ObservedConnection<DB>;

    fn acquire(&self) -> impl Future<Output = Result<ObservedConnection<DB>, sqlx::Error>> + Send {
        sqlx::Acquire::acquire(&self.0)
    }

    /// Behind PgBouncer's transaction mode, `BEGIN; SET LOCAL …` (and unnamed statements).
    fn begin_statement(&self) -> Option<std::borrow::Cow<'static, str>> {
        self.0.transaction_begin_statement()
    }
}

/// Feeds every statement of an import to the query logger, as the pool's observer does for
/// the host's statements (the logger sanitises the text and scrubs the error; the sink never
/// passes bind values), but as batch statements: counted in no N+1 scope.
struct ImportObserver {
    logger: QueryLogger,
    /// The pool whose statement spans the import's statements get.
    db: Db,
    /// The instance's statement histogram (shared with the pool's observer).
    metrics: Arc<telemetry::StatementMetrics>,
}

impl StatementObserver for ImportObserver {
    fn statement(&self, sql: &str, elapsed: Duration, rows: u64, error: Option<&sqlx::Error>) {
        telemetry::record(&self.logger, sql, elapsed, rows, error, Scoped::No);
    }

    fn statement_span(&self) -> tracing::Span {
        crate::with_db!(&self.db, |p| p.statement_span())
    }

    /// As the pool's observer does: sanitised once, for the logger, the span and the
    /// statement histogram.
    fn statement_in(
        &self,
        span: &tracing::Span,
        sql: &str,
        elapsed: Duration,
        rows: u64,
        error: Option<&sqlx::Error>,
    ) {
        let q = telemetry::record(&self.logger, sql, elapsed, rows, error, Scoped::No);
        telemetry::end_span(span, &q, rows, error);
        self.metrics
            .record(self.db.engine().otel_system(), &q, elapsed, error.is_none());
    }
}

/// The owners of the rows committed by an [`OwnerSink`] and its forks.
#[derive(Clone, Default)]
struct Written(Arc<Mutex<HashSet<Uuid>>>);

impl Written {
    fn wrap<S: Sink>(&self, inner: S) -> OwnerSink<S> {
        OwnerSink {
            inner,
            written: self.clone(),
            pending: HashSet::new(),
            open: false,
        }
    }

    fn extend(&self, owners: impl IntoIterator<Item = Uuid>) {
        // A panic while extending leaves a set of ids, still a valid one.
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(owners);
    }

    /// The owners, sorted (so the invalidation pipelines are the same for the same import).
    fn take(&self) -> Vec<Uuid> {
        let set = std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner));
        let mut ids: Vec<Uuid> = set.into_iter().collect();
        ids.sort_unstable();
        ids
    }
}

/// A [`Sink`] that remembers the owner id of every row it inserts, per transaction: kept in
/// [`Written`] on commit (or at once outside a transaction), forgotten on rollback. Forks
/// share the [`Written`] set.
struct OwnerSink<S> {
    inner: S,
    written: Written,
    /// The owners of the rows inserted in the open transaction.
    pending: HashSet<Uuid>,
    /// Whether a transaction begun here is open.
    open: bool,
}

impl<S: Sink> OwnerSink<S> {
    /// Notes `owners` as written by the open transaction, or as written now when there is
    /// none (a sink outside a transaction autocommits).
    fn note(&mut self, owners: impl IntoIterator<Item = Uuid>) {
        if self.open {
            self.pending.extend(owners);
        } else {
            self.written.extend(owners);
        }
    }
}

/// The owner id in `value`, a UUID column (SQLite sinks may hold it as text).
fn owner_id(value: Option<&Value>) -> Option<Uuid> {
    match value? {
        Value::Uuid(u) => Some(*u),
        Value::Text(t) => t.parse().ok(),
        _ => None,
    }
}

/// The owners of `rows` of `spec` (one value per column each).
fn row_owners<'a>(spec: &RecordSpec, rows: &'a [&'a [Value]]) -> impl Iterator<Item = Uuid> + 'a {
    let column = HealthDataCache::student_column(spec.name()).and_then(|c| spec.column_index(c));
    rows.iter()
        .filter_map(move |row| owner_id(row.get(column?)))
}

impl<S: Sink> Sink for OwnerSink<S> {
    async fn begin(&mut self) -> Result<(), sqlx::Error> {
        self.pending.clear();
        self.inner.begin().await?;
        self.open = true;
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), sqlx::Error> {
        let result = self.inner.commit().await;
        self.open = false;
        let pending = std::mem::take(&mut self.pending);
        if result.is_ok() {
            self.written.extend(pending);
        }
        result
    }

    async fn rollback(&mut self) -> Result<(), sqlx::Error> {
        self.pending.clear();
        self.open = false;
        self.inner.rollback().await
    }

    fn find(
        &mut self,
        lookup: &Lookup<'_>,
    ) -> impl Future<Output = Result<Vec<usize>, sqlx::Error>> + Send {
        self.inner.find(lookup)
    }

    /// The rows that went in are named by the keys the insert returns; every healthcare
    /// key holds its owner column (else every row's owner is noted: a superset).
    async fn insert(
        &mut self,
        spec: &RecordSpec,
        rows: &[&[Value]],
    ) -> Result<Vec<Vec<Value>>, sqlx::Error> {
        let keys = self.inner.insert(spec, rows).await?;
        let part = HealthDataCache::student_column(spec.name())
            .and_then(|c| spec.key().iter().position(|k| k.column() == c));
        match part {
            Some(i) => {
                let owners: Vec<Uuid> = keys.iter().filter_map(|k| owner_id(k.get(i))).collect();
                self.note(owners);
            }
            None => {
                let owners: Vec<Uuid> = row_owners(spec, rows).collect();
                self.note(owners);
            }
        }
        Ok(keys)
    }

    /// Only a count comes back: every row's owner is noted. When fewer rows went in, the
    /// importer rolls the transaction back and writes the chunk again with
    /// [`insert`](Sink::insert), so the superset is never committed.
    async fn insert_count(
        &mut self,
        spec: &RecordSpec,
        rows: &[&[Value]],
    ) -> Result<u64, sqlx::Error> {
        let n = self.inner.insert_count(spec, rows).await?;
        let owners: Vec<Uuid> = row_owners(spec, rows).collect();
        self.note(owners);
        Ok(n)
    }

    fn statements(&self) -> u64 {
        self.inner.statements()
    }

    fn fork(&self) -> Option<Self> {
        self.inner.fork().map(|inner| self.written.wrap(inner))
    }
}
