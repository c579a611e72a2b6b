//! One shard of L1: its map of entries by key hash in recency order, its tag index, its
//! bounds in entries and bytes, and its eviction, which weighs a newcomer against the least
//! frequent of the least recently used entries (TinyLFU admission, `admission.rs`).

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use lru::LruCache;

use crate::admission::{Admission, VICTIMS};
use crate::clock;
use crate::l1_hash::PreHashed;
use crate::l1_key::EntryKey;

/// A decoded value as L1 holds it: shared, its type checked when it is read.
pub(crate) type Value = Arc<dyn Any + Send + Sync>;

/// An entry of a shard. The fields a hit reads come first, in declaration order
/// (`repr(C)`: 57 bytes, so that they share as few cache lines as the node's placement
/// allows, `lru` allocating each node on its own); the rest of the entry is read on inserts,
/// evictions, invalidations and fail-safe only.
#[repr(C)]
pub(crate) struct Entry {
    /// The full key: the maps are keyed by its 64-bit hash, so a hit compares it to the key
    /// asked for (inline when short, `l1_key.rs`).
    pub(crate) key: EntryKey,
    pub(crate) value: Value,
    /// Expiry on the coarse clock ([`clock::now_ms`]).
    pub(crate) expires: u64,
    /// The shard's insert count when this entry was last moved to the front.
    pub(crate) promoted: u64,
    /// Hits since admission (saturating at [`MAX_COUNT`], halved when the sketch ages): with
    /// the sketch's count, the entry's frequency when admission weighs it as a victim.
    ///
    /// [`MAX_COUNT`]: crate::admission::MAX_COUNT
    pub(crate) hits: AtomicU8,
    /// Fail-safe's horizon on the same clock: past `expires` the entry is a miss but stays
    /// (for a stale serve) until this; `expires` unless armed
    /// (`fail_safe.rs`).
    pub(crate) stale_until: AtomicU64,
    /// When a hit asks for an eager refresh: 0 not armed, `u64::MAX` none (or claimed).
    pub(crate) refresh_at: AtomicU64,
    /// Bytes the entry is accounted for: its key and the encoded size of its value.
    pub(crate) weight: usize,
    /// Whether L1's TTL cap made the entry's life shorter than its value's TTL (set when it
    /// was inserted): its value's age, and so its eager refresh point, is unknown.
    pub(crate) capped: bool,
    pub(crate) tags: Box<[Arc<str>]>,
}

/// A shard of [`L1Cache`](crate::L1Cache), behind its own read-write lock.
pub(crate) struct Shard {
    /// Entries by key hash (see [`L1Cache`]), least recently used first out. Unbounded as
    /// a map: the shard evicts by its own bounds.
    pub(crate) map: LruCache<u64, Entry, PreHashed>,
    /// Most entries held.
    pub(crate) cap: usize,
    /// Most bytes held (keys and encoded values).
    pub(crate) max_bytes: usize,
    pub(crate) bytes: usize,
    /// Inserts so far; an entry hit after more than `promote_after` inserts
    /// since its last promotion is moved to the front again.
    pub(crate) inserts: u64,
    pub(crate) promote_after: u64,
    /// Tag to key hashes of this shard, only for entries set with tags here.
    /// A hash is in the map at most once, so it names one entry.
    pub(crate) tags: HashMap<Arc<str>, HashSet<u64, PreHashed>>,
    pub(crate) admission: Admission,
}

impl Shard {
    /// An empty shard of at most `cap` entries and `max_bytes` bytes.
    pub(crate) fn new(cap: usize, max_bytes: usize) -> Self {
        Self {
            map: LruCache::unbounded_with_hasher(PreHashed::default()),
            cap,
            max_bytes,
            bytes: 0,
            inserts: 0,
            promote_after: (cap / 4) as u64,
            tags: HashMap::new(),
            admission: Admission::new(cap, max_bytes),
        }
    }

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
    pub(crate) fn peek(&self, hash: u64, key: &str) -> Option<&Entry> {
        self.map.peek(&hash).filter(|e| e.key.is(key))
    }

    /// Removes the entry under `hash` (whatever its key), unindexing it.
    pub(crate) fn take(&mut self, hash: u64) -> Option<Entry> {
        let e = self.map.pop(&hash)?;
        self.forget_tags(hash, &e);
        self.bytes -= e.weight;
        Some(e)
    }

    /// Evicts until an entry of `size` bytes fits, into `evicted`. A newcomer (`freq`: its
    /// estimate) must have been asked for more often than each of its victims, each the least
    /// frequent of the [`VICTIMS`] least recently used entries then; an expired entry among
    /// them goes first, unweighed. At the first victim it does not beat, this stops and
    /// returns false: the newcomer is refused (any colder entries it pushed out before stay
    /// out), so a heavy value asked for once cannot push out entries asked for more. A value
    /// that replaces its key's own (`freq` `None`) makes its room in plain recency order.
    pub(crate) fn make_room(
        &mut self,
        size: usize,
        freq: Option<u8>,
        evicted: &mut Vec<Entry>,
    ) -> bool {
        let now = clock::now_ms();
        while self.map.len() >= self.cap || self.bytes + size > self.max_bytes {
            let Some((&lru_hash, _)) = self.map.peek_lru() else {
                break;
            };
            let mut hash = lru_hash;
            if let Some(freq) = freq {
                // The least frequent of the few least recently used entries (an expired
                // one at once).
                let mut best: Option<(u64, u8)> = None;
                for (&h, e) in self.map.iter().rev().take(VICTIMS) {
                    if e.expires <= now {
                        best = None;
                        hash = h;
                        break;
                    }
                    let f = self
                        .admission
                        .estimate(h)
                        .saturating_add(e.hits.load(Ordering::Relaxed));
                    if best.is_none_or(|(_, bf)| f < bf) {
                        best = Some((h, f));
                    }
                }
                if let Some((h, victim_freq)) = best {
                    if freq <= victim_freq {
                        return false;
                    }
                    hash = h;
                }
            }
            if let Some(e) = self.take(hash) {
                self.admission.fold(hash, e.hits.load(Ordering::Relaxed));
                evicted.push(e);
            }
        }
        true
    }

    /// Halves every entry's hit count, as the sketch just halved its counters.
    pub(crate) fn age_hits(&mut self) {
        for (_, e) in self.map.iter() {
            let h = e.hits.load(Ordering::Relaxed);
            e.hits.store(h / 2, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::l1::L1Cache;

    #[test]
    fn bounded_by_max_size_with_lru_eviction() {
        let c = L1Cache::new(4, Duration::from_secs(60), 1);
        for i in 0..4 {
            c.put(&format!("k{i}"), "x", Duration::from_secs(60), &[]);
        }
        assert!(c.got("k0").is_some()); // k0 now most recent; k1 is LRU
                                        // Asked for once, as often as k1: not admitted. Asked again: it takes k1's place.
        assert!(!c.put("k4", "x", Duration::from_secs(60), &[]));
        assert!(c.contains("k1") && !c.contains("k4"));
        assert_eq!(c.rejected(), 1);
        assert!(c.put("k4", "x", Duration::from_secs(60), &[]));
        assert_eq!(c.len(), 4);
        assert!(c.got("k1").is_none());
        assert!(c.got("k0").is_some());
    }

    #[test]
    fn an_entry_hit_between_inserts_is_never_evicted() {
        let c = L1Cache::new(8, Duration::from_secs(60), 1);
        c.put("hot", "x", Duration::from_secs(60), &[]);
        for i in 0..1000 {
            c.put(&format!("cold{i}"), "x", Duration::from_secs(60), &[]);
            assert!(c.got("hot").is_some(), "evicted after {i} inserts");
        }
        assert_eq!(c.len(), 8);
    }

    #[test]
    fn sharded_capacity_sums_to_max_size() {
        let c = L1Cache::new(1000, Duration::from_secs(60), 16);
        for i in 0..5000 {
            c.put(&format!("student:{i}"), "x", Duration::from_secs(60), &[]);
        }
        assert!(c.len() <= 1000, "{}", c.len());
        assert!(c.len() > 900, "{}", c.len());
    }

    #[test]
    fn bounded_in_bytes_as_well_as_entries() {
        // 2 shards of 500 bytes each; every entry weighs 1 + 100 bytes.
        let c = L1Cache::with_max_bytes(1000, 1000, Duration::from_secs(60), 2);
        let big = "x".repeat(100);
        for i in 0..100 {
            let k = format!("{}", i % 10);
            c.put(&k, &big, Duration::from_secs(60), &[]);
            c.put(&k, &big, Duration::from_secs(60), &[]);
        }
        assert!(c.bytes() <= 1000, "{}", c.bytes());
        assert!(c.len() <= 8, "{}", c.len());
        // Larger than a shard's budget: never held, and the older value of the key is gone.
        assert!(c.put("0", "y", Duration::from_secs(60), &[]));
        assert!(!c.put("0", &"z".repeat(600), Duration::from_secs(60), &[]));
        assert!(c.got("0").is_none());
        let bytes: usize = (0..10)
            .filter_map(|i| c.got(&i.to_string()).map(|v| v.len() + 1))
            .sum();
        assert_eq!(c.bytes(), bytes);
    }

    #[test]
    fn a_heavy_value_asked_for_once_does_not_push_out_hot_entries() {
        // One shard of 1 000 bytes: an entry already expired (its TTL zero), then eight hot
        // ones of 102 bytes each, read five times (919 bytes in all).
        let c = L1Cache::with_max_bytes(100, 1000, Duration::from_secs(60), 1);
        let ttl = Duration::from_secs(60);
        let v = "x".repeat(100);
        assert!(c.put("old", &v, Duration::ZERO, &[]));
        let hot: Vec<String> = (0..8).map(|i| format!("h{i}")).collect();
        for k in &hot {
            assert!(c.put(k, &v, ttl, &[]));
        }
        for _ in 0..5 {
            assert!(hot.iter().all(|k| c.got(k).is_some()));
        }
        // A 303-byte newcomer, asked for once, needs room for three entries: the expired
        // one goes unweighed, then the first hot victim outweighs it, and it is refused.
        assert!(!c.put("big", &"y".repeat(300), ttl, &[]));
        let held = hot.iter().filter(|k| c.contains(k)).count();
        assert_eq!(
            held,
            hot.len(),
            "hot entries pushed out by a value read once"
        );
        assert!(!c.contains("big"));
        assert_eq!(c.bytes(), 8 * 102);
    }

    #[test]
    fn a_scan_of_keys_read_once_does_not_flush_the_hot_ones() {
        let c = L1Cache::new(100, Duration::from_secs(60), 1);
        let hot: Vec<String> = (0..80).map(|i| format!("hot:{i}")).collect();
        // Each round reads the hot keys (loading the missing ones), then 500 keys once.
        let mut misses = 0;
        for round in 0..20 {
            for k in &hot {
                if c.got(k).is_none() {
                    misses += 1;
                    c.put(k, "v", Duration::from_secs(60), &[]);
                }
            }
            for i in 0..500 {
                c.put(
                    &format!("scan:{round}:{i}"),
                    "v",
                    Duration::from_secs(60),
                    &[],
                );
            }
        }
        let held = hot.iter().filter(|k| c.contains(k)).count();
        assert_eq!(held, hot.len(), "hot entries evicted by a scan");
        // Nearly only the first round missed (a key read once now and then passes the
        // doorkeeper for one seen before): an LRU would miss every hot key every round.
        assert!(misses < 2 * hot.len(), "{misses}");
        assert!(c.rejected() >= 9_000, "{}", c.rejected());
    }
}
