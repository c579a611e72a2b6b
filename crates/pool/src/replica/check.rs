//! The replica checks: what the primary and each replica say about themselves (recovery,
//! system identifier, WAL positions), the verdict on a replica, and the task that checks
//! every replica on an interval so that a replica that went down, fell behind or left
//! recovery is taken out, and put back when it is fit again.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use sqlx::{PgPool, Row};

use crate::classify::error_kind;
use crate::replica::inner::Inner;
use crate::replica::lsn::Lsn;
use crate::replica::state::{Lag, Replica, Unfit};
use crate::ticker::Ticker;

/// What a server says about itself.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) in_recovery: bool,
    pub(crate) system_id: String,
    /// The replay position on a standby, the insert position on a primary.
    pub(crate) lsn: Option<Lsn>,
}

const IDENTITY_SQL: &str = "SELECT pg_is_in_recovery(), \
     (SELECT system_identifier FROM pg_control_system())::text, \
     (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
      ELSE pg_current_wal_insert_lsn() END)::text";

/// Asks `pool` (outside the monitored path: checks are not the host's reads) within `timeout`.
/// The checks run as simple queries ([`sqlx::raw_sql`]): no named prepared statement, which a
/// PgBouncer in transaction pooling may route to another server connection.
pub(crate) async fn identity(pool: &PgPool, timeout: Duration) -> Result<Identity, Unfit> {
    let q = sqlx::raw_sql(IDENTITY_SQL).fetch_one(pool);
    let row = match tokio::time::timeout(timeout, q).await {
        Err(_) => {
            return Err(Unfit::Unreachable {
                reason: format!("no answer within {} ms", timeout.as_millis()),
            })
        }
        Ok(Err(e)) => {
            return Err(Unfit::Unreachable {
                reason: error_kind(&e),
            })
        }
        Ok(Ok(row)) => row,
    };
    let parsed = (|| -> Result<Identity, sqlx::Error> {
        Ok(Identity {
            in_recovery: row.try_get(0)?,
            system_id: row.try_get(1)?,
            lsn: row
                .try_get::<Option<String>, _>(2)?
                .as_deref()
                .and_then(Lsn::parse),
        })
    })();
    parsed.map_err(|e| Unfit::Unreachable {
        reason: error_kind(&e),
    })
}

/// The replay position of a replica now, or `None` when it does not answer within `timeout`.
pub(crate) async fn replay_position(pool: &PgPool, timeout: Duration) -> Option<Lsn> {
    let q = sqlx::raw_sql("SELECT pg_last_wal_replay_lsn()::text").fetch_one(pool);
    match tokio::time::timeout(timeout, q).await {
        Ok(Ok(row)) => row
            .try_get::<Option<String>, _>(0)
            .ok()
            .flatten()
            .as_deref()
            .and_then(Lsn::parse),
        _ => None,
    }
}

/// The verdict on a replica from what it said: `None` when it may take reads.
pub(crate) fn verdict(replica: &Identity, primary_system_id: &str) -> Option<Unfit> {
    if !replica.in_recovery {
        Some(Unfit::NotInRecovery)
    } else if replica.system_id != primary_system_id {
        Some(Unfit::OtherCluster)
    } else if replica.lsn.is_none() {
        Some(Unfit::NoReplay)
    } else {
        None
    }
}

/// One round: the primary's position, then every replica at once.
pub(crate) async fn check_all(inner: &Inner) {
    let timeout = inner.check_timeout();
    let now_primary = inner.primary_lsn(timeout).await;
    let now = Instant::now();
    if let Some(lsn) = now_primary {
        inner.clock().record(now, lsn);
    }
    let checks = inner.replicas.iter().map(|r| check_one(inner, r, timeout));
    futures::future::join_all(checks).await;
}

async fn check_one(inner: &Inner, replica: &Replica, timeout: Duration) {
    let failures = replica.failures();
    match identity(replica.pool.inner(), timeout).await {
        Err(unfit) => replica.set(Some(unfit), None),
        Ok(id) => match verdict(&id, &inner.system_id) {
            Some(unfit) => replica.set(Some(unfit), None),
            None => {
                let replay = id.lsn.unwrap_or_default();
                replica.saw_replay(replay);
                let (lag, exact) = match inner.clock().lag(Instant::now(), replica.replay()) {
                    Lag::Exact(lag) => (lag, true),
                    Lag::AtLeast(lag) => (lag, false),
                };
                let lag_ms = u64::try_from(lag.as_millis()).unwrap_or(u64::MAX);
                if lag > inner.config.max_lag() {
                    replica.set(Some(Unfit::Lagging { lag_ms }), Some(lag_ms));
                } else if exact {
                    replica.set_checked(None, Some(lag_ms), failures);
                }
                // Else behind every primary position sampled so far, by an unknown amount
                // (just after start, or with no sample): the replica stays as it is (one not
                // checked yet takes no reads) until a later check knows its lag.
            }
        },
    }
}

/// The checking task; it ends when told to, or when the router is gone.
pub(crate) struct Checker(Ticker);

impl Checker {
    pub(crate) fn spawn(inner: &Arc<Inner>) -> Self {
        let weak: Weak<Inner> = Arc::downgrade(inner);
        let every = inner.config.check_interval();
        Self(Ticker::spawn(Duration::ZERO, every, move || {
            let inner = weak.upgrade();
            async move {
                let Some(inner) = inner else { return false };
                check_all(&inner).await;
                true
            }
        }))
    }

    pub(crate) async fn stop(self) {
        self.0.stop().await;
    }
}
