//! The report's cache warming: what a nurse will ask for first, loaded before they ask.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Utc;
use vitals_cache::{WarmEntry, WarmError, Warmer};

use super::cache::{HealthData, Slot};
use super::schema_source::VitalsSchema;
use super::source::HealthSource;
use super::store::Tables;
use crate::{Db, Error};

/// How many recently active students are warmed (the report's "last 500").
pub const RECENT_STUDENTS: i64 = 500;

/// Says what to warm for the school-health service; the cache's `WarmScheduler` runs it in
/// batches of 50 with bounded concurrency, once after start and then hourly.
///
/// Warms, as its [`HealthSource`]'s [`warm_plan`](HealthSource::warm_plan) names them: the
/// health summary of the 500 active students with the most recent activity; the allergies of
/// every student with a critical (severe, life-threatening) allergy; the chronic conditions of
/// every student with an active one; the vaccinations of every student vaccinated in the last
/// 6 months. Each value is loaded through the same source, so what the warmer caches is what
/// a miss of [`HealthDataCache`](super::HealthDataCache) would have read.
#[derive(Clone)]
pub struct HealthWarmer {
    db: Db,
    source: Arc<dyn HealthSource>,
}

impl std::fmt::Debug for HealthWarmer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthWarmer")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl HealthWarmer {
    /// A warmer reading vitals' `tables` through `db`.
    pub fn new(db: Db, tables: Tables) -> Self {
        Self::with_source(db, Arc::new(VitalsSchema::new(tables)))
    }

    /// A warmer reading `source` (the host's tables, say) through `db`.
    pub fn with_source(db: Db, source: Arc<dyn HealthSource>) -> Self {
        HealthWarmer { db, source }
    }

    /// The keys a warming run loads, each once.
    ///
    /// # Errors
    /// The source's error (a database error, scrubbed).
    pub async fn plan(&self) -> Result<Vec<String>, Error> {
        let plan = self
            .source
            .warm_plan(&self.db, Utc::now(), RECENT_STUDENTS)
            .await?;
        let mut keys = BTreeSet::new();
        let kinds = [
            (HealthData::Summary, plan.recent_students),
            (HealthData::Allergies, plan.critical_allergies),
            (HealthData::ChronicConditions, plan.active_conditions),
            (HealthData::Vaccinations, plan.recent_vaccinations),
        ];
        for (kind, students) in kinds {
            keys.extend(students.into_iter().map(|id| kind.key(id)));
        }
        Ok(keys.into_iter().collect())
    }

    /// What to cache under one key made by [`HealthData::key`].
    ///
    /// # Errors
    /// A key that is not a health key, a student that no longer exists, or a database error.
    pub async fn entry(&self, key: &str) -> Result<WarmEntry, WarmError> {
        let (kind, student) =
            HealthData::parse_key(key).ok_or_else(|| WarmError::from("not a health cache key"))?;
        let slot = Slot::new(kind, student);
        let tags = slot.tags();
        let (db, source) = (&self.db, &*self.source);
        let entry = match kind {
            HealthData::Summary => {
                let summary = source
                    .health_summary(db, student)
                    .await?
                    .ok_or_else(|| WarmError::from("no such student"))?;
                WarmEntry::new(summary, kind.ttl(), &tags)?
            }
            HealthData::Vaccinations => {
                WarmEntry::new(source.vaccinations(db, student).await?, kind.ttl(), &tags)?
            }
            HealthData::Allergies => {
                WarmEntry::new(source.allergies(db, student).await?, kind.ttl(), &tags)?
            }
            HealthData::ChronicConditions => WarmEntry::new(
                source.chronic_conditions(db, student).await?,
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
