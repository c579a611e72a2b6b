//! The load path of `get_or_load` and `get_or_load_with` (one implementation, issue 15's
//! review): "not found" is neither a type mismatch nor a load error, an eager refresh that
//! finds nothing drops the value, a stale copy is not served once its reload found nothing,
//! `eager_refreshes` counts refreshes run, and a waiter on another instance's load lock gets
//! its stale value at once when that load fails. On the Redis at `REDIS_URL`
//! (127.0.0.1:6379 by default), each test under a prefix of its own.
//!
//! Run with `cargo test -p vitals-cache --test load_path`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use vitals_cache::{LoadOptions, TieredCache};

use common::loaders::{
    fail_safe_cache, first_load, hit_telling, in_redis, load_answering, DatabaseDown, Gated, Got,
};
use common::{own_cache, own_pair};

/// The tags these tests' loads are stored under (none).
const TAGS: &[&str] = &[];

async fn load(cache: &TieredCache, key: &str, ttl: Duration, o: &LoadOptions, v: &str) -> Got {
    load_answering(cache, key, ttl, TAGS, o, Ok(Some(v))).await
}

async fn fail(cache: &TieredCache, key: &str, ttl: Duration, o: &LoadOptions) -> Got {
    load_answering(cache, key, ttl, TAGS, o, Err(DatabaseDown)).await
}

/// A load whose loader finds nothing: the record was deleted in the database.
async fn find_nothing(cache: &TieredCache, key: &str, ttl: Duration, o: &LoadOptions) -> Got {
    load_answering(cache, key, ttl, TAGS, o, Ok(None)).await
}

/// Two instances of the cache of test `name` (as [`own_pair`]), their load options
/// `options` made of the configured ones, once A loaded `v` under `key` for `ttl`: the
/// instances, the options, and when that load began.
async fn pair_after_a_load(
    name: &str,
    options: impl FnOnce(LoadOptions) -> LoadOptions,
    (key, ttl): (&str, Duration),
    v: &str,
) -> (TieredCache, TieredCache, LoadOptions, Instant) {
    let (a, b) = own_pair(name).await;
    let o = options(a.load_options());
    let (loaded_at, _) = first_load(load(&a, key, ttl, &o, v)).await;
    (a, b, o, loaded_at)
}

/// Fail-safe serving a value up to 30 s past its TTL.
fn fail_safe_30s(o: LoadOptions) -> LoadOptions {
    o.fail_safe(Duration::from_secs(30))
}

/// Eager refresh past 5 % of the TTL.
fn eager_at_5_percent(o: LoadOptions) -> LoadOptions {
    o.eager_refresh(Some(0.05))
}

/// A `get_or_load` that follows a flight whose loader found nothing loads for itself: not a
/// type mismatch (the old code downcast the flight's "not found" as a value and counted one).
#[tokio::test]
async fn a_get_or_load_waiting_on_a_flight_that_found_nothing_loads_without_a_type_mismatch() {
    let cache = own_cache("lp-none-follow").await;
    let ttl = Duration::from_secs(60);
    let o = cache.load_options();
    let key = "student:20:allergies";
    let not_found = Gated::new();
    let leader = not_found.spawn(&cache, (key, ttl, o), Ok(None));
    let led = common::eventually(Duration::from_secs(5), || async {
        cache.stats().loads == 1
    })
    .await;
    assert!(led, "the not-found load is up");
    let follower = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_load(key, ttl, &[], || async {
                    Ok::<_, DatabaseDown>("pollen".to_owned())
                })
                .await
        })
    };
    let waiting = common::eventually(Duration::from_secs(5), || async {
        cache.stats().coalesced == 1
    })
    .await;
    assert!(waiting, "get_or_load waits on the flight");
    not_found.open();
    assert!(leader.await.unwrap().unwrap().is_none());
    assert_eq!(*follower.await.unwrap().unwrap(), "pollen");
    let s = cache.stats();
    assert_eq!(
        (s.not_found, s.load_errors, s.type_mismatches, s.loads),
        (1, 0, 0, 2),
        "{s:?}"
    );
    cache.shutdown().await;
}

/// A value kept past its TTL for fail-safe whose reload said "not found" is gone: a later
/// failed reload must not serve it (the old code kept the stale copy in L1 and served it).
#[tokio::test]
async fn a_value_whose_reload_found_nothing_is_not_served_stale_afterwards() {
    let (cache, o) = fail_safe_cache("lp-none-stale", Duration::from_secs(30)).await;
    let ttl = Duration::from_millis(300);
    let key = "student:21:allergies";
    let (loaded_at, _) = first_load(load(&cache, key, ttl, &o, "peanut")).await;
    tokio::time::sleep_until(loaded_at + ttl + Duration::from_millis(100)).await;
    // The allergy record was deleted in the database.
    let gone = find_nothing(&cache, key, ttl, &o).await.unwrap();
    assert!(gone.is_none());
    // Then the database goes down: nothing to serve, the error.
    assert_eq!(fail(&cache, key, ttl, &o).await.unwrap_err(), DatabaseDown);
    assert_eq!(cache.stats().stale_served, 0);
    cache.shutdown().await;
}

/// A miss that finds nothing drops the key on the other instances too: their expired
/// fail-safe copy of it is not served when their own reload fails afterwards (the first version
/// of the fix dropped only the finding instance's copy).
#[tokio::test]
async fn a_reload_that_found_nothing_drops_the_other_instances_stale_copy() {
    let (key, ttl) = ("student:23:allergies", Duration::from_millis(300));
    let (a, b, o, loaded_at) =
        pair_after_a_load("lp-none-both", fail_safe_30s, (key, ttl), "peanut").await;
    // B holds its own copy (from Redis), armed for fail-safe by its call.
    let held = load(&b, key, ttl, &o, "not loaded: B reads Redis").await;
    assert_eq!(held.unwrap().unwrap().value.as_str(), "peanut");
    tokio::time::sleep_until(loaded_at + ttl + Duration::from_millis(100)).await;
    let received = b.stats().invalidations_received;
    // The allergy record was deleted in the database; A's reload finds nothing.
    let gone = find_nothing(&a, key, ttl, &o).await.unwrap();
    assert!(gone.is_none());
    let told = common::eventually(Duration::from_secs(5), || async {
        b.stats().invalidations_received > received
    })
    .await;
    assert!(told, "B heard of the removal: {:?}", b.stats());
    // Then B's database call fails: nothing to serve, the error.
    assert_eq!(fail(&b, key, ttl, &o).await.unwrap_err(), DatabaseDown);
    assert_eq!(b.stats().stale_served, 0);
    assert_eq!(
        a.stats().deletes,
        0,
        "the cache's own removal is not a caller's delete"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// An eager refresh whose loader finds nothing drops the value, here, in Redis and on the
/// other instances (the old code kept serving it until its TTL).
#[tokio::test]
async fn an_eager_refresh_that_finds_nothing_drops_the_value_everywhere() {
    let (key, ttl) = ("student:22:conditions", Duration::from_secs(20));
    let (a, b, o, loaded_at) =
        pair_after_a_load("lp-eager-none", eager_at_5_percent, (key, ttl), "asthma").await;
    assert_eq!(
        b.get::<String>(key).await.as_deref().map(String::as_str),
        Some("asthma"),
        "B holds it too (from Redis)"
    );
    // Past 5 % of the TTL (1 s): a hit claims the refresh; the record was deleted meanwhile.
    tokio::time::sleep_until(loaded_at + Duration::from_millis(1100)).await;
    let (hit, ran) = hit_telling(&a, (key, ttl, &o), Ok(None)).await;
    assert_eq!(*hit.value, "asthma", "the hit returns what it found");
    tokio::time::timeout(Duration::from_secs(5), ran)
        .await
        .expect("the refresh ran")
        .unwrap();
    let dropped = common::eventually(Duration::from_secs(5), || async {
        a.get::<String>(key).await.is_none()
            && b.get::<String>(key).await.is_none()
            && !in_redis(&a, key).await
    })
    .await;
    assert!(dropped, "no longer served: {:?} {:?}", a.stats(), b.stats());
    assert_eq!((a.stats().not_found, a.stats().load_errors), (1, 0));
    a.shutdown().await;
    b.shutdown().await;
}

/// Many hits at once on an instance that reads the value from Redis late in its TTL (each
/// read fills its own L1 entry, each entry one claim) run one refresh and count one (the old
/// code counted every claim, though the refreshes after the first found its flight up).
#[tokio::test]
async fn concurrent_hits_read_from_redis_count_the_one_refresh_they_run() {
    let (key, ttl) = ("student:23:conditions", Duration::from_secs(20));
    let (a, b, o, loaded_at) = pair_after_a_load(
        "lp-eager-count",
        eager_at_5_percent,
        (key, ttl),
        "diabetes v1",
    )
    .await;
    tokio::time::sleep_until(loaded_at + Duration::from_millis(1100)).await;
    let refresh = Gated::new();
    let hits = (0..30).map(|_| refresh.spawn(&b, (key, ttl, o), Ok(Some("diabetes v2"))));
    for hit in futures::future::join_all(hits).await {
        assert_eq!(*hit.unwrap().unwrap().unwrap().value, "diabetes v1");
    }
    let started =
        common::eventually(Duration::from_secs(5), || async { refresh.calls() == 1 }).await;
    assert!(started, "the refresh runs");
    refresh.open();
    let refreshed = common::eventually(Duration::from_secs(5), || async {
        b.get::<String>(key).await.as_deref().map(String::as_str) == Some("diabetes v2")
    })
    .await;
    assert!(refreshed);
    assert_eq!(refresh.calls(), 1, "one refresh ran");
    let s = b.stats();
    assert_eq!((s.eager_refreshes, s.loads), (1, 1), "{s:?}");
    a.shutdown().await;
    b.shutdown().await;
}

/// Two instances hold a value past its TTL (fail-safe); A's reload holds the load lock and
/// fails. B, waiting on that lock, gets its stale value at once, as A's caller does, rather
/// than running a load of its own on the failing database (the old code took the lock after
/// A's release and loaded: each instance in turn, one after another).
#[tokio::test]
async fn a_waiter_on_the_load_lock_gets_the_stale_value_when_the_holders_load_fails() {
    let (key, ttl) = ("student:24:allergies", Duration::from_millis(300));
    let (a, b, o, loaded_at) =
        pair_after_a_load("lp-lock-stale", fail_safe_30s, (key, ttl), "latex").await;
    // A's write tells B to drop its copy: heard first, so that it cannot arrive after B's
    // read below and drop the copy B is to serve stale (a CI run saw that).
    let told = common::eventually(Duration::from_secs(5), || async {
        b.stats().invalidations_received >= 1
    })
    .await;
    assert!(told, "B heard of A's write: {:?}", b.stats());
    // B reads it from Redis, untagged: its copy gets a horizon too.
    let on_b = fail(&b, key, ttl, &o).await.unwrap().unwrap();
    assert!(!on_b.stale && *on_b.value == "latex");
    tokio::time::sleep_until(loaded_at + ttl + Duration::from_millis(100)).await;
    assert!(!in_redis(&a, key).await, "Redis expired the key");

    let failing = Gated::new();
    let on_a = failing.spawn(&a, (key, ttl, o), Err(DatabaseDown));
    let locked = common::eventually(Duration::from_secs(5), || async {
        a.stats().load_locks == 2
    })
    .await;
    assert!(
        locked,
        "A holds the lock (its second: the first load took one too)"
    );
    let b_calls = Arc::new(AtomicUsize::new(0));
    let on_b = {
        let (b, calls) = (b.clone(), b_calls.clone());
        tokio::spawn(async move {
            b.get_or_load_with(key, ttl, &[], &o, move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<Option<String>, _>(DatabaseDown)
            })
            .await
        })
    };
    let waiting = common::eventually(Duration::from_secs(5), || async {
        b.stats().load_lock_waits == 1
    })
    .await;
    assert!(waiting, "B waits on A's lock");
    failing.open();
    let on_a = on_a.await.unwrap().unwrap().unwrap();
    assert!(on_a.stale && *on_a.value == "latex");
    let on_b = tokio::time::timeout(Duration::from_secs(5), on_b)
        .await
        .expect("B answered")
        .unwrap()
        .expect("B serves its stale value")
        .unwrap();
    assert!(on_b.stale && *on_b.value == "latex");
    assert_eq!(b_calls.load(Ordering::SeqCst), 0, "B did not load");
    let s = b.stats();
    assert_eq!((s.loads, s.stale_served, s.load_lock_timeouts), (0, 1, 0));
    a.shutdown().await;
    b.shutdown().await;
}

/// A miss that begins after a delete of its key (here, or on another instance) loads for
/// itself rather than wait for a load in flight since before the delete: that load may have
/// read the row before the write the delete follows (a nurse's reload after her change must
/// not get the list she just changed). The earlier read still gets what it loaded, uncached.
#[tokio::test]
async fn a_miss_after_a_delete_does_not_wait_for_a_load_begun_before_it() {
    let (a, b) = own_pair("lp-after-delete").await;
    let (ttl, o) = (Duration::from_secs(60), a.load_options());
    for (key, deleter) in [("student:21:allergies", &a), ("student:22:allergies", &b)] {
        let before = Gated::new();
        let early = before.spawn(&a, (key, ttl, o), Ok(Some("peanut")));
        let loading =
            common::eventually(Duration::from_secs(5), || async { before.calls() == 1 }).await;
        assert!(loading, "{key}: the first load runs");
        let received = a.stats().invalidations_received;
        // The write is committed, then its key deleted: by this instance or by the other,
        // whose message this one applies.
        assert!(!deleter.delete(key).await, "{key}: nothing was cached yet");
        if std::ptr::eq(deleter, &b) {
            let applied = common::eventually(Duration::from_secs(5), || async {
                a.stats().invalidations_received > received
            })
            .await;
            assert!(
                applied,
                "{key}: the other instance's delete reached this one"
            );
        }
        let after = tokio::time::timeout(Duration::from_secs(5), load(&a, key, ttl, &o, "none"))
            .await
            .unwrap_or_else(|_| panic!("{key}: the miss waited for the load begun before"));
        assert_eq!(*after.unwrap().unwrap().value, "none");
        before.open();
        let early = early.await.unwrap().unwrap().unwrap();
        assert_eq!(
            *early.value, "peanut",
            "{key}: the earlier read gets its own load"
        );
        assert_eq!(
            a.get::<String>(key).await.as_deref().map(String::as_str),
            Some("none"),
            "{key}: the value loaded before the delete is not cached over the new one"
        );
    }
    let s = a.stats();
    assert_eq!((s.loads, s.coalesced), (4, 0));
    a.shutdown().await;
    b.shutdown().await;
}
