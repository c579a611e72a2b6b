//! How L1 hashes a key: once per call, by a seeded hasher the cache holds (foldhash,
//! `lru`'s default), into the 64-bit hash that picks the shard (bits 32 and up) and keys the
//! shard's map, passed through to the map's table as is. The entry keeps the full key, which a
//! lookup compares, so two keys with the same hash share a slot but never see or remove each
//! other (the tests below force collisions).

use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// A [`Hasher`] for keys that are already hashes: it passes a `u64` through.
/// The maps get the well-mixed output of the cache's key hasher, whose low
/// bits pick the bucket and top 7 bits the control byte in `hashbrown`.
#[derive(Default)]
pub(crate) struct PassThrough(u64);

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

/// The maps' hasher builder: keys are already hashes.
pub(crate) type PreHashed = BuildHasherDefault<PassThrough>;

/// The cache's key hasher.
#[derive(Default)]
pub(crate) struct KeyHasher {
    hasher: lru::DefaultHasher,
    /// Tests force hash collisions by masking hashes (`L1Cache::with_hash_mask`).
    #[cfg(test)]
    pub(crate) mask: Option<u64>,
}

impl KeyHasher {
    /// The key's 64-bit hash.
    #[inline]
    pub(crate) fn hash(&self, key: &str) -> u64 {
        // The bytes alone (foldhash mixes in their length): a hash is of one
        // whole key, so no terminator is needed. A key of 17 to 32 bytes (most of a
        // service's: `student:1234:allergies` is 22) is written as two halves of at most 16,
        // which foldhash hashes inline, where one write of over 16 bytes is a call to its
        // outlined long path (4 % of an L1 hit's samples in a profile). The split depends on
        // the length alone, so a key always hashes alike, and two keys of one length differ
        // in one of the halves.
        let b = key.as_bytes();
        let mut h = self.hasher.build_hasher();
        match (b.get(..16), b.get(16..)) {
            (Some(head), Some(tail)) if !tail.is_empty() && tail.len() <= 16 => {
                h.write(head);
                h.write(tail);
            }
            _ => h.write(b),
        }
        let h = h.finish();
        #[cfg(test)]
        let h = h & self.mask.unwrap_or(u64::MAX);
        h
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::l1::L1Cache;

    fn v(s: &str) -> &str {
        s
    }

    #[test]
    fn a_key_hashes_alike_every_time_and_a_change_anywhere_changes_its_hash() {
        // Lengths either side of the split (16, 32): every byte of the head and of the
        // tail is in the hash.
        let h = crate::l1_hash::KeyHasher::default();
        for n in 0..=40 {
            let key: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            assert_eq!(h.hash(&key), h.hash(&key.clone()), "{n}");
            for at in 0..n {
                let mut other = key.clone().into_bytes();
                other[at] = b'Z';
                let other = String::from_utf8(other).unwrap();
                assert_ne!(h.hash(&key), h.hash(&other), "length {n}, byte {at}");
            }
            // A key and its extension by one byte (where the split moves) differ.
            assert_ne!(h.hash(&key), h.hash(&format!("{key}a")), "{n}");
        }
    }

    #[test]
    fn colliding_keys_never_see_or_remove_each_other() {
        // Every key hashes to 0: "a" and "b" share one slot.
        let c = L1Cache::new(10, Duration::from_secs(60), 1).with_hash_mask(0);
        c.put("a", v("1"), Duration::from_secs(60), &["ta"]);
        assert_eq!(c.got("a").as_deref(), Some("1"));
        assert!(c.got("b").is_none());
        assert!(!c.contains("b"));
        assert!(!c.remove("b"), "removing b must not remove a");
        assert!(c.got("a").is_some());

        // Inserting "b" replaces "a", accounting and tags included.
        c.put("b", v("22"), Duration::from_secs(60), &["tb"]);
        assert!(c.got("a").is_none());
        assert_eq!(c.got("b").as_deref(), Some("22"));
        assert_eq!((c.len(), c.bytes()), (1, 3));
        assert!(
            c.invalidate_tag("ta").is_empty(),
            "a's tag no longer names b"
        );
        assert!(!c.remove("a"));
        assert_eq!(c.invalidate_tag("tb"), ["b"]);
        assert_eq!((c.len(), c.bytes()), (0, 0));

        // Same tag on both: the index names the one entry left.
        c.put("a", v("1"), Duration::from_secs(60), &["t"]);
        c.put("b", v("2"), Duration::from_secs(60), &["t"]);
        assert_eq!(c.invalidate_tag("t"), ["b"]);
        assert_eq!((c.len(), c.bytes()), (0, 0));
        assert_eq!(c.indexed_tags(), 0);

        // An expired colliding entry is not dropped by a get of another key.
        c.put("a", v("1"), Duration::ZERO, &[]);
        assert!(c.got("b").is_none());
        assert_eq!(c.len(), 1);
        assert!(c.got("a").is_none());
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
            c.put(k, v(k), Duration::from_secs(60), &["all"]);
        }
        let mut held = Vec::new();
        let mut bytes = 0;
        for k in &keys {
            if let Some(got) = c.got(k) {
                assert_eq!(&got, k);
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
            c.put(k, v(k), Duration::from_secs(60), &[]);
        }
        for k in &keys {
            if let Some(got) = c.got(k) {
                assert_eq!(&got, k);
            }
        }
        assert!(c.len() > 9_000, "{}", c.len());
    }
}
