//! `&MonitoredPool` as an sqlx [`Executor`]: each statement acquires through the monitored
//! path and is reported to the handle's [`QueryObserver`](crate::QueryObserver).

use std::time::Instant;

use futures::future::{BoxFuture, FutureExt};
use futures::stream::{BoxStream, StreamExt};
use futures::SinkExt;
use sqlx::{Database, Describe, Either, Execute, Executor};

use crate::handle::MonitoredPool;

/// The rows affected of a driver's query result (sqlx has no trait for it).
pub trait RowsAffected {
    /// Rows inserted, updated or deleted.
    fn rows_affected(&self) -> u64;
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

/// Calls the observer if the statement stream is dropped before it finished.
struct Observation<'a, DB: Database> {
    pool: &'a MonitoredPool<DB>,
    sql: &'a str,
    started: Instant,
    returned: u64,
    affected: u64,
    done: bool,
}

impl<DB: Database> Observation<'_, DB> {
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
            self.pool.observe(self.sql, self.started, rows, error);
        }
    }
}

impl<DB: Database> Drop for Observation<'_, DB> {
    fn drop(&mut self) {
        self.finish(None);
    }
}

/// Each statement acquires through the monitored path, like sqlx's `impl Executor for &Pool`.
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

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, sqlx::Error>>
    where
        E: 'q + Execute<'q, DB>,
    {
        let pool = self.clone();
        let sql = query.sql();
        let (mut tx, rx) = futures::channel::mpsc::channel(8);
        let producer = async move {
            let mut conn = match pool.acquire_sqlx(None).await {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let mut obs = Observation {
                pool: &pool,
                sql,
                started: Instant::now(),
                returned: 0,
                affected: 0,
                done: false,
            };
            let mut stream = (&mut *conn).fetch_many(query);
            while let Some(item) = stream.next().await {
                match &item {
                    Ok(Either::Left(done)) => obs.affected += done.rows_affected(),
                    Ok(Either::Right(_)) => obs.returned += 1,
                    Err(e) => obs.finish(Some(e)),
                }
                if tx.send(item).await.is_err() {
                    break; // the caller dropped the stream
                }
            }
            obs.finish(None);
        };
        let producer = producer.into_stream().filter_map(|()| async { None });
        Box::pin(futures::stream::select(producer, rx))
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
    where
        E: 'q + Execute<'q, DB>,
    {
        let pool = self.clone();
        let sql = query.sql();
        Box::pin(async move {
            let mut conn = pool.acquire_sqlx(None).await?;
            let started = Instant::now();
            let result = (&mut *conn).fetch_optional(query).await;
            let rows = u64::from(matches!(result, Ok(Some(_))));
            pool.observe(sql, started, rows, result.as_ref().err());
            result
        })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement<'q>, sqlx::Error>> {
        let pool = self.clone();
        Box::pin(async move {
            let mut conn = pool.acquire_sqlx(None).await?;
            (&mut *conn).prepare_with(sql, parameters).await
        })
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> BoxFuture<'e, Result<Describe<DB>, sqlx::Error>> {
        let pool = self.clone();
        Box::pin(async move {
            let mut conn = pool.acquire_sqlx(None).await?;
            (&mut *conn).describe(sql).await
        })
    }
}
