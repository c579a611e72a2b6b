//! The in-process tier: sharded maps of decoded values with a TTL per entry, bounded in
//! entries and in bytes, in recency order behind a TinyLFU admission (`admission.rs`). This
//! file is the cache and its operations; a shard (its map, tag index and eviction) is
//! `l1_shard.rs`, how a key is hashed `l1_hash.rs`.

use std::any::Any;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use crate::admission::MAX_COUNT;
use crate::clock;
use crate::error::CacheError;
use crate::l1_hash::KeyHasher;
use crate::l1_key::EntryKey;
pub(crate) use crate::l1_shard::Value;
use crate::l1_shard::{Entry, Shard};
use crate::tier::{Placement, Tier};

/// The tags of a value L1 is given ([`L1Cache::insert_if`]), or, for a value read from
/// Redis, those of the entry of its key it replaces ([`L1Cache::fill_if`]).
#[derive(Clone, Copy)]
enum Tags<'a> {
    Given(&'a [&'a str]),
    OfReplaced,
}

/// What a conditional insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inserted {
    /// L1 holds the value.
    Held,
    /// The condition did not hold (an invalidation moved the epoch): nothing changed.
    ConditionFailed,
    /// Admission refused it or it is larger than its shard's byte budget (counted in
    /// [`L1Cache::rejected`]); an older value of the key is gone.
    Refused,
}

/// What a typed lookup found.
pub(crate) enum Lookup<T> {
    /// The value, of the type asked for.
    Hit(Arc<T>),
    /// A value of another type (a miss, counted apart).
    Mismatch,
    /// Nothing (or an expired entry).
    Miss,
}

/// A shard's lock on cache lines of its own: a `RwLock<Shard>` is 224 bytes, so unpadded
/// two shards' lock words could share a line, and a hit in one (its read lock and unlock
/// write the lock word) would evict the line from the core hitting the other. 128 bytes:
/// the line pair that x86's adjacent-line prefetch brings in together.
#[repr(align(128))]
struct ShardLock(RwLock<Shard>);

impl std::ops::Deref for ShardLock {
    type Target = RwLock<Shard>;

    fn deref(&self) -> &RwLock<Shard> {
        &self.0
    }
}

/// A bounded in-process cache of decoded values: `shards` maps, each behind its own
/// read-write lock, with a TTL per entry (expired entries are dropped when met), at most
/// `max_size` entries and `max_bytes` bytes (keys plus the encoded size of each value, the
/// weight the caller gives; split evenly over the shards). It also implements [`Tier`]
/// (holding the bytes it is given as the value).
///
/// Values are kept decoded, as `Arc<T>` behind a type-checked handle (`dyn Any`): a hit
/// clones the `Arc`, nothing is decoded or copied, and a read as another type than the
/// value was stored as is a miss ([`L1Cache::get`] returns `None`; a
/// [`TieredCache`](crate::TieredCache) counts it in `type_mismatches`).
///
/// A key is hashed once per call, by a seeded hasher held by the cache
/// (foldhash, `lru`'s default): bits 32 and up of the 64-bit hash pick the
/// shard, and each shard's map is keyed by the whole hash (passed through to
/// the map's table as is), the entry keeping the full key, which a lookup
/// compares. Two keys with the same hash (about 2^-64 a pair) therefore
/// share a slot: getting one while the other is stored is a miss, inserting
/// one replaces the other, and removing one (by key or by tag) never removes
/// the other.
///
/// A hit takes only a read lock: it counts itself on the entry (one relaxed store until
/// the count saturates), and the entry is moved to the front of its LRU list (under the
/// write lock) only once more than a quarter of the shard's capacity was inserted since its
/// last move. An entry hit at least that often is never the LRU victim, so this is LRU as
/// far as eviction can tell, while concurrent hits don't serialise on a lock. Expiry uses a
/// coarse clock (2 ms resolution).
///
/// Admission: a key not held, inserted into a full shard, takes the place of the least
/// recently used entry only if it was asked for more often lately (a TinyLFU sketch with a
/// doorkeeper per shard, `admission.rs`); else it is not held ([`L1Cache::insert`] returns
/// false, counted in [`L1Cache::rejected`]). That keeps a scan of keys read once from
/// flushing the entries read all day. An entry larger than a shard's byte budget is never
/// held.
///
/// `L1Cache` is `Send + Sync`; share it by `Arc` (or through a
/// [`TieredCache`](crate::TieredCache), which is cheap to clone).
pub struct L1Cache {
    shards: Box<[ShardLock]>,
    mask: usize,
    hasher: KeyHasher,
    max_ttl: Duration,
    entries: AtomicUsize,
    bytes: AtomicUsize,
    rejected: AtomicU64,
    evictions: AtomicU64,
    expired: AtomicU64,
}

impl std::fmt::Debug for L1Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L1Cache")
            .field("shards", &self.shards.len())
            .field("entries", &self.len())
            .field("bytes", &self.bytes())
            .finish()
    }
}

impl L1Cache {
    /// A cache of at most `max_size` entries (at least 1) split over `shards`
    /// (rounded down to a power of two, no more than `max_size`), each entry
    /// living at most `max_ttl`; no bound in bytes.
    pub fn new(max_size: usize, max_ttl: Duration, shards: usize) -> Self {
        Self::with_max_bytes(max_size, usize::MAX, max_ttl, shards)
    }

    /// Like [`L1Cache::new`], also bounded to `max_bytes` (keys plus the weights given to
    /// [`L1Cache::insert`]), split evenly over the shards: an entry larger than a shard's
    /// part is not held.
    pub fn with_max_bytes(
        max_size: usize,
        max_bytes: usize,
        max_ttl: Duration,
        shards: usize,
    ) -> Self {
        let max_size = max_size.max(1);
        let mut n = shards.clamp(1, 1024).min(max_size);
        if !n.is_power_of_two() {
            n = n.next_power_of_two() / 2;
        }
        let (base, extra) = (max_size / n, max_size % n);
        let (byte_base, byte_extra) = (max_bytes / n, max_bytes % n);
        let shards = (0..n)
            .map(|i| {
                // `cap` >= 1 because n <= max_size.
                let cap = base + usize::from(i < extra);
                let shard_bytes = byte_base + usize::from(i < byte_extra);
                ShardLock(RwLock::new(Shard::new(cap, shard_bytes)))
            })
            .collect();
        Self {
            shards,
            mask: n - 1,
            hasher: KeyHasher::default(),
            max_ttl,
            entries: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            rejected: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            expired: AtomicU64::new(0),
        }
    }

    /// The key's 64-bit hash (`l1_hash.rs`).
    #[inline]
    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash(key)
    }

    /// The shard of a key hash: bits 32 and up, which the shard's table does
    /// not use for the bucket (low bits) and only 7 top bits of for the
    /// control byte.
    #[inline]
    fn shard_of(&self, hash: u64) -> &RwLock<Shard> {
        &self.shards[(hash >> 32) as usize & self.mask].0
    }

    fn account_remove(&self, e: &Entry) {
        self.entries.fetch_sub(1, Ordering::Relaxed);
        self.bytes.fetch_sub(e.weight, Ordering::Relaxed);
    }

    /// The value of `key` as a `T`, if present, not expired and stored as a `T`; marks it
    /// recently used. A value of another type is `None` (see [`L1Cache`]).
    #[inline]
    pub fn get<T: Any + Send + Sync>(&self, key: &str) -> Option<Arc<T>> {
        match self.lookup(key) {
            Lookup::Hit(v) => Some(v),
            Lookup::Mismatch | Lookup::Miss => None,
        }
    }

    /// What [`L1Cache::get`] found, a value of another type told apart from a miss.
    #[inline]
    pub(crate) fn lookup<T: Any + Send + Sync>(&self, key: &str) -> Lookup<T> {
        let hash = self.hash(key);
        let lock = self.shard_of(hash);
        let shard = read(lock);
        let Some(e) = shard.peek(hash, key) else {
            return Lookup::Miss;
        };
        let now = clock::now_ms();
        if e.expires <= now {
            // Kept for fail-safe until its horizon (`fail_safe.rs`), a miss all the same.
            let dead = e.stale_until.load(Ordering::Relaxed) <= now;
            drop(shard);
            if dead {
                self.remove_expired(lock, hash, key, now);
            }
            return Lookup::Miss;
        }
        let Ok(v) = e.value.clone().downcast::<T>() else {
            return Lookup::Mismatch;
        };
        let hits = e.hits.load(Ordering::Relaxed);
        if hits < MAX_COUNT {
            e.hits.store(hits + 1, Ordering::Relaxed);
        }
        if shard.inserts.wrapping_sub(e.promoted) > shard.promote_after {
            drop(shard);
            promote(lock, hash, key);
        }
        Lookup::Hit(v)
    }

    /// Removes `key` if still expired at `now` (its shard's write lock is
    /// taken anew, so it may have been set again meanwhile).
    #[cold]
    #[inline(never)]
    fn remove_expired(&self, lock: &RwLock<Shard>, hash: u64, key: &str, now: u64) {
        let mut shard = write(lock);
        if shard
            .peek(hash, key)
            .is_some_and(|e| e.stale_until.load(Ordering::Relaxed) <= now)
        {
            if let Some(e) = shard.take(hash) {
                self.expired.fetch_add(1, Ordering::Relaxed);
                self.account_remove(&e);
            }
        }
    }

    /// Whether `key` is present and not expired, without touching recency.
    pub fn contains(&self, key: &str) -> bool {
        let hash = self.hash(key);
        let shard = read(self.shard_of(hash));
        shard
            .peek(hash, key)
            .is_some_and(|e| e.expires > clock::now_ms())
    }

    /// Stores `value` under `key` for `ttl` (capped by the cache's maximum), indexed under
    /// `tags` and accounted as `weight` bytes (the size of its encoded form) plus the key's.
    /// Returns whether L1 holds it: a key not held that finds its shard full takes the
    /// place of the least recently used entry only if admission lets it (see [`L1Cache`]).
    /// Either way an older value of `key` is gone.
    pub fn insert<T: Any + Send + Sync>(
        &self,
        key: &str,
        value: Arc<T>,
        weight: usize,
        ttl: Duration,
        tags: &[&str],
    ) -> bool {
        self.insert_if(key, value, weight, ttl, tags, || true) == Inserted::Held
    }

    /// Like [`L1Cache::insert`], but only if `cond` (evaluated under the
    /// shard's lock) holds; says which way it went. Lets a reader fill L1
    /// only if no invalidation of the key was seen since it read the value.
    pub(crate) fn insert_if(
        &self,
        key: &str,
        value: Value,
        weight: usize,
        ttl: Duration,
        tags: &[&str],
        cond: impl FnOnce() -> bool,
    ) -> Inserted {
        self.insert_with(key, value, weight, ttl, Tags::Given(tags), cond)
    }

    /// [`L1Cache::insert_if`] for a value read from Redis, whose tags are not known: an
    /// entry of `key` it replaces (expired, or of another type) hands on its tags and its
    /// fail-safe horizon (`fail_safe.rs`), so that a copy refilled after L1's TTL, shorter
    /// than the value's, is still found by a tag invalidation and still served stale when
    /// a reload fails. The replaced entry was indexed under those tags until now (a tag
    /// invalidation would have removed it), so they are the value's.
    pub(crate) fn fill_if(
        &self,
        key: &str,
        value: Value,
        weight: usize,
        ttl: Duration,
        cond: impl FnOnce() -> bool,
    ) -> Inserted {
        self.insert_with(key, value, weight, ttl, Tags::OfReplaced, cond)
    }

    fn insert_with(
        &self,
        key: &str,
        value: Value,
        weight: usize,
        ttl: Duration,
        tags: Tags<'_>,
        cond: impl FnOnce() -> bool,
    ) -> Inserted {
        let expires = clock::deadline_ms(ttl.min(self.max_ttl));
        // L1's cap cut the entry's life short of its value's: when the value is due for an
        // eager refresh is unknown (`fail_safe.rs`).
        let capped = ttl > self.max_ttl;
        let size = key.len().saturating_add(weight);
        let hash = self.hash(key);
        let mut evicted = Vec::new();
        // Whether `evicted` starts with the key's own older value (not an eviction).
        let replaced_one;
        let held = {
            let mut guard = write(self.shard_of(hash));
            if !cond() {
                return Inserted::ConditionFailed;
            }
            let shard = &mut *guard;
            // The value it replaces (of `key`, or of a colliding key) goes first, held or not.
            let replaced = shard.take(hash);
            let freq = match replaced {
                Some(_) => None,
                None => {
                    let (freq, aged) = shard.admission.record(hash);
                    if aged {
                        shard.age_hits();
                    }
                    Some(freq)
                }
            };
            replaced_one = usize::from(replaced.is_some());
            // What an entry of this very key hands on (not one of a colliding key).
            let handed = match tags {
                Tags::OfReplaced => replaced
                    .as_ref()
                    .filter(|e| e.key.is(key))
                    .map(|e| (e.tags.clone(), e.stale_until.load(Ordering::Relaxed))),
                Tags::Given(_) => None,
            };
            evicted.extend(replaced);
            let fits = size <= shard.max_bytes && shard.make_room(size, freq, &mut evicted);
            if fits {
                shard.inserts = shard.inserts.wrapping_add(1);
                let (tags, stale_until) = match (handed, tags) {
                    (Some((tags, horizon)), _) => (tags, horizon.max(expires)),
                    (None, Tags::Given(tags)) => {
                        (tags.iter().map(|t| Arc::<str>::from(*t)).collect(), expires)
                    }
                    (None, Tags::OfReplaced) => (Box::default(), expires),
                };
                for t in tags.iter() {
                    shard.tags.entry(t.clone()).or_default().insert(hash);
                }
                shard.bytes += size;
                shard.map.push(
                    hash,
                    Entry {
                        expires,
                        stale_until: AtomicU64::new(stale_until),
                        refresh_at: AtomicU64::new(0),
                        promoted: shard.inserts,
                        hits: AtomicU8::new(0),
                        value,
                        weight: size,
                        key: EntryKey::new(key),
                        capped,
                        tags,
                    },
                );
                self.entries.fetch_add(1, Ordering::Relaxed);
                self.bytes.fetch_add(size, Ordering::Relaxed);
            }
            fits
        };
        if !held {
            self.rejected.fetch_add(1, Ordering::Relaxed);
        }
        let made_room = evicted.len().saturating_sub(replaced_one);
        if made_room > 0 {
            self.evictions
                .fetch_add(made_room as u64, Ordering::Relaxed);
        }
        // Dropped outside the lock: a value's destructor may be long.
        for e in &evicted {
            self.account_remove(e);
        }
        if held {
            Inserted::Held
        } else {
            Inserted::Refused
        }
    }

    /// Removes `key`; true if it was present.
    pub fn remove(&self, key: &str) -> bool {
        let hash = self.hash(key);
        let mut shard = write(self.shard_of(hash));
        if shard.peek(hash, key).is_none() {
            return false;
        }
        match shard.take(hash) {
            Some(e) => {
                self.account_remove(&e);
                true
            }
            None => false,
        }
    }

    /// Removes every entry indexed under `tag`; returns their keys.
    pub fn invalidate_tag(&self, tag: &str) -> Vec<String> {
        let mut removed = Vec::new();
        for s in self.shards.iter() {
            let mut shard = write(s);
            let Some(hashes) = shard.tags.remove(tag) else {
                continue;
            };
            for hash in hashes {
                // The index names only entries set with the tag.
                if let Some(e) = shard.take(hash) {
                    self.account_remove(&e);
                    removed.push(e.key.into_string());
                }
            }
        }
        removed
    }

    /// Removes every entry (the admission's frequencies stay: they are still true).
    pub fn clear(&self) {
        for s in self.shards.iter() {
            let mut shard = write(s);
            for (_, e) in shard.map.iter() {
                self.account_remove(e);
            }
            shard.map.clear();
            shard.tags.clear();
            shard.bytes = 0;
        }
    }

    /// Number of entries (expired ones not yet met included).
    pub fn len(&self) -> usize {
        self.entries.load(Ordering::Relaxed)
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of keys and values held (values by the weight they were inserted with).
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Inserts not held: refused by admission, or larger than a shard's byte budget.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Entries dropped to make room for another (the entry or byte bound).
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Entries found expired by a lookup (their TTL ran out) and dropped.
    pub fn expired(&self) -> u64 {
        self.expired.load(Ordering::Relaxed)
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }
}

// For fail-safe and eager refresh (`fail_safe.rs`), which read and arm entries in place.
impl L1Cache {
    /// `f` of `key`'s entry, expired or not, under its shard's read lock (recency untouched).
    pub(crate) fn with_entry<R>(&self, key: &str, f: impl FnOnce(&Entry) -> R) -> Option<R> {
        let hash = self.hash(key);
        let shard = read(self.shard_of(hash));
        shard.peek(hash, key).map(f)
    }
}

/// Moves `key`'s entry, if still there, to the front of its shard's LRU list.
#[cold]
#[inline(never)]
fn promote(lock: &RwLock<Shard>, hash: u64, key: &str) {
    let mut shard = write(lock);
    if shard.peek(hash, key).is_some() {
        let inserts = shard.inserts;
        if let Some(e) = shard.map.get_mut(&hash) {
            e.promoted = inserts;
        }
    }
}

// A panic while holding a shard leaves a consistent LRU map (all updates are
// single calls), so a poisoned lock is taken over. `read` is inlined: a hit takes it.
#[inline]
fn read(m: &RwLock<Shard>) -> RwLockReadGuard<'_, Shard> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write(m: &RwLock<Shard>) -> RwLockWriteGuard<'_, Shard> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// As a [`Tier`], L1 holds the bytes it is given (an `Arc<[u8]>` value weighing its length).
impl Tier for L1Cache {
    async fn get(&self, key: &str) -> Result<Option<Arc<[u8]>>, CacheError> {
        Ok(L1Cache::get::<Arc<[u8]>>(self, key).map(|b| Arc::clone(&*b)))
    }

    async fn set(&self, at: Placement<'_>, value: Arc<[u8]>) -> Result<(), CacheError> {
        let weight = value.len();
        self.insert(at.key, Arc::new(value), weight, at.ttl, at.tags);
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        Ok(self.remove(key))
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<u64, CacheError> {
        Ok(keys.iter().filter(|k| self.remove(k)).count() as u64)
    }

    async fn invalidate_tag(&self, tag: &str) -> Result<Vec<String>, CacheError> {
        Ok(L1Cache::invalidate_tag(self, tag))
    }
}

#[cfg(test)]
impl L1Cache {
    /// Keeps only the bits of `mask` of every key hash: with few bits left,
    /// distinct keys collide (and with none of bits 32 and up, all share the
    /// first shard).
    pub(crate) fn with_hash_mask(mut self, mask: u64) -> Self {
        self.hasher.mask = Some(mask);
        self
    }

    /// Inserts a `String` weighing its length.
    pub(crate) fn put(&self, key: &str, s: &str, ttl: Duration, tags: &[&str]) -> bool {
        self.insert(key, Arc::new(s.to_owned()), s.len(), ttl, tags)
    }

    /// The `String` under `key`, cloned.
    pub(crate) fn got(&self, key: &str) -> Option<String> {
        self.get::<String>(key).map(|s| String::clone(&s))
    }

    /// Tags indexed, over every shard.
    pub(crate) fn indexed_tags(&self) -> usize {
        self.shards.iter().map(|s| read(s).tags.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_expires_after_its_ttl() {
        let c = L1Cache::new(10, Duration::from_secs(60), 1);
        c.put("a", "1", Duration::ZERO, &[]);
        assert!(c.got("a").is_none());
        assert_eq!(c.len(), 0);
        c.put("b", "1", Duration::from_secs(3600), &[]);
        assert!(c.got("b").is_some());
    }

    #[test]
    fn max_ttl_caps_entry_ttl() {
        let c = L1Cache::new(10, Duration::ZERO, 1);
        c.put("a", "1", Duration::from_secs(3600), &[]);
        assert!(c.got("a").is_none());
    }

    #[test]
    fn tags_invalidate_and_do_not_leak() {
        let c = L1Cache::new(2, Duration::from_secs(60), 1);
        c.put(
            "a",
            "1",
            Duration::from_secs(60),
            &["allergies", "student:1"],
        );
        c.put("b", "1", Duration::from_secs(60), &["allergies"]);
        // Asked for twice, c is admitted in the place of a (the LRU entry).
        c.put("c", "1", Duration::from_secs(60), &["vaccinations"]);
        c.put("c", "1", Duration::from_secs(60), &["vaccinations"]);
        let mut removed = c.invalidate_tag("allergies");
        removed.sort();
        assert_eq!(removed, ["b"]);
        assert!(c.got("c").is_some());
        let shard = read(&c.shards[0]);
        assert_eq!(shard.tags.len(), 1, "only vaccinations remains indexed");
    }

    #[test]
    fn overwrite_replaces_tags_and_accounting() {
        let c = L1Cache::new(10, Duration::from_secs(60), 1);
        c.put("a", "1234", Duration::from_secs(60), &["t1"]);
        c.put("a", "12", Duration::from_secs(60), &["t2"]);
        assert_eq!(c.len(), 1);
        assert_eq!(c.bytes(), 3);
        assert!(c.invalidate_tag("t1").is_empty());
        assert_eq!(c.invalidate_tag("t2"), ["a"]);
        assert_eq!((c.len(), c.bytes()), (0, 0));
    }

    #[test]
    fn clear_resets_counters() {
        let c = L1Cache::new(10, Duration::from_secs(60), 4);
        for i in 0..8 {
            c.put(&i.to_string(), "xy", Duration::from_secs(60), &["t"]);
        }
        c.clear();
        assert_eq!((c.len(), c.bytes()), (0, 0));
        assert!(c.invalidate_tag("t").is_empty());
    }

    #[test]
    fn insert_if_tells_a_failed_condition_from_a_refusal() {
        let c = L1Cache::with_max_bytes(10, 100, Duration::from_secs(60), 1);
        let ttl = Duration::from_secs(60);
        let ins = |k: &str, weight, ok| c.insert_if(k, Arc::new(1u8), weight, ttl, &[], || ok);
        assert_eq!(ins("a", 1, false), Inserted::ConditionFailed);
        assert_eq!(c.rejected(), 0, "a failed condition is no refusal");
        assert_eq!(ins("b", 1_000, true), Inserted::Refused);
        assert_eq!(c.rejected(), 1);
        assert_eq!(ins("c", 1, true), Inserted::Held);
    }

    #[test]
    fn a_value_read_as_another_type_is_a_miss() {
        let c = L1Cache::new(10, Duration::from_secs(60), 1);
        c.insert("n", Arc::new(7u32), 4, Duration::from_secs(60), &[]);
        assert!(matches!(c.lookup::<u64>("n"), Lookup::Mismatch));
        assert!(c.get::<String>("n").is_none());
        assert!(matches!(c.lookup::<u32>("absent"), Lookup::Miss));
        assert_eq!(c.get::<u32>("n").as_deref(), Some(&7));
        // The hit shares the stored value: nothing is copied.
        let a = c.get::<u32>("n").unwrap();
        let b = c.get::<u32>("n").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }
}
