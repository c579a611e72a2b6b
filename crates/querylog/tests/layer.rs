//! Tests of `SqlxQueryLayer`: sqlx-shaped events become sanitised logger
//! events, root spans are N+1 scopes, and the output filter hides raw SQL.
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;
use tracing_subscriber::Layer;
use vitals_querylog::{LoggerConfig, QueryLogger, ScopeSpans, SqlxQueryLayer};

/// Captures every event it is given as text (target, message and fields).
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={:?}", field.name(), value));
    }
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields(event.metadata().target().to_string());
        event.record(&mut f);
        self.0.lock().unwrap().push(f.0);
    }
}

/// Emits an event shaped exactly like sqlx-core 0.8.6's `QueryLogger::finish`.
fn sqlx_event(sql: &str, rows_returned: u64, secs: f64) {
    let summary: String = sql.split_whitespace().take(4).collect::<Vec<_>>().join(" ");
    let (summary, statement) = if summary == sql {
        (summary, String::new())
    } else {
        (format!("{summary} …"), format!("\n\n{sql}\n"))
    };
    let elapsed = std::time::Duration::from_secs_f64(secs);
    tracing::debug!(
        target: "sqlx::query",
        summary,
        db.statement = statement,
        rows_affected = 0u64,
        rows_returned,
        ?elapsed,
        elapsed_secs = secs,
    );
}

/// `n` sqlx events of one lookup, `SELECT * FROM allergies WHERE {column} = {id}` for ids
/// from 0: one fingerprint, a different literal each time.
fn allergy_lookups(column: &str, n: u32) {
    for id in 0..n {
        sqlx_event(
            &format!("SELECT * FROM allergies WHERE {column} = {id}"),
            1,
            0.001,
        );
    }
}

#[test]
fn sqlx_events_become_sanitised_logger_events() {
    let logger = QueryLogger::new(LoggerConfig::default());
    let subscriber = tracing_subscriber::registry().with(SqlxQueryLayer::new(logger.clone()));
    tracing::subscriber::with_default(subscriber, || {
        sqlx_event(
            "SELECT * FROM students WHERE email = 'ann@example.com'",
            1,
            0.002,
        );
        sqlx_event("SELECT 42", 1, 0.001);
        tracing::info!(target: "other", "not a query");
    });
    let recent = logger.recent_queries(10);
    assert_eq!(recent.len(), 2);
    assert_eq!(
        recent[0].sql, "SELECT ?",
        "a short statement comes in the summary"
    );
    assert_eq!(recent[1].sql, "SELECT * FROM students WHERE email = ?");
    assert_eq!(recent[1].rows, Some(1));
    assert_eq!(recent[1].duration_ms, 2.0);
    assert_eq!(recent[1].model.as_deref(), Some("Student"));
}

#[test]
fn root_span_is_an_n_plus_one_scope() {
    let logger = QueryLogger::new(LoggerConfig::default());
    let subscriber = tracing_subscriber::registry().with(SqlxQueryLayer::new(logger.clone()));
    tracing::subscriber::with_default(subscriber, || {
        let request = tracing::info_span!("request");
        let _enter = request.enter();
        let inner = tracing::info_span!("load_allergies");
        let _inner = inner.enter();
        allergy_lookups("student_id", 6);
    });
    let findings = logger.n_plus_one_findings();
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].scope, "request");
    assert_eq!(findings[0].count, 6);
}

#[test]
fn named_scope_spans_and_off() {
    let logger = QueryLogger::new(LoggerConfig::default());
    let layer = SqlxQueryLayer::new(logger.clone()).scopes(ScopeSpans::Named("batch"));
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for _ in 0..2 {
            let batch = tracing::info_span!("batch");
            let _e = batch.enter();
            allergy_lookups("id", 3);
        }
    });
    assert!(
        logger.n_plus_one_findings().is_empty(),
        "3 per batch is under 5"
    );

    let logger = QueryLogger::new(LoggerConfig::default());
    let layer = SqlxQueryLayer::new(logger.clone()).scopes(ScopeSpans::Off);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let span = tracing::info_span!("request");
        let _e = span.enter();
        allergy_lookups("id", 9);
    });
    assert!(logger.n_plus_one_findings().is_empty());
}

#[test]
fn output_filter_keeps_raw_sql_out() {
    let logger = QueryLogger::new(LoggerConfig::default());
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry()
        .with(
            capture
                .clone()
                .with_filter(SqlxQueryLayer::without_raw_sql()),
        )
        .with(SqlxQueryLayer::new(logger.clone()).with_filter(SqlxQueryLayer::interest()));
    tracing::subscriber::with_default(subscriber, || {
        sqlx_event("SELECT * FROM students WHERE ssn = '219-09-9999'", 1, 0.001);
        tracing::info!(target: "app", "hello");
    });
    let seen = capture.0.lock().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].starts_with("app"), "{seen:?}");
    assert_eq!(
        logger.statistics().total_queries,
        1,
        "the logger still saw it"
    );
}
