//! Read replicas with read-your-writes: [`ReplicaRouter`] gives the write handle (the primary)
//! and a read handle (a streaming standby that is up, of the primary's cluster and under
//! `DB_REPLICA_MAX_LAG_MS` behind, or the primary), measures each replica's lag, takes a
//! replica out and puts it back by itself, and keeps reads after a write on a replica that
//! replayed it.
//!
//! One file per mechanism: `config.rs` (the variables), `lsn.rs` (WAL positions),
//! `scope.rs` (the read-your-writes scope and the write handle's observer), `state.rs` (each
//! replica's state and the lag clock), `check.rs` (the checks and their task), `inner.rs` (what
//! the router and the checks share), `error.rs` (what stops the start), `router.rs` (the
//! public router).

mod check;
mod config;
mod error;
mod inner;
mod lsn;
mod router;
mod scope;
mod state;

pub use config::ReplicaConfig;
pub use error::ReplicaError;
pub use lsn::Lsn;
pub use router::{Read, ReadTarget, ReplicaReport, ReplicaRouter, RouterStats};
pub use scope::{in_read_scope, note_write, read_your_writes, WriteToken};
pub use state::{ReplicaStatus, Unfit};
