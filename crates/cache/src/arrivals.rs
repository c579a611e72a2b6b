//! The keys this instance waits on another instance's load of (`load_lock.rs`), woken by the
//! arrival of their value, or a release notice, on the invalidation channel (`Inner::apply`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::message::Message;

/// The keys this instance waits on another instance's load of, woken by the arrival of
/// their value (or a release notice) on the invalidation channel.
#[derive(Default)]
pub(crate) struct Arrivals {
    /// How many keys are waited on: the subscriber skips the map when none is.
    waiting: AtomicUsize,
    map: Mutex<HashMap<String, Waited>>,
}

/// One waited key: how many wait, their wake-up, and how many release notices of a failed
/// load arrived for it.
#[derive(Default)]
struct Waited {
    waiters: usize,
    signal: Arc<Signal>,
}

/// A waited key's wake-up, and its count of failed loads released.
#[derive(Default)]
pub(crate) struct Signal {
    pub(crate) notify: Notify,
    failures: AtomicU64,
}

impl Arrivals {
    /// Registers interest in `key`'s arrival until the returned handle drops.
    pub(crate) fn register(&self, key: &str) -> Interest<'_> {
        let mut map = crate::poison::lock(&self.map);
        let entry = map.entry(key.to_owned()).or_default();
        entry.waiters += 1;
        let signal = entry.signal.clone();
        self.waiting.fetch_add(1, Ordering::Release);
        Interest {
            arrivals: self,
            key: key.to_owned(),
            failures: signal.failures.load(Ordering::Acquire),
            signal,
        }
    }

    /// Wakes the waiters of the keys a message from another instance names (written,
    /// deleted, or released without a value).
    pub(crate) fn wake(&self, msg: &Message) {
        if self.waiting.load(Ordering::Acquire) == 0 {
            return;
        }
        let map = crate::poison::lock(&self.map);
        if let Some(w) = msg.u.as_ref().filter(|_| msg.f).and_then(|k| map.get(k)) {
            // Before the wake-up: a waiter woken by it sees the failure.
            w.signal.failures.fetch_add(1, Ordering::Release);
        }
        for k in msg.k.iter().chain(msg.u.iter()) {
            if let Some(w) = map.get(k) {
                w.signal.notify.notify_waiters();
            }
        }
    }
}

/// A waiter's interest in one key's arrival.
pub(crate) struct Interest<'a> {
    arrivals: &'a Arrivals,
    key: String,
    pub(crate) signal: Arc<Signal>,
    /// The key's failures released when this interest registered.
    failures: u64,
}

impl Interest<'_> {
    /// Whether a load of the key released its lock failed since this interest registered.
    pub(crate) fn holder_failed(&self) -> bool {
        self.signal.failures.load(Ordering::Acquire) > self.failures
    }
}

impl Drop for Interest<'_> {
    fn drop(&mut self) {
        let mut map = crate::poison::lock(&self.arrivals.map);
        if let Some(entry) = map.get_mut(&self.key) {
            entry.waiters -= 1;
            if entry.waiters == 0 {
                map.remove(&self.key);
            }
        }
        self.arrivals.waiting.fetch_sub(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_message_naming_a_waited_key_wakes_its_waiters_only() {
        let arrivals = Arrivals::default();
        {
            let a = arrivals.register("k:1");
            let b = arrivals.register("k:2");
            let (wa, wb) = (a.signal.notify.notified(), b.signal.notify.notified());
            tokio::pin!(wa, wb);
            wa.as_mut().enable();
            wb.as_mut().enable();
            let msg: Message =
                serde_json::from_str(&Message::released("other", "k:1", false)).unwrap();
            arrivals.wake(&msg);
            tokio::time::timeout(Duration::from_secs(5), wa)
                .await
                .expect("woken");
            assert!(futures::poll!(wb.as_mut()).is_pending(), "k:2 not named");
            assert!(!a.holder_failed(), "a release, not a failure");
            let failed: Message =
                serde_json::from_str(&Message::released("other", "k:1", true)).unwrap();
            arrivals.wake(&failed);
            assert!(a.holder_failed() && !b.holder_failed());
        }
        assert_eq!(arrivals.waiting.load(Ordering::Acquire), 0);
        assert!(arrivals.map.lock().unwrap().is_empty(), "unregistered");
    }
}
