//! How an import runs: [`ImportOptions`], read from the environment or built with setters,
//! and the [`Progress`] it reports after every chunk.

use std::sync::Arc;

use vitals_env::{Env, Var};

/// Default number of rows per chunk (and per transaction).
pub const DEFAULT_CHUNK_SIZE: usize = 5000;

/// Largest number of rows per chunk: a chunk is held in memory (up to three of them at once)
/// and written in one transaction, so a larger one buys nothing and risks memory.
pub const MAX_CHUNK_SIZE: usize = 100_000;

/// Default number of chunks written at once (see [`ImportOptions::workers`]).
pub const DEFAULT_WORKERS: usize = 2;

/// Default number of entries each list of the report keeps (see [`ImportOptions::max_listed`]).
pub const DEFAULT_MAX_LISTED: usize = 1000;

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
/// [`Importer`](crate::Importer) checks it.
#[derive(Clone)]
#[must_use]
pub struct ImportOptions {
    pub(crate) chunk_size: usize,
    pub(crate) all_or_nothing: bool,
    pub(crate) max_errors: Option<u64>,
    pub(crate) dry_run: bool,
    pub(crate) workers: usize,
    pub(crate) max_listed: usize,
    pub(crate) progress: Option<ProgressFn>,
}

vitals_env::debug_fields!(ImportOptions as o {
    chunk_size,
    all_or_nothing,
    max_errors,
    dry_run,
    workers,
    max_listed,
    progress: o.progress.is_some(),
});

impl Default for ImportOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// Every variable, in the crate's own words of what is expected (a blank one reads as unset,
/// as in every other crate).
const VARS: &[Var<ImportOptions>] = vitals_env::vars!(builder ImportOptions {
    chunk_size: UsizeIn("VITALS_IMPORT_CHUNK_SIZE", 1, MAX_CHUNK_SIZE),
    max_errors: Described("VITALS_IMPORT_MAX_ERRORS", "a whole number of rejected rows", 0)
        => |o, n| o.max_errors(n as u64),
    workers: Described("VITALS_IMPORT_WORKERS", "a whole number of connections above 0", 1),
    max_listed: Described("VITALS_IMPORT_MAX_LISTED", "a whole number of report entries", 0),
});

impl ImportOptions {
    /// Defaults: chunks of [`DEFAULT_CHUNK_SIZE`], commit per chunk, no error limit, write,
    /// [`DEFAULT_WORKERS`] chunks written at once, [`DEFAULT_MAX_LISTED`] entries per list
    /// of the report.
    pub fn new() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            all_or_nothing: false,
            max_errors: None,
            dry_run: false,
            workers: DEFAULT_WORKERS,
            max_listed: DEFAULT_MAX_LISTED,
            progress: None,
        }
    }

    vitals_env::from_env_methods! {
        /// Options from `VITALS_IMPORT_CHUNK_SIZE`, `VITALS_IMPORT_MAX_ERRORS`,
        /// `VITALS_IMPORT_WORKERS` and `VITALS_IMPORT_MAX_LISTED`.
        ///
        /// # Errors
        /// [`ConfigError`](crate::ConfigError) listing every variable that is set but invalid
        /// (component `import`).
        component: "import",
        read: |env: &mut Env<'_>| Some(env.apply(Self::new(), VARS)),
    }

    vitals_env::setter!(
        /// Rows per chunk: per round of queries and per transaction, from 1 to
        /// [`MAX_CHUNK_SIZE`] (the [`Importer`](crate::Importer) refuses any other).
        chunk_size: usize
    );

    vitals_env::setter!(
        /// Any rejection rolls the whole import back (one transaction for the whole input).
        /// The rest of the input is still validated, so the report lists every problem.
        all_or_nothing: bool
    );

    /// Stops reading once more than `n` rows are rejected (`stopped_early` in the report).
    pub fn max_errors(mut self, n: u64) -> Self {
        self.max_errors = Some(n);
        self
    }

    vitals_env::setter!(
        /// Validates only: foreign keys and duplicates are checked, nothing is written.
        dry_run: bool
    );

    vitals_env::setter!(
        /// Chunks written at once, each on its own connection and transaction (default
        /// [`DEFAULT_WORKERS`]; 1 writes every chunk on the sink given to
        /// [`Importer::run`](crate::Importer::run)).
        ///
        /// A chunk whose rows are all of types no foreign key references (vaccinations,
        /// allergies… but not students) is written on a [forked](crate::Sink::fork) sink while
        /// the next chunk is read, checked and written: PostgreSQL then inserts on several cores.
        /// The lookups and the writes together use at most `value` connections. Each chunk commits
        /// on its own: when one fails, the chunks before it stay, it is rolled back, the chunks
        /// already being written beside it (at most `value - 1`, all after it) may still commit, and
        /// nothing later is written; a re-run brings the rest and reports the others as
        /// duplicates. All-or-nothing imports, dry runs and sinks that don't fork write on one
        /// connection.
        workers: usize
    );

    vitals_env::setter!(
        /// Entries each list of the report keeps: `rejections`, `duplicate_rows` and `warnings`
        /// (default [`DEFAULT_MAX_LISTED`]). The entries of the first lines are kept; the counts
        /// stay exact and the report says how many entries were left out, so the report's
        /// memory and size stay bounded whatever the input's.
        max_listed: usize
    );

    /// Calls `f` after every chunk.
    pub fn progress(mut self, f: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use vitals_env::pairs as env;

    #[test]
    fn workers_come_from_the_environment_and_zero_is_refused() {
        let o = ImportOptions::from_env_with(env(&[("VITALS_IMPORT_WORKERS", "3")])).unwrap();
        assert_eq!(o.workers, 3);
        assert_eq!(
            ImportOptions::from_env_with(env(&[])).unwrap().workers,
            DEFAULT_WORKERS
        );
        for bad in ["0", "-1", "two"] {
            let e = ImportOptions::from_env_with(env(&[
                ("VITALS_IMPORT_WORKERS", bad),
                ("VITALS_IMPORT_CHUNK_SIZE", "0"),
            ]))
            .unwrap_err();
            assert_eq!(e.problems().len(), 2, "{e}");
            assert!(
                e.problems()
                    .iter()
                    .any(|p| p.to_string().starts_with("VITALS_IMPORT_WORKERS=")),
                "{e}"
            );
        }
    }

    #[test]
    fn a_blank_variable_reads_as_unset_like_every_other_crate() {
        for blank in ["", "  "] {
            let e = ImportOptions::from_env_with(env(&[
                ("VITALS_IMPORT_WORKERS", blank),
                ("VITALS_IMPORT_CHUNK_SIZE", "0"),
            ]))
            .unwrap_err();
            assert_eq!(e.problems().len(), 1, "{e}");
            assert_eq!(e.problems()[0].variable, "VITALS_IMPORT_CHUNK_SIZE", "{e}");
            let o = ImportOptions::from_env_with(env(&[
                ("VITALS_IMPORT_WORKERS", blank),
                ("VITALS_IMPORT_CHUNK_SIZE", blank),
                ("VITALS_IMPORT_MAX_ERRORS", blank),
                ("VITALS_IMPORT_MAX_LISTED", blank),
            ]))
            .unwrap();
            assert_eq!(
                (o.workers, o.chunk_size, o.max_errors, o.max_listed),
                (
                    DEFAULT_WORKERS,
                    DEFAULT_CHUNK_SIZE,
                    None,
                    DEFAULT_MAX_LISTED
                )
            );
        }
    }

    #[test]
    fn every_bad_variable_is_named_with_its_value_and_what_was_expected() {
        let e = ImportOptions::from_env_with(env(&[
            ("VITALS_IMPORT_CHUNK_SIZE", "0"),
            ("VITALS_IMPORT_MAX_ERRORS", "many"),
            ("VITALS_IMPORT_WORKERS", " 2 "),
        ]))
        .unwrap_err();
        let missing = e.unmentioned(&[
            "import: VITALS_IMPORT_CHUNK_SIZE=\"0\": expected a whole number from 1 to 100000",
            "import: VITALS_IMPORT_MAX_ERRORS=\"many\": expected a whole number of rejected rows",
        ]);
        assert!(missing.is_empty(), "{missing:?} missing from {e}");
        assert_eq!(e.problems().len(), 2, "{e}");
        let o = ImportOptions::from_env_with(env(&[
            ("VITALS_IMPORT_CHUNK_SIZE", "100"),
            ("VITALS_IMPORT_MAX_ERRORS", "0"),
        ]))
        .unwrap();
        assert_eq!((o.chunk_size, o.max_errors), (100, Some(0)));
    }

    #[test]
    fn a_chunk_size_above_the_maximum_is_refused_by_name_and_range() {
        let o =
            ImportOptions::from_env_with(env(&[("VITALS_IMPORT_CHUNK_SIZE", "100000")])).unwrap();
        assert_eq!(o.chunk_size, MAX_CHUNK_SIZE);
        for bad in ["100001", "1000000000"] {
            let e = ImportOptions::from_env_with(env(&[("VITALS_IMPORT_CHUNK_SIZE", bad)]))
                .unwrap_err();
            assert_eq!(e.problems().len(), 1, "{e}");
            assert_eq!(e.problems()[0].variable, "VITALS_IMPORT_CHUNK_SIZE", "{e}");
            assert!(
                e.to_string()
                    .contains("expected a whole number from 1 to 100000"),
                "{e}"
            );
        }
    }

    #[test]
    fn max_listed_comes_from_the_environment() {
        let o = ImportOptions::from_env_with(env(&[])).unwrap();
        assert_eq!(o.max_listed, DEFAULT_MAX_LISTED);
        let o = ImportOptions::from_env_with(env(&[("VITALS_IMPORT_MAX_LISTED", "0")])).unwrap();
        assert_eq!(o.max_listed, 0);
        let e =
            ImportOptions::from_env_with(env(&[("VITALS_IMPORT_MAX_LISTED", "-1")])).unwrap_err();
        assert!(
            e.to_string().contains(
                "import: VITALS_IMPORT_MAX_LISTED=\"-1\": expected a whole number of report entries"
            ),
            "{e}"
        );
    }
}
