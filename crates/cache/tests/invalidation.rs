//! A tag or group invalidation makes uncacheable only the loads it can affect: a load of a
//! key outside the group, in flight during the invalidation, is cached; one inside is not.
//! So does a delete: thousands of changes of other keys and groups during a load leave it
//! cacheable (the epochs are exact per key and per tag, not striped). And the counters that
//! say where misses come from (stale loads, in Redis too; L1 evictions and expiries).
//! Run with `cargo test -p vitals-cache --test invalidation` (the Redis tests need Redis
//! at REDIS_URL, default redis://127.0.0.1:6379).

mod common;

use std::time::Duration;

use common::{build, config, load_during, received, redis_url};
use vitals_cache::{CacheConfig, TieredCache};

const MIN: Duration = Duration::from_secs(60);

/// What happens on the cache while a load runs.
#[derive(Clone, Copy)]
enum During {
    Group(&'static str),
    Tag(&'static str),
}
use During::{Group, Tag};

#[tokio::test]
async fn a_group_invalidation_spares_loads_outside_the_group_l1_only() {
    let cache = build(CacheConfig::default()).await;
    let (g, h) = (TieredCache::group_tag("G"), TieredCache::group_tag("H"));

    for (key, tags, during, value, cached) in [
        // A is in H: G's invalidation during its load leaves it cacheable.
        (
            "student:H:allergies",
            ["allergies", &h],
            Group("G"),
            "a",
            true,
        ),
        // B is in G: not cached.
        (
            "student:G:allergies",
            ["allergies", &g],
            Group("G"),
            "b",
            false,
        ),
        // A type tag shared by both: the tag's invalidation makes the load uncacheable.
        (
            "student:H:conditions",
            ["conditions", &h],
            Tag("conditions"),
            "c",
            false,
        ),
    ] {
        let change = async {
            match during {
                Group(group) => cache.invalidate_group(group).await,
                Tag(tag) => cache.invalidate_tag(tag).await,
            };
        };
        load_during(&cache, key, &tags, change, value).await;
        assert_eq!(cache.l1().unwrap().contains(key), cached, "{key}");
    }
    assert_eq!(cache.stats().stale_loads, 2);
    cache.shutdown().await;
}

#[tokio::test]
async fn a_group_invalidation_on_another_instance_spares_loads_outside_the_group() {
    let cfg = config("spare", &redis_url());
    let (a, b) = (build(cfg.clone()).await, build(cfg.clone()).await);
    let reader = build(cfg.with_l1(false, 1, MIN)).await;
    for c in [&a, &b, &reader] {
        assert!(c.wait_subscribed(Duration::from_secs(5)).await);
    }
    let (g, h) = (TieredCache::group_tag("G"), TieredCache::group_tag("H"));

    // G is invalidated on B and the message reaches A while A loads: a key of H is cached,
    // a key of G nowhere.
    for (received_so_far, key, tags, value, cached) in [
        (1, "student:H:allergies", ["allergies", &h], "a", true),
        (2, "student:G:allergies", ["allergies", &g], "b", false),
    ] {
        let change = async {
            b.invalidate_group("G").await;
            received(&a, received_so_far).await;
        };
        load_during(&a, key, &tags, change, value).await;
        assert_eq!(a.l1().unwrap().contains(key), cached, "{key}");
        assert_eq!(
            reader.get_cloned::<String>(key).await.as_deref(),
            cached.then_some(value),
            "{key}"
        );
    }
    assert_eq!(a.stats().stale_loads, 1);
    for c in [a, b, reader] {
        c.shutdown().await;
    }
}

#[tokio::test]
async fn thousands_of_changes_of_other_keys_and_groups_during_a_load_leave_it_cacheable() {
    let cache = build(CacheConfig::default()).await;
    let group = TieredCache::group_tag("A");
    let tags = ["allergies", group.as_str()];
    // More names than the 1 024 stripes of each set the epochs had: every stripe moved.
    let others: Vec<String> = (0..8192)
        .map(|i| format!("student:{i}:allergies"))
        .collect();
    let changes = async {
        let keys: Vec<&str> = others.iter().map(String::as_str).collect();
        cache.delete_many(&keys).await;
        for i in 0..8192 {
            cache.invalidate_group(&format!("{i}")).await;
        }
    };
    load_during(&cache, "student:A:allergies", &tags, changes, "a").await;
    assert!(cache.l1().unwrap().contains("student:A:allergies"));
    assert_eq!(cache.stats().stale_loads, 0);

    // The key itself deleted during its load: returned, not cached.
    let delete = async {
        cache.delete("student:B:allergies").await;
    };
    load_during(&cache, "student:B:allergies", &tags, delete, "b").await;
    assert!(!cache.l1().unwrap().contains("student:B:allergies"));
    assert_eq!(cache.stats().stale_loads, 1);
    cache.shutdown().await;
}

#[tokio::test]
async fn a_load_refused_by_redis_is_counted_there() {
    let cfg = config("refused", &redis_url());
    let (a, b) = (build(cfg.clone()).await, build(cfg).await);
    assert!(a.wait_subscribed(Duration::from_secs(5)).await);
    // Without its subscriber, A never hears of B's delete: only Redis's generation check
    // can tell that the load was overtaken.
    a.shutdown().await;
    let delete = async {
        b.delete("student:A:allergies").await;
    };
    load_during(&a, "student:A:allergies", &["allergies"], delete, "a").await;
    let s = a.stats();
    assert_eq!((s.stale_loads, s.redis_stale_loads), (1, 1));
    assert_eq!(b.get_cloned::<String>("student:A:allergies").await, None);
    b.shutdown().await;
}

#[tokio::test]
async fn evictions_and_expiries_of_l1_are_counted() {
    let cache = build(CacheConfig::default().with_l1(true, 2, MIN)).await;
    for k in ["a", "b", "c", "d"] {
        // Set until held: admission takes a newcomer once asked for more often than the
        // entry it evicts.
        for _ in 0..4 {
            cache.set(k, k.to_owned(), MIN, &[]).await.unwrap();
        }
    }
    let s = cache.stats();
    assert!(s.l1_evictions >= 1, "{s:?}");
    assert!(s.l1_entries <= 2);
    assert_eq!(s.l1_expired, 0);
    cache.shutdown().await;

    let cache = build(CacheConfig::default()).await;
    cache
        .set("short", "s".to_owned(), Duration::from_millis(5), &[])
        .await
        .unwrap();
    assert!(cache.l1().unwrap().contains("short"));
    // The entry's expiry is the event: there is nothing to await but time.
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(cache.get::<String>("short").await, None);
    assert_eq!(cache.stats().l1_expired, 1);
    cache.shutdown().await;
}
