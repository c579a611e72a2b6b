//! A `tracing` layer that turns sqlx's per-statement events into logger events.

use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::span::Id;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::filter::FilterFn;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::logger::QueryLogger;
use crate::record::QueryEvent;
use crate::scope::ScopeTracker;

/// The target of sqlx's per-statement events (sqlx-core's `QueryLogger`).
pub const SQLX_QUERY_TARGET: &str = "sqlx::query";

/// Which spans are N+1 detection scopes for [`SqlxQueryLayer`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScopeSpans {
    /// The root span of each event (e.g. tower-http's request span). Default.
    Root,
    /// The nearest enclosing span with this name.
    Named(&'static str),
    /// No N+1 detection.
    Off,
}

/// Turns sqlx's own per-statement `tracing` events (target `sqlx::query`) into
/// [`QueryLogger`] events, so any sqlx service gets sanitised statistics with
/// no code change; and counts them per scope span for N+1 detection.
///
/// sqlx emits one event per statement at its `log_statements` level (DEBUG by
/// default; `log_slow_statements` level, WARN, when slow) only when that level
/// is enabled for `sqlx::query`, with fields `summary` (first four words),
/// `db.statement` (the full text, empty when the summary is all of it),
/// `rows_affected`, `rows_returned`, `elapsed` and `elapsed_secs`. These raw
/// fields hold literals: keep every *other* layer from printing them with a
/// per-layer filter, [`SqlxQueryLayer::without_raw_sql`]:
///
/// ```no_run
/// use tracing_subscriber::prelude::*;
/// use vitals_querylog::{LoggerConfig, QueryLogger, SqlxQueryLayer};
///
/// let logger = QueryLogger::new(LoggerConfig::default());
/// tracing_subscriber::registry()
///     // The output layer never sees `sqlx::query` events...
///     .with(tracing_subscriber::fmt::layer().with_filter(SqlxQueryLayer::without_raw_sql()))
///     // ...and this layer sees only them (and spans, for N+1 scopes).
///     .with(SqlxQueryLayer::new(logger.clone()).with_filter(SqlxQueryLayer::interest()))
///     .init();
/// ```
///
/// Use per-layer filters (`.with_filter`) rather than one global `EnvFilter`:
/// a global filter that drops `sqlx::query` at DEBUG also keeps sqlx from
/// emitting the event for this layer. Do not turn statements off with
/// `ConnectOptions::log_statements(LevelFilter::Off)` when using this layer
/// (that silences the events it reads); do it when not using it, since sqlx
/// otherwise logs raw statements at DEBUG. A `log`-crate logger (e.g.
/// env_logger) also receives sqlx's raw statements: filter `sqlx::query` there.
#[derive(Clone, Debug)]
pub struct SqlxQueryLayer {
    logger: QueryLogger,
    scopes: ScopeSpans,
}

impl SqlxQueryLayer {
    /// A layer recording into `logger`, with root spans as N+1 scopes.
    #[must_use]
    pub fn new(logger: QueryLogger) -> Self {
        Self {
            logger,
            scopes: ScopeSpans::Root,
        }
    }

    /// Chooses which spans are N+1 scopes.
    #[must_use]
    pub fn scopes(mut self, scopes: ScopeSpans) -> Self {
        self.scopes = scopes;
        self
    }

    /// A per-layer filter for output layers: everything except `sqlx::query`
    /// events, whose fields carry raw SQL.
    #[must_use]
    pub fn without_raw_sql() -> FilterFn {
        FilterFn::new(not_sqlx_query as fn(&Metadata<'_>) -> bool)
    }

    /// A per-layer filter for this layer: `sqlx::query` events and spans.
    #[must_use]
    pub fn interest() -> FilterFn {
        FilterFn::new(sqlx_query_or_span as fn(&Metadata<'_>) -> bool)
    }
}

fn not_sqlx_query(m: &Metadata<'_>) -> bool {
    !(m.is_event() && m.target() == SQLX_QUERY_TARGET)
}

fn sqlx_query_or_span(m: &Metadata<'_>) -> bool {
    m.is_span() || m.target() == SQLX_QUERY_TARGET
}

#[derive(Default)]
struct SqlxFields {
    summary: String,
    statement: String,
    rows_affected: u64,
    rows_returned: u64,
    elapsed_secs: Option<f64>,
}

impl Visit for SqlxFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => value.clone_into(&mut self.summary),
            "db.statement" => value.clone_into(&mut self.statement),
            _ => {}
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "rows_affected" => self.rows_affected = value,
            "rows_returned" => self.rows_returned = value,
            _ => {}
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_u64(field, u64::try_from(value).unwrap_or(0));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_secs = Some(value);
        }
    }

    // `elapsed` (Debug) and the message are not needed; nothing else is kept.
    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {}
}

impl<S> Layer<S> for SqlxQueryLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if event.metadata().target() != SQLX_QUERY_TARGET {
            return;
        }
        let mut f = SqlxFields::default();
        event.record(&mut f);
        let statement = f.statement.trim();
        let sql = if statement.is_empty() {
            // The summary is the whole statement when `db.statement` is empty.
            f.summary.trim_end_matches('…').trim_end()
        } else {
            statement
        };
        let duration = f
            .elapsed_secs
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .unwrap_or_default();
        let rows = if f.rows_returned > 0 {
            f.rows_returned
        } else {
            f.rows_affected
        };
        let recorded = self
            .logger
            .record_inner(&QueryEvent::new(sql, duration).with_rows(rows));

        let scope_span = match &self.scopes {
            ScopeSpans::Off => None,
            ScopeSpans::Root => ctx.event_scope(event).and_then(|s| s.from_root().next()),
            ScopeSpans::Named(name) => ctx
                .event_scope(event)
                .and_then(|mut s| s.find(|span| span.name() == *name)),
        };
        if let Some(span) = scope_span {
            let mut ext = span.extensions_mut();
            if let Some(tracker) = ext.get_mut::<ScopeTracker>() {
                tracker.observe(&recorded);
            } else {
                let mut tracker = ScopeTracker::new(span.name());
                tracker.observe(&recorded);
                ext.insert(tracker);
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let tracker = span.extensions_mut().remove::<ScopeTracker>();
        if let Some(tracker) = tracker {
            self.logger.finish_scope(tracker);
        }
    }
}
