//! Fail-safe, eager refresh and "not found" of `TieredCache::get_or_load_with` (issue 15,
//! item 5), on the Redis at `REDIS_URL` (127.0.0.1:6379 by default), each test under a
//! prefix of its own.
//!
//! Run with `cargo test -p vitals-cache --test fail_safe`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, Notify};
use vitals_cache::{LoadOptions, TieredCache};

use common::loaders::{
    fail_safe_cache, fail_safe_pair, first_load, hit_telling, in_redis, load_answering,
    DatabaseDown, Gated, Got,
};
use common::own_cache;

/// The tags these tests' loads are stored under (a tag, so fail-safe arms only entries indexed under it).
const TAGS: &[&str] = &["allergies"];

async fn load(cache: &TieredCache, key: &str, ttl: Duration, o: &LoadOptions, v: &str) -> Got {
    load_answering(cache, key, ttl, TAGS, o, Ok(Some(v))).await
}

async fn fail(cache: &TieredCache, key: &str, ttl: Duration, o: &LoadOptions) -> Got {
    load_answering(cache, key, ttl, TAGS, o, Err(DatabaseDown)).await
}

/// The cache of test `name`, its load options refreshing eagerly past `fraction` of the TTL,
/// once it loaded `v` under `key` for `ttl` and `at` of that TTL passed since.
async fn late_in_the_ttl(
    name: &str,
    key: &str,
    ttl: Duration,
    fraction: f64,
    v: &str,
    at: f64,
) -> (TieredCache, LoadOptions) {
    let cache = own_cache(name).await;
    let o = cache.load_options().eager_refresh(Some(fraction));
    let (loaded_at, _) = first_load(load(&cache, key, ttl, &o, v)).await;
    tokio::time::sleep_until(loaded_at + ttl.mul_f64(at)).await;
    (cache, o)
}

#[tokio::test]
async fn a_failed_reload_serves_the_last_value_stale_within_the_horizon_and_not_after() {
    let (ttl, horizon) = (Duration::from_millis(300), Duration::from_millis(1200));
    let (cache, o) = fail_safe_cache("fs-stale", horizon).await;
    let key = "student:7:allergies";
    let (loaded_at, first) = first_load(load(&cache, key, ttl, &o, "peanut")).await;
    assert!(!first.stale);

    // Before its TTL a failing loader is not even called: a hit.
    let hit = fail(&cache, key, ttl, &o).await.unwrap().unwrap();
    assert!(!hit.stale && *hit.value == "peanut");

    // Past its TTL (Redis dropped it too: its TTL is not extended), the database is down.
    tokio::time::sleep_until(loaded_at + ttl + Duration::from_millis(100)).await;
    assert!(!in_redis(&cache, key).await, "redis keeps the logical TTL");
    let before = cache.stats();
    let stale = fail(&cache, key, ttl, &o).await.unwrap().unwrap();
    assert!(stale.stale, "served past its TTL, and says so");
    assert_eq!(*stale.value, "peanut");
    // Concurrent callers while it is down: each gets the stale value, none an error.
    let many = futures::future::join_all((0..8).map(|_| fail(&cache, key, ttl, &o))).await;
    for got in many {
        let got = got.expect("fail-safe serves every caller").unwrap();
        assert!(got.stale && *got.value == "peanut");
    }
    let after = cache.stats();
    assert_eq!(after.stale_served - before.stale_served, 9);
    assert!(after.load_errors > before.load_errors);

    // Past the horizon: the error, as without fail-safe.
    tokio::time::sleep_until(loaded_at + ttl + horizon + Duration::from_millis(100)).await;
    assert_eq!(fail(&cache, key, ttl, &o).await.unwrap_err(), DatabaseDown);
    assert_eq!(cache.stats().stale_served, after.stale_served);

    // The database is back: a fresh value, not stale.
    let back = load(&cache, key, ttl, &o, "peanut, sesame")
        .await
        .unwrap()
        .unwrap();
    assert!(!back.stale && *back.value == "peanut, sesame");
    cache.shutdown().await;
}

#[tokio::test]
async fn with_fail_safe_off_the_error_reaches_the_caller_as_today() {
    let cache = own_cache("fs-off").await;
    let ttl = Duration::from_millis(200);
    let o = cache.load_options();
    assert_eq!(o.fail_safe_max(), Duration::ZERO, "off by default");
    let key = "student:8:allergies";
    let (loaded_at, _) = first_load(load(&cache, key, ttl, &o, "latex")).await;
    let other = "student:9:allergies";
    cache
        .get_or_load(other, ttl, &[], || async {
            Ok::<_, DatabaseDown>("dust".to_owned())
        })
        .await
        .unwrap();
    tokio::time::sleep_until(loaded_at + ttl + Duration::from_millis(100)).await;
    assert_eq!(fail(&cache, key, ttl, &o).await.unwrap_err(), DatabaseDown);
    let old_api = cache
        .get_or_load(other, ttl, &[], || async { Err::<String, _>(DatabaseDown) })
        .await;
    assert_eq!(old_api.unwrap_err(), DatabaseDown);
    let s = cache.stats();
    assert_eq!((s.stale_served, s.load_errors), (0, 2));
    cache.shutdown().await;
}

#[tokio::test]
async fn an_invalidated_value_is_never_served_stale() {
    let (cache, o) = fail_safe_cache("fs-inval", Duration::from_secs(30)).await;
    let (key, ttl) = ("student:10:allergies", Duration::from_millis(200));
    let (loaded_at, _) = first_load(load(&cache, key, ttl, &o, "penicillin")).await;
    // A nurse removed the allergy: the entry goes, its fail-safe copy with it.
    cache.invalidate_tag("allergies").await;
    tokio::time::sleep_until(loaded_at + ttl + Duration::from_millis(50)).await;
    assert_eq!(fail(&cache, key, ttl, &o).await.unwrap_err(), DatabaseDown);
    assert_eq!(cache.stats().stale_served, 0);
    cache.shutdown().await;
}

/// The same on another instance, which took the value from Redis (so its L1 entry came
/// without the entry's tags): a tag invalidation after Redis expired the key names no key,
/// so that copy must not have been given a fail-safe horizon at all.
#[tokio::test]
async fn a_copy_read_from_redis_is_not_served_stale_after_a_tag_invalidation() {
    let cfg = common::config("fs-inval-b", &common::redis_url());
    let (a, b) = (common::build(cfg.clone()).await, common::build(cfg).await);
    let ttl = Duration::from_millis(300);
    let o = a.load_options().fail_safe(Duration::from_secs(30));
    let key = "student:12:allergies";
    let (loaded_at, _) = first_load(load(&a, key, ttl, &o, "latex")).await;
    // B's read is an L2 hit: its loader never runs.
    let on_b = fail(&b, key, ttl, &o).await.unwrap().unwrap();
    assert!(!on_b.stale && *on_b.value == "latex");
    assert!(b.stats().l2_hits >= 1, "{:?}", b.stats());
    tokio::time::sleep_until(loaded_at + ttl + Duration::from_millis(100)).await;
    assert!(!in_redis(&a, key).await, "Redis expired the key");
    // The allergy was removed: the data type's invalidation.
    a.invalidate_tag("allergies").await;
    assert_eq!(fail(&b, key, ttl, &o).await.unwrap_err(), DatabaseDown);
    assert_eq!(b.stats().stale_served, 0);
    a.shutdown().await;
    b.shutdown().await;
}

/// A copy that L1's TTL (shorter than the value's) expired and that a read then refilled
/// from Redis keeps its fail-safe horizon and its tags: once Redis has lost the key too and
/// the database is down, the last value is served stale (the refill used to replace the
/// armed entry with a bare one, so a hot key read again within its Redis TTL lost it).
#[tokio::test]
async fn a_copy_refilled_from_redis_after_l1s_ttl_keeps_its_fail_safe_horizon() {
    let cfg = common::config("fs-refill", &common::redis_url()).with_l1(
        true,
        100,
        Duration::from_millis(300),
    );
    let cache = common::build(cfg).await;
    let o = cache.load_options().fail_safe(Duration::from_secs(30));
    let (key, ttl) = ("student:13:allergies", Duration::from_secs(20));
    let (loaded_at, _) = first_load(load(&cache, key, ttl, &o, "sesame")).await;
    // Past L1's 300 ms, within Redis's 20 s: an L2 hit refills L1, the loader never runs.
    tokio::time::sleep_until(loaded_at + Duration::from_millis(400)).await;
    let l2_hits = cache.stats().l2_hits;
    let refilled = fail(&cache, key, ttl, &o).await.unwrap().unwrap();
    assert!(!refilled.stale && *refilled.value == "sesame");
    assert_eq!(cache.stats().l2_hits, l2_hits + 1, "{:?}", cache.stats());
    let refilled_at = tokio::time::Instant::now();
    // Redis loses the key (as at its TTL's end: no invalidation), the refilled copy expires.
    let mut conn = common::raw_conn(&common::redis_url()).await;
    let _: () = redis::AsyncCommands::del(&mut conn, cache.redis().unwrap().data_key(key))
        .await
        .unwrap();
    tokio::time::sleep_until(refilled_at + Duration::from_millis(400)).await;
    let stale = fail(&cache, key, ttl, &o)
        .await
        .expect("served stale")
        .unwrap();
    assert!(stale.stale && *stale.value == "sesame");
    // Its tags came along: the data type's invalidation still reaches it.
    cache.invalidate_tag("allergies").await;
    assert_eq!(fail(&cache, key, ttl, &o).await.unwrap_err(), DatabaseDown);
    cache.shutdown().await;
}

#[tokio::test]
async fn fifty_concurrent_hits_late_in_the_ttl_make_one_background_load_and_are_not_delayed() {
    let (key, ttl) = ("student:11:conditions", Duration::from_secs(20));
    // Past the refresh point (5 % of the TTL, 1 s): at 1.1 s, 18.9 s before the expiry for
    // the hits to land (the last 10 % of a 2 s TTL, from 1.85 s, was a 150 ms window that a
    // busy machine could miss: the hits then missed and waited on the gated load).
    let (cache, o) = late_in_the_ttl("fs-eager", key, ttl, 0.05, "asthma v1", 0.055).await;
    let gate = Arc::new(Notify::new());
    let calls = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    let (started_tx, started_rx) = oneshot::channel::<()>();
    let started_tx = Arc::new(std::sync::Mutex::new(Some(started_tx)));
    let hits = (0..50).map(|_| {
        let (cache, o) = (cache.clone(), o);
        let (gate, calls, finished, started_tx) = (
            gate.clone(),
            calls.clone(),
            finished.clone(),
            started_tx.clone(),
        );
        tokio::spawn(async move {
            cache
                .get_or_load_with(key, ttl, &["conditions"], &o, move || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    if let Some(tx) = started_tx.lock().unwrap().take() {
                        let _ = tx.send(());
                    }
                    gate.notified().await;
                    finished.store(true, Ordering::SeqCst);
                    Ok::<_, DatabaseDown>(Some("asthma v2".to_owned()))
                })
                .await
        })
    });
    for hit in futures::future::join_all(hits).await {
        let got = hit.unwrap().unwrap().unwrap();
        assert!(!got.stale);
        assert_eq!(*got.value, "asthma v1", "a hit returns the value it found");
    }
    // Every hit returned while the one refresh is still held at the gate.
    tokio::time::timeout(Duration::from_secs(5), started_rx)
        .await
        .expect("the background refresh starts")
        .unwrap();
    assert!(
        !finished.load(Ordering::SeqCst),
        "hits did not wait for the loader"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one background load for 50 hits"
    );
    assert_eq!(cache.stats().eager_refreshes, 1);

    gate.notify_one();
    let refreshed = common::eventually(Duration::from_secs(5), || async {
        cache
            .get::<String>(key)
            .await
            .as_deref()
            .map(String::as_str)
            == Some("asthma v2")
    })
    .await;
    assert!(refreshed, "the refresh is cached");
    let s = cache.stats();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!((s.loads, s.eager_refreshes, s.load_errors), (2, 1, 0));
    cache.shutdown().await;
}

#[tokio::test]
async fn a_failed_eager_refresh_does_not_evict() {
    let (key, ttl) = ("student:12:conditions", Duration::from_secs(1));
    // Past half the TTL: at 0.6 s.
    let (cache, o) = late_in_the_ttl("fs-eager-fail", key, ttl, 0.5, "epilepsy", 0.6).await;
    let (got, ran) = hit_telling(&cache, (key, ttl, &o), Err(DatabaseDown)).await;
    assert_eq!(*got.value, "epilepsy");
    ran.await.unwrap();
    let failed = common::eventually(Duration::from_secs(5), || async {
        cache.stats().load_errors == 1
    })
    .await;
    assert!(failed);
    assert_eq!(
        cache
            .get::<String>(key)
            .await
            .as_deref()
            .map(String::as_str),
        Some("epilepsy"),
        "still cached after the refresh failed"
    );
    cache.shutdown().await;
}

#[tokio::test]
async fn a_loader_that_finds_nothing_is_a_counted_miss_not_a_load_error() {
    let (cache, o) = fail_safe_cache("fs-none", Duration::from_secs(60)).await;
    let (key, ttl) = ("student:13:allergies", Duration::from_secs(60));
    let loader = Gated::new();
    let callers: Vec<_> = (0..10)
        .map(|_| loader.spawn(&cache, (key, ttl, o), Ok(None)))
        .collect();
    let waited = common::eventually(Duration::from_secs(5), || async {
        let s = cache.stats();
        s.loads == 1 && s.coalesced == 9
    })
    .await;
    assert!(waited, "one load, nine waiters");
    loader.open();
    for c in futures::future::join_all(callers).await {
        assert!(c.unwrap().unwrap().is_none(), "not found, for every waiter");
    }
    let s = cache.stats();
    assert_eq!(loader.calls(), 1);
    assert_eq!((s.not_found, s.load_errors, s.stale_served), (1, 0, 0));
    assert!(s.misses >= 1);
    // Not cached: the next read loads again.
    assert!(load(&cache, key, ttl, &o, "pollen")
        .await
        .unwrap()
        .is_some());
    assert_eq!(cache.stats().loads, 2);
    cache.shutdown().await;
}

#[tokio::test]
async fn misses_on_two_instances_make_one_load_through_the_load_lock() {
    let (a, b, o) = fail_safe_pair("fs-lock", Duration::from_secs(60)).await;
    let ttl = Duration::from_secs(60);
    let key = "student:14:allergies";
    let loader = Gated::new();
    let callers: Vec<_> = [&a, &b]
        .into_iter()
        .flat_map(|cache| (0..20).map(move |_| cache))
        .map(|cache| loader.spawn(cache, (key, ttl, o), Ok(Some("bee stings"))))
        .collect();
    // One instance holds the lock and loads; the other's leader waits for its value.
    let waiting = common::eventually(Duration::from_secs(5), || async {
        loader.calls() == 1 && a.stats().load_lock_waits + b.stats().load_lock_waits == 1
    })
    .await;
    assert!(waiting, "one load, the other instance waiting on its lock");
    loader.open();
    for c in futures::future::join_all(callers).await {
        assert_eq!(*c.unwrap().unwrap().unwrap().value, "bee stings");
    }
    assert_eq!(loader.calls(), 1, "one load for both instances");
    assert_eq!(a.stats().loads + b.stats().loads, 1);
    a.shutdown().await;
    b.shutdown().await;
}
