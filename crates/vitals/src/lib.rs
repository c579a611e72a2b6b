//! vitals: the database layer of a school-health service, fast, observable and safe with PHI.
//!
//! This facade composes the four component crates for a host service and holds the only code
//! that knows the healthcare domain ([`health`]):
//!
//! - [`pool`] (`vitals-pool`): pool configuration, retry of transient errors, a pool monitor.
//! - [`querylog`] (`vitals-querylog`): PHI-safe query logging, fingerprints, slow tiers, N+1.
//! - [`cache`] (`vitals-cache`): L1 in-process LRU over L2 Redis, coherent and encrypted.
//! - [`import`] (`vitals-import`): streaming bulk import with one-query validation.
//!
//! [`Vitals`] owns one of each, configured from one [`Config`] (every crate's variables,
//! every bad one reported at once), with the pool's statements timed into the query logger.
//! The `http` feature (on by default) adds the health endpoints, `/metrics` and the cache
//! invalidation layer for write routes.
//!
//! What it leaves to others: serving HTTP beyond the health router, authentication and
//! authorisation, and the schema of any domain other than school health.
//!
//! # Example
//! ```no_run
//! # async fn example() -> Result<(), vitals::Error> {
//! use vitals::{Config, Vitals};
//! let vitals = Vitals::builder().config(Config::from_env()?).build().await?;
//! let student: uuid::Uuid = "7b0f4c1e-8a51-4b8e-9d6e-3f1d2c9a4b10".parse().unwrap();
//! // Through L1, then Redis, then the database; cached 5 minutes.
//! if let Some(summary) = vitals.health_cache().student_health_summary(student).await? {
//!     println!("{} active allergies", summary.allergies.len());
//! }
//! println!("{}", vitals.query_logger().report().to_text());
//! vitals.shutdown().await;
//! # Ok(()) }
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

/// The sqlx vitals is built with: a host writes its queries with `vitals::sqlx`, at the
/// version and with the features (PostgreSQL, SQLite, tokio, rustls, uuid, chrono) the
/// handle's executors implement, rather than guessing them (the `query!` macros expand to
/// `::sqlx` paths: a host using them depends on `sqlx` itself, at this version).
pub use sqlx;
pub use vitals_cache as cache;
pub use vitals_env as env;
pub use vitals_import as import;
pub use vitals_pool as pool;
pub use vitals_querylog as querylog;

#[cfg(feature = "http")]
mod body_deadline;
pub mod cache_history;
mod config;
mod db;
mod error;
#[cfg(feature = "http")]
mod error_response;
pub mod health;
#[cfg(feature = "http")]
pub mod http;
mod importing;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "http")]
mod query_scope;
#[cfg(feature = "http")]
mod read_scope;
#[cfg(feature = "http")]
mod serve;
mod telemetry;
mod vitals;

pub use config::{
    Config, DEFAULT_METRICS_FINGERPRINT_MAX, DEFAULT_SQLITE_URL, DEFAULT_UPLOAD_READ_TIMEOUT,
};
pub use db::{Db, Engine, Reads};
pub use error::{ConfigError, ConfigProblem, DatabaseError, DbErrorKind, Error};
pub use importing::ImportOutcome;
pub use vitals::{Vitals, VitalsBuilder};
/// Read-your-writes scopes (see [`Reads`] and [`pool::ReplicaRouter`]).
pub use vitals_pool::read_your_writes;

/// The README's Rust examples, compiled as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
