//! What every driver's sink shares: the pool, the one open transaction, and the count of
//! statements sent (the report's `queries`).

use sqlx::query::Query;
use sqlx::{Database, Executor, IntoArguments, Pool, Transaction};

/// The [`Sink`](super::Sink) transaction methods of a sink whose `conn` field is a [`Conn`].
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
pub(crate) use transaction_on_conn;

#[derive(Debug)]
pub(crate) struct Conn<DB: Database> {
    pool: Pool<DB>,
    tx: Option<Transaction<'static, DB>>,
    statements: u64,
}

impl<DB: Database> Conn<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    pub(crate) fn new(pool: Pool<DB>) -> Self {
        Self {
            pool,
            tx: None,
            statements: 0,
        }
    }

    /// A new handle on the same pool, with no transaction and no statements yet.
    pub(crate) fn fork(&self) -> Self {
        Self::new(self.pool.clone())
    }

    pub(crate) fn statements(&self) -> u64 {
        self.statements
    }

    /// Runs `q` in the open transaction, or on the pool when there is none.
    pub(crate) async fn fetch<'q, A>(
        &mut self,
        q: Query<'q, DB, A>,
    ) -> Result<Vec<DB::Row>, sqlx::Error>
    where
        A: 'q + IntoArguments<'q, DB>,
    {
        self.statements += 1;
        match &mut self.tx {
            Some(tx) => q.fetch_all(&mut **tx).await,
            None => q.fetch_all(&self.pool).await,
        }
    }

    /// Runs `q` like [`Conn::fetch`], returning the driver's result (rows affected).
    pub(crate) async fn execute<'q, A>(
        &mut self,
        q: Query<'q, DB, A>,
    ) -> Result<DB::QueryResult, sqlx::Error>
    where
        A: 'q + IntoArguments<'q, DB>,
    {
        self.statements += 1;
        match &mut self.tx {
            Some(tx) => q.execute(&mut **tx).await,
            None => q.execute(&self.pool).await,
        }
    }

    pub(crate) async fn begin(&mut self) -> Result<(), sqlx::Error> {
        self.statements += 1;
        self.tx = Some(self.pool.begin().await?);
        Ok(())
    }

    pub(crate) async fn commit(&mut self) -> Result<(), sqlx::Error> {
        if let Some(tx) = self.tx.take() {
            self.statements += 1;
            tx.commit().await?;
        }
        Ok(())
    }

    pub(crate) async fn rollback(&mut self) -> Result<(), sqlx::Error> {
        if let Some(tx) = self.tx.take() {
            self.statements += 1;
            tx.rollback().await?;
        }
        Ok(())
    }
}
