//! The periodic summary: a thread that runs a tick at an interval until its handle stops it.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

/// Stops the summary thread of [`QueryLogger::spawn_summary`](crate::QueryLogger::spawn_summary)
/// when dropped.
#[derive(Debug)]
pub struct SummaryHandle {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl SummaryHandle {
    /// Starts a thread named `querylog-summary` that calls `tick` every `interval` until the
    /// handle is dropped or stopped.
    pub(crate) fn spawn(
        interval: Duration,
        tick: impl Fn() + Send + 'static,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("querylog-summary".into())
            .spawn(move || {
                // Stops when the handle sends or is dropped (disconnected).
                while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(interval) {
                    tick();
                }
            })?;
        Ok(Self {
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            // The thread only logs; if it panicked there is nothing to recover.
            let _ = t.join();
        }
    }
}

impl Drop for SummaryHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}
