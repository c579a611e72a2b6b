//! Repairs of cluster writes that failed: the keys and tags whose write, delete or
//! invalidation did not reach the cluster (a master failing over, a slot moving), replayed
//! as deletes once it answers again.
//!
//! On one node a failed write means Redis is unreachable, the subscription is lost and
//! every L1 is cleared when it is back. On a cluster one master can fail while the
//! subscription lives on another node: the writer keeps its new value in L1 while Redis,
//! and the other instances' L1, keep the old one. Deleting the key in Redis (which bumps its
//! generation and publishes the delete) once the cluster answers ends that: the next read
//! anywhere loads the current value. What waits is kept by `repair_queue.rs`.

use crate::error::CacheError;
use crate::redis_tier::RedisTier;

/// Keys per replayed delete.
const CHUNK: usize = 256;

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
