//! What a cache's handles and its background tasks share: the tiers, the counters, the
//! invalidation epochs, and the local half of every invalidation (which both a caller's
//! delete and a message from another instance apply).
//!
//! Epochs are striped counters, one set for keys and one for tags: a delete or overwrite
//! moves its key's stripe, a tag or group invalidation its tag's stripe only. A load
//! snapshots the stripes of its key and of its tags ([`Inner::epoch`]) and is cached only
//! if none moved, so an invalidation makes uncacheable the loads it can affect (and the
//! few whose stripe it shares), not every load in flight.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::CacheConfig;
use crate::flight::Flights;
use crate::l1::L1Cache;
#[cfg(feature = "redis")]
use crate::message::Message;
#[cfg(not(feature = "redis"))]
pub(crate) use crate::no_redis::NoRedis as SharedTier;
#[cfg(feature = "redis")]
pub(crate) use crate::redis_tier::RedisTier as SharedTier;

/// Stripes per set: a change makes a load of another key or tag uncacheable only when
/// they share a stripe, about 1 in 1024.
const STRIPES: usize = 1024;

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) l1_hits: AtomicU64,
    pub(crate) l2_hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) sets: AtomicU64,
    pub(crate) deletes: AtomicU64,
    pub(crate) loads: AtomicU64,
    pub(crate) coalesced: AtomicU64,
    pub(crate) load_errors: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) subscription_losses: AtomicU64,
    pub(crate) tag_invalidations: AtomicU64,
    pub(crate) stale_loads: AtomicU64,
    pub(crate) type_mismatches: AtomicU64,
    pub(crate) subscription_pings: AtomicU64,
}

pub(crate) struct Inner {
    pub(crate) config: CacheConfig,
    pub(crate) l1: Option<L1Cache>,
    /// The shared tier: Redis, or without the `redis` feature a type with no values
    /// (`no_redis.rs`), so that this is always `None` and `tiered.rs` has one code path.
    pub(crate) redis: Option<SharedTier>,
    pub(crate) flights: Flights,
    /// Invalidation epochs of keys, striped by key hash: a reader fills L1 only if
    /// the stripe of its key did not move while it read from Redis or loaded.
    key_epochs: Box<[AtomicU64]>,
    /// Invalidation epochs of tags (and groups), striped by tag hash: moved by a tag
    /// invalidation, checked by loads of entries set with that tag.
    tag_epochs: Box<[AtomicU64]>,
    pub(crate) counters: Counters,
    pub(crate) subscribed: watch::Sender<bool>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tasks: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) closed: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: stop the background tasks even without
        // an explicit shutdown (they only hold weak references).
        self.shutdown.cancel();
    }
}

#[inline]
fn stripe(name: &str) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h as usize % STRIPES
}

impl Inner {
    /// The state of a cache of `config` over these tiers, not subscribed, no task yet.
    pub(crate) fn new(config: CacheConfig, l1: Option<L1Cache>, redis: Option<SharedTier>) -> Self {
        let (subscribed, _) = watch::channel(false);
        Self {
            config,
            l1,
            redis,
            flights: Flights::default(),
            key_epochs: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            tag_epochs: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            counters: Counters::default(),
            subscribed,
            shutdown: CancellationToken::new(),
            tasks: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        }
    }

    /// The epoch of `key` with `tags`: the sum of their stripes' counters. Counters only
    /// grow, so the sum is unchanged exactly when none of them moved.
    #[inline]
    pub(crate) fn epoch(&self, key: &str, tags: &[&str]) -> u64 {
        let mut e = self.key_epochs[stripe(key)].load(Ordering::Acquire);
        for t in tags {
            e = e.wrapping_add(self.tag_epochs[stripe(t)].load(Ordering::Acquire));
        }
        e
    }

    /// Moves the epoch of `key` (an overwrite, a delete, a loaded value stored).
    #[inline]
    pub(crate) fn bump(&self, key: &str) {
        self.key_epochs[stripe(key)].fetch_add(1, Ordering::AcqRel);
    }

    fn bump_all(&self) {
        for e in self.key_epochs.iter().chain(self.tag_epochs.iter()) {
            e.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// The local half of a delete: moves the epoch of `key`, then drops it
    /// from L1; returns whether L1 held it.
    pub(crate) fn forget_local(&self, key: &str) -> bool {
        self.bump(key);
        self.l1.as_ref().is_some_and(|l1| l1.remove(key))
    }

    /// The local half of a tag invalidation: moves the epoch of `tag`, then drops
    /// the entries of `tag` from L1; returns their keys. Entries of the tag that L1
    /// holds without it (filled from Redis, which knows their tags) and loads in
    /// flight that fill them are covered by their keys: Redis names the keys it
    /// removed, and each is forgotten with [`Inner::forget_local`].
    pub(crate) fn invalidate_tag_local(&self, tag: &str) -> Vec<String> {
        self.tag_epochs[stripe(tag)].fetch_add(1, Ordering::AcqRel);
        self.l1
            .as_ref()
            .map(|l1| l1.invalidate_tag(tag))
            .unwrap_or_default()
    }

    /// Drops every L1 entry of this instance, moving every epoch first.
    pub(crate) fn clear_l1(&self) {
        self.bump_all();
        if let Some(l1) = &self.l1 {
            l1.clear();
        }
    }

    /// Applies another instance's invalidation to this one's L1.
    #[cfg(feature = "redis")]
    pub(crate) fn apply(&self, msg: Message) {
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        if msg.clear {
            self.clear_l1();
            return;
        }
        if let Some(tag) = &msg.t {
            self.invalidate_tag_local(tag);
        }
        for k in &msg.k {
            self.forget_local(k);
        }
    }
}
