//! The replica router's shared state, [`Inner`]: what [`ReplicaRouter`](crate::ReplicaRouter)
//! reads from and what the checking task (`check.rs`) updates. Its own file so that the router
//! and the checks both read it and neither imports the other's file for it.

use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use sqlx::{Postgres, Row};

use crate::handle::MonitoredPool;
use crate::replica::config::ReplicaConfig;
use crate::replica::lsn::{Lsn, WalSizes};
use crate::replica::state::{LagClock, Replica};

/// The router's counters, read into [`RouterStats`](crate::RouterStats).
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) replica_reads: AtomicU64,
    pub(crate) primary_reads: AtomicU64,
    pub(crate) catch_up_waits: AtomicU64,
    pub(crate) catch_up_fallbacks: AtomicU64,
    pub(crate) catch_up_wait_micros: AtomicU64,
    pub(crate) failovers: AtomicU64,
}

/// What the router and its checking task share: the replicas, the primary's read handle and
/// the lag clock the checks feed, and the router's own write handle, round-robin cursor and
/// counters.
pub(crate) struct Inner {
    pub(crate) config: ReplicaConfig,
    pub(crate) replicas: Vec<Replica>,
    pub(crate) system_id: String,
    pub(crate) primary_read: MonitoredPool<Postgres>,
    pub(crate) write: MonitoredPool<Postgres>,
    pub(crate) wal: WalSizes,
    pub(crate) clock: Mutex<LagClock>,
    pub(crate) next: AtomicUsize,
    pub(crate) counters: Counters,
    pub(crate) started: Instant,
}

impl Inner {
    pub(crate) fn check_timeout(&self) -> Duration {
        (self.config.check_interval() * 4).max(Duration::from_secs(1))
    }

    pub(crate) fn clock(&self) -> MutexGuard<'_, LagClock> {
        self.clock.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The primary's insert position, normalized (see [`Lsn::normalized`]).
    pub(crate) async fn primary_lsn(&self, timeout: Duration) -> Option<Lsn> {
        // A simple query (no named prepared statement), as the checks: see `check::identity`.
        let q = sqlx::raw_sql("SELECT pg_current_wal_insert_lsn()::text")
            .fetch_one(self.primary_read.inner());
        match tokio::time::timeout(timeout, q).await {
            Ok(Ok(row)) => row
                .try_get::<String, _>(0)
                .ok()
                .as_deref()
                .and_then(Lsn::parse)
                .map(|l| l.normalized(self.wal.block, self.wal.segment)),
            _ => None,
        }
    }
}
