//! What every driver's sink shares: where its connections come from ([`ConnectionSource`]),
//! who sees its statements ([`StatementObserver`]), the one open transaction, and the count
//! of statements sent (the report's `queries`).

use std::borrow::Cow;
use std::future::Future;
use std::ops::DerefMut;
use std::time::Duration;

use tracing::Span;

use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool};
// The shared connection of the engines' sinks (features `postgres`, `sqlite`).
#[cfg(any(feature = "postgres", feature = "sqlite"))]
use {
    sqlx::query::Query,
    sqlx::{Execute, Executor, IntoArguments, TransactionManager},
    std::{fmt, sync::Arc, time::Instant},
};

/// Where a sink takes its connections: one per transaction (held from `BEGIN` to `COMMIT` or
/// `ROLLBACK`), and one per statement outside a transaction (dry runs). A [`Pool`] is one;
/// a caller with a pool of its own (a monitored one, counting waits and holds) implements it
/// over that pool, so the importer's connections count like any other work.
///
/// Cloned once per [fork](super::Sink::fork) of the sink.
pub trait ConnectionSource<DB: Database>: Clone + Send + Sync + 'static {
    /// A connection lent by the source: the driver connection behind a guard that gives it
    /// back on drop (sqlx's `PoolConnection`, or a caller's own guard).
    type Connection: DerefMut<Target = DB::Connection> + Send + 'static;

    /// Acquires a connection.
    fn acquire(&self) -> impl Future<Output = Result<Self::Connection, sqlx::Error>> + Send;

    /// The statement that begins a transaction on these connections, when it is not sqlx's
    /// `BEGIN`: a pool behind PgBouncer's transaction mode gives `BEGIN; SET LOCAL …` (the
    /// timeouts it cannot send at connect). When `Some`, the sink also runs every statement on
    /// the unnamed prepared statement and none outside a transaction (a statement outside one
    /// is wrapped in one), as PgBouncer's transaction mode needs. Default `None`.
    fn begin_statement(&self) -> Option<Cow<'static, str>> {
        None
    }
}

impl<DB: Database> ConnectionSource<DB> for Pool<DB> {
    type Connection = PoolConnection<DB>;

    fn acquire(&self) -> impl Future<Output = Result<Self::Connection, sqlx::Error>> + Send {
        Pool::acquire(self)
    }
}

/// Sees every statement a sink sends, once per statement (never per row): the lookups, the
/// inserts, and the transaction's `BEGIN`, `COMMIT` and `ROLLBACK` (reported with those texts).
///
/// `sql` is the statement as sent, with placeholders: bind values (the imported data) are
/// never passed. `elapsed` is its time on the connection, without the wait for one; `rows` is
/// the rows returned or, for a statement that returns none, the rows affected (0 when it
/// failed). A query logger plugs in here (it sanitises the text before keeping it).
pub trait StatementObserver: Send + Sync {
    /// Called once per statement, after it finished or failed.
    fn statement(&self, sql: &str, elapsed: Duration, rows: u64, error: Option<&sqlx::Error>);

    /// A span for a statement about to be sent, opened (not entered) in the current span,
    /// the `import` span; the sink hands it back to [`statement_in`](Self::statement_in)
    /// when the statement ends. Default: none (`Span::none()`).
    fn statement_span(&self) -> Span {
        Span::none()
    }

    /// Called once per statement instead of [`statement`](Self::statement) (which it calls
    /// by default), with the statement's span, still open.
    fn statement_in(
        &self,
        span: &Span,
        sql: &str,
        elapsed: Duration,
        rows: u64,
        error: Option<&sqlx::Error>,
    ) {
        let _ = span;
        self.statement(sql, elapsed, rows, error);
    }
}

/// The [`Sink`](super::Sink) transaction methods of a sink whose `conn` field is a [`Conn`].
#[cfg(any(feature = "postgres", feature = "sqlite"))]
macro_rules! transaction_on_conn {
    () => {
        async fn begin(&mut self) -> Result<(), sqlx::Error> {
            self.conn.begin().await
        }

        async fn commit(&mut self) -> Result<(), sqlx::Error> {
            self.conn.commit().await
        }

        async fn rollback(&mut self) -> Result<(), sqlx::Error> {
            self.conn.rollback().await
        }
    };
}
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) use transaction_on_conn;

/// The body of [`Conn::fetch`] and [`Conn::execute`]: `q` sent with the executor's `$send`,
/// in the open transaction or on a connection of its own, timed and observed (`$rows` counts
/// what came back). Under transaction pooling (a source with a `begin_statement`) it goes on
/// the unnamed statement, and one outside a transaction gets a transaction of its own.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
macro_rules! send {
    ($conn:ident, $q:ident, $send:ident, $rows:expr) => {{
        let pooled = $conn.source.begin_statement().is_some();
        let q = Persistent($q, !pooled);
        let own_tx = pooled && $conn.tx.is_none();
        if own_tx {
            $conn.begin().await?;
        }
        $conn.statements += 1;
        let mut sending = Sending::open(&$conn.observer);
        let sql = q.sql();
        let mut own = None;
        let conn = match &mut $conn.tx {
            Some(tx) => &mut **tx,
            None => &mut **own.insert($conn.source.acquire().await?),
        };
        sending.on_connection();
        let result = conn.$send(q).await;
        let rows = result.as_ref().map_or(0, $rows);
        sending.done(sql, rows, result.as_ref().err());
        if own_tx {
            $conn.end_own(result.is_ok()).await?;
        }
        result
    }};
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) struct Conn<DB: Database, S: ConnectionSource<DB>> {
    source: S,
    observer: Option<Arc<dyn StatementObserver>>,
    /// The connection of the open transaction.
    tx: Option<S::Connection>,
    statements: u64,
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl<DB: Database, S: ConnectionSource<DB>> fmt::Debug for Conn<DB, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("in_transaction", &self.tx.is_some())
            .field("observed", &self.observer.is_some())
            .field("statements", &self.statements)
            .finish_non_exhaustive()
    }
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl<DB: Database, S: ConnectionSource<DB>> Drop for Conn<DB, S> {
    /// A transaction still open is rolled back, as dropping sqlx's `Transaction` does (the
    /// rollback is sent before the connection is used again).
    fn drop(&mut self) {
        if let Some(conn) = &mut self.tx {
            DB::TransactionManager::start_rollback(conn);
        }
    }
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl<DB: Database, S: ConnectionSource<DB>> Conn<DB, S>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    pub(crate) fn new(source: S) -> Self {
        Self {
            source,
            observer: None,
            tx: None,
            statements: 0,
        }
    }

    pub(crate) fn set_observer(&mut self, observer: Arc<dyn StatementObserver>) {
        self.observer = Some(observer);
    }

    /// A new handle on the same source and observer, with no transaction and no statements
    /// yet.
    #[cfg(feature = "postgres")]
    pub(crate) fn fork(&self) -> Self {
        Self {
            source: self.source.clone(),
            observer: self.observer.clone(),
            tx: None,
            statements: 0,
        }
    }

    pub(crate) fn statements(&self) -> u64 {
        self.statements
    }

    /// Runs `q` in the open transaction, or on a connection of its own when there is none.
    pub(crate) async fn fetch<'q, A>(
        &mut self,
        q: Query<'q, DB, A>,
    ) -> Result<Vec<DB::Row>, sqlx::Error>
    where
        A: 'q + IntoArguments<'q, DB>,
    {
        send!(self, q, fetch_all, |rows: &Vec<_>| rows.len() as u64)
    }

    /// Runs `q` like [`Conn::fetch`], returning the driver's result (rows affected).
    #[cfg(feature = "postgres")]
    pub(crate) async fn execute<'q, A>(
        &mut self,
        q: Query<'q, DB, A>,
    ) -> Result<DB::QueryResult, sqlx::Error>
    where
        A: 'q + IntoArguments<'q, DB>,
        DB::QueryResult: RowsAffected,
    {
        send!(self, q, execute, RowsAffected::rows_affected)
    }

    pub(crate) async fn begin(&mut self) -> Result<(), sqlx::Error> {
        // A transaction left open is rolled back, as replacing sqlx's `Transaction` did.
        if let Some(mut old) = self.tx.take() {
            DB::TransactionManager::start_rollback(&mut old);
        }
        self.statements += 1;
        let mut conn = self.source.acquire().await?;
        let sending = Sending::open(&self.observer);
        let result = DB::TransactionManager::begin(&mut conn, self.source.begin_statement()).await;
        sending.done("BEGIN", 0, result.as_ref().err());
        result?;
        self.tx = Some(conn);
        Ok(())
    }

    pub(crate) async fn commit(&mut self) -> Result<(), sqlx::Error> {
        self.end("COMMIT").await
    }

    /// Ends the transaction a statement outside one ran in (under transaction pooling).
    async fn end_own(&mut self, ok: bool) -> Result<(), sqlx::Error> {
        self.end(if ok { "COMMIT" } else { "ROLLBACK" }).await
    }

    pub(crate) async fn rollback(&mut self) -> Result<(), sqlx::Error> {
        self.end("ROLLBACK").await
    }

    /// Commits or rolls back the open transaction, if any, and gives its connection back.
    ///
    /// The connection stays in `self.tx` while the end is awaited: if this future is dropped
    /// mid-way (a client gone, a shutdown deadline), `Drop` still queues the rollback, as
    /// sqlx's own `Transaction` does, so no connection goes back to the pool inside a
    /// transaction.
    async fn end(&mut self, sql: &'static str) -> Result<(), sqlx::Error> {
        let Some(conn) = self.tx.as_mut() else {
            return Ok(());
        };
        self.statements += 1;
        let sending = Sending::open(&self.observer);
        let result = match sql {
            "COMMIT" => DB::TransactionManager::commit(conn).await,
            _ => DB::TransactionManager::rollback(conn).await,
        };
        if result.is_err() {
            // As sqlx's `Transaction` does when its end fails: the rollback is sent before the
            // connection is used again.
            DB::TransactionManager::start_rollback(conn);
        }
        self.tx = None;
        sending.done(sql, 0, result.as_ref().err());
        result
    }
}

/// One statement being sent, reported once to the observer by [`done`](Self::done): its
/// span (the observer's, or none), opened before the statement waits for a connection, and
/// its clock, which counts from [`on_connection`](Self::on_connection) (or from `open`
/// where the connection is at hand) so the report has its time on the connection only.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
struct Sending {
    observer: Option<Arc<dyn StatementObserver>>,
    span: Span,
    started: Instant,
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl Sending {
    fn open(observer: &Option<Arc<dyn StatementObserver>>) -> Self {
        Self {
            observer: observer.clone(),
            span: observer
                .as_ref()
                .map_or_else(Span::none, |o| o.statement_span()),
            started: Instant::now(),
        }
    }

    /// The statement is on its connection now: its time starts here.
    fn on_connection(&mut self) {
        self.started = Instant::now();
    }

    fn done(self, sql: &str, rows: u64, error: Option<&sqlx::Error>) {
        if let Some(o) = &self.observer {
            o.statement_in(&self.span, sql, self.started.elapsed(), rows, error);
        }
    }
}

/// The rows a statement affected, for any driver's result (`Conn::execute`'s).
#[cfg(feature = "postgres")]
pub(crate) trait RowsAffected {
    fn rows_affected(&self) -> u64;
}

#[cfg(feature = "postgres")]
impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::postgres::PgQueryResult::rows_affected(self)
    }
}

#[cfg(all(feature = "postgres", feature = "sqlite"))]
impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::sqlite::SqliteQueryResult::rows_affected(self)
    }
}

/// A statement with sqlx's `persistent` flag set (`Query::persistent` exists only for the
/// driver's own argument type; the sink's statements are generic over theirs). `false` puts
/// it on the unnamed prepared statement, as PgBouncer's transaction mode needs.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
struct Persistent<E>(E, bool);

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl<'q, DB: Database, E: Execute<'q, DB>> Execute<'q, DB> for Persistent<E> {
    fn sql(&self) -> &'q str {
        self.0.sql()
    }
    fn statement(&self) -> Option<&DB::Statement<'q>> {
        self.0.statement()
    }
    fn take_arguments(&mut self) -> Result<Option<DB::Arguments<'q>>, sqlx::error::BoxDynError> {
        self.0.take_arguments()
    }
    fn persistent(&self) -> bool {
        self.1 && self.0.persistent()
    }
}
