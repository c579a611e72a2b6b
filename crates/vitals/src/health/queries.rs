//! The school-health reads behind the cache, the warmer and the dashboard, on PostgreSQL and
//! SQLite alike (one SQL text each; `$n` parameters bind in order on both engines).
//!
//! Every function takes an executor that is `Copy` (`&PgPool`, `&SqlitePool`, or the facade's
//! monitored pool handle), so independent reads can run at once on separate connections.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::model::*;
use super::store::Tables;
use crate::db::per_engine;

// Each SQL text once, for every function that runs it.

/// One student by id (`$1`), columns in [`Student`]'s order.
const STUDENT: &str =
    "SELECT id, student_number, first_name, last_name, date_of_birth, grade, active \
     FROM {s}students WHERE id = $1";

/// A student's (`$1`) vaccinations, newest first.
const VACCINATIONS: &str =
    "SELECT id, student_id, vaccine_name, dose_number, administered_on, administered_by, lot_number \
     FROM {s}vaccinations WHERE student_id = $1 ORDER BY administered_on DESC, vaccine_name, dose_number";

/// A student's (`$1`) allergies with `active = $2`, most severe first.
const ALLERGIES: &str =
    "SELECT id, student_id, allergen, severity, reaction, diagnosed_on, active FROM {s}allergies \
     WHERE student_id = $1 AND active = $2 \
     ORDER BY CASE severity WHEN 'LIFE_THREATENING' THEN 0 WHEN 'SEVERE' THEN 1 \
     WHEN 'MODERATE' THEN 2 ELSE 3 END, allergen";

/// A student's (`$1`) chronic conditions.
const CHRONIC_CONDITIONS: &str =
    "SELECT id, student_id, condition, icd10_code, status, diagnosed_on, notes \
     FROM {s}chronic_conditions WHERE student_id = $1 ORDER BY status, condition";

/// A student's (`$1`) latest medication doses, newest first, at most `$2`.
const STUDENT_MEDICATIONS: &str =
    "SELECT id, student_id, medication, dosage, administered_at, administered_by \
     FROM {s}medication_logs WHERE student_id = $1 ORDER BY administered_at DESC LIMIT $2";

/// The latest medication doses given at or before `$1`, at most `$2`.
const RECENT_MEDICATIONS: &str =
    "SELECT id, student_id, medication, dosage, administered_at, administered_by \
     FROM {s}medication_logs WHERE administered_at <= $1 ORDER BY administered_at DESC LIMIT $2";

/// The latest incidents at or before `$1`, at most `$2`.
const RECENT_INCIDENTS: &str = "SELECT id, student_id, occurred_at, kind, severity, description \
     FROM {s}incident_reports WHERE occurred_at <= $1 ORDER BY occurred_at DESC LIMIT $2";

/// The next scheduled appointments after `$1`, at most `$2`.
const UPCOMING_APPOINTMENTS: &str =
    "SELECT id, student_id, scheduled_at, kind, status FROM {s}appointments \
     WHERE scheduled_at > $1 AND status = 'SCHEDULED' ORDER BY scheduled_at LIMIT $2";

/// Vaccinations per vaccine, the most given first.
const BY_VACCINE: &str = "SELECT vaccine_name AS label, COUNT(*) AS count FROM {s}vaccinations \
     GROUP BY vaccine_name ORDER BY count DESC, label";

/// Incidents per severity since `$1`.
const INCIDENTS_BY_SEVERITY: &str = "SELECT severity AS label, COUNT(*) AS count \
     FROM {s}incident_reports WHERE occurred_at >= $1 GROUP BY severity ORDER BY label";

/// Appointments per status.
const BY_APPOINTMENT_STATUS: &str =
    "SELECT status AS label, COUNT(*) AS count FROM {s}appointments GROUP BY status ORDER BY label";

/// Allergies with `active = $1` per severity.
const ALLERGIES_BY_SEVERITY: &str =
    "SELECT severity AS label, COUNT(*) AS count FROM {s}allergies \
     WHERE active = $1 GROUP BY severity ORDER BY label";

/// Medication doses given after `$1`, up to `$2`.
const MEDICATIONS_BETWEEN: &str =
    "SELECT COUNT(*) FROM {s}medication_logs WHERE administered_at > $1 AND administered_at <= $2";

/// Incidents after `$1`, up to `$2`.
const INCIDENTS_BETWEEN: &str =
    "SELECT COUNT(*) FROM {s}incident_reports WHERE occurred_at > $1 AND occurred_at <= $2";

/// Appointments after `$1`, up to `$2`.
const APPOINTMENTS_BETWEEN: &str =
    "SELECT COUNT(*) FROM {s}appointments WHERE scheduled_at > $1 AND scheduled_at <= $2";

/// The medication doses in a health summary.
const SUMMARY_MEDICATIONS: i64 = 10;

/// Awaits the reads (futures of `Result<_, sqlx::Error>`) one after another when `sequential`
/// is true (the report's "before"), else at once (each on its own connection); a tuple of
/// their values, or the first error (`?`).
macro_rules! join_reads {
    ($sequential:expr, $($read:ident),+ $(,)?) => {
        if $sequential {
            ($($read.await?),+)
        } else {
            tokio::try_join!($($read),+)?
        }
    };
}

/// A count per label, for a chart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct LabelCount {
    /// The bar's label, such as a vaccine name or a status.
    pub label: String,
    /// How many.
    pub count: i64,
}

/// The dashboard's recent activity: three independent reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentActivities {
    /// The latest medication doses given (at most `limit`).
    pub medications: Vec<MedicationLog>,
    /// The latest incidents.
    pub incidents: Vec<IncidentReport>,
    /// The next scheduled appointments.
    pub upcoming_appointments: Vec<Appointment>,
}

/// The dashboard's charts: four independent aggregates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChartData {
    /// Vaccinations per vaccine.
    pub vaccinations_by_vaccine: Vec<LabelCount>,
    /// Incidents of the last 30 days per severity.
    pub incidents_by_severity: Vec<LabelCount>,
    /// Appointments per status.
    pub appointments_by_status: Vec<LabelCount>,
    /// Active allergies per severity.
    pub allergies_by_severity: Vec<LabelCount>,
}

/// The dashboard's counters: three independent counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityCounts {
    /// Medication doses given in the last 24 hours.
    pub medications_today: i64,
    /// Incidents in the last 7 days.
    pub incidents_this_week: i64,
    /// Appointments scheduled in the next 7 days.
    pub appointments_next_week: i64,
}

per_engine! {
    /// One student, or `None`.
    ///
    /// # Errors
    /// A database error.
    pub fn student_postgres / student_sqlite <Db> (db: Executor + Copy, tables: &Tables, id: Uuid) -> Result<Option<Student>, sqlx::Error> {
        sqlx::query_as(&tables.sql(STUDENT)).bind(id).fetch_optional(db).await
    }
}

per_engine! {
    /// A student's vaccinations, newest first.
    ///
    /// # Errors
    /// A database error.
    pub fn vaccinations_postgres / vaccinations_sqlite <Db> (db: Executor + Copy, tables: &Tables, student: Uuid) -> Result<Vec<Vaccination>, sqlx::Error> {
        sqlx::query_as(&tables.sql(VACCINATIONS)).bind(student).fetch_all(db).await
    }
}

per_engine! {
    /// A student's active allergies, most severe first.
    ///
    /// # Errors
    /// A database error.
    pub fn allergies_postgres / allergies_sqlite <Db> (db: Executor + Copy, tables: &Tables, student: Uuid) -> Result<Vec<Allergy>, sqlx::Error> {
        sqlx::query_as(&tables.sql(ALLERGIES)).bind(student).bind(true).fetch_all(db).await
    }
}

per_engine! {
    /// A student's chronic conditions.
    ///
    /// # Errors
    /// A database error.
    pub fn chronic_conditions_postgres / chronic_conditions_sqlite <Db> (db: Executor + Copy, tables: &Tables, student: Uuid) -> Result<Vec<ChronicCondition>, sqlx::Error> {
        sqlx::query_as(&tables.sql(CHRONIC_CONDITIONS)).bind(student).fetch_all(db).await
    }
}

per_engine! {
    /// A student's last `limit` medication doses, newest first.
    ///
    /// # Errors
    /// A database error.
    pub fn student_medications_postgres / student_medications_sqlite <Db> (db: Executor + Copy, tables: &Tables, student: Uuid, limit: i64) -> Result<Vec<MedicationLog>, sqlx::Error> {
        sqlx::query_as(&tables.sql(STUDENT_MEDICATIONS)).bind(student).bind(limit).fetch_all(db).await
    }
}

per_engine! {
    /// A student's health summary: the student, then the four record lists at once (each on
    /// its own connection; the uncached path the cache is measured against). `None` when there
    /// is no such student.
    ///
    /// # Errors
    /// A database error.
    pub fn health_summary_postgres / health_summary_sqlite <Db, mod engine> (db: Executor + Copy, tables: &Tables, student: Uuid) -> Result<Option<HealthSummary>, sqlx::Error> {
        let Some(found) = engine::student(db, tables, student).await? else {
            return Ok(None);
        };
        let (vaccinations, allergies, chronic_conditions, recent_medications) = tokio::try_join!(
            engine::vaccinations(db, tables, student),
            engine::allergies(db, tables, student),
            engine::chronic_conditions(db, tables, student),
            engine::student_medications(db, tables, student, SUMMARY_MEDICATIONS),
        )?;
        Ok(Some(HealthSummary { student: found, vaccinations, allergies, chronic_conditions, recent_medications }))
    }
}

per_engine! {
    /// The dashboard's recent activity, the three reads run at once (each on its own
    /// connection), like the report's `Promise.all`.
    ///
    /// # Errors
    /// The first database error.
    pub fn recent_activities_postgres / recent_activities_sqlite <Db, mod engine> (db: Executor + Copy, tables: &Tables, now: DateTime<Utc>, limit: i64) -> Result<RecentActivities, sqlx::Error> {
        engine::recent_activities_either(db, tables, now, limit, false).await
    }
}

per_engine! {
    /// The same three reads as `recent_activities_*`, one after another: the report's "before".
    ///
    /// # Errors
    /// The first database error.
    pub fn recent_activities_sequential_postgres / recent_activities_sequential_sqlite <Db, mod engine> (db: Executor + Copy, tables: &Tables, now: DateTime<Utc>, limit: i64) -> Result<RecentActivities, sqlx::Error> {
        engine::recent_activities_either(db, tables, now, limit, true).await
    }
}

per_engine! {
    /// The dashboard's recent activity: medication doses given and incidents at or before
    /// `now`, appointments after it, at most `limit` each; at once or one after another.
    ///
    /// # Errors
    /// The first database error.
    pub(crate) fn recent_activities_either_postgres / recent_activities_either_sqlite <Db> (db: Executor + Copy, tables: &Tables, now: DateTime<Utc>, limit: i64, sequential: bool) -> Result<RecentActivities, sqlx::Error> {
        let (m, i, a) = (tables.sql(RECENT_MEDICATIONS), tables.sql(RECENT_INCIDENTS), tables.sql(UPCOMING_APPOINTMENTS));
        let medications = sqlx::query_as::<_, MedicationLog>(&m).bind(now).bind(limit).fetch_all(db);
        let incidents = sqlx::query_as::<_, IncidentReport>(&i).bind(now).bind(limit).fetch_all(db);
        let upcoming_appointments = sqlx::query_as::<_, Appointment>(&a).bind(now).bind(limit).fetch_all(db);
        let (medications, incidents, upcoming_appointments) = join_reads!(sequential, medications, incidents, upcoming_appointments);
        Ok(RecentActivities { medications, incidents, upcoming_appointments })
    }
}

per_engine! {
    /// The dashboard's four chart aggregates, run at once (`sequential = false`) or one after
    /// another (`sequential = true`, the report's "before").
    ///
    /// # Errors
    /// The first database error.
    pub fn chart_data_postgres / chart_data_sqlite <Db> (db: Executor + Copy, tables: &Tables, now: DateTime<Utc>, sequential: bool) -> Result<ChartData, sqlx::Error> {
        let since = now - Duration::days(30);
        let [v, i, ap, al] = [BY_VACCINE, INCIDENTS_BY_SEVERITY, BY_APPOINTMENT_STATUS, ALLERGIES_BY_SEVERITY].map(|t| tables.sql(t));
        let by_vaccine = sqlx::query_as::<_, LabelCount>(&v).fetch_all(db);
        let incidents = sqlx::query_as::<_, LabelCount>(&i).bind(since).fetch_all(db);
        let appointments = sqlx::query_as::<_, LabelCount>(&ap).fetch_all(db);
        let allergies = sqlx::query_as::<_, LabelCount>(&al).bind(true).fetch_all(db);
        let (vaccinations_by_vaccine, incidents_by_severity, appointments_by_status, allergies_by_severity) =
            join_reads!(sequential, by_vaccine, incidents, appointments, allergies);
        Ok(ChartData { vaccinations_by_vaccine, incidents_by_severity, appointments_by_status, allergies_by_severity })
    }
}

per_engine! {
    /// The dashboard's three counters, run at once (`sequential = false`) or one after
    /// another (`sequential = true`, the report's "before").
    ///
    /// # Errors
    /// The first database error.
    pub fn activity_counts_postgres / activity_counts_sqlite <Db> (db: Executor + Copy, tables: &Tables, now: DateTime<Utc>, sequential: bool) -> Result<ActivityCounts, sqlx::Error> {
        let (day, week) = (Duration::hours(24), Duration::days(7));
        let [m, i, a] = [MEDICATIONS_BETWEEN, INCIDENTS_BETWEEN, APPOINTMENTS_BETWEEN].map(|t| tables.sql(t));
        let medications = sqlx::query_scalar::<_, i64>(&m).bind(now - day).bind(now).fetch_one(db);
        let incidents = sqlx::query_scalar::<_, i64>(&i).bind(now - week).bind(now).fetch_one(db);
        let appointments = sqlx::query_scalar::<_, i64>(&a).bind(now).bind(now + week).fetch_one(db);
        let (medications_today, incidents_this_week, appointments_next_week) = join_reads!(sequential, medications, incidents, appointments);
        Ok(ActivityCounts { medications_today, incidents_this_week, appointments_next_week })
    }
}

/// Each read under its plain name, for PostgreSQL executors.
pub mod postgres {
    pub(crate) use super::recent_activities_either_postgres as recent_activities_either;
    pub use super::{
        activity_counts_postgres as activity_counts, allergies_postgres as allergies,
        chart_data_postgres as chart_data, chronic_conditions_postgres as chronic_conditions,
        health_summary_postgres as health_summary, recent_activities_postgres as recent_activities,
        recent_activities_sequential_postgres as recent_activities_sequential,
        student_medications_postgres as student_medications, student_postgres as student,
        vaccinations_postgres as vaccinations,
    };
}

/// Each read under its plain name, for SQLite executors.
pub mod sqlite {
    pub(crate) use super::recent_activities_either_sqlite as recent_activities_either;
    pub use super::{
        activity_counts_sqlite as activity_counts, allergies_sqlite as allergies,
        chart_data_sqlite as chart_data, chronic_conditions_sqlite as chronic_conditions,
        health_summary_sqlite as health_summary,
        recent_activities_sequential_sqlite as recent_activities_sequential,
        recent_activities_sqlite as recent_activities,
        student_medications_sqlite as student_medications, student_sqlite as student,
        vaccinations_sqlite as vaccinations,
    };
}
