//! The keys this instance waits on another instance's load of (`load_lock.rs`), woken by the
//! arrival of their value, or a release notice, on the invalidation channel (`Inner::apply`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use crate::message::Message;

/// The keys this instance waits on another instance's load of, woken by the arrival of
/// their value (or a release notice) on the invalidation channel.
#[derive(Default)]
pub(crate) struct Arrivals {
    /// How many keys are waited on: the subscriber skips the map when none is.
    waiting: AtomicUsize,
    map: Mutex<HashMap<String, (usize, Arc<Notify>)>>,
}

impl Arrivals {
    /// Registers interest in `key`'s arrival until the returned handle drops.
    pub(crate) fn register(&self, key: &str) -> Interest<'_> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = map
            .entry(key.to_owned())
            .or_insert_with(|| (0, Arc::new(Notify::new())));
        entry.0 += 1;
        let notify = entry.1.clone();
        self.waiting.fetch_add(1, Ordering::Release);
        Interest {
            arrivals: self,
            key: key.to_owned(),
            notify,
        }
    }

    /// Wakes the waiters of the keys a message from another instance names (written,
    /// deleted, or released without a value).
    pub(crate) fn wake(&self, msg: &Message) {
        if self.waiting.load(Ordering::Acquire) == 0 {
            return;
        }
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        for k in msg.k.iter().chain(msg.u.iter()) {
            if let Some((_, n)) = map.get(k) {
                n.notify_waiters();
            }
        }
    }
}

/// A waiter's interest in one key's arrival.
pub(crate) struct Interest<'a> {
    arrivals: &'a Arrivals,
    key: String,
    pub(crate) notify: Arc<Notify>,
}

impl Drop for Interest<'_> {
    fn drop(&mut self) {
        let mut map = self
            .arrivals
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = map.get_mut(&self.key) {
            entry.0 -= 1;
            if entry.0 == 0 {
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
            let (wa, wb) = (a.notify.notified(), b.notify.notified());
            tokio::pin!(wa, wb);
            wa.as_mut().enable();
            wb.as_mut().enable();
            let msg: Message = serde_json::from_str(&Message::released("other", "k:1")).unwrap();
            arrivals.wake(&msg);
            tokio::time::timeout(Duration::from_secs(5), wa)
                .await
                .expect("woken");
            assert!(futures::poll!(wb.as_mut()).is_pending(), "k:2 not named");
        }
        assert_eq!(arrivals.waiting.load(Ordering::Acquire), 0);
        assert!(arrivals.map.lock().unwrap().is_empty(), "unregistered");
    }
}
