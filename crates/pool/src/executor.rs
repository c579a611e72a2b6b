//! The handle's sqlx [`Executor`]s: `&mut ObservedConnection` times each statement into the
//! handle's [`QueryObserver`](crate::QueryObserver), and `&MonitoredPool` acquires through the
//! monitored path for each statement and runs it there.

use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use futures::stream::{BoxStream, Stream, StreamExt};
use futures::SinkExt;
use sqlx::{Database, Describe, Either, Execute, Executor};
use tracing::Span;

use crate::connection::ObservedConnection;
use crate::handle::MonitoredPool;
use crate::observer::Reporter;
use crate::pgbouncer::wrap;
use crate::stream::{self, Item};

/// The rows affected of a driver's query result (sqlx has no trait for it).
pub trait RowsAffected {
    /// Rows inserted, updated or deleted.
    fn rows_affected(&self) -> u64;
}

#[cfg(feature = "postgres")]
impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

#[cfg(feature = "sqlite")]
impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

/// One statement being observed, with its span (opened here, a child of the caller's span);
/// reports it once, when it finished, failed or was dropped.
struct Observation<'a> {
    reporter: &'a Reporter,
    sql: &'a str,
    span: Span,
    started: Instant,
    returned: u64,
    affected: u64,
    done: bool,
}

impl<'a> Observation<'a> {
    fn start(reporter: &'a Reporter, sql: &'a str) -> Self {
        Self {
            reporter,
            sql,
            span: reporter.span(),
            started: Instant::now(),
            returned: 0,
            affected: 0,
            done: false,
        }
    }

    fn finish(&mut self, error: Option<&sqlx::Error>) {
        if !self.done {
            self.done = true;
            // PostgreSQL reports a SELECT's row count as rows affected too: prefer the rows
            // returned, and fall back to rows affected for INSERT/UPDATE/DELETE.
            let rows = if self.returned > 0 {
                self.returned
            } else {
                self.affected
            };
            self.reporter
                .observe(&self.span, self.sql, self.started.elapsed(), rows, error);
        }
    }
}

impl Drop for Observation<'_> {
    fn drop(&mut self) {
        self.finish(None);
    }
}

/// A driver's statement stream, counted as it is read; reported when it ends, fails or is
/// dropped (with the rows read so far).
struct ObservedStream<'e, DB: Database> {
    inner: BoxStream<'e, Item<DB>>,
    obs: Observation<'e>,
}

impl<DB: Database> Stream for ObservedStream<'_, DB>
where
    DB::QueryResult: RowsAffected,
{
    type Item = Item<DB>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let item = ready!(this.inner.poll_next_unpin(cx));
        match &item {
            Some(Ok(Either::Left(done))) => this.obs.affected += done.rows_affected(),
            Some(Ok(Either::Right(_))) => this.obs.returned += 1,
            Some(Err(e)) => this.obs.finish(Some(e)),
            None => this.obs.finish(None),
        }
        Poll::Ready(item)
    }
}

/// Each statement runs on the driver connection and is reported to the handle's observer
/// (the transaction's statements too: `&mut *tx` is this executor).
impl<'c, DB: Database> Executor<'c> for &'c mut ObservedConnection<DB>
where
    for<'x> &'x mut DB::Connection: Executor<'x, Database = DB>,
    DB::QueryResult: RowsAffected,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Item<DB>>
    where
        'c: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let sql = query.sql();
        let (raw, reporter) = self.split();
        let obs = Observation::start(reporter, sql);
        Box::pin(ObservedStream::<DB> {
            inner: wrap::Run::<DB, _>::new(reporter.shared.pooling.as_ref(), raw, query)
                .fetch_many(),
            obs,
        })
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let sql = query.sql();
        let (raw, reporter) = self.split();
        let mut obs = Observation::start(reporter, sql);
        Box::pin(async move {
            let result = wrap::Run::<DB, _>::new(reporter.shared.pooling.as_ref(), raw, query)
                .fetch_optional()
                .await;
            obs.returned = u64::from(matches!(result, Ok(Some(_))));
            obs.finish(result.as_ref().err());
            result
        })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement<'q>, sqlx::Error>>
    where
        'c: 'e,
    {
        let (raw, reporter) = self.split();
        match wrap::refuse_named(reporter.shared.pooling.as_ref()) {
            Ok(()) => raw.prepare_with(sql, parameters),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<DB>, sqlx::Error>>
    where
        'c: 'e,
    {
        let (raw, reporter) = self.split();
        match wrap::refuse_named(reporter.shared.pooling.as_ref()) {
            Ok(()) => raw.describe(sql),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }
}

/// Each statement acquires through the monitored path, like sqlx's `impl Executor for &Pool`,
/// and runs on the acquired [`ObservedConnection`], which reports it.
///
/// `fetch_many` streams: a producer owning the connection feeds a bounded channel of 8
/// items, so a large result is not collected in memory. When the caller drops the stream
/// early, the observer still hears of the statement, with the rows produced so far (up to
/// the channel's buffer more than the caller read).
impl<'p, DB: Database> Executor<'p> for &'_ MonitoredPool<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::QueryResult: RowsAffected,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Item<DB>>
    where
        E: 'q + Execute<'q, DB>,
    {
        let acquire = self.acquire_sqlx(None);
        stream::produced(move |mut tx| async move {
            let mut conn = match acquire.await {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let mut rows = (&mut conn).fetch_many(query);
            while let Some(item) = rows.next().await {
                if tx.send(item).await.is_err() {
                    break; // the caller dropped the stream
                }
            }
        })
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
    where
        E: 'q + Execute<'q, DB>,
    {
        let acquire = self.acquire_sqlx(None);
        Box::pin(async move { (&mut acquire.await?).fetch_optional(query).await })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement<'q>, sqlx::Error>> {
        let acquire = self.acquire_sqlx(None);
        Box::pin(async move { (&mut acquire.await?).prepare_with(sql, parameters).await })
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> BoxFuture<'e, Result<Describe<DB>, sqlx::Error>> {
        let acquire = self.acquire_sqlx(None);
        Box::pin(async move { (&mut acquire.await?).describe(sql).await })
    }
}
