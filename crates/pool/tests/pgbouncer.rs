//! The pool through a real PgBouncer (`pool_mode = transaction`, two server connections) in
//! front of the main server, started by each test on a free loopback port and killed by its
//! pid (`common/pgbouncer.rs`): bound statements under concurrency (which break with sqlx's
//! named statements, shown first), transactions through the monitored handle, the timeouts
//! `SET LOCAL` and enforced (57014), the monitor's counts, and the check at start that names a
//! PgBouncer in the other mode. Each test has its own database (`#[sqlx::test]`), reached
//! through PgBouncer's `*` entry.
//!
//! Run with `cargo test -p vitals-pool --test pgbouncer` (needs `/usr/sbin/pgbouncer`).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, Row};
use vitals_pool::{
    detect_pooling, health_check, HealthStatus, MonitoredPool, ObservedConnection, PgBouncerMode,
    PoolConfig, PoolError, PoolingCheck,
};

mod common;
#[path = "common/pgbouncer.rs"]
mod pgbouncer_server;

use common::{Seen, TestResult};
use pgbouncer_server::{Mode, TestPgBouncer};

/// Tasks × statements of the concurrent load: enough that eight clients on two server
/// connections interleave.
const TASKS: i64 = 8;
const PER_TASK: i64 = 40;

/// A pool configuration through PgBouncer in `mode`, at most 8 client connections.
fn config(mode: PgBouncerMode, statement_timeout: Duration) -> PoolConfig {
    PoolConfig::builder()
        .min_connections(0)
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .statement_timeout(statement_timeout)
        .idle_in_transaction_timeout(Duration::from_secs(20))
        .pgbouncer(mode)
        .build()
        .unwrap()
}

/// The URL of this test's own database (`opts` from `#[sqlx::test]`) through `bouncer`.
fn url(bouncer: &TestPgBouncer, opts: &PgConnectOptions) -> String {
    bouncer.url_of(opts.get_database().expect("sqlx::test names its database"))
}

/// A monitored pool through `bouncer` with `DB_PGBOUNCER=transaction` and `timeout`.
async fn handle(
    bouncer: &TestPgBouncer,
    opts: &PgConnectOptions,
    timeout: Duration,
) -> Result<MonitoredPool<sqlx::Postgres>, PoolError> {
    handle_in(PgBouncerMode::Transaction, bouncer, opts, timeout).await
}

/// A transaction-mode PgBouncer with two server connections, started for this test, and a
/// monitored pool through it (`handle`) with `timeout`. Keep the bouncer while the pool is in
/// use: dropping it kills PgBouncer.
async fn transaction_bouncer(
    opts: &PgConnectOptions,
    timeout: Duration,
) -> Result<(TestPgBouncer, MonitoredPool<sqlx::Postgres>), PoolError> {
    let bouncer = TestPgBouncer::start(Mode::Transaction, 2);
    let pool = handle(&bouncer, opts, timeout).await?;
    Ok((bouncer, pool))
}

/// A monitored pool through `bouncer` with `DB_PGBOUNCER` set to `mode` and `timeout`.
async fn handle_in(
    mode: PgBouncerMode,
    bouncer: &TestPgBouncer,
    opts: &PgConnectOptions,
    timeout: Duration,
) -> Result<MonitoredPool<sqlx::Postgres>, PoolError> {
    config(mode, timeout)
        .connect_postgres_monitored(&url(bouncer, opts))
        .await
}

/// Runs the concurrent load of two different bound statements on `pool` (sqlx's pool or the
/// handle): `TASKS` tasks, half adding one and half multiplying by 1000; returns (errors,
/// wrong answers).
async fn bound_load<P>(pool: P) -> (usize, usize)
where
    P: Clone + Send + Sync + 'static,
    for<'c> &'c P: Executor<'c, Database = sqlx::Postgres>,
{
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let (mut errors, mut wrong) = (0, 0);
                for i in 0..PER_TASK {
                    let plus = t % 2 == 0;
                    let want = if plus { i + 1 } else { i * 1000 };
                    match bound(&pool, plus, i).await {
                        Ok(got) if got == want => {}
                        Ok(_) => wrong += 1,
                        Err(_) => errors += 1,
                    }
                }
                (errors, wrong)
            })
        })
        .collect();
    let mut total = (0, 0);
    for t in tasks {
        let (e, w) = t.await.unwrap();
        total = (total.0 + e, total.1 + w);
    }
    total
}

/// One of the load's two bound statements on `e`: `i + 1` (`plus`) or `i * 1000`.
async fn bound<'e, E>(e: E, plus: bool, i: i64) -> Result<i64, sqlx::Error>
where
    E: Executor<'e, Database = sqlx::Postgres>,
{
    let sql = if plus {
        "SELECT $1::int8 + 1"
    } else {
        "SELECT $1::int8 * 1000"
    };
    sqlx::query_scalar(sql).bind(i).fetch_one(e).await
}

/// The control: sqlx's statement cache off alone (what sqlx#67 suggests) still names each
/// statement (`sqlx_s_1`, …) and leaves it on the server connection, where another client's
/// `sqlx_s_1` collides with it, or binds to it.
#[sqlx::test]
async fn statement_cache_off_alone_breaks_under_transaction_pooling(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) -> TestResult {
    let bouncer = TestPgBouncer::start(Mode::Transaction, 2);
    let options = PgConnectOptions::from_str(&url(&bouncer, &opts))?
        .extra_float_digits(None)
        .statement_cache_capacity(0);
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await?;
    let (errors, wrong) = bound_load::<sqlx::PgPool>(pool).await;
    assert!(
        errors + wrong > 0,
        "named statements under transaction pooling should have failed"
    );
    Ok(())
}

/// The same load through the handle with `DB_PGBOUNCER=transaction`: every answer right.
#[sqlx::test]
async fn bound_statements_through_the_handle_are_all_right(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) -> TestResult {
    let (_bouncer, pool) = transaction_bouncer(&opts, Duration::from_secs(10)).await?;
    let (errors, wrong) = bound_load::<MonitoredPool<sqlx::Postgres>>(pool.clone()).await;
    assert_eq!((errors, wrong), (0, 0));
    // Streams too (fetch_many through the channel), and on an acquired connection.
    let rows: Vec<i64> = sqlx::query_scalar("SELECT g FROM generate_series(1, $1::int8) g")
        .bind(100_i64)
        .fetch_all(&pool)
        .await?;
    assert_eq!(rows.len(), 100);
    let mut conn = pool.acquire().await?;
    for i in 0..20_i64 {
        assert_eq!(bound(&mut *conn, true, i).await?, i + 1);
    }
    Ok(())
}

/// PgBouncer refuses the startup options of a direct connection; through it, none are sent.
#[sqlx::test]
async fn startup_options_are_refused_by_pgbouncer_and_not_sent_through_it(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) -> TestResult {
    let bouncer = TestPgBouncer::start(Mode::Transaction, 2);
    let err = config(PgBouncerMode::Off, Duration::from_secs(5))
        .connect_postgres(&url(&bouncer, &opts))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("unsupported startup parameter"),
        "{err}"
    );
    let pool = handle(&bouncer, &opts, Duration::from_secs(5)).await?;
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await?;
    assert_eq!(one, 1);
    Ok(())
}

/// One row into the `doses` table of the transaction test.
async fn insert_dose(conn: &mut ObservedConnection<sqlx::Postgres>, id: i64) -> TestResult {
    sqlx::query("INSERT INTO doses (id, note) VALUES ($1, $2)")
        .bind(id)
        .bind("synthetic")
        .execute(conn)
        .await?;
    Ok(())
}

/// BEGIN/COMMIT/ROLLBACK through the monitored handle: the observer hears them, the
/// timeouts are the transaction's own (`SET LOCAL`: the server connection keeps none), a
/// dropped transaction rolls back.
#[sqlx::test]
async fn transactions_through_the_monitored_handle(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) -> TestResult {
    let (bouncer, pool) = transaction_bouncer(&opts, Duration::from_millis(4321)).await?;
    let seen = Arc::new(Seen::default());
    let pool = pool.with_observer(seen.clone());
    sqlx::query("CREATE TABLE doses (id int8 PRIMARY KEY, note text NOT NULL)")
        .execute(&pool)
        .await?;

    let mut tx = pool.begin().await?;
    let timeout: String = common::scalar(&mut *tx, "SHOW statement_timeout").await?;
    assert_eq!(timeout, "4321ms");
    let idle: String = common::scalar(&mut *tx, "SHOW idle_in_transaction_session_timeout").await?;
    assert_eq!(idle, "20s");
    for id in 1..=3 {
        insert_dose(&mut tx, id).await?;
    }
    tx.commit().await?;

    let mut tx = pool.begin().await?;
    insert_dose(&mut tx, 4).await?;
    tx.rollback().await?;
    {
        let mut tx = pool.begin().await?;
        insert_dose(&mut tx, 5).await?;
    } // dropped: rolled back

    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM doses")
        .fetch_one(&pool)
        .await?;
    assert_eq!(count, 3);
    let texts: Vec<String> = seen.take().into_iter().map(|(sql, _, _)| sql).collect();
    for t in ["BEGIN", "COMMIT", "ROLLBACK", "SHOW statement_timeout"] {
        assert!(
            texts.iter().any(|s| s == t),
            "{t} not observed in {texts:?}"
        );
    }
    // SET LOCAL ended with each transaction: outside the handle's transactions, raw simple
    // queries see the server's default on every server connection of PgBouncer's pool (two
    // raw clients each in a transaction hold both of them at once).
    let raw = PgConnectOptions::from_str(&url(&bouncer, &opts))?.extra_float_digits(None);
    let mut a: sqlx::PgConnection = sqlx::ConnectOptions::connect(&raw).await?;
    let mut b: sqlx::PgConnection = sqlx::ConnectOptions::connect(&raw).await?;
    a.execute("BEGIN").await?;
    b.execute("BEGIN").await?;
    let pids: Vec<i32> = vec![
        a.fetch_one("SELECT pg_backend_pid()").await?.try_get(0)?,
        b.fetch_one("SELECT pg_backend_pid()").await?.try_get(0)?,
    ];
    assert_ne!(pids[0], pids[1], "two server connections");
    for conn in [&mut a, &mut b] {
        let row = conn.fetch_one("SHOW statement_timeout").await?;
        assert_ne!(row.try_get::<String, _>(0)?, "4321ms");
    }
    Ok(())
}

/// sqlx's `prepare`/`describe` name a server-side statement whatever the cache says: under
/// transaction pooling the handle refuses them (a configuration error) rather than leave a
/// `sqlx_s_N` on a server connection another client gets.
#[sqlx::test]
async fn prepare_and_describe_are_refused_under_transaction_pooling(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) -> TestResult {
    let (_bouncer, pool) = transaction_bouncer(&opts, Duration::from_secs(5)).await?;
    let refused = |r: Result<(), sqlx::Error>| match r {
        Err(sqlx::Error::Configuration(e)) => {
            assert!(e.to_string().contains("DB_PGBOUNCER"), "{e}")
        }
        other => panic!("not refused: {other:?}"),
    };
    refused((&pool).prepare("SELECT $1::int").await.map(drop));
    refused((&pool).describe("SELECT 1").await.map(drop));
    // sqlx's `Acquire` gives the observed connection (the handle's executor).
    let mut conn = sqlx::Acquire::acquire(&pool).await?;
    refused((&mut conn).prepare("SELECT $1::int").await.map(drop));
    refused((&mut conn).describe("SELECT 1").await.map(drop));
    // The connection is still good for statements, which run unnamed.
    let one: i32 = sqlx::query_scalar("SELECT $1::int")
        .bind(1)
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(one, 1);
    Ok(())
}

/// sqlx's `Acquire::begin` on the handle and on its connection begins as the handle's own
/// `begin` does: the timeouts are `SET LOCAL` in the transaction.
#[sqlx::test]
async fn acquire_begin_sets_the_timeouts_local(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) -> TestResult {
    let (_bouncer, pool) = transaction_bouncer(&opts, Duration::from_millis(4321)).await?;
    let mut tx = sqlx::Acquire::begin(&pool).await?;
    let row = (&mut *tx).fetch_one("SHOW statement_timeout").await?;
    assert_eq!(row.try_get::<String, _>(0)?, "4321ms");
    tx.rollback().await?;

    let mut conn = pool.acquire().await?;
    let mut tx = sqlx::Acquire::begin(&mut *conn).await?;
    let row = (&mut *tx)
        .fetch_one("SHOW idle_in_transaction_session_timeout")
        .await?;
    assert_eq!(row.try_get::<String, _>(0)?, "20s");
    tx.rollback().await?;
    Ok(())
}

/// `statement_timeout` is enforced through PgBouncer: a `pg_sleep` past it is cancelled
/// (57014), a single statement (wrapped in a transaction of its own) and one inside a
/// transaction alike; the pool goes on.
#[sqlx::test]
async fn statement_timeout_is_enforced(_: PgPoolOptions, opts: PgConnectOptions) -> TestResult {
    let (_bouncer, pool) = transaction_bouncer(&opts, Duration::from_millis(200)).await?;
    let code = |e: sqlx::Error| {
        e.as_database_error()
            .and_then(|d| d.code().map(|c| c.into_owned()))
    };

    let err = sqlx::query("SELECT pg_sleep($1)")
        .bind(5.0_f64)
        .execute(&pool)
        .await
        .unwrap_err();
    assert_eq!(code(err).as_deref(), Some("57014"));

    let mut tx = pool.begin().await?;
    let err = sqlx::query("SELECT pg_sleep(5)")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(code(err).as_deref(), Some("57014"));
    tx.rollback().await?;

    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await?;
    assert_eq!(one, 1);
    Ok(())
}

/// The monitor's figures and the health check through PgBouncer.
#[sqlx::test]
async fn the_monitor_counts_through_pgbouncer(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) -> TestResult {
    let bouncer = TestPgBouncer::start(Mode::Transaction, 2);
    let cfg = PoolConfig::builder()
        .min_connections(0)
        .max_connections(4)
        .benchmark(true) // time every statement
        .pgbouncer(PgBouncerMode::Transaction)
        .build()?;
    let pool = cfg
        .connect_postgres_monitored(&url(&bouncer, &opts))
        .await?;
    for i in 0..10_i64 {
        bound(&pool, true, i).await?;
    }
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT 1").execute(&mut *tx).await?;
    tx.commit().await?;
    let stats = pool.stats();
    assert_eq!(stats.acquired_total, 11);
    assert_eq!(stats.held, 0);
    assert_eq!(stats.acquire_errors_total, 0);
    assert_eq!(stats.query.map(|q| q.count), Some(13)); // 10 + BEGIN, SELECT, COMMIT
    let report = health_check(&pool, Duration::from_secs(2)).await;
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    Ok(())
}

/// The check at start: sharing seen through a transaction-mode PgBouncer, none through a
/// session-mode one (a proxy) or directly; `DB_PGBOUNCER=session` over transaction pooling
/// is an error that names the setting; `transaction` over session mode still runs.
#[sqlx::test]
async fn the_pooling_mode_is_checked_at_start(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) -> TestResult {
    let transaction = TestPgBouncer::start(Mode::Transaction, 2);
    let session = TestPgBouncer::start(Mode::Session, 2);
    let through = |b: &TestPgBouncer| {
        PgConnectOptions::from_str(&url(b, &opts)).map(|o| o.extra_float_digits(None))
    };
    assert_eq!(
        detect_pooling(&through(&transaction)?).await?,
        PoolingCheck::SharedServer
    );
    assert_eq!(
        detect_pooling(&through(&session)?).await?,
        PoolingCheck::ProxyWithoutSharing {
            server_port: opts.get_port()
        }
    );
    assert_eq!(detect_pooling(&opts).await?, PoolingCheck::Direct);

    let err = config(PgBouncerMode::Session, Duration::from_secs(5))
        .connect_postgres(&url(&transaction, &opts))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PoolError::PgBouncerMismatch { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("DB_PGBOUNCER=session"), "{err}");

    // Transaction rules over session mode: correct, only without the pooling.
    let pool = handle(&session, &opts, Duration::from_secs(5)).await?;
    assert_eq!(bound(&pool, true, 1).await?, 2);
    Ok(())
}

/// `DB_PGBOUNCER=session` through a session-mode PgBouncer: the timeouts are `SET` once per
/// connection (not startup options) and hold outside transactions.
#[sqlx::test]
async fn session_mode_sets_the_timeouts_per_connection(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) -> TestResult {
    let bouncer = TestPgBouncer::start(Mode::Session, 2);
    let pool = handle_in(
        PgBouncerMode::Session,
        &bouncer,
        &opts,
        Duration::from_millis(1234),
    )
    .await?;
    let timeout: String = common::scalar(&pool, "SHOW statement_timeout").await?;
    assert_eq!(timeout, "1234ms");
    Ok(())
}
