//! What the facade adds to each statement's span and metrics once the query logger has
//! sanitised it: the logger sanitises once, and the span's `db.query.text`, its name and the
//! statement histogram's labels all come from that one [`RecordedQuery`].
//!
//! The statement histogram is `vitals_db_statement_duration_seconds{system, operation,
//! collection, outcome}` (feature `metrics`): a bounded set of label values (at most
//! [`MAX_STATEMENT_SERIES`] series per process; past it a new statement counts under
//! `operation="_other", collection="_other"`), never a literal (the operation and the table come from the
//! sanitised text). When the host opts in (`DB_METRICS_FINGERPRINT=on`,
//! [`Config::metrics_fingerprint`](crate::Config::metrics_fingerprint)) it has a `fingerprint`
//! label too: the fingerprint of the sanitised statement (16 hex digits, the query report's),
//! for the first `DB_METRICS_FINGERPRINT_MAX` distinct statements an instance sees, and
//! `_other` for every later one; without the opt-in there is no such label.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tracing::Span;
use vitals_querylog::{Fingerprint, QueryEvent, QueryLogger, RecordedQuery};

use crate::Config;

/// At most this many `(system, operation, collection, outcome)` series of the statement
/// histogram; a statement of a new label set past it counts under `operation="_other",
/// collection="_other"`.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))] // read by the metrics only
pub const MAX_STATEMENT_SERIES: usize = 256;

/// The statement histogram's name.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))] // read by the metrics only
pub const STATEMENT_DURATION: &str = "vitals_db_statement_duration_seconds";

/// Whether a statement counts in the current N+1 scope: a host's statements do, an import's
/// (one of each per chunk, by design) do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scoped {
    Yes,
    No,
}

/// Records one statement in the query logger, which sanitises the text and scrubs the error
/// before keeping either, and returns what it made of it.
pub(crate) fn record(
    logger: &QueryLogger,
    sql: &str,
    elapsed: Duration,
    rows: u64,
    error: Option<&sqlx::Error>,
    scoped: Scoped,
) -> RecordedQuery {
    let error = error.map(ToString::to_string);
    let mut event = QueryEvent::new(sql, elapsed).with_rows(rows);
    if let Some(e) = error.as_deref() {
        event = event.with_error(e);
    }
    match scoped {
        Scoped::Yes => logger.record_query(event),
        Scoped::No => logger.record_batch_query(event),
    }
}

/// Records a statement's end on its span in one call: the rows and error, and the logger's
/// description: `db.query.text` (the sanitised text), `db.operation.name`,
/// `db.collection.name` and the span's name (`SELECT vaccinations`, or the operation alone
/// when the statement names no table).
pub(crate) fn end_span(span: &Span, q: &RecordedQuery, rows: u64, error: Option<&sqlx::Error>) {
    let description = vitals_pool::StatementDescription {
        text: q.sql(),
        operation: q.operation(),
        collection: q.collection(),
    };
    vitals_pool::end_statement_span(span, &description, rows, error);
}

/// The `fingerprint` label of one statement, when the host opted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(not(feature = "metrics"), allow(dead_code))] // read by the metrics only
pub(crate) enum FingerprintLabel {
    /// One of the first distinct statements: its sanitised text's fingerprint.
    Of(Fingerprint),
    /// A statement past the bound: `_other`.
    Other,
}

/// The statement histogram of one [`Vitals`](crate::Vitals): whether its statements carry the
/// `fingerprint` label, and which fingerprints have one of their own. Shared (`Arc`) by the
/// pool's observer and the importer's, so the bound holds for the instance.
pub(crate) struct StatementMetrics {
    /// `None`: no `fingerprint` label (the default). `Some`: at most `max` fingerprints keep
    /// their own; the set only grows, so a statement's label never changes.
    fingerprints: Option<Bounded>,
    /// The histogram of each statement seen, by engine, fingerprint and outcome, so that a
    /// statement seen before costs one map lookup: its labels (operation, table, fingerprint
    /// label) are a function of its sanitised text, which its fingerprint names, and of this
    /// instance's fingerprint set, which only grows. At most [`MAX_KNOWN_STATEMENTS`]; a
    /// statement past it takes the label lookup of `series::histogram` each time.
    #[cfg(feature = "metrics")]
    known: std::sync::RwLock<
        std::collections::HashMap<(&'static str, Fingerprint, bool), metrics::Histogram>,
    >,
}

impl std::fmt::Debug for StatementMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatementMetrics")
            .field("fingerprints", &self.fingerprints)
            .finish_non_exhaustive()
    }
}

/// At most this many statements keep their histogram handle in [`StatementMetrics`].
#[cfg(feature = "metrics")]
const MAX_KNOWN_STATEMENTS: usize = 4096;

#[derive(Debug)]
struct Bounded {
    max: usize,
    seen: Mutex<HashSet<Fingerprint>>,
}

impl StatementMetrics {
    /// As `config` says (`DB_METRICS_FINGERPRINT`, `DB_METRICS_FINGERPRINT_MAX`).
    pub(crate) fn new(config: &Config) -> Arc<Self> {
        let max = usize::try_from(config.metrics_fingerprint_max).unwrap_or(usize::MAX);
        Arc::new(Self {
            fingerprints: config.metrics_fingerprint.then(|| Bounded {
                max,
                seen: Mutex::new(HashSet::new()),
            }),
            #[cfg(feature = "metrics")]
            known: std::sync::RwLock::default(),
        })
    }

    /// The `fingerprint` label of `q`; `None` without the opt-in.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))] // read by the metrics only
    pub(crate) fn fingerprint_label(&self, q: &RecordedQuery) -> Option<FingerprintLabel> {
        let bounded = self.fingerprints.as_ref()?;
        let fingerprint = q.fingerprint();
        // A set of u64s: a panic while it is held leaves it consistent.
        let mut seen = bounded.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.contains(&fingerprint) {
            return Some(FingerprintLabel::Of(fingerprint));
        }
        if seen.len() < bounded.max {
            seen.insert(fingerprint);
            return Some(FingerprintLabel::Of(fingerprint));
        }
        Some(FingerprintLabel::Other)
    }

    /// Times one statement into the statement histogram (nothing without the `metrics`
    /// feature).
    pub(crate) fn record(
        &self,
        system: &'static str,
        q: &RecordedQuery,
        elapsed: Duration,
        ok: bool,
    ) {
        #[cfg(feature = "metrics")]
        {
            let seconds = elapsed.as_secs_f64();
            let key = (system, q.fingerprint(), ok);
            // Plain maps of handles: a panic while one is held leaves it consistent.
            let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(h) = known.get(&key) {
                h.record(seconds);
                return;
            }
            // Full: no write lock (it would block every reader) for a handle not kept.
            let full = known.len() >= MAX_KNOWN_STATEMENTS;
            drop(known);
            let h = series::histogram(system, q, self.fingerprint_label(q), ok);
            h.record(seconds);
            if full {
                return;
            }
            let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
            if known.len() < MAX_KNOWN_STATEMENTS {
                known.insert(key, h);
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (system, q, elapsed, ok);
    }
}

#[cfg(feature = "metrics")]
mod series {
    //! The statement histogram's handles, one per label set, kept so that a statement costs
    //! a map lookup rather than a key built and registered anew; bounded.

    use std::collections::HashMap;
    use std::sync::{Arc, OnceLock, PoisonError, RwLock};

    use metrics::Histogram;
    use vitals_querylog::RecordedQuery;

    use super::{FingerprintLabel, MAX_STATEMENT_SERIES, STATEMENT_DURATION};

    type Key = (
        &'static str,
        Arc<str>,
        Option<Arc<str>>,
        bool,
        Option<FingerprintLabel>,
    );

    fn handles() -> &'static RwLock<HashMap<Key, Histogram>> {
        static HANDLES: OnceLock<RwLock<HashMap<Key, Histogram>>> = OnceLock::new();
        HANDLES.get_or_init(|| RwLock::new(HashMap::new()))
    }

    pub(super) fn histogram(
        system: &'static str,
        q: &RecordedQuery,
        fingerprint: Option<FingerprintLabel>,
        ok: bool,
    ) -> Histogram {
        let key: Key = (
            system,
            Arc::from(q.operation()),
            q.collection().map(Arc::from),
            ok,
            fingerprint,
        );
        let map = handles();
        if let Some(h) = map.read().unwrap_or_else(PoisonError::into_inner).get(&key) {
            return h.clone();
        }
        let mut map = map.write().unwrap_or_else(PoisonError::into_inner);
        let key = if map.len() < MAX_STATEMENT_SERIES || map.contains_key(&key) {
            key
        } else {
            let other = fingerprint.map(|_| FingerprintLabel::Other);
            (
                system,
                Arc::from("_other"),
                Some(Arc::from("_other")),
                ok,
                other,
            )
        };
        map.entry(key.clone())
            .or_insert_with(|| {
                let (system, operation, collection, ok, fingerprint) = key;
                let mut labels = vec![
                    metrics::Label::from_static_parts("system", system),
                    metrics::Label::new("operation", operation.to_string()),
                    metrics::Label::new(
                        "collection",
                        collection.as_deref().unwrap_or("").to_owned(),
                    ),
                    metrics::Label::from_static_parts("outcome", if ok { "ok" } else { "error" }),
                ];
                match fingerprint {
                    Some(FingerprintLabel::Of(f)) => {
                        labels.push(metrics::Label::new("fingerprint", f.to_string()));
                    }
                    Some(FingerprintLabel::Other) => {
                        labels.push(metrics::Label::from_static_parts("fingerprint", "_other"));
                    }
                    None => {}
                }
                metrics::histogram!(STATEMENT_DURATION, labels)
            })
            .clone()
    }
}
