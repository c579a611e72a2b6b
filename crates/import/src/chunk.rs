//! One chunk through the named stages, all over [`PreparedRow`]s:
//!
//! `parse` (on the reading thread, [`crate::reader`]) → [`admit`](Pipeline::admit) →
//! [`find_references`](Pipeline::find_references) (one query per referenced table) →
//! per row in line order [`resolve_foreign_keys`](Pipeline::resolve_foreign_keys) then
//! [`deduplicate_in_file`](Pipeline::deduplicate_in_file) → per type, parents first,
//! [`reject_orphans`](Pipeline::reject_orphans) →
//! [`deduplicate_existing`](Pipeline::deduplicate_existing) → [`write`](Pipeline::write)
//! (here, or on a forked writer).
//!
//! A stage that decides a row's fate sets its [`Outcome`]; [`State::keep_pending`] counts it
//! and the row goes no further.

use std::collections::HashSet;
use std::sync::Arc;

use crate::error::ImportError;
use crate::keys::HashedSet;
use crate::options::ImportOptions;
use crate::reader::Chunk;
use crate::report::{DuplicateOf, Rejection};
use crate::row::{Outcome, PreparedRow};
use crate::sink::{Lookup, LookupPart, Sink};
use crate::spec::{Normalise, Registry, Value};
use crate::state::State;
use crate::writers::{self, Part, Writers};

/// What the stages need of an importer.
pub(crate) struct Pipeline<'a> {
    pub(crate) registry: &'a Arc<Registry>,
    /// (table, column) pairs some foreign key references.
    pub(crate) referenced: &'a [(&'static str, &'static str)],
    pub(crate) options: &'a ImportOptions,
}

impl Pipeline<'_> {
    fn writing(&self, state: &State) -> bool {
        !self.options.dry_run && !state.rolled_back
    }

    /// Whether no foreign key references the table of type `si`.
    fn is_leaf(&self, si: usize) -> bool {
        let table = self.registry.specs()[si].table();
        !self.referenced.iter().any(|&(t, _)| t == table)
    }

    /// Checks, de-duplicates and writes one chunk, in one transaction of its own (unless
    /// all-or-nothing), or hands it to a forked writer.
    pub(crate) async fn chunk<S: Sink>(
        &self,
        chunk: Chunk,
        sink: &mut S,
        writers: &mut Writers<S>,
        state: &mut State,
    ) -> Result<(), ImportError> {
        let first_line = chunk.first_line;
        let db = |source| ImportError::Database {
            line: first_line,
            source,
        };
        let rejected_before = state.report.rejected;
        let rows = self.admit(chunk, state);
        if rows.is_empty() {
            return self
                .settle_rejections(state.report.rejected > rejected_before, sink, state)
                .await
                .map_err(db);
        }
        // A chunk of leaf types only (no foreign key points at them) is written on a forked
        // sink while the next one is checked; its lookups run here, outside a transaction.
        let defer =
            writers.max > 0 && self.writing(state) && rows.iter().all(|r| self.is_leaf(r.spec));
        if defer {
            writers.make_room(state).await;
            if writers.failed.is_some() {
                // A chunk before this one failed: write nothing more.
                return Ok(());
            }
        } else if self.writing(state) && !state.in_tx {
            // Pending writes finish first: no more than `workers` connections at once, and a
            // failure among them surfaces before this chunk writes anything.
            writers.drain(state).await?;
            sink.begin().await.map_err(db)?;
            state.in_tx = true;
        }

        let found = self.find_references(&rows, sink, state).await.map_err(db)?;
        // In line order: a row accepted brings the values that later rows' foreign keys
        // may point at, so each row's keys are resolved before the next one's.
        let mut rows: Vec<PreparedRow> = rows
            .into_iter()
            .map(|row| {
                let row = self.resolve_foreign_keys(row, &found, state);
                self.deduplicate_in_file(row, state)
            })
            .collect();
        state.keep_pending(&mut rows);
        self.settle_rejections(state.report.rejected > rejected_before, sink, state)
            .await
            .map_err(db)?;

        // Parents the backstop skipped that do not exist after all (another unique index
        // refused them): hashes of (table, column, value), so their children are rejected
        // instead of failing the chunk on the foreign key.
        let mut missing = HashedSet::default();
        let mut deferred = Vec::new();
        for mut part in self.by_type(rows) {
            if !missing.is_empty() {
                let rejected = state.report.rejected;
                part.rows = self.reject_orphans(part.rows, &missing, state);
                if state.report.rejected > rejected {
                    self.settle_rejections(true, sink, state)
                        .await
                        .map_err(db)?;
                }
                if part.rows.is_empty() {
                    continue;
                }
            }
            part.rows = self
                .deduplicate_existing(part.spec, part.rows, sink, state, &mut missing)
                .await
                .map_err(db)?;
            if part.rows.is_empty() {
                continue;
            }
            if !self.writing(state) {
                for row in &mut part.rows {
                    row.outcome = Outcome::Imported;
                    state.settle(row);
                }
            } else if defer {
                deferred.push(part);
            } else {
                self.write(part, sink, state, &mut missing)
                    .await
                    .map_err(db)?;
            }
        }
        if !deferred.is_empty() {
            writers.start(sink, first_line, deferred, self.registry, &state.hasher)?;
        }
        if self.writing(state) && state.in_tx && !self.options.all_or_nothing {
            sink.commit().await.map_err(db)?;
            state.in_tx = false;
        }
        Ok(())
    }

    /// Counts what the reading thread sent: the records it refused are rejected here, the
    /// valid rows go on.
    fn admit(&self, chunk: Chunk, state: &mut State) -> Vec<PreparedRow> {
        for invalid in chunk.invalid {
            state.read(invalid.spec);
            state.reject(invalid.spec, invalid.problems);
        }
        for row in &chunk.rows {
            state.read(Some(row.spec));
        }
        chunk.rows
    }

    /// Which of the values the rows' foreign keys point at exist: one lookup per referenced
    /// (table, column), for values not already brought by earlier chunks. Returns their
    /// hashes, as [`PreparedRow::fk_hashes`] holds them.
    async fn find_references<S: Sink>(
        &self,
        rows: &[PreparedRow],
        sink: &mut S,
        state: &State,
    ) -> Result<HashedSet, sqlx::Error> {
        let specs = self.registry.specs();
        let mut exists = HashedSet::default();
        for &(table, column) in self.referenced {
            let mut wanted: Vec<Vec<Value>> = Vec::new();
            let mut wanted_hashes: Vec<u128> = Vec::new();
            let mut wanted_set = HashedSet::default();
            let mut part = None;
            for row in rows {
                let spec = &specs[row.spec];
                for (fk, h) in spec
                    .foreign_keys()
                    .iter()
                    .zip(&row.fk_hashes)
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
            let found = sink.find(&lookup).await?;
            exists.extend(found.into_iter().filter_map(|i| wanted_hashes.get(i)));
        }
        Ok(exists)
    }

    /// Rejects `row` when a foreign key points at a value neither brought by this import nor
    /// `found` in the database.
    fn resolve_foreign_keys(
        &self,
        mut row: PreparedRow,
        found: &HashedSet,
        state: &State,
    ) -> PreparedRow {
        let spec = &self.registry.specs()[row.spec];
        let mut problems = Vec::new();
        for (fk, h) in spec.foreign_keys().iter().zip(&row.fk_hashes) {
            // `None`: a NULL value (or a column the spec lacks), nothing to check.
            let known = h.is_none_or(|h| state.brought.contains(&h) || found.contains(&h));
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
            row.outcome = Outcome::Rejected(problems);
        }
        row
    }

    /// Marks a pending `row` a duplicate of an earlier line with the same natural key;
    /// otherwise remembers its key, and the values it brings for other rows' foreign keys.
    fn deduplicate_in_file(&self, mut row: PreparedRow, state: &mut State) -> PreparedRow {
        if !row.is_pending() {
            return row;
        }
        if let Some(&of) = state.seen[row.spec].get(&row.key_hash) {
            row.outcome = Outcome::Duplicate(DuplicateOf::Line(of));
            return row;
        }
        state.seen[row.spec].insert(row.key_hash, row.line);
        let spec = &self.registry.specs()[row.spec];
        for &(table, column) in self.referenced {
            if table == spec.table() {
                if let Some(ci) = spec.column_index(column) {
                    let h = state.hasher.reference(table, column, &row.values[ci]);
                    state.brought.insert(h);
                }
            }
        }
        row
    }

    /// The rows grouped by type, parents first, each group in line order.
    fn by_type(&self, rows: Vec<PreparedRow>) -> impl Iterator<Item = Part> {
        let mut parts: Vec<Part> = (0..self.registry.specs().len())
            .map(|spec| Part {
                spec,
                rows: Vec::new(),
            })
            .collect();
        for row in rows {
            parts[row.spec].rows.push(row);
        }
        parts.into_iter().filter(|p| !p.rows.is_empty())
    }

    /// Rejects the rows whose foreign key points at a `missing` parent: one this file
    /// brought but the database refused.
    fn reject_orphans(
        &self,
        mut rows: Vec<PreparedRow>,
        missing: &HashedSet,
        state: &mut State,
    ) -> Vec<PreparedRow> {
        for row in &mut rows {
            let spec = &self.registry.specs()[row.spec];
            let orphan = spec.foreign_keys().iter().find(|fk| {
                // A NULL foreign key points nowhere: never an orphan.
                spec.column_index(fk.column()).is_some_and(|ci| {
                    row.values[ci] != Value::Null
                        && missing.contains(&state.hasher.reference(
                            fk.table(),
                            fk.referenced(),
                            &row.values[ci],
                        ))
                })
            });
            if let Some(fk) = orphan {
                row.outcome = Outcome::Rejected(vec![Rejection {
                    line: row.line,
                    type_name: Some(spec.name().to_owned()),
                    field: Some(fk.column().to_owned()),
                    reason: format!(
                        "unknown {}: its row in this file was not imported",
                        fk.column()
                    ),
                }]);
            }
        }
        state.keep_pending(&mut rows);
        rows
    }

    /// Marks the rows (all of type `si`) whose natural key is already in the database as
    /// duplicates of it: one lookup. Such a row is not inserted, so the values it brought
    /// for other rows' foreign keys (an `id` when the natural key is another column) may not
    /// exist: those not in the database either are forgotten and go to `missing`
    /// ([`forget_absent`](Self::forget_absent)), unless a row still to be inserted brings
    /// them too.
    async fn deduplicate_existing<S: Sink>(
        &self,
        si: usize,
        mut rows: Vec<PreparedRow>,
        sink: &mut S,
        state: &mut State,
        missing: &mut HashedSet,
    ) -> Result<Vec<PreparedRow>, sqlx::Error> {
        let spec = &self.registry.specs()[si];
        let parts = spec
            .key()
            .iter()
            .filter_map(|k| {
                spec.column_index(k.column()).map(|ci| {
                    LookupPart::from_column(&spec.columns()[ci], k.normalise(), k.column())
                })
            })
            .collect();
        // The keys' last use: they move into the lookup.
        let keys: Vec<Vec<Value>> = rows
            .iter_mut()
            .map(|r| std::mem::take(&mut r.key))
            .collect();
        let lookup = Lookup {
            table: spec.table(),
            parts,
            filter: spec.filter(),
            keys: &keys,
        };
        // Indices into `keys`, hence into `rows`.
        let mut existing = false;
        for i in sink.find(&lookup).await? {
            if let Some(row) = rows.get_mut(i) {
                row.outcome = Outcome::Duplicate(DuplicateOf::Existing);
                existing = true;
            }
        }
        if existing {
            let skipped = |r: &&PreparedRow| matches!(r.outcome, Outcome::Duplicate(_));
            let kept = |r: &&PreparedRow| r.is_pending();
            let skipped: Vec<&PreparedRow> = rows.iter().filter(skipped).collect();
            let kept: Vec<&PreparedRow> = rows.iter().filter(kept).collect();
            self.forget_absent(si, &skipped, &kept, true, sink, state, missing)
                .await?;
        }
        state.keep_pending(&mut rows);
        Ok(rows)
    }

    /// Of the values the `skipped` rows (of type `si`, not inserted) brought for other rows'
    /// foreign keys, those neither brought by a `kept` row of the same part nor in the
    /// database: one lookup per referenced column of the type. They are forgotten from
    /// [`State::brought`] (a later chunk's rows pointing at them look them up, and are
    /// rejected as `unknown …`) and go to `missing` (this chunk's are rejected by
    /// [`reject_orphans`](Self::reject_orphans)).
    ///
    /// `by_key`: the rows were skipped because an existing row has their natural key, so a
    /// referenced column that is an exact part of that key holds a value that exists (the
    /// common case, a student known by its `id`): no lookup for it.
    #[allow(clippy::too_many_arguments)] // the stage's inputs, and the state it updates
    async fn forget_absent<S: Sink>(
        &self,
        si: usize,
        skipped: &[&PreparedRow],
        kept: &[&PreparedRow],
        by_key: bool,
        sink: &mut S,
        state: &mut State,
        missing: &mut HashedSet,
    ) -> Result<(), sqlx::Error> {
        let spec = &self.registry.specs()[si];
        for &(table, column) in self.referenced {
            let Some(ci) = spec.column_index(column).filter(|_| table == spec.table()) else {
                continue;
            };
            let in_key = spec
                .key()
                .iter()
                .any(|k| k.column() == column && k.normalise() == Normalise::Exact);
            if by_key && in_key {
                continue;
            }
            let held: HashedSet = kept
                .iter()
                .map(|r| state.hasher.reference(table, column, &r.values[ci]))
                .collect();
            let mut wanted: Vec<Vec<Value>> = Vec::new();
            let mut wanted_hashes: Vec<u128> = Vec::new();
            let mut wanted_set = HashedSet::default();
            // A NULL is no value another row can point at (a foreign key that is NULL
            // points nowhere and is not checked), so it is never looked up nor missing.
            for r in skipped.iter().filter(|r| r.values[ci] != Value::Null) {
                let v = &r.values[ci];
                let h = state.hasher.reference(table, column, v);
                if !held.contains(&h) && wanted_set.insert(h) {
                    wanted.push(vec![v.clone()]);
                    wanted_hashes.push(h);
                }
            }
            if wanted.is_empty() {
                continue;
            }
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
            let found: HashSet<usize> = sink.find(&lookup).await?.into_iter().collect();
            for (i, h) in wanted_hashes.into_iter().enumerate() {
                if !found.contains(&i) {
                    state.brought.remove(&h);
                    missing.insert(h);
                }
            }
        }
        Ok(())
    }

    /// Inserts `part` on `sink`, in the chunk's transaction, and counts its rows. A row the
    /// backstop skipped that others reference: is it there after all (a duplicate of its
    /// key) or was it refused by another unique index? One lookup, only when the backstop
    /// skipped something; the values not there go to `missing`.
    async fn write<S: Sink>(
        &self,
        mut part: Part,
        sink: &mut S,
        state: &mut State,
        missing: &mut HashedSet,
    ) -> Result<(), sqlx::Error> {
        writers::insert(sink, self.registry, &state.hasher, &mut part).await?;
        // After an insert, a duplicate is a row the backstop skipped. (A row inserted with
        // the same value is in the database, so the lookup finds the value.)
        let skipped: Vec<&PreparedRow> = part
            .rows
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Duplicate(_)))
            .collect();
        if !skipped.is_empty() {
            self.forget_absent(part.spec, &skipped, &[], false, sink, state, missing)
                .await?;
        }
        for row in &mut part.rows {
            state.settle(row);
        }
        Ok(())
    }

    /// In an all-or-nothing import, the first rejection rolls everything back (the rest is
    /// still checked, nothing more written).
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
}
