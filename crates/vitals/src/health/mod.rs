//! The school-health domain: the only part of vitals that knows about students.
//!
//! The schema (sqlx migrations for PostgreSQL and for the embedded SQLite, kept equivalent), the
//! row types, a deterministic synthetic school, and the import record specs. The cache, the
//! warmer and the dashboard read through [`HealthSource`] and [`DashboardSource`]: vitals'
//! schema ([`VitalsSchema`]) by default, or a host's own tables. Everything here holds
//! PHI: pass it to the component crates as opaque values, never log it.
//!
//! # Example
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use vitals::health::{self, SchoolGenerator};
//! let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
//! health::migrate_sqlite(&pool).await?;
//! let school = SchoolGenerator::new(200).generate();
//! let tables = health::Tables::unqualified(); // SQLite: `main`
//! health::load_school_sqlite(&pool, &tables, &school).await?;
//! let counts = health::table_counts_sqlite(&pool, &tables).await?;
//! assert_eq!(counts.students, 200);
//! # Ok(()) }
//! ```

#[cfg(feature = "http")]
pub mod api;
mod cache;
mod dashboard;
mod generate;
#[cfg(feature = "http")]
pub(crate) mod invalidate;
mod model;
pub mod queries;
pub mod records;
mod schema_source;
mod source;
mod store;
mod warm;

pub use cache::{
    student_group, tags, HealthData, HealthDataCache, CRITICAL_FAIL_SAFE, RECORDS_TTL, SUMMARY_TTL,
};
pub use dashboard::{Dashboard, DashboardStats, StatFailure};
pub use generate::{School, SchoolGenerator};
pub use model::*;
pub use queries::*;
pub use queries::{ActivityCounts, ChartData, LabelCount, RecentActivities};
pub use schema_source::VitalsSchema;
pub use source::{DashboardSource, HealthSource, SourceFuture, Stat, WarmPlan};
pub use store::*;
pub use warm::{HealthWarmer, NoWarming, RECENT_STUDENTS};

/// A text that is not one of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {type_name}; expected one of: {expected}")]
pub struct ParseEnumError {
    type_name: &'static str,
    expected: &'static str,
}

impl ParseEnumError {
    /// The enum's name, such as `AllergySeverity`.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// The accepted values, space-separated.
    pub fn expected(&self) -> &'static str {
        self.expected
    }
}
