//! What a cache's handles and its background tasks share: the tiers, the counters, the
//! invalidation epochs, and the local half of every invalidation (which both a caller's
//! delete and a message from another instance apply).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::CacheConfig;
use crate::flight::Flights;
use crate::l1::L1Cache;
use crate::redis_tier::{Message, RedisTier};

const STRIPES: usize = 64;

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
    pub(crate) subscription_pings: AtomicU64,
}

pub(crate) struct Inner {
    pub(crate) config: CacheConfig,
    pub(crate) l1: Option<L1Cache>,
    pub(crate) redis: Option<RedisTier>,
    pub(crate) flights: Flights,
    /// Invalidation epochs, striped by key hash: a reader fills L1 only if the
    /// stripe of its key did not move while it read from Redis or loaded.
    epochs: [AtomicU64; STRIPES],
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
fn stripe(key: &str) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for b in key.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h as usize % STRIPES
}

impl Inner {
    /// The state of a cache of `config` over these tiers, not subscribed, no task yet.
    pub(crate) fn new(config: CacheConfig, l1: Option<L1Cache>, redis: Option<RedisTier>) -> Self {
        let (subscribed, _) = watch::channel(false);
        Self {
            config,
            l1,
            redis,
            flights: Flights::default(),
            epochs: std::array::from_fn(|_| AtomicU64::new(0)),
            counters: Counters::default(),
            subscribed,
            shutdown: CancellationToken::new(),
            tasks: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        }
    }

    #[inline]
    pub(crate) fn epoch(&self, key: &str) -> u64 {
        self.epochs[stripe(key)].load(Ordering::Acquire)
    }

    #[inline]
    pub(crate) fn bump(&self, key: &str) {
        self.epochs[stripe(key)].fetch_add(1, Ordering::AcqRel);
    }

    fn bump_all(&self) {
        for e in &self.epochs {
            e.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// The local half of a delete: moves the epoch of `key`, then drops it
    /// from L1; returns whether L1 held it.
    pub(crate) fn forget_local(&self, key: &str) -> bool {
        self.bump(key);
        self.l1.as_ref().is_some_and(|l1| l1.remove(key))
    }

    /// The local half of a tag invalidation: moves every epoch, then drops
    /// the entries of `tag` from L1; returns their keys.
    pub(crate) fn invalidate_tag_local(&self, tag: &str) -> Vec<String> {
        self.bump_all();
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
