//! The observer seam and what every monitored connection carries back to its handle: the
//! shared state (counters, histograms, held connections) and the [`QueryObserver`].
//!
//! Its own file so that the handle, the connections and the transactions all import it and
//! none of them imports another in a circle.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tracing::Span;

use crate::metrics::Histograms;
use crate::pgbouncer::wrap::TransactionPooling;
use crate::spans::{self, Peer};
use crate::stats::{micros, State};

/// One finished statement, as the handle reports it to [`QueryObserver::on_statement`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Statement<'a> {
    /// The statement text as written by the host (placeholders, never bind values): raw, so
    /// it must be sanitised before it is logged or put on a span.
    pub sql: &'a str,
    /// Its time on its connection, without the wait for the connection.
    pub elapsed: Duration,
    /// Rows returned or, for a statement that returns none, rows affected.
    pub rows: u64,
    /// The error, when it failed.
    pub error: Option<&'a sqlx::Error>,
    /// The statement's span (see `spans.rs`: OpenTelemetry's database conventions), still
    /// open, with the engine, database and server recorded, and the rows and `error.type`
    /// too unless the observer [records the span's end](QueryObserver::records_span_end)
    /// itself. The observer records `db.query.text` (sanitised), `db.operation.name`,
    /// `db.collection.name` and `otel.name` on it. Disabled (`Span::none()`) when no
    /// subscriber listens: check [`Span::is_disabled`] before computing what to record.
    pub span: &'a Span,
    /// `db.system.name` of the statement (`postgresql`, `sqlite`), for a metric's label.
    pub system: &'static str,
}

/// Sees every statement run through the handle: `&MonitoredPool` as an
/// [`Executor`](sqlx::Executor), and `&mut *conn` / `&mut *tx` on what
/// [`acquire`](crate::MonitoredPool::acquire) and [`begin`](crate::MonitoredPool::begin) return, the
/// transaction's own `BEGIN`, `COMMIT` and `ROLLBACK` included.
///
/// This is the seam a query logger plugs into; the pool crate knows nothing of the logger.
/// `sql` is the statement text as written by the host (with placeholders, never bind values);
/// `elapsed` is the statement's time on its connection, without the wait for the connection
/// (that is the acquire histogram); `rows` is the rows returned or, for a statement that
/// returns none, the rows affected.
pub trait QueryObserver: Send + Sync {
    /// Called once per statement, after it finished, failed or its stream was dropped.
    fn on_query(&self, sql: &str, elapsed: Duration, rows: u64, error: Option<&sqlx::Error>);

    /// Called once per statement instead of [`on_query`](Self::on_query) (which it calls by
    /// default), with the statement's open span: an observer that sanitises the text records
    /// it there, so the span carries `db.query.text` without a second sanitiser run.
    fn on_statement(&self, statement: &Statement<'_>) {
        self.on_query(
            statement.sql,
            statement.elapsed,
            statement.rows,
            statement.error,
        );
    }

    /// Whether [`on_statement`](Self::on_statement) records the statement's end on its span
    /// itself, rows and error included, with [`end_statement_span`](crate::end_statement_span)
    /// (one call to the subscriber for the whole end). When `true`, the handle records
    /// nothing on the span before calling it; when `false` (the default), it records the rows
    /// and the error first ([`finish_statement_span`](crate::finish_statement_span)), and the
    /// observer adds only its description, with `Span::record` (not `end_statement_span`,
    /// which would record the rows and error a second time: OpenTelemetry would export them
    /// twice). An observer that wraps another returns the wrapped one's answer.
    fn records_span_end(&self) -> bool {
        false
    }
}

pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) leak_threshold: Option<Duration>,
    pub(crate) benchmark: bool,
    /// PgBouncer's transaction mode: how statements run (`pgbouncer/wrap.rs`); `None` direct.
    pub(crate) pooling: Option<TransactionPooling>,
    pub(crate) peer: Peer,
    /// The acquire-wait and hold histograms, registered once.
    pub(crate) histograms: Histograms,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic (plain counters and maps).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where a statement's time goes: the benchmark histogram of the shared state and the
/// handle's observer. Every monitored connection carries the one of the handle it came from.
#[derive(Clone)]
pub(crate) struct Reporter {
    pub(crate) shared: Arc<Shared>,
    pub(crate) observer: Option<Arc<dyn QueryObserver>>,
}

impl Reporter {
    /// A span for a statement about to run, a child of the current span.
    pub(crate) fn span(&self) -> Span {
        self.shared.peer.span()
    }

    /// Runs `statement` (the text `sql`, returning no rows: a transaction's `BEGIN`, `COMMIT`
    /// or `ROLLBACK`) with a span of its own, timed, and reports it.
    pub(crate) async fn run<T>(
        &self,
        sql: &str,
        statement: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        let span = self.span();
        let started = Instant::now();
        let result = statement.await;
        self.observe(&span, sql, started.elapsed(), 0, result.as_ref().err());
        result
    }

    /// Reports one finished statement, whose span is `span` (still open).
    pub(crate) fn observe(
        &self,
        span: &Span,
        sql: &str,
        elapsed: Duration,
        rows: u64,
        error: Option<&sqlx::Error>,
    ) {
        if self.shared.benchmark {
            self.shared.lock().query.saturating_record(micros(elapsed));
        }
        let observer = self.observer.as_deref();
        if !observer.is_some_and(QueryObserver::records_span_end) {
            spans::finish_statement_span(span, rows, error);
        }
        if let Some(o) = observer {
            o.on_statement(&Statement {
                sql,
                elapsed,
                rows,
                error,
                span,
                system: self.shared.peer.system(),
            });
        }
    }
}
