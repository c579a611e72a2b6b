//! The in-process tier: sharded LRU maps with a TTL per entry.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use lru::LruCache;

use crate::clock;
use crate::error::CacheError;
use crate::tier::Tier;

struct Entry {
    /// Expiry on the coarse clock ([`clock::now_ms`]).
    expires: u64,
    /// The shard's insert count when this entry was last moved to the front.
    promoted: u64,
    value: Arc<[u8]>,
    /// The full key: the maps are keyed by its 64-bit hash, so a hit compares
    /// it to the key asked for.
    key: Box<str>,
    tags: Box<[Arc<str>]>,
}

/// A [`Hasher`] for keys that are already hashes: it passes a `u64` through.
/// The maps get the well-mixed output of the cache's key hasher, whose low
/// bits pick the bucket and top 7 bits the control byte in `hashbrown`.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    #[inline]
    fn write_u64(&mut self, h: u64) {
        self.0 = h;
    }

    // Only `u64`s are hashed here; other input is folded in, for completeness.
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

type PreHashed = BuildHasherDefault<PassThrough>;

struct Shard {
    /// Entries by key hash (see [`L1Cache`]).
    map: LruCache<u64, Entry, PreHashed>,
    /// Inserts so far; an entry hit after more than `promote_after` inserts
    /// since its last promotion is moved to the front again.
    inserts: u64,
    promote_after: u64,
    /// Tag to key hashes of this shard, only for entries set with tags here.
    /// A hash is in the map at most once, so it names one entry.
    tags: HashMap<Arc<str>, HashSet<u64, PreHashed>>,
}

impl Shard {
    fn forget_tags(&mut self, hash: u64, entry: &Entry) {
        for t in entry.tags.iter() {
            if let Some(hashes) = self.tags.get_mut(t) {
                hashes.remove(&hash);
                if hashes.is_empty() {
                    self.tags.remove(t);
                }
            }
        }
    }

    /// The entry of `key` (hash `hash`), if present: an entry of another key
    /// with the same hash is not it.
    #[inline]
    fn peek(&self, hash: u64, key: &str) -> Option<&Entry> {
        self.map.peek(&hash).filter(|e| *e.key == *key)
    }
}

/// A bounded in-process cache of serialised values: `shards` LRU maps, each
/// behind its own read-write lock, with a TTL per entry (expired entries are
/// dropped when met). It also implements [`Tier`].
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
/// A hit takes only a read lock: the entry is moved to the front of its LRU
/// list (under the write lock) only once more than a quarter of the shard's
/// capacity was inserted since its last move. An entry hit at least that
/// often is never evicted, so this is LRU as far as eviction can tell, while
/// concurrent hits don't serialise on a lock. Expiry uses a coarse clock
/// (2 ms resolution).
///
/// Values are kept as shared bytes (`Arc<[u8]>`), so a hit copies nothing.
/// `L1Cache` is `Send + Sync`; share it by `Arc` (or through a
/// [`TieredCache`](crate::TieredCache), which is cheap to clone).
pub struct L1Cache {
    shards: Box<[RwLock<Shard>]>,
    mask: usize,
    hasher: lru::DefaultHasher,
    /// Tests force hash collisions by masking hashes
    /// ([`L1Cache::with_hash_mask`]).
    #[cfg(test)]
    hash_mask: u64,
    max_ttl: Duration,
    entries: AtomicUsize,
    bytes: AtomicUsize,
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
    /// living at most `max_ttl`.
    pub fn new(max_size: usize, max_ttl: Duration, shards: usize) -> Self {
        let max_size = max_size.max(1);
        let mut n = shards.clamp(1, 1024).min(max_size);
        if !n.is_power_of_two() {
            n = n.next_power_of_two() / 2;
        }
        let base = max_size / n;
        let extra = max_size % n;
        let shards = (0..n)
            .map(|i| {
                let cap = base + usize::from(i < extra);
                RwLock::new(Shard {
                    // `cap` >= 1 because n <= max_size.
                    map: LruCache::with_hasher(
                        NonZeroUsize::new(cap).unwrap_or(NonZeroUsize::MIN),
                        PreHashed::default(),
                    ),
                    inserts: 0,
                    promote_after: (cap / 4) as u64,
                    tags: HashMap::new(),
                })
            })
            .collect();
        Self {
            shards,
            mask: n - 1,
            hasher: lru::DefaultHasher::default(),
            #[cfg(test)]
            hash_mask: u64::MAX,
            max_ttl,
            entries: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
        }
    }

    /// The key's 64-bit hash.
    #[inline]
    fn hash(&self, key: &str) -> u64 {
        // The bytes alone (foldhash mixes in their length): a hash is of one
        // whole key, so no terminator is needed.
        let mut h = self.hasher.build_hasher();
        h.write(key.as_bytes());
        let h = h.finish();
        #[cfg(test)]
        let h = h & self.hash_mask;
        h
    }

    /// The shard of a key hash: bits 32 and up, which the shard's table does
    /// not use for the bucket (low bits) and only 7 top bits of for the
    /// control byte.
    #[inline]
    fn shard_of(&self, hash: u64) -> &RwLock<Shard> {
        &self.shards[(hash >> 32) as usize & self.mask]
    }

    fn account_remove(&self, e: &Entry) {
        self.entries.fetch_sub(1, Ordering::Relaxed);
        self.bytes
            .fetch_sub(e.key.len() + e.value.len(), Ordering::Relaxed);
    }

    /// The value of `key` if present and not expired; marks it recently used.
    pub fn get(&self, key: &str) -> Option<Arc<[u8]>> {
        let hash = self.hash(key);
        let lock = self.shard_of(hash);
        let shard = read(lock);
        let e = shard.peek(hash, key)?;
        let now = clock::now_ms();
        if e.expires <= now {
            drop(shard);
            self.remove_expired(lock, hash, key, now);
            return None;
        }
        let v = e.value.clone();
        if shard.inserts.wrapping_sub(e.promoted) > shard.promote_after {
            drop(shard);
            promote(lock, hash, key);
        }
        Some(v)
    }

    /// Removes `key` if still expired at `now` (its shard's write lock is
    /// taken anew, so it may have been set again meanwhile).
    #[cold]
    #[inline(never)]
    fn remove_expired(&self, lock: &RwLock<Shard>, hash: u64, key: &str, now: u64) {
        let mut shard = write(lock);
        if shard.peek(hash, key).is_some_and(|e| e.expires <= now) {
            if let Some(e) = shard.map.pop(&hash) {
                shard.forget_tags(hash, &e);
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

    /// Stores `value` under `key` for `ttl` (capped by the cache's maximum),
    /// indexed under `tags`; evicts the least recently used entry of the
    /// shard if it is full.
    pub fn insert(&self, key: &str, value: Arc<[u8]>, ttl: Duration, tags: &[&str]) {
        self.insert_if(key, value, ttl, tags, || true);
    }

    /// Like [`L1Cache::insert`], but only if `cond` (evaluated under the
    /// shard's lock) holds; returns whether it inserted. Lets a reader fill L1
    /// only if no invalidation of the key was seen since it read the value.
    pub fn insert_if(
        &self,
        key: &str,
        value: Arc<[u8]>,
        ttl: Duration,
        tags: &[&str],
        cond: impl FnOnce() -> bool,
    ) -> bool {
        let expires = clock::deadline_ms(ttl.min(self.max_ttl));
        let tags: Box<[Arc<str>]> = tags.iter().map(|t| Arc::<str>::from(*t)).collect();
        let tagged = !tags.is_empty();
        let size = key.len() + value.len();
        let hash = self.hash(key);
        let mut guard = write(self.shard_of(hash));
        if !cond() {
            return false;
        }
        let shard = &mut *guard;
        shard.inserts = shard.inserts.wrapping_add(1);
        let entry = Entry {
            expires,
            promoted: shard.inserts,
            value,
            key: key.into(),
            tags,
        };
        self.entries.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(size, Ordering::Relaxed);
        if let Some((old_hash, old)) = shard.map.push(hash, entry) {
            // The entry this one replaced (same hash: the previous value of
            // `key`, or of a colliding key) or an evicted one.
            self.account_remove(&old);
            shard.forget_tags(old_hash, &old);
        }
        if tagged {
            // Indexed after the replaced entry is unindexed, which may have
            // had the same tags under the same hash.
            if let Some(e) = shard.map.peek(&hash) {
                for t in e.tags.iter() {
                    shard.tags.entry(t.clone()).or_default().insert(hash);
                }
            }
        }
        true
    }

    /// Removes `key`; true if it was present.
    pub fn remove(&self, key: &str) -> bool {
        let hash = self.hash(key);
        let mut shard = write(self.shard_of(hash));
        if shard.peek(hash, key).is_none() {
            return false;
        }
        match shard.map.pop(&hash) {
            Some(e) => {
                shard.forget_tags(hash, &e);
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
                if let Some(e) = shard.map.pop(&hash) {
                    shard.forget_tags(hash, &e);
                    self.account_remove(&e);
                    removed.push(e.key.into_string());
                }
            }
        }
        removed
    }

    /// Removes every entry.
    pub fn clear(&self) {
        for s in self.shards.iter() {
            let mut shard = write(s);
            for (_, e) in shard.map.iter() {
                self.account_remove(e);
            }
            shard.map.clear();
            shard.tags.clear();
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

    /// Bytes of keys and values held.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.shards.len()
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
// single calls), so a poisoned lock is taken over.
fn read(m: &RwLock<Shard>) -> RwLockReadGuard<'_, Shard> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write(m: &RwLock<Shard>) -> RwLockWriteGuard<'_, Shard> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Tier for L1Cache {
    async fn get(&self, key: &str) -> Result<Option<Arc<[u8]>>, CacheError> {
        Ok(L1Cache::get(self, key))
    }

    async fn set(
        &self,
        key: &str,
        value: Arc<[u8]>,
        ttl: Duration,
        tags: &[&str],
    ) -> Result<(), CacheError> {
        self.insert(key, value, ttl, tags);
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
    fn with_hash_mask(mut self, mask: u64) -> Self {
        self.hash_mask = mask;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Arc<[u8]> {
        Arc::from(s.as_bytes())
    }

    #[test]
    fn bounded_by_max_size_with_lru_eviction() {
        let c = L1Cache::new(4, Duration::from_secs(60), 1);
        for i in 0..4 {
            c.insert(&format!("k{i}"), v("x"), Duration::from_secs(60), &[]);
        }
        assert!(c.get("k0").is_some()); // k0 now most recent; k1 is LRU
        c.insert("k4", v("x"), Duration::from_secs(60), &[]);
        assert_eq!(c.len(), 4);
        assert!(c.get("k1").is_none());
        assert!(c.get("k0").is_some());
    }

    #[test]
    fn an_entry_hit_between_inserts_is_never_evicted() {
        let c = L1Cache::new(8, Duration::from_secs(60), 1);
        c.insert("hot", v("x"), Duration::from_secs(60), &[]);
        for i in 0..1000 {
            c.insert(&format!("cold{i}"), v("x"), Duration::from_secs(60), &[]);
            assert!(c.get("hot").is_some(), "evicted after {i} inserts");
        }
        assert_eq!(c.len(), 8);
    }

    #[test]
    fn sharded_capacity_sums_to_max_size() {
        let c = L1Cache::new(1000, Duration::from_secs(60), 16);
        for i in 0..5000 {
            c.insert(
                &format!("student:{i}"),
                v("x"),
                Duration::from_secs(60),
                &[],
            );
        }
        assert!(c.len() <= 1000, "{}", c.len());
        assert!(c.len() > 900, "{}", c.len());
    }

    #[test]
    fn entry_expires_after_its_ttl() {
        let c = L1Cache::new(10, Duration::from_secs(60), 1);
        c.insert("a", v("1"), Duration::ZERO, &[]);
        assert!(c.get("a").is_none());
        assert_eq!(c.len(), 0);
        c.insert("b", v("1"), Duration::from_secs(3600), &[]);
        assert!(c.get("b").is_some());
    }

    #[test]
    fn max_ttl_caps_entry_ttl() {
        let c = L1Cache::new(10, Duration::ZERO, 1);
        c.insert("a", v("1"), Duration::from_secs(3600), &[]);
        assert!(c.get("a").is_none());
    }

    #[test]
    fn tags_invalidate_and_do_not_leak() {
        let c = L1Cache::new(2, Duration::from_secs(60), 1);
        c.insert(
            "a",
            v("1"),
            Duration::from_secs(60),
            &["allergies", "student:1"],
        );
        c.insert("b", v("1"), Duration::from_secs(60), &["allergies"]);
        c.insert("c", v("1"), Duration::from_secs(60), &["vaccinations"]); // evicts a
        let mut removed = c.invalidate_tag("allergies");
        removed.sort();
        assert_eq!(removed, ["b"]);
        assert!(c.get("c").is_some());
        let shard = read(&c.shards[0]);
        assert_eq!(shard.tags.len(), 1, "only vaccinations remains indexed");
    }

    #[test]
    fn overwrite_replaces_tags_and_accounting() {
        let c = L1Cache::new(10, Duration::from_secs(60), 1);
        c.insert("a", v("1234"), Duration::from_secs(60), &["t1"]);
        c.insert("a", v("12"), Duration::from_secs(60), &["t2"]);
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
            c.insert(&i.to_string(), v("xy"), Duration::from_secs(60), &["t"]);
        }
        c.clear();
        assert_eq!((c.len(), c.bytes()), (0, 0));
        assert!(c.invalidate_tag("t").is_empty());
    }

    #[test]
    fn colliding_keys_never_see_or_remove_each_other() {
        // Every key hashes to 0: "a" and "b" share one slot.
        let c = L1Cache::new(10, Duration::from_secs(60), 1).with_hash_mask(0);
        c.insert("a", v("1"), Duration::from_secs(60), &["ta"]);
        assert_eq!(c.get("a").as_deref(), Some(b"1".as_slice()));
        assert!(c.get("b").is_none());
        assert!(!c.contains("b"));
        assert!(!c.remove("b"), "removing b must not remove a");
        assert!(c.get("a").is_some());

        // Inserting "b" replaces "a", accounting and tags included.
        c.insert("b", v("22"), Duration::from_secs(60), &["tb"]);
        assert!(c.get("a").is_none());
        assert_eq!(c.get("b").as_deref(), Some(b"22".as_slice()));
        assert_eq!((c.len(), c.bytes()), (1, 3));
        assert!(
            c.invalidate_tag("ta").is_empty(),
            "a's tag no longer names b"
        );
        assert!(!c.remove("a"));
        assert_eq!(c.invalidate_tag("tb"), ["b"]);
        assert_eq!((c.len(), c.bytes()), (0, 0));

        // Same tag on both: the index names the one entry left.
        c.insert("a", v("1"), Duration::from_secs(60), &["t"]);
        c.insert("b", v("2"), Duration::from_secs(60), &["t"]);
        assert_eq!(c.invalidate_tag("t"), ["b"]);
        assert_eq!((c.len(), c.bytes()), (0, 0));
        assert!(read(&c.shards[0]).tags.is_empty());

        // An expired colliding entry is not dropped by a get of another key.
        c.insert("a", v("1"), Duration::ZERO, &[]);
        assert!(c.get("b").is_none());
        assert_eq!(c.len(), 1);
        assert!(c.get("a").is_none());
        assert_eq!((c.len(), c.bytes()), (0, 0));
    }

    #[test]
    fn under_many_collisions_a_key_returns_only_its_own_value() {
        // 16 distinct hashes for 1 000 keys, all in one shard.
        let c = L1Cache::new(1000, Duration::from_secs(60), 16).with_hash_mask(0xf);
        let keys: Vec<String> = (0..1000)
            .map(|i| format!("student:{i}:allergies"))
            .collect();
        for k in &keys {
            c.insert(k, v(k), Duration::from_secs(60), &["all"]);
        }
        let mut held = Vec::new();
        let mut bytes = 0;
        for k in &keys {
            if let Some(got) = c.get(k) {
                assert_eq!(&*got, k.as_bytes());
                held.push(k.clone());
                bytes += 2 * k.len();
            }
        }
        // One entry per hash: the last key written with it.
        assert_eq!((held.len(), c.len(), c.bytes()), (16, 16, bytes));
        let mut removed = c.invalidate_tag("all");
        removed.sort();
        held.sort();
        assert_eq!(removed, held);
        assert_eq!((c.len(), c.bytes()), (0, 0));
    }

    #[test]
    fn distinct_keys_return_their_own_values() {
        let c = L1Cache::new(20_000, Duration::from_secs(60), 16);
        let keys: Vec<String> = (0..10_000)
            .map(|i| format!("student:{i}:allergies"))
            .collect();
        for k in &keys {
            c.insert(k, v(k), Duration::from_secs(60), &[]);
        }
        for k in &keys {
            if let Some(got) = c.get(k) {
                assert_eq!(&*got, k.as_bytes());
            }
        }
        assert!(c.len() > 9_000, "{}", c.len());
    }
}
