//! Key hashing: rows are compared by 128-bit hashes of their natural key and of the values
//! their foreign keys point at, computed once on the reading thread, and kept in maps that
//! use those hashes as they are.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};

use crate::spec::{Registry, Value};

/// 128 bits from two SipHashes with random keys, drawn per import: collisions (which would
/// mark a row as a duplicate wrongly) are out of reach for any input size, and an input
/// cannot be crafted to collide, so the hashes can index maps as they are ([`Fold128`]).
///
/// Cheap to clone (two pairs of keys); every clone hashes alike.
#[derive(Clone)]
pub(crate) struct Hash128 {
    a: RandomState,
    b: RandomState,
}

impl Hash128 {
    pub(crate) fn new() -> Self {
        Self {
            a: RandomState::new(),
            b: RandomState::new(),
        }
    }

    fn of(&self, value: &impl Hash) -> u128 {
        (u128::from(self.a.hash_one(value)) << 64) | u128::from(self.b.hash_one(value))
    }

    /// The hash of a natural key (one value per key part) of type `spec`.
    pub(crate) fn key(&self, spec: usize, key: &[Value]) -> u128 {
        self.of(&(spec, key))
    }

    /// The hash of `value` in `table.column`: what a foreign key points at, or what a
    /// referenced row brings.
    pub(crate) fn reference(&self, table: &str, column: &str, value: &Value) -> u128 {
        self.of(&(table, column, value))
    }
}

/// A [`Hasher`] for keys that are already [`Hash128`] hashes: folds the 128 bits to 64.
#[derive(Default)]
pub(crate) struct Fold128(u64);

impl Hasher for Fold128 {
    fn write_u128(&mut self, h: u128) {
        // Truncation intended: the two halves are folded together.
        self.0 = (h as u64) ^ ((h >> 64) as u64);
    }

    // Only `u128`s are hashed here; other input is folded in, for completeness.
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map keyed by [`Hash128`] hashes, which it does not hash again.
pub(crate) type HashedMap<V> = HashMap<u128, V, BuildHasherDefault<Fold128>>;
/// A set of [`Hash128`] hashes, which it does not hash again.
pub(crate) type HashedSet = HashSet<u128, BuildHasherDefault<Fold128>>;

/// The (table, column) pairs some foreign key of `registry` references, each once.
pub(crate) fn referenced(registry: &Registry) -> Vec<(&'static str, &'static str)> {
    let mut referenced = Vec::new();
    for spec in registry.specs() {
        for fk in spec.foreign_keys() {
            if !referenced.contains(&(fk.table(), fk.referenced())) {
                referenced.push((fk.table(), fk.referenced()));
            }
        }
    }
    referenced
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_hash_alike_and_keys_of_other_types_differ() {
        let h = Hash128::new();
        let key = [Value::Int(1), Value::Text("a".into())];
        assert_eq!(h.key(0, &key), h.clone().key(0, &key));
        assert_ne!(h.key(0, &key), h.key(1, &key));
        assert_ne!(
            h.reference("t", "id", &Value::Int(1)),
            h.reference("t", "other", &Value::Int(1))
        );
        let mut set = HashedSet::default();
        assert!(set.insert(h.key(0, &key)));
        assert!(!set.insert(h.key(0, &key)));
    }
}
