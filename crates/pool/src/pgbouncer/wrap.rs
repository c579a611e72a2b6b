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
use sqlx::{Database, Either, Execute, Executor, TransactionManager};

use crate::observer::Shared;

/// What a driver's `fetch_many` yields.
type Item<DB> = Result<Either<<DB as Database>::QueryResult, <DB as Database>::Row>, sqlx::Error>;

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

    /// `raw.fetch_many(query)` on the unnamed statement; outside a transaction, inside one of
    /// its own. Streams: rows reach the caller as they come (through a channel of 8).
    pub(crate) fn fetch_many<'e, 'q: 'e, DB, E>(
        &'e self,
        raw: &'e mut DB::Connection,
        query: E,
    ) -> BoxStream<'e, Item<DB>>
    where
        DB: Database,
        for<'x> &'x mut DB::Connection: Executor<'x, Database = DB>,
        E: 'q + Execute<'q, DB>,
    {
        let query = Unnamed(query);
        if DB::TransactionManager::get_transaction_depth(raw) > 0 {
            return raw.fetch_many(query);
        }
        let (mut tx, rx) = futures::channel::mpsc::channel(8);
        let producer = async move {
            let mut own = OwnTransaction::<DB> { conn: raw };
            if let Err(e) =
                DB::TransactionManager::begin(own.conn, Some(self.begin_statement())).await
            {
                let _ = tx.send(Err(e)).await;
                return;
            }
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
        };
        let producer = producer.into_stream().filter_map(|()| async { None });
        Box::pin(futures::stream::select(producer, rx))
    }

    /// `raw.fetch_optional(query)` on the unnamed statement; outside a transaction, inside
    /// one of its own.
    pub(crate) fn fetch_optional<'e, 'q: 'e, DB, E>(
        &'e self,
        raw: &'e mut DB::Connection,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
    where
        DB: Database,
        for<'x> &'x mut DB::Connection: Executor<'x, Database = DB>,
        E: 'q + Execute<'q, DB>,
    {
        let query = Unnamed(query);
        if DB::TransactionManager::get_transaction_depth(raw) > 0 {
            return raw.fetch_optional(query);
        }
        async move {
            let mut own = OwnTransaction::<DB> { conn: raw };
            DB::TransactionManager::begin(own.conn, Some(self.begin_statement())).await?;
            let result = (&mut *own.conn).fetch_optional(query).await;
            own.end(result.is_err()).await?;
            result
        }
        .boxed()
    }
}

/// The transaction a single statement runs in; rolled back (queued, as sqlx's `Transaction`
/// does on drop) when the statement's future or stream is dropped before it ended.
struct OwnTransaction<'a, DB: Database> {
    conn: &'a mut DB::Connection,
}

impl<DB: Database> OwnTransaction<'_, DB> {
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

/// A statement run on the unnamed prepared statement: never named, never cached.
struct Unnamed<E>(E);

impl<'q, DB: Database, E: Execute<'q, DB>> Execute<'q, DB> for Unnamed<E> {
    fn sql(&self) -> &'q str {
        self.0.sql()
    }
    fn statement(&self) -> Option<&DB::Statement<'q>> {
        self.0.statement()
    }
    fn take_arguments(&mut self) -> Result<Option<DB::Arguments<'q>>, BoxDynError> {
        self.0.take_arguments()
    }
    fn persistent(&self) -> bool {
        false
    }
}

// The handle's executors and transactions call these three with their handle's shared state:
// one line each there, the rules here.

/// `raw.fetch_many(query)`, under the handle's transaction pooling when it has one.
pub(crate) fn fetch_many<'e, 'q: 'e, DB, E>(
    shared: &'e Shared,
    raw: &'e mut DB::Connection,
    query: E,
) -> BoxStream<'e, Item<DB>>
where
    DB: Database,
    for<'x> &'x mut DB::Connection: Executor<'x, Database = DB>,
    E: 'q + Execute<'q, DB>,
{
    match &shared.pooling {
        Some(pooling) => pooling.fetch_many::<DB, E>(raw, query),
        None => raw.fetch_many(query),
    }
}

/// `raw.fetch_optional(query)`, under the handle's transaction pooling when it has one.
pub(crate) fn fetch_optional<'e, 'q: 'e, DB, E>(
    shared: &'e Shared,
    raw: &'e mut DB::Connection,
    query: E,
) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
where
    DB: Database,
    for<'x> &'x mut DB::Connection: Executor<'x, Database = DB>,
    E: 'q + Execute<'q, DB>,
{
    match &shared.pooling {
        Some(pooling) => pooling.fetch_optional::<DB, E>(raw, query),
        None => raw.fetch_optional(query),
    }
}

/// The statement that begins a transaction at `depth` (sqlx's own when `None`): under
/// transaction pooling, `BEGIN` with the timeouts `SET LOCAL`; a savepoint is sqlx's.
pub(crate) fn begin_statement(shared: &Shared, depth: usize) -> Option<Cow<'static, str>> {
    match &shared.pooling {
        Some(pooling) if depth == 0 => Some(pooling.begin_statement()),
        _ => None,
    }
}
