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

/// The methods of a source that are each a read over vitals' tables, with the method's
/// arguments: `name(arg: Type, ...) -> Output` generates
/// `fn name<'a>(&'a self, db: &'a Db, arg: Type, ...) -> SourceFuture<'a, Output>` calling the
/// engine's query `name` in [`queries`](super::queries) (`with_db!`'s `@call`, the tables
/// first), or the query named after `by`, or, after `by self.`, this type's own method (given
/// `db` first).
macro_rules! reads {
    ($($name:ident ( $($arg:ident : $ty:ty),* ) -> $out:ty $(, by $($by:ident).+)?;)+) => {$(
        reads!(@by $name $($($by).+)?; ($($arg: $ty),*) -> $out);
    )+};
    (@by $name:ident; $($sig:tt)*) => { reads!(@by $name $name; $($sig)*); };
    (@by $name:ident self . $method:ident; ($($arg:ident: $ty:ty),*) -> $out:ty) => {
        fn $name<'a>(&'a self, db: &'a Db $(, $arg: $ty)*) -> SourceFuture<'a, $out> {
            Box::pin(async move { Ok(self.$method(db $(, $arg)*).await?) })
        }
    };
    (@by $name:ident $query:ident; ($($arg:ident: $ty:ty),*) -> $out:ty) => {
        fn $name<'a>(&'a self, db: &'a Db $(, $arg: $ty)*) -> SourceFuture<'a, $out> {
            let t = &self.tables;
            Box::pin(async move {
                Ok(crate::with_db!(@call db, super::queries => $query(t $(, $arg)*))?)
            })
        }
    };
}

impl HealthSource for VitalsSchema {
    reads! {
        health_summary(student: Uuid) -> Option<HealthSummary>;
        vaccinations(student: Uuid) -> Vec<Vaccination>;
        allergies(student: Uuid) -> Vec<Allergy>;
        chronic_conditions(student: Uuid) -> Vec<ChronicCondition>;
        warm_plan(now: DateTime<Utc>, recent: i64) -> WarmPlan, by self.plan;
    }
}

impl DashboardSource for VitalsSchema {
    reads! {
        recent_activities(now: DateTime<Utc>, limit: i64, sequential: bool) -> RecentActivities,
            by recent_activities_either;
        chart_data(now: DateTime<Utc>, sequential: bool) -> ChartData;
        activity_counts(now: DateTime<Utc>, sequential: bool) -> ActivityCounts;
        stat(stat: Stat, now: DateTime<Utc>) -> i64, by self.count;
    }
}
