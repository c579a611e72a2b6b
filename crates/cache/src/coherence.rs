//! The background tasks that keep a cache coherent with Redis: the subscriber (applies
//! other instances' invalidations, PINGs its subscription so a silently dead one is
//! noticed, clears L1 and resubscribes when it is lost) and the maintenance task
//! (connects Redis while it is not, probes it when unwell, refreshes its used memory; on a
//! cluster also follows its masters and replays failed writes).
//!
//! Both hold only a weak reference to the cache's state: dropping the last handle, or
//! [`TieredCache::shutdown`](crate::TieredCache::shutdown), stops them.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt as _;
use tokio::task::JoinHandle;

use crate::inner::Inner;
use crate::message::Message;
use crate::redis_tier::RedisTier;
use crate::stats::BreakerState;

/// Starts the subscriber and the maintenance task of `inner` over `redis`.
pub(crate) fn spawn(inner: &Arc<Inner>, redis: &RedisTier) -> [JoinHandle<()>; 2] {
    [
        tokio::spawn(subscriber(Arc::downgrade(inner), redis.clone())),
        tokio::spawn(maintenance(Arc::downgrade(inner), redis.clone())),
    ]
}

/// Keeps the invalidation subscription: applies messages of other instances
/// to L1; on a lost subscription clears L1 (what was missed can't be known)
/// and resubscribes every `reconnect_interval`.
async fn subscriber(weak: Weak<Inner>, redis: RedisTier) {
    let Some(inner) = weak.upgrade() else { return };
    let token = inner.shutdown.clone();
    let interval = inner.config.reconnect_interval;
    let connect_timeout = inner.config.connect_timeout;
    let ping_every = inner
        .config
        .subscription_ping
        .max(Duration::from_millis(10));
    drop(inner);
    let mut lost_before = false;
    loop {
        let ps = tokio::select! {
            () = token.cancelled() => return,
            r = tokio::time::timeout(connect_timeout, redis.subscribe()) => r,
        };
        if let Ok(Ok(subscriptions)) = ps {
            let Some(inner) = weak.upgrade() else { return };
            if lost_before {
                // Entries filled while unsubscribed may have missed updates.
                inner.clear_l1();
                tracing::info!(target: "vitals_cache", "invalidation subscription restored: L1 cleared");
            }
            inner.subscribed.send_replace(true);
            let (mut sinks, streams): (Vec<_>, Vec<_>) = subscriptions
                .into_iter()
                .map(redis::aio::PubSub::split)
                .unzip();
            // One stream of every subscription's messages; it ends when any of them ends
            // (that node gone: resubscribe to the masters as they are now).
            let mut stream = futures::stream::select_all(streams.into_iter().map(|s| {
                s.map(Some)
                    .chain(futures::stream::once(async { None }))
                    .boxed()
            }))
            .scan((), |(), m| futures::future::ready(m));
            drop(inner);
            let mut ping =
                tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
            loop {
                let msg = tokio::select! {
                    () = token.cancelled() => return,
                    _ = ping.tick() => {
                        let pongs = futures::future::join_all(
                            sinks.iter_mut().map(|sink| sink.ping::<redis::Value>()),
                        );
                        let pongs = tokio::time::timeout(connect_timeout, pongs).await;
                        if !pongs.is_ok_and(|all| all.iter().all(Result::is_ok)) {
                            break;
                        }
                        let Some(inner) = weak.upgrade() else { return };
                        inner.counters.subscription_pings.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    m = stream.next() => m,
                };
                let Some(msg) = msg else { break };
                let Some(inner) = weak.upgrade() else { return };
                match serde_json::from_slice::<Message>(msg.get_payload_bytes()) {
                    Ok(m) if redis.is_own(&m) => {}
                    Ok(m) => inner.apply(m),
                    Err(_) => {
                        tracing::debug!(target: "vitals_cache", "malformed invalidation message ignored");
                    }
                }
            }
            let Some(inner) = weak.upgrade() else { return };
            inner.subscribed.send_replace(false);
            inner
                .counters
                .subscription_losses
                .fetch_add(1, Ordering::Relaxed);
            inner.clear_l1();
            tracing::warn!(target: "vitals_cache", "invalidation subscription lost: L1 cleared, resubscribing");
            lost_before = true;
        }
        tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// Connects Redis when it is not yet, and refreshes its used memory.
async fn maintenance(weak: Weak<Inner>, redis: RedisTier) {
    let Some(inner) = weak.upgrade() else { return };
    let token = inner.shutdown.clone();
    let interval = inner.config.reconnect_interval;
    let refresh = inner.config.stats_refresh;
    drop(inner);
    let mut last_refresh: Option<tokio::time::Instant> = None;
    let mut topology_seen = 0;
    loop {
        if weak.strong_count() == 0 {
            return;
        }
        if !redis.is_connected() {
            if let Err(e) = redis.ensure_connected().await {
                tracing::debug!(target: "vitals_cache", error = %e, "redis still unreachable");
            }
        }
        if redis.is_cluster() && redis.is_connected() {
            topology_seen = cluster_upkeep(&weak, &redis, topology_seen).await;
        }
        let Some(inner) = weak.upgrade() else { return };
        let subscribed = *inner.subscribed.borrow();
        drop(inner);
        if redis.is_connected() && (!subscribed || redis.breaker_state() != BreakerState::Closed) {
            // Redis looks unwell: a probe lets the connection manager notice a
            // dead connection and reconnect before callers pay for it.
            let _ = redis.ping().await;
        }
        if redis.is_connected()
            && redis.breaker_state() == BreakerState::Closed
            && last_refresh.is_none_or(|t| t.elapsed() >= refresh)
        {
            last_refresh = Some(tokio::time::Instant::now());
            if let Err(e) = redis.refresh_used_memory().await {
                tracing::debug!(target: "vitals_cache", error = %e, "redis INFO memory failed");
            }
        }
        tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// A cluster's share of the maintenance: reads its masters again and, when they changed
/// since `seen` (a failover, a moved slot range, seen here or by a tag sweep), clears L1,
/// as a lost subscription does: a message published by a master that failed may never have
/// reached this instance. Then replays the writes that failed meanwhile. Returns the
/// changes seen.
async fn cluster_upkeep(weak: &Weak<Inner>, redis: &RedisTier, seen: u64) -> u64 {
    if let Err(e) = redis.refresh_slots().await {
        tracing::debug!(target: "vitals_cache", error = %e, "redis cluster slots not read");
    }
    let changes = redis.topology_changes();
    if changes != seen {
        if let Err(e) = redis.reconnect_cluster().await {
            tracing::warn!(target: "vitals_cache", error = %e, "redis cluster reconnection after a topology change failed");
            // Seen again on the next round.
            return seen;
        }
        if let Some(inner) = weak.upgrade() {
            inner.clear_l1();
        }
        tracing::warn!(target: "vitals_cache", "redis cluster masters changed (failover or resharding): reconnected, L1 cleared");
    }
    if redis.pending_repairs() > 0 && redis.breaker_state() != BreakerState::Open {
        redis.run_repairs().await;
    }
    changes
}
