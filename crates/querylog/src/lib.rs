//! A PHI-safe query logger for the vitals database layer: a SQL sanitiser that
//! masks every literal by construction (its own single-pass lexer for
//! PostgreSQL's lexical grammar, failing closed), a free-text scrubber for
//! errors and DETAIL lines with typed masks, stable keyed fingerprints, and a
//! [`QueryLogger`] with statistics per fingerprint (p50/p95/p99), slow tiers
//! through an alert trait, bounded history, N+1 detection per scope (a request,
//! a job: ambient across `.await`s with [`QueryLogger::in_scope`]) and a
//! report in text and JSON. [`SqlxQueryLayer`] feeds it from sqlx's own
//! `tracing` events with no code change.
//!
//! It does not time queries itself (sqlx or the caller does), parse SQL beyond
//! its lexical grammar, export metrics, or choose where logs go: it hands
//! sanitised records to `tracing` and to a [`SlowQuerySink`] you provide.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `layer` | on | `SqlxQueryLayer`, `ScopeSpans`, `SQLX_QUERY_TARGET`: a `tracing-subscriber` layer over sqlx's own events |
//!
//! With `default-features = false` the sanitiser, the scrubber, fingerprints and the
//! [`QueryLogger`] build without `tracing-subscriber` (their dependencies: `tracing`, `regex`,
//! `serde`, `siphasher`, `hdrhistogram`, `chrono` and tokio's `rt`).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use vitals_querylog::{sanitize_sql, LoggerConfig, QueryEvent, QueryLogger};
//!
//! # fn example() -> Result<(), vitals_querylog::Error> {
//! assert_eq!(
//!     sanitize_sql("SELECT * FROM students WHERE last_name = 'núñez' AND id IN (1, 2, 3)"),
//!     "SELECT * FROM students WHERE last_name = ? AND id IN (?)"
//! );
//!
//! let logger = QueryLogger::new(LoggerConfig::from_env()?);
//! {
//!     let scope = logger.scope("GET /students");
//!     for id in 0..6 {
//!         let sql = format!("SELECT * FROM allergies WHERE student_id = {id}");
//!         scope.record(QueryEvent::new(&sql, Duration::from_millis(2)));
//!     }
//! } // the scope ends: six of one statement make an N+1 finding
//! assert_eq!(logger.n_plus_one_findings()[0].count, 6);
//! println!("{}", logger.report().to_text());
//! # Ok(())
//! # }
//! # example().unwrap();
//! ```
//!
//! # Example: any sqlx service
//!
//! ```no_run
//! use tracing_subscriber::prelude::*;
//! use vitals_querylog::{LoggerConfig, QueryLogger, SqlxQueryLayer};
//!
//! # fn example() -> Result<(), vitals_querylog::Error> {
//! let logger = QueryLogger::new(LoggerConfig::from_env()?);
//! tracing_subscriber::registry()
//!     .with(tracing_subscriber::fmt::layer().with_filter(SqlxQueryLayer::without_raw_sql()))
//!     .with(SqlxQueryLayer::new(logger.clone()).with_filter(SqlxQueryLayer::interest()))
//!     .init();
//! let _summary = logger.spawn_summary(std::time::Duration::from_secs(300))?;
//! # Ok(())
//! # }
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod config;
mod describe;
mod fingerprint;
mod history;
#[cfg(feature = "layer")]
mod layer;
mod logger;
mod record;
mod report;
mod sanitize;
mod scope;
mod scrub;
mod stats;
mod summary;
mod texts;

pub use config::{
    LoggerConfig, LoggerConfigBuilder, ENV_FINGERPRINT_KEY, ENV_MAX_FINGERPRINTS,
    ENV_N_PLUS_ONE_THRESHOLD, ENV_N_PLUS_ONE_THRESHOLD_DB, ENV_RECENT, ENV_SLOW_CRITICAL_MS,
    ENV_SLOW_HISTORY, ENV_SLOW_WARN_MS, ENV_SUMMARY_SECS,
};
pub use fingerprint::{
    fingerprint, Fingerprint, Fingerprinter, ParseFingerprintError, DEFAULT_FINGERPRINT_KEY,
};
#[cfg(feature = "layer")]
pub use layer::{ScopeSpans, SqlxQueryLayer, SQLX_QUERY_TARGET};
pub use logger::{QueryLogger, ScopeGuard};
pub use record::{QueryEvent, QueryRecord, RecordedQuery, SlowQuerySink, SlowTier, TracingSink};
pub use report::{FingerprintStats, NPlusOneFinding, PerformanceReport, QueryStatistics};
pub use sanitize::sanitize_sql;
#[doc(hidden)]
pub use sanitize::sanitizer_runs_on_this_thread;
pub use scope::{scoped, Scope, Scoped};
pub use scrub::{sanitize_any, scrub_log_line, scrub_text};
pub use summary::SummaryHandle;
/// The configuration error and its problems are the workspace's shared ones, so the facade
/// merges them with every other crate's.
pub use vitals_env::{ConfigError, Problem as ConfigProblem};

/// The errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The summary thread could not be started.
    #[error("cannot start the query summary thread")]
    SpawnSummary(#[source] std::io::Error),
}

// The shared types cross threads: checked by every build, not only by the tests.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<(QueryLogger, ScopeGuard, Scope, Error, ConfigError)>();
    #[cfg(feature = "layer")]
    send_sync::<SqlxQueryLayer>();
};
