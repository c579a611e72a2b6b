//! The report's dashboard: independent reads run at once.

use std::sync::Arc;

use chrono::Utc;
use serde::Serialize;

use super::queries::{ActivityCounts, ChartData, RecentActivities};
use super::schema_source::VitalsSchema;
use super::source::{DashboardSource, Stat};
use super::store::{health_off, Tables};
use crate::{Db, Error, Reads};

/// One dashboard figure that could not be read, named, with the (scrubbed) reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatFailure {
    /// The figure, such as `critical_allergies`.
    pub stat: &'static str,
    /// Why, scrubbed of PHI.
    pub error: String,
}

/// The dashboard's headline figures. Each is read on its own; one that fails is `None` and
/// named in `failures`, and the others still arrive (the report's `Promise.allSettled`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DashboardStats {
    /// Enrolled students.
    pub active_students: Option<i64>,
    /// Students with an active severe or life-threatening allergy.
    pub critical_allergies: Option<i64>,
    /// Active chronic conditions.
    pub active_conditions: Option<i64>,
    /// Vaccinations given in the last 30 days.
    pub vaccinations_last_30_days: Option<i64>,
    /// Appointments still to come.
    pub upcoming_appointments: Option<i64>,
    /// The figures that failed.
    pub failures: Vec<StatFailure>,
}

/// The nurse's dashboard over a [`Db`], reading through a [`DashboardSource`]: vitals' own
/// tables ([`VitalsSchema`], what [`new`](Self::new) builds) or the host's
/// ([`with_source`](Self::with_source)). Cloning is cheap.
///
/// When the host turned the school-health domain off (`VITALS_HEALTH=false`), every read
/// returns [`Error::Config`] naming `VITALS_HEALTH`, and [`stats`](Self::stats) names every
/// figure as failed; nothing reaches the database.
///
/// # Example
/// ```no_run
/// # async fn example(vitals: vitals::Vitals) -> Result<(), vitals::Error> {
/// let dashboard = vitals.dashboard();
/// let recent = dashboard.recent_activities(20).await?; // 3 queries at once
/// let stats = dashboard.stats().await; // never fails as a whole
/// for failure in &stats.failures {
///     eprintln!("{} unavailable: {}", failure.stat, failure.error);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Dashboard {
    db: Db,
    /// `None` when the school-health domain is off.
    source: Option<Arc<dyn DashboardSource>>,
    /// Where the reads go: a replica that replayed the scope's writes, or the primary.
    reads: Reads,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("db", &self.db)
            .field("on", &self.source.is_some())
            .finish_non_exhaustive()
    }
}

impl Dashboard {
    /// A dashboard reading vitals' `tables` through `db`.
    pub fn new(db: Db, tables: Tables) -> Self {
        Self::with_source(db, Arc::new(VitalsSchema::new(tables)))
    }

    /// A dashboard reading `source` (the host's tables, say) through `db`.
    pub fn with_source(db: Db, source: Arc<dyn DashboardSource>) -> Self {
        Dashboard {
            reads: Reads::primary(db.clone()),
            db,
            source: Some(source),
        }
    }

    /// A dashboard of a host that turned the school-health domain off.
    pub(crate) fn disabled(db: Db) -> Self {
        Dashboard {
            reads: Reads::primary(db.clone()),
            db,
            source: None,
        }
    }

    /// Reads through `reads` (the facade's replicas, with read-your-writes).
    pub(crate) fn with_reads(mut self, reads: Reads) -> Self {
        self.reads = reads;
        self
    }

    fn source(&self) -> Result<&dyn DashboardSource, Error> {
        self.source.as_deref().ok_or_else(health_off)
    }

    /// Recent medication doses, incidents and upcoming appointments (`limit` each), the three
    /// reads at once.
    ///
    /// # Errors
    /// The first failing read (scrubbed).
    pub async fn recent_activities(&self, limit: i64) -> Result<RecentActivities, Error> {
        let source = self.source()?;
        let now = Utc::now();
        let read = |db: Db| async move { source.recent_activities(&db, now, limit, false).await };
        self.reads.run(false, read).await
    }

    /// The same three reads one after another: the report's "before", kept for measuring.
    ///
    /// # Errors
    /// The first failing read (scrubbed).
    pub async fn recent_activities_sequential(
        &self,
        limit: i64,
    ) -> Result<RecentActivities, Error> {
        let source = self.source()?;
        let now = Utc::now();
        let read = |db: Db| async move { source.recent_activities(&db, now, limit, true).await };
        self.reads.run(false, read).await
    }

    /// The four chart aggregates at once (`sequential = false`) or one after another.
    ///
    /// # Errors
    /// The first failing read (scrubbed).
    pub async fn chart_data(&self, sequential: bool) -> Result<ChartData, Error> {
        let source = self.source()?;
        let now = Utc::now();
        let read = |db: Db| async move { source.chart_data(&db, now, sequential).await };
        self.reads.run(false, read).await
    }

    /// The three activity counters at once (`sequential = false`) or one after another.
    ///
    /// # Errors
    /// The first failing read (scrubbed).
    pub async fn activity_counts(&self, sequential: bool) -> Result<ActivityCounts, Error> {
        let source = self.source()?;
        let now = Utc::now();
        let read = |db: Db| async move { source.activity_counts(&db, now, sequential).await };
        self.reads.run(false, read).await
    }

    /// The headline figures, each read at once and on its own; what succeeded is returned
    /// and each failure is named.
    pub async fn stats(&self) -> DashboardStats {
        let results: [Result<i64, String>; 5] = match self.source() {
            Ok(source) => self
                .read_stats(source)
                .await
                .map(|r| r.map_err(|e| stat_error(&e))),
            Err(off) => std::array::from_fn(|_| Err(off.to_string())),
        };
        let mut failures = Vec::new();
        let mut values = [None; 5];
        for ((slot, stat), result) in values.iter_mut().zip(Stat::ALL).zip(results) {
            let stat = stat.name();
            match result {
                Ok(v) => *slot = Some(v),
                Err(error) => {
                    tracing::warn!(stat, error = %error, "dashboard figure unavailable");
                    failures.push(StatFailure { stat, error });
                }
            }
        }
        let [active_students, critical_allergies, active_conditions, vaccinations_last_30_days, upcoming_appointments] =
            values;
        DashboardStats {
            active_students,
            critical_allergies,
            active_conditions,
            vaccinations_last_30_days,
            upcoming_appointments,
            failures,
        }
    }

    /// The five figures of [`stats`](Self::stats), in [`Stat::ALL`]'s order, read at once.
    async fn read_stats(&self, source: &dyn DashboardSource) -> [Result<i64, Error>; 5] {
        let (db, now) = (&self.reads.consistent().await, Utc::now());
        let [a, b, c, d, e] = Stat::ALL.map(|stat| source.stat(db, stat, now));
        let (a, b, c, d, e) = tokio::join!(a, b, c, d, e);
        [a, b, c, d, e]
    }
}

/// A figure's failure as [`StatFailure::error`] says it: a database error's scrubbed message
/// alone (as before sources), anything else's scrubbed text.
fn stat_error(err: &Error) -> String {
    match err.as_database() {
        Some(db) => db.message().to_owned(),
        None => vitals_querylog::scrub_text(&err.to_string()),
    }
}
