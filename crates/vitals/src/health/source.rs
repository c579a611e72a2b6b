//! The seam between the school-health services and the tables they read: [`HealthSource`]
//! (a student's records, and whom to warm) and [`DashboardSource`] (the dashboard's reads).
//!
//! [`HealthDataCache`](super::HealthDataCache), [`HealthWarmer`](super::HealthWarmer) and
//! [`Dashboard`](super::Dashboard) run no SQL of their own: they call a source. vitals' own
//! schema is one source ([`VitalsSchema`](super::VitalsSchema), the default); a host whose
//! records are in tables of its own (other names, other columns) implements the two traits
//! over them and hands them to
//! [`VitalsBuilder::health_source`](crate::VitalsBuilder::health_source) and
//! [`VitalsBuilder::dashboard_source`](crate::VitalsBuilder::dashboard_source). The cache's
//! TTLs, keys, groups, invalidation and warming schedule stay vitals'.
//!
//! Each method is given the facade's monitored [`Db`]: run the statements on it
//! (`db.postgres()?` is an sqlx executor) and they are timed, sanitised and counted like any
//! other. Errors are the facade's [`Error`]; `?` on an `sqlx::Error` converts it (scrubbed,
//! its SQLSTATE kept).
//!
//! The methods return a boxed future ([`SourceFuture`]) rather than being `async fn`s: an
//! `async fn` in a trait cannot be called through `dyn`, and the services hold their source as
//! `Arc<dyn …>` so that their types (and [`Vitals`](crate::Vitals)' accessors) stay the same
//! whichever source a host chose. One allocation per read is nothing beside a round trip to
//! the database, and a read only happens on a cache miss.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::model::{Allergy, ChronicCondition, HealthSummary, Vaccination};
use super::queries::{ActivityCounts, ChartData, RecentActivities};
use crate::{Db, Error};

/// What a source's read returns: a `Send` future of the value or the facade's [`Error`],
/// borrowing the source and the [`Db`] for `'a`. Write the body as
/// `Box::pin(async move { … })`.
pub type SourceFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

/// A student's health records and the warming plan, read from wherever the host keeps them.
///
/// Every value holds PHI: a source returns it and never logs it.
///
/// # Example
/// A source over a host's own `pupils` table (the other reads elided):
/// ```no_run
/// use vitals::health::{HealthSource, SourceFuture, Student};
/// # use vitals::health::{Allergy, ChronicCondition, HealthSummary, Vaccination, WarmPlan};
/// use vitals::Db;
///
/// struct HostTables;
///
/// impl HostTables {
///     async fn pupil(db: &Db, id: uuid::Uuid) -> Result<Option<Student>, vitals::Error> {
///         let row: Option<(uuid::Uuid, String, String, chrono::NaiveDate)> = sqlx::query_as(
///             "SELECT pupil_ref, given, family, born FROM school.pupils WHERE pupil_ref = $1",
///         )
///         .bind(id)
///         .fetch_optional(db.postgres()?)
///         .await?;
///         Ok(row.map(|(id, first_name, last_name, date_of_birth)| Student {
///             id,
///             student_number: id.to_string(),
///             first_name,
///             last_name,
///             date_of_birth,
///             grade: String::new(),
///             active: true,
///         }))
///     }
/// }
///
/// impl HealthSource for HostTables {
///     fn health_summary<'a>(&'a self, db: &'a Db, student: uuid::Uuid)
///         -> SourceFuture<'a, Option<HealthSummary>> {
///         Box::pin(async move {
///             let Some(student) = Self::pupil(db, student).await? else { return Ok(None) };
///             Ok(Some(HealthSummary {
///                 student,
///                 vaccinations: Vec::new(),
///                 allergies: Vec::new(),
///                 chronic_conditions: Vec::new(),
///                 recent_medications: Vec::new(),
///             }))
///         })
///     }
///     // vaccinations, allergies, chronic_conditions, warm_plan: the same shape.
/// #   fn vaccinations<'a>(&'a self, _: &'a Db, _: uuid::Uuid) -> SourceFuture<'a, Vec<Vaccination>> { Box::pin(async { Ok(Vec::new()) }) }
/// #   fn allergies<'a>(&'a self, _: &'a Db, _: uuid::Uuid) -> SourceFuture<'a, Vec<Allergy>> { Box::pin(async { Ok(Vec::new()) }) }
/// #   fn chronic_conditions<'a>(&'a self, _: &'a Db, _: uuid::Uuid) -> SourceFuture<'a, Vec<ChronicCondition>> { Box::pin(async { Ok(Vec::new()) }) }
/// #   fn warm_plan<'a>(&'a self, _: &'a Db, _: chrono::DateTime<chrono::Utc>, _: i64) -> SourceFuture<'a, WarmPlan> { Box::pin(async { Ok(WarmPlan::default()) }) }
/// }
/// ```
pub trait HealthSource: Send + Sync + 'static {
    /// The student and their records (vaccinations, active allergies, chronic conditions and
    /// the latest medication doses); `None` when there is no such student.
    fn health_summary<'a>(
        &'a self,
        db: &'a Db,
        student: Uuid,
    ) -> SourceFuture<'a, Option<HealthSummary>>;

    /// The student's vaccinations, newest first (empty for an unknown student).
    fn vaccinations<'a>(&'a self, db: &'a Db, student: Uuid) -> SourceFuture<'a, Vec<Vaccination>>;

    /// The student's active allergies, most severe first.
    fn allergies<'a>(&'a self, db: &'a Db, student: Uuid) -> SourceFuture<'a, Vec<Allergy>>;

    /// The student's chronic conditions.
    fn chronic_conditions<'a>(
        &'a self,
        db: &'a Db,
        student: Uuid,
    ) -> SourceFuture<'a, Vec<ChronicCondition>>;

    /// Whom the warmer loads what for, as of `now`: at most `recent` students with the most
    /// recent health activity, and the students with a critical allergy, an active chronic
    /// condition or a recent vaccination. A source without some of these leaves them empty.
    fn warm_plan<'a>(
        &'a self,
        db: &'a Db,
        now: DateTime<Utc>,
        recent: i64,
    ) -> SourceFuture<'a, WarmPlan>;
}

/// The students a warming run loads data for, by kind; a student may be in several lists
/// (each key is loaded once).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WarmPlan {
    /// Their health summary: the active students with the most recent activity.
    pub recent_students: Vec<Uuid>,
    /// Their allergies: students with an active severe or life-threatening allergy.
    pub critical_allergies: Vec<Uuid>,
    /// Their chronic conditions: students with an active one.
    pub active_conditions: Vec<Uuid>,
    /// Their vaccinations: students vaccinated in the last 6 months.
    pub recent_vaccinations: Vec<Uuid>,
}

/// One of the dashboard's headline figures ([`DashboardStats`](super::DashboardStats)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stat {
    /// Enrolled (active) students.
    ActiveStudents,
    /// Students with an active severe or life-threatening allergy.
    CriticalAllergies,
    /// Active chronic conditions.
    ActiveConditions,
    /// Vaccinations given in the 30 days before `now`.
    VaccinationsLast30Days,
    /// Scheduled appointments after `now`.
    UpcomingAppointments,
}

impl Stat {
    /// Every figure, in [`DashboardStats`](super::DashboardStats)' order.
    pub const ALL: [Stat; 5] = [
        Stat::ActiveStudents,
        Stat::CriticalAllergies,
        Stat::ActiveConditions,
        Stat::VaccinationsLast30Days,
        Stat::UpcomingAppointments,
    ];

    /// The figure's name, as [`StatFailure::stat`](super::StatFailure::stat) says it
    /// (`active_students` …).
    pub fn name(self) -> &'static str {
        match self {
            Stat::ActiveStudents => "active_students",
            Stat::CriticalAllergies => "critical_allergies",
            Stat::ActiveConditions => "active_conditions",
            Stat::VaccinationsLast30Days => "vaccinations_last_30_days",
            Stat::UpcomingAppointments => "upcoming_appointments",
        }
    }
}

/// The dashboard's reads, from wherever the host keeps them.
///
/// `sequential` asks for the reads of one call one after another rather than at once (the
/// report's "before", kept for measuring); a source may ignore it. A source whose tables have
/// no such records (no appointments, say) returns empty lists and zero counts.
pub trait DashboardSource: Send + Sync + 'static {
    /// The latest medication doses and incidents at or before `now`, and the next scheduled
    /// appointments after it, at most `limit` each.
    fn recent_activities<'a>(
        &'a self,
        db: &'a Db,
        now: DateTime<Utc>,
        limit: i64,
        sequential: bool,
    ) -> SourceFuture<'a, RecentActivities>;

    /// The four chart aggregates (incidents: the 30 days before `now`).
    fn chart_data<'a>(
        &'a self,
        db: &'a Db,
        now: DateTime<Utc>,
        sequential: bool,
    ) -> SourceFuture<'a, ChartData>;

    /// The three activity counters around `now`.
    fn activity_counts<'a>(
        &'a self,
        db: &'a Db,
        now: DateTime<Utc>,
        sequential: bool,
    ) -> SourceFuture<'a, ActivityCounts>;

    /// One headline figure as of `now`. The dashboard asks for every [`Stat`] at once and
    /// reports each failure on its own.
    fn stat<'a>(&'a self, db: &'a Db, stat: Stat, now: DateTime<Utc>) -> SourceFuture<'a, i64>;
}
