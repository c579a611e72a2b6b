//! Bounded histories: the latest queries, the latest slow queries, the latest N+1 findings.

use std::collections::VecDeque;

/// The latest `capacity` items pushed, oldest dropped first; a capacity of 0 keeps none.
#[derive(Debug)]
pub(crate) struct History<T> {
    items: VecDeque<T>,
    capacity: usize,
}

impl<T> History<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            items: VecDeque::new(),
            capacity,
        }
    }

    /// Whether anything pushed is kept (so a caller can skip making an item it would drop).
    pub(crate) fn keeps(&self) -> bool {
        self.capacity > 0
    }

    /// Keeps `item`, dropping the oldest when full.
    pub(crate) fn push(&mut self, item: T) {
        if !self.keeps() {
            return;
        }
        if self.items.len() >= self.capacity {
            self.items.pop_front();
        }
        self.items.push_back(item);
    }

    /// The items, newest first.
    pub(crate) fn newest(&self) -> impl Iterator<Item = &T> {
        self.items.iter().rev()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_and_none_at_capacity_zero() {
        let mut h = History::new(2);
        for i in 0..5 {
            h.push(i);
        }
        assert_eq!(h.newest().copied().collect::<Vec<_>>(), [4, 3]);
        let mut off = History::new(0);
        off.push(1);
        assert!(!off.keeps());
        assert_eq!(off.newest().count(), 0);
    }
}
