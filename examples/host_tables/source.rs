//! A host's own school-health tables, not vitals': schema `school` with `pupils`,
//! `immunisations`, `sensitivities` and `conditions` (other table names, other column names,
//! other spellings of severity and status), and [`HostTables`], the
//! [`HealthSource`] and [`DashboardSource`] over them.
//!
//! Shared by `examples/host_tables/main.rs` and `crates/vitals/tests/health_source.rs`.
//! Every statement runs on the `Db` vitals hands in (`db.postgres()?`), so each is timed,
//! sanitised and counted in vitals' query report. Synthetic data only.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use uuid::Uuid;
use vitals::health::{
    ActivityCounts, Allergy, AllergySeverity, ChartData, ChronicCondition, ConditionStatus,
    DashboardSource, HealthSource, HealthSummary, LabelCount, RecentActivities, SourceFuture, Stat,
    Student, Vaccination, WarmPlan,
};
use vitals::sqlx;
use vitals::sqlx::postgres::PgArguments;
use vitals::{Db, Error};

/// The host's schema, created by the host (its own migrations would do the same).
pub const SCHEMA: [&str; 5] = [
    "CREATE SCHEMA IF NOT EXISTS school",
    "CREATE TABLE IF NOT EXISTS school.pupils (
        pupil_ref UUID PRIMARY KEY,
        admission_no TEXT NOT NULL UNIQUE,
        given TEXT NOT NULL,
        family TEXT NOT NULL,
        born DATE NOT NULL,
        year_group TEXT NOT NULL,
        on_roll BOOLEAN NOT NULL DEFAULT TRUE)",
    "CREATE TABLE IF NOT EXISTS school.immunisations (
        jab_id UUID PRIMARY KEY,
        pupil UUID NOT NULL REFERENCES school.pupils (pupil_ref),
        vaccine TEXT NOT NULL,
        dose SMALLINT NOT NULL,
        given_on DATE NOT NULL,
        nurse TEXT,
        batch TEXT)",
    "CREATE TABLE IF NOT EXISTS school.sensitivities (
        sensitivity_id UUID PRIMARY KEY,
        pupil UUID NOT NULL REFERENCES school.pupils (pupil_ref),
        substance TEXT NOT NULL,
        level TEXT NOT NULL CHECK (level IN ('mild', 'moderate', 'severe', 'anaphylaxis')),
        response TEXT,
        noted_on DATE,
        current BOOLEAN NOT NULL DEFAULT TRUE)",
    "CREATE TABLE IF NOT EXISTS school.conditions (
        condition_id UUID PRIMARY KEY,
        pupil UUID NOT NULL REFERENCES school.pupils (pupil_ref),
        title TEXT NOT NULL,
        icd TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('active', 'controlled', 'resolved')),
        since DATE,
        remarks TEXT)",
];

/// Creates the host's schema and tables (idempotent).
///
/// # Errors
/// A database error, or vitals not on PostgreSQL.
pub async fn create_tables(db: &Db) -> Result<(), Error> {
    let pg = db.postgres()?;
    for statement in SCHEMA {
        sqlx::query(statement).execute(pg).await?;
    }
    Ok(())
}

/// A synthetic pupil.
pub async fn add_pupil(
    db: &Db,
    admission_no: &str,
    given: &str,
    family: &str,
) -> Result<Uuid, Error> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO school.pupils (pupil_ref, admission_no, given, family, born, year_group) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(admission_no)
    .bind(given)
    .bind(family)
    .bind(NaiveDate::from_ymd_opt(2016, 9, 1))
    .bind("Year 4")
    .execute(db.postgres()?)
    .await?;
    Ok(id)
}

/// Runs one of these inserts on the host's PostgreSQL.
async fn insert(
    db: &Db,
    q: sqlx::query::Query<'_, sqlx::Postgres, PgArguments>,
) -> Result<(), Error> {
    q.execute(db.postgres()?).await?;
    Ok(())
}

/// A dose of `vaccine` given to `pupil` `days_ago` days ago.
pub async fn add_immunisation(
    db: &Db,
    pupil: Uuid,
    vaccine: &str,
    dose: i16,
    days_ago: i64,
) -> Result<(), Error> {
    insert(
        db,
        sqlx::query(
            "INSERT INTO school.immunisations (jab_id, pupil, vaccine, dose, given_on, nurse) \
             VALUES ($1, $2, $3, $4, $5, 'School Nurse')",
        )
        .bind(Uuid::new_v4())
        .bind(pupil)
        .bind(vaccine)
        .bind(dose)
        .bind((Utc::now() - Duration::days(days_ago)).date_naive()),
    )
    .await
}

/// A current sensitivity of `pupil` at `level` (`mild` … `anaphylaxis`).
pub async fn add_sensitivity(
    db: &Db,
    pupil: Uuid,
    substance: &str,
    level: &str,
) -> Result<(), Error> {
    insert(
        db,
        sqlx::query(
            "INSERT INTO school.sensitivities (sensitivity_id, pupil, substance, level) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(Uuid::new_v4())
        .bind(pupil)
        .bind(substance)
        .bind(level),
    )
    .await
}

/// A condition of `pupil` in `state` (`active`, `controlled`, `resolved`).
pub async fn add_condition(
    db: &Db,
    pupil: Uuid,
    title: &str,
    icd: &str,
    state: &str,
) -> Result<(), Error> {
    insert(
        db,
        sqlx::query(
            "INSERT INTO school.conditions (condition_id, pupil, title, icd, state) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(Uuid::new_v4())
        .bind(pupil)
        .bind(title)
        .bind(icd)
        .bind(state),
    )
    .await
}

/// The host's tables as vitals' health and dashboard source.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostTables;

/// A value of the host's vocabulary that vitals' types have no word for: a host's row that
/// its own CHECK should have refused, reported as a decode error (no value in the text).
fn unknown(column: &str) -> Error {
    Error::from(sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: "a value the host's schema does not allow".into(),
    })
}

/// The host's `sensitivities.level` in vitals' words.
fn severity(level: &str) -> Result<AllergySeverity, Error> {
    Ok(match level {
        "mild" => AllergySeverity::Mild,
        "moderate" => AllergySeverity::Moderate,
        "severe" => AllergySeverity::Severe,
        "anaphylaxis" => AllergySeverity::LifeThreatening,
        _ => return Err(unknown("level")),
    })
}

/// The host's `conditions.state` in vitals' words.
fn status(state: &str) -> Result<ConditionStatus, Error> {
    Ok(match state {
        "active" => ConditionStatus::Active,
        "controlled" => ConditionStatus::Managed,
        "resolved" => ConditionStatus::Resolved,
        _ => return Err(unknown("state")),
    })
}

/// `(pupil_ref, admission_no, given, family, born, year_group, on_roll)`.
type PupilRow = (Uuid, String, String, String, NaiveDate, String, bool);
/// `(jab_id, pupil, vaccine, dose, given_on, nurse, batch)`.
type ImmunisationRow = (
    Uuid,
    Uuid,
    String,
    i16,
    NaiveDate,
    Option<String>,
    Option<String>,
);
/// `(sensitivity_id, pupil, substance, level, response, noted_on, current)`.
type SensitivityRow = (
    Uuid,
    Uuid,
    String,
    String,
    Option<String>,
    Option<NaiveDate>,
    bool,
);
/// `(condition_id, pupil, title, icd, state, since, remarks)`.
type ConditionRow = (
    Uuid,
    Uuid,
    String,
    String,
    String,
    Option<NaiveDate>,
    Option<String>,
);

impl HostTables {
    async fn pupil(db: &Db, id: Uuid) -> Result<Option<Student>, Error> {
        let row: Option<PupilRow> = sqlx::query_as(
            "SELECT pupil_ref, admission_no, given, family, born, year_group, on_roll \
             FROM school.pupils WHERE pupil_ref = $1",
        )
        .bind(id)
        .fetch_optional(db.postgres()?)
        .await?;
        Ok(
            row.map(|(id, number, given, family, born, year, on_roll)| Student {
                id,
                student_number: number,
                first_name: given,
                last_name: family,
                date_of_birth: born,
                grade: year,
                active: on_roll,
            }),
        )
    }

    async fn immunisations(db: &Db, pupil: Uuid) -> Result<Vec<Vaccination>, Error> {
        let rows: Vec<ImmunisationRow> = sqlx::query_as(
            "SELECT jab_id, pupil, vaccine, dose, given_on, nurse, batch FROM school.immunisations \
             WHERE pupil = $1 ORDER BY given_on DESC, vaccine, dose",
        )
        .bind(pupil)
        .fetch_all(db.postgres()?)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, student_id, vaccine, dose, on, by, lot)| Vaccination {
                id,
                student_id,
                vaccine_name: vaccine,
                dose_number: i32::from(dose),
                administered_on: on,
                administered_by: by,
                lot_number: lot,
            })
            .collect())
    }

    async fn sensitivities(db: &Db, pupil: Uuid) -> Result<Vec<Allergy>, Error> {
        let rows: Vec<SensitivityRow> = sqlx::query_as(
            "SELECT sensitivity_id, pupil, substance, level, response, noted_on, current \
             FROM school.sensitivities WHERE pupil = $1 AND current \
             ORDER BY CASE level WHEN 'anaphylaxis' THEN 0 WHEN 'severe' THEN 1 \
             WHEN 'moderate' THEN 2 ELSE 3 END, substance",
        )
        .bind(pupil)
        .fetch_all(db.postgres()?)
        .await?;
        rows.into_iter()
            .map(
                |(id, student_id, allergen, level, reaction, noted, current)| {
                    Ok(Allergy {
                        id,
                        student_id,
                        allergen,
                        severity: severity(&level)?,
                        reaction,
                        diagnosed_on: noted,
                        active: current,
                    })
                },
            )
            .collect()
    }

    async fn conditions(db: &Db, pupil: Uuid) -> Result<Vec<ChronicCondition>, Error> {
        let rows: Vec<ConditionRow> = sqlx::query_as(
            "SELECT condition_id, pupil, title, icd, state, since, remarks FROM school.conditions \
             WHERE pupil = $1 ORDER BY state, title",
        )
        .bind(pupil)
        .fetch_all(db.postgres()?)
        .await?;
        rows.into_iter()
            .map(|(id, student_id, title, icd, state, since, remarks)| {
                Ok(ChronicCondition {
                    id,
                    student_id,
                    condition: title,
                    icd10_code: icd,
                    status: status(&state)?,
                    diagnosed_on: since,
                    notes: remarks,
                })
            })
            .collect()
    }

    async fn ids(
        db: &Db,
        sql: &str,
        bind: Option<NaiveDate>,
        limit: Option<i64>,
    ) -> Result<Vec<Uuid>, Error> {
        let mut query = sqlx::query_scalar::<_, Uuid>(sql);
        if let Some(day) = bind {
            query = query.bind(day);
        }
        if let Some(limit) = limit {
            query = query.bind(limit);
        }
        Ok(query.fetch_all(db.postgres()?).await?)
    }

    async fn labels(db: &Db, sql: &str) -> Result<Vec<LabelCount>, Error> {
        Ok(sqlx::query_as(sql).fetch_all(db.postgres()?).await?)
    }

    async fn count(db: &Db, stat: Stat, now: DateTime<Utc>) -> Result<i64, Error> {
        let sql = match stat {
            Stat::ActiveStudents => "SELECT COUNT(*) FROM school.pupils WHERE on_roll",
            Stat::CriticalAllergies => {
                "SELECT COUNT(DISTINCT pupil) FROM school.sensitivities \
                 WHERE current AND level IN ('severe', 'anaphylaxis')"
            }
            Stat::ActiveConditions => {
                "SELECT COUNT(*) FROM school.conditions WHERE state = 'active'"
            }
            Stat::VaccinationsLast30Days => {
                let since = (now - Duration::days(30)).date_naive();
                return Ok(sqlx::query_scalar(
                    "SELECT COUNT(*) FROM school.immunisations WHERE given_on >= $1",
                )
                .bind(since)
                .fetch_one(db.postgres()?)
                .await?);
            }
            // The host keeps no appointments (nor any figure added later).
            _ => return Ok(0),
        };
        Ok(sqlx::query_scalar(sql).fetch_one(db.postgres()?).await?)
    }
}

impl HealthSource for HostTables {
    fn health_summary<'a>(
        &'a self,
        db: &'a Db,
        student: Uuid,
    ) -> SourceFuture<'a, Option<HealthSummary>> {
        Box::pin(async move {
            let Some(found) = Self::pupil(db, student).await? else {
                return Ok(None);
            };
            let (vaccinations, allergies, chronic_conditions) = tokio::try_join!(
                Self::immunisations(db, student),
                Self::sensitivities(db, student),
                Self::conditions(db, student),
            )?;
            Ok(Some(HealthSummary {
                student: found,
                vaccinations,
                allergies,
                chronic_conditions,
                // The host records no medication doses.
                recent_medications: Vec::new(),
            }))
        })
    }

    fn vaccinations<'a>(&'a self, db: &'a Db, student: Uuid) -> SourceFuture<'a, Vec<Vaccination>> {
        Box::pin(Self::immunisations(db, student))
    }

    fn allergies<'a>(&'a self, db: &'a Db, student: Uuid) -> SourceFuture<'a, Vec<Allergy>> {
        Box::pin(Self::sensitivities(db, student))
    }

    fn chronic_conditions<'a>(
        &'a self,
        db: &'a Db,
        student: Uuid,
    ) -> SourceFuture<'a, Vec<ChronicCondition>> {
        Box::pin(Self::conditions(db, student))
    }

    fn warm_plan<'a>(
        &'a self,
        db: &'a Db,
        now: DateTime<Utc>,
        recent: i64,
    ) -> SourceFuture<'a, WarmPlan> {
        Box::pin(async move {
            let six_months_ago = (now - Duration::days(183)).date_naive();
            // The host's only dated activity is a dose given: the pupils on roll most
            // recently immunised are its "recent" ones.
            let (recent_students, critical_allergies, active_conditions, recent_vaccinations) = tokio::try_join!(
                Self::ids(
                    db,
                    "SELECT p.pupil_ref FROM school.pupils p \
                     JOIN school.immunisations i ON i.pupil = p.pupil_ref WHERE p.on_roll \
                     GROUP BY p.pupil_ref ORDER BY MAX(i.given_on) DESC LIMIT $1",
                    None,
                    Some(recent),
                ),
                Self::ids(
                    db,
                    "SELECT DISTINCT pupil FROM school.sensitivities \
                     WHERE current AND level IN ('severe', 'anaphylaxis')",
                    None,
                    None,
                ),
                Self::ids(
                    db,
                    "SELECT DISTINCT pupil FROM school.conditions WHERE state = 'active'",
                    None,
                    None
                ),
                Self::ids(
                    db,
                    "SELECT DISTINCT pupil FROM school.immunisations WHERE given_on >= $1",
                    Some(six_months_ago),
                    None,
                ),
            )?;
            Ok(WarmPlan {
                recent_students,
                critical_allergies,
                active_conditions,
                recent_vaccinations,
            })
        })
    }
}

impl DashboardSource for HostTables {
    fn recent_activities<'a>(
        &'a self,
        _db: &'a Db,
        _now: DateTime<Utc>,
        _limit: i64,
        _sequential: bool,
    ) -> SourceFuture<'a, RecentActivities> {
        // The host records no medication doses, incidents or appointments.
        Box::pin(async {
            Ok(RecentActivities {
                medications: Vec::new(),
                incidents: Vec::new(),
                upcoming_appointments: Vec::new(),
            })
        })
    }

    fn chart_data<'a>(
        &'a self,
        db: &'a Db,
        _now: DateTime<Utc>,
        _sequential: bool,
    ) -> SourceFuture<'a, ChartData> {
        Box::pin(async move {
            let (vaccinations_by_vaccine, allergies_by_severity) = tokio::try_join!(
                Self::labels(
                    db,
                    "SELECT vaccine AS label, COUNT(*) AS count FROM school.immunisations \
                     GROUP BY vaccine ORDER BY count DESC, label",
                ),
                // In vitals' spelling, so a dashboard shows one vocabulary.
                Self::labels(
                    db,
                    "SELECT CASE level WHEN 'anaphylaxis' THEN 'LIFE_THREATENING' ELSE upper(level) END \
                     AS label, COUNT(*) AS count FROM school.sensitivities WHERE current \
                     GROUP BY 1 ORDER BY label",
                ),
            )?;
            Ok(ChartData {
                vaccinations_by_vaccine,
                incidents_by_severity: Vec::new(),
                appointments_by_status: Vec::new(),
                allergies_by_severity,
            })
        })
    }

    fn activity_counts<'a>(
        &'a self,
        _db: &'a Db,
        _now: DateTime<Utc>,
        _sequential: bool,
    ) -> SourceFuture<'a, ActivityCounts> {
        Box::pin(async {
            Ok(ActivityCounts {
                medications_today: 0,
                incidents_this_week: 0,
                appointments_next_week: 0,
            })
        })
    }

    fn stat<'a>(&'a self, db: &'a Db, stat: Stat, now: DateTime<Utc>) -> SourceFuture<'a, i64> {
        Box::pin(Self::count(db, stat, now))
    }
}
