//! The embedded SQLite pool and the monitored handle on it; no server needed.
//! Run with `cargo test -p vitals-pool --test sqlite`.

use std::time::Duration;

use vitals_pool::{health_check, HealthStatus, MonitoredPool, PoolConfig, PoolProbe};

mod common;

use common::TestResult;

#[tokio::test]
async fn connect_sqlite_creates_the_file_and_sets_wal_busy_timeout_and_foreign_keys() -> TestResult
{
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("nested/dir/app.db");
    let url = format!("sqlite://{}", path.display());
    let cfg = PoolConfig::builder()
        .max_connections(2)
        .sqlite_busy_timeout(Duration::from_millis(1234))
        .build()?;
    let pool = cfg.connect_sqlite(&url).await?;
    assert!(path.exists(), "database file created");
    let mut a = pool.acquire().await?;
    let mut b = pool.acquire().await?;
    for conn in [&mut a, &mut b] {
        let mode: String = common::scalar(&mut **conn, "PRAGMA journal_mode").await?;
        let busy: i64 = common::scalar(&mut **conn, "PRAGMA busy_timeout").await?;
        let fk: i64 = common::scalar(&mut **conn, "PRAGMA foreign_keys").await?;
        assert_eq!((mode.as_str(), busy, fk), ("wal", 1234, 1));
    }
    Ok(())
}

#[tokio::test]
async fn the_monitored_handle_works_on_sqlite_and_counts_leaks() -> TestResult {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let cfg = PoolConfig::builder().max_connections(2).build()?;
    let pool = MonitoredPool::builder(cfg.connect_sqlite(&url).await?)
        .leak_threshold(Some(Duration::from_millis(1)))
        .build();
    sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        .execute(&pool)
        .await?;
    let n = sqlx::query("INSERT INTO t VALUES (1), (2)")
        .execute(&pool)
        .await?
        .rows_affected();
    assert_eq!(n, 2);

    let conn = pool.acquire().await?;
    // Held past the 1 ms threshold: poll until the clock has moved past it.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while conn.held_for() < Duration::from_millis(2) {
        assert!(std::time::Instant::now() < deadline);
        tokio::task::yield_now().await;
    }
    let stats = pool.stats();
    assert_eq!(stats.held, 1);
    assert_eq!(stats.leaked, 1);
    assert!(
        stats.leak_sites[0].contains("tests/sqlite.rs:"),
        "{:?}",
        stats.leak_sites
    );
    let long_before = stats.long_holds_total; // the statements above may count too
    drop(conn);
    let stats = pool.stats();
    assert_eq!((stats.held, stats.leaked), (0, 0));
    assert_eq!(stats.long_holds_total, long_before + 1);

    // sqlx returns a dropped connection on a spawned task: wait until it is idle again.
    while pool.state().active() > 0 {
        assert!(std::time::Instant::now() < deadline);
        tokio::task::yield_now().await;
    }
    let state = pool.state();
    assert_eq!(
        (state.max, state.waiting, state.waiting_exact),
        (2, Some(0), true)
    );
    let report = health_check(&pool, Duration::from_secs(5)).await;
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    Ok(())
}
