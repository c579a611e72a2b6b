//! Tests of `TieredCache` on real Redis: coherence between instances, no
//! plaintext in Redis, tags and groups under concurrency, single flight.
//! Run with `cargo test -p vitals-cache` (needs Redis at REDIS_URL,
//! default redis://127.0.0.1:6379).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    build, config, eventually, load_during, pair, raw_conn, read_string, received, redis_url,
    set_then_read, stored,
};
use redis::AsyncCommands as _;
use serde::{Deserialize, Serialize};
use vitals_cache::{codec, CacheConfig, EncryptionKey, Keyring, TieredCache};

const MIN: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Allergy {
    allergen: String,
    severity: String,
    reaction: String,
}

/// Two subscribed instances on the Redis at `REDIS_URL` under a prefix of `name`, `tweak`
/// applied to their config.
async fn pair_with(name: &str, tweak: impl FnOnce(&mut CacheConfig)) -> (TieredCache, TieredCache) {
    let mut cfg = config(name, &redis_url());
    tweak(&mut cfg);
    pair(cfg).await
}

#[tokio::test]
async fn overwrite_on_one_instance_reaches_the_other_instances_l1() {
    let (a, b) = pair(config("coherence", &redis_url())).await;
    set_then_read(&a, &b, "student:1:allergies", "v1", 1).await;
    assert!(
        b.l1().unwrap().contains("student:1:allergies"),
        "B filled its L1"
    );

    let t0 = Instant::now();
    a.set("student:1:allergies", "v2".to_owned(), MIN, &[])
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            !b.l1().unwrap().contains("student:1:allergies")
        })
        .await,
        "the overwrite never reached B's L1"
    );
    let delay = t0.elapsed();
    eprintln!("coherence delay (set on A -> evicted from B's L1): {delay:?}");
    assert_eq!(
        read_string(&b, "student:1:allergies").await.as_deref(),
        Some("v2")
    );

    a.delete("student:1:allergies").await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            read_string(&b, "student:1:allergies").await.is_none()
        })
        .await
    );
    assert!(b.stats().invalidations_received >= 2);
    assert!(a.stats().invalidations_sent >= 3);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn with_a_key_no_field_of_the_record_reaches_redis_in_clear() {
    let ring = Keyring::new(EncryptionKey::new("k2024", [42; 32]).unwrap(), []);
    let cfg = config("crypto", &redis_url()).with_encryption(Some(ring));
    let cache = build(cfg.clone()).await;
    let record = Allergy {
        allergen: "Peanut".into(),
        severity: "LIFE_THREATENING".into(),
        reaction: "Anaphylaxis".into(),
    };
    for (key, rec) in [
        ("student:7:allergy", vec![record.clone()]),
        ("student:7:allergies-long", vec![record.clone(); 100]), // compressed too
    ] {
        cache
            .set(key, rec.clone(), MIN, &["allergies"])
            .await
            .unwrap();
        let raw = stored(&cache, key).await;
        assert!(codec::is_encrypted(&raw));
        for needle in [
            "Peanut",
            "LIFE_THREATENING",
            "Anaphylaxis",
            "allergen",
            "severity",
            "reaction",
        ] {
            assert!(
                !raw.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} found in clear in redis"
            );
        }
        // Another instance with the key reads it back from Redis (not L1).
        let other = build(cfg.clone()).await;
        assert_eq!(other.get_cloned::<Vec<Allergy>>(key).await, Some(rec));
        assert_eq!(other.stats().l2_hits, 1);
        other.shutdown().await;
    }
    // An instance with a different key can't read it: a miss, counted.
    let wrong = Keyring::new(EncryptionKey::new("k2024", [1; 32]).unwrap(), []);
    let intruder = build(cfg.with_encryption(Some(wrong))).await;
    assert_eq!(
        intruder
            .get_cloned::<Vec<Allergy>>("student:7:allergy")
            .await,
        None
    );
    assert_eq!(intruder.stats().decode_errors, 1);
    intruder.shutdown().await;
    cache.shutdown().await;
}

#[tokio::test]
async fn large_payloads_are_compressed_in_redis() {
    let cache = build(config("lz4", &redis_url())).await;
    let big = "immunisation record ".repeat(200);
    cache.set("doc:1", big.clone(), MIN, &[]).await.unwrap();
    cache
        .set("doc:2", "small".to_owned(), MIN, &[])
        .await
        .unwrap();
    let (raw1, raw2) = (stored(&cache, "doc:1").await, stored(&cache, "doc:2").await);
    assert!(codec::is_compressed(&raw1) && raw1.len() < big.len() / 4);
    assert!(!codec::is_compressed(&raw2));
    cache.clear_l1();
    assert_eq!(read_string(&cache, "doc:1").await, Some(big));
    cache.shutdown().await;
}

#[tokio::test]
async fn tag_and_group_invalidation_reach_every_instance() {
    let (a, b) = pair(config("tags", &redis_url())).await;
    for s in ["1", "2"] {
        let g = TieredCache::group_tag(s);
        for kind in ["allergies", "vaccinations"] {
            a.set(
                &format!("student:{s}:{kind}"),
                kind.to_owned(),
                MIN,
                &[kind, &g],
            )
            .await
            .unwrap();
        }
    }
    received(&b, 4).await;
    for s in ["1", "2"] {
        for kind in ["allergies", "vaccinations"] {
            assert!(read_string(&b, &format!("student:{s}:{kind}"))
                .await
                .is_some());
        }
    }
    assert_eq!(a.invalidate_tag("vaccinations").await, 2);
    assert_eq!(
        a.invalidate_group("1").await,
        1,
        "only allergies of 1 remain"
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            b.l1().unwrap().len() == 1
        })
        .await,
        "B's L1 kept invalidated entries"
    );
    assert!(read_string(&b, "student:2:allergies").await.is_some());
    for gone in [
        "student:1:allergies",
        "student:1:vaccinations",
        "student:2:vaccinations",
    ] {
        assert!(read_string(&b, gone).await.is_none(), "{gone}");
        assert!(read_string(&a, gone).await.is_none(), "{gone}");
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn writes_during_tag_invalidation_are_never_orphaned() {
    let cache = build(config("tagrace", &redis_url())).await;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let c = cache.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    c.set(&format!("k:{w}:{i}"), i, MIN, &["vaccinations"])
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let inv = {
        let c = cache.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                c.invalidate_tag("vaccinations").await;
                tokio::task::yield_now().await;
            }
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    inv.await.unwrap();
    // Every surviving entry is still reachable through its tag...
    let r = cache.redis().unwrap();
    let mut conn = raw_conn(&redis_url()).await;
    let prefix = &cache.config().key_prefix;
    let members: Vec<String> = conn
        .zrange(format!("{prefix}:t:vaccinations"), 0, -1)
        .await
        .unwrap();
    for w in 0..4 {
        for i in 0..50 {
            let k = format!("k:{w}:{i}");
            let exists: bool = conn.exists(r.data_key(&k)).await.unwrap();
            if exists {
                assert!(members.contains(&k), "{k} orphaned from its tag");
            }
        }
    }
    // ...so one more invalidation leaves nothing.
    cache.invalidate_tag("vaccinations").await;
    // Only generation counters (60 s TTL) remain: no value, no tag set.
    let mut left: Vec<String> = conn.keys(format!("{prefix}:v:*")).await.unwrap();
    left.extend(
        conn.keys::<_, Vec<String>>(format!("{prefix}:t:*"))
            .await
            .unwrap(),
    );
    assert!(left.is_empty(), "{left:?}");
    cache.shutdown().await;
}

#[tokio::test]
async fn tag_bookkeeping_drops_expired_members() {
    let cache = build(config("tagexp", &redis_url())).await;
    for i in 0..100 {
        cache
            .set(&format!("k{i}"), i, Duration::from_millis(100), &["t"])
            .await
            .unwrap();
    }
    let prefix = cache.config().key_prefix.clone();
    let mut conn = raw_conn(&redis_url()).await;
    let card: u64 = conn.zcard(format!("{prefix}:t:t")).await.unwrap();
    // Members already expired on a slow machine are pruned by later writes.
    assert!(card > 0 && card <= 100, "{card}");
    let k99 = cache.redis().unwrap().data_key("k99");
    assert!(
        eventually(Duration::from_secs(5), || async {
            let mut c = raw_conn(&redis_url()).await;
            !c.exists::<_, bool>(&k99).await.unwrap()
        })
        .await
    );
    cache.set("fresh", 1, MIN, &["t"]).await.unwrap();
    let card: u64 = conn.zcard(format!("{prefix}:t:t")).await.unwrap();
    assert_eq!(card, 1, "expired members pruned on the next write");
    let ttl: i64 = conn.pttl(format!("{prefix}:t:t")).await.unwrap();
    assert!(
        ttl > 0 && ttl <= 60_000,
        "tag set expires with its last member"
    );
    cache.invalidate_tag("t").await;
    cache.shutdown().await;
}

async fn single_flight(cache: TieredCache) {
    let loads = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (c, loads, release) = (cache.clone(), loads.clone(), release.clone());
            tokio::spawn(async move {
                c.get_or_load("student:9:summary", MIN, &[], || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    release.notified().await;
                    Ok::<_, std::io::Error>("summary".to_owned())
                })
                .await
                .unwrap()
            })
        })
        .collect();
    assert!(
        eventually(Duration::from_secs(5), || async {
            cache.stats().coalesced == 99
        })
        .await,
        "99 callers should wait on the first one's load"
    );
    release.notify_one();
    for t in tasks {
        assert_eq!(*t.await.unwrap(), "summary");
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!(cache.stats().loads, 1);
    cache.shutdown().await;
}

#[tokio::test]
async fn hundred_concurrent_misses_make_one_load_with_redis() {
    single_flight(build(config("flight", &redis_url())).await).await;
}

#[tokio::test]
async fn hundred_concurrent_misses_make_one_load_l1_only() {
    single_flight(build(CacheConfig::default()).await).await;
}

#[tokio::test]
async fn failed_load_is_not_cached_and_a_waiter_retries() {
    let cache = build(config("loadfail", &redis_url())).await;
    let r: Result<Arc<String>, &str> = cache
        .get_or_load("k", MIN, &[], || async { Err("db down") })
        .await;
    assert_eq!(r, Err("db down"));
    assert!(read_string(&cache, "k").await.is_none());
    let r: Result<Arc<String>, &str> = cache
        .get_or_load("k", MIN, &[], || async { Ok("ok".to_owned()) })
        .await;
    assert_eq!(*r.unwrap(), "ok");
    assert_eq!(cache.stats().load_errors, 1);
    cache.shutdown().await;
}

#[tokio::test]
async fn l2_hit_fills_l1_and_stats_serialise() {
    let (a, b) = pair_with("stats", |c| c.stats_refresh = Duration::from_millis(10)).await;
    a.set("k", 1u32, MIN, &[]).await.unwrap();
    received(&b, 1).await;
    assert_eq!(b.get_cloned::<u32>("k").await, Some(1)); // L2 hit
    assert_eq!(b.get_cloned::<u32>("k").await, Some(1)); // L1 hit
    assert_eq!(b.get_cloned::<u32>("nope").await, None);
    let s = b.stats();
    assert_eq!((s.l1_hits, s.l2_hits, s.misses), (1, 1, 1));
    assert!((s.hit_rate - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(s.l1_entries, 1);
    assert!(s.l1_bytes > 0);
    assert!(
        eventually(Duration::from_secs(5), || async {
            b.stats().redis_used_memory.is_some()
        })
        .await
    );
    let json = serde_json::to_value(b.stats()).unwrap();
    assert_eq!(json["breaker"], "closed");
    assert_eq!(json["subscribed"], true);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn dropping_or_shutting_down_the_cache_ends_its_subscription() {
    let numsub = |channel: String| async move {
        let mut c = raw_conn(&redis_url()).await;
        let v: Vec<(String, u64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&channel)
            .query_async(&mut c)
            .await
            .unwrap();
        v[0].1
    };
    let (a, b) = pair(config("drop", &redis_url())).await;
    let channel = a.redis().unwrap().channel().to_owned();
    assert_eq!(numsub(channel.clone()).await, 2);
    a.shutdown().await;
    drop(a);
    drop(b); // no shutdown: dropping the last handle stops the tasks too
    assert!(
        eventually(Duration::from_secs(5), || async {
            numsub(channel.clone()).await == 0
        })
        .await
    );
}

#[tokio::test]
async fn a_load_overtaken_by_a_change_on_another_instance_is_not_cached() {
    let cfg = config("stale", &redis_url());
    let (a, b) = pair(cfg.clone()).await;
    let reader = build(cfg.with_l1(false, 1, MIN)).await;

    // Overwritten on B while A loads: A's caller gets its load, nobody caches it.
    let overwrite = async {
        b.set("student:5:allergies", "new".to_owned(), MIN, &["allergies"])
            .await
            .unwrap();
    };
    load_during(&a, "student:5:allergies", &["allergies"], overwrite, "old").await;
    assert_eq!(
        read_string(&reader, "student:5:allergies").await.as_deref(),
        Some("new")
    );
    assert_eq!(
        read_string(&a, "student:5:allergies").await.as_deref(),
        Some("new")
    );

    // Tag invalidated on B while A loads.
    let invalidate = async {
        b.invalidate_tag("allergies").await;
    };
    load_during(&a, "student:6:allergies", &["allergies"], invalidate, "old").await;
    assert_eq!(read_string(&reader, "student:6:allergies").await, None);
    assert!(!a.l1().unwrap().contains("student:6:allergies"));

    // Deleted on B while A loads.
    let delete = async {
        b.delete("student:7:allergies").await;
    };
    load_during(&a, "student:7:allergies", &[], delete, "old").await;
    assert_eq!(read_string(&reader, "student:7:allergies").await, None);
    assert_eq!(a.stats().stale_loads, 3);

    // An undisturbed load is cached.
    load_during(&a, "student:8:allergies", &["allergies"], async {}, "fresh").await;
    assert_eq!(
        read_string(&reader, "student:8:allergies").await.as_deref(),
        Some("fresh")
    );
    for c in [a, b, reader] {
        c.shutdown().await;
    }
}

#[tokio::test]
async fn subscription_is_pinged_and_keeps_delivering() {
    let (a, b) = pair_with("ping", |c| c.subscription_ping = Duration::from_millis(20)).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            b.stats().subscription_pings >= 3
        })
        .await
    );
    a.set("k", 1, MIN, &[]).await.unwrap();
    received(&b, 1).await;
    let s = b.stats();
    assert_eq!(s.subscription_losses, 0);
    assert!(s.subscribed);
    a.shutdown().await;
    b.shutdown().await;
}
