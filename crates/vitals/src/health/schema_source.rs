//! [`VitalsSchema`]: the health and dashboard sources over vitals' own tables (the default).

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::model::{Allergy, ChronicCondition, HealthSummary, Vaccination};
use super::queries::{ActivityCounts, ChartData, RecentActivities};
use super::source::{DashboardSource, HealthSource, SourceFuture, Stat, WarmPlan};
use super::store::Tables;
use crate::Db;

// Each `{s}` before a table name becomes the schema (see `Tables::sql`).

/// Students with the most recent health activity (a dose given, an incident, a past
/// appointment), active ones only, newest first.
const RECENT_ACTIVITY_SQL: &str = "SELECT r.student_id FROM ( \
       SELECT student_id, MAX(at) AS last_at FROM ( \
         SELECT student_id, administered_at AS at FROM {s}medication_logs \
         UNION ALL SELECT student_id, occurred_at AS at FROM {s}incident_reports \
         UNION ALL SELECT student_id, scheduled_at AS at FROM {s}appointments WHERE scheduled_at <= $1 \
       ) activity GROUP BY student_id \
     ) r JOIN {s}students s ON s.id = r.student_id \
     WHERE s.active = $2 ORDER BY r.last_at DESC LIMIT $3";
const CRITICAL_ALLERGY_SQL: &str = "SELECT DISTINCT student_id FROM {s}allergies \
     WHERE active = $1 AND severity IN ('SEVERE', 'LIFE_THREATENING')";
const ACTIVE_CONDITION_SQL: &str =
    "SELECT DISTINCT student_id FROM {s}chronic_conditions WHERE status = 'ACTIVE'";
const RECENT_VACCINATION_SQL: &str =
    "SELECT DISTINCT student_id FROM {s}vaccinations WHERE administered_on >= $1";

/// How far back a vaccination counts as recent for warming: 6 months.
const RECENT_VACCINATION_DAYS: i64 = 183;

/// The school-health reads over vitals' own tables (`vitals.students` … on PostgreSQL, where
/// [`Tables`] says), on PostgreSQL and SQLite alike: the SQL of [`queries`](super::queries).
/// What [`Vitals`](crate::Vitals) uses unless the host gives a source of its own.
///
/// Cloning is cheap (the schema's name).
#[derive(Debug, Clone)]
pub struct VitalsSchema {
    tables: Tables,
}

impl VitalsSchema {
    /// The reads of vitals' `tables`.
    pub fn new(tables: Tables) -> Self {
        VitalsSchema { tables }
    }

    /// Where the tables are.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    async fn plan(
        &self,
        db: &Db,
        now: DateTime<Utc>,
        recent: i64,
    ) -> Result<WarmPlan, sqlx::Error> {
        let since = (now - Duration::days(RECENT_VACCINATION_DAYS)).date_naive();
        let t = &self.tables;
        let (recent_sql, allergic_sql, chronic_sql, vaccinated_sql) = (
            t.sql(RECENT_ACTIVITY_SQL),
            t.sql(CRITICAL_ALLERGY_SQL),
            t.sql(ACTIVE_CONDITION_SQL),
            t.sql(RECENT_VACCINATION_SQL),
        );
        let (recent_students, critical_allergies, active_conditions, recent_vaccinations) =
            crate::with_db!(db, |p| {
                tokio::try_join!(
                    sqlx::query_scalar::<_, Uuid>(&recent_sql)
                        .bind(now)
                        .bind(true)
                        .bind(recent)
                        .fetch_all(p),
                    sqlx::query_scalar::<_, Uuid>(&allergic_sql)
                        .bind(true)
                        .fetch_all(p),
                    sqlx::query_scalar::<_, Uuid>(&chronic_sql).fetch_all(p),
                    sqlx::query_scalar::<_, Uuid>(&vaccinated_sql)
                        .bind(since)
                        .fetch_all(p),
                )
            })?;
        Ok(WarmPlan {
            recent_students,
            critical_allergies,
            active_conditions,
            recent_vaccinations,
        })
    }

    async fn count(&self, db: &Db, stat: Stat, now: DateTime<Utc>) -> Result<i64, sqlx::Error> {
        let since = (now - Duration::days(30)).date_naive();
        let sql = self.tables.sql(match stat {
            Stat::ActiveStudents => "SELECT COUNT(*) FROM {s}students WHERE active = $1",
            Stat::CriticalAllergies => {
                "SELECT COUNT(DISTINCT student_id) FROM {s}allergies \
                 WHERE active = $1 AND severity IN ('SEVERE', 'LIFE_THREATENING')"
            }
            Stat::ActiveConditions => {
                "SELECT COUNT(*) FROM {s}chronic_conditions WHERE status = 'ACTIVE'"
            }
            Stat::VaccinationsLast30Days => {
                "SELECT COUNT(*) FROM {s}vaccinations WHERE administered_on >= $1"
            }
            Stat::UpcomingAppointments => {
                "SELECT COUNT(*) FROM {s}appointments \
                 WHERE scheduled_at > $1 AND status = 'SCHEDULED'"
            }
        });
        crate::with_db!(db, |p| {
            let query = sqlx::query_scalar::<_, i64>(&sql);
            let query = match stat {
                Stat::ActiveStudents | Stat::CriticalAllergies => query.bind(true),
                Stat::ActiveConditions => query,
                Stat::VaccinationsLast30Days => query.bind(since),
                Stat::UpcomingAppointments => query.bind(now),
            };
            query.fetch_one(p).await
        })
    }
}

/// A read of the health cache or the dashboard: the engine's query of that name over vitals'
/// tables, with the method's arguments.
macro_rules! read {
    ($self:ident, $db:ident, $query:ident($($arg:expr),*)) => {{
        let t = &$self.tables;
        Box::pin(async move {
            Ok(crate::with_db!(@call $db, super::queries => $query(t, $($arg),*))?)
        })
    }};
}

impl HealthSource for VitalsSchema {
    fn health_summary<'a>(
        &'a self,
        db: &'a Db,
        student: Uuid,
    ) -> SourceFuture<'a, Option<HealthSummary>> {
        read!(self, db, health_summary(student))
    }

    fn vaccinations<'a>(&'a self, db: &'a Db, student: Uuid) -> SourceFuture<'a, Vec<Vaccination>> {
        read!(self, db, vaccinations(student))
    }

    fn allergies<'a>(&'a self, db: &'a Db, student: Uuid) -> SourceFuture<'a, Vec<Allergy>> {
        read!(self, db, allergies(student))
    }

    fn chronic_conditions<'a>(
        &'a self,
        db: &'a Db,
        student: Uuid,
    ) -> SourceFuture<'a, Vec<ChronicCondition>> {
        read!(self, db, chronic_conditions(student))
    }

    fn warm_plan<'a>(
        &'a self,
        db: &'a Db,
        now: DateTime<Utc>,
        recent: i64,
    ) -> SourceFuture<'a, WarmPlan> {
        Box::pin(async move { Ok(self.plan(db, now, recent).await?) })
    }
}

impl DashboardSource for VitalsSchema {
    fn recent_activities<'a>(
        &'a self,
        db: &'a Db,
        now: DateTime<Utc>,
        limit: i64,
        sequential: bool,
    ) -> SourceFuture<'a, RecentActivities> {
        let t = &self.tables;
        Box::pin(async move {
            Ok(if sequential {
                crate::with_db!(@call db, super::queries => recent_activities_sequential(t, now, limit))?
            } else {
                crate::with_db!(@call db, super::queries => recent_activities(t, now, limit))?
            })
        })
    }

    fn chart_data<'a>(
        &'a self,
        db: &'a Db,
        now: DateTime<Utc>,
        sequential: bool,
    ) -> SourceFuture<'a, ChartData> {
        read!(self, db, chart_data(now, sequential))
    }

    fn activity_counts<'a>(
        &'a self,
        db: &'a Db,
        now: DateTime<Utc>,
        sequential: bool,
    ) -> SourceFuture<'a, ActivityCounts> {
        read!(self, db, activity_counts(now, sequential))
    }

    fn stat<'a>(&'a self, db: &'a Db, stat: Stat, now: DateTime<Utc>) -> SourceFuture<'a, i64> {
        Box::pin(async move { Ok(self.count(db, stat, now).await?) })
    }
}
