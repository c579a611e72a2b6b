//! The report's cache warming: what a nurse will ask for first, loaded before they ask.

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use uuid::Uuid;
use vitals_cache::{TieredCache, WarmEntry, WarmError, Warmer};

use super::cache::{student_group, HealthData};
use super::store::Tables;
use crate::Db;

/// How many recently active students are warmed (the report's "last 500").
pub const RECENT_STUDENTS: i64 = 500;

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

/// Says what to warm for the school-health service; the cache's `WarmScheduler` runs it in
/// batches of 50 with bounded concurrency, once after start and then hourly.
///
/// Warms: the health summary of the 500 active students with the most recent activity; the
/// allergies of every student with a critical (severe, life-threatening) allergy; the chronic
/// conditions of every student with an active one; the vaccinations of every student
/// vaccinated in the last 6 months.
#[derive(Debug, Clone)]
pub struct HealthWarmer {
    db: Db,
    tables: Tables,
}

impl HealthWarmer {
    /// A warmer reading vitals' `tables` through `db`.
    pub fn new(db: Db, tables: Tables) -> Self {
        HealthWarmer { db, tables }
    }

    /// The keys a warming run loads, each once.
    ///
    /// # Errors
    /// A database error.
    pub async fn plan(&self) -> Result<Vec<String>, sqlx::Error> {
        let now = Utc::now();
        let six_months_ago = (now - Duration::days(183)).date_naive();
        let t = &self.tables;
        let (recent_sql, allergic_sql, chronic_sql, vaccinated_sql) = (
            t.sql(RECENT_ACTIVITY_SQL),
            t.sql(CRITICAL_ALLERGY_SQL),
            t.sql(ACTIVE_CONDITION_SQL),
            t.sql(RECENT_VACCINATION_SQL),
        );
        let (recent, allergic, chronic, vaccinated) = crate::with_db!(&self.db, |p| {
            tokio::try_join!(
                sqlx::query_scalar::<_, Uuid>(&recent_sql)
                    .bind(now)
                    .bind(true)
                    .bind(RECENT_STUDENTS)
                    .fetch_all(p),
                sqlx::query_scalar::<_, Uuid>(&allergic_sql)
                    .bind(true)
                    .fetch_all(p),
                sqlx::query_scalar::<_, Uuid>(&chronic_sql).fetch_all(p),
                sqlx::query_scalar::<_, Uuid>(&vaccinated_sql)
                    .bind(six_months_ago)
                    .fetch_all(p),
            )
        })?;
        let mut keys = BTreeSet::new();
        keys.extend(recent.into_iter().map(|id| HealthData::Summary.key(id)));
        keys.extend(allergic.into_iter().map(|id| HealthData::Allergies.key(id)));
        keys.extend(
            chronic
                .into_iter()
                .map(|id| HealthData::ChronicConditions.key(id)),
        );
        keys.extend(
            vaccinated
                .into_iter()
                .map(|id| HealthData::Vaccinations.key(id)),
        );
        Ok(keys.into_iter().collect())
    }

    /// What to cache under one key made by [`HealthData::key`].
    ///
    /// # Errors
    /// A key that is not a health key, a student that no longer exists, or a database error.
    pub async fn entry(&self, key: &str) -> Result<WarmEntry, WarmError> {
        let (kind, student) =
            HealthData::parse_key(key).ok_or_else(|| WarmError::from("not a health cache key"))?;
        let group = TieredCache::group_tag(&student_group(student));
        let tags = [kind.tag(), group.as_str()];
        let (db, t) = (&self.db, &self.tables);
        let entry = match kind {
            HealthData::Summary => {
                let summary =
                    crate::with_db!(@call db, super::queries => health_summary(t, student))?
                        .ok_or_else(|| WarmError::from("no such student"))?;
                WarmEntry::new(&summary, kind.ttl(), &tags)?
            }
            HealthData::Vaccinations => WarmEntry::new(
                &crate::with_db!(@call db, super::queries => vaccinations(t, student))?,
                kind.ttl(),
                &tags,
            )?,
            HealthData::Allergies => WarmEntry::new(
                &crate::with_db!(@call db, super::queries => allergies(t, student))?,
                kind.ttl(),
                &tags,
            )?,
            HealthData::ChronicConditions => WarmEntry::new(
                &crate::with_db!(@call db, super::queries => chronic_conditions(t, student))?,
                kind.ttl(),
                &tags,
            )?,
        };
        Ok(entry)
    }
}

impl Warmer for HealthWarmer {
    async fn keys(&self) -> Result<Vec<String>, WarmError> {
        Ok(self.plan().await?)
    }

    async fn load(&self, key: &str) -> Result<WarmEntry, WarmError> {
        self.entry(key).await
    }
}

/// The warmer of a host that turned the school-health domain off: nothing to warm.
#[derive(Debug, Clone, Copy)]
pub struct NoWarming;

impl Warmer for NoWarming {
    async fn keys(&self) -> Result<Vec<String>, WarmError> {
        Ok(Vec::new())
    }

    async fn load(&self, _key: &str) -> Result<WarmEntry, WarmError> {
        Err(WarmError::from("the school-health domain is off"))
    }
}
