//! [`MonitoredTransaction`]: sqlx's transaction shape over an [`ObservedConnection`], with its
//! `BEGIN`, `COMMIT` and `ROLLBACK` reported like any other statement.

use std::borrow::Cow;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::{Database, TransactionManager};

use crate::classify::{loses_commit_outcome, CommitOutcomeUnknown};
use crate::connection::{MonitoredConnection, ObservedConnection};
use crate::pgbouncer::wrap;

// `begin` of the connections lives here, beside the transaction it makes, so that
// connection.rs need not import this file (which imports it).
impl<DB: Database> ObservedConnection<DB> {
    /// Starts a transaction (or a savepoint, inside one) on this connection, like
    /// [`sqlx::Connection::begin`]; its `BEGIN`, statements and end are reported.
    ///
    /// # Errors
    /// The error of `BEGIN`.
    pub async fn begin(&mut self) -> Result<MonitoredTransaction<'_, DB>, sqlx::Error> {
        MonitoredTransaction::begin_borrowed(self).await
    }
}

impl<DB: Database> MonitoredConnection<DB> {
    /// Starts a transaction on this connection, like [`sqlx::Connection::begin`]; its
    /// `BEGIN`, statements and end are reported.
    ///
    /// # Errors
    /// The error of `BEGIN`.
    pub async fn begin(&mut self) -> Result<MonitoredTransaction<'_, DB>, sqlx::Error> {
        ObservedConnection::begin(&mut **self).await
    }
}

/// The connection a transaction runs on: its own (from
/// [`MonitoredPool::begin`](crate::MonitoredPool::begin)) or a borrowed one (from
/// `conn.begin()`, or a savepoint inside a transaction), as sqlx's `MaybePoolConnection`.
enum Slot<'c, DB: Database> {
    Owned(ObservedConnection<DB>),
    Borrowed(&'c mut ObservedConnection<DB>),
}

impl<DB: Database> Deref for Slot<'_, DB> {
    type Target = ObservedConnection<DB>;
    fn deref(&self) -> &Self::Target {
        match self {
            Self::Owned(c) => c,
            Self::Borrowed(c) => c,
        }
    }
}

impl<DB: Database> DerefMut for Slot<'_, DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        match self {
            Self::Owned(c) => c,
            Self::Borrowed(c) => c,
        }
    }
}

/// An in-progress transaction (or savepoint) whose every statement is reported, used as
/// sqlx's [`Transaction`](sqlx::Transaction) is.
///
/// `&mut *tx` is an [`Executor`](sqlx::Executor) (an [`ObservedConnection`]: each statement
/// timed into the handle's [`QueryObserver`](crate::QueryObserver)); `tx.commit()` and
/// `tx.rollback()` end it and are reported as `COMMIT` and `ROLLBACK`; `tx.begin()` opens a
/// savepoint (reported as `SAVEPOINT _sqlx_savepoint_N`, ended by `RELEASE SAVEPOINT …` or
/// `ROLLBACK TO SAVEPOINT …`, sqlx's own statements). `&mut **tx` is the driver connection,
/// whose statements are not observed.
///
/// Dropped while still open, it is rolled back as sqlx's `Transaction` is: the `ROLLBACK` is
/// queued on the connection and runs on its next use, at the latest when it goes back to the
/// pool. It is reported at the drop, with an elapsed time of zero (it has not run yet).
///
/// A transaction from [`MonitoredPool::begin`](crate::MonitoredPool::begin) owns its
/// connection: the pool monitor counts it as held (and as leaked past the threshold, with
/// the site of `begin`) until the transaction ends.
#[must_use = "a transaction not committed is rolled back when dropped"]
pub struct MonitoredTransaction<'c, DB: Database> {
    conn: Slot<'c, DB>,
    open: bool,
}

impl<'c, DB: Database> MonitoredTransaction<'c, DB> {
    pub(crate) async fn begin_owned(conn: ObservedConnection<DB>) -> Result<Self, sqlx::Error> {
        Self::start(Slot::Owned(conn)).await
    }

    pub(crate) async fn begin_borrowed(
        conn: &'c mut ObservedConnection<DB>,
    ) -> Result<Self, sqlx::Error> {
        Self::start(Slot::Borrowed(conn)).await
    }

    async fn start(mut conn: Slot<'c, DB>) -> Result<Self, sqlx::Error> {
        let (raw, reporter) = conn.split();
        let depth = DB::TransactionManager::get_transaction_depth(raw);
        let statement = wrap::begin_statement(reporter.shared.pooling.as_ref(), depth);
        reporter
            .run(
                &begin_sql(depth),
                DB::TransactionManager::begin(raw, statement),
            )
            .await?;
        Ok(Self { conn, open: true })
    }

    /// Opens a savepoint inside this transaction, as sqlx's `tx.begin()` does; reported as
    /// `SAVEPOINT _sqlx_savepoint_N`, and what runs in it is reported too.
    ///
    /// # Errors
    /// The error of `SAVEPOINT`.
    pub async fn begin(&mut self) -> Result<MonitoredTransaction<'_, DB>, sqlx::Error> {
        MonitoredTransaction::begin_borrowed(&mut self.conn).await
    }

    /// Commits the transaction (or releases the savepoint); reported as `COMMIT`, or for a
    /// savepoint as `RELEASE SAVEPOINT _sqlx_savepoint_N`.
    ///
    /// # Errors
    /// The error of `COMMIT` (or `RELEASE SAVEPOINT`); the transaction is then rolled back
    /// when dropped. When the connection broke during `COMMIT` (an I/O error, the server's
    /// `57P01`/`57P02`), the transaction may have committed before the reply was lost: the
    /// error is then a [`CommitOutcomeUnknown`](crate::CommitOutcomeUnknown) (SQLSTATE
    /// `08007`), which [`is_transient`](crate::is_transient) and
    /// [`retry`](crate::retry::retry) never run again. A savepoint's release is not a commit:
    /// its errors are returned as they are (the enclosing transaction is lost, not committed).
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        let depth = DB::TransactionManager::get_transaction_depth(self.conn.split().0);
        match self.end(commit_sql, DB::TransactionManager::commit).await {
            Err(e) if depth <= 1 && loses_commit_outcome(&e) => Err(CommitOutcomeUnknown::wrap(e)),
            other => other,
        }
    }

    /// Rolls the transaction back (or back to the savepoint); reported as `ROLLBACK`, or for
    /// a savepoint as `ROLLBACK TO SAVEPOINT _sqlx_savepoint_N`.
    ///
    /// # Errors
    /// The error of `ROLLBACK` (or `ROLLBACK TO SAVEPOINT`).
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.end(rollback_sql, DB::TransactionManager::rollback)
            .await
    }

    /// Ends the transaction with `end` (the driver's commit or rollback), reported as the
    /// statement `sql_at` names for the transaction's depth.
    async fn end<S, E>(mut self, sql_at: S, end: E) -> Result<(), sqlx::Error>
    where
        S: FnOnce(usize) -> Cow<'static, str>,
        E: for<'x> FnOnce(&'x mut DB::Connection) -> BoxFuture<'x, Result<(), sqlx::Error>>,
    {
        let (raw, reporter) = self.conn.split();
        let sql = sql_at(DB::TransactionManager::get_transaction_depth(raw));
        reporter.run(&sql, end(raw)).await?;
        self.open = false;
        Ok(())
    }

    /// How long the connection under the transaction has been held.
    pub fn held_for(&self) -> Duration {
        self.conn.held_for()
    }
}

impl<DB: Database> fmt::Debug for MonitoredTransaction<'_, DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredTransaction")
            .field("open", &self.open)
            .field("held_for", &self.held_for())
            .finish()
    }
}

impl<DB: Database> Deref for MonitoredTransaction<'_, DB> {
    type Target = ObservedConnection<DB>;
    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl<DB: Database> DerefMut for MonitoredTransaction<'_, DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

impl<DB: Database> Drop for MonitoredTransaction<'_, DB> {
    fn drop(&mut self) {
        if self.open {
            let (raw, reporter) = self.conn.split();
            let sql = rollback_sql(DB::TransactionManager::get_transaction_depth(raw));
            // Queued, as sqlx's `Transaction` does: it runs on the connection's next use, at
            // the latest when the pool pings it on release (an owned connection goes back
            // right after this, when the fields drop).
            DB::TransactionManager::start_rollback(raw);
            reporter.observe(&reporter.span(), &sql, Duration::ZERO, 0, None);
        }
    }
}

// sqlx's transaction managers (PostgreSQL and SQLite alike) run these texts; the observer
// hears the same ones. `depth` is the transaction depth before the statement.

/// `BEGIN`, or the savepoint sqlx opens inside a transaction.
pub(crate) fn begin_sql(depth: usize) -> Cow<'static, str> {
    if depth == 0 {
        Cow::Borrowed("BEGIN")
    } else {
        Cow::Owned(format!("SAVEPOINT _sqlx_savepoint_{depth}"))
    }
}

fn commit_sql(depth: usize) -> Cow<'static, str> {
    if depth <= 1 {
        Cow::Borrowed("COMMIT")
    } else {
        Cow::Owned(format!("RELEASE SAVEPOINT _sqlx_savepoint_{}", depth - 1))
    }
}

fn rollback_sql(depth: usize) -> Cow<'static, str> {
    if depth <= 1 {
        Cow::Borrowed("ROLLBACK")
    } else {
        Cow::Owned(format!(
            "ROLLBACK TO SAVEPOINT _sqlx_savepoint_{}",
            depth - 1
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reported_texts_are_sqlx_own() {
        assert_eq!(begin_sql(0), "BEGIN");
        assert_eq!(begin_sql(1), "SAVEPOINT _sqlx_savepoint_1");
        assert_eq!(commit_sql(1), "COMMIT");
        assert_eq!(commit_sql(2), "RELEASE SAVEPOINT _sqlx_savepoint_1");
        assert_eq!(rollback_sql(1), "ROLLBACK");
        assert_eq!(rollback_sql(3), "ROLLBACK TO SAVEPOINT _sqlx_savepoint_2");
    }
}
