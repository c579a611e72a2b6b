//! The report's `HealthDataCache`: a student's health data through the two-tier cache, with
//! the report's TTLs, tags per data type and a group per student.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;
use vitals_cache::{Loaded, TieredCache};

use super::model::*;
use super::records;
use super::schema_source::VitalsSchema;
use super::source::{HealthSource, SourceFuture};
use super::store::{health_off, Tables};
use crate::{Db, Error, Reads};

/// A student's health summary stays 5 minutes (the report's TTL).
pub const SUMMARY_TTL: Duration = Duration::from_secs(5 * 60);
/// Vaccinations, allergies and chronic conditions change less often: 10 minutes.
pub const RECORDS_TTL: Duration = Duration::from_secs(10 * 60);
/// How long allergies and chronic conditions are served past their TTL when their reload
/// fails (the database down, a timeout): a nurse needs them in an emergency, and a list a
/// day old beats none. Served flagged stale ([`HealthDataCache::allergies_loaded`]) and
/// counted (`stale_served`); only what this instance holds in L1 (see `vitals_cache`'s
/// `get_or_load_with`). The other kinds keep `CACHE_FAIL_SAFE_MAX` (off by default).
pub const CRITICAL_FAIL_SAFE: Duration = Duration::from_secs(24 * 60 * 60);
/// How many students [`HealthDataCache::invalidate_students`] drops per Redis pipeline (and
/// invalidation message): 256 students, 1 024 keys.
const INVALIDATE_CHUNK: usize = 256;

/// The tags of the cached data types, as the report's `invalidateTypes` name them.
pub mod tags {
    /// A student's health summary.
    pub const HEALTH_SUMMARY: &str = "health-summary";
    /// Vaccination lists.
    pub const VACCINATIONS: &str = "vaccinations";
    /// Allergy lists.
    pub const ALLERGIES: &str = "allergies";
    /// Chronic-condition lists.
    pub const CHRONIC_CONDITIONS: &str = "chronic-conditions";
    /// Every type, in the order above.
    pub const ALL: [&str; 4] = [HEALTH_SUMMARY, VACCINATIONS, ALLERGIES, CHRONIC_CONDITIONS];
}

/// The kinds of health data cached per student.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HealthData {
    /// [`HealthSummary`].
    Summary,
    /// `Vec<Vaccination>`.
    Vaccinations,
    /// `Vec<Allergy>`.
    Allergies,
    /// `Vec<ChronicCondition>`.
    ChronicConditions,
}

impl HealthData {
    /// Every kind.
    pub const ALL: [HealthData; 4] = [
        HealthData::Summary,
        HealthData::Vaccinations,
        HealthData::Allergies,
        HealthData::ChronicConditions,
    ];

    /// The tag of this kind (see [`tags`]).
    pub fn tag(self) -> &'static str {
        match self {
            HealthData::Summary => tags::HEALTH_SUMMARY,
            HealthData::Vaccinations => tags::VACCINATIONS,
            HealthData::Allergies => tags::ALLERGIES,
            HealthData::ChronicConditions => tags::CHRONIC_CONDITIONS,
        }
    }

    /// The kind a tag names.
    pub fn from_tag(tag: &str) -> Option<Self> {
        HealthData::ALL.into_iter().find(|k| k.tag() == tag)
    }

    /// How long this kind stays cached.
    pub fn ttl(self) -> Duration {
        match self {
            HealthData::Summary => SUMMARY_TTL,
            _ => RECORDS_TTL,
        }
    }

    /// The cache key of this kind for one student: ids only, never a name (keys are visible
    /// in Redis, unencrypted).
    pub fn key(self, student: Uuid) -> String {
        let mut key = String::with_capacity(KEY_LEN);
        self.push_key(student, &mut key);
        key
    }

    /// Appends [`key`](Self::key) to `out`.
    fn push_key(self, student: Uuid, out: &mut String) {
        out.push_str("health:");
        out.push_str(self.tag());
        out.push(':');
        push_uuid(student, out);
    }

    /// The kind and student of a key made by [`key`](Self::key).
    pub fn parse_key(key: &str) -> Option<(HealthData, Uuid)> {
        let rest = key.strip_prefix("health:")?;
        let (tag, id) = rest.split_once(':')?;
        Some((HealthData::from_tag(tag)?, id.parse().ok()?))
    }
}

/// The cache group of a student: every key of one student is in it, so
/// `cache().invalidate_group(&student_group(id))` drops them all at once.
pub fn student_group(student: Uuid) -> String {
    let mut group = String::with_capacity(STUDENT_GROUP_PREFIX.len() + Uuid::encode_buffer().len());
    push_student_group(student, &mut group);
    group
}

/// What every [`student_group`] starts with.
const STUDENT_GROUP_PREFIX: &str = "student:";

/// Room for the longest key and group tag of one student (the kind's tag is a word).
const KEY_LEN: usize = 64;

/// Appends [`student_group`] to `out`.
fn push_student_group(student: Uuid, out: &mut String) {
    out.push_str(STUDENT_GROUP_PREFIX);
    push_uuid(student, out);
}

/// Appends `id` hyphenated in lower case (its `Display`), without the formatting machinery.
fn push_uuid(id: Uuid, out: &mut String) {
    out.push_str(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()));
}

/// Where one kind of one student's data is cached: its key, its TTL and its tags (the kind's
/// tag and the student's group, so that invalidating either drops it). The reads, the puts
/// and the warmer all cache through one.
pub(crate) struct Slot {
    kind: HealthData,
    /// The key, then the group tag: one allocation for both, since every read builds a
    /// slot, hit or miss.
    text: String,
    /// Where the group tag starts in `text`.
    split: usize,
}

impl Slot {
    /// The slot of `kind` of `student`.
    pub(crate) fn new(kind: HealthData, student: Uuid) -> Self {
        let mut text = String::with_capacity(2 * KEY_LEN);
        kind.push_key(student, &mut text);
        let split = text.len();
        text.push_str(TieredCache::GROUP_TAG_PREFIX);
        push_student_group(student, &mut text);
        Slot { kind, text, split }
    }

    /// The cache key ([`HealthData::key`]).
    pub(crate) fn key(&self) -> &str {
        &self.text[..self.split]
    }

    /// How long the kind stays cached ([`HealthData::ttl`]).
    pub(crate) fn ttl(&self) -> Duration {
        self.kind.ttl()
    }

    /// The kind's tag and the student's group tag.
    pub(crate) fn tags(&self) -> [&str; 2] {
        [self.kind.tag(), &self.text[self.split..]]
    }
}

/// A student's health data through the cache: get-or-load with the report's TTLs, explicit
/// puts (the report's `cacheStudentHealthSummary` …), invalidation of one student or one type.
///
/// Reads return the cached value shared (`Arc<HealthSummary>`, `Arc<Vec<Allergy>>` …): an
/// L1 hit decodes and copies nothing; field access goes through the `Arc` as through a
/// reference, and `(*value).clone()` gives an owned copy where one is needed.
///
/// A miss reads through a [`HealthSource`]: vitals' own tables ([`VitalsSchema`], what
/// [`new`](Self::new) builds) or the host's ([`with_source`](Self::with_source)); the keys,
/// TTLs, groups and invalidation are the same either way.
///
/// Cloning is cheap (a pool handle, a cache handle and an `Arc` of the source); share clones
/// across tasks.
///
/// # Example
/// ```no_run
/// # async fn example(vitals: vitals::Vitals, id: uuid::Uuid) -> Result<(), vitals::Error> {
/// let health = vitals.health_cache();
/// let summary = health.student_health_summary(id).await?; // L1, then L2, then the database
/// health.invalidate_student(id).await; // after a write of that student's records
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct HealthDataCache {
    db: Db,
    /// `None` when the school-health domain is off: every read is then `Error::Config`.
    source: Option<Arc<dyn HealthSource>>,
    cache: TieredCache,
    /// Where misses read: a replica that replayed every write before the load, or the primary.
    reads: Reads,
}

impl std::fmt::Debug for HealthDataCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthDataCache")
            .field("db", &self.db)
            .field("source", &self.source.as_ref().map(|_| "dyn HealthSource"))
            .field("cache", &self.cache)
            .finish()
    }
}

impl HealthDataCache {
    /// A health cache over vitals' `tables` through `db`, and `cache`.
    pub fn new(db: Db, tables: Tables, cache: TieredCache) -> Self {
        Self::with_source(db, Arc::new(VitalsSchema::new(tables)), cache)
    }

    /// A health cache whose misses read `source` (the host's tables, say) through `db`.
    pub fn with_source(db: Db, source: Arc<dyn HealthSource>, cache: TieredCache) -> Self {
        HealthDataCache {
            reads: Reads::primary(db.clone()),
            db,
            source: Some(source),
            cache,
        }
    }

    /// The health cache of a host that turned the school-health domain off: its reads return
    /// [`Error::Config`] naming `VITALS_HEALTH`; invalidations still work.
    pub(crate) fn disabled(db: Db, cache: TieredCache) -> Self {
        HealthDataCache {
            reads: Reads::primary(db.clone()),
            db,
            source: None,
            cache,
        }
    }

    /// Misses read through `reads` (the facade's replicas): each load takes the primary's WAL
    /// position after the cache's generation snapshot and reads a replica that replayed it,
    /// or the primary, so a load after an invalidation never caches a replica's older row.
    pub(crate) fn with_reads(mut self, reads: Reads) -> Self {
        self.reads = reads;
        self
    }

    fn source(&self) -> Result<&dyn HealthSource, Error> {
        self.source.as_deref().ok_or_else(health_off)
    }

    /// The underlying cache.
    pub fn cache(&self) -> &TieredCache {
        &self.cache
    }

    /// Get-or-load of `kind`; `load` is called (and its future boxed) on a miss only.
    async fn through<'a, T>(
        &self,
        kind: HealthData,
        student: Uuid,
        load: impl Fn(Db) -> SourceFuture<'a, T>,
    ) -> Result<Arc<T>, Error>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let slot = Slot::new(kind, student);
        self.cache
            .get_or_load(slot.key(), slot.ttl(), &slot.tags(), || {
                self.reads.run(true, load)
            })
            .await
    }

    /// A student's health summary (5 minutes); `None` when there is no such student (not
    /// cached, so a student created a moment later is found).
    ///
    /// # Errors
    /// The source's error on a miss (a database error, scrubbed).
    pub async fn student_health_summary(
        &self,
        student: Uuid,
    ) -> Result<Option<Arc<HealthSummary>>, Error> {
        // Through get_or_load, like the lists: one load for concurrent misses, and a load
        // overtaken by an invalidation is returned but not cached. "No such student" travels
        // as an error so that it is not cached either.
        enum Miss {
            NotFound,
            Failed(Error),
        }
        let (reads, source) = (&self.reads, self.source()?);
        let slot = Slot::new(HealthData::Summary, student);
        let loaded = self
            .cache
            .get_or_load(slot.key(), slot.ttl(), &slot.tags(), || async move {
                let read = |db: Db| async move { source.health_summary(&db, student).await };
                match reads.run(true, read).await {
                    Ok(Some(summary)) => Ok(summary),
                    Ok(None) => Err(Miss::NotFound),
                    Err(e) => Err(Miss::Failed(e)),
                }
            })
            .await;
        match loaded {
            Ok(summary) => Ok(Some(summary)),
            Err(Miss::NotFound) => Ok(None),
            Err(Miss::Failed(e)) => Err(e),
        }
    }

    /// A student's vaccinations (10 minutes).
    ///
    /// # Errors
    /// The source's error on a miss (a database error, scrubbed).
    pub async fn vaccinations(&self, student: Uuid) -> Result<Arc<Vec<Vaccination>>, Error> {
        let source = self.source()?;
        self.through(HealthData::Vaccinations, student, move |db| {
            Box::pin(async move { source.vaccinations(&db, student).await })
        })
        .await
    }

    /// A student's active allergies (10 minutes); served stale for up to
    /// [`CRITICAL_FAIL_SAFE`] when the database fails ([`allergies_loaded`](Self::allergies_loaded)
    /// says when).
    ///
    /// # Errors
    /// The source's error on a miss with nothing to serve stale (a database error, scrubbed).
    pub async fn allergies(&self, student: Uuid) -> Result<Arc<Vec<Allergy>>, Error> {
        Ok(self.allergies_loaded(student).await?.value)
    }

    /// [`allergies`](Self::allergies), and whether the list is stale: past its TTL, served
    /// because the database failed (fail-safe, [`CRITICAL_FAIL_SAFE`]).
    ///
    /// # Errors
    /// The source's error on a miss with nothing to serve stale (a database error, scrubbed).
    pub async fn allergies_loaded(&self, student: Uuid) -> Result<Loaded<Vec<Allergy>>, Error> {
        self.through_fail_safe(HealthData::Allergies, student, |source, db, student| {
            Box::pin(async move { source.allergies(&db, student).await })
        })
        .await
    }

    /// A student's chronic conditions (10 minutes); served stale for up to
    /// [`CRITICAL_FAIL_SAFE`] when the database fails.
    ///
    /// # Errors
    /// The source's error on a miss with nothing to serve stale (a database error, scrubbed).
    pub async fn chronic_conditions(
        &self,
        student: Uuid,
    ) -> Result<Arc<Vec<ChronicCondition>>, Error> {
        Ok(self.chronic_conditions_loaded(student).await?.value)
    }

    /// [`chronic_conditions`](Self::chronic_conditions), and whether the list is stale.
    ///
    /// # Errors
    /// The source's error on a miss with nothing to serve stale (a database error, scrubbed).
    pub async fn chronic_conditions_loaded(
        &self,
        student: Uuid,
    ) -> Result<Loaded<Vec<ChronicCondition>>, Error> {
        self.through_fail_safe(
            HealthData::ChronicConditions,
            student,
            |source, db, student| {
                Box::pin(async move { source.chronic_conditions(&db, student).await })
            },
        )
        .await
    }

    /// Get-or-load of `kind` with fail-safe for [`CRITICAL_FAIL_SAFE`] (and the configured
    /// eager refresh): the loader owns its handles, since a refresh may run after the call.
    async fn through_fail_safe<T>(
        &self,
        kind: HealthData,
        student: Uuid,
        load: fn(Arc<dyn HealthSource>, Db, Uuid) -> SourceFuture<'static, T>,
    ) -> Result<Loaded<T>, Error>
    where
        T: Serialize + DeserializeOwned + Default + Send + Sync + 'static,
    {
        let source = self.source.clone().ok_or_else(health_off)?;
        let reads = self.reads.clone();
        let slot = Slot::new(kind, student);
        let options = self.cache.load_options().fail_safe(CRITICAL_FAIL_SAFE);
        let loaded = self
            .cache
            .get_or_load_with(
                slot.key(),
                slot.ttl(),
                &slot.tags(),
                &options,
                move || async move {
                    let read = |db: Db| load(source.clone(), db, student);
                    reads.run(true, read).await.map(Some)
                },
            )
            .await?;
        // The loader never says "not found" (a student without records has empty lists).
        Ok(loaded.unwrap_or_else(|| Loaded::new(Arc::new(T::default()), false)))
    }

    /// Caches `value` as `kind` of `student`, with the kind's TTL, tag and the student's group.
    /// Give it the type the reads return (`HealthSummary` for [`HealthData::Summary`],
    /// `Vec<Vaccination>` …): L1 keeps the value itself, and a read as another type is a miss.
    pub async fn put<T>(&self, kind: HealthData, student: Uuid, value: T)
    where
        T: Serialize + Send + Sync + 'static,
    {
        let slot = Slot::new(kind, student);
        if let Err(e) = self
            .cache
            .set(slot.key(), value, slot.ttl(), &slot.tags())
            .await
        {
            tracing::warn!(kind = kind.tag(), error = %e, "could not cache health data");
        }
    }

    /// The report's `cacheStudentHealthSummary` (a copy of `summary` is kept).
    pub async fn cache_student_health_summary(&self, student: Uuid, summary: &HealthSummary) {
        self.put(HealthData::Summary, student, summary.clone())
            .await;
    }

    /// The report's `cacheVaccinations` (a copy of `list` is kept).
    pub async fn cache_vaccinations(&self, student: Uuid, list: &[Vaccination]) {
        self.put(HealthData::Vaccinations, student, list.to_vec())
            .await;
    }

    /// The report's `cacheAllergies` (a copy of `list` is kept).
    pub async fn cache_allergies(&self, student: Uuid, list: &[Allergy]) {
        self.put(HealthData::Allergies, student, list.to_vec())
            .await;
    }

    /// The report's `cacheChronicConditions` (a copy of `list` is kept).
    pub async fn cache_chronic_conditions(&self, student: Uuid, list: &[ChronicCondition]) {
        self.put(HealthData::ChronicConditions, student, list.to_vec())
            .await;
    }

    /// Drops everything cached about one student, on every instance (the report's
    /// `invalidateStudentHealthData`).
    ///
    /// Deletes the student's keys by name (they are known: one per [`HealthData`]) rather
    /// than invalidating the student's group tag: a tag invalidation must also refuse to cache
    /// every load in flight anywhere (it cannot know which keys they are for), which under a
    /// steady write rate would keep most reads uncached. Entries a host cached under
    /// [`student_group`] with keys of its own go with
    /// `cache().invalidate_group(&student_group(id))`.
    pub async fn invalidate_student(&self, student: Uuid) {
        self.invalidate(student, &HealthData::ALL).await;
    }

    /// Drops everything cached about many students (after a bulk write such as an import):
    /// the same keys as [`invalidate_student`](Self::invalidate_student) for each, deleted 256
    /// students at a time (one Redis pipeline and one invalidation message per 256 students
    /// rather than per student).
    pub async fn invalidate_students(&self, students: &[Uuid]) {
        for chunk in students.chunks(INVALIDATE_CHUNK) {
            let keys: Vec<String> = chunk
                .iter()
                .flat_map(|&student| HealthData::ALL.map(|k| k.key(student)))
                .collect();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            self.cache.delete_many(&keys).await;
        }
    }

    /// The column of an import record of type `record_type` that names the student whose
    /// cached data the record changes (`id` of a `student`, `student_id` of the others), or
    /// `None` for a type that is none of the healthcare ones. What `Vitals::import`
    /// invalidates after it wrote rows.
    pub(crate) fn student_column(record_type: &str) -> Option<&'static str> {
        match record_type {
            records::STUDENT => Some("id"),
            records::VACCINATION | records::ALLERGY | records::CHRONIC_CONDITION => {
                Some("student_id")
            }
            _ => None,
        }
    }

    /// Drops one kind of one student's data (e.g. after adding a vaccination: the
    /// vaccinations and the summary).
    pub async fn invalidate(&self, student: Uuid, kinds: &[HealthData]) {
        let keys: Vec<String> = kinds.iter().map(|k| k.key(student)).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.cache.delete_many(&keys).await;
    }

    /// Drops every entry under a tag, on every instance (the report's
    /// `invalidateByTag('vaccinations')`).
    pub async fn invalidate_tag(&self, tag: &str) -> usize {
        self.cache.invalidate_tag(tag).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slot writes its key and group tag into one buffer: they are the key, the group and
    /// the group's tag the rest of vitals names (invalidation, the warmer, the endpoints).
    #[test]
    fn a_slot_names_the_key_and_group_tag_everyone_else_does() {
        let student = Uuid::from_u128(0x4f1c_0000_0000_4000_8000_0000_0000_00ab);
        assert_eq!(
            student_group(student),
            "student:4f1c0000-0000-4000-8000-0000000000ab"
        );
        for kind in HealthData::ALL {
            let slot = Slot::new(kind, student);
            assert_eq!(slot.key(), kind.key(student));
            assert_eq!(slot.key(), format!("health:{}:{student}", kind.tag()));
            assert_eq!(
                slot.tags(),
                [
                    kind.tag(),
                    TieredCache::group_tag(&student_group(student)).as_str()
                ]
            );
            assert_eq!(HealthData::parse_key(slot.key()), Some((kind, student)));
        }
    }
}
