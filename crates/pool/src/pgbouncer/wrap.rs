//! [`TransactionPooling`]: how the handle runs statements when PgBouncer hands out server
//! connections per transaction. Each statement runs on the unnamed statement; one outside a
//! transaction runs inside one of its own, begun with the timeouts `SET LOCAL` and committed
//! after (rolled back when it failed or was dropped), so its parse and bind reach the same
//! server connection and its timeouts hold.

use std::borrow::Cow;

use futures::future::{BoxFuture, FutureExt};
use futures::stream::{BoxStream, StreamExt};
use futures::SinkExt;
use sqlx::error::BoxDynError;
use sqlx::{Database, Execute, Executor, TransactionManager};

use crate::stream::{self, Item};

/// The statement-running rules of PgBouncer's transaction mode, shared by a handle's
/// connections.
#[derive(Debug)]
pub(crate) struct TransactionPooling {
    /// `BEGIN; SET LOCAL statement_timeout = …; SET LOCAL idle_in_transaction_session_timeout = …`
    begin: Cow<'static, str>,
}

impl TransactionPooling {
    pub(crate) fn new(begin: Cow<'static, str>) -> Self {
        Self { begin }
    }

    /// The statement that begins a transaction (sqlx runs it as one simple query).
    pub(crate) fn begin_statement(&self) -> Cow<'static, str> {
        self.begin.clone()
    }
}

/// sqlx's `prepare_with` and `describe` always create a *named* server-side statement
/// (`sqlx_s_N`, never closed), whatever the statement cache says: under transaction pooling
/// another client's connection would meet it (42P05, "prepared statement already exists"),
/// so with `pooling` they are refused before any round trip.
pub(crate) fn refuse_named(pooling: Option<&TransactionPooling>) -> Result<(), sqlx::Error> {
    match pooling {
        None => Ok(()),
        Some(_) => Err(sqlx::Error::Configuration(
            "prepare/describe create a named prepared statement, which PgBouncer's \
             transaction pooling (DB_PGBOUNCER=transaction) hands to other clients: run the \
             query itself instead (it runs unnamed)"
                .into(),
        )),
    }
}

/// One statement as the handle runs it on a driver connection, under its handle's
/// transaction pooling (`Shared::pooling`): `query` as given without transaction pooling;
/// under it on the unnamed statement and, outside a transaction, in one of its own. The
/// handle's executors build one per statement and call [`fetch_many`](Self::fetch_many) or
/// [`fetch_optional`](Self::fetch_optional): one line each there, the rules here.
pub(crate) struct Run<'e, DB: Database, E> {
    raw: &'e mut DB::Connection,
    query: Unnamed<E>,
    /// The pooling whose `BEGIN; SET LOCAL …` opens the statement's own transaction; `None`
    /// when it runs directly (no transaction pooling, or inside a transaction already).
    own: Option<&'e TransactionPooling>,
}

impl<'e, 'q: 'e, DB, E> Run<'e, DB, E>
where
    DB: Database,
    for<'x> &'x mut DB::Connection: Executor<'x, Database = DB>,
    E: 'q + Execute<'q, DB>,
{
    /// `query` on `raw`, under `pooling` when the handle has it.
    pub(crate) fn new(
        pooling: Option<&'e TransactionPooling>,
        raw: &'e mut DB::Connection,
        query: E,
    ) -> Self {
        let own = pooling.filter(|_| DB::TransactionManager::get_transaction_depth(raw) == 0);
        let query = Unnamed {
            query,
            unnamed: pooling.is_some(),
        };
        Self { raw, query, own }
    }

    /// `raw.fetch_many(query)`. Streams: in a transaction of its own, rows reach the caller
    /// as they come (through a channel of 8).
    pub(crate) fn fetch_many(self) -> BoxStream<'e, Item<DB>> {
        let Self { raw, query, own } = self;
        let Some(pooling) = own else {
            return raw.fetch_many(query);
        };
        stream::produced(move |mut tx| async move {
            let mut own = match OwnTransaction::<DB>::begin(raw, pooling).await {
                Ok(own) => own,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let mut failed = false;
            {
                let mut rows = (&mut *own.conn).fetch_many(query);
                while let Some(item) = rows.next().await {
                    failed |= item.is_err();
                    if tx.send(item).await.is_err() {
                        return; // the caller dropped the stream: `own` rolls back
                    }
                }
            }
            if let Err(e) = own.end(failed).await {
                let _ = tx.send(Err(e)).await;
            }
        })
    }

    /// `raw.fetch_optional(query)`.
    pub(crate) fn fetch_optional(self) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>> {
        let Self { raw, query, own } = self;
        let Some(pooling) = own else {
            return raw.fetch_optional(query);
        };
        async move {
            let mut own = OwnTransaction::<DB>::begin(raw, pooling).await?;
            let result = (&mut *own.conn).fetch_optional(query).await;
            own.end(result.is_err()).await?;
            result
        }
        .boxed()
    }
}

/// The statement that begins a transaction at `depth` (sqlx's own when `None`): under
/// transaction pooling, `BEGIN` with the timeouts `SET LOCAL`; a savepoint is sqlx's.
pub(crate) fn begin_statement(
    pooling: Option<&TransactionPooling>,
    depth: usize,
) -> Option<Cow<'static, str>> {
    pooling
        .filter(|_| depth == 0)
        .map(TransactionPooling::begin_statement)
}

/// The transaction a single statement runs in; rolled back (queued, as sqlx's `Transaction`
/// does on drop) when the statement's future or stream is dropped before it ended.
struct OwnTransaction<'a, DB: Database> {
    conn: &'a mut DB::Connection,
}

impl<'a, DB: Database> OwnTransaction<'a, DB> {
    /// Begins it on `conn` with `pooling`'s `BEGIN; SET LOCAL …`.
    async fn begin(
        conn: &'a mut DB::Connection,
        pooling: &TransactionPooling,
    ) -> Result<Self, sqlx::Error> {
        let own = Self { conn };
        DB::TransactionManager::begin(own.conn, Some(pooling.begin_statement())).await?;
        Ok(own)
    }

    /// `COMMIT`, or `ROLLBACK` when the statement failed (PostgreSQL would roll back anyway).
    async fn end(&mut self, failed: bool) -> Result<(), sqlx::Error> {
        if failed {
            DB::TransactionManager::rollback(self.conn).await
        } else {
            DB::TransactionManager::commit(self.conn).await
        }
    }
}

impl<DB: Database> Drop for OwnTransaction<'_, DB> {
    fn drop(&mut self) {
        if DB::TransactionManager::get_transaction_depth(self.conn) > 0 {
            DB::TransactionManager::start_rollback(self.conn);
        }
    }
}

/// A statement as the handle runs it: under transaction pooling on the unnamed prepared
/// statement (never named, never cached), otherwise as the host wrote it.
struct Unnamed<E> {
    query: E,
    unnamed: bool,
}

impl<'q, DB: Database, E: Execute<'q, DB>> Execute<'q, DB> for Unnamed<E> {
    fn sql(&self) -> &'q str {
        self.query.sql()
    }
    fn statement(&self) -> Option<&DB::Statement<'q>> {
        self.query.statement()
    }
    fn take_arguments(&mut self) -> Result<Option<DB::Arguments<'q>>, BoxDynError> {
        self.query.take_arguments()
    }
    fn persistent(&self) -> bool {
        !self.unnamed && self.query.persistent()
    }
}
