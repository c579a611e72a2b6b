//! Fail-safe and eager refresh: [`TieredCache::get_or_load_with`].
//!
//! **Fail-safe.** A value loaded (or read from Redis) through `get_or_load_with` with a
//! fail-safe horizon keeps, in its L1 entry, its logical expiry (`Entry::expires`: past it
//! the entry is a miss for every read) and a horizon (`Entry::stale_until`, the expiry plus
//! the horizon): L1 drops the entry only once that has passed too. When a reload fails, the
//! value is served until the horizon, flagged [`Loaded::stale`] and counted in
//! `stale_served`. Only L1 keeps it: Redis keeps the logical TTL, because Redis knows no
//! other expiry, and an entry it kept longer would be served as fresh by every instance's
//! `get` (a logical expiry in the payload would change the codec's format for every reader).
//! So a value is served stale by an instance that held it in L1; one restarted, or whose L1
//! evicted it (a logically expired entry is among the first victims), or cleared it (a lost
//! subscription), has nothing to serve and returns the error. A read from Redis that refills
//! an expired entry of the key keeps that entry's tags and horizon (`L1Cache::fill_if`).
//!
//! **Eager refresh.** A hit past `fraction × TTL` of its value's life claims the entry's
//! refresh (one atomic compare-and-swap on the entry: one claim per entry, however many
//! hits arrive at once), returns the value at once and spawns the reload, which joins the
//! key's single flight like a miss (a miss meanwhile waits for it rather than loading
//! again). A failed refresh leaves the entry as it was (no retry until it expires; then
//! fail-safe applies); one still loading after 30 s is dropped, so a hung loader holds up
//! the misses that follow it no longer than that. L1's TTL cap (`CACHE_L1_TTL`) can make
//! an entry's life shorter than its value's: such an entry is not armed (its value's age is
//! unknown; `Entry::capped`, set at its insert); an entry filled from Redis with the rest of
//! its TTL is. An entry stored by a load, or filled by another
//! instance's load arriving (`load_lock.rs`), is armed without being claimed: a value that
//! arrives past its refresh point is refreshed by its next hit, as its caller has no loader
//! to run in the background.
//!
//! The refresh runs only if L1 still holds the value whose hit claimed it, and is counted in
//! `eager_refreshes` then: concurrent reads from Redis fill an entry each, each claimed once,
//! and one refresh runs.
//!
//! **Not found.** The loader returns `Ok(None)`: see `load.rs`, the load path this shares
//! with `get_or_load` (what is held of the value goes: a refresh that finds nothing deletes
//! it).

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::clock;
use crate::config::CacheConfig;
use crate::flight::Role;
use crate::l1::{L1Cache, Value};
use crate::l1_shard::Entry;
use crate::tier::Placement;
use crate::tiered::TieredCache;

/// `Entry::refresh_at` of an entry not armed yet.
const UNARMED: u64 = 0;
/// `Entry::refresh_at` of an entry with no refresh to run (none asked, or claimed).
const NEVER: u64 = u64::MAX;
/// The longest an eager refresh may load before it is dropped (its flight's followers then
/// load themselves).
const REFRESH_LIMIT: Duration = Duration::from_secs(30);

/// How [`TieredCache::get_or_load_with`] treats a failed reload and a hit late in its TTL.
/// [`TieredCache::load_options`] gives the configured defaults (`CACHE_FAIL_SAFE_MAX`,
/// `CACHE_EAGER_REFRESH`); the setters override them per call site.
///
/// ```
/// # use std::time::Duration;
/// # use vitals_cache::{CacheConfig, LoadOptions};
/// let critical = LoadOptions::from_config(&CacheConfig::default())
///     .fail_safe(Duration::from_secs(24 * 3600))
///     .eager_refresh(Some(0.9));
/// assert_eq!(critical.fail_safe_max(), Duration::from_secs(24 * 3600));
/// ```
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadOptions {
    fail_safe: Duration,
    eager_refresh: Option<f64>,
}

impl LoadOptions {
    /// Fail-safe and eager refresh off: [`TieredCache::get_or_load`]'s load.
    pub const OFF: Self = Self {
        fail_safe: Duration::ZERO,
        eager_refresh: None,
    };

    /// The defaults of `config`: its `fail_safe_max` and `eager_refresh`.
    pub fn from_config(config: &CacheConfig) -> Self {
        Self {
            fail_safe: config.fail_safe_max,
            eager_refresh: config.eager_refresh,
        }
    }

    /// Serve the last value for up to `max` past its TTL when its reload fails (zero: off).
    pub fn fail_safe(mut self, max: Duration) -> Self {
        self.fail_safe = max;
        self
    }

    /// Reload in the background on a hit past `fraction` of the TTL (`None`, or a value
    /// outside 0 to 1 exclusive: off).
    pub fn eager_refresh(mut self, fraction: Option<f64>) -> Self {
        self.eager_refresh = fraction.filter(|f| *f > 0.0 && *f < 1.0);
        self
    }

    /// The fail-safe horizon (zero when off).
    pub fn fail_safe_max(&self) -> Duration {
        self.fail_safe
    }

    /// The eager-refresh fraction (`None` when off).
    pub fn eager_fraction(&self) -> Option<f64> {
        self.eager_refresh
    }

    fn is_off(&self) -> bool {
        self.fail_safe.is_zero() && self.eager_refresh.is_none()
    }
}

/// A value from [`TieredCache::get_or_load_with`], and whether it is stale: past its TTL,
/// served because its reload failed (fail-safe).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Loaded<T> {
    /// The value, shared as [`TieredCache::get`] returns it.
    pub value: Arc<T>,
    /// True when the value is past its TTL and its reload failed.
    pub stale: bool,
}

impl<T> Loaded<T> {
    /// A value and its staleness (for wrappers that build one, such as a default for
    /// "not found").
    pub fn new(value: Arc<T>, stale: bool) -> Self {
        Self { value, stale }
    }

    pub(crate) fn fresh(value: Arc<T>) -> Self {
        Self {
            value,
            stale: false,
        }
    }
}

/// What one load is of: the key, the TTL and tags its value is stored with, and the
/// fail-safe and eager-refresh options its entry is armed with. A miss's load and an eager
/// refresh carry one through the load path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load<'a> {
    /// The key loaded, and the life and tags its value is stored with.
    pub(crate) at: Placement<'a>,
    /// Fail-safe and eager refresh ([`LoadOptions::OFF`] for `get_or_load`).
    pub(crate) options: &'a LoadOptions,
}

impl<'a> Load<'a> {
    /// A load of `key`, stored for `ttl` under `tags`, its entry armed with `options`.
    pub(crate) fn new(
        key: &'a str,
        ttl: Duration,
        tags: &'a [&'a str],
        options: &'a LoadOptions,
    ) -> Self {
        Self {
            at: Placement::new(key, ttl, tags),
            options,
        }
    }
}

/// Whether `a` and `b` are one allocation (the data pointers; vtables may differ).
fn same(a: &Value, b: &Value) -> bool {
    std::ptr::eq(Arc::as_ptr(a).cast::<()>(), Arc::as_ptr(b).cast::<()>())
}

/// Whether a caller arming an entry may claim its eager refresh there and then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// A hit, which spawns the refresh it claims.
    Now,
    /// A value just stored or arrived, whose caller has no loader to refresh with: the
    /// entry is armed, and a refresh already due is left to the entry's next hit.
    Later,
}

/// Arms `e` once (a fail-safe horizon, a refresh time), then, with [`Claim::Now`], claims its
/// refresh if due; true for the one caller that should reload.
fn arm_and_claim(
    e: &Entry,
    ttl: Duration,
    options: &LoadOptions,
    fail_safe: bool,
    claim: Claim,
) -> bool {
    let now = clock::now_ms();
    let mut at = e.refresh_at.load(Ordering::Acquire);
    if at == UNARMED {
        if fail_safe {
            let horizon = u64::try_from(options.fail_safe.as_millis()).unwrap_or(u64::MAX);
            e.stale_until
                .fetch_max(e.expires.saturating_add(horizon), Ordering::Relaxed);
        }
        // An entry L1's cap cut short ends before its value: when that is due is unknown
        // (told when it was inserted, however late it is armed).
        let want = match options.eager_refresh {
            Some(f) if !e.capped => {
                let tail = (ttl.as_millis() as f64 * (1.0 - f)) as u64;
                e.expires.saturating_sub(tail).max(1)
            }
            _ => NEVER,
        };
        at = match e
            .refresh_at
            .compare_exchange(UNARMED, want, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => want,
            Err(current) => current,
        };
    }
    claim == Claim::Now
        && at != NEVER
        && at <= now
        && e.refresh_at
            .compare_exchange(at, NEVER, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
}

impl TieredCache {
    /// The configured [`LoadOptions`] (`CACHE_FAIL_SAFE_MAX`, `CACHE_EAGER_REFRESH`).
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions::from_config(&self.inner.config)
    }

    /// [`TieredCache::get_or_load`] with fail-safe, eager refresh and "not found".
    ///
    /// - The loader returns `Ok(None)` for "not found": `Ok(None)` here, not cached,
    ///   counted in `not_found` (never in `load_errors`); the waiters of the flight get it
    ///   too. What this instance held of it is dropped (an eager refresh's `Ok(None)` deletes
    ///   the value from both tiers), so a gone value is not served stale.
    /// - With `options.fail_safe_max()` non-zero, a value this instance holds in L1 is kept
    ///   that long past its TTL; when a reload fails it is returned with
    ///   [`Loaded::stale`] set (counted in `stale_served`; the failure in `load_errors`).
    ///   Without one, the loader's error is returned as by `get_or_load`.
    /// - With `options.eager_fraction()` set, a hit past that fraction of its TTL returns at
    ///   once and reloads in the background, once for any number of concurrent hits
    ///   (`eager_refreshes`); the reload is a flight of the key, so misses meanwhile wait
    ///   for it. That is why the loader is `Send + 'static`: it may run after this returns.
    /// - A miss's load takes the cross-instance load lock as `get_or_load`'s does; when the
    ///   load of the instance holding it fails, a stale value held here is served at once.
    ///
    /// See the module `fail_safe.rs` for where the stale value is kept (L1 only) and why.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # async fn example(cache: vitals_cache::TieredCache) -> Result<(), std::io::Error> {
    /// let options = cache.load_options().fail_safe(Duration::from_secs(24 * 3600));
    /// let loaded = cache
    ///     .get_or_load_with("student:4f1c:allergies", Duration::from_secs(600), &["allergies"],
    ///         &options, || async { Ok::<_, std::io::Error>(Some(vec!["peanut".to_owned()])) })
    ///     .await?;
    /// if let Some(l) = loaded {
    ///     if l.stale { /* say so to the nurse */ }
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The loader's error when there is no stale value to serve (fail-safe off, or nothing
    /// held, or past the horizon).
    pub async fn get_or_load_with<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Duration,
        tags: &[&str],
        options: &LoadOptions,
        loader: F,
    ) -> Result<Option<Loaded<T>>, E>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        E: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Option<T>, E>> + Send + 'static,
    {
        let load = Load::new(key, ttl, tags, options);
        if let Some(v) = self.fetch::<T>(key).await {
            if self.arm(&load, &v, Claim::Now) {
                self.refresh_in_background(&load, &v, loader);
            }
            return Ok(Some(Loaded::fresh(v)));
        }
        self.load_miss::<T, Option<Loaded<T>>, E, F>(load, loader)
            .await
    }

    /// Arms the L1 entry of `load.at.key` for `load.options` if it holds `v` and is not armed
    /// yet; true when this caller claimed its eager refresh (only with [`Claim::Now`]).
    pub(crate) fn arm<T: Send + Sync + 'static>(
        &self,
        load: &Load<'_>,
        v: &Arc<T>,
        claim: Claim,
    ) -> bool {
        let Load {
            at: Placement { key, ttl, tags },
            options,
        } = *load;
        let Some(l1) = self.inner.l1.as_ref().filter(|_| !options.is_off()) else {
            return false;
        };
        let v: Value = v.clone();
        l1.with_entry(key, |e| {
            // A fail-safe horizon only on an entry indexed under every tag of the call: one
            // filled from Redis carries none, and a tag or group invalidation after Redis
            // expired the key would name no key and find no tagged entry, so the copy would
            // outlive the invalidation.
            let indexed = tags.iter().all(|t| e.tags.iter().any(|et| &**et == *t));
            same(&e.value, &v) && arm_and_claim(e, ttl, options, indexed, claim)
        })
        .unwrap_or(false)
    }

    /// The value L1 holds for `key` as a `T` within its fail-safe horizon, `stale` if past
    /// its TTL (counted); `None` with fail-safe off.
    pub(crate) fn stale<T: Send + Sync + 'static>(
        &self,
        key: &str,
        options: &LoadOptions,
    ) -> Option<Loaded<T>> {
        if options.fail_safe.is_zero() {
            return None;
        }
        let l1: &L1Cache = self.inner.l1.as_ref()?;
        let now = clock::now_ms();
        let (value, stale) = l1
            .with_entry(key, |e| {
                (e.stale_until.load(Ordering::Relaxed) > now)
                    .then(|| {
                        e.value
                            .clone()
                            .downcast::<T>()
                            .ok()
                            .map(|v| (v, e.expires <= now))
                    })
                    .flatten()
            })
            .flatten()?;
        if stale {
            self.inner
                .counters
                .stale_served
                .fetch_add(1, Ordering::Relaxed);
        }
        Some(Loaded { value, stale })
    }

    /// Spawns the eager refresh of `load.at.key`, claimed by a hit on `claimed` (on the current
    /// tokio runtime; skipped outside one). It leads the key's flight and runs if L1 still holds
    /// `claimed`: not when a load of the key is up (another refresh, or a miss), nor when the
    /// value was replaced or dropped meanwhile (an earlier refresh ran, a write, a delete).
    /// Counted in `eager_refreshes` when it runs: once however many hits claimed (concurrent
    /// reads from Redis fill an entry each, each claimed once).
    fn refresh_in_background<T, E, F, Fut>(&self, load: &Load<'_>, claimed: &Arc<T>, loader: F)
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        E: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Option<T>, E>> + Send + 'static,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(target: "vitals_cache", "no tokio runtime: eager refresh skipped");
            return;
        };
        let cache = self.clone();
        let (key, ttl, options) = (load.at.key.to_owned(), load.at.ttl, *load.options);
        let claimed: Value = claimed.clone();
        let tags: Vec<String> = load.at.tags.iter().map(|t| (*t).to_owned()).collect();
        runtime.spawn(async move {
            let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
            let Role::Lead(guard) = cache.inner.flights.join(&key, &tags) else {
                return;
            };
            let held = cache
                .inner
                .l1
                .as_ref()
                .and_then(|l1| l1.with_entry(&key, |e| same(&e.value, &claimed)));
            if held != Some(true) {
                return;
            }
            cache
                .inner
                .counters
                .eager_refreshes
                .fetch_add(1, Ordering::Relaxed);
            // Its outcome is counted (loads, load_errors) and cached; no caller waits for
            // it, only the misses that follow its flight, so it is bounded: a loader that
            // hangs (a query with no statement timeout) is dropped after REFRESH_LIMIT, and
            // they load themselves (a dropped leader's followers try again).
            let load = Load::new(&key, ttl, &tags, &options);
            let refresh = cache.lead::<T, Option<Loaded<T>>, E, F>(load, guard, loader, true);
            if tokio::time::timeout(REFRESH_LIMIT, refresh).await.is_err() {
                tracing::warn!(target: "vitals_cache", "eager refresh still loading after {REFRESH_LIMIT:?}: dropped");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fraction::{parse_fraction, EAGER_EXPECTED};

    /// An entry whose life L1's cap cut short is never due for an eager refresh, however
    /// late it is first armed (it used to be judged by the life it had left when armed, so a
    /// value stored, then hit 50 ms later, was refreshed at once); one the cap did not cut
    /// is due at its point.
    #[tokio::test]
    async fn an_entry_capped_by_l1s_ttl_is_not_refreshed_when_armed_late() {
        let mut cfg = CacheConfig::default().with_l1(true, 16, Duration::from_secs(10));
        // One shard, so both keys fit whatever the hasher's seed (16 entries over 16 shards
        // is one a shard: two keys of one shard, 1 run in 16, left one of them out).
        cfg.l1_shards = 1;
        let cache = TieredCache::builder(cfg).build().await.unwrap();
        let stored = tokio::time::Instant::now();
        // 600 s, capped to L1's 10 s; 2 s, within it.
        cache
            .set("capped", 1_u32, Duration::from_secs(600), &[])
            .await
            .unwrap();
        cache
            .set("uncapped", 2_u32, Duration::from_secs(2), &[])
            .await
            .unwrap();
        let arm = |key: &'static str, ttl: Duration, fraction: f64| {
            let cache = &cache;
            async move {
                let v = cache.get::<u32>(key).await.unwrap();
                let o = LoadOptions::OFF.eager_refresh(Some(fraction));
                cache.arm(&Load::new(key, ttl, &[], &o), &v, Claim::Now)
            }
        };
        tokio::time::sleep_until(stored + Duration::from_millis(50)).await;
        assert!(!arm("capped", Duration::from_secs(600), 0.9).await);
        assert!(
            !arm("uncapped", Duration::from_secs(2), 0.5).await,
            "not due before 1 s"
        );
        tokio::time::sleep_until(stored + Duration::from_millis(1200)).await;
        assert!(!arm("capped", Duration::from_secs(600), 0.9).await);
        assert!(
            arm("uncapped", Duration::from_secs(2), 0.5).await,
            "due past half its TTL"
        );
        cache.shutdown().await;
    }

    #[test]
    fn eager_refresh_takes_a_fraction_or_a_percentage() {
        assert_eq!(parse_fraction("0.9"), Some(Some(0.9)));
        assert_eq!(parse_fraction(" 90% "), Some(Some(0.9)));
        assert_eq!(parse_fraction("0"), Some(None));
        assert_eq!(parse_fraction("1"), None);
        assert_eq!(parse_fraction("90"), None);
        assert_eq!(parse_fraction("-0.5"), None);
        assert_eq!(parse_fraction("soon"), None);
    }

    #[test]
    fn both_variables_are_read_and_checked() {
        let read = |vars: &'static [(&'static str, &'static str)]| {
            CacheConfig::from_env_with(move |name| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            })
        };
        let c = read(&[]).unwrap();
        assert_eq!((c.fail_safe_max, c.eager_refresh), (Duration::ZERO, None));
        let c = read(&[
            ("CACHE_FAIL_SAFE_MAX", "86400"),
            ("CACHE_EAGER_REFRESH", "0.9"),
        ])
        .unwrap();
        assert_eq!(c.fail_safe_max, Duration::from_secs(86_400));
        assert_eq!(c.eager_refresh, Some(0.9));
        assert_eq!(
            read(&[("CACHE_EAGER_REFRESH", "0")]).unwrap().eager_refresh,
            None
        );
        let err = read(&[
            ("CACHE_FAIL_SAFE_MAX", "a day"),
            ("CACHE_EAGER_REFRESH", "90"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("CACHE_FAIL_SAFE_MAX"), "{err}");
        assert!(
            err.contains("CACHE_EAGER_REFRESH") && err.contains(EAGER_EXPECTED),
            "{err}"
        );
        let code = CacheConfig::default().with_fail_safe(Duration::ZERO, Some(1.0));
        let err = code.validate().unwrap_err().to_string();
        assert!(err.contains("CACHE_EAGER_REFRESH"), "{err}");
    }

    /// Stands in for `load.rs`'s two `Claim::Later` call sites (a value another instance's
    /// load made arrive, a value just loaded): an arrival past its refresh point is hard to
    /// stage between instances (arrivals are almost always fresh), so the test arms the entry
    /// as they do and checks that its next hit still refreshes it.
    #[tokio::test]
    async fn a_value_armed_past_its_refresh_point_is_refreshed_by_its_next_hit() {
        use std::sync::atomic::{AtomicUsize, Ordering};

        let cache = TieredCache::l1_only().await;
        let (key, ttl, tags) = ("student:9:allergies", Duration::from_secs(4), &[][..]);
        let loads = Arc::new(AtomicUsize::new(0));
        let loader = |v: &'static str| {
            let loads = loads.clone();
            move || async move {
                loads.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(Some(v.to_owned()))
            }
        };
        // Stored unarmed (options off), then its refresh point (1 % of the TTL: 40 ms) passes.
        let first = cache
            .get_or_load_with(key, ttl, tags, &LoadOptions::OFF, loader("v1"))
            .await
            .unwrap()
            .unwrap();
        let due = clock::now_ms() + 60;
        while clock::now_ms() < due {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let o = LoadOptions::OFF.eager_refresh(Some(0.01));
        // As a value arriving from another instance's load is armed: not claimed there.
        let load = Load::new(key, ttl, tags, &o);
        assert!(!cache.arm(&load, &first.value, Claim::Later));
        // Its next hit claims the refresh, returns the old value and reloads once.
        let hit = cache
            .get_or_load_with(key, ttl, tags, &o, loader("v2"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(*hit.value, "v1");
        let mut refreshed = false;
        for _ in 0..200 {
            if cache
                .get::<String>(key)
                .await
                .as_deref()
                .map(String::as_str)
                == Some("v2")
            {
                refreshed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(refreshed, "the next hit refreshed the value");
        assert_eq!(loads.load(Ordering::SeqCst), 2);
        assert_eq!(cache.stats().eager_refreshes, 1);
        cache.shutdown().await;
    }

    #[test]
    fn options_out_of_range_turn_eager_refresh_off() {
        let o = LoadOptions::from_config(&CacheConfig::default());
        assert!(o.is_off());
        assert_eq!(o.eager_refresh(Some(1.5)).eager_fraction(), None);
        assert_eq!(o.eager_refresh(Some(0.9)).eager_fraction(), Some(0.9));
    }
}
