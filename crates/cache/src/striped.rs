//! A counter bumped from many threads at once (the L1 hits): one atomic per stripe, each on
//! its own cache line, a thread always bumping the same stripe; a read sums them. Exact (every
//! increment lands in one stripe), and two threads bumping it do not pull one cache line back
//! and forth between their cores.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Stripes per counter: a power of two, more than the cores a host of this service runs on
/// usually, so threads seldom share one (sharing is still exact, only slower).
const STRIPES: usize = 16;

/// One stripe, alone on its cache line (128 bytes: two lines, for the adjacent-line prefetch).
#[derive(Default)]
#[repr(align(128))]
struct Stripe(AtomicU64);

/// A `u64` counter striped across [`STRIPES`] cache lines.
#[derive(Default)]
pub(crate) struct StripedCounter {
    stripes: Box<[Stripe; STRIPES]>,
}

/// The next stripe handed to a thread that never bumped a counter yet.
static NEXT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's stripe (the same in every counter), handed out round robin.
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The calling thread's stripe index.
#[inline]
fn stripe() -> usize {
    STRIPE.with(|s| {
        let i = s.get();
        if i != usize::MAX {
            return i;
        }
        let i = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
        s.set(i);
        i
    })
}

impl StripedCounter {
    /// Adds `n` (on this thread's stripe).
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        self.stripes[stripe()].0.fetch_add(n, Ordering::Relaxed);
    }

    /// The sum of every stripe: every `add` that happened before this call.
    pub(crate) fn get(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_from_many_threads_sum_exactly() {
        let c = StripedCounter::default();
        std::thread::scope(|s| {
            for _ in 0..(STRIPES + 3) {
                s.spawn(|| {
                    for _ in 0..1000 {
                        c.add(1);
                    }
                });
            }
        });
        assert_eq!(c.get(), (STRIPES as u64 + 3) * 1000);
    }

    #[test]
    fn a_stripe_is_a_cache_line_of_its_own() {
        assert_eq!(std::mem::align_of::<Stripe>(), 128);
        assert_eq!(std::mem::size_of::<Stripe>(), 128);
    }
}
