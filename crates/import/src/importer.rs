//! The pipeline: read, validate and hash keys on a blocking thread, then per chunk check
//! foreign keys, de-duplicate and insert, parents first, in one transaction; chunks of leaf
//! types are written by tasks on forked sinks while the next chunk is checked.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use std::collections::VecDeque;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use crate::error::{ConfigError, ImportError};
use crate::report::{DuplicateOf, DuplicateRow, ImportReport, Rejection, TypeCounts};
use crate::sink::{Lookup, LookupPart, Sink};
use crate::source::{Item, Source};
use crate::spec::{Normalise, Registry, Value};
use crate::validate::{validate, Row};

/// Default number of rows per chunk (and per transaction).
pub const DEFAULT_CHUNK_SIZE: usize = 5000;

/// Default number of chunks written at once (see [`ImportOptions::workers`]).
pub const DEFAULT_WORKERS: usize = 2;

/// Progress after a chunk, for a progress bar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Rows processed so far.
    pub rows: u64,
    /// Rows imported so far.
    pub imported: u64,
    /// Duplicates so far.
    pub duplicates: u64,
    /// Rejected rows so far.
    pub rejected: u64,
    /// Input bytes read so far (the reader runs up to two chunks ahead).
    pub bytes_read: u64,
    /// Size of the input, when known.
    pub bytes_total: Option<u64>,
}

/// A progress callback, called after every chunk.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// How an import runs. Build with [`ImportOptions::new`] and the setters; the
/// [`Importer`] checks it.
#[derive(Clone)]
#[must_use]
pub struct ImportOptions {
    chunk_size: usize,
    all_or_nothing: bool,
    max_errors: Option<u64>,
    dry_run: bool,
    workers: usize,
    progress: Option<ProgressFn>,
}

impl fmt::Debug for ImportOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportOptions")
            .field("chunk_size", &self.chunk_size)
            .field("all_or_nothing", &self.all_or_nothing)
            .field("max_errors", &self.max_errors)
            .field("dry_run", &self.dry_run)
            .field("workers", &self.workers)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ImportOptions {
    /// Defaults: chunks of [`DEFAULT_CHUNK_SIZE`], commit per chunk, no error limit, write,
    /// [`DEFAULT_WORKERS`] chunks written at once.
    pub fn new() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            all_or_nothing: false,
            max_errors: None,
            dry_run: false,
            workers: DEFAULT_WORKERS,
            progress: None,
        }
    }

    /// Options from `VITALS_IMPORT_CHUNK_SIZE`, `VITALS_IMPORT_MAX_ERRORS` and
    /// `VITALS_IMPORT_WORKERS`.
    ///
    /// # Errors
    /// [`ConfigError`] listing every variable that is set but invalid.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(|name| std::env::var(name).ok())
    }

    /// Options from a variable lookup (for tests and other configuration sources).
    ///
    /// # Errors
    /// [`ConfigError`] listing every variable that is set but invalid.
    pub fn from_env_with(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut options = Self::new();
        let mut problems = Vec::new();
        if let Some(v) = lookup("VITALS_IMPORT_CHUNK_SIZE") {
            match v.trim().parse::<usize>() {
                Ok(n) if n > 0 => options.chunk_size = n,
                _ => problems.push(format!(
                    "VITALS_IMPORT_CHUNK_SIZE={v:?}: expected a whole number of rows above 0"
                )),
            }
        }
        if let Some(v) = lookup("VITALS_IMPORT_MAX_ERRORS") {
            match v.trim().parse::<u64>() {
                Ok(n) => options.max_errors = Some(n),
                _ => problems.push(format!(
                    "VITALS_IMPORT_MAX_ERRORS={v:?}: expected a whole number of rejected rows"
                )),
            }
        }
        if let Some(v) = lookup("VITALS_IMPORT_WORKERS") {
            match v.trim().parse::<usize>() {
                Ok(n) if n > 0 => options.workers = n,
                _ => problems.push(format!(
                    "VITALS_IMPORT_WORKERS={v:?}: expected a whole number of connections above 0"
                )),
            }
        }
        if problems.is_empty() {
            Ok(options)
        } else {
            Err(ConfigError::new(problems))
        }
    }

    /// Rows per chunk: per round of queries and per transaction.
    pub fn chunk_size(mut self, rows: usize) -> Self {
        self.chunk_size = rows;
        self
    }

    /// Any rejection rolls the whole import back (one transaction for the whole input).
    /// The rest of the input is still validated, so the report lists every problem.
    pub fn all_or_nothing(mut self, yes: bool) -> Self {
        self.all_or_nothing = yes;
        self
    }

    /// Stops reading once more than `n` rows are rejected (`stopped_early` in the report).
    pub fn max_errors(mut self, n: u64) -> Self {
        self.max_errors = Some(n);
        self
    }

    /// Validates only: foreign keys and duplicates are checked, nothing is written.
    pub fn dry_run(mut self, yes: bool) -> Self {
        self.dry_run = yes;
        self
    }

    /// Chunks written at once, each on its own connection and transaction (default
    /// [`DEFAULT_WORKERS`]; 1 writes every chunk on the sink given to [`Importer::run`]).
    ///
    /// A chunk whose rows are all of types no foreign key references (vaccinations,
    /// allergies… but not students) is written on a [forked](Sink::fork) sink while the
    /// next chunk is read, checked and written: PostgreSQL then inserts on several cores.
    /// The lookups and the writes together use at most `n` connections. Each chunk commits
    /// on its own: when one fails, the chunks before it stay, it is rolled back, the chunks
    /// already being written beside it (at most `n - 1`, all after it) may still commit, and
    /// nothing later is written; a re-run brings the rest and reports the others as
    /// duplicates. All-or-nothing imports, dry runs and sinks that don't fork write on one
    /// connection.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Calls `f` after every chunk.
    pub fn progress(mut self, f: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }
}

/// Runs imports of the record types of a [`Registry`].
///
/// Cheap to clone (the registry is shared behind an `Arc`); `Send + Sync`; one importer can
/// run several imports at once, each with its own sink.
#[derive(Debug, Clone)]
pub struct Importer {
    registry: Arc<Registry>,
    options: ImportOptions,
    /// (table, column) pairs some foreign key references.
    referenced: Vec<(&'static str, &'static str)>,
}

enum Msg {
    Chunk(Vec<Parsed>),
    Stopped,
    Failed(ImportError),
}

enum Parsed {
    Row(Prepared),
    Bad {
        type_name: Option<String>,
        problems: Vec<Rejection>,
    },
}

/// 128 bits from two SipHashes with random keys, drawn per import: collisions (which would
/// mark a row as a duplicate wrongly) are out of reach for any input size, and an input
/// cannot be crafted to collide, so the hashes can index maps as they are ([`Fold128`]).
#[derive(Clone)]
struct Hash128 {
    a: RandomState,
    b: RandomState,
}

impl Hash128 {
    fn new() -> Self {
        Self {
            a: RandomState::new(),
            b: RandomState::new(),
        }
    }

    fn of(&self, value: &impl Hash) -> u128 {
        (u128::from(self.a.hash_one(value)) << 64) | u128::from(self.b.hash_one(value))
    }
}

/// A [`Hasher`] for keys that are already [`Hash128`] hashes: folds the 128 bits to 64.
#[derive(Default)]
struct Fold128(u64);

impl Hasher for Fold128 {
    fn write_u128(&mut self, h: u128) {
        // Truncation intended: the two halves are folded together.
        self.0 = (h as u64) ^ ((h >> 64) as u64);
    }

    // Only `u128`s are hashed here; other input is folded in, for completeness.
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type HashedMap<V> = HashMap<u128, V, BuildHasherDefault<Fold128>>;
type HashedSet = HashSet<u128, BuildHasherDefault<Fold128>>;

/// A valid row with what the pipeline asks of it, computed on the reading thread so the
/// database loop only looks hashes up.
struct Prepared {
    row: Row,
    /// The natural key, normalised: one value per key part.
    key: Vec<Value>,
    /// Hash of (type index, key).
    key_hash: u128,
    /// Per foreign key of the type (in `foreign_keys()` order): hash of (referenced table,
    /// referenced column, value), `None` for a NULL value.
    fk_hashes: Vec<Option<u128>>,
}

impl Prepared {
    fn new(registry: &Registry, hasher: &Hash128, row: Row) -> Self {
        let spec = &registry.specs()[row.spec];
        let key: Vec<Value> = spec
            .key()
            .iter()
            .map(|k| {
                spec.column_index(k.column())
                    .map_or(Value::Null, |ci| k.apply(&row.values[ci]))
            })
            .collect();
        let key_hash = hasher.of(&(row.spec, &key));
        let fk_hashes = spec
            .foreign_keys()
            .iter()
            .map(|fk| {
                let v = spec.column_index(fk.column()).map(|ci| &row.values[ci])?;
                (*v != Value::Null).then(|| hasher.of(&(fk.table(), fk.referenced(), v)))
            })
            .collect();
        Self {
            row,
            key,
            key_hash,
            fk_hashes,
        }
    }
}

/// Per-import state that lives across chunks.
struct State {
    report: ImportReport,
    counts: Vec<TypeCounts>,
    /// Natural key hash → first line, per type.
    seen: Vec<HashedMap<u64>>,
    /// Hashes of (table, column, value) brought by this import, for foreign keys.
    brought: HashedSet,
    hasher: Hash128,
    in_tx: bool,
    rolled_back: bool,
}

impl State {
    /// Counts `n` rows of type `si` as imported.
    fn imported(&mut self, si: usize, n: usize) {
        let n = n as u64;
        self.report.imported += n;
        self.counts[si].imported += n;
    }
}

/// Line and key hash of each of `fresh` (indices into `rows`).
fn lines_of(rows: &[Row], hashes: &[u128], fresh: &[usize]) -> Vec<(u64, u128)> {
    fresh
        .iter()
        .map(|&ri| (rows[ri].line, hashes[ri]))
        .collect()
}

/// Rows of one type that a pending write inserts: for each, its line and key hash.
struct PendingPart {
    spec: usize,
    fresh: Vec<(u64, u128)>,
}

/// A chunk being written on a forked sink.
struct Pending<S> {
    first_line: u64,
    parts: Vec<PendingPart>,
    task: JoinHandle<Written<S>>,
}

/// An import dropped before it ends (its future cancelled) stops the writes it was waiting
/// for too: a task aborted mid-chunk drops its transaction, which rolls back, as a chunk
/// written on the caller's sink would. A chunk whose commit already went through stays.
impl<S> Drop for Pending<S> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a write task gives back: its sink, and `None` when every row went in, or else the
/// keys each part inserted.
struct Written<S> {
    sink: S,
    result: Result<Option<Vec<Vec<Vec<Value>>>>, sqlx::Error>,
}

/// The forked sinks and the chunks being written on them, oldest first.
struct Writers<S> {
    /// How many sinks may write at once; 0 when writes stay on the caller's sink.
    max: usize,
    free: Vec<S>,
    pending: VecDeque<Pending<S>>,
    /// The first failure of a pending write (later ones only rolled back).
    failed: Option<ImportError>,
}

impl<S: Sink> Writers<S> {
    fn new(max: usize) -> Self {
        Self {
            max,
            free: Vec::new(),
            pending: VecDeque::new(),
            failed: None,
        }
    }

    /// Statements sent by the forked sinks that came back (all, once drained).
    fn statements(&self) -> u64 {
        self.free.iter().map(Sink::statements).sum()
    }
}

/// Begins a transaction on `sink`, inserts every part and commits (or rolls back on error).
///
/// The inserts first only count what went in ([`Sink::insert_count`]). When the `ON CONFLICT`
/// backstop skipped a row (another writer brought its key since the lookup), the
/// transaction, which holds nothing else, is rolled back and the chunk is written again with
/// the inserted keys returned, so the skipped rows can be named.
///
/// Chunks written at once commit independently: a task never waits for another, so two
/// transactions that wait on each other's rows are PostgreSQL's deadlock to detect, never a
/// hang of ours.
async fn write_chunk<S: Sink>(
    mut sink: S,
    registry: Arc<Registry>,
    parts: Vec<(usize, Vec<Vec<Value>>)>,
) -> Written<S> {
    let result = write_parts(&mut sink, &registry, &parts).await;
    if result.is_err() {
        // Best effort: the error that matters is the insert's.
        let _ = sink.rollback().await;
    }
    Written { sink, result }
}

async fn write_parts<S: Sink>(
    sink: &mut S,
    registry: &Registry,
    parts: &[(usize, Vec<Vec<Value>>)],
) -> Result<Option<Vec<Vec<Vec<Value>>>>, sqlx::Error> {
    let rows: Vec<Vec<&[Value]>> = parts
        .iter()
        .map(|(_, values)| values.iter().map(Vec::as_slice).collect())
        .collect();
    sink.begin().await?;
    let mut all_in = true;
    for ((si, _), rows) in parts.iter().zip(&rows) {
        let n = sink.insert_count(&registry.specs()[*si], rows).await?;
        if n < rows.len() as u64 {
            all_in = false;
            break;
        }
    }
    if all_in {
        sink.commit().await?;
        return Ok(None);
    }
    sink.rollback().await?;
    sink.begin().await?;
    let mut inserted = Vec::with_capacity(parts.len());
    for ((si, _), rows) in parts.iter().zip(&rows) {
        inserted.push(sink.insert(&registry.specs()[*si], rows).await?);
    }
    sink.commit().await?;
    Ok(Some(inserted))
}

impl Importer {
    /// An importer of the types of `registry`.
    ///
    /// # Errors
    /// [`ImportError::Options`] when the chunk size or the number of workers is 0.
    pub fn new(
        registry: impl Into<Arc<Registry>>,
        options: ImportOptions,
    ) -> Result<Self, ImportError> {
        if options.chunk_size == 0 {
            return Err(ImportError::Options("chunk size must be above 0".into()));
        }
        if options.workers == 0 {
            return Err(ImportError::Options("workers must be above 0".into()));
        }
        let registry = registry.into();
        let mut referenced = Vec::new();
        for spec in registry.specs() {
            for fk in spec.foreign_keys() {
                if !referenced.contains(&(fk.table(), fk.referenced())) {
                    referenced.push((fk.table(), fk.referenced()));
                }
            }
        }
        Ok(Self {
            registry,
            options,
            referenced,
        })
    }

    /// The registry.
    #[must_use]
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Imports `source` into `sink` and reports on every row.
    ///
    /// Reading and field validation run on a blocking thread, at most two chunks ahead of
    /// the database, so memory stays bounded by the chunk size.
    ///
    /// # Errors
    /// [`ImportError::UnknownType`] when the source's fixed type is not registered,
    /// [`ImportError::Read`]/[`ImportError::Format`] when the input cannot be read,
    /// [`ImportError::Database`] when a statement fails: the current chunk (all-or-nothing:
    /// everything) is rolled back; chunks committed before stay, and so may the chunks
    /// written beside it (see [`ImportOptions::workers`]).
    pub async fn run<S: Sink>(
        &self,
        source: Source,
        sink: &mut S,
    ) -> Result<ImportReport, ImportError> {
        let started = Instant::now();
        if let Some(t) = source.fixed_type() {
            if self.registry.index(t).is_none() {
                return Err(ImportError::UnknownType(t.to_owned()));
            }
        }
        let bytes = source.bytes_counter();
        let size = source.size();
        let (tx, mut rx) = mpsc::channel::<Msg>(1);
        let hasher = Hash128::new();
        let reader_hasher = hasher.clone();
        let registry = Arc::clone(&self.registry);
        let chunk_size = self.options.chunk_size;
        let max_errors = self.options.max_errors;
        let reader = tokio::task::spawn_blocking(move || {
            read(
                source,
                &registry,
                &reader_hasher,
                chunk_size,
                max_errors,
                &tx,
            )
        });

        let n = self.registry.specs().len();
        let mut state = State {
            report: ImportReport {
                dry_run: self.options.dry_run,
                ..ImportReport::default()
            },
            counts: vec![TypeCounts::default(); n],
            seen: vec![HashedMap::default(); n],
            brought: HashedSet::default(),
            hasher: hasher.clone(),
            in_tx: false,
            rolled_back: false,
        };
        let parallel =
            self.options.workers > 1 && !self.options.all_or_nothing && !self.options.dry_run;
        let mut writers = Writers::new(if parallel { self.options.workers } else { 0 });
        if parallel {
            match sink.fork() {
                Some(first) => writers.free.push(first),
                None => writers.max = 0,
            }
        }
        let mut result = Ok(());
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Chunk(chunk) => {
                    if let Err(e) = self.chunk(chunk, sink, &mut writers, &mut state).await {
                        result = Err(e);
                        break;
                    }
                    if writers.failed.is_some() {
                        break;
                    }
                    self.report_progress(&state, &bytes, size);
                    if self
                        .options
                        .max_errors
                        .is_some_and(|m| state.report.rejected > m)
                    {
                        state.report.stopped_early = true;
                        break;
                    }
                }
                Msg::Stopped => state.report.stopped_early = true,
                Msg::Failed(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        drop(rx);
        // The reader ends as soon as its channel closes; its errors came through the channel.
        if let Err(e) = reader.await {
            result = result.and(Err(ImportError::Reader(e.to_string())));
        }
        // Chunks still being written finish (those before a failure commit); a failure among
        // them came before anything the loop met, so it is the one reported.
        if let Err(e) = self.drain(&mut writers, &mut state).await {
            result = Err(e);
        }
        if let Err(e) = result {
            if state.in_tx {
                // Best effort: the error that matters is the one returned.
                let _ = sink.rollback().await;
            }
            return Err(e);
        }
        if state.in_tx {
            let outcome = if state.report.rejected > 0 {
                sink.rollback().await
            } else {
                sink.commit().await
            };
            outcome.map_err(|source| ImportError::Database { line: 0, source })?;
            if state.report.rejected > 0 {
                state.rolled_back = true;
            }
        }
        let mut report = state.report;
        // Chunks are processed type by type; report in input order (stable: fields stay in
        // column order).
        report.rejections.sort_by_key(|r| r.line);
        report.duplicate_rows.sort_by_key(|d| d.line);
        if state.rolled_back {
            report.rolled_back = true;
            report.rejected += report.imported;
            report.imported = 0;
            for c in &mut state.counts {
                c.rejected += c.imported;
                c.imported = 0;
            }
        }
        for (spec, counts) in self.registry.specs().iter().zip(state.counts) {
            if counts.total > 0 {
                report.by_type.insert(spec.name().to_owned(), counts);
            }
        }
        report.queries = sink.statements() + writers.statements();
        report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::debug!(
            total = report.total,
            imported = report.imported,
            duplicates = report.duplicates,
            rejected = report.rejected,
            queries = report.queries,
            elapsed_ms = report.elapsed_ms,
            "import finished"
        );
        Ok(report)
    }

    fn report_progress(&self, state: &State, bytes: &AtomicU64, size: Option<u64>) {
        if let Some(f) = &self.options.progress {
            let r = &state.report;
            f(&Progress {
                rows: r.total,
                imported: r.imported,
                duplicates: r.duplicates,
                rejected: r.rejected,
                bytes_read: bytes.load(Ordering::Relaxed),
                bytes_total: size,
            });
        }
    }

    fn writing(&self, state: &State) -> bool {
        !self.options.dry_run && !state.rolled_back
    }

    async fn chunk<S: Sink>(
        &self,
        chunk: Vec<Parsed>,
        sink: &mut S,
        writers: &mut Writers<S>,
        state: &mut State,
    ) -> Result<(), ImportError> {
        let first_line = match chunk.first() {
            Some(Parsed::Row(r)) => r.row.line,
            Some(Parsed::Bad { problems, .. }) => problems.first().map_or(0, |p| p.line),
            None => return Ok(()),
        };
        let db = |source| ImportError::Database {
            line: first_line,
            source,
        };
        let specs = self.registry.specs();
        let mut rows = Vec::with_capacity(chunk.len());
        let mut row_keys = Vec::with_capacity(chunk.len());
        let mut hashes: Vec<u128> = Vec::with_capacity(chunk.len());
        let mut fk_hashes = Vec::with_capacity(chunk.len());
        let mut chunk_rejected = false;
        for parsed in chunk {
            state.report.total += 1;
            match parsed {
                Parsed::Row(p) => {
                    state.counts[p.row.spec].total += 1;
                    rows.push(p.row);
                    row_keys.push(p.key);
                    hashes.push(p.key_hash);
                    fk_hashes.push(p.fk_hashes);
                }
                Parsed::Bad {
                    type_name,
                    problems,
                } => {
                    chunk_rejected = true;
                    state.report.rejected += 1;
                    if let Some(i) = type_name.as_deref().and_then(|t| self.registry.index(t)) {
                        state.counts[i].total += 1;
                        state.counts[i].rejected += 1;
                    }
                    state.report.rejections.extend(problems);
                }
            }
        }
        if rows.is_empty() {
            return self
                .settle_rejections(chunk_rejected, sink, state)
                .await
                .map_err(db);
        }
        // A chunk of leaf types only (no foreign key points at them) is written on a forked
        // sink while the next one is checked; its lookups run here, outside a transaction.
        let defer =
            writers.max > 0 && self.writing(state) && rows.iter().all(|r| self.is_leaf(r.spec));
        if defer {
            // At most `workers` connections at once: these lookups and the pending writes.
            while writers.pending.len() >= writers.max {
                self.settle_oldest(writers, state).await;
            }
            if writers.failed.is_some() {
                // A chunk before this one failed: write nothing more.
                return Ok(());
            }
        } else if self.writing(state) && !state.in_tx {
            // Pending writes finish first: no more than `workers` connections at once, and a
            // failure among them surfaces before this chunk writes anything.
            self.drain(writers, state).await?;
            sink.begin().await.map_err(db)?;
            state.in_tx = true;
        }
        let mut deferred: Vec<(usize, Vec<usize>)> = Vec::new();

        // Foreign keys: one lookup per referenced (table, column), for values not already
        // brought by earlier chunks.
        // Hashes of (table, column, value) found, as `Prepared::fk_hashes` holds them.
        let mut exists = HashedSet::default();
        for &(table, column) in &self.referenced {
            let mut wanted: Vec<Vec<Value>> = Vec::new();
            let mut wanted_hashes: Vec<u128> = Vec::new();
            let mut wanted_set = HashedSet::default();
            let mut part = None;
            for (row, fk_hashes) in rows.iter().zip(&fk_hashes) {
                let spec = &specs[row.spec];
                for (fk, h) in spec
                    .foreign_keys()
                    .iter()
                    .zip(fk_hashes)
                    .filter(|(fk, _)| fk.table() == table && fk.referenced() == column)
                {
                    let Some(ci) = spec.column_index(fk.column()) else {
                        continue;
                    };
                    let Some(h) = h.filter(|h| !state.brought.contains(h)) else {
                        continue;
                    };
                    if wanted_set.insert(h) {
                        wanted.push(vec![row.values[ci].clone()]);
                        wanted_hashes.push(h);
                    }
                    part.get_or_insert_with(|| {
                        LookupPart::from_column(&spec.columns()[ci], Normalise::Exact, column)
                    });
                }
            }
            let Some(part) = part else { continue };
            let lookup = Lookup {
                table,
                parts: vec![part],
                filter: None,
                keys: &wanted,
            };
            let found = sink.find(&lookup).await.map_err(db)?;
            exists.extend(found.into_iter().filter_map(|i| wanted_hashes.get(i)));
        }

        // In line order: foreign keys, then duplicates within the input.
        let mut candidates: Vec<Vec<usize>> = vec![Vec::new(); specs.len()];
        let mut keys: Vec<Vec<Vec<Value>>> = vec![Vec::new(); specs.len()];
        for (ri, row) in rows.iter().enumerate() {
            let spec = &specs[row.spec];
            let mut problems = Vec::new();
            for (fk, h) in spec.foreign_keys().iter().zip(&fk_hashes[ri]) {
                // `None`: a NULL value (or a column the spec lacks), nothing to check.
                let known = h.is_none_or(|h| state.brought.contains(&h) || exists.contains(&h));
                if !known {
                    problems.push(Rejection {
                        line: row.line,
                        type_name: Some(spec.name().to_owned()),
                        field: Some(fk.column().to_owned()),
                        reason: format!("unknown {}", fk.column()),
                    });
                }
            }
            if !problems.is_empty() {
                chunk_rejected = true;
                state.report.rejected += 1;
                state.counts[row.spec].rejected += 1;
                state.report.rejections.extend(problems);
                continue;
            }
            let key = std::mem::take(&mut row_keys[ri]);
            let h = hashes[ri];
            if let Some(&of) = state.seen[row.spec].get(&h) {
                self.duplicate(state, row.spec, row.line, DuplicateOf::Line(of));
                continue;
            }
            state.seen[row.spec].insert(h, row.line);
            for &(table, column) in &self.referenced {
                if table == spec.table() {
                    if let Some(ci) = spec.column_index(column) {
                        let h = state.hasher.of(&(table, column, &row.values[ci]));
                        state.brought.insert(h);
                    }
                }
            }
            candidates[row.spec].push(ri);
            keys[row.spec].push(key);
        }

        self.settle_rejections(chunk_rejected, sink, state)
            .await
            .map_err(db)?;

        // Parents the backstop skipped that do not exist after all (another unique index
        // refused them): hashes of (table, column, value), so their children are rejected
        // instead of failing the chunk on the foreign key.
        let mut missing: HashSet<u128> = HashSet::new();

        // Per type, parents first: drop keys that exist, insert the rest.
        for (si, spec) in specs.iter().enumerate() {
            if candidates[si].is_empty() {
                continue;
            }
            if !missing.is_empty() {
                let mut orphans = Vec::new();
                let mut kept = Vec::with_capacity(candidates[si].len());
                let mut kept_keys = Vec::with_capacity(candidates[si].len());
                for (&ri, key) in candidates[si].iter().zip(std::mem::take(&mut keys[si])) {
                    let row = &rows[ri];
                    let orphan = spec.foreign_keys().iter().find(|fk| {
                        spec.column_index(fk.column()).is_some_and(|ci| {
                            missing.contains(&state.hasher.of(&(
                                fk.table(),
                                fk.referenced(),
                                &row.values[ci],
                            )))
                        })
                    });
                    match orphan {
                        Some(fk) => orphans.push(Rejection {
                            line: row.line,
                            type_name: Some(spec.name().to_owned()),
                            field: Some(fk.column().to_owned()),
                            reason: format!(
                                "unknown {}: its row in this file was not imported",
                                fk.column()
                            ),
                        }),
                        None => {
                            kept.push(ri);
                            kept_keys.push(key);
                        }
                    }
                }
                candidates[si] = kept;
                keys[si] = kept_keys;
                if !orphans.is_empty() {
                    let n = orphans.len() as u64;
                    state.report.rejected += n;
                    state.counts[si].rejected += n;
                    state.report.rejections.extend(orphans);
                    self.settle_rejections(true, sink, state)
                        .await
                        .map_err(db)?;
                }
                if candidates[si].is_empty() {
                    continue;
                }
            }
            let parts = spec
                .key()
                .iter()
                .filter_map(|k| {
                    spec.column_index(k.column()).map(|ci| {
                        LookupPart::from_column(&spec.columns()[ci], k.normalise(), k.column())
                    })
                })
                .collect();
            let lookup = Lookup {
                table: spec.table(),
                parts,
                filter: spec.filter(),
                keys: &keys[si],
            };
            let found: HashSet<usize> = sink.find(&lookup).await.map_err(db)?.into_iter().collect();
            let mut fresh = Vec::with_capacity(candidates[si].len());
            for (i, &ri) in candidates[si].iter().enumerate() {
                if found.contains(&i) {
                    self.duplicate(state, si, rows[ri].line, DuplicateOf::Existing);
                } else {
                    fresh.push(ri);
                }
            }
            if fresh.is_empty() {
                continue;
            }
            if !self.writing(state) {
                state.imported(si, fresh.len());
                continue;
            }
            if defer {
                deferred.push((si, fresh));
                continue;
            }
            let values: Vec<&[Value]> =
                fresh.iter().map(|&ri| rows[ri].values.as_slice()).collect();
            let inserted = sink.insert(spec, &values).await.map_err(db)?;
            let skipped =
                self.settle_inserted(state, si, &lines_of(&rows, &hashes, &fresh), inserted);
            if !skipped.is_empty() {
                let skipped_rows: Vec<usize> = skipped.into_iter().map(|i| fresh[i]).collect();
                // A skipped row that others reference: is it there after all (a duplicate of
                // its key) or was it refused by another unique index? One lookup, only when
                // the backstop skipped something.
                for &(table, column) in &self.referenced {
                    let Some(ci) = spec.column_index(column).filter(|_| table == spec.table())
                    else {
                        continue;
                    };
                    let wanted: Vec<Vec<Value>> = skipped_rows
                        .iter()
                        .map(|&ri| vec![rows[ri].values[ci].clone()])
                        .collect();
                    let lookup = Lookup {
                        table,
                        parts: vec![LookupPart::from_column(
                            &spec.columns()[ci],
                            Normalise::Exact,
                            column,
                        )],
                        filter: None,
                        keys: &wanted,
                    };
                    let found: HashSet<usize> =
                        sink.find(&lookup).await.map_err(db)?.into_iter().collect();
                    for (i, v) in wanted.iter().enumerate() {
                        if !found.contains(&i) {
                            let h = state.hasher.of(&(table, column, &v[0]));
                            state.brought.remove(&h);
                            missing.insert(h);
                        }
                    }
                }
            }
        }
        if !deferred.is_empty() {
            // An idle forked sink, or a new fork: `chunk` settled pending writes down to
            // fewer than `max`, so the forks never outnumber `max`.
            let writer = writers
                .free
                .pop()
                .or_else(|| sink.fork())
                .ok_or_else(|| ImportError::Writer("the sink no longer forks".into()))?;
            let pending = self.start_write(first_line, &mut rows, &hashes, deferred, writer);
            writers.pending.push_back(pending);
        }
        if self.writing(state) && state.in_tx && !self.options.all_or_nothing {
            sink.commit().await.map_err(db)?;
            state.in_tx = false;
        }
        Ok(())
    }

    /// Whether no foreign key references the table of type `si`.
    fn is_leaf(&self, si: usize) -> bool {
        let table = self.registry.specs()[si].table();
        !self.referenced.iter().any(|&(t, _)| t == table)
    }

    /// Hands the fresh rows of `parts` (indices into `rows`, per type) to a write task on
    /// `writer`.
    fn start_write<S: Sink>(
        &self,
        first_line: u64,
        rows: &mut [Row],
        hashes: &[u128],
        parts: Vec<(usize, Vec<usize>)>,
        writer: S,
    ) -> Pending<S> {
        let mut pending = Vec::with_capacity(parts.len());
        let mut values = Vec::with_capacity(parts.len());
        for (si, fresh) in parts {
            pending.push(PendingPart {
                spec: si,
                fresh: lines_of(rows, hashes, &fresh),
            });
            values.push((
                si,
                fresh
                    .iter()
                    .map(|&ri| std::mem::take(&mut rows[ri].values))
                    .collect(),
            ));
        }
        let task = tokio::spawn(
            write_chunk(writer, Arc::clone(&self.registry), values)
                .instrument(tracing::Span::current()),
        );
        Pending {
            first_line,
            parts: pending,
            task,
        }
    }

    /// Waits for the oldest pending write and counts what it inserted.
    async fn settle_oldest<S: Sink>(&self, writers: &mut Writers<S>, state: &mut State) {
        let Some(mut pending) = writers.pending.pop_front() else {
            return;
        };
        // By reference: `Pending` aborts its task when dropped, which is a no-op once done.
        match (&mut pending.task).await {
            Ok(Written { sink, result }) => {
                writers.free.push(sink);
                match result {
                    Ok(None) => {
                        for part in &pending.parts {
                            state.imported(part.spec, part.fresh.len());
                        }
                    }
                    Ok(Some(inserted)) => {
                        for (part, keys) in pending.parts.iter().zip(inserted) {
                            self.settle_inserted(state, part.spec, &part.fresh, keys);
                        }
                    }
                    Err(source) => {
                        writers.failed.get_or_insert(ImportError::Database {
                            line: pending.first_line,
                            source,
                        });
                    }
                }
            }
            Err(e) => {
                writers
                    .failed
                    .get_or_insert(ImportError::Writer(e.to_string()));
            }
        }
    }

    /// Waits for every pending write; the first failure, if any.
    async fn drain<S: Sink>(
        &self,
        writers: &mut Writers<S>,
        state: &mut State,
    ) -> Result<(), ImportError> {
        while !writers.pending.is_empty() {
            self.settle_oldest(writers, state).await;
        }
        writers.failed.take().map_or(Ok(()), Err)
    }

    /// Counts the rows of type `si` an insert brought (`inserted`: their keys as returned)
    /// out of `fresh` (line and key hash of each row sent); rows the ON CONFLICT backstop
    /// skipped are duplicates of rows another writer brought meanwhile. Returns their
    /// indices into `fresh`.
    fn settle_inserted(
        &self,
        state: &mut State,
        si: usize,
        fresh: &[(u64, u128)],
        inserted: Vec<Vec<Value>>,
    ) -> Vec<usize> {
        let inserted_len = inserted.len().min(fresh.len());
        state.imported(si, inserted_len);
        if inserted_len == fresh.len() {
            return Vec::new();
        }
        let spec = &self.registry.specs()[si];
        let mut returned: HashMap<u128, usize> = HashMap::new();
        for key in inserted {
            let key: Vec<Value> = spec
                .key()
                .iter()
                .zip(&key)
                .map(|(k, v)| k.apply(v))
                .collect();
            *returned.entry(state.hasher.of(&(si, &key))).or_default() += 1;
        }
        // Unmatched rows are the skipped ones; cap at the skipped count in case a database
        // normalises a key differently from `KeyPart::apply`.
        let mut skipped = fresh.len() - inserted_len;
        let mut skipped_rows = Vec::new();
        for (i, &(line, hash)) in fresh.iter().enumerate() {
            match returned.get_mut(&hash) {
                Some(c) if *c > 0 => *c -= 1,
                _ if skipped > 0 => {
                    skipped -= 1;
                    self.duplicate(state, si, line, DuplicateOf::Existing);
                    skipped_rows.push(i);
                }
                _ => {}
            }
        }
        skipped_rows
    }

    async fn settle_rejections<S: Sink>(
        &self,
        chunk_rejected: bool,
        sink: &mut S,
        state: &mut State,
    ) -> Result<(), sqlx::Error> {
        if chunk_rejected && self.options.all_or_nothing && !state.rolled_back {
            if state.in_tx {
                sink.rollback().await?;
                state.in_tx = false;
            }
            state.rolled_back = true;
        }
        Ok(())
    }

    fn duplicate(&self, state: &mut State, si: usize, line: u64, of: DuplicateOf) {
        state.report.duplicates += 1;
        state.counts[si].duplicates += 1;
        state.report.duplicate_rows.push(DuplicateRow { line, of });
    }
}

/// The reading thread: parse and validate, send chunks, stop when the receiver is gone.
fn read(
    mut source: Source,
    registry: &Registry,
    hasher: &Hash128,
    chunk_size: usize,
    max_errors: Option<u64>,
    tx: &mpsc::Sender<Msg>,
) {
    let mut chunk = Vec::with_capacity(chunk_size);
    let mut rejected = 0u64;
    loop {
        let item = match source.next_item() {
            Ok(Some(item)) => item,
            Ok(None) => break,
            Err(e) => {
                if !chunk.is_empty()
                    && tx
                        .blocking_send(Msg::Chunk(std::mem::take(&mut chunk)))
                        .is_err()
                {
                    return;
                }
                let _ = tx.blocking_send(Msg::Failed(e));
                return;
            }
        };
        let parsed = match item {
            Item::Record(record) => {
                let type_name = record.type_name().map(str::to_owned);
                match validate(registry, record) {
                    Ok(row) => Parsed::Row(Prepared::new(registry, hasher, row)),
                    Err(problems) => Parsed::Bad {
                        type_name,
                        problems,
                    },
                }
            }
            Item::Malformed { line, reason } => Parsed::Bad {
                type_name: None,
                problems: vec![Rejection {
                    line,
                    type_name: None,
                    field: None,
                    reason,
                }],
            },
        };
        if matches!(parsed, Parsed::Bad { .. }) {
            rejected += 1;
        }
        chunk.push(parsed);
        let over = max_errors.is_some_and(|m| rejected > m);
        if chunk.len() >= chunk_size || over {
            if tx
                .blocking_send(Msg::Chunk(std::mem::replace(
                    &mut chunk,
                    Vec::with_capacity(chunk_size),
                )))
                .is_err()
            {
                return;
            }
            if over {
                let _ = tx.blocking_send(Msg::Stopped);
                return;
            }
        }
    }
    if !chunk.is_empty() {
        let _ = tx.blocking_send(Msg::Chunk(chunk));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn workers_come_from_the_environment_and_zero_is_refused() {
        let o = ImportOptions::from_env_with(env(&[("VITALS_IMPORT_WORKERS", "3")])).unwrap();
        assert_eq!(o.workers, 3);
        assert_eq!(
            ImportOptions::from_env_with(env(&[])).unwrap().workers,
            DEFAULT_WORKERS
        );
        for bad in ["0", "-1", "two", ""] {
            let e = ImportOptions::from_env_with(env(&[
                ("VITALS_IMPORT_WORKERS", bad),
                ("VITALS_IMPORT_CHUNK_SIZE", "0"),
            ]))
            .unwrap_err();
            assert_eq!(e.problems().len(), 2, "{e}");
            assert!(
                e.problems()
                    .iter()
                    .any(|p| p.starts_with("VITALS_IMPORT_WORKERS=")),
                "{e}"
            );
        }
        let registry = Registry::new([]).unwrap();
        assert!(matches!(
            Importer::new(registry, ImportOptions::new().workers(0)),
            Err(ImportError::Options(_))
        ));
    }
}
