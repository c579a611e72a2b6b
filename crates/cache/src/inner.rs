//! What a cache's handles and its background tasks share: the tiers, the counters, the
//! invalidation epochs, and the local half of every invalidation (which both a caller's
//! delete and a message from another instance apply).
//!
//! Epochs are exact per key and per tag (`epochs.rs`): a delete or overwrite moves its
//! key's, a tag or group invalidation its tag's only. A load watches its key and its tags
//! ([`Inner::watch`]) and is cached only if none moved, so an invalidation makes
//! uncacheable the loads it can affect, and no other load in flight.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Mutex;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::CacheConfig;
use crate::epochs::{Epochs, Snapshot};
use crate::flight::Flights;
use crate::l1::L1Cache;
#[cfg(feature = "redis")]
use crate::message::Message;
#[cfg(not(feature = "redis"))]
pub(crate) use crate::no_redis::NoRedis as SharedTier;
#[cfg(feature = "redis")]
pub(crate) use crate::redis_tier::RedisTier as SharedTier;

#[derive(Default)]
pub(crate) struct Counters {
    /// Striped: every L1 hit bumps it, from any number of threads at once.
    pub(crate) l1_hits: crate::striped::StripedCounter,
    pub(crate) l2_hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) sets: AtomicU64,
    pub(crate) deletes: AtomicU64,
    pub(crate) loads: AtomicU64,
    pub(crate) coalesced: AtomicU64,
    pub(crate) load_locks: AtomicU64,
    pub(crate) load_lock_waits: AtomicU64,
    pub(crate) coalesced_remote: AtomicU64,
    pub(crate) load_lock_timeouts: AtomicU64,
    pub(crate) load_errors: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) subscription_losses: AtomicU64,
    pub(crate) tag_invalidations: AtomicU64,
    pub(crate) stale_loads: AtomicU64,
    pub(crate) redis_stale_loads: AtomicU64,
    pub(crate) type_mismatches: AtomicU64,
    pub(crate) subscription_pings: AtomicU64,
    pub(crate) stale_served: AtomicU64,
    pub(crate) not_found: AtomicU64,
    pub(crate) eager_refreshes: AtomicU64,
}

pub(crate) struct Inner {
    pub(crate) config: CacheConfig,
    pub(crate) l1: Option<L1Cache>,
    /// The shared tier: Redis, or without the `redis` feature a type with no values
    /// (`no_redis.rs`), so that this is always `None` and `tiered.rs` has one code path.
    pub(crate) redis: Option<SharedTier>,
    pub(crate) flights: Flights,
    /// Keys waiting on another instance's load, woken by `apply` (`arrivals.rs`, `load_lock.rs`).
    #[cfg(feature = "redis")]
    pub(crate) arrivals: crate::arrivals::Arrivals,
    /// Invalidation epochs of the keys and tags (and groups) being read: a reader fills L1
    /// only if none of its key and tags moved while it read from Redis or loaded.
    epochs: Epochs,
    pub(crate) counters: Counters,
    /// The get latency and hit and miss handles of the `metrics` facade (`metrics.rs`).
    pub(crate) figures: crate::metrics::GetFigures,
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

impl Inner {
    /// The state of a cache of `config` over these tiers, not subscribed, no task yet.
    pub(crate) fn new(config: CacheConfig, l1: Option<L1Cache>, redis: Option<SharedTier>) -> Self {
        let (subscribed, _) = watch::channel(false);
        let figures = crate::metrics::GetFigures::new(redis.is_some());
        Self {
            config,
            l1,
            redis,
            flights: Flights::default(),
            #[cfg(feature = "redis")]
            arrivals: crate::arrivals::Arrivals::default(),
            epochs: Epochs::default(),
            counters: Counters::default(),
            figures,
            subscribed,
            shutdown: CancellationToken::new(),
            tasks: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        }
    }

    /// Watches `key` and `tags` for one read (taken before it starts):
    /// [`Snapshot::unchanged`] says whether none of them moved since.
    pub(crate) fn watch<'a>(&'a self, key: &'a str, tags: &[&'a str]) -> Snapshot<'a> {
        self.epochs.watch(key, tags)
    }

    /// Moves the epoch of `key` (an overwrite, a delete, a loaded value stored).
    #[inline]
    pub(crate) fn bump(&self, key: &str) {
        self.epochs.bump_key(key);
    }

    /// `key` was overwritten or deleted: moves its epoch (a load in flight is not cached)
    /// and detaches its flight (a miss from now on does not wait for that load's value).
    pub(crate) fn changed(&self, key: &str) {
        self.bump(key);
        self.flights.detach(key);
    }

    /// The local half of a delete: moves the epoch of `key` and detaches its flight
    /// ([`Inner::changed`]), then drops it from L1; returns whether L1 held it.
    pub(crate) fn forget_local(&self, key: &str) -> bool {
        self.changed(key);
        self.l1.as_ref().is_some_and(|l1| l1.remove(key))
    }

    /// [`Inner::forget_local`] by the leader of the key's flight, whose load found the key
    /// gone: the epoch moves and L1 drops it, the flight stays (its followers get "not
    /// found", and a miss meanwhile follows it rather than load the deleted record again).
    pub(crate) fn forget_local_in_flight(&self, key: &str) -> bool {
        self.bump(key);
        self.l1.as_ref().is_some_and(|l1| l1.remove(key))
    }

    /// The local half of a tag invalidation: moves the epoch of `tag` and detaches the
    /// flights stored under it, then drops the entries of `tag` from L1; returns their
    /// keys. Entries of the tag that L1 holds without it (filled from Redis, which knows
    /// their tags) and loads in flight that fill them are covered by their keys: Redis
    /// names the keys it removed, and each is forgotten with [`Inner::forget_local`].
    pub(crate) fn invalidate_tag_local(&self, tag: &str) -> Vec<String> {
        self.epochs.bump_tag(tag);
        self.flights.detach_tagged(tag);
        self.l1
            .as_ref()
            .map(|l1| l1.invalidate_tag(tag))
            .unwrap_or_default()
    }

    /// Drops every L1 entry of this instance, moving every epoch and detaching every
    /// flight first.
    pub(crate) fn clear_l1(&self) {
        self.epochs.bump_all();
        self.flights.detach_all();
        if let Some(l1) = &self.l1 {
            l1.clear();
        }
    }

    /// Applies another instance's invalidation to this one's L1. Counted in
    /// `invalidations_received` once applied, so that a count seen means its keys are
    /// forgotten and their flights detached.
    #[cfg(feature = "redis")]
    pub(crate) fn apply(&self, msg: Message) {
        if msg.clear {
            self.clear_l1();
        } else {
            if let Some(tag) = &msg.t {
                self.invalidate_tag_local(tag);
            }
            for k in &msg.k {
                self.forget_local(k);
            }
            // After the keys are forgotten: a waiter woken now reads past the moved epochs.
            self.arrivals.wake(&msg);
        }
        self.counters
            .received
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}
