//! [`Ticker`]: a tokio task that runs a step on an interval until it is told to stop, its
//! step says it is done, or its owner drops it (which aborts the task). The pool monitor's
//! sampler and the replica checker are each one.

use std::future::Future;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// A running interval task. [`stop`](Self::stop) ends it between steps and waits for it;
/// dropping it aborts the task.
pub(crate) struct Ticker {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Ticker {
    /// Spawns a task on the current tokio runtime that runs `step` first after `first`, then
    /// every `every` (a late tick delays the later ones rather than bursting), until stopped
    /// or until `step` resolves to `false`.
    ///
    /// # Panics
    /// When called outside a tokio runtime (as `tokio::spawn`).
    pub(crate) fn spawn<F, Fut>(first: Duration, every: Duration, mut step: F) -> Self
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send,
    {
        let (tx, mut rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(Instant::now() + first, every);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut rx => break,
                    _ = ticker.tick() => {
                        if !step().await {
                            break;
                        }
                    }
                }
            }
        });
        Self {
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Tells the task to stop and waits for it to end.
    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
