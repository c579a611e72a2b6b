//! Local invalidation epochs, exact per key and per tag: what tells a reader (a load, or a
//! fill of L1 from Redis) that its key or one of its tags was overwritten, deleted or
//! invalidated on this instance while it read, so that it does not cache what it read.
//!
//! A name has an epoch only while someone watches it: [`Epochs::watch`] registers the key
//! and the tags of one read (a counter per name, shared by every reader of that name) and
//! the [`Snapshot`] it returns unregisters them when dropped. A change of a name no one
//! watches costs a map lookup and moves nothing. So a change makes uncacheable exactly the
//! reads of its key or its tags, whatever else is in flight, and the memory is that of the
//! reads in flight. (Striped counters, before, moved for every key sharing a stripe: under
//! the soak's deletes, a third of the loads were returned uncached for a change of another
//! key.) Clearing L1 moves one epoch that every snapshot includes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Shards per set of names (keys, tags): the lock a change or a watch takes.
const SHARDS: usize = 64;

type Shard = Mutex<HashMap<Box<str>, Arc<AtomicU64>>>;

/// The epochs of the watched keys and tags of one cache.
pub(crate) struct Epochs {
    keys: Box<[Shard]>,
    tags: Box<[Shard]>,
    /// Moved by a clear of L1: every snapshot includes it.
    all: AtomicU64,
}

/// The epochs of one read's key and tags when it started; keeps them watched until dropped.
pub(crate) struct Snapshot<'a> {
    epochs: &'a Epochs,
    all: u64,
    /// (is a tag, name, its counter, its value at the start).
    watched: Vec<(bool, &'a str, Arc<AtomicU64>, u64)>,
}

fn lock(shard: &Shard) -> MutexGuard<'_, HashMap<Box<str>, Arc<AtomicU64>>> {
    // A panic under this lock leaves the map consistent (each step is one map call).
    crate::poison::lock(shard)
}

#[inline]
fn shard_of<'s>(shards: &'s [Shard], name: &str) -> &'s Shard {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    &shards[h as usize % shards.len()]
}

impl Default for Epochs {
    fn default() -> Self {
        let shards = || (0..SHARDS).map(|_| Mutex::default()).collect();
        Self {
            keys: shards(),
            tags: shards(),
            all: AtomicU64::new(0),
        }
    }
}

impl Epochs {
    fn set(&self, tag: bool) -> &[Shard] {
        if tag {
            &self.tags
        } else {
            &self.keys
        }
    }

    /// Starts watching `key` and `tags` for one read.
    pub(crate) fn watch<'a>(&'a self, key: &'a str, tags: &[&'a str]) -> Snapshot<'a> {
        let all = self.all.load(Ordering::Acquire);
        let mut watched = Vec::with_capacity(1 + tags.len());
        for (tag, name) in std::iter::once((false, key)).chain(tags.iter().map(|t| (true, *t))) {
            let mut map = lock(shard_of(self.set(tag), name));
            let counter = match map.get(name) {
                Some(c) => c.clone(),
                None => {
                    let c = Arc::new(AtomicU64::new(0));
                    map.insert(name.into(), c.clone());
                    c
                }
            };
            // Read under the lock that every change of `name` takes.
            let at = counter.load(Ordering::Acquire);
            watched.push((tag, name, counter, at));
        }
        Snapshot {
            epochs: self,
            all,
            watched,
        }
    }

    fn bump(&self, tag: bool, name: &str) {
        if let Some(c) = lock(shard_of(self.set(tag), name)).get(name) {
            c.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Moves the epoch of `key` (an overwrite, a delete, a loaded value stored).
    pub(crate) fn bump_key(&self, key: &str) {
        self.bump(false, key);
    }

    /// Moves the epoch of `tag` (a tag or group invalidation).
    pub(crate) fn bump_tag(&self, tag: &str) {
        self.bump(true, tag);
    }

    /// Moves every epoch (L1 cleared).
    pub(crate) fn bump_all(&self) {
        self.all.fetch_add(1, Ordering::AcqRel);
    }

    /// Names watched now, keys and tags (for tests: none once the reads are done).
    #[cfg(test)]
    fn watched(&self) -> usize {
        self.keys
            .iter()
            .chain(self.tags.iter())
            .map(|s| lock(s).len())
            .sum()
    }
}

impl Snapshot<'_> {
    /// Whether no epoch of the key or of the tags moved since the snapshot (and L1 was
    /// not cleared). Lock-free: callable under an L1 shard's lock.
    #[inline]
    pub(crate) fn unchanged(&self) -> bool {
        self.key_moved(0)
    }

    /// Whether the key's epoch moved exactly once since the snapshot (the caller's own
    /// store) and nothing else did: the tags' epochs unmoved and L1 not cleared.
    #[inline]
    pub(crate) fn moved_once(&self) -> bool {
        self.key_moved(1)
    }

    /// Whether the key's epoch moved exactly `times` since the snapshot, and no tag's
    /// epoch and no clear of L1 did.
    #[inline]
    fn key_moved(&self, times: u64) -> bool {
        self.epochs.all.load(Ordering::Acquire) == self.all
            && self.watched.iter().all(|(tag, _, c, at)| {
                c.load(Ordering::Acquire) == if *tag { *at } else { at + times }
            })
    }
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        for (tag, name, counter, _) in self.watched.drain(..) {
            let mut map = lock(shard_of(self.epochs.set(tag), name));
            drop(counter);
            // Every clone of a counter is made or dropped under this lock: a count of 1 is
            // the map's own, no one else watches the name.
            if map.get(name).is_some_and(|c| Arc::strong_count(c) == 1) {
                map.remove(name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moved_once_is_a_stores_own_change_and_nothing_else() {
        let e = Epochs::default();
        let own = e.watch("k", &["t"]);
        e.bump_key("k");
        assert!(own.moved_once() && !own.unchanged());
        e.bump_key("k"); // another store of the key
        assert!(!own.moved_once());
        let tagged = e.watch("k", &["t"]);
        e.bump_key("k");
        e.bump_tag("t");
        assert!(!tagged.moved_once());
        let cleared = e.watch("k", &[]);
        e.bump_key("k");
        e.bump_all();
        assert!(!cleared.moved_once());
    }

    #[test]
    fn a_change_moves_only_the_snapshots_of_its_key_or_tag() {
        let e = Epochs::default();
        let a = e.watch("student:A:allergies", &["allergies", "group:A"]);
        let b = e.watch("student:B:allergies", &["allergies", "group:B"]);
        let c = e.watch("student:C:conditions", &["conditions", "group:C"]);
        e.bump_key("student:A:allergies");
        assert!(!a.unchanged());
        assert!(b.unchanged() && c.unchanged());
        e.bump_tag("group:B");
        assert!(!b.unchanged());
        assert!(c.unchanged());
        // Unwatched names: nothing moves, nothing is kept.
        e.bump_key("student:Z:allergies");
        e.bump_tag("group:Z");
        assert!(c.unchanged());
        e.bump_tag("allergies");
        assert!(c.unchanged(), "a tag c was not set with");
        e.bump_all();
        assert!(!c.unchanged());
        drop((a, b, c));
        assert_eq!(e.watched(), 0);
    }

    #[test]
    fn readers_of_one_key_share_its_epoch_and_the_last_one_unregisters_it() {
        let e = Epochs::default();
        let first = e.watch("k", &[]);
        let second = e.watch("k", &["t"]);
        drop(first);
        assert_eq!(
            e.watched(),
            2,
            "k still watched by the second reader, and t"
        );
        e.bump_key("k");
        assert!(!second.unchanged(), "a change after the first reader left");
        let third = e.watch("k", &[]);
        assert!(third.unchanged(), "a reader that started after the change");
        drop((second, third));
        assert_eq!(e.watched(), 0);
    }
}
