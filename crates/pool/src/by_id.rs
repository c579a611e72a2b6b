//! The handle's waiters and held connections, keyed by the id each acquire takes: a
//! `VecDeque` sorted by id that keeps its capacity, so an acquire and its release allocate
//! nothing once the pool has been busy (a `BTreeMap` allocates a node whenever it goes from
//! empty to one entry, that is at almost every acquire of a quiet pool). Ids are taken in
//! increasing order, so a waiter's insert is a push at the back and the first entry is the
//! oldest; a held connection's, whose acquires may end out of order, lands by binary search.
//! A removal moves the shorter side: waiters leave mostly from the front, so even a long
//! queue of waiters on a saturated pool costs O(1) per removal there.

use std::collections::VecDeque;

/// Values by increasing `u64` id, oldest first.
#[derive(Debug)]
pub(crate) struct ById<T> {
    entries: VecDeque<(u64, T)>,
}

impl<T> ById<T> {
    pub(crate) const fn new() -> Self {
        Self {
            entries: VecDeque::new(),
        }
    }

    /// Adds `value` under `id`; an id already present has its value replaced.
    pub(crate) fn insert(&mut self, id: u64, value: T) {
        match self.entries.back() {
            Some((last, _)) if *last >= id => match self.position(id) {
                Ok(i) => self.entries[i].1 = value,
                Err(i) => self.entries.insert(i, (id, value)),
            },
            _ => self.entries.push_back((id, value)),
        }
    }

    /// Takes the value under `id` out, if present.
    pub(crate) fn remove(&mut self, id: u64) -> Option<T> {
        let i = self.position(id).ok()?;
        self.entries.remove(i).map(|(_, v)| v)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The values, oldest (smallest id) first.
    pub(crate) fn values(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().map(|(_, v)| v)
    }

    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.entries.iter_mut().map(|(_, v)| v)
    }

    fn position(&self, id: u64) -> Result<usize, usize> {
        self.entries.binary_search_by_key(&id, |(k, _)| *k)
    }
}

#[cfg(test)]
mod tests {
    use super::ById;

    #[test]
    fn keeps_ids_in_order_whatever_the_order_of_removals() {
        let mut m = ById::new();
        for id in [1, 2, 3, 4] {
            m.insert(id, id * 10);
        }
        assert_eq!(m.remove(3), Some(30));
        assert_eq!(m.remove(3), None);
        assert_eq!(m.remove(1), Some(10));
        m.insert(5, 50);
        // An id out of order (never taken so by the handle) still lands in its place.
        m.insert(0, 0);
        m.insert(2, 21);
        assert_eq!(m.values().copied().collect::<Vec<_>>(), [0, 21, 40, 50]);
        assert_eq!(m.len(), 4);
        for v in m.values_mut() {
            *v += 1;
        }
        assert_eq!(m.values().next(), Some(&1));
    }

    #[test]
    fn a_release_after_its_acquire_leaves_the_capacity() {
        let mut m = ById::new();
        m.insert(1, ());
        let capacity = m.entries.capacity();
        for id in 2..100 {
            m.remove(id - 1);
            m.insert(id, ());
        }
        assert_eq!(m.entries.capacity(), capacity);
        assert_eq!(m.len(), 1);
    }
}
