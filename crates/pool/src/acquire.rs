//! [`sqlx::Acquire`] for the handle and its connections, so functions generic over `Acquire`
//! take them. The trait fixes the shapes: its connection derefs to the driver connection and
//! its `begin` returns sqlx's own [`Transaction`], so what such a function runs is observed
//! only in part; each impl says which part.

use std::panic::Location;

use futures::future::BoxFuture;
use sqlx::{Acquire, Database, Transaction, TransactionManager};

use crate::connection::{MonitoredConnection, ObservedConnection};
use crate::handle::MonitoredPool;
use crate::pgbouncer::wrap;
use crate::transaction::{begin_sql, MonitoredTransaction};

/// `&MonitoredPool` where a function takes `impl Acquire`, as `&sqlx::Pool` is.
///
/// For full instrumentation call [`MonitoredPool::begin`] and [`MonitoredPool::acquire`]
/// instead: there every statement, `BEGIN`, `COMMIT` and `ROLLBACK` is reported and the hold
/// is counted. Through this generic path:
///
/// - **`acquire()`** goes through the monitored path: the wait, the acquire histogram, the
///   counters, and the hold (the monitor's `held` and leak figures, with the `file:line` of
///   the call) are counted until the returned [`ObservedConnection`] is dropped. Statements a
///   generic function runs on it, written `&mut *conn`, run on the driver connection (the
///   trait says that is what `*conn` is) and are **not** reported to the observer.
/// - **`begin()`** acquires through the monitored path (the wait, the acquire histogram and
///   the counters are counted) and reports `BEGIN`, timed, to the observer. It must return
///   sqlx's own `Transaction`, which owns the connection from then on and gives nothing back
///   when it ends, so the statements inside it, its `COMMIT` or `ROLLBACK`, and the hold are
///   **not** observed: the connection leaves the `held` and leak figures when `BEGIN`
///   succeeds and no hold time is recorded for it. It still shows in the pool's size and
///   idle numbers (busy) like any connection.
impl<'c, DB: Database> Acquire<'c> for &'c MonitoredPool<DB> {
    type Database = DB;
    type Connection = ObservedConnection<DB>;

    #[track_caller]
    fn acquire(self) -> BoxFuture<'c, Result<Self::Connection, sqlx::Error>> {
        Box::pin(self.acquire_sqlx(Some(Location::caller())))
    }

    #[track_caller]
    fn begin(self) -> BoxFuture<'c, Result<Transaction<'c, DB>, sqlx::Error>> {
        let acquire = self.acquire_sqlx(Some(Location::caller()));
        Box::pin(async move {
            let (conn, reporter, hold) = acquire.await?.into_parts();
            // `Transaction::begin` is public but hidden in sqlx's docs; sqlx's own
            // `Acquire for &Pool` starts its transaction the same way. The statement is the
            // handle's own `begin`'s (under PgBouncer's transaction pooling, with the
            // timeouts `SET LOCAL`).
            let statement = wrap::begin_statement(reporter.shared.pooling.as_ref(), 0);
            let result = reporter
                .run(&begin_sql(0), Transaction::begin(conn, statement))
                .await;
            // On success the transaction owns the connection; on failure it went back to
            // the pool. Either way the handle can no longer follow it.
            hold.untrack();
            result
        })
    }
}

/// `&mut *conn` or `&mut *tx` where a function takes `impl Acquire`, as sqlx's `&mut
/// PgConnection` is. `acquire()` lends the driver connection (statements on it are not
/// reported); `begin()` reports its `BEGIN` (or `SAVEPOINT`), and returns sqlx's own
/// `Transaction`, whose statements and end are not reported. The hold stays counted: the
/// connection is the caller's. [`ObservedConnection::begin`] reports all of it.
impl<'c, DB: Database> Acquire<'c> for &'c mut ObservedConnection<DB> {
    type Database = DB;
    type Connection = &'c mut DB::Connection;

    fn acquire(self) -> BoxFuture<'c, Result<Self::Connection, sqlx::Error>> {
        Box::pin(futures::future::ok(&mut **self))
    }

    fn begin(self) -> BoxFuture<'c, Result<Transaction<'c, DB>, sqlx::Error>> {
        let (raw, reporter) = self.split();
        Box::pin(async move {
            let depth = DB::TransactionManager::get_transaction_depth(raw);
            let statement = wrap::begin_statement(reporter.shared.pooling.as_ref(), depth);
            reporter
                .run(&begin_sql(depth), Transaction::begin(raw, statement))
                .await
        })
    }
}

/// `Acquire` for `&mut $handle` as for the `&mut ObservedConnection` it derefs to, so
/// `&mut handle` works where `&mut *handle` does.
macro_rules! acquire_as_observed {
    ($(#[$doc:meta])* $handle:ty) => {
        $(#[$doc])*
        impl<'c, DB: Database> Acquire<'c> for &'c mut $handle {
            type Database = DB;
            type Connection = &'c mut DB::Connection;

            fn acquire(self) -> BoxFuture<'c, Result<Self::Connection, sqlx::Error>> {
                Acquire::acquire(&mut **self)
            }

            fn begin(self) -> BoxFuture<'c, Result<Transaction<'c, DB>, sqlx::Error>> {
                Acquire::begin(&mut **self)
            }
        }
    };
}

acquire_as_observed!(
    /// As `&mut ObservedConnection` (what `&mut *conn` is), so `&mut conn` works too, as with
    /// sqlx's `&mut PoolConnection`.
    MonitoredConnection<DB>
);

acquire_as_observed!(
    /// As `&mut ObservedConnection` (what `&mut *tx` is), so `&mut tx` works too, as with sqlx's
    /// `&mut Transaction`; `begin()` opens a savepoint.
    MonitoredTransaction<'_, DB>
);
