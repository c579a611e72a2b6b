//! A tag or group invalidation makes uncacheable only the loads it can affect: a load of a
//! key outside the group, in flight during the invalidation, is cached; one inside is not.
//! Run with `cargo test -p vitals-cache --test invalidation` (the second test needs Redis
//! at REDIS_URL, default redis://127.0.0.1:6379).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{build, config, received, redis_url};
use vitals_cache::{CacheConfig, TieredCache};

const MIN: Duration = Duration::from_secs(60);
type R = Result<Arc<String>, std::io::Error>;

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
        let c = cache.clone();
        let v: R = cache
            .get_or_load(key, MIN, &tags, || async move {
                match during {
                    Group(group) => c.invalidate_group(group).await,
                    Tag(tag) => c.invalidate_tag(tag).await,
                };
                Ok(value.to_owned())
            })
            .await;
        assert_eq!(*v.unwrap(), value);
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
        let (a1, b1) = (a.clone(), b.clone());
        let v: R = a
            .get_or_load(key, MIN, &tags, || async move {
                b1.invalidate_group("G").await;
                received(&a1, received_so_far).await;
                Ok(value.to_owned())
            })
            .await;
        assert_eq!(*v.unwrap(), value);
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
