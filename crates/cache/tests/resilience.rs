//! Resilience on real servers: a redis-server this test starts on a free
//! loopback port and kills mid-test, and a port where nothing listens.
//! Run with `cargo test -p vitals-cache --test resilience` (needs
//! `redis-server` on PATH).

mod common;

use std::time::{Duration, Instant};

use common::{config, eventually, free_port, raw_conn, received, TestRedis};
use redis::AsyncCommands as _;
use vitals_cache::{BreakerState, TieredCache};

const MIN: Duration = Duration::from_secs(60);

#[tokio::test]
async fn nothing_listening_builds_degraded_and_serves_from_l1_and_loader() {
    let url = format!("redis://127.0.0.1:{}", free_port());
    let t0 = Instant::now();
    let cache = TieredCache::builder(config("down", &url))
        .build()
        .await
        .expect("build must not fail when redis is unreachable");
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(!cache.is_subscribed());

    let v: Result<String, std::io::Error> = cache
        .get_or_load("student:1:summary", MIN, &["summary"], || async {
            Ok("loaded".to_owned())
        })
        .await;
    assert_eq!(v.unwrap(), "loaded", "no error reaches the caller");
    assert_eq!(
        cache.get::<String>("student:1:summary").await.as_deref(),
        Some("loaded")
    );
    cache.set("k", &1, MIN, &["t"]).await.unwrap();
    assert_eq!(cache.get::<i32>("k").await, Some(1));
    assert_eq!(cache.invalidate_tag("t").await, 1);
    assert!(cache.delete("student:1:summary").await);

    // Once open, the breaker answers at once instead of trying Redis.
    let c = cache.clone();
    assert!(
        eventually(Duration::from_secs(5), || {
            let c = c.clone();
            async move {
                c.get::<i32>("absent").await;
                c.stats().breaker == Some(BreakerState::Open)
            }
        })
        .await
    );
    let s = cache.stats();
    assert!(!s.redis_connected);
    assert!(s.redis_configured);
    cache.shutdown().await;
}

#[tokio::test]
async fn redis_killed_mid_test_then_restarted_heals_by_itself() {
    let mut server = TestRedis::start().await;
    let cfg = config("heal", &server.url());
    let a = TieredCache::builder(cfg.clone()).build().await.unwrap();
    let b = TieredCache::builder(cfg).build().await.unwrap();
    assert!(b.wait_subscribed(Duration::from_secs(5)).await);
    a.set("student:3:allergies", &"v1", MIN, &[]).await.unwrap();
    received(&b, 1).await;
    assert_eq!(
        b.get::<String>("student:3:allergies").await.as_deref(),
        Some("v1")
    );
    assert!(b.l1().unwrap().contains("student:3:allergies"));

    server.kill();

    // The lost subscription clears B's L1: updates it misses can't be known.
    let b2 = b.clone();
    assert!(
        eventually(Duration::from_secs(5), || {
            let b = b2.clone();
            async move { !b.is_subscribed() }
        })
        .await
    );
    assert!(!b.l1().unwrap().contains("student:3:allergies"));
    assert!(b.stats().subscription_losses >= 1);

    // Calls keep working, without error, on L1 and the loader.
    for i in 0..10 {
        let v: Result<String, std::io::Error> = b
            .get_or_load("student:3:allergies", MIN, &[], || async move {
                Ok(format!("from-db-{i}"))
            })
            .await;
        assert!(v.unwrap().starts_with("from-db"));
    }
    assert_eq!(b.stats().loads, 1, "later calls hit L1");
    // The breaker opens: a Redis-bound call no longer waits for a timeout.
    let b3 = b.clone();
    assert!(
        eventually(Duration::from_secs(5), || {
            let b = b3.clone();
            async move {
                b.get::<String>("absent").await;
                b.stats().breaker == Some(BreakerState::Open)
            }
        })
        .await
    );
    let t0 = Instant::now();
    assert_eq!(b.get::<String>("absent").await, None);
    eprintln!("miss with breaker open: {:?}", t0.elapsed());

    server.restart().await;

    // It heals: subscription back, breaker closed, writes reach Redis again.
    assert!(b.wait_subscribed(Duration::from_secs(10)).await);
    let url = server.url();
    let key = b.redis().unwrap().data_key("after");
    let b4 = b.clone();
    assert!(
        eventually(Duration::from_secs(10), || {
            let (b, url, key) = (b4.clone(), url.clone(), key.clone());
            async move {
                b.set("after", &"healed", MIN, &[]).await.unwrap();
                let mut c = raw_conn(&url).await;
                c.exists::<_, bool>(key).await.unwrap_or(false)
            }
        })
        .await,
        "writes never reached the restarted redis"
    );
    assert_eq!(b.stats().breaker, Some(BreakerState::Closed));
    // And coherence works again between the two instances.
    assert!(a.wait_subscribed(Duration::from_secs(10)).await);
    let a1 = a.clone();
    assert!(
        eventually(Duration::from_secs(5), || {
            let a = a1.clone();
            async move { a.get::<String>("after").await.as_deref() == Some("healed") }
        })
        .await
    );
    b.set("after", &"v2", MIN, &[]).await.unwrap();
    let a2 = a.clone();
    assert!(
        eventually(Duration::from_secs(5), || {
            let a = a2.clone();
            async move { a.get::<String>("after").await.as_deref() == Some("v2") }
        })
        .await
    );
    a.shutdown().await;
    b.shutdown().await;
}
