//! Admission to an L1 shard: a TinyLFU frequency sketch with a doorkeeper, which decides
//! whether a key that missed may take the place of the entry the recency order would evict.
//!
//! Plain LRU admits every key, so a key read once (a one-hit wonder, a report walking every
//! student) pushes out one that is read all day. TinyLFU (Einziger, Friedman and Manes,
//! "TinyLFU: A Highly Efficient Cache Admission Policy", 2017; what moka and Caffeine use)
//! keeps an approximate count of recent accesses of every key, resident or not, and admits a
//! newcomer only when it was asked for more often than the victim. Here:
//!
//! - the **sketch** is a count-min sketch of 4 rows of saturating 4-bit counters (kept in
//!   bytes, at most 15), indexed by the key's 64-bit hash, which the shard has already;
//! - the **doorkeeper** is a Bloom filter in front of it: a key's first access in a period
//!   only sets its bits, so keys seen once never reach the counters, and the sketch can stay
//!   small;
//! - **aging**: after `SAMPLE_FACTOR` × capacity recorded accesses every counter is halved
//!   and the doorkeeper cleared, so a key that was popular yesterday gives way;
//! - **the victim** is the least frequent of the `VICTIMS` least recently used entries, and
//!   the newcomer is admitted only if its estimate is above the victim's (a tie keeps the
//!   resident).
//!
//! The sketch records misses only (an L1 hit takes only its shard's read lock, and writing
//! four counters would cost a hit more than the lookup itself). A resident entry counts its
//! own hits in a byte of its own (`l1_shard.rs`), halved with the sketch, and its frequency is its
//! sketch count (the misses that got it admitted) plus those hits; an evicted entry's hits
//! are folded back into the sketch, so a key that returns is known.

/// Rows of the count-min sketch: each access increments one counter per row, the estimate is
/// the smallest of them.
const ROWS: usize = 4;
/// Odd multipliers that pick a row's counter from the key hash (its top bits after the
/// multiply): independent enough for a count-min sketch, one multiply each.
const ROW_SEEDS: [u64; ROWS] = [
    0x9e37_79b9_7f4a_7c15,
    0xc2b2_ae3d_27d4_eb4f,
    0x1656_67b1_9e37_79f9,
    0xd6e8_feb8_6659_fd93,
];
/// The largest count (4-bit counters).
pub(crate) const MAX_COUNT: u8 = 15;
/// Counters per row, per entry of capacity (a power of two is taken above it).
const WIDTH_FACTOR: usize = 16;
/// Accesses recorded between two agings, per entry of capacity (misses only are recorded,
/// so a period spans several times as many lookups).
const SAMPLE_FACTOR: usize = 32;
/// How many of the least recently used entries a newcomer is weighed against: the least
/// frequent of them is the victim. One is plain TinyLFU over LRU; a few lean the order
/// towards LFU, which is what a skewed (Zipf) popularity rewards (see `docs/cache.md`).
pub(crate) const VICTIMS: usize = 8;
/// The smallest encoded entry the sketch is sized for: a shard of `max_bytes` holds at most
/// `max_bytes / MIN_ENTRY_BYTES` entries that matter, whatever its entry count allows (the
/// sketch and doorkeeper take ~128 bytes per entry they are sized for).
const MIN_ENTRY_BYTES: usize = 64;
/// The most entries one shard's sketch is sized for (~128 MiB of sketch and doorkeeper): a
/// larger shard still works, its counters are only shared by more keys.
const MAX_SKETCH_ENTRIES: usize = 1 << 20;

/// The frequency sketch and doorkeeper of one shard (see the module's documentation).
pub(crate) struct Admission {
    counters: Box<[u8]>,
    /// log2 of the counters per row.
    width_bits: u32,
    door: Box<[u64]>,
    /// Bits of the doorkeeper minus one (a power of two).
    door_mask: u64,
    recorded: usize,
    sample: usize,
}

impl Admission {
    /// The entries a sketch for a shard of `capacity` entries and `max_bytes` bytes is sized
    /// for: the capacity, bounded by what the bytes can hold and by `MAX_SKETCH_ENTRIES`, so
    /// a huge configured size neither allocates gigabytes at start nor overflows below.
    pub(crate) fn sized_for(capacity: usize, max_bytes: usize) -> usize {
        capacity
            .min(max_bytes / MIN_ENTRY_BYTES)
            .clamp(1, MAX_SKETCH_ENTRIES)
    }

    /// The sketch of a shard of `capacity` entries and `max_bytes` bytes (see
    /// [`Admission::sized_for`]).
    pub(crate) fn new(capacity: usize, max_bytes: usize) -> Self {
        let entries = Self::sized_for(capacity, max_bytes);
        // No overflow: `entries` <= 2^20, so these stay below 2^30.
        let width = (entries * WIDTH_FACTOR).next_power_of_two().max(64);
        let sample = entries * SAMPLE_FACTOR;
        // At least 16 bits per access of a period: with 3 probes, under 1 % of the keys
        // seen once pass for seen twice (each such one may evict a resident).
        let door_bits = (sample * 16).next_power_of_two().max(64);
        Self {
            counters: vec![0; ROWS * width].into_boxed_slice(),
            width_bits: width.trailing_zeros(),
            door: vec![0; door_bits / 64].into_boxed_slice(),
            door_mask: door_bits as u64 - 1,
            recorded: 0,
            sample,
        }
    }

    #[inline]
    fn slot(&self, row: usize, hash: u64) -> usize {
        let i = hash.wrapping_mul(ROW_SEEDS[row]) >> (64 - self.width_bits);
        (row << self.width_bits) | i as usize
    }

    #[inline]
    fn door_bits(&self, hash: u64) -> [u64; 3] {
        let h2 = hash.rotate_left(21).wrapping_mul(ROW_SEEDS[0]);
        let h3 = hash.rotate_left(42).wrapping_mul(ROW_SEEDS[1]);
        [
            hash & self.door_mask,
            h2 & self.door_mask,
            h3 & self.door_mask,
        ]
    }

    fn in_door(&self, hash: u64) -> bool {
        self.door_bits(hash)
            .iter()
            .all(|&b| self.door[(b / 64) as usize] & (1 << (b % 64)) != 0)
    }

    /// The count of `hash` in the sketch alone.
    fn count(&self, hash: u64) -> u8 {
        (0..ROWS)
            .map(|r| self.counters[self.slot(r, hash)])
            .min()
            .unwrap_or(0)
    }

    /// How often `hash` was recorded lately (the doorkeeper counting for one).
    pub(crate) fn estimate(&self, hash: u64) -> u8 {
        let c = self.count(hash);
        if self.in_door(hash) {
            c.saturating_add(1).min(MAX_COUNT)
        } else {
            c
        }
    }

    /// Adds `n` to the counters of `hash` (conservative update: only the smallest rise).
    fn add(&mut self, hash: u64, n: u8) {
        let target = self.count(hash).saturating_add(n).min(MAX_COUNT);
        for r in 0..ROWS {
            let s = self.slot(r, hash);
            if self.counters[s] < target {
                self.counters[s] = target;
            }
        }
    }

    /// Records one access of `hash` (a miss); returns its estimate afterwards, and whether
    /// the sketch aged (then the shard halves its entries' hit counts too).
    pub(crate) fn record(&mut self, hash: u64) -> (u8, bool) {
        if self.in_door(hash) {
            self.add(hash, 1);
        } else {
            for b in self.door_bits(hash) {
                self.door[(b / 64) as usize] |= 1 << (b % 64);
            }
        }
        let estimate = self.estimate(hash);
        self.recorded += 1;
        let aged = self.recorded >= self.sample;
        if aged {
            self.age();
        }
        (estimate, aged)
    }

    /// Folds an evicted entry's hits into the sketch, so a key that comes back is known.
    pub(crate) fn fold(&mut self, hash: u64, hits: u8) {
        if hits > 0 {
            self.add(hash, hits);
        }
    }

    /// Halves every counter and clears the doorkeeper.
    fn age(&mut self) {
        for c in self.counters.iter_mut() {
            *c >>= 1;
        }
        self.door.fill(0);
        self.recorded = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u64) -> u64 {
        i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i << 17)
    }

    #[test]
    fn the_sketch_is_bounded_by_bytes_and_a_hard_cap() {
        assert_eq!(Admission::sized_for(1000, 64 << 20), 1000);
        assert_eq!(Admission::sized_for(10_000_000, 1 << 20), 16_384);
        assert_eq!(
            Admission::sized_for(usize::MAX, usize::MAX),
            MAX_SKETCH_ENTRIES
        );
        assert_eq!(Admission::sized_for(5, 0), 1);
        let a = Admission::new(usize::MAX, usize::MAX);
        let bytes = a.counters.len() + a.door.len() * 8;
        assert!(bytes <= 160 << 20, "{bytes} bytes");
    }

    #[test]
    fn the_first_access_only_reaches_the_doorkeeper() {
        let mut a = Admission::new(64, 1 << 20);
        assert_eq!(a.estimate(h(1)), 0);
        assert_eq!(a.record(h(1)).0, 1);
        assert_eq!(a.count(h(1)), 0, "a key seen once is not in the counters");
        assert_eq!(a.record(h(1)).0, 2);
        assert_eq!(a.count(h(1)), 1);
    }

    #[test]
    fn counts_saturate_and_age_by_half() {
        let mut a = Admission::new(64, 1 << 20);
        for _ in 0..40 {
            a.record(h(7));
        }
        assert_eq!(a.estimate(h(7)), MAX_COUNT);
        let mut aged = false;
        let mut i = 100;
        while !aged {
            aged = a.record(h(i)).1;
            i += 1;
        }
        assert!((6..=8).contains(&a.estimate(h(7))), "{}", a.estimate(h(7)));
    }

    #[test]
    fn frequent_keys_estimate_above_rare_ones() {
        let mut a = Admission::new(64, 1 << 20);
        for round in 0..8u64 {
            a.record(h(1));
            a.record(h(1));
            a.record(h(1000 + round));
        }
        assert!(a.estimate(h(1)) > a.estimate(h(1000)));
        assert!(a.estimate(h(1)) >= 8);
        a.fold(h(2), 5);
        assert_eq!(a.estimate(h(2)), 5);
    }
}
