//! Writing rows: the insert and its `ON CONFLICT DO NOTHING` backstop, and the forked
//! writers that write a chunk on a second connection while the next one is checked.
//!
//! An import dropped before it ends (its future cancelled) stops the writes it was waiting
//! for too: a task aborted mid-chunk drops its transaction, which rolls back, as a chunk
//! written on the caller's sink would. A chunk whose commit already went through stays.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tracing::Instrument as _;

use crate::error::ImportError;
use crate::keys::{Hash128, HashedMap};
use crate::report::DuplicateOf;
use crate::row::{Outcome, PreparedRow};
use crate::sink::Sink;
use crate::spec::{Registry, Value};
use crate::state::State;

/// The rows of one type that one write inserts.
pub(crate) struct Part {
    /// Index of their type in the registry.
    pub(crate) spec: usize,
    /// The rows, all pending, in line order.
    pub(crate) rows: Vec<PreparedRow>,
}

impl Part {
    fn values(&self) -> Vec<&[Value]> {
        self.rows.iter().map(|r| r.values.as_slice()).collect()
    }
}

/// Inserts `rows` (all of type `si`) and marks each [`Outcome::Imported`], or
/// [`Outcome::Duplicate`] of an existing row when the `ON CONFLICT` backstop skipped it:
/// another writer brought its key since the lookup.
pub(crate) async fn insert<S: Sink>(
    sink: &mut S,
    registry: &Registry,
    hasher: &Hash128,
    part: &mut Part,
) -> Result<(), sqlx::Error> {
    let spec = &registry.specs()[part.spec];
    let inserted = sink.insert(spec, &part.values()).await?;
    mark_inserted(registry, hasher, part, inserted);
    Ok(())
}

/// Marks the rows of `part` by the keys an insert returned (`inserted`, as stored): a row
/// whose key did not come back was skipped by the backstop.
fn mark_inserted(
    registry: &Registry,
    hasher: &Hash128,
    part: &mut Part,
    inserted: Vec<Vec<Value>>,
) {
    let inserted_len = inserted.len().min(part.rows.len());
    if inserted_len < part.rows.len() {
        let spec = &registry.specs()[part.spec];
        let mut returned: HashedMap<usize> = HashedMap::default();
        for key in inserted {
            let key: Vec<Value> = spec
                .key()
                .iter()
                .zip(&key)
                .map(|(k, v)| k.apply(v))
                .collect();
            *returned.entry(hasher.key(part.spec, &key)).or_default() += 1;
        }
        // Unmatched rows are the skipped ones; cap at the skipped count in case a database
        // normalises a key differently from `KeyPart::apply`.
        let mut skipped = part.rows.len() - inserted_len;
        for row in &mut part.rows {
            row.outcome = match returned.get_mut(&row.key_hash) {
                Some(c) if *c > 0 => {
                    *c -= 1;
                    Outcome::Imported
                }
                _ if skipped > 0 => {
                    skipped -= 1;
                    Outcome::Duplicate(DuplicateOf::Existing)
                }
                _ => Outcome::Imported,
            };
        }
    } else {
        for row in &mut part.rows {
            row.outcome = Outcome::Imported;
        }
    }
}

/// A chunk being written on a forked sink.
struct PendingWrite<S> {
    first_line: u64,
    task: JoinHandle<Written<S>>,
}

/// Aborting the task drops its transaction, which rolls back: see the module's comment.
impl<S> Drop for PendingWrite<S> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a write task gives back: its sink, and its parts with every row's outcome set
/// unless the write failed.
struct Written<S> {
    sink: S,
    parts: Vec<Part>,
    result: Result<(), sqlx::Error>,
}

/// The forked sinks and the chunks being written on them, oldest first.
pub(crate) struct Writers<S> {
    /// How many sinks may write at once; 0 when writes stay on the caller's sink.
    pub(crate) max: usize,
    free: Vec<S>,
    pending: VecDeque<PendingWrite<S>>,
    /// The first failure of a pending write (later ones only rolled back).
    pub(crate) failed: Option<ImportError>,
}

impl<S: Sink> Writers<S> {
    /// Up to `workers` chunks written at once on forks of `sink` (none when `parallel` is
    /// false or the sink does not fork).
    pub(crate) fn new(sink: &S, parallel: bool, workers: usize) -> Self {
        let first = if parallel { sink.fork() } else { None };
        let max = if first.is_some() { workers } else { 0 };
        Self {
            max,
            free: first.into_iter().collect(),
            pending: VecDeque::new(),
            failed: None,
        }
    }

    /// Statements sent by the forked sinks that came back (all, once drained).
    pub(crate) fn statements(&self) -> u64 {
        self.free.iter().map(Sink::statements).sum()
    }

    /// Waits until fewer than `max` chunks are being written, so the lookups of the next
    /// one and the pending writes use at most `max` connections.
    pub(crate) async fn make_room(&mut self, state: &mut State) {
        while self.pending.len() >= self.max {
            self.settle_oldest(state).await;
        }
    }

    /// Hands `parts` to a write task on an idle forked sink, or a new fork of `sink`:
    /// [`make_room`](Self::make_room) came first, so the forks never outnumber `max`.
    pub(crate) fn start(
        &mut self,
        sink: &S,
        first_line: u64,
        parts: Vec<Part>,
        registry: &Arc<Registry>,
        hasher: &Hash128,
    ) -> Result<(), ImportError> {
        let writer = self
            .free
            .pop()
            .or_else(|| sink.fork())
            .ok_or_else(|| ImportError::Writer("the sink no longer forks".into()))?;
        let task = tokio::spawn(
            write_chunk(writer, Arc::clone(registry), hasher.clone(), parts)
                .instrument(tracing::Span::current()),
        );
        self.pending.push_back(PendingWrite { first_line, task });
        Ok(())
    }

    /// Waits for the oldest pending write and counts what it inserted.
    async fn settle_oldest(&mut self, state: &mut State) {
        let Some(mut pending) = self.pending.pop_front() else {
            return;
        };
        // By reference: `PendingWrite` aborts its task when dropped, a no-op once done.
        match (&mut pending.task).await {
            Ok(Written {
                sink,
                mut parts,
                result,
            }) => {
                self.free.push(sink);
                match result {
                    Ok(()) => {
                        for row in parts.iter_mut().flat_map(|p| p.rows.iter_mut()) {
                            state.settle(row);
                        }
                    }
                    Err(source) => {
                        self.failed.get_or_insert(ImportError::Database {
                            line: pending.first_line,
                            source,
                        });
                    }
                }
            }
            Err(e) => {
                self.failed
                    .get_or_insert(ImportError::Writer(e.to_string()));
            }
        }
    }

    /// Waits for every pending write; the first failure, if any.
    pub(crate) async fn drain(&mut self, state: &mut State) -> Result<(), ImportError> {
        while !self.pending.is_empty() {
            self.settle_oldest(state).await;
        }
        self.failed.take().map_or(Ok(()), Err)
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
    hasher: Hash128,
    mut parts: Vec<Part>,
) -> Written<S> {
    let result = write_parts(&mut sink, &registry, &hasher, &mut parts).await;
    if result.is_err() {
        // Best effort: the error that matters is the insert's.
        let _ = sink.rollback().await;
    }
    Written {
        sink,
        parts,
        result,
    }
}

async fn write_parts<S: Sink>(
    sink: &mut S,
    registry: &Registry,
    hasher: &Hash128,
    parts: &mut [Part],
) -> Result<(), sqlx::Error> {
    sink.begin().await?;
    let mut all_in = true;
    for part in parts.iter() {
        let values = part.values();
        let n = sink
            .insert_count(&registry.specs()[part.spec], &values)
            .await?;
        if n < values.len() as u64 {
            all_in = false;
            break;
        }
    }
    if all_in {
        sink.commit().await?;
        for row in parts.iter_mut().flat_map(|p| p.rows.iter_mut()) {
            row.outcome = Outcome::Imported;
        }
        return Ok(());
    }
    sink.rollback().await?;
    sink.begin().await?;
    for part in parts.iter_mut() {
        insert(sink, registry, hasher, part).await?;
    }
    sink.commit().await
}
