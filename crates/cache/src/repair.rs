//! Repairs of cluster writes that failed: the keys and tags whose write, delete or
//! invalidation did not reach the cluster (a master failing over, a slot moving), replayed
//! as deletes once it answers again.
//!
//! On one node a failed write means Redis is unreachable, the subscription is lost and
//! every L1 is cleared when it is back. On a cluster one master can fail while the
//! subscription lives on another node: the writer keeps its new value in L1 while Redis,
//! and the other instances' L1, keep the old one. Deleting the key in Redis (which bumps its
//! generation and publishes the delete) once the cluster answers ends that: the next read
//! anywhere loads the current value.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::error::CacheError;
use crate::redis_tier::RedisTier;

/// The most keys, and apart the most tags, kept for repair; past it, further ones are
/// counted as dropped (a key's old value lives in Redis until its TTL, so do a tag's).
const MAX_KEYS: usize = 100_000;

/// Keys per replayed delete.
const CHUNK: usize = 256;

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
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record(&self, keys: &[&str], tag: Option<&str>) {
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
    fn take(&self) -> (Vec<String>, Vec<String>) {
        let mut p = self.lock();
        self.in_flight
            .fetch_add(p.keys.len() + p.tags.len(), Ordering::AcqRel);
        (p.keys.drain().collect(), p.tags.drain().collect())
    }

    fn done(&self, n: usize) {
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

impl RedisTier {
    /// Passes `result` on; on a cluster, an error first records `keys` and `tag` for repair.
    pub(crate) fn repair_on_error<T>(
        &self,
        result: Result<T, CacheError>,
        keys: &[&str],
        tag: Option<&str>,
    ) -> Result<T, CacheError> {
        if result.is_err() && self.inner.layout.is_cluster() {
            self.inner.repairs.record(keys, tag);
        }
        result
    }

    /// Keys and tags of failed cluster writes waiting for repair.
    pub fn pending_repairs(&self) -> usize {
        self.inner.repairs.len()
    }

    /// Keys and tags of failed cluster writes not kept for repair (more than 100 000 keys,
    /// or 100 000 tags, were waiting).
    pub fn dropped_repairs(&self) -> u64 {
        self.inner.repairs.dropped()
    }

    /// Replays the waiting repairs (deletes, tag invalidations); what fails again waits for
    /// the next call. Returns how many were repaired.
    pub(crate) async fn run_repairs(&self) -> usize {
        let (keys, tags) = self.inner.repairs.take();
        let taken = keys.len() + tags.len();
        let mut done = 0;
        for chunk in keys.chunks(CHUNK) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            match self.delete_inner(&refs).await {
                Ok(_) => done += chunk.len(),
                Err(_) => self.inner.repairs.record(&refs, None),
            }
        }
        for tag in &tags {
            match self.invalidate_tag_inner(tag).await {
                Ok(_) => done += 1,
                Err(_) => self.inner.repairs.record(&[], Some(tag)),
            }
        }
        // Failed ones are recorded again before the in-flight count drops.
        self.inner.repairs.done(taken);
        if done > 0 {
            tracing::info!(target: "vitals_cache", repaired = done, "redis cluster writes repaired after a fault");
        }
        done
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
