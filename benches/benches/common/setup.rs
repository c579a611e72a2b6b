//! What the cache benches run on: the Redis at `REDIS_URL` and a two-worker runtime.
//! `benches/benches/cache.rs` and `benches/benches/cache_cluster.rs` include this file with
//! `#[path]`.

/// The Redis at `REDIS_URL`, by default redis://127.0.0.1:6379.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A multi-thread runtime of two workers (the machine's cores).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
