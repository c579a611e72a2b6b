//! Helpers of the Redis tests: unique prefixes, configs, a private redis-server.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vitals_cache::CacheConfig;

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A key prefix no other test (or run) uses; the channel name derives from it.
pub fn prefix(name: &str) -> String {
    format!(
        "vt-{name}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// A config with quick timeouts so failure paths finish fast. Values go to Redis
/// unencrypted (`allow_plaintext`): these tests read what Redis holds, and the
/// ones about encryption, or about keeping values out, set their own.
pub fn config(name: &str, url: &str) -> CacheConfig {
    CacheConfig::default()
        .with_redis_url(Some(url))
        .with_key_prefix(prefix(name))
        .with_allow_plaintext(true)
        .with_redis_timeouts(
            Duration::from_millis(500),
            Duration::from_millis(300),
            Duration::from_millis(50),
        )
        .with_breaker(2, Duration::from_millis(150))
}

pub async fn raw_conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Polls `cond` every 5 ms until it holds or `limit` passes; returns whether
/// it held.
pub async fn eventually<F, Fut>(limit: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A free loopback port (nothing listens on it once this returns).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A redis-server this test owns, on a loopback port; killed on drop.
pub struct TestRedis {
    pub port: u16,
    child: Option<Child>,
}

impl TestRedis {
    pub async fn start() -> Self {
        let mut s = Self {
            port: free_port(),
            child: None,
        };
        s.restart().await;
        s
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and waits for PING.
    pub async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        self.child = Some(child);
        let url = self.url();
        let up = eventually(Duration::from_secs(10), || {
            let url = url.clone();
            async move {
                let Ok(c) = redis::Client::open(url.as_str()) else {
                    return false;
                };
                match c.get_multiplexed_async_connection().await {
                    Ok(mut conn) => redis::cmd("PING")
                        .query_async::<String>(&mut conn)
                        .await
                        .is_ok(),
                    Err(_) => false,
                }
            }
        })
        .await;
        assert!(up, "redis-server did not start on port {}", self.port);
    }

    /// Kills the server (by its pid) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until `cache` has applied `n` invalidations of other instances, so a
/// read that follows can't overlap their delivery (a read that does is not
/// put in L1, by design).
pub async fn received(cache: &vitals_cache::TieredCache, n: u64) {
    let ok = eventually(Duration::from_secs(5), || async {
        cache.stats().invalidations_received >= n
    })
    .await;
    assert!(
        ok,
        "only {} invalidations received",
        cache.stats().invalidations_received
    );
}
