//! Counters and state of a cache, for health endpoints.

use serde::Serialize;

/// State of the circuit breaker in front of Redis (always `None` in [`CacheStats::breaker`]
/// without Redis).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Redis is called.
    Closed,
    /// Redis is skipped until the cool-down ends.
    Open,
    /// One probe call is let through; its outcome closes or reopens.
    HalfOpen,
}

/// A snapshot of a [`TieredCache`](crate::TieredCache)'s counters and state
/// (since start). Serialises to JSON for the stats endpoint.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups answered by L1.
    pub l1_hits: u64,
    /// Lookups answered by Redis (L1 missed).
    pub l2_hits: u64,
    /// `l1_hits + l2_hits`.
    pub hits: u64,
    /// Lookups answered by neither tier.
    pub misses: u64,
    /// `hits / (hits + misses)`, 0 before any lookup.
    pub hit_rate: f64,
    /// Values stored (`set` and loads).
    pub sets: u64,
    /// Keys deleted by `delete`/`delete_many`.
    pub deletes: u64,
    /// Loader runs in `get_or_load`.
    pub loads: u64,
    /// Callers of `get_or_load` that waited on another caller's load.
    pub coalesced: u64,
    /// Load locks this instance took before loading (one load across instances).
    pub load_locks: u64,
    /// Misses that found another instance's load lock held and waited for its value.
    pub load_lock_waits: u64,
    /// Misses that got the value another instance loaded, instead of loading (counted as
    /// misses at their lookup; their read of it from Redis is not counted again, as an L2
    /// hit or otherwise).
    pub coalesced_remote: u64,
    /// Misses that waited `CACHE_LOAD_LOCK_WAIT_MS` for another instance's load in vain,
    /// then loaded here.
    pub load_lock_timeouts: u64,
    /// Loader runs that failed.
    pub load_errors: u64,
    /// Tag and group invalidations requested here.
    pub tag_invalidations: u64,
    /// Loaded values not cached because their key or a tag was overwritten,
    /// deleted or invalidated during the load.
    pub stale_loads: u64,
    /// Of `stale_loads`, those Redis refused: a generation of the key or of a tag moved
    /// there during the load (a change on any instance, this one's included).
    pub redis_stale_loads: u64,
    /// Reads of a key as another type than its value was stored as (in L1), or whose
    /// Redis payload did not deserialise as the type asked for (another type, or an older
    /// format after a deploy): misses, counted here too.
    pub type_mismatches: u64,
    /// Values served past their TTL, flagged stale, because their reload failed
    /// (fail-safe, `CACHE_FAIL_SAFE_MAX`); each such failure is in `load_errors` too.
    pub stale_served: u64,
    /// Loads whose loader said "not found" (`Ok(None)`): misses, never `load_errors`,
    /// not cached.
    pub not_found: u64,
    /// Background reloads started by a hit late in its TTL (`CACHE_EAGER_REFRESH`).
    pub eager_refreshes: u64,
    /// Entries in L1.
    pub l1_entries: usize,
    /// Bytes of keys and values in L1 (a value weighs its encoded size).
    pub l1_bytes: usize,
    /// Values L1 did not take: refused by its admission (asked for less often lately than
    /// the entry they would have evicted), or larger than a shard's byte budget.
    pub l1_rejected: u64,
    /// Entries L1 dropped to make room for another (its entry or byte bound): their next
    /// read goes to Redis, or loads.
    pub l1_evictions: u64,
    /// L1 entries a lookup found past their TTL (dropped; the read went on to Redis).
    pub l1_expired: u64,
    /// Whether a Redis URL is configured.
    pub redis_configured: bool,
    /// Whether a Redis connection is established.
    pub redis_connected: bool,
    /// Redis `used_memory` (bytes) at the last refresh.
    pub redis_used_memory: Option<u64>,
    /// Redis failures and timeouts.
    pub redis_errors: u64,
    /// Whether values are kept out of Redis because they would be written in the
    /// clear (Redis configured, no `CACHE_ENCRYPTION_KEY`, no `CACHE_ALLOW_PLAINTEXT`).
    pub redis_plaintext_refused: bool,
    /// Writes whose value was kept out of Redis for that reason (their invalidation
    /// was still published).
    pub redis_refused_writes: u64,
    /// Redis payloads that failed to decode or decrypt (served as misses).
    pub decode_errors: u64,
    /// Circuit breaker state (`None` without Redis).
    pub breaker: Option<BreakerState>,
    /// Whether the invalidation subscription is live.
    pub subscribed: bool,
    /// Times the subscription dropped (each clears L1).
    pub subscription_losses: u64,
    /// Successful liveness PINGs of the subscription connection.
    pub subscription_pings: u64,
    /// Invalidation messages published by this instance.
    pub invalidations_sent: u64,
    /// Invalidation messages of other instances applied here.
    pub invalidations_received: u64,
}
