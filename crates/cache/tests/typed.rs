//! Typed values in L1 (issue 15, item 1): a read as another type is a miss, a value in Redis
//! that no longer decodes is a miss and is overwritten, one load's value is shared, L1 is
//! bounded in bytes.
//! Run with `cargo test -p vitals-cache --test typed` (needs Redis at REDIS_URL).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{build, config, raw_conn, redis_url, stored};
use redis::AsyncCommands as _;
use serde::{Deserialize, Serialize};
use vitals_cache::{CacheConfig, TieredCache};

const MIN: Duration = Duration::from_secs(60);

/// What an earlier release cached under the key.
#[derive(Serialize)]
struct OldSummary {
    name: String,
}

/// What this release reads: a field the old format lacks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Summary {
    student: String,
    allergies: Vec<String>,
}

fn fresh() -> Summary {
    Summary {
        student: "s1".into(),
        allergies: vec!["peanut".into()],
    }
}

#[tokio::test]
async fn a_key_read_as_another_type_is_a_miss_counted_apart() {
    let cache = build(CacheConfig::default()).await;
    cache.set("k", 7u32, MIN, &[]).await.unwrap();
    assert_eq!(cache.get::<String>("k").await, None);
    assert_eq!(cache.get::<u64>("k").await, None);
    let s = cache.stats();
    assert_eq!((s.type_mismatches, s.misses, s.l1_hits), (2, 2, 0));
    assert_eq!(cache.get::<u32>("k").await.as_deref(), Some(&7));
    assert_eq!(cache.stats().l1_hits, 1);
    // get_or_load of another type loads, and its value replaces the other type's.
    let loads = AtomicUsize::new(0);
    let v = cache
        .get_or_load("k", MIN, &[], || async {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>("seven".to_owned())
        })
        .await
        .unwrap();
    assert_eq!((v.as_str(), loads.load(Ordering::SeqCst)), ("seven", 1));
    assert_eq!(
        cache.get_cloned::<String>("k").await.as_deref(),
        Some("seven")
    );
    assert_eq!(cache.get::<u32>("k").await, None);
    cache.shutdown().await;
}

#[tokio::test]
async fn an_l1_hit_shares_the_stored_value_and_waiters_share_the_loaded_one() {
    let cache = build(CacheConfig::default()).await;
    let loads = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (cache, loads) = (cache.clone(), loads.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load("student:1:summary", MIN, &[], || async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok::<_, std::io::Error>(fresh())
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    let hit = cache.get::<Summary>("student:1:summary").await.unwrap();
    assert!(
        got.iter().all(|v| Arc::ptr_eq(v, &hit)),
        "one value, shared: nothing decoded or copied"
    );
    cache.shutdown().await;
}

#[tokio::test]
async fn a_value_in_redis_that_no_longer_decodes_is_a_miss_and_is_overwritten() {
    let cfg = config("oldformat", &redis_url());
    let old = build(cfg.clone()).await;
    old.set(
        "student:1:summary",
        OldSummary { name: "x".into() },
        MIN,
        &[],
    )
    .await
    .unwrap();
    // And a payload of a format the codec does not know at all.
    let data_key = old.redis().unwrap().data_key("student:2:summary");
    let mut conn = raw_conn(&redis_url()).await;
    let _: () = conn
        .set_ex(&data_key, &[9u8, 0, 1, 2][..], 60)
        .await
        .unwrap();

    let new = build(cfg.clone()).await;
    assert_eq!(new.get::<Summary>("student:1:summary").await, None);
    assert_eq!(new.get::<Summary>("student:2:summary").await, None);
    for key in ["student:1:summary", "student:2:summary"] {
        let v = new
            .get_or_load(key, MIN, &[], || async { Ok::<_, std::io::Error>(fresh()) })
            .await
            .unwrap();
        assert_eq!(*v, fresh());
    }
    let s = new.stats();
    assert_eq!(s.loads, 2, "each undecodable value was loaded");
    assert!(s.type_mismatches >= 2, "{s:?}");
    assert!(s.decode_errors >= 1, "{s:?}");
    // Overwritten in Redis: a third instance reads the new format from it.
    let third = build(cfg).await;
    for key in ["student:1:summary", "student:2:summary"] {
        assert_eq!(third.get_cloned::<Summary>(key).await, Some(fresh()));
        assert!(!stored(&third, key).await.is_empty());
    }
    assert_eq!(third.stats().l2_hits, 2);
    for c in [&old, &new, &third] {
        c.shutdown().await;
    }
    let _: () = conn.del(&data_key).await.unwrap();
    new.delete("student:1:summary").await;
}

#[tokio::test]
async fn l1_is_bounded_in_bytes_by_the_encoded_size() {
    // One shard of 4 000 bytes: a 1 000-character string weighs 1 002 bytes of JSON + key.
    let cfg = CacheConfig::default()
        .with_l1(true, 1_000, MIN)
        .with_l1_max_bytes(4_000);
    let mut cfg = cfg;
    cfg.l1_shards = 1;
    let cache = TieredCache::builder(cfg).build().await.unwrap();
    let value = "x".repeat(1_000);
    for i in 0..10 {
        // Set twice: asked for twice, a key is admitted in the place of the oldest.
        for _ in 0..2 {
            cache
                .set(&format!("k{i}"), value.clone(), MIN, &[])
                .await
                .unwrap();
        }
    }
    let s = cache.stats();
    assert!(s.l1_bytes <= 4_000, "{s:?}");
    assert_eq!(s.l1_entries, 3, "{s:?}");
    let mut held = 0;
    for i in 0..10 {
        held += usize::from(cache.get::<String>(&format!("k{i}")).await.is_some());
    }
    assert_eq!(held, 3);
    // Larger than the shard's budget: not held, and counted.
    let before = cache.stats().l1_rejected;
    cache.set("big", "y".repeat(5_000), MIN, &[]).await.unwrap();
    assert!(cache.get::<String>("big").await.is_none());
    assert_eq!(cache.stats().l1_rejected, before + 1);
    cache.shutdown().await;
}

/// The configuration names the variable and refuses 0.
#[test]
fn cache_l1_max_bytes_is_read_and_checked() {
    let read = |v: &'static str| {
        CacheConfig::from_env_with(move |name| (name == "CACHE_L1_MAX_BYTES").then(|| v.into()))
    };
    assert_eq!(read("1048576").unwrap().l1_max_bytes, 1 << 20);
    let err = read("0").unwrap_err();
    assert_eq!(err.problems()[0].variable, "CACHE_L1_MAX_BYTES");
    assert_eq!(CacheConfig::default().l1_max_bytes, 64 << 20);
}
