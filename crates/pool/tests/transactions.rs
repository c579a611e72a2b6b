//! Transactions and connections of the monitored handle in sqlx's own shapes, on real
//! PostgreSQL (a fresh database per test from `#[sqlx::test]`) and on SQLite (a temporary
//! file): every statement reaches the observer, `BEGIN`, `COMMIT` and `ROLLBACK` included,
//! and the pool monitor counts the hold. The same bodies run on both engines (`shapes!`).
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo test -p vitals-pool --test transactions`.

use std::sync::Arc;
use std::time::Duration;

use vitals_pool::{MonitoredPool, RowsAffected};

mod common;

use common::{config, wait_until, Seen, TestResult};

/// `(sql, rows)` pairs of statements that succeeded, for comparison with a literal list.
fn ok(list: &[(&str, u64)]) -> Vec<(String, u64, bool)> {
    list.iter()
        .map(|(s, r)| ((*s).to_owned(), *r, false))
        .collect()
}

const LEAK: Duration = Duration::from_millis(1);

/// A monitored pool with a 1 ms leak threshold and a recording observer, a `doses` table
/// in it, and the observer emptied.
struct Fixture<DB: sqlx::Database> {
    pool: MonitoredPool<DB>,
    seen: Arc<Seen>,
    _dir: Option<tempfile::TempDir>,
}

impl<DB: sqlx::Database> Fixture<DB>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::QueryResult: RowsAffected,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    /// Monitors `pool` (kept with `dir`, its SQLite file's directory, if any) and creates the
    /// table.
    async fn new(
        pool: sqlx::Pool<DB>,
        dir: Option<tempfile::TempDir>,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        let seen = Arc::new(Seen::default());
        let pool = MonitoredPool::builder(pool)
            .leak_threshold(Some(LEAK))
            .observer(seen.clone())
            .build();
        sqlx::query("CREATE TABLE doses (id integer PRIMARY KEY)")
            .execute(&pool)
            .await?;
        seen.take();
        Ok(Fixture {
            pool,
            seen,
            _dir: dir,
        })
    }
}

async fn postgres_fixture(
    opts: sqlx::postgres::PgConnectOptions,
) -> Result<Fixture<sqlx::Postgres>, Box<dyn std::error::Error>> {
    Fixture::<sqlx::Postgres>::new(config(2).connect_postgres_with(opts).await?, None).await
}

async fn sqlite_fixture() -> Result<Fixture<sqlx::Sqlite>, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("tx.db").display());
    Fixture::<sqlx::Sqlite>::new(config(2).connect_sqlite(&url).await?, Some(dir)).await
}

/// The test bodies, once per engine: `DB` is the engine of the module they expand in. The SQL
/// is the same on both (no bind parameters, whose placeholders differ).
macro_rules! shapes {
    () => {
        use sqlx::Acquire;
        use vitals_pool::{MonitoredPool, PoolProbe};

        use crate::{ok, wait_until, Fixture, TestResult, LEAK};

        /// `INSERT INTO doses (id) VALUES ({id})`, the text the observer is expected to see.
        async fn insert<'e>(
            db: impl sqlx::Executor<'e, Database = DB>,
            id: i32,
        ) -> Result<(), sqlx::Error> {
            sqlx::query(&format!("INSERT INTO doses (id) VALUES ({id})"))
                .execute(db)
                .await?;
            Ok(())
        }

        async fn count(pool: &MonitoredPool<DB>) -> Result<usize, sqlx::Error> {
            Ok(sqlx::query("SELECT id FROM doses")
                .fetch_all(pool)
                .await?
                .len())
        }

        /// Until every connection is back in the pool (sqlx returns a dropped one on a task).
        async fn all_idle(pool: &MonitoredPool<DB>) {
            wait_until("every connection is idle", || pool.state().active() == 0).await;
        }

        /// What the observer sees of a transaction that inserts row 1 and is rolled back.
        const INSERT_1_ROLLED_BACK: &[(&str, u64)] = &[
            ("BEGIN", 0),
            ("INSERT INTO doses (id) VALUES (1)", 1),
            ("ROLLBACK", 0),
        ];

        /// The observer saw exactly `statements` (none failed), and the table holds `rows`
        /// rows; forgets what the observer saw.
        async fn saw_then_rows(
            f: &Fixture<DB>,
            statements: &[(&str, u64)],
            rows: usize,
        ) -> TestResult {
            assert_eq!(f.seen.take(), ok(statements));
            assert_eq!(count(&f.pool).await?, rows);
            f.seen.take();
            Ok(())
        }

        pub(super) async fn a_committed_transaction_reports_begin_its_statements_and_commit(
            f: Fixture<DB>,
        ) -> TestResult {
            let mut tx = f.pool.begin().await?;
            insert(&mut *tx, 1).await?;
            insert(&mut *tx, 2).await?;
            let rows = sqlx::query("SELECT id FROM doses ORDER BY id")
                .fetch_all(&mut *tx)
                .await?;
            assert_eq!(rows.len(), 2);
            tx.commit().await?;
            let statements = [
                ("BEGIN", 0),
                ("INSERT INTO doses (id) VALUES (1)", 1),
                ("INSERT INTO doses (id) VALUES (2)", 1),
                ("SELECT id FROM doses ORDER BY id", 2),
                ("COMMIT", 0),
            ];
            saw_then_rows(&f, &statements, 2).await
        }

        pub(super) async fn a_rolled_back_transaction_reports_rollback_and_leaves_no_rows(
            f: Fixture<DB>,
        ) -> TestResult {
            let mut tx = f.pool.begin().await?;
            insert(&mut *tx, 1).await?;
            tx.rollback().await?;
            saw_then_rows(&f, INSERT_1_ROLLED_BACK, 0).await
        }

        pub(super) async fn a_dropped_transaction_is_rolled_back(f: Fixture<DB>) -> TestResult {
            // Its own connection: the ROLLBACK runs when the pool takes the connection back.
            let mut tx = f.pool.begin().await?;
            insert(&mut *tx, 1).await?;
            drop(tx);
            all_idle(&f.pool).await;
            saw_then_rows(&f, INSERT_1_ROLLED_BACK, 0).await?;

            // On a borrowed connection: the ROLLBACK runs before its next statement.
            let mut conn = f.pool.acquire().await?;
            let mut tx = conn.begin().await?;
            insert(&mut *tx, 2).await?;
            drop(tx);
            let rows = sqlx::query("SELECT id FROM doses")
                .fetch_all(&mut *conn)
                .await?;
            assert!(rows.is_empty());
            // Texts only: SQLite's rows affected of an empty SELECT are the previous
            // statement's (sqlite3_changes), which the observer reports for lack of rows.
            let texts: Vec<String> = f.seen.take().into_iter().map(|(s, _, _)| s).collect();
            assert_eq!(texts[2..], ["ROLLBACK", "SELECT id FROM doses"]);
            Ok(())
        }

        pub(super) async fn acquire_and_fetch_all_on_the_connection_are_seen(
            f: Fixture<DB>,
        ) -> TestResult {
            sqlx::query("INSERT INTO doses (id) VALUES (1), (2), (3)")
                .execute(&f.pool)
                .await?;
            let mut conn = f.pool.acquire().await?;
            let rows = sqlx::query("SELECT id FROM doses")
                .fetch_all(&mut *conn)
                .await?;
            assert_eq!(rows.len(), 3);
            let one = sqlx::query("SELECT id FROM doses WHERE id = 2")
                .fetch_optional(&mut *conn)
                .await?;
            assert!(one.is_some());
            // The driver connection stays reachable; what runs there is not observed.
            sqlx::query("SELECT 1").execute(&mut **conn).await?;
            assert_eq!(f.pool.stats().held, 1);
            drop(conn);
            assert_eq!(f.pool.stats().held, 0);
            assert_eq!(
                f.seen.take(),
                ok(&[
                    ("INSERT INTO doses (id) VALUES (1), (2), (3)", 3),
                    ("SELECT id FROM doses", 3),
                    ("SELECT id FROM doses WHERE id = 2", 1),
                ])
            );
            Ok(())
        }

        /// Written against sqlx's trait only, as a library would be.
        async fn insert_in_a_transaction<'a, A>(db: A, id: i32) -> Result<usize, sqlx::Error>
        where
            A: Acquire<'a, Database = DB>,
        {
            let mut tx = db.begin().await?;
            insert(&mut *tx, id).await?;
            let n = sqlx::query("SELECT id FROM doses")
                .fetch_all(&mut *tx)
                .await?
                .len();
            tx.commit().await?;
            Ok(n)
        }

        async fn count_on_a_connection<'a, A>(db: A) -> Result<usize, sqlx::Error>
        where
            A: Acquire<'a, Database = DB>,
        {
            let mut conn = db.acquire().await?;
            Ok(sqlx::query("SELECT id FROM doses")
                .fetch_all(&mut *conn)
                .await?
                .len())
        }

        pub(super) async fn a_function_generic_over_acquire_takes_the_pool(
            f: Fixture<DB>,
        ) -> TestResult {
            let before = f.pool.stats().acquired_total;
            assert_eq!(insert_in_a_transaction(&f.pool, 1).await?, 1);
            assert_eq!(count_on_a_connection(&f.pool).await?, 1);
            // Both acquired through the monitored path; only BEGIN of the generic
            // transaction is seen (sqlx's Transaction runs the rest on the driver connection).
            assert_eq!(f.pool.stats().acquired_total, before + 2);
            assert_eq!(f.seen.take(), ok(&[("BEGIN", 0)]));
            assert_eq!(f.pool.stats().held, 0);

            // A monitored connection and a monitored transaction are `Acquire` too: the
            // generic transaction is a savepoint inside the monitored one.
            let mut conn = f.pool.acquire().await?;
            assert_eq!(insert_in_a_transaction(&mut conn, 2).await?, 2);
            assert_eq!(count_on_a_connection(&mut *conn).await?, 2);
            let mut tx = conn.begin().await?;
            assert_eq!(insert_in_a_transaction(&mut tx, 3).await?, 3);
            tx.commit().await?;
            drop(conn);
            let statements = [
                ("BEGIN", 0),
                ("BEGIN", 0),
                ("SAVEPOINT _sqlx_savepoint_1", 0),
                ("COMMIT", 0),
            ];
            saw_then_rows(&f, &statements, 3).await
        }

        pub(super) async fn a_savepoint_is_reported_with_sqlx_statements(
            f: Fixture<DB>,
        ) -> TestResult {
            let mut tx = f.pool.begin().await?;
            let mut inner = tx.begin().await?;
            insert(&mut *inner, 1).await?;
            inner.rollback().await?;
            let mut inner = tx.begin().await?;
            insert(&mut *inner, 2).await?;
            inner.commit().await?;
            tx.commit().await?;
            let statements = [
                ("BEGIN", 0),
                ("SAVEPOINT _sqlx_savepoint_1", 0),
                ("INSERT INTO doses (id) VALUES (1)", 1),
                ("ROLLBACK TO SAVEPOINT _sqlx_savepoint_1", 0),
                ("SAVEPOINT _sqlx_savepoint_1", 0),
                ("INSERT INTO doses (id) VALUES (2)", 1),
                ("RELEASE SAVEPOINT _sqlx_savepoint_1", 0),
                ("COMMIT", 0),
            ];
            saw_then_rows(&f, &statements, 1).await
        }

        pub(super) async fn an_open_transaction_is_held_and_past_the_threshold_leaked(
            f: Fixture<DB>,
        ) -> TestResult {
            let long_before = f.pool.stats().long_holds_total;
            let tx = f.pool.begin().await?;
            assert_eq!(f.pool.stats().held, 1);
            // Held past the 1 ms threshold: poll until the clock has moved past it.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while tx.held_for() < LEAK * 2 {
                assert!(std::time::Instant::now() < deadline);
                tokio::task::yield_now().await;
            }
            let stats = f.pool.stats();
            assert_eq!((stats.held, stats.leaked), (1, 1));
            assert!(
                stats.leak_sites[0].contains("tests/transactions.rs:"),
                "{:?}",
                stats.leak_sites
            );
            tx.commit().await?;
            let stats = f.pool.stats();
            assert_eq!((stats.held, stats.leaked), (0, 0));
            assert_eq!(stats.long_holds_total, long_before + 1);

            let tx = f.pool.begin().await?;
            assert_eq!(f.pool.stats().held, 1);
            drop(tx);
            assert_eq!(f.pool.stats().held, 0);
            Ok(())
        }
    };
}

/// One `#[sqlx::test]` per body on PostgreSQL and one `#[tokio::test]` on SQLite.
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            type DB = sqlx::Postgres;
            mod body {
                type DB = super::DB;
                shapes!();
            }
            $(
                #[sqlx::test]
                async fn $name(
                    _: sqlx::postgres::PgPoolOptions,
                    opts: sqlx::postgres::PgConnectOptions,
                ) -> crate::TestResult {
                    body::$name(crate::postgres_fixture(opts).await?).await
                }
            )*
        }
        mod sqlite {
            type DB = sqlx::Sqlite;
            mod body {
                type DB = super::DB;
                shapes!();
            }
            $(
                #[tokio::test]
                async fn $name() -> crate::TestResult {
                    body::$name(crate::sqlite_fixture().await?).await
                }
            )*
        }
    };
}

on_both_engines!(
    a_committed_transaction_reports_begin_its_statements_and_commit,
    a_rolled_back_transaction_reports_rollback_and_leaves_no_rows,
    a_dropped_transaction_is_rolled_back,
    acquire_and_fetch_all_on_the_connection_are_seen,
    a_function_generic_over_acquire_takes_the_pool,
    a_savepoint_is_reported_with_sqlx_statements,
    an_open_transaction_is_held_and_past_the_threshold_leaked,
);
