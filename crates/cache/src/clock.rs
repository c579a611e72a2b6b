//! A coarse millisecond clock for L1 expiry: reading it is one atomic load,
//! where `Instant::now()` costs tens of nanoseconds on virtual machines (more
//! than the rest of an L1 hit). A ticker thread, started on first use,
//! advances it every `TICK`; should that thread fail to start, every read
//! falls back to the precise clock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(2);

static START: OnceLock<Instant> = OnceLock::new();
static NOW: AtomicU64 = AtomicU64::new(0);
static TICKING: AtomicBool = AtomicBool::new(false);
static INIT: Once = Once::new();

fn precise() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Milliseconds since the first use, at most `TICK` behind. Inlined: once the clock ticks,
/// two loads (an L1 hit reads it).
#[inline]
pub(crate) fn now_ms() -> u64 {
    if TICKING.load(Ordering::Acquire) {
        NOW.load(Ordering::Relaxed)
    } else {
        started_or_precise()
    }
}

/// [`now_ms`] before the clock ticks: starts it (once), else the precise time (its thread
/// could not be spawned).
#[cold]
#[inline(never)]
fn started_or_precise() -> u64 {
    INIT.call_once(|| {
        NOW.store(precise(), Ordering::Relaxed);
        let spawned = std::thread::Builder::new()
            .name("vitals-cache-clock".into())
            .spawn(|| loop {
                std::thread::sleep(TICK);
                NOW.store(precise(), Ordering::Relaxed);
            });
        TICKING.store(spawned.is_ok(), Ordering::Release);
    });
    if TICKING.load(Ordering::Acquire) {
        NOW.load(Ordering::Relaxed)
    } else {
        precise()
    }
}

/// `now_ms() + d` in milliseconds, saturating.
pub(crate) fn deadline_ms(d: Duration) -> u64 {
    now_ms().saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
