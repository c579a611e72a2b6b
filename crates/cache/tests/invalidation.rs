//! A tag or group invalidation makes uncacheable only the loads it can affect: a load of a
//! key outside the group, in flight during the invalidation, is cached; one inside is not.
//! Run with `cargo test -p vitals-cache --test invalidation` (the second test needs Redis
//! at REDIS_URL, default redis://127.0.0.1:6379).

mod common;

use std::time::Duration;

use common::{config, received, redis_url};
use vitals_cache::{CacheConfig, TieredCache};

const MIN: Duration = Duration::from_secs(60);
type R = Result<String, std::io::Error>;

#[tokio::test]
async fn a_group_invalidation_spares_loads_outside_the_group_l1_only() {
    let cache = TieredCache::builder(CacheConfig::default())
        .build()
        .await
        .unwrap();
    let (g, h) = (TieredCache::group_tag("G"), TieredCache::group_tag("H"));

    // A is in H: G's invalidation during its load leaves it cacheable.
    let c = cache.clone();
    let v: R = cache
        .get_or_load(
            "student:H:allergies",
            MIN,
            &["allergies", &h],
            || async move {
                c.invalidate_group("G").await;
                Ok("a".to_owned())
            },
        )
        .await;
    assert_eq!(v.unwrap(), "a");
    assert!(cache.l1().unwrap().contains("student:H:allergies"));

    // B is in G: not cached.
    let c = cache.clone();
    let v: R = cache
        .get_or_load(
            "student:G:allergies",
            MIN,
            &["allergies", &g],
            || async move {
                c.invalidate_group("G").await;
                Ok("b".to_owned())
            },
        )
        .await;
    assert_eq!(v.unwrap(), "b");
    assert!(!cache.l1().unwrap().contains("student:G:allergies"));

    // A type tag shared by both: the tag's invalidation makes the load uncacheable.
    let c = cache.clone();
    let v: R = cache
        .get_or_load(
            "student:H:conditions",
            MIN,
            &["conditions", &h],
            || async move {
                c.invalidate_tag("conditions").await;
                Ok("c".to_owned())
            },
        )
        .await;
    assert_eq!(v.unwrap(), "c");
    assert!(!cache.l1().unwrap().contains("student:H:conditions"));
    assert_eq!(cache.stats().stale_loads, 2);
    cache.shutdown().await;
}

#[tokio::test]
async fn a_group_invalidation_on_another_instance_spares_loads_outside_the_group() {
    let cfg = config("spare", &redis_url());
    let a = TieredCache::builder(cfg.clone()).build().await.unwrap();
    let b = TieredCache::builder(cfg.clone()).build().await.unwrap();
    let reader = TieredCache::builder(cfg.with_l1(false, 1, MIN))
        .build()
        .await
        .unwrap();
    for c in [&a, &b, &reader] {
        assert!(c.wait_subscribed(Duration::from_secs(5)).await);
    }
    let (g, h) = (TieredCache::group_tag("G"), TieredCache::group_tag("H"));

    // G is invalidated on B and the message reaches A while A loads a key of H.
    let (a1, b1) = (a.clone(), b.clone());
    let v: R = a
        .get_or_load(
            "student:H:allergies",
            MIN,
            &["allergies", &h],
            || async move {
                b1.invalidate_group("G").await;
                received(&a1, 1).await;
                Ok("a".to_owned())
            },
        )
        .await;
    assert_eq!(v.unwrap(), "a");
    assert!(a.l1().unwrap().contains("student:H:allergies"));
    assert_eq!(
        reader.get::<String>("student:H:allergies").await.as_deref(),
        Some("a")
    );

    // The same while A loads a key of G: cached nowhere.
    let (a2, b2) = (a.clone(), b.clone());
    let v: R = a
        .get_or_load(
            "student:G:allergies",
            MIN,
            &["allergies", &g],
            || async move {
                b2.invalidate_group("G").await;
                received(&a2, 2).await;
                Ok("b".to_owned())
            },
        )
        .await;
    assert_eq!(v.unwrap(), "b");
    assert!(!a.l1().unwrap().contains("student:G:allergies"));
    assert_eq!(reader.get::<String>("student:G:allergies").await, None);
    assert_eq!(a.stats().stale_loads, 1);
    for c in [a, b, reader] {
        c.shutdown().await;
    }
}
