//! The load path of a miss, one implementation for [`TieredCache::get_or_load`] and
//! [`TieredCache::get_or_load_with`] (`get_or_load` is the latter with
//! [`LoadOptions::OFF`](crate::LoadOptions::OFF) and a loader that always finds its value):
//! the follower loop of the key's single flight (`flight.rs`), and the leader's load (the
//! load lock across instances, the generations, the loader, storing its value, handing the
//! outcome to the waiters). The eager refresh of `fail_safe.rs` runs the same leader.
//!
//! **Not found.** A loader of `get_or_load_with` that returns `Ok(None)`: not cached,
//! counted in `not_found` (never in `load_errors` nor `type_mismatches`), shared with the
//! waiters that can take it (a `get_or_load` waiting on that flight loads for itself). The
//! thing is gone, so what any instance held of it goes too: the key leaves both tiers and
//! every instance's L1 (an expired fail-safe copy, which a later failed reload would otherwise
//! serve; a removal not counted in `deletes`), unless an invalidation of the key or its tags
//! moved meanwhile (then it is gone already).

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::fail_safe::{Claim, Load, Loaded};
use crate::flight::{Ended, FlightGuard, Role};
use crate::l1::Lookup;
use crate::tier::{Placement, Tier as _};
use crate::tiered::TieredCache;

/// What a flight hands its waiters when the loader found nothing.
struct NotFound;

/// What the load path runs: the caller's closure, whose future gives the loader's result
/// (`Answer::Found`) or its error. Implemented for every such closure; it names the two
/// type parameters (the closure, its future) once.
pub(crate) trait Loader<T, A: Answer<T>, E> {
    /// The future of the load.
    type Fut: Future<Output = Result<A::Found, E>>;
    /// Starts the load.
    fn start(self) -> Self::Fut;
}

impl<T, A, E, F, Fut> Loader<T, A, E> for F
where
    A: Answer<T>,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<A::Found, E>>,
{
    type Fut = Fut;

    fn start(self) -> Fut {
        self()
    }
}

/// What a caller of the load path gets back, and what its loader returns: `get_or_load`'s
/// `Arc<T>` (its loader returns a `T`: never "not found"), or `get_or_load_with`'s
/// `Option<Loaded<T>>` (its loader an `Option<T>`).
pub(crate) trait Answer<T>: Sized {
    /// What the loader returns on success.
    type Found;
    /// "Not found": uninhabited for a loader that always finds its value.
    type Absent;
    /// The loaded value, or "not found".
    fn split(found: Self::Found) -> Result<T, Self::Absent>;
    /// The answer of a value.
    fn value(loaded: Loaded<T>) -> Self;
    /// The answer of "not found".
    fn absent(absent: Self::Absent) -> Self;
    /// A waiter's answer when the flight it waited on found nothing: `None` for a caller
    /// that cannot say "not found" (it leads a load of its own).
    fn flight_absent() -> Option<Self::Absent>;
}

impl<T> Answer<T> for Arc<T> {
    type Found = T;
    type Absent = Infallible;

    fn split(found: T) -> Result<T, Infallible> {
        Ok(found)
    }

    fn value(loaded: Loaded<T>) -> Self {
        loaded.value
    }

    fn absent(absent: Infallible) -> Self {
        match absent {}
    }

    fn flight_absent() -> Option<Infallible> {
        None
    }
}

impl<T> Answer<T> for Option<Loaded<T>> {
    type Found = Option<T>;
    type Absent = ();

    fn split(found: Option<T>) -> Result<T, ()> {
        found.ok_or(())
    }

    fn value(loaded: Loaded<T>) -> Self {
        Some(loaded)
    }

    fn absent((): ()) -> Self {
        None
    }

    fn flight_absent() -> Option<()> {
        Some(())
    }
}

impl TieredCache {
    /// A miss of `load.at.key`: follows the flight of the key (its value, or on its failure the
    /// stale value of `load.options`' fail-safe) or leads it.
    pub(crate) async fn load_miss<T, A, E, L>(&self, load: Load<'_>, loader: L) -> Result<A, E>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        A: Answer<T>,
        L: Loader<T, A, E>,
    {
        let c = &self.inner.counters;
        let guard = loop {
            match self.inner.flights.join(load.at.key, load.at.tags) {
                Role::Lead(guard) => break guard,
                Role::Follow(follower) => {
                    c.coalesced.fetch_add(1, Ordering::Relaxed);
                    match follower.ended().await {
                        // Not a value of another type: lead anew if "not found" is no answer.
                        Ended::Done(v) if v.is::<NotFound>() => {
                            if let Some(absent) = A::flight_absent() {
                                return Ok(A::absent(absent));
                            }
                        }
                        Ended::Done(v) => match v.downcast::<T>() {
                            Ok(v) => return Ok(A::value(Loaded::fresh(v))),
                            Err(_) => {
                                c.type_mismatches.fetch_add(1, Ordering::Relaxed);
                            }
                        },
                        // The leader's caller went away: nothing failed, lead or follow anew.
                        Ended::Abandoned => {}
                        // The leader failed: its stale value, if any, at once rather than a
                        // load of our own that would likely fail too.
                        Ended::Failed => {
                            if let Some(l) = self.stale::<T>(load.at.key, load.options) {
                                return Ok(A::value(l));
                            }
                        }
                    }
                }
            }
        };
        self.lead::<T, A, E, L>(load, guard, loader, false).await
    }

    /// The leader's load: the loader, then storing its value, arming its entry
    /// (`load.options`), and handing the outcome to the flight's waiters. `refresh`: an eager
    /// refresh, which must load although L1 holds the (old) value.
    pub(crate) async fn lead<T, A, E, L>(
        &self,
        load: Load<'_>,
        guard: FlightGuard<'_>,
        loader: L,
        refresh: bool,
    ) -> Result<A, E>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        A: Answer<T>,
        L: Loader<T, A, E>,
    {
        let Placement { key, tags, .. } = load.at;
        let c = &self.inner.counters;
        if !refresh {
            // A flight that ended just before we led may have filled L1.
            if let Some(Lookup::Hit(v)) = self.inner.l1.as_ref().map(|l1| l1.lookup::<T>(key)) {
                guard.done(v.clone());
                return Ok(A::value(Loaded::fresh(v)));
            }
        }
        // One load across instances (`load_lock.rs`): another's value, the stale value when
        // the other's load failed, or the lock (released on drop). Not for a refresh: Redis
        // still holds the value it replaces, which would "arrive" at once.
        #[cfg(feature = "redis")]
        let (mut lock, asked) = match refresh {
            true => (None, None),
            false => {
                use crate::load_lock::{load_across, Across};
                // Uncounted: this lookup was counted (a miss) when it began.
                let fetch = || Box::pin(self.fetch_shared::<T>(key, None));
                let stale = || self.stale::<T>(key, load.options);
                match load_across(&self.inner, key, tags, fetch, stale).await {
                    Across::Arrived(v) => {
                        guard.done(v.clone());
                        // From Redis with the rest of its TTL, it may be past its refresh
                        // point already: its next hit refreshes it (no loader runs here).
                        self.arm(&load, &v, Claim::Later);
                        return Ok(A::value(Loaded::fresh(v)));
                    }
                    // As a failed flight's: its waiters take the stale value too.
                    Across::Failed(l) => {
                        guard.failed();
                        return Ok(A::value(l));
                    }
                    Across::Load(lock, asked) => (lock, asked),
                }
            }
        };
        #[cfg(not(feature = "redis"))]
        let asked: Option<Option<crate::tier::Generations>> = None;
        let e0 = self.inner.watch(key, tags);
        let gens = match (&self.inner.redis, asked) {
            (_, Some(gens)) => gens,
            (Some(r), None) => r.generations(key, tags).await.ok(),
            (None, None) => None,
        };
        c.loads.fetch_add(1, Ordering::Relaxed);
        crate::metrics::load();
        match loader.start().await.map(A::split) {
            Ok(Ok(v)) => {
                let v = Arc::new(v);
                match serde_json::to_vec(&*v) {
                    Ok(bytes) if e0.unchanged() => {
                        self.store_loaded(&load, v.clone(), bytes.into(), gens, &e0)
                            .await;
                        // Arms the entry if it is this value (not one overwritten since).
                        self.arm(&load, &v, Claim::Later);
                    }
                    Ok(_) => {
                        c.stale_loads.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        tracing::warn!(target: "vitals_cache", error = %e, "loaded value does not serialise: not cached");
                    }
                }
                // The waiters share the value, cached or not.
                guard.done(v.clone());
                Ok(A::value(Loaded::fresh(v)))
            }
            Ok(Err(absent)) => {
                c.not_found.fetch_add(1, Ordering::Relaxed);
                // Gone: no copy of it may be served (fail-safe, a refresh's old value), here
                // or on another instance (whose expired copy a failed reload would serve).
                if e0.unchanged() {
                    self.remove_many(&[key], true).await;
                }
                guard.done(Arc::new(NotFound));
                Ok(A::absent(absent))
            }
            Err(e) => {
                c.load_errors.fetch_add(1, Ordering::Relaxed);
                // The lock's waiters on other instances take their stale value too.
                #[cfg(feature = "redis")]
                if let Some(lock) = lock.as_mut() {
                    lock.failed();
                }
                guard.failed();
                // A refresh serves no one (its result is dropped); the flight's waiters
                // take their stale value themselves.
                if refresh {
                    return Err(e);
                }
                match self.stale::<T>(key, load.options) {
                    Some(l) => {
                        tracing::warn!(
                            target: "vitals_cache",
                            stale = l.stale,
                            "reload failed: serving the value held in L1 (fail-safe)"
                        );
                        Ok(A::value(l))
                    }
                    None => Err(e),
                }
            }
        }
    }
}
