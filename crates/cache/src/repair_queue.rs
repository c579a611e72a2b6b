//! What waits for repair (`repair.rs`): the keys and tags of cluster writes that failed, in
//! bounded sets, taken by a replay and counted while it runs.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The most keys, and apart the most tags, kept for repair; past it, further ones are
/// counted as dropped (a key's old value lives in Redis until its TTL, so do a tag's).
const MAX_KEYS: usize = 100_000;

/// What is waiting for repair.
#[derive(Default)]
pub(crate) struct Repairs {
    pending: Mutex<Pending>,
    /// Taken by a replay that has not finished.
    in_flight: AtomicUsize,
}

#[derive(Default)]
struct Pending {
    keys: HashSet<String>,
    tags: HashSet<String>,
    dropped: u64,
}

impl Repairs {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        crate::poison::lock(&self.pending)
    }

    pub(crate) fn record(&self, keys: &[&str], tag: Option<&str>) {
        let mut guard = self.lock();
        let p = &mut *guard;
        for k in keys {
            keep(&mut p.keys, k, &mut p.dropped);
        }
        if let Some(t) = tag {
            keep(&mut p.tags, t, &mut p.dropped);
        }
    }

    /// Keys and tags waiting or being replayed.
    pub(crate) fn len(&self) -> usize {
        let p = self.lock();
        p.keys.len() + p.tags.len() + self.in_flight.load(Ordering::Acquire)
    }

    /// Keys and tags not kept for repair because too many were waiting.
    pub(crate) fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Takes what waits, counting it in flight until [`Repairs::done`].
    pub(crate) fn take(&self) -> (Vec<String>, Vec<String>) {
        let mut p = self.lock();
        self.in_flight
            .fetch_add(p.keys.len() + p.tags.len(), Ordering::AcqRel);
        (p.keys.drain().collect(), p.tags.drain().collect())
    }

    pub(crate) fn done(&self, n: usize) {
        self.in_flight.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Adds `item` to `set` unless it holds `MAX_KEYS` others already (then counts it dropped).
fn keep(set: &mut HashSet<String>, item: &str, dropped: &mut u64) {
    if set.len() < MAX_KEYS || set.contains(item) {
        set.insert(item.to_owned());
    } else {
        *dropped += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_capped_like_keys() {
        let r = Repairs::default();
        for i in 0..MAX_KEYS {
            r.record(&[], Some(&format!("t{i}")));
        }
        assert_eq!((r.len(), r.dropped()), (MAX_KEYS, 0));
        r.record(&[], Some("t0"));
        assert_eq!(r.dropped(), 0, "a tag already waiting is no new one");
        r.record(&["k"], Some("one-too-many"));
        assert_eq!(
            (r.len(), r.dropped()),
            (MAX_KEYS + 1, 1),
            "the key fits, the tag not"
        );
    }
}
