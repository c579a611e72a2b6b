//! One query as handed in ([`QueryEvent`]), as kept ([`QueryRecord`]), and where slow ones
//! are sent ([`SlowQuerySink`]).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::fingerprint::Fingerprint;

/// One executed statement, as handed to [`QueryLogger::record`](crate::QueryLogger::record).
/// Borrowed, so recording never copies the raw statement; the logger keeps only its sanitised
/// form.
#[derive(Clone, Copy, Debug)]
pub struct QueryEvent<'a> {
    /// The statement as executed (raw: it is sanitised before anything keeps it).
    pub sql: &'a str,
    /// The model (e.g. `Student`); derived from the first table when `None`.
    pub model: Option<&'a str>,
    /// The operation (e.g. `SELECT`); derived from the statement when `None`.
    pub operation: Option<&'a str>,
    /// How long it took.
    pub duration: Duration,
    /// Rows returned or affected, if known.
    pub rows: Option<u64>,
    /// The error text, if it failed (scrubbed before it is kept).
    pub error: Option<&'a str>,
}

impl<'a> QueryEvent<'a> {
    /// An event for `sql` that took `duration`.
    #[must_use]
    pub fn new(sql: &'a str, duration: Duration) -> Self {
        Self {
            sql,
            model: None,
            operation: None,
            duration,
            rows: None,
            error: None,
        }
    }

    vitals_env::setter!(
        /// Sets the model.
        #[must_use]
        with_model => model: Some(&'a str);
        /// Sets the operation.
        #[must_use]
        with_operation => operation: Some(&'a str);
        /// Sets the row count.
        #[must_use]
        with_rows => rows: Some(u64);
        /// Sets the error text (raw; it is scrubbed).
        #[must_use]
        with_error => error: Some(&'a str)
    );
}

/// How slow a query was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlowTier {
    /// At or above the warning threshold.
    Warning,
    /// At or above the critical threshold.
    Critical,
}

/// A kept query: sanitised statement, scrubbed error, never a literal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueryRecord {
    /// When it was recorded.
    pub at: DateTime<Utc>,
    /// Its fingerprint.
    pub fingerprint: Fingerprint,
    /// The sanitised statement.
    pub sql: String,
    /// The model, given or derived.
    pub model: Option<String>,
    /// The operation, given or derived.
    pub operation: String,
    /// Duration in milliseconds.
    pub duration_ms: f64,
    /// Rows returned or affected, if known.
    pub rows: Option<u64>,
    /// The scrubbed error text, if it failed.
    pub error: Option<String>,
    /// The slow tier, if slow.
    pub tier: Option<SlowTier>,
}

/// Where slow-query alerts go. One method, so a pager, a metrics counter or a
/// channel is a few lines; [`TracingSink`] is the default.
pub trait SlowQuerySink: Send + Sync {
    /// Called once per query at or above the warning threshold, after it is recorded.
    fn on_slow_query(&self, query: &QueryRecord);
}

/// The default sink: a `warn` event for the warning tier and an `error` event
/// for the critical tier, target `vitals_querylog`, with the sanitised statement.
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingSink;

impl SlowQuerySink for TracingSink {
    fn on_slow_query(&self, q: &QueryRecord) {
        let fp = q.fingerprint.to_string();
        let model = q.model.as_deref().unwrap_or("-");
        match q.tier {
            Some(SlowTier::Critical) => tracing::error!(
                target: "vitals_querylog",
                fingerprint = %fp, model, operation = %q.operation, duration_ms = q.duration_ms,
                sql = %q.sql, "critical slow query"
            ),
            _ => tracing::warn!(
                target: "vitals_querylog",
                fingerprint = %fp, model, operation = %q.operation, duration_ms = q.duration_ms,
                sql = %q.sql, "slow query"
            ),
        }
    }
}

/// What the logger kept of one event, handed to N+1 scopes.
#[derive(Clone, Debug)]
pub(crate) struct Recorded {
    pub(crate) fingerprint: Fingerprint,
    pub(crate) sql: Arc<str>,
    pub(crate) model: Option<Arc<str>>,
    pub(crate) operation: Arc<str>,
    pub(crate) collection: Option<Arc<str>>,
    pub(crate) duration: Duration,
}

/// What the logger made of a statement it recorded: the fingerprint, the sanitised text, the
/// operation and the first table. A span or a metric of the same statement takes them from
/// here, so the statement is sanitised once for the logger, the span and the metrics alike.
///
/// Cloning is cheap (`Arc`s shared with the statistics entry).
#[derive(Clone, Debug)]
pub struct RecordedQuery {
    fingerprint: Fingerprint,
    sql: Arc<str>,
    operation: Arc<str>,
    collection: Option<Arc<str>>,
}

impl RecordedQuery {
    /// The statement's fingerprint.
    #[must_use]
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The sanitised statement (no literal survives): OpenTelemetry's `db.query.text`.
    #[must_use]
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The operation (`SELECT`, `INSERT`, `BEGIN`, ...): `db.operation.name`.
    #[must_use]
    pub fn operation(&self) -> &str {
        &self.operation
    }

    /// The first table as written, without its schema (`vaccinations`), when the statement
    /// names one: `db.collection.name`.
    #[must_use]
    pub fn collection(&self) -> Option<&str> {
        self.collection.as_deref()
    }
}

impl From<&Recorded> for RecordedQuery {
    fn from(r: &Recorded) -> Self {
        Self {
            fingerprint: r.fingerprint,
            sql: r.sql.clone(),
            operation: r.operation.clone(),
            collection: r.collection.clone(),
        }
    }
}

/// A query as the histories keep it: [`QueryRecord`]'s fields, the texts shared (`Arc`) with
/// the statistics entry so that keeping one under the logger's lock copies no string.
#[derive(Clone, Debug)]
pub(crate) struct Kept {
    pub(crate) at: DateTime<Utc>,
    pub(crate) fingerprint: Fingerprint,
    pub(crate) sql: Arc<str>,
    pub(crate) model: Option<Arc<str>>,
    pub(crate) operation: Arc<str>,
    pub(crate) duration: Duration,
    pub(crate) rows: Option<u64>,
    pub(crate) error: Option<Arc<str>>,
    pub(crate) tier: Option<SlowTier>,
}

impl Kept {
    pub(crate) fn to_public(&self) -> QueryRecord {
        QueryRecord {
            at: self.at,
            fingerprint: self.fingerprint,
            sql: self.sql.to_string(),
            model: self.model.as_deref().map(str::to_string),
            operation: self.operation.to_string(),
            duration_ms: ms(self.duration),
            rows: self.rows,
            error: self.error.as_deref().map(str::to_string),
            tier: self.tier,
        }
    }
}

/// Milliseconds to the microsecond: a 16-digit fraction in a log line is noise, and long
/// digit runs can look like card numbers to a PHI scanner.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}
