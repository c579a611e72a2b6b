//! The harness of every test that needs a Redis of its own: a poll until a condition holds,
//! a free loopback port, a redis-server the test starts, kills and restarts, and a dump of its
//! keyspace (every key with every byte string it holds).
//!
//! The cache's suites reach it through `common`; the facade's `faults` and `security` suites
//! include this file with `#[path = "../../cache/tests/common/redis_server.rs"]`, one
//! harness for both crates without a crate of its own. It may use only `std`, `tokio` and
//! `redis`, which both crates have.
// Each suite uses part of it.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Polls `cond` every 5 ms until it holds or `limit` passes; returns whether it held.
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

/// Waits, 10 s at most, until the redis-server at `url` (listening on `port`) answers PING;
/// fails the test if it never does.
pub async fn wait_for_ping(url: &str, port: u16) {
    let up = eventually(Duration::from_secs(10), || async {
        let Ok(c) = redis::Client::open(url) else {
            return false;
        };
        match c.get_multiplexed_async_connection().await {
            Ok(mut conn) => redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .is_ok(),
            Err(_) => false,
        }
    })
    .await;
    assert!(up, "redis-server did not start on port {port}");
}

/// A redis-server process of the test's own; killed (by its pid) and reaped on drop.
pub struct RedisProcess(Child);

impl RedisProcess {
    /// Starts `redis-server` with `args` (the ports, and whatever the test needs) after the
    /// options every test server shares: loopback only, in the foreground, nothing written
    /// to disk. Does not wait for it to listen.
    pub fn spawn<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--daemonize", "no"])
            .args(["--save", "", "--appendonly", "no"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        Self(child)
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A plain redis-server this test owns on a loopback port, with a password if asked; killed
/// on drop, and restarted on the same port when the test says.
pub struct TestRedis {
    pub port: u16,
    password: Option<String>,
    process: Option<RedisProcess>,
}

impl TestRedis {
    /// Starts a server without a password and waits for its PING.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Starts a server that requires `password` and waits for its PING (authenticated).
    pub async fn with_password(password: &str) -> Self {
        Self::start_with(Some(password.to_owned())).await
    }

    async fn start_with(password: Option<String>) -> Self {
        let mut s = Self {
            port: free_port(),
            password,
            process: None,
        };
        s.restart().await;
        s
    }

    /// The server's URL, its password in it if it has one.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// Starts the server (again) on the same port and waits for PING.
    pub async fn restart(&mut self) {
        let port = self.port.to_string();
        let mut args = vec!["--port", port.as_str()];
        if let Some(password) = &self.password {
            args.extend(["--requirepass", password.as_str()]);
        }
        self.process = Some(RedisProcess::spawn(args));
        wait_for_ping(&self.url(), self.port).await;
    }

    /// Kills the server (by its pid) and waits for it to exit.
    pub fn kill(&mut self) {
        self.process = None;
    }
}

/// Every key matching `pattern` in the Redis at `url`, sorted, with every byte string it
/// holds: a string's value, a hash's fields and values, the members of a set, a sorted set
/// or a list; nothing for a key that expired meanwhile.
pub async fn keyspace(url: &str, pattern: &str) -> Vec<(String, Vec<Vec<u8>>)> {
    use redis::AsyncCommands as _;
    let mut conn = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    // A few hundred keys at most; the bound only stops a server that never ends its cursor.
    for _ in 0..10_000 {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(cursor, 0, "SCAN did not finish");
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    for k in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&k)
            .query_async(&mut conn)
            .await
            .unwrap();
        let held: Vec<Vec<u8>> = match kind.as_str() {
            "string" => {
                let value: Option<Vec<u8>> = conn.get(&k).await.unwrap();
                value.into_iter().collect()
            }
            "hash" => {
                let pairs: Vec<(Vec<u8>, Vec<u8>)> = conn.hgetall(&k).await.unwrap();
                pairs.into_iter().flat_map(|(f, v)| [f, v]).collect()
            }
            "zset" => conn.zrange(&k, 0, -1).await.unwrap(),
            "set" => conn.smembers(&k).await.unwrap(),
            "list" => conn.lrange(&k, 0, -1).await.unwrap(),
            "none" => Vec::new(), // expired meanwhile
            other => panic!("unexpected {other} key {k}"),
        };
        out.push((k, held));
    }
    out
}
