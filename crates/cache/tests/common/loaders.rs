//! The loaders of the fail-safe and load-path tests: one that finds a value, finds nothing or
//! whose database does not answer, one that tells when it ran, one held at a gate, and a look
//! at Redis for the value itself; and their caches with fail-safe on.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use redis::AsyncCommands as _;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;
use vitals_cache::{LoadOptions, Loaded, TieredCache};

/// What the loaders of these tests fail with: a database that does not answer.
#[derive(Debug, PartialEq)]
pub struct DatabaseDown;

/// What `get_or_load_with` answers these loaders.
pub type Got = Result<Option<Loaded<String>>, DatabaseDown>;

/// The cache of test `name`, its load options serving a value up to `horizon` past its TTL
/// when its reload fails.
pub async fn fail_safe_cache(name: &str, horizon: Duration) -> (TieredCache, LoadOptions) {
    let cache = super::own_cache(name).await;
    let o = cache.load_options().fail_safe(horizon);
    (cache, o)
}

/// Two instances of the cache of test `name` (as [`super::own_pair`]), with the load options
/// of [`fail_safe_cache`].
pub async fn fail_safe_pair(
    name: &str,
    horizon: Duration,
) -> (TieredCache, TieredCache, LoadOptions) {
    let (a, b) = super::own_pair(name).await;
    let o = a.load_options().fail_safe(horizon);
    (a, b, o)
}

/// `get_or_load_with` of `key` under `tags`, whose loader answers `answer`: finds that value
/// (`Ok(Some(_))`), finds nothing (`Ok(None)`: the record was deleted in the database), or
/// fails with [`DatabaseDown`].
pub async fn load_answering(
    cache: &TieredCache,
    key: &str,
    ttl: Duration,
    tags: &[&str],
    o: &LoadOptions,
    answer: Result<Option<&str>, DatabaseDown>,
) -> Got {
    let answer = answer.map(|found| found.map(str::to_owned));
    cache
        .get_or_load_with(key, ttl, tags, o, move || async move { answer })
        .await
}

/// What these loaders answer: a value, nothing (`Ok(None)`) or [`DatabaseDown`].
pub type Answer = Result<Option<String>, DatabaseDown>;

/// A loader answering `answer`, and a receiver told when it runs (an eager refresh runs it in
/// the background, after the hit that claimed the refresh returned).
pub fn telling(
    answer: Result<Option<&str>, DatabaseDown>,
) -> (
    impl FnOnce() -> BoxFuture<'static, Answer> + Send + 'static,
    oneshot::Receiver<()>,
) {
    let answer = answer.map(|found| found.map(str::to_owned));
    let (tx, ran) = oneshot::channel();
    let loader = move || -> BoxFuture<'static, Answer> {
        Box::pin(async move {
            let _ = tx.send(());
            answer
        })
    };
    (loader, ran)
}

/// A hit of `key` through `get_or_load_with` (no tag) that finds its value, with a loader
/// answering `answer` as [`telling`]'s: the value it returned, and the receiver told when the
/// loader runs (the eager refresh the hit claimed).
pub async fn hit_telling(
    cache: &TieredCache,
    (key, ttl, o): (&str, Duration, &LoadOptions),
    answer: Result<Option<&str>, DatabaseDown>,
) -> (Loaded<String>, oneshot::Receiver<()>) {
    let (loader, ran) = telling(answer);
    let hit = cache
        .get_or_load_with(key, ttl, &[], o, loader)
        .await
        .unwrap()
        .unwrap();
    (hit, ran)
}

/// A first load (`load`, not yet begun) that finds its value: that value, and when the load
/// began.
pub async fn first_load(load: impl Future<Output = Got>) -> (Instant, Loaded<String>) {
    let began = Instant::now();
    let loaded = load.await.unwrap().unwrap();
    (began, loaded)
}

/// A loader held at a gate: each caller of [`Gated::spawn`] runs on a task of its own, and a
/// load it runs counts itself in `calls`, then waits until [`Gated::open`].
pub struct Gated {
    gate: Arc<Notify>,
    calls: Arc<AtomicUsize>,
}

impl Gated {
    /// The gate shut, no load run yet.
    pub fn new() -> Self {
        Self {
            gate: Arc::new(Notify::new()),
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A `get_or_load_with` of `key` on `cache` (no tag) whose load, once let through,
    /// answers `answer` (as [`load_answering`]'s).
    pub fn spawn(
        &self,
        cache: &TieredCache,
        (key, ttl, o): (&'static str, Duration, LoadOptions),
        answer: Result<Option<&'static str>, DatabaseDown>,
    ) -> tokio::task::JoinHandle<Got> {
        let (cache, gate, calls) = (cache.clone(), self.gate.clone(), self.calls.clone());
        tokio::spawn(async move {
            cache
                .get_or_load_with(key, ttl, &[], &o, move || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    gate.notified().await;
                    answer.map(|found| found.map(str::to_owned))
                })
                .await
        })
    }

    /// The loads run so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Lets the load waiting at the gate finish.
    pub fn open(&self) {
        self.gate.notify_one();
    }
}

/// Whether Redis still holds `cache`'s value of `key`.
pub async fn in_redis(cache: &TieredCache, key: &str) -> bool {
    let data_key = cache.redis().unwrap().data_key(key);
    let mut conn = super::raw_conn(&super::redis_url()).await;
    conn.exists(data_key).await.unwrap()
}
