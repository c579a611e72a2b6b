//! A counter bumped from many threads at once (the L1 hits): one atomic per stripe, each on
//! its own cache line; a read sums them. Exact (every increment lands in one stripe), and two
//! threads bumping it do not pull one cache line back and forth between their cores.
//!
//! A thread that owns a stripe (the first [`OWNED`] threads to bump any counter, each until it
//! exits) is that stripe's only writer in every counter, so its bump is a plain load and
//! store, not a locked read-modify-write (which costs as much as an L1 hit's lookup step). A
//! thread that finds every stripe owned bumps the shared last stripe atomically.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Stripes a thread can own: more than the cores a host of this service runs on usually, so
/// that its busy threads each own one.
const OWNED: usize = 16;

/// One stripe, alone on its cache line (128 bytes: two lines, for the adjacent-line prefetch).
#[derive(Default)]
#[repr(align(128))]
struct Stripe(AtomicU64);

/// A `u64` counter striped across [`OWNED`] owned cache lines and a shared one.
#[derive(Default)]
pub(crate) struct StripedCounter {
    stripes: Box<[Stripe; OWNED + 1]>,
}

/// Which stripes a thread owns now.
static CLAIMED: [AtomicBool; OWNED] = [const { AtomicBool::new(false) }; OWNED];

/// A thread's stripe: an owned index below [`OWNED`], given back when the thread exits, or
/// [`OWNED`], the shared stripe.
struct Claim(usize);

impl Claim {
    fn take() -> Self {
        // Acquire: the last owner's stores to this stripe (before its release) are seen, so
        // the plain load-and-store bumps continue from them.
        let owned = CLAIMED.iter().position(|c| {
            c.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        });
        Self(owned.unwrap_or(OWNED))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(c) = CLAIMED.get(self.0) {
            c.store(false, Ordering::Release);
        }
    }
}

thread_local! {
    /// This thread's stripe (the same in every counter).
    static STRIPE: Claim = Claim::take();
}

impl StripedCounter {
    /// Adds `n`.
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        // A thread's locals being torn down (a bump from another local's destructor) use
        // the shared stripe.
        let i = STRIPE.try_with(|c| c.0).unwrap_or(OWNED);
        let s = &self.stripes[i].0;
        if i < OWNED {
            // This thread is the stripe's only writer while it owns it (see the module doc).
            s.store(s.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
        } else {
            s.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The sum of the stripes (each read relaxed: a bump in flight may be missed).
    pub(crate) fn get(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn adds_from_more_threads_than_stripes_sum_exactly() {
        // Every thread bumps once (claiming its stripe) before any goes on, so at least
        // three of them, alive together, bump the shared stripe.
        let c = StripedCounter::default();
        let start = std::sync::Barrier::new(OWNED + 3);
        std::thread::scope(|s| {
            for _ in 0..(OWNED + 3) {
                s.spawn(|| {
                    c.add(1);
                    start.wait();
                    for _ in 1..1000 {
                        c.add(1);
                    }
                });
            }
        });
        assert_eq!(c.get(), (OWNED as u64 + 3) * 1000);
        assert!(c.stripes[OWNED].0.load(Ordering::Relaxed) >= 3 * 1000);
    }

    #[test]
    fn counts_of_threads_that_exited_are_kept() {
        // `join` returns once the thread's locals are dropped: its stripe is given back
        // before the next thread starts (which may take it, or another one when other
        // tests hold claims; either way nothing is lost).
        let c = Arc::new(StripedCounter::default());
        for _ in 0..(3 * OWNED) {
            let c = Arc::clone(&c);
            std::thread::spawn(move || c.add(2)).join().unwrap();
        }
        assert_eq!(c.get(), 6 * OWNED as u64);
    }

    #[test]
    fn a_stripe_is_a_cache_line_of_its_own() {
        assert_eq!(std::mem::align_of::<Stripe>(), 128);
        assert_eq!(std::mem::size_of::<Stripe>(), 128);
    }
}
