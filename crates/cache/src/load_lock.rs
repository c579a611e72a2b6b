//! One load across instances: concurrent misses of one key on several instances make one
//! load in all, not one per instance (issue 15, item 6).
//!
//! Within an instance the single flight (`flight.rs`) already makes one load; its leader then
//! asks Redis, in one script on the entry's slot, whether the value is there and, if not,
//! for a short lock (`SET {lock} token NX PX ttl`). The holder loads and writes the value as
//! before; the lock is released when its [`LoadLock`] drops (a compare-and-delete of its own
//! token, so a lock that expired and was taken by another instance is never removed), and
//! expires by itself when the holder crashed. The others wait for the value's arrival:
//!
//! - The event is the cache's own invalidation channel, which every instance already
//!   subscribes to: the write script publishes the key, and a release that leaves no value
//!   behind (the load failed, was stale, was cancelled) publishes a release notice
//!   (`Message::u`). No keyspace notifications (they need `notify-keyspace-events` set on
//!   every server, and on a cluster a subscription per node) and no polling.
//! - A waiter registers its interest before asking for the lock, so an arrival between
//!   the two is not missed; it wakes on the event or when the lock's remaining life runs
//!   out (a crashed holder), asks again, and either finds the value, takes the lock, or
//!   waits again, at most `load_lock_wait` in all; then it loads itself.
//!
//! No lock when it cannot help: Redis down or its breaker open (the script fails fast and
//! the leader loads locally, as before), the subscription down (no arrival could be heard),
//! or values kept out of Redis (none would arrive: no key, or a cluster key its layout keeps
//! out). A lock held by this instance (a
//! cancelled leader's release still on its way) is not waited for. An L1 hit never comes
//! here.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::CacheError;
use crate::inner::Inner;
use crate::message::Message;
use crate::redis_tier::RedisTier;
use crate::scripts::{evalsha, LOAD_LOCK_SCRIPT, LOAD_UNLOCK_SCRIPT};
use crate::tier::Generations;

static LOCK: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(LOAD_LOCK_SCRIPT));
static UNLOCK: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(LOAD_UNLOCK_SCRIPT));

/// Tokens of this process's locks: with the instance's origin, unique per lock.
static TOKENS: AtomicU64 = AtomicU64::new(0);

/// What the lock script found.
enum Attempt {
    /// The value is in Redis already.
    Present,
    /// The lock is ours: load, with the generations read as it was taken.
    Acquired(LoadLock, Generations),
    /// Another load holds it (this instance's own, if `ours`), for `left` more at most.
    Held { ours: bool, left: Duration },
}

/// The lock of one load across instances, released (compare-and-delete of its token) when
/// dropped: after the loaded value was written, when the load failed, or when its future
/// was dropped. Not released if the process dies: it expires.
pub(crate) struct LoadLock {
    redis: RedisTier,
    key: String,
    token: String,
    /// The load failed: the release notice says so.
    failed: bool,
}

impl LoadLock {
    /// Marks the load failed: its waiters on other instances may serve their stale value.
    pub(crate) fn failed(&mut self) {
        self.failed = true;
    }
}

impl Drop for LoadLock {
    fn drop(&mut self) {
        // Drop cannot await: the release runs as a task. Without a runtime (or one that is
        // shutting down) it never runs and the lock expires, as after a crash.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (redis, key, token, failed) = (
            self.redis.clone(),
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.token),
            self.failed,
        );
        rt.spawn(async move {
            if let Err(e) = redis.release_load_lock(&key, &token, failed).await {
                tracing::debug!(target: "vitals_cache", error = %e, "load lock not released: it expires");
            }
        });
    }
}

impl RedisTier {
    /// The lock script: the value present, the lock taken, or held by whom and how long.
    async fn try_load_lock(
        &self,
        key: &str,
        tags: &[&str],
        ttl: Duration,
    ) -> Result<Attempt, CacheError> {
        let layout = &self.inner.layout;
        let mut keys = vec![layout.data_key(key), layout.lock_key(key)];
        keys.extend(layout.gen_keys(key, tags));
        let token = format!(
            "{}:{}",
            self.inner.origin,
            TOKENS.fetch_add(1, Ordering::Relaxed)
        );
        let ttl_ms = ttl.as_millis().clamp(1, u128::from(u64::MAX)) as u64;
        let mut cmd = evalsha(&LOCK, &keys);
        cmd.arg(&token).arg(ttl_ms);
        let (state, holder, left, gens): (i64, String, i64, Vec<String>) = self
            .run(|mut conn| async move {
                crate::scripts::eval(&mut conn, LOAD_LOCK_SCRIPT, &cmd, None)
                    .await
                    .map(|(v, _)| v)
            })
            .await?;
        Ok(match state {
            1 => Attempt::Present,
            2 => Attempt::Acquired(
                LoadLock {
                    redis: self.clone(),
                    key: key.to_owned(),
                    token,
                    failed: false,
                },
                Generations::new(gens),
            ),
            _ => Attempt::Held {
                ours: holder
                    .split_once(':')
                    .is_some_and(|(origin, _)| origin == self.inner.origin),
                // No expiry (-1) cannot be ours; wait the lock's own life then.
                left: u64::try_from(left).map_or(ttl, Duration::from_millis),
            },
        })
    }

    /// Deletes `key`'s lock if it still holds `token`; tells the waiters when no value was
    /// left behind (the write's own message told them otherwise), and whether the load failed.
    async fn release_load_lock(
        &self,
        key: &str,
        token: &str,
        failed: bool,
    ) -> Result<(), CacheError> {
        let layout = &self.inner.layout;
        let keys = [layout.lock_key(key), layout.data_key(key)];
        let msg = Message::released(&self.inner.origin, key, failed);
        let mut cmd = evalsha(&UNLOCK, &keys);
        cmd.arg(token).arg(&self.inner.channel).arg(&msg);
        let _: i64 = self
            .run(|mut conn| async move {
                crate::scripts::eval(&mut conn, LOAD_UNLOCK_SCRIPT, &cmd, None)
                    .await
                    .map(|(v, _)| v)
            })
            .await?;
        Ok(())
    }
}

/// What a flight's leader does after asking the other instances.
pub(crate) enum Across<T, S> {
    /// Another instance loaded it: the value, from Redis.
    Arrived(Arc<T>),
    /// The load of the instance holding the lock failed: the stale value this instance holds
    /// (fail-safe), as that load's own caller gets its own.
    Failed(S),
    /// Load here, holding the lock if one was taken (`None`: no lock, as without Redis).
    /// With the generations to write the value under when Redis was asked already
    /// (`Some(None)`: the ask failed, so the value stays out of Redis as after a failed
    /// generations read, and no second timeout is paid); `None`: read them as before.
    Load(Option<LoadLock>, Option<Option<Generations>>),
}

/// Before a flight's leader loads `key`: the value another instance is loading, when it
/// arrives within `load_lock_wait` (read from Redis by `fetch`), the value `stale` gives
/// (fail-safe) when that load failed, or the go-ahead to load (with the lock when taken).
pub(crate) async fn load_across<T, S, F, Fut>(
    inner: &Inner,
    key: &str,
    tags: &[&str],
    fetch: F,
    stale: impl Fn() -> Option<S>,
) -> Across<T, S>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<Arc<T>>>,
{
    let config = &inner.config;
    let Some(redis) = &inner.redis else {
        return Across::Load(None, None);
    };
    // A key its cluster layout keeps out of Redis (`misplaced_groups`) has no value to
    // wait for either: each waiter would load in turn.
    if !config.load_lock
        || redis.refuses_plaintext()
        || !*inner.subscribed.borrow()
        || !redis.inner.layout.misplaced_groups(key, tags).is_empty()
    {
        return Across::Load(None, None);
    }
    let c = &inner.counters;
    let deadline = Instant::now() + config.load_lock_wait;
    let interest = inner.arrivals.register(key);
    let mut waited = false;
    loop {
        // Enabled before the script runs: an arrival between the two still wakes it.
        let arrival = interest.signal.notify.notified();
        tokio::pin!(arrival);
        arrival.as_mut().enable();
        match redis.try_load_lock(key, tags, config.load_lock_ttl).await {
            // Redis unwell (counted, and by the breaker): load here, as without the lock.
            Err(_) => return Across::Load(None, Some(None)),
            Ok(Attempt::Acquired(lock, gens)) => {
                c.load_locks.fetch_add(1, Ordering::Relaxed);
                return Across::Load(Some(lock), Some(Some(gens)));
            }
            Ok(Attempt::Present) => {
                // A payload that does not decode as `T` is loaded and overwritten here.
                return match fetch().await {
                    Some(v) => {
                        c.coalesced_remote.fetch_add(1, Ordering::Relaxed);
                        Across::Arrived(v)
                    }
                    None => Across::Load(None, None),
                };
            }
            Ok(Attempt::Held { ours: true, .. }) => return Across::Load(None, None),
            Ok(Attempt::Held { left, .. }) => {
                let now = Instant::now();
                if !waited {
                    waited = true;
                    c.load_lock_waits.fetch_add(1, Ordering::Relaxed);
                }
                if now >= deadline {
                    c.load_lock_timeouts.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(target: "vitals_cache", "another instance's load did not arrive in time: loading here");
                    return Across::Load(None, None);
                }
                // The event, or the end of the lock's life (its holder may be gone).
                let until = deadline.min(now + left + Duration::from_millis(1));
                let _ = tokio::time::timeout_at(until, arrival).await;
                // The holder's load failed: the stale value now, rather than a load of our
                // own (each instance in turn) that would likely fail too.
                if interest.holder_failed() {
                    if let Some(s) = stale() {
                        return Across::Failed(s);
                    }
                }
            }
        }
    }
}
