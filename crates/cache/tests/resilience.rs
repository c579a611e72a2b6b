//! Resilience on real servers: a redis-server this test starts on a free
//! loopback port and kills mid-test, and a port where nothing listens.
//! Run with `cargo test -p vitals-cache --test resilience` (needs
//! `redis-server` on PATH).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    build, config, eventually, free_port, raw_conn, read_string, set_then_read, wait_for_ping,
    RedisProcess, TestRedis,
};
use redis::AsyncCommands as _;
use vitals_cache::{BreakerState, TieredCache};

const MIN: Duration = Duration::from_secs(60);

/// Whether, within 5 s, a Redis-bound read finds `cache`'s breaker open.
async fn breaker_opens(cache: &TieredCache) -> bool {
    eventually(Duration::from_secs(5), || async {
        cache.get_cloned::<i32>("absent").await;
        cache.stats().breaker == Some(BreakerState::Open)
    })
    .await
}

/// Whether, within 5 s, `cache` reads `value` under `key`.
async fn reads(cache: &TieredCache, key: &str, value: &str) -> bool {
    eventually(Duration::from_secs(5), || async {
        read_string(cache, key).await.as_deref() == Some(value)
    })
    .await
}

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

    let v: Result<Arc<String>, std::io::Error> = cache
        .get_or_load("student:1:summary", MIN, &["summary"], || async {
            Ok("loaded".to_owned())
        })
        .await;
    assert_eq!(*v.unwrap(), "loaded", "no error reaches the caller");
    assert_eq!(
        read_string(&cache, "student:1:summary").await.as_deref(),
        Some("loaded")
    );
    cache.set("k", 1, MIN, &["t"]).await.unwrap();
    assert_eq!(cache.get_cloned::<i32>("k").await, Some(1));
    assert_eq!(cache.invalidate_tag("t").await, 1);
    assert!(cache.delete("student:1:summary").await);

    // Once open, the breaker answers at once instead of trying Redis.
    assert!(breaker_opens(&cache).await);
    let s = cache.stats();
    assert!(!s.redis_connected);
    assert!(s.redis_configured);
    cache.shutdown().await;
}

#[tokio::test]
async fn redis_killed_mid_test_then_restarted_heals_by_itself() {
    let mut server = TestRedis::start().await;
    let cfg = config("heal", &server.url());
    let (a, b) = (build(cfg.clone()).await, build(cfg).await);
    assert!(b.wait_subscribed(Duration::from_secs(5)).await);
    set_then_read(&a, &b, "student:3:allergies", "v1", 1).await;
    assert!(b.l1().unwrap().contains("student:3:allergies"));

    server.kill();

    // The lost subscription clears B's L1: updates it misses can't be known.
    assert!(eventually(Duration::from_secs(5), || async { !b.is_subscribed() }).await);
    assert!(!b.l1().unwrap().contains("student:3:allergies"));
    assert!(b.stats().subscription_losses >= 1);

    // Calls keep working, without error, on L1 and the loader.
    for i in 0..10 {
        let v: Result<Arc<String>, std::io::Error> = b
            .get_or_load("student:3:allergies", MIN, &[], || async move {
                Ok(format!("from-db-{i}"))
            })
            .await;
        assert!(v.unwrap().starts_with("from-db"));
    }
    assert_eq!(b.stats().loads, 1, "later calls hit L1");
    // The breaker opens: a Redis-bound call no longer waits for a timeout.
    assert!(breaker_opens(&b).await);
    let t0 = Instant::now();
    assert_eq!(read_string(&b, "absent").await, None);
    eprintln!("miss with breaker open: {:?}", t0.elapsed());

    server.restart().await;

    // It heals: subscription back, breaker closed, writes reach Redis again.
    assert!(b.wait_subscribed(Duration::from_secs(10)).await);
    let url = server.url();
    let key = b.redis().unwrap().data_key("after");
    assert!(
        eventually(Duration::from_secs(10), || async {
            b.set("after", "healed".to_owned(), MIN, &[]).await.unwrap();
            let mut c = raw_conn(&url).await;
            c.exists::<_, bool>(&key).await.unwrap_or(false)
        })
        .await,
        "writes never reached the restarted redis"
    );
    assert_eq!(b.stats().breaker, Some(BreakerState::Closed));
    // And coherence works again between the two instances.
    assert!(a.wait_subscribed(Duration::from_secs(10)).await);
    assert!(reads(&a, "after", "healed").await);
    b.set("after", "v2".to_owned(), MIN, &[]).await.unwrap();
    assert!(reads(&a, "after", "v2").await);
    a.shutdown().await;
    b.shutdown().await;
}

/// A redis-server of the test's own that is full: `maxmemory` 1 MB under `noeviction`,
/// filled from a plain connection until it answers writes with `OOM`. Returns its URL.
async fn full_redis() -> (RedisProcess, String) {
    let port = free_port();
    let server = RedisProcess::spawn([
        "--port",
        &port.to_string(),
        "--maxmemory",
        "1mb",
        "--maxmemory-policy",
        "noeviction",
    ]);
    let url = format!("redis://127.0.0.1:{port}");
    wait_for_ping(&url, port).await;
    let mut conn = raw_conn(&url).await;
    let chunk = vec![b'x'; 64 * 1024];
    let mut refused = None;
    for i in 0..1000 {
        if let Err(e) = conn.set::<_, _, ()>(format!("fill:{i}"), &chunk).await {
            refused = Some(e);
            break;
        }
    }
    let refused = refused.expect("a 1 MB redis refuses writes before 64 MB");
    assert!(refused.to_string().contains("OOM"), "{refused}");
    (server, url)
}

/// Sets `student:{i}:allergies` to "peanut" on `cache` for every `i` of `students`; each
/// `set` answers Ok, whether Redis took the write, refused it or was skipped.
async fn set_peanut(cache: &TieredCache, students: std::ops::Range<usize>) {
    for i in students {
        cache
            .set(
                &format!("student:{i}:allergies"),
                "peanut".to_owned(),
                MIN,
                &[],
            )
            .await
            .expect("a refused write is not the caller's error");
    }
}

#[tokio::test]
async fn a_full_redis_refuses_writes_and_l1_and_the_loader_serve() {
    let (_server, url) = full_redis().await;
    let cache = build(config("oom", &url)).await;
    assert!(cache.wait_subscribed(Duration::from_secs(5)).await);
    let mut conn = raw_conn(&url).await;

    // The load's writes (its lock, its value) are refused; the caller gets its value.
    let v: Result<Arc<String>, std::io::Error> = cache
        .get_or_load("student:1:summary", MIN, &["summary"], || async {
            Ok("loaded".to_owned())
        })
        .await;
    assert_eq!(*v.unwrap(), "loaded", "no error reaches the caller");
    let s = cache.stats();
    assert!(s.redis_errors >= 1, "the refused write is counted: {s:?}");
    assert_eq!(s.loads, 1);
    let data_key = cache.redis().unwrap().data_key("student:1:summary");
    assert!(
        !conn.exists::<_, bool>(&data_key).await.unwrap(),
        "Redis is full"
    );
    // L1 took it: the next read needs neither Redis nor the loader.
    let again: Result<Arc<String>, std::io::Error> = cache
        .get_or_load("student:1:summary", MIN, &["summary"], || async {
            Ok("loaded twice".to_owned())
        })
        .await;
    assert_eq!(*again.unwrap(), "loaded");
    assert_eq!(cache.stats().loads, 1);
    assert!(cache.stats().l1_hits >= 1);

    // Reads still succeed on a full Redis, so the breaker counts consecutive failures only:
    // a run of refused writes (threshold 2 here) opens it, and the writes that follow skip
    // Redis at once (no more errors counted) while `set` still answers Ok with L1 holding
    // the value.
    assert_eq!(read_string(&cache, "absent").await, None, "a read succeeds");
    assert_eq!(cache.stats().breaker, Some(BreakerState::Closed));
    let before = cache.stats().redis_errors;
    set_peanut(&cache, 0..2).await;
    let s = cache.stats();
    assert_eq!(s.redis_errors, before + 2, "{s:?}");
    assert_eq!(s.breaker, Some(BreakerState::Open), "{s:?}");
    set_peanut(&cache, 2..10).await;
    assert_eq!(cache.stats().redis_errors, before + 2, "skipped, not tried");
    for i in 0..10 {
        assert_eq!(
            read_string(&cache, &format!("student:{i}:allergies"))
                .await
                .as_deref(),
            Some("peanut")
        );
    }
    // Room again (the test raises the bound): the breaker's probe succeeds, writes land.
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("64mb")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let key = cache.redis().unwrap().data_key("after");
    assert!(
        eventually(Duration::from_secs(10), || async {
            cache
                .set("after", "stored".to_owned(), MIN, &[])
                .await
                .unwrap();
            conn.clone().exists::<_, bool>(&key).await.unwrap_or(false)
        })
        .await,
        "writes never reached Redis once it had room"
    );
    assert_eq!(cache.stats().breaker, Some(BreakerState::Closed));
    cache.shutdown().await;
}

#[tokio::test]
async fn a_slow_redis_costs_a_miss_two_timeouts_then_the_breaker_answers_at_once() {
    let server = TestRedis::start().await;
    let cfg = config("slow", &server.url());
    let timeout = cfg.redis_timeout;
    let cache = build(cfg).await;
    assert!(cache.wait_subscribed(Duration::from_secs(5)).await);
    // Every command of every other client waits until the pause ends: a Redis that answers
    // nothing within the cache's timeout, without closing a connection.
    let mut admin = raw_conn(&server.url()).await;
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(2_000)
        .arg("ALL")
        .query_async::<()>(&mut admin)
        .await
        .unwrap();

    let t0 = Instant::now();
    let v: Result<Arc<String>, std::io::Error> = cache
        .get_or_load("student:2:summary", MIN, &[], || async {
            Ok("loaded".to_owned())
        })
        .await;
    let took = t0.elapsed();
    assert_eq!(*v.unwrap(), "loaded", "no error reaches the caller");
    // The read and the lock time out (the breaker's threshold is 2 here); the write is
    // skipped, as after a failed generations read.
    let s = cache.stats();
    assert_eq!(s.redis_errors, 2, "{s:?}");
    assert_eq!(s.breaker, Some(BreakerState::Open), "{s:?}");
    assert!(took < timeout * 2 + Duration::from_millis(400), "{took:?}");

    // Open: the next miss does not wait on Redis, and L1 serves what was loaded.
    let t0 = Instant::now();
    let other: Result<Arc<String>, std::io::Error> = cache
        .get_or_load("student:3:summary", MIN, &[], || async {
            Ok("other".to_owned())
        })
        .await;
    assert_eq!(*other.unwrap(), "other");
    assert!(t0.elapsed() < timeout, "{:?}", t0.elapsed());
    assert_eq!(
        read_string(&cache, "student:2:summary").await.as_deref(),
        Some("loaded")
    );

    // The pause ends (a paused client's UNPAUSE would wait for it too): the breaker's probe
    // closes it.
    assert!(
        eventually(Duration::from_secs(10), || async {
            cache.get_cloned::<u8>("absent").await;
            cache.stats().breaker == Some(BreakerState::Closed)
        })
        .await
    );
    cache.shutdown().await;
}
