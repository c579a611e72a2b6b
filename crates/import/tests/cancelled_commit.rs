//! A sink's COMMIT cancelled mid-way (its future dropped: the client gone, a shutdown
//! deadline) leaves no connection in the pool inside the import's transaction.
//!
//! Needs PostgreSQL at `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`).

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::Row as _;
use vitals_import::{PgSink, Sink};

#[tokio::test]
async fn a_cancelled_commit_leaves_no_connection_inside_a_transaction() {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    // One connection, so the next acquire gets the very one the sink held.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("PostgreSQL at DATABASE_URL");
    // The COMMIT's reply needs a round trip, so its first poll is usually pending and a zero
    // timeout drops it there; on loopback the reply can come within that poll (on a loaded
    // 2-core machine this thread is often preempted between the write and the read, and a CI
    // run once found none in 200 tries), so a bounded number of tries, each a millisecond or
    // so, finds cancelled ones.
    let mut cancelled = 0;
    for _ in 0..5_000 {
        let mut sink = PgSink::new(pool.clone());
        sink.begin().await.expect("BEGIN");
        let dropped = tokio::time::timeout(Duration::ZERO, sink.commit())
            .await
            .is_err();
        drop(sink);
        if dropped {
            cancelled += 1;
            assert_out_of_transaction(&pool).await;
            if cancelled == 5 {
                break;
            }
        }
    }
    assert!(
        cancelled > 0,
        "no COMMIT was pending at its first poll in 5 000 tries"
    );
}

async fn assert_out_of_transaction(pool: &sqlx::PgPool) {
    let mut conn = pool.acquire().await.expect("the connection back");
    // One simple-protocol statement outside a transaction block is a transaction of its own,
    // begun with it; inside the import's transaction, that began earlier. (The extended
    // protocol's Parse and Execute are two messages, so `query` could not tell.)
    let row = sqlx::raw_sql("SELECT transaction_timestamp() = statement_timestamp()")
        .fetch_one(&mut *conn)
        .await
        .expect("a statement on the returned connection");
    let own_transaction: bool = row.get(0);
    assert!(
        own_transaction,
        "the connection came back inside the import's transaction"
    );
    drop(conn);
    // sqlx's own view agrees: a new transaction is a BEGIN (not a SAVEPOINT inside a
    // transaction sqlx still thinks is open) and commits.
    let tx = pool
        .begin()
        .await
        .expect("BEGIN on the returned connection");
    tx.commit()
        .await
        .expect("COMMIT on the returned connection");
}
