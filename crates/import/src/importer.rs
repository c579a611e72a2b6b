//! The [`Importer`] and one import's run: the reading thread feeds chunks to the pipeline
//! ([`crate::chunk`]), which writes them on the caller's sink or on forked writers; the run
//! ends by committing (or rolling back) and building the report.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tracing::Instrument;

use crate::chunk::Pipeline;
use crate::error::ImportError;
use crate::keys::{self, Hash128};
use crate::options::{ImportOptions, MAX_CHUNK_SIZE};
use crate::reader::{self, Msg, ReadTask};
use crate::report::{ImportReport, Warning};
use crate::sink::Sink;
use crate::source::{Source, TYPE_FIELD};
use crate::spec::{shown_name, Registry};
use crate::state::State;
use crate::writers::Writers;

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

impl Importer {
    /// An importer of the types of `registry`.
    ///
    /// # Errors
    /// [`ImportError::Options`] when the chunk size is 0 or above [`MAX_CHUNK_SIZE`], or the
    /// number of workers is 0.
    pub fn new(
        registry: impl Into<Arc<Registry>>,
        options: ImportOptions,
    ) -> Result<Self, ImportError> {
        if !(1..=MAX_CHUNK_SIZE).contains(&options.chunk_size) {
            return Err(ImportError::Options(format!(
                "chunk size must be from 1 to {MAX_CHUNK_SIZE}"
            )));
        }
        if options.workers == 0 {
            return Err(ImportError::Options("workers must be above 0".into()));
        }
        let registry = registry.into();
        let referenced = keys::referenced(&registry);
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
    ///
    /// The run is an `import` span (a child of the caller's), with its counts recorded at
    /// the end; each imported row counts in `vitals_import_rows_total{outcome}` (feature
    /// `metrics`).
    pub async fn run<S: Sink>(
        &self,
        source: Source,
        sink: &mut S,
    ) -> Result<ImportReport, ImportError> {
        let span = crate::metrics::span();
        let result = self
            .run_in_span(source, sink)
            .instrument(span.clone())
            .await;
        crate::metrics::finish(&span, &result);
        result
    }

    async fn run_in_span<S: Sink>(
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
        let header_warnings = self.unknown_columns(&source);
        let bytes = source.bytes_counter();
        let size = source.size();
        let (tx, mut rx) = mpsc::channel::<Msg>(1);
        let hasher = Hash128::new();
        let task = ReadTask {
            source,
            hasher: hasher.clone(),
            chunk_size: self.options.chunk_size,
            max_errors: self.options.max_errors,
        };
        let registry = Arc::clone(&self.registry);
        let reader = tokio::task::spawn_blocking(move || reader::read(task, &registry, &tx));

        let options = &self.options;
        let pipeline = Pipeline {
            registry: &self.registry,
            referenced: &self.referenced,
            options,
        };
        let mut state = State::new(
            self.registry.specs().len(),
            options.dry_run,
            options.max_listed,
            hasher,
        );
        state.warn(header_warnings);
        let parallel = options.workers > 1 && !options.all_or_nothing && !options.dry_run;
        let mut writers = Writers::new(sink, parallel, options.workers);
        let mut result = Ok(());
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Chunk(chunk) => {
                    if let Err(e) = pipeline.chunk(chunk, sink, &mut writers, &mut state).await {
                        result = Err(e);
                        break;
                    }
                    if writers.failed.is_some() {
                        break;
                    }
                    if let Some(f) = &options.progress {
                        f(&state.progress(bytes.load(Ordering::Relaxed), size));
                    }
                    if options
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
        // The reader ends as soon as its channel closes; its errors came through the channel,
        // its warnings (of what it read, however far) come back with it.
        match reader.await {
            Ok(warnings) => state.warn(warnings),
            Err(e) => result = result.and(Err(ImportError::Reader(e.to_string()))),
        }
        // Chunks still being written finish (those before a failure commit); a failure among
        // them came before anything the loop met, so it is the one reported.
        if let Err(e) = writers.drain(&mut state).await {
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
        let queries = sink.statements() + writers.statements();
        let report = state.finish(&self.registry, queries, started);
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
}

impl Importer {
    /// A warning for each column of a CSV header that no record type it may hold has (the
    /// source's fixed type, or else any registered type): its values are ignored, which
    /// the report says once, never with a value.
    ///
    /// The column is named by its cell only when [`shown_name`] shows it and the header
    /// names at least one known column; else by its position (`column 3`, which no cell
    /// shown can be). A file without a header row has its first data row read as the
    /// header, and those cells (names, dates of birth) must not reach the report.
    fn unknown_columns(&self, source: &Source) -> Vec<Warning> {
        let Some(headers) = source.headers() else {
            return Vec::new();
        };
        let fixed = source.fixed_type().and_then(|t| self.registry.get(t));
        let known = |name: &str| {
            name == TYPE_FIELD
                || match fixed {
                    Some(spec) => spec.column_index(name).is_some(),
                    None => self
                        .registry
                        .specs()
                        .iter()
                        .any(|spec| spec.column_index(name).is_some()),
                }
        };
        // A header naming no known column is more likely a row of data.
        let a_header = headers.iter().any(|h| known(h));
        let mut warnings = Vec::new();
        let mut unnamed = false;
        for (i, h) in headers.iter().enumerate() {
            if h.is_empty() {
                unnamed = true;
            } else if !known(h) {
                let field = match shown_name(h).filter(|_| a_header) {
                    Some(name) => name.to_owned(),
                    None => format!("column {}", i + 1),
                };
                warnings.push(Warning {
                    line: 1,
                    field: Some(field),
                    reason: "unknown column: its values are ignored".to_owned(),
                });
            }
        }
        if unnamed {
            warnings.push(Warning {
                line: 1,
                field: None,
                reason: "a column without a name: its values are ignored".to_owned(),
            });
        }
        warnings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_workers_or_chunk_size_are_refused() {
        for options in [
            ImportOptions::new().workers(0),
            ImportOptions::new().chunk_size(0),
            ImportOptions::new().chunk_size(MAX_CHUNK_SIZE + 1),
            ImportOptions::new().chunk_size(1_000_000_000),
        ] {
            let registry = Registry::new([]).unwrap();
            assert!(matches!(
                Importer::new(registry, options),
                Err(ImportError::Options(_))
            ));
        }
        let registry = Registry::new([]).unwrap();
        assert!(Importer::new(registry, ImportOptions::new().chunk_size(MAX_CHUNK_SIZE)).is_ok());
    }
}
