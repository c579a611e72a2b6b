//! The observer seam and what every monitored connection carries back to its handle: the
//! shared state (counters, histograms, held connections) and the [`QueryObserver`].
//!
//! Its own file so that the handle, the connections and the transactions all import it and
//! none of them imports another in a circle.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::stats::{micros, State};

/// Sees every statement run through the handle: `&MonitoredPool` as an
/// [`Executor`](sqlx::Executor), and `&mut *conn` / `&mut *tx` on what
/// [`acquire`](crate::MonitoredPool::acquire) and [`begin`](crate::MonitoredPool::begin) return, the
/// transaction's own `BEGIN`, `COMMIT` and `ROLLBACK` included.
///
/// This is the seam a query logger plugs into; the pool crate knows nothing of the logger.
/// `sql` is the statement text as written by the host (with placeholders, never bind values);
/// `elapsed` is the statement's time on its connection, without the wait for the connection
/// (that is the acquire histogram); `rows` is the rows returned or, for a statement that
/// returns none, the rows affected.
pub trait QueryObserver: Send + Sync {
    /// Called once per statement, after it finished, failed or its stream was dropped.
    fn on_query(&self, sql: &str, elapsed: Duration, rows: u64, error: Option<&sqlx::Error>);
}

pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) leak_threshold: Option<Duration>,
    pub(crate) benchmark: bool,
    /// PgBouncer's transaction mode: how statements run (`pgbouncer/wrap.rs`); `None` direct.
    pub(crate) pooling: Option<crate::pgbouncer::TransactionPooling>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic (plain counters and maps).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where a statement's time goes: the benchmark histogram of the shared state and the
/// handle's observer. Every monitored connection carries the one of the handle it came from.
#[derive(Clone)]
pub(crate) struct Reporter {
    pub(crate) shared: Arc<Shared>,
    pub(crate) observer: Option<Arc<dyn QueryObserver>>,
}

impl Reporter {
    /// Reports one finished statement.
    pub(crate) fn observe(
        &self,
        sql: &str,
        elapsed: Duration,
        rows: u64,
        error: Option<&sqlx::Error>,
    ) {
        if self.shared.benchmark {
            self.shared.lock().query.saturating_record(micros(elapsed));
        }
        if let Some(o) = &self.observer {
            o.on_query(sql, elapsed, rows, error);
        }
    }
}
