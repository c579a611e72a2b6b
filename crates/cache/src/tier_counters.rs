//! The Redis tier's counters and state, as [`TieredCache::stats`](crate::TieredCache::stats)
//! and a host's health checks read them.

use std::sync::atomic::Ordering;

use crate::redis_tier::RedisTier;
use crate::stats::BreakerState;

impl RedisTier {
    /// State of the circuit breaker.
    pub fn breaker_state(&self) -> BreakerState {
        self.inner.breaker.state()
    }

    /// Redis errors (failures and timeouts) so far.
    pub fn errors(&self) -> u64 {
        self.inner.errors.load(Ordering::Relaxed)
    }

    /// Payloads that could not be decoded (treated as misses) so far.
    pub fn decode_errors(&self) -> u64 {
        self.inner.decode_errors.load(Ordering::Relaxed)
    }

    /// Redis `used_memory` as last refreshed, if known.
    pub fn used_memory(&self) -> Option<u64> {
        match self.inner.used_memory.load(Ordering::Relaxed) {
            u64::MAX => None,
            n => Some(n),
        }
    }

    /// Whether values are kept out of Redis because no encryption key is configured
    /// and plaintext is not allowed (`CACHE_ALLOW_PLAINTEXT`): writes then carry only
    /// their invalidation and generation, and reads find nothing.
    pub fn refuses_plaintext(&self) -> bool {
        self.inner.refuse_values
    }

    /// Writes whose value was kept out of Redis (see [`RedisTier::refuses_plaintext`]).
    pub fn refused_writes(&self) -> u64 {
        self.inner.refused_writes.load(Ordering::Relaxed)
    }

    /// Invalidation messages published so far (writes, deletes, tag invalidations).
    pub fn invalidations_sent(&self) -> u64 {
        self.inner.sent.load(Ordering::Relaxed)
    }
}
