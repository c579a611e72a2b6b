//! [`TieredCache::get`](crate::TieredCache::get)'s future: the L1 lookup when it is first
//! polled, and only when L1 does not answer, the Redis read, boxed.
//!
//! A hand-written future rather than an `async fn`: it is three words and a box (the cache,
//! the key, the Redis read once begun), so an L1 hit moves no more than that. The `async fn`
//! it replaces held its own copy of the arguments, the inner future's and the get's span and
//! clock, about 128 bytes copied at each move of the future (the caller's `.await`,
//! `now_or_never`), which a profile of the L1 hit showed as a fifth of the get's own time.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde::de::DeserializeOwned;

use crate::metrics::Get;
use crate::tiered::TieredCache;

/// The Redis read of a get that L1 did not answer.
type Shared<'a, T> = Pin<Box<dyn Future<Output = Option<Arc<T>>> + Send + 'a>>;

/// The value of `key` as a `T` from L1, else from Redis (see [`TieredCache::get`]).
pub(crate) struct Fetch<'a, T> {
    cache: &'a TieredCache,
    key: &'a str,
    shared: Option<Shared<'a, T>>,
    /// L1 answered: polled again, it panics, as an `async fn`'s future does.
    answered: bool,
}

impl<'a, T> Fetch<'a, T> {
    pub(crate) fn new(cache: &'a TieredCache, key: &'a str) -> Self {
        Self {
            cache,
            key,
            shared: None,
            answered: false,
        }
    }
}

impl<'a, T> Future for Fetch<'a, T>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    type Output = Option<Arc<T>>;

    // Always inlined (the miss path is out of line, `shared_read`): left out of line by the
    // compiler, the poll was reached by a call that read the future back through a pointer,
    // 5-6 ns more per L1 hit at 1 thread and 7-11 ns more at 2 (docs/cache.md).
    #[inline(always)]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Some(shared) = &mut this.shared {
            return shared.as_mut().poll(cx);
        }
        assert!(
            !this.answered,
            "`TieredCache::get` polled after it completed"
        );
        match this.cache.fetch_l1::<T>(this.key) {
            Ok(answer) => {
                this.answered = true;
                Poll::Ready(answer)
            }
            Err(get) => {
                let shared = this.shared.insert(shared_read(this.cache, this.key, get));
                shared.as_mut().poll(cx)
            }
        }
    }
}

/// The Redis read of a get that L1 did not answer, boxed: out of line, so that
/// [`Fetch::poll`] stays small enough to inline into its caller (the read's future, over
/// 500 bytes, would be built in the frame `poll` is inlined into). Takes the get as
/// `fetch_l1` returns it, boxed, so that the caller does not move it out.
#[allow(clippy::boxed_local)]
#[inline(never)]
fn shared_read<'a, T>(cache: &'a TieredCache, key: &'a str, get: Box<Get>) -> Shared<'a, T>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    Box::pin(cache.fetch_shared::<T>(key, Some(*get)))
}
