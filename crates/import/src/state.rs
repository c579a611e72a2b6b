//! What an import keeps across chunks: the report being built, the per-type counts, the
//! keys seen and the values brought so far, and whether a transaction is open.

use std::time::Instant;

use crate::keys::{Hash128, HashedMap, HashedSet};
use crate::options::Progress;
use crate::report::{DuplicateRow, ImportReport, Rejection, TypeCounts, Warning};
use crate::row::{Outcome, PreparedRow};
use crate::spec::Registry;

/// Per-import state that lives across chunks.
pub(crate) struct State {
    pub(crate) report: ImportReport,
    counts: Vec<TypeCounts>,
    /// Natural key hash → first line, per type: one entry per valid row not a duplicate of
    /// an earlier line, kept for the whole import (in-file de-duplication spans chunks).
    ///
    /// Memory grows with the input, not the chunk: an entry is a `(u128, u64)`, 32 bytes
    /// (the `u128`'s 16-byte alignment pads the `u64`), plus std's one control byte per
    /// bucket, in a power-of-two number of buckets kept at most 7/8 full: 33 bytes per
    /// bucket, 38 to 75 bytes per row (8/7 to 16/7 buckets per entry). While a table grows
    /// the old one, half the size, is held too. 50 million rows of a type: 2^26 buckets,
    /// 2.06 GiB (see docs/import.md).
    pub(crate) seen: Vec<HashedMap<u64>>,
    /// [`Hash128::reference`]s of the values brought by this import, for foreign keys: one
    /// `u128` per referenced value of a row kept (a student's `id`), for the whole import;
    /// 17 bytes per bucket, 19 to 39 bytes per such row (50 million: 1.06 GiB), on top of
    /// its [`seen`](Self::seen) entry.
    pub(crate) brought: HashedSet,
    pub(crate) hasher: Hash128,
    pub(crate) in_tx: bool,
    pub(crate) rolled_back: bool,
    /// Entries each list of the report keeps.
    max_listed: usize,
}

impl State {
    /// The state of a new import of the `types` types of a registry.
    pub(crate) fn new(types: usize, dry_run: bool, max_listed: usize, hasher: Hash128) -> Self {
        Self {
            report: ImportReport {
                dry_run,
                ..ImportReport::default()
            },
            counts: vec![TypeCounts::default(); types],
            seen: vec![HashedMap::default(); types],
            brought: HashedSet::default(),
            hasher,
            in_tx: false,
            rolled_back: false,
            max_listed,
        }
    }

    /// Counts a row read, of type `spec` when known.
    pub(crate) fn read(&mut self, spec: Option<usize>) {
        self.report.total += 1;
        if let Some(si) = spec {
            self.counts[si].total += 1;
        }
    }

    /// Counts a refused row, of type `spec` when known, and records why.
    pub(crate) fn reject(&mut self, spec: Option<usize>, problems: Vec<Rejection>) {
        self.report.rejected += 1;
        if let Some(si) = spec {
            self.counts[si].rejected += 1;
        }
        self.report.rejections.extend(problems);
        bound(
            &mut self.report.rejections,
            self.max_listed,
            &mut self.report.rejections_not_listed,
            |r| r.line,
        );
    }

    /// Adds warnings to the report, as many as it lists.
    pub(crate) fn warn(&mut self, warnings: impl IntoIterator<Item = Warning>) {
        for w in warnings {
            if self.report.warnings.len() < self.max_listed {
                self.report.warnings.push(w);
            } else {
                self.report.truncated = true;
            }
        }
    }

    /// Counts `row` by its outcome (a pending row counts nothing). Its reasons, when it was
    /// rejected, move to the report.
    pub(crate) fn settle(&mut self, row: &mut PreparedRow) {
        let si = row.spec;
        match &mut row.outcome {
            Outcome::Pending => {}
            Outcome::Imported => {
                self.report.imported += 1;
                self.counts[si].imported += 1;
            }
            Outcome::Duplicate(of) => {
                self.report.duplicates += 1;
                self.counts[si].duplicates += 1;
                self.report.duplicate_rows.push(DuplicateRow {
                    line: row.line,
                    of: *of,
                });
                bound(
                    &mut self.report.duplicate_rows,
                    self.max_listed,
                    &mut self.report.duplicate_rows_not_listed,
                    |d| d.line,
                );
            }
            Outcome::Rejected(problems) => {
                let problems = std::mem::take(problems);
                self.reject(Some(si), problems);
            }
        }
    }

    /// Settles every row of `rows` that is no longer pending and keeps the others, in order.
    pub(crate) fn keep_pending(&mut self, rows: &mut Vec<PreparedRow>) {
        rows.retain_mut(|row| {
            self.settle(row);
            row.is_pending()
        });
    }

    /// The counts so far, for the progress callback.
    pub(crate) fn progress(&self, bytes_read: u64, bytes_total: Option<u64>) -> Progress {
        let r = &self.report;
        Progress {
            rows: r.total,
            imported: r.imported,
            duplicates: r.duplicates,
            rejected: r.rejected,
            bytes_read,
            bytes_total,
        }
    }

    /// The report of an import that ran to its end: rejections and duplicates in input
    /// order, a rolled-back import's rows counted as rejected, counts per type read.
    pub(crate) fn finish(
        self,
        registry: &Registry,
        queries: u64,
        started: Instant,
    ) -> ImportReport {
        let mut report = self.report;
        let mut counts = self.counts;
        // Chunks are processed type by type; report in input order (stable: fields stay in
        // column order).
        keep_first(
            &mut report.rejections,
            self.max_listed,
            &mut report.rejections_not_listed,
            |r| r.line,
        );
        keep_first(
            &mut report.duplicate_rows,
            self.max_listed,
            &mut report.duplicate_rows_not_listed,
            |d| d.line,
        );
        report.truncated |=
            report.rejections_not_listed > 0 || report.duplicate_rows_not_listed > 0;
        if self.rolled_back {
            report.rolled_back = true;
            report.rejected += report.imported;
            report.imported = 0;
            for c in &mut counts {
                c.rejected += c.imported;
                c.imported = 0;
            }
        }
        for (spec, counts) in registry.specs().iter().zip(counts) {
            if counts.total > 0 {
                report.by_type.insert(spec.name().to_owned(), counts);
            }
        }
        report.queries = queries;
        report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        report
    }
}

/// Keeps `list` under twice `max` entries (plus a little), so it costs bounded memory
/// whatever the input, while [`keep_first`] can still find the `max` of the first lines:
/// entries arrive almost in line order (a chunk's types one after the other, a forked
/// writer's rows late), so the cut is made on the sorted list, not on arrival.
fn bound<T>(list: &mut Vec<T>, max: usize, not_listed: &mut u64, line: impl Fn(&T) -> u64) {
    if list.len() >= max.saturating_mul(2).saturating_add(64) {
        keep_first(list, max, not_listed, line);
    }
}

/// Sorts `list` by line (stable: a row's fields stay in column order) and keeps the first
/// `max` entries, counting the others in `not_listed`.
fn keep_first<T>(list: &mut Vec<T>, max: usize, not_listed: &mut u64, line: impl Fn(&T) -> u64) {
    list.sort_by_key(line);
    if list.len() > max {
        *not_listed += (list.len() - max) as u64;
        list.truncate(max);
        list.shrink_to(max.saturating_mul(2).saturating_add(64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_lines_are_kept_and_the_rest_counted() {
        let mut list: Vec<u64> = Vec::new();
        let mut not_listed = 0;
        for line in (0..10_000u64).rev() {
            list.push(line);
            bound(&mut list, 10, &mut not_listed, |l| *l);
            assert!(list.len() < 2 * 10 + 64);
        }
        keep_first(&mut list, 10, &mut not_listed, |l| *l);
        assert_eq!(list, (0..10).collect::<Vec<_>>());
        assert_eq!(not_listed, 9_990);
    }
}
