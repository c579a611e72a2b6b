//! The report's dashboard: independent reads run at once.

use chrono::{Duration, Utc};
use serde::Serialize;

use super::queries::{ActivityCounts, ChartData, RecentActivities};
use super::store::{health_off, Tables};
use crate::{Db, Error};

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

/// The nurse's dashboard over a [`Db`]. Cloning is cheap.
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
#[derive(Debug, Clone)]
pub struct Dashboard {
    db: Db,
    /// `None` when the school-health domain is off.
    tables: Option<Tables>,
}

impl Dashboard {
    /// A dashboard reading vitals' `tables` through `db`.
    pub fn new(db: Db, tables: Tables) -> Self {
        Dashboard {
            db,
            tables: Some(tables),
        }
    }

    /// A dashboard of a host that turned the school-health domain off.
    pub(crate) fn disabled(db: Db) -> Self {
        Dashboard { db, tables: None }
    }

    fn tables(&self) -> Result<&Tables, Error> {
        self.tables.as_ref().ok_or_else(health_off)
    }

    /// Recent medication doses, incidents and upcoming appointments (`limit` each), the three
    /// reads at once.
    ///
    /// # Errors
    /// The first failing read (scrubbed).
    pub async fn recent_activities(&self, limit: i64) -> Result<RecentActivities, Error> {
        let (t, now) = (self.tables()?, Utc::now());
        Ok(crate::with_db!(@call &self.db, super::queries => recent_activities(t, now, limit))?)
    }

    /// The same three reads one after another: the report's "before", kept for measuring.
    ///
    /// # Errors
    /// The first failing read (scrubbed).
    pub async fn recent_activities_sequential(
        &self,
        limit: i64,
    ) -> Result<RecentActivities, Error> {
        let (t, now) = (self.tables()?, Utc::now());
        Ok(
            crate::with_db!(@call &self.db, super::queries => recent_activities_sequential(t, now, limit))?,
        )
    }

    /// The four chart aggregates at once (`sequential = false`) or one after another.
    ///
    /// # Errors
    /// The first failing read (scrubbed).
    pub async fn chart_data(&self, sequential: bool) -> Result<ChartData, Error> {
        let (t, now) = (self.tables()?, Utc::now());
        Ok(crate::with_db!(@call &self.db, super::queries => chart_data(t, now, sequential))?)
    }

    /// The three activity counters at once (`sequential = false`) or one after another.
    ///
    /// # Errors
    /// The first failing read (scrubbed).
    pub async fn activity_counts(&self, sequential: bool) -> Result<ActivityCounts, Error> {
        let (t, now) = (self.tables()?, Utc::now());
        Ok(crate::with_db!(@call &self.db, super::queries => activity_counts(t, now, sequential))?)
    }

    /// The headline figures, each read at once and on its own; what succeeded is returned
    /// and each failure is named.
    pub async fn stats(&self) -> DashboardStats {
        let names = STAT_NAMES;
        let results: [Result<i64, String>; 5] = match self.tables() {
            Ok(t) => self
                .read_stats(t)
                .await
                .map(|r| r.map_err(|e| vitals_querylog::scrub_text(&e.to_string()))),
            Err(off) => std::array::from_fn(|_| Err(off.to_string())),
        };
        let mut failures = Vec::new();
        let mut values = [None; 5];
        for ((slot, stat), result) in values.iter_mut().zip(names).zip(results) {
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

    /// The five figures of [`stats`](Self::stats), in [`STAT_NAMES`]' order, read at once.
    async fn read_stats(&self, t: &Tables) -> [Result<i64, sqlx::Error>; 5] {
        let now = Utc::now();
        let since = (now - Duration::days(30)).date_naive();
        let sql = [
            "SELECT COUNT(*) FROM {s}students WHERE active = $1",
            "SELECT COUNT(DISTINCT student_id) FROM {s}allergies \
             WHERE active = $1 AND severity IN ('SEVERE', 'LIFE_THREATENING')",
            "SELECT COUNT(*) FROM {s}chronic_conditions WHERE status = 'ACTIVE'",
            "SELECT COUNT(*) FROM {s}vaccinations WHERE administered_on >= $1",
            "SELECT COUNT(*) FROM {s}appointments WHERE scheduled_at > $1 AND status = 'SCHEDULED'",
        ]
        .map(|template| t.sql(template));
        crate::with_db!(&self.db, |p| {
            let (a, b, c, d, e) = tokio::join!(
                sqlx::query_scalar::<_, i64>(&sql[0])
                    .bind(true)
                    .fetch_one(p),
                sqlx::query_scalar::<_, i64>(&sql[1])
                    .bind(true)
                    .fetch_one(p),
                sqlx::query_scalar::<_, i64>(&sql[2]).fetch_one(p),
                sqlx::query_scalar::<_, i64>(&sql[3])
                    .bind(since)
                    .fetch_one(p),
                sqlx::query_scalar::<_, i64>(&sql[4]).bind(now).fetch_one(p),
            );
            [a, b, c, d, e]
        })
    }
}

/// The figures of [`DashboardStats`], as [`StatFailure::stat`] names them.
const STAT_NAMES: [&str; 5] = [
    "active_students",
    "critical_allergies",
    "active_conditions",
    "vaccinations_last_30_days",
    "upcoming_appointments",
];
