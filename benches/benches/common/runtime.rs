//! The tokio runtime of the benches that compare a handle with the bare pool it wraps
//! (`benches/benches/pool.rs`, `benches/benches/instrumentation.rs`, each including this file
//! with `#[path]`): current-thread, so no cross-thread wake-up of the runtime's own falls on
//! one side of a comparison and not the other, and everything the handle adds to a statement
//! runs on the thread that calls `block_on`.

/// A current-thread runtime with its IO and time drivers.
pub fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}
