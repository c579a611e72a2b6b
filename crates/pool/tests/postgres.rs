//! vitals-pool against real PostgreSQL: timeouts on every connection, exact waiters and
//! alerts, cancellation, 60 tasks on 50 connections, killed backends, retry, the executor
//! seam and the bb8 probe. Each test gets a fresh database from `#[sqlx::test]`, with the
//! tables it only uses from `tests/fixtures/` (the observer's test creates its own through the
//! handle, which must see that statement).
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo test -p vitals-pool`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, Row};
use vitals_pool::retry::{retry, RetryPolicy};
use vitals_pool::{
    health_check, AlertKind, AlertState, HealthStatus, MonitorConfig, MonitoredConnection,
    MonitoredPool, MonitoredTransaction, PoolConfig, PoolError, PoolMonitor, PoolProbe,
};

mod common;

use common::{config, wait_until, Alerts, Seen, TestResult};

/// A monitored pool of at most `max` connections on the test's database (its tables, if
/// any, from the test's fixtures in `tests/fixtures/`).
async fn monitored(
    max: u32,
    opts: PgConnectOptions,
) -> Result<MonitoredPool<sqlx::Postgres>, PoolError> {
    Ok(MonitoredPool::new(
        config(max).connect_postgres_with(opts).await?,
    ))
}

#[sqlx::test]
async fn timeouts_are_set_on_every_connection_and_enforced(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) -> TestResult {
    let cfg = PoolConfig::builder()
        .min_connections(0)
        .max_connections(2)
        .statement_timeout(Duration::from_millis(300))
        .idle_in_transaction_timeout(Duration::from_millis(1500))
        .build()?;
    let pool = cfg.connect_postgres_with(opts).await?;
    // Two connections held at once, so both are checked, not one reused.
    let mut a = pool.acquire().await?;
    let mut b = pool.acquire().await?;
    for conn in [&mut a, &mut b] {
        let st: String = common::scalar(&mut **conn, "SHOW statement_timeout").await?;
        let it: String =
            common::scalar(&mut **conn, "SHOW idle_in_transaction_session_timeout").await?;
        assert_eq!(st, "300ms");
        assert_eq!(it, "1500ms");
    }
    let err = sqlx::query("SELECT pg_sleep(2)")
        .execute(&mut *a)
        .await
        .unwrap_err();
    let code = err.as_database_error().and_then(|e| e.code());
    assert_eq!(
        code.as_deref(),
        Some("57014"),
        "query_canceled expected: {err}"
    );
    Ok(())
}

#[sqlx::test]
async fn twenty_holders_on_a_pool_of_ten_show_ten_waiting_and_alerts_clear(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) -> TestResult {
    let pool = monitored(10, opts).await?;
    let sink = Arc::new(Alerts::default());
    let monitor = PoolMonitor::manual(pool.clone(), MonitorConfig::default(), sink.clone());

    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let held = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let pool = pool.clone();
        let mut release = release_rx.clone();
        let held = Arc::clone(&held);
        tasks.push(tokio::spawn(async move {
            let conn = pool.acquire().await?;
            held.fetch_add(1, Ordering::SeqCst);
            release.wait_for(|r| *r).await.ok();
            drop(conn);
            Ok::<_, PoolError>(())
        }));
    }
    wait_until("10 hold and 10 wait", || {
        held.load(Ordering::SeqCst) == 10 && pool.waiting() == 10
    })
    .await;

    let m = monitor.sample_now();
    assert_eq!(m.waiting_requests, Some(10));
    assert!(m.waiting_exact);
    assert_eq!(m.active_connections, 10);
    assert_eq!(m.utilization_percent, 100.0);
    let h = m.handle.as_ref().unwrap();
    assert_eq!(h.held, 10);
    assert!(h.oldest_wait_ms.is_some());
    assert!(sink.has(AlertKind::ConnectionWait, AlertState::Raised));
    assert!(sink.has(AlertKind::PoolExhaustion, AlertState::Raised));
    assert!(sink.has(AlertKind::HighUtilization, AlertState::Raised));
    // Not repeated while the state lasts.
    let before = sink.0.lock().unwrap().len();
    monitor.sample_now();
    assert_eq!(sink.0.lock().unwrap().len(), before);

    release_tx.send(true)?;
    for t in tasks {
        t.await??;
    }
    assert_eq!(held.load(Ordering::SeqCst), 20);
    // Connections go back to the pool on a spawned task; poll the samples.
    wait_until("alerts clear", || {
        monitor.sample_now();
        monitor.active_alerts().is_empty()
    })
    .await;
    assert!(sink.has(AlertKind::ConnectionWait, AlertState::Cleared));
    assert!(sink.has(AlertKind::PoolExhaustion, AlertState::Cleared));
    let latest = monitor.latest().unwrap();
    assert_eq!(latest.waiting_requests, Some(0));
    let summary = monitor.summary();
    // All 20 queued at once before the first connections opened: the peak is at least 10.
    let peak = summary.peak_waiting.unwrap();
    assert!((10..=20).contains(&peak), "peak {peak}");
    assert_eq!(
        summary.alerts_by_kind.get(&AlertKind::PoolExhaustion),
        Some(&1)
    );
    assert_eq!(pool.stats().acquired_total, 20);
    serde_json::to_string(&summary)?;
    Ok(())
}

#[sqlx::test]
async fn a_cancelled_acquire_leaves_waiting_at_zero(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) -> TestResult {
    let pool = monitored(1, opts).await?;
    let held = pool.acquire().await?;
    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.acquire().await.map(drop) })
    };
    wait_until("one waiter", || pool.waiting() == 1).await;
    waiter.abort();
    assert!(waiter.await.unwrap_err().is_cancelled());
    assert_eq!(pool.waiting(), 0);
    assert_eq!(pool.state().waiting, Some(0));
    assert_eq!(pool.stats().cancelled_acquires_total, 1);

    // A timed-out `tokio::time::timeout` around acquire is a cancellation too.
    let r = tokio::time::timeout(Duration::from_millis(20), pool.acquire()).await;
    assert!(r.is_err());
    assert_eq!(pool.waiting(), 0);
    assert_eq!(pool.stats().cancelled_acquires_total, 2);
    drop(held);
    Ok(())
}

#[sqlx::test]
async fn an_acquire_timeout_is_counted_and_reported(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) -> TestResult {
    let cfg = PoolConfig::builder()
        .min_connections(0)
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(100))
        .build()?;
    let pool = cfg.monitored(cfg.connect_postgres_with(opts).await?);
    let _held = pool.acquire().await?;
    let err = pool.acquire().await.unwrap_err();
    assert!(matches!(err, PoolError::AcquireTimeout { .. }), "{err}");
    assert!(err.is_transient());
    let stats = pool.stats();
    assert_eq!(stats.acquire_timeouts_total, 1);
    assert_eq!(stats.waiting, 0);
    Ok(())
}

#[sqlx::test]
async fn sixty_tasks_on_a_pool_of_fifty_finish_without_a_timeout(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) -> TestResult {
    let pool = monitored(50, opts).await?;
    let tasks: Vec<_> = (0..60)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                sqlx::query("SELECT pg_sleep(0.02)")
                    .execute(&pool)
                    .await
                    .map(drop)
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let stats = pool.stats();
    assert_eq!(stats.acquired_total, 60);
    assert_eq!(stats.acquire_timeouts_total, 0);
    assert_eq!(stats.acquire_errors_total, 0);
    assert_eq!(stats.waiting, 0);
    Ok(())
}

#[sqlx::test]
async fn after_every_backend_is_terminated_later_queries_succeed(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) -> TestResult {
    let pool = monitored(4, opts.clone()).await?;
    let policy = RetryPolicy::new(3).base_delay(Duration::from_millis(10));
    // Open several connections.
    let warm: Vec<_> = (0..4)
        .map(|_| sqlx::query("SELECT pg_sleep(0.05)").execute(&pool))
        .collect();
    for r in futures::future::join_all(warm).await {
        r?;
    }
    let mut admin = PgConnection::connect_with(&opts).await?;

    // One unit of work is mid-query when every backend of this database is killed.
    let attempts = AtomicU32::new(0);
    let work = retry(&policy, || async {
        let n = attempts.fetch_add(1, Ordering::SeqCst);
        let sleep = if n == 0 { 5.0 } else { 0.0 };
        sqlx::query("SELECT pg_sleep($1)")
            .bind(sleep)
            .execute(&pool)
            .await
            .map(drop)
    });
    let kill = async {
        let deadline = Instant::now() + Duration::from_secs(8);
        loop {
            let running: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND state = 'active' AND query LIKE 'SELECT pg_sleep(%'",
            )
            .fetch_one(&mut admin)
            .await?;
            if running == 1 {
                break;
            }
            assert!(Instant::now() < deadline, "the long query never started");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Only this test's database: other suites share the server.
        sqlx::query_scalar::<_, i64>(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut admin)
        .await
    };
    let (work, killed) = tokio::join!(work, kill);
    assert!(killed? >= 4, "every pooled backend terminated");
    work?;
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        2,
        "retried once after 57P01"
    );

    // The idle connections were killed too: the ping before acquire replaces them.
    for i in 0..8 {
        let one: i32 = sqlx::query_scalar("SELECT $1")
            .bind(i)
            .fetch_one(&pool)
            .await?;
        assert_eq!(one, i);
    }
    Ok(())
}

/// A SERIALIZABLE transaction on `conn`, and the sum of the doses it read.
async fn serializable_sum(
    conn: &mut MonitoredConnection<sqlx::Postgres>,
) -> Result<(MonitoredTransaction<'_, sqlx::Postgres>, i64), sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
        .execute(&mut *tx)
        .await?;
    let sum: i64 = sqlx::query_scalar("SELECT sum(mg) FROM doses")
        .fetch_one(&mut *tx)
        .await?;
    Ok((tx, sum))
}

#[sqlx::test(fixtures("doses"))]
async fn a_serialization_failure_is_retried_and_succeeds(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) -> TestResult {
    let pool = monitored(3, opts).await?;
    let policy = RetryPolicy::new(3).base_delay(Duration::from_millis(5));
    let attempts = AtomicU32::new(0);
    let failures = Mutex::new(Vec::new());
    let total: i64 = retry(&policy, || async {
        let n = attempts.fetch_add(1, Ordering::SeqCst);
        let mut conn = pool.acquire().await?;
        let (mut tx, sum) = serializable_sum(&mut conn).await?;
        if n == 0 {
            // A concurrent SERIALIZABLE transaction reads and writes the same rows and commits
            // first: write skew, so this one must fail with 40001.
            let mut other_conn = pool.acquire().await?;
            let (mut other, s) = serializable_sum(&mut other_conn).await?;
            sqlx::query("INSERT INTO doses VALUES (100, $1)")
                .bind(i32::try_from(s).unwrap_or(0))
                .execute(&mut *other)
                .await?;
            other.commit().await?;
        }
        let r = async {
            sqlx::query("INSERT INTO doses VALUES ($1, $2)")
                .bind(200 + i32::try_from(n).unwrap_or(0))
                .bind(i32::try_from(sum).unwrap_or(0))
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = &r {
            failures.lock().unwrap().push(
                e.as_database_error()
                    .and_then(|d| d.code())
                    .map(|c| c.into_owned()),
            );
        }
        r?;
        Ok::<_, PoolError>(sum)
    })
    .await?;
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(*failures.lock().unwrap(), [Some("40001".to_owned())]);
    assert_eq!(total, 30 + 30, "the retry saw the other transaction's row");
    Ok(())
}

#[sqlx::test(fixtures("students"))]
async fn syntax_errors_and_unique_violations_come_back_untried(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) -> TestResult {
    let pool = monitored(2, opts).await?;
    let policy = RetryPolicy::new(5).base_delay(Duration::from_millis(1));
    for (sql, code) in [
        ("SELEC 1", "42601"),
        ("INSERT INTO students VALUES (1)", "23505"),
    ] {
        let attempts = AtomicU32::new(0);
        let err = retry(&policy, || async {
            attempts.fetch_add(1, Ordering::SeqCst);
            sqlx::query(sql).execute(&pool).await.map(drop)
        })
        .await
        .unwrap_err();
        assert_eq!(attempts.load(Ordering::SeqCst), 1, "{sql}");
        let got = err.as_database_error().and_then(|d| d.code());
        assert_eq!(got.as_deref(), Some(code));
        assert!(!vitals_pool::is_transient(&err));
    }
    Ok(())
}

#[sqlx::test]
async fn a_refused_statement_shows_its_sqlstate_not_the_quoted_value(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) -> TestResult {
    let pool = monitored(1, opts).await?;
    let run = async {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT 'Ann Lee'::int")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok::<_, PoolError>(())
    };
    let err = run.await.unwrap_err();
    assert_eq!(err.to_string(), "database error: sqlstate 22P02");
    let source = std::error::Error::source(&err).map(ToString::to_string);
    assert!(
        source.is_some_and(|s| s.contains("Ann Lee")),
        "the server's text stays in the source, for matching"
    );
    assert!(matches!(&err, PoolError::Sqlx(e) if e.as_database_error().is_some()));
    Ok(())
}

#[sqlx::test]
async fn the_executor_reports_every_statement_to_the_observer(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) -> TestResult {
    let seen = Arc::new(Seen::default());
    let base = MonitoredPool::builder(config(2).connect_postgres_with(opts).await?)
        .benchmark(true)
        .build();
    let pool = base.with_observer(seen.clone());
    sqlx::query("CREATE TABLE visits (id int)")
        .execute(&pool)
        .await?;
    let inserted = sqlx::query("INSERT INTO visits SELECT g FROM generate_series(1, 4) g")
        .execute(&pool)
        .await?;
    assert_eq!(inserted.rows_affected(), 4);
    // In a spawned task: the executor's futures are Send.
    let p = pool.clone();
    let rows = tokio::spawn(async move {
        sqlx::query("SELECT id FROM visits WHERE id > $1 ORDER BY id")
            .bind(1)
            .fetch_all(&p)
            .await
    })
    .await??;
    assert_eq!(rows.len(), 3);
    let one: i32 = sqlx::query_scalar("SELECT id FROM visits WHERE id = 2")
        .fetch_one(&pool)
        .await?;
    assert_eq!(one, 2);
    assert!(sqlx::query("SELECT nope FROM visits")
        .fetch_all(&pool)
        .await
        .is_err());
    // A stream dropped after its first row is still reported, with the rows seen.
    {
        let mut s = sqlx::query("SELECT id FROM visits ORDER BY id").fetch(&pool);
        let first = s.next().await.unwrap()?;
        assert_eq!(first.get::<i32, _>(0), 1);
    }
    let seen = seen.0.lock().unwrap().clone();
    let summary: Vec<(&str, u64, bool)> = seen[..5]
        .iter()
        .map(|(s, r, e)| (s.as_str(), *r, *e))
        .collect();
    assert_eq!(
        summary,
        [
            ("CREATE TABLE visits (id int)", 0, false),
            (
                "INSERT INTO visits SELECT g FROM generate_series(1, 4) g",
                4,
                false
            ),
            ("SELECT id FROM visits WHERE id > $1 ORDER BY id", 3, false),
            ("SELECT id FROM visits WHERE id = 2", 1, false),
            ("SELECT nope FROM visits", 0, true),
        ]
    );
    // The producer may run ahead of the consumer by the channel's buffer.
    let (sql, rows, failed) = &seen[6 - 1];
    assert_eq!(sql, "SELECT id FROM visits ORDER BY id");
    assert!((1..=4).contains(rows) && !failed, "{rows}");
    // The handle without the observer shares the statistics.
    let stats = base.stats();
    assert_eq!(stats.acquired_total, 6);
    assert_eq!(stats.query.map(|q| q.count), Some(6));
    Ok(())
}

#[sqlx::test]
async fn health_check_grades_a_live_pool_and_a_dead_one(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) -> TestResult {
    let pool = monitored(2, opts.clone()).await?;
    let report = health_check(&pool, Duration::from_secs(5)).await;
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    assert!(report.latency_ms > 0.0);
    let json = serde_json::to_value(&report)?;
    assert_eq!(json["status"], "healthy");
    let bare = health_check(pool.inner(), Duration::from_secs(5)).await;
    assert_eq!(bare.status, HealthStatus::Healthy);

    // Nothing listens on a port we just released: connecting is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let dead = PoolConfig::builder()
        .min_connections(0)
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(500))
        .build()?
        .pg_pool_options()
        .connect_lazy_with(opts.host("127.0.0.1").port(port));
    let dead = MonitoredPool::new(dead);
    let sink = Arc::new(Alerts::default());
    let monitor = PoolMonitor::manual(dead.clone(), MonitorConfig::default(), sink.clone());
    let report = health_check(&dead, Duration::from_secs(2)).await;
    assert_eq!(report.status, HealthStatus::Unhealthy, "{report:?}");
    assert!(report.reason.is_some());
    monitor.sample_now();
    assert!(sink.has(AlertKind::ConnectionError, AlertState::Raised));
    monitor.sample_now();
    assert!(sink.has(AlertKind::ConnectionError, AlertState::Cleared));
    Ok(())
}

/// A minimal bb8 manager for a sqlx connection, to probe a bb8 pool.
struct PgManager(PgConnectOptions);

impl bb8::ManageConnection for PgManager {
    type Connection = PgConnection;
    type Error = sqlx::Error;
    async fn connect(&self) -> Result<PgConnection, sqlx::Error> {
        PgConnection::connect_with(&self.0).await
    }
    async fn is_valid(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        conn.ping().await
    }
    fn has_broken(&self, _: &mut PgConnection) -> bool {
        false
    }
}

#[sqlx::test]
async fn the_bb8_probe_reports_bb8_waiters_which_drift_on_cancel(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) -> TestResult {
    let pool = bb8::Pool::builder()
        .max_size(1)
        .connection_timeout(Duration::from_secs(10))
        .build(PgManager(opts))
        .await?;
    let held = pool.get().await?;
    let s = PoolProbe::state(&pool);
    assert_eq!((s.size, s.idle, s.max, s.waiting), (1, 0, 1, Some(0)));
    assert!(!s.waiting_exact);
    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.get().await.map(drop) })
    };
    wait_until("bb8 counts the waiter", || {
        PoolProbe::state(&pool).waiting == Some(1)
    })
    .await;
    waiter.abort();
    assert!(waiter.await.unwrap_err().is_cancelled());
    // bb8 never records the cancelled get as finished: its count stays high. This is why
    // MonitoredPool counts its own waiters.
    assert_eq!(PoolProbe::state(&pool).waiting, Some(1));
    drop(held);
    Ok(())
}
