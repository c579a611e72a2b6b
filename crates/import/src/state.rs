//! What an import keeps across chunks: the report being built, the per-type counts, the
//! keys seen and the values brought so far, and whether a transaction is open.

use std::time::Instant;

use crate::keys::{Hash128, HashedMap, HashedSet};
use crate::options::Progress;
use crate::report::{DuplicateRow, ImportReport, Rejection, TypeCounts};
use crate::row::{Outcome, PreparedRow};
use crate::spec::Registry;

/// Per-import state that lives across chunks.
pub(crate) struct State {
    pub(crate) report: ImportReport,
    counts: Vec<TypeCounts>,
    /// Natural key hash → first line, per type.
    pub(crate) seen: Vec<HashedMap<u64>>,
    /// [`Hash128::reference`]s of the values brought by this import, for foreign keys.
    pub(crate) brought: HashedSet,
    pub(crate) hasher: Hash128,
    pub(crate) in_tx: bool,
    pub(crate) rolled_back: bool,
}

impl State {
    /// The state of a new import of the `types` types of a registry.
    pub(crate) fn new(types: usize, dry_run: bool, hasher: Hash128) -> Self {
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
        report.rejections.sort_by_key(|r| r.line);
        report.duplicate_rows.sort_by_key(|d| d.line);
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
