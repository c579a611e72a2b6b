//! The `Tier` contract, run on both tiers, and a cache with L1 turned off.
//! Run with `cargo test -p vitals-cache --test tier` (needs Redis at REDIS_URL).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{config, redis_url};
use vitals_cache::{L1Cache, Placement, RedisTier, Tier, TieredCache};

const MIN: Duration = Duration::from_secs(60);

async fn contract<T: Tier>(tier: &T) {
    let v: Arc<[u8]> = Arc::from(&b"{\"dose\":2}"[..]);
    assert_eq!(tier.get("a").await.unwrap(), None);
    let at = |key, tags| Placement::new(key, MIN, tags);
    tier.set(at("a", &["vaccinations", "group:1"]), v.clone())
        .await
        .unwrap();
    tier.set(at("b", &["vaccinations"]), v.clone())
        .await
        .unwrap();
    tier.set(at("c", &["group:1"]), v.clone()).await.unwrap();
    tier.set(at("d", &[]), v.clone()).await.unwrap();
    assert_eq!(tier.get("a").await.unwrap().as_deref(), Some(&v[..]));
    let mut gone = tier.invalidate_tag("vaccinations").await.unwrap();
    gone.sort();
    assert_eq!(gone, ["a", "b"]);
    assert_eq!(tier.get("a").await.unwrap(), None);
    assert!(tier.get("c").await.unwrap().is_some());
    assert!(tier.delete("c").await.unwrap());
    assert!(!tier.delete("c").await.unwrap());
    assert_eq!(tier.delete_many(&["c", "d", "zz"]).await.unwrap(), 1);
    assert!(tier.invalidate_tag("group:1").await.unwrap().is_empty());
}

#[tokio::test]
async fn l1_cache_keeps_the_tier_contract() {
    contract(&L1Cache::new(100, MIN, 4)).await;
}

#[tokio::test]
async fn redis_tier_keeps_the_tier_contract() {
    let tier = RedisTier::new(&config("contract", &redis_url())).unwrap();
    tier.ensure_connected().await.unwrap();
    contract(&tier).await;
}

#[tokio::test]
async fn with_l1_off_every_read_goes_to_redis() {
    let cfg = config("nol1", &redis_url()).with_l1(false, 1, MIN);
    let cache = TieredCache::builder(cfg).build().await.unwrap();
    assert!(cache.l1().is_none());
    cache.set("k", "v".to_owned(), MIN, &[]).await.unwrap();
    assert_eq!(cache.get_cloned::<String>("k").await.as_deref(), Some("v"));
    assert_eq!(cache.get_cloned::<String>("k").await.as_deref(), Some("v"));
    let s = cache.stats();
    assert_eq!((s.l1_hits, s.l2_hits, s.l1_entries), (0, 2, 0));
    assert!(cache.delete("k").await);
    cache.shutdown().await;
}

/// What the cache asks of its shared tier beyond the contract: reads with the remaining
/// TTL, and a loader's write that lands only if nothing moved since the load began.
async fn loaded_writes<T: Tier>(tier: &T, keeps_generations: bool) {
    let v: Arc<[u8]> = Arc::from(&b"1"[..]);
    let w: Arc<[u8]> = Arc::from(&b"2"[..]);
    let at = Placement::new("l", MIN, &["t"]);
    let since = tier.generations("l", &["t"]).await.unwrap();
    tier.set(at, w.clone()).await.unwrap();
    let stored = tier.set_if_unchanged(at, v.clone(), &since).await.unwrap();
    assert_eq!(stored, !keeps_generations);
    let since = tier.generations("l", &["t"]).await.unwrap();
    assert!(tier.set_if_unchanged(at, v.clone(), &since).await.unwrap());
    let (got, ttl) = tier.get_with_ttl("l").await.unwrap().unwrap();
    assert_eq!(&got[..], &v[..]);
    if keeps_generations {
        assert!(ttl.is_some_and(|t| t <= MIN), "{ttl:?}");
    }
    assert_eq!(tier.get_with_ttl("none").await.unwrap(), None);
}

#[tokio::test]
async fn l1_keeps_no_generations_and_always_stores_a_loaded_value() {
    loaded_writes(&L1Cache::new(100, MIN, 4), false).await;
}

#[tokio::test]
async fn redis_tier_stores_a_loaded_value_only_if_nothing_moved() {
    let tier = RedisTier::new(&config("loaded", &redis_url())).unwrap();
    tier.ensure_connected().await.unwrap();
    loaded_writes(&tier, true).await;
}
