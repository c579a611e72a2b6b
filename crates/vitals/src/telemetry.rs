//! What the facade adds to each statement's span and metrics once the query logger has
//! sanitised it: the logger sanitises once, and the span's `db.query.text`, its name and the
//! statement histogram's labels all come from that one [`RecordedQuery`].
//!
//! The statement histogram is `vitals_db_statement_duration_seconds{system, operation,
//! collection, outcome}` (feature `metrics`): a bounded set of label values (at most
//! [`MAX_STATEMENT_SERIES`] series per process; past it a new statement counts under
//! `operation="_other", collection="_other"`), never a literal (the operation and the table come from the
//! sanitised text).

use std::time::Duration;

use tracing::Span;
use vitals_querylog::{QueryEvent, QueryLogger, RecordedQuery};

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

/// Records the logger's description of a statement on its span: `db.query.text` (the
/// sanitised text), `db.operation.name`, `db.collection.name` and the span's name
/// (`SELECT vaccinations`, or the operation alone when the statement names no table).
pub(crate) fn describe_span(span: &Span, q: &RecordedQuery) {
    if span.is_disabled() {
        return;
    }
    span.record("db.query.text", q.sql());
    span.record("db.operation.name", q.operation());
    match q.collection() {
        Some(c) => {
            span.record("db.collection.name", c);
            span.record("otel.name", format!("{} {c}", q.operation()));
        }
        None => {
            span.record("otel.name", q.operation());
        }
    }
}

/// Times one statement into the statement histogram (nothing without the `metrics` feature).
pub(crate) fn statement_metrics(
    system: &'static str,
    q: &RecordedQuery,
    elapsed: Duration,
    ok: bool,
) {
    #[cfg(feature = "metrics")]
    series::histogram(system, q, ok).record(elapsed.as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = (system, q, elapsed, ok);
}

#[cfg(feature = "metrics")]
mod series {
    //! The statement histogram's handles, one per label set, kept so that a statement costs
    //! a map lookup rather than a key built and registered anew; bounded.

    use std::collections::HashMap;
    use std::sync::{Arc, OnceLock, PoisonError, RwLock};

    use metrics::Histogram;
    use vitals_querylog::RecordedQuery;

    use super::{MAX_STATEMENT_SERIES, STATEMENT_DURATION};

    type Key = (&'static str, Arc<str>, Option<Arc<str>>, bool);

    fn handles() -> &'static RwLock<HashMap<Key, Histogram>> {
        static HANDLES: OnceLock<RwLock<HashMap<Key, Histogram>>> = OnceLock::new();
        HANDLES.get_or_init(|| RwLock::new(HashMap::new()))
    }

    pub(super) fn histogram(system: &'static str, q: &RecordedQuery, ok: bool) -> Histogram {
        let key: Key = (
            system,
            Arc::from(q.operation()),
            q.collection().map(Arc::from),
            ok,
        );
        let map = handles();
        if let Some(h) = map.read().unwrap_or_else(PoisonError::into_inner).get(&key) {
            return h.clone();
        }
        let mut map = map.write().unwrap_or_else(PoisonError::into_inner);
        let key = if map.len() < MAX_STATEMENT_SERIES || map.contains_key(&key) {
            key
        } else {
            (system, Arc::from("_other"), Some(Arc::from("_other")), ok)
        };
        map.entry(key.clone())
            .or_insert_with(|| {
                let (system, operation, collection, ok) = key;
                metrics::histogram!(
                    STATEMENT_DURATION,
                    "system" => system,
                    "operation" => operation.to_string(),
                    "collection" => collection.as_deref().unwrap_or("").to_owned(),
                    "outcome" => if ok { "ok" } else { "error" },
                )
            })
            .clone()
    }
}
