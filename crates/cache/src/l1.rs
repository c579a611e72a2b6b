//! The in-process tier: sharded LRU maps with a TTL per entry.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use lru::LruCache;

use crate::clock;
use crate::error::CacheError;
use crate::tier::Tier;

struct Entry {
    value: Arc<[u8]>,
    /// Expiry on the coarse clock ([`clock::now_ms`]).
    expires: u64,
    tags: Box<[Arc<str>]>,
    /// The shard's insert count when this entry was last moved to the front.
    promoted: u64,
}

struct Shard {
    map: LruCache<String, Entry>,
    /// Inserts so far; an entry hit after more than `promote_after` inserts
    /// since its last promotion is moved to the front again.
    inserts: u64,
    promote_after: u64,
    /// Tag to keys of this shard, only for entries set with tags here.
    tags: HashMap<Arc<str>, HashSet<String>>,
}

impl Shard {
    fn forget_tags(&mut self, key: &str, entry: &Entry) {
        for t in entry.tags.iter() {
            if let Some(keys) = self.tags.get_mut(t) {
                keys.remove(key);
                if keys.is_empty() {
                    self.tags.remove(t);
                }
            }
        }
    }
}

/// A bounded in-process cache of serialised values: `shards` LRU maps, each
/// behind its own read-write lock, with a TTL per entry (expired entries are
/// dropped when met). It also implements [`Tier`].
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
                    map: LruCache::new(NonZeroUsize::new(cap).unwrap_or(NonZeroUsize::MIN)),
                    inserts: 0,
                    promote_after: (cap / 4) as u64,
                    tags: HashMap::new(),
                })
            })
            .collect();
        Self {
            shards,
            mask: n - 1,
            max_ttl,
            entries: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
        }
    }

    fn index(&self, key: &str) -> usize {
        // FxHash-style over 8-byte words: cheap, and enough to spread keys.
        let mut h: u64 = key.len() as u64;
        for chunk in key.as_bytes().chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
        (h >> 32) as usize & self.mask
    }

    fn shard(&self, key: &str) -> RwLockWriteGuard<'_, Shard> {
        write(&self.shards[self.index(key)])
    }

    fn account_remove(&self, key: &str, e: &Entry) {
        self.entries.fetch_sub(1, Ordering::Relaxed);
        self.bytes
            .fetch_sub(key.len() + e.value.len(), Ordering::Relaxed);
    }

    /// The value of `key` if present and not expired; marks it recently used.
    pub fn get(&self, key: &str) -> Option<Arc<[u8]>> {
        let i = self.index(key);
        let now = clock::now_ms();
        let promote = {
            let shard = read(&self.shards[i]);
            let e = shard.map.peek(key)?;
            if e.expires > now {
                let stale = shard.inserts.wrapping_sub(e.promoted) > shard.promote_after;
                let v = e.value.clone();
                if !stale {
                    return Some(v);
                }
                Some(v)
            } else {
                None
            }
        };
        let mut shard = write(&self.shards[i]);
        match promote {
            Some(v) => {
                let inserts = shard.inserts;
                if let Some(e) = shard.map.get_mut(key) {
                    e.promoted = inserts;
                }
                Some(v)
            }
            None => {
                if shard.map.peek(key).is_some_and(|e| e.expires <= now) {
                    if let Some((k, e)) = shard.map.pop_entry(key) {
                        shard.forget_tags(&k, &e);
                        self.account_remove(&k, &e);
                    }
                }
                None
            }
        }
    }

    /// Whether `key` is present and not expired, without touching recency.
    pub fn contains(&self, key: &str) -> bool {
        let shard = read(&self.shards[self.index(key)]);
        shard
            .map
            .peek(key)
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
        let size = key.len() + value.len();
        let mut shard = self.shard(key);
        if !cond() {
            return false;
        }
        for t in tags.iter() {
            shard
                .tags
                .entry(t.clone())
                .or_default()
                .insert(key.to_owned());
        }
        shard.inserts = shard.inserts.wrapping_add(1);
        let entry = Entry {
            value,
            expires,
            tags,
            promoted: shard.inserts,
        };
        self.entries.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(size, Ordering::Relaxed);
        if let Some((old_key, old)) = shard.map.push(key.to_owned(), entry) {
            // Either the previous value of `key` or an evicted entry.
            self.account_remove(&old_key, &old);
            if old_key == key {
                // Keep the tags of the new entry indexed.
                let new_tags: Vec<Arc<str>> = shard
                    .map
                    .peek(key)
                    .map(|e| e.tags.to_vec())
                    .unwrap_or_default();
                shard.forget_tags(&old_key, &old);
                for t in new_tags {
                    shard.tags.entry(t).or_default().insert(key.to_owned());
                }
            } else {
                shard.forget_tags(&old_key, &old);
            }
        }
        true
    }

    /// Removes `key`; true if it was present.
    pub fn remove(&self, key: &str) -> bool {
        let mut shard = self.shard(key);
        match shard.map.pop_entry(key) {
            Some((k, e)) => {
                shard.forget_tags(&k, &e);
                self.account_remove(&k, &e);
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
            let Some(keys) = shard.tags.remove(tag) else {
                continue;
            };
            for k in keys {
                if let Some((k, e)) = shard.map.pop_entry(&k) {
                    shard.forget_tags(&k, &e);
                    self.account_remove(&k, &e);
                    removed.push(k);
                }
            }
        }
        removed
    }

    /// Removes every entry.
    pub fn clear(&self) {
        for s in self.shards.iter() {
            let mut shard = write(s);
            for (k, e) in shard.map.iter() {
                self.entries.fetch_sub(1, Ordering::Relaxed);
                self.bytes
                    .fetch_sub(k.len() + e.value.len(), Ordering::Relaxed);
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
}
