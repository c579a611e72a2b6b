//! Connection-pool configuration from the environment, retry of transient errors, and a pool
//! monitor that sees waiters.
//!
//! [`PoolConfig`] reads the report's variables (`DB_POOL_MIN`, `DB_POOL_MAX`,
//! `DB_ACQUIRE_TIMEOUT`, `DB_STATEMENT_TIMEOUT`, ...) with development and production
//! defaults, and opens a sqlx PostgreSQL pool whose every connection carries
//! `statement_timeout` and `idle_in_transaction_session_timeout`, or an embedded SQLite pool
//! (WAL, `busy_timeout`, foreign keys on). [`MonitoredPool`] wraps a sqlx pool: it counts
//! waiters exactly (a cancelled acquire never leaves the count high), times acquire and hold
//! into histograms, counts timeouts, cancellations and leaked connections, and is an
//! [`sqlx::Executor`] whose statements a [`QueryObserver`] can see. It is used the way sqlx's
//! pool is: [`begin`](MonitoredPool::begin) returns a [`MonitoredTransaction`] and
//! [`acquire`](MonitoredPool::acquire) a [`MonitoredConnection`], on which `&mut *tx` and
//! `&mut *conn` are executors that report every statement (`BEGIN`, `COMMIT` and `ROLLBACK`
//! included), and `&MonitoredPool` implements [`sqlx::Acquire`]. [`PoolMonitor`] samples any
//! [`PoolProbe`] (sqlx, bb8 or the monitored handle) into [`PoolMetrics`], raises and clears
//! [`PoolAlert`]s through an [`AlertSink`], and keeps history and a summary;
//! [`health_check`] grades `SELECT 1`. [`retry`](retry::retry) runs a unit of work again on
//! transient errors.
//!
//! What it leaves to others: logging statements and their text (the query logger, fed through
//! [`QueryObserver`]), HTTP endpoints (everything here is `serde::Serialize`), and where
//! `DATABASE_URL` comes from. It does not replace sqlx's pool; it wraps it.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `postgres` | on | `connect_postgres*`, PgBouncer modes and their check, `ReplicaRouter` (read replicas, read-your-writes), the handle's PostgreSQL impls; sqlx's PostgreSQL driver with TLS (rustls) |
//! | `sqlite` | on | `connect_sqlite`, the handle's SQLite impls; sqlx's SQLite driver (SQLite built in) |
//! | `bb8` | on | [`PoolProbe`] for a `bb8::Pool`, so the monitor watches one |
//! | `metrics` | off | histograms and gauges through the `metrics` facade (module `metrics`) |
//!
//! With `default-features = false` the monitored handle, the monitor, retry and the
//! configuration build on sqlx's core alone; add the engine you use.
//!
//! # Example
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use vitals_pool::{health_check, PoolConfig, PoolMonitor, TracingAlertSink};
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let config = PoolConfig::from_env()?;
//! let pool = config.connect_postgres_monitored("postgres://app@127.0.0.1/app").await?;
//! let monitor = PoolMonitor::spawn(
//!     pool.clone(),
//!     config.monitor_config(),
//!     Arc::new(TracingAlertSink),
//! );
//!
//! let rows = sqlx::query("SELECT 1").fetch_all(&pool).await?; // counted like any acquire
//! assert_eq!(rows.len(), 1);
//!
//! let report = health_check(&pool, Duration::from_secs(2)).await;
//! println!("{}", serde_json::to_string(&report)?);
//! println!("{}", serde_json::to_string(&monitor.summary())?);
//! monitor.stop().await;
//! # Ok(()) }
//! ```
//!
//! # Example: retry a transaction
//! The work must be safe to run again (here an absolute value, not `n = n - 1`). A commit
//! whose reply was lost is never run again: it comes back as
//! [`CommitOutcomeUnknown`] (SQLSTATE `08007`), since it may have landed.
//! ```no_run
//! # async fn example(pool: vitals_pool::MonitoredPool<sqlx::Postgres>) -> Result<(), vitals_pool::PoolError> {
//! use vitals_pool::retry::{retry, RetryPolicy};
//! let policy = RetryPolicy::new(3);
//! retry(&policy, || async {
//!     let mut tx = pool.begin().await?; // BEGIN, the UPDATE and COMMIT all reach the observer
//!     sqlx::query("UPDATE stock SET n = 41 WHERE id = 1").execute(&mut *tx).await?;
//!     tx.commit().await?;
//!     Ok::<_, vitals_pool::PoolError>(())
//! })
//! .await?;
//! # Ok(()) }
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod acquire;
mod builder;
mod by_id;
mod classify;
mod config;
mod connect;
mod connection;
mod env;
mod error;
mod executor;
mod handle;
mod health;
pub mod metrics;
mod monitor;
mod observer;
mod pgbouncer;
mod probe;
#[cfg(feature = "postgres")]
mod replica;
pub mod retry;
mod sample;
mod spans;
mod stats;
mod stream;
mod ticker;
mod transaction;

pub use builder::PoolConfigBuilder;
pub use classify::{is_commit_outcome_unknown, CommitOutcomeUnknown};
pub use config::{PoolConfig, Profile};
pub use connection::{MonitoredConnection, ObservedConnection};
pub use error::PoolError;
pub use executor::RowsAffected;
pub use handle::{MonitoredPool, MonitoredPoolBuilder};
pub use health::{health_check, HealthReport, HealthStatus, HealthTarget};
pub use monitor::{
    AlertKind, AlertSink, AlertState, MonitorConfig, PoolAlert, PoolMonitor, PoolSummary, Severity,
    TracingAlertSink,
};
pub use observer::{QueryObserver, Statement};
pub use pgbouncer::mode::PgBouncerMode;
#[cfg(feature = "postgres")]
pub use pgbouncer::{detect_pooling, PoolingCheck};
pub use probe::{PoolProbe, PoolState};
#[cfg(feature = "postgres")]
pub use replica::{
    in_read_scope, note_write, read_your_writes, Lsn, Read, ReadTarget, ReplicaConfig,
    ReplicaError, ReplicaReport, ReplicaRouter, ReplicaStatus, RouterStats, Unfit, WriteToken,
};
pub use retry::{is_transient, RetryPolicy};
pub use sample::PoolMetrics;
pub use spans::{
    end_statement_span, error_type, finish_statement_span, StatementDescription,
    STATEMENT_SPAN_TARGET,
};
pub use stats::{HandleStats, LatencySummary};
pub use transaction::MonitoredTransaction;
/// Masks the password of a URL before it is logged or put in an error.
pub use vitals_env::{mask_bad_url, mask_url};
/// The configuration error of [`PoolConfig::from_env`] and [`PoolConfigBuilder::build`]
/// (shared by every vitals crate), and one of its problems.
pub use vitals_env::{ConfigError, Problem as ConfigProblem};

// The shared types cross threads: checked by every build, not only by the tests.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<(PoolConfig, ConfigError, PoolError, PoolMonitor, PoolAlert)>();
    #[cfg(feature = "postgres")]
    send_sync::<(ReplicaRouter, Read<'static>, ReplicaError)>();
};
