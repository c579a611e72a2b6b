//! Faults with real processes, through the facade: a Redis this test starts and kills
//! mid-load, every PostgreSQL backend of the test's own database terminated mid-load and
//! mid-import, and a PostgreSQL that is not there at start.
//!
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo test -p vitals --test faults`
//! (needs `redis-server` on PATH; the main Redis and PostgreSQL are never stopped: only
//! backends whose `datname = current_database()` are terminated, and only the redis-server
//! this test started is killed, by its pid).

mod common;
#[path = "../../cache/tests/common/redis_server.rs"]
mod redis_server;

use common::{
    cached_summary, free_port, load_postgres_school, student_ids, vitals_on_postgres, Captured,
};
use redis_server::{eventually, TestRedis};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use uuid::Uuid;
use vitals::cache::BreakerState;
use vitals::health::{queries, HealthData};
use vitals::import::{Format, ImportError, ImportOptions, Source};
use vitals::pool::retry::retry;
use vitals::{Config, Error, Vitals};

/// Waits (at most `limit`) until `counter` reaches `n`; returns whether it did.
async fn count_reaches(counter: &Arc<AtomicU64>, n: u64, limit: Duration) -> bool {
    eventually(limit, || async { counter.load(Ordering::Relaxed) >= n }).await
}

/// Waits (at most `limit`) until `counter` has grown by `by` from what it is now; returns
/// whether it did.
async fn count_grows(counter: &Arc<AtomicU64>, by: u64, limit: Duration) -> bool {
    let from = counter.load(Ordering::Relaxed);
    count_reaches(counter, from + by, limit).await
}

/// A load task: until `stop` is set, runs `unit` on `ids` in turn from index `first`, every
/// `step`-th (`(first, step)`, cycling), counting in `ok` each that succeeds; returns what the
/// others failed with.
fn spawn_load<F, Fut>(
    stop: &Arc<AtomicBool>,
    ok: &Arc<AtomicU64>,
    ids: &Arc<Vec<Uuid>>,
    (first, step): (usize, usize),
    mut unit: F,
) -> tokio::task::JoinHandle<Vec<String>>
where
    F: FnMut(Uuid) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let (stop, ok, ids) = (stop.clone(), ok.clone(), ids.clone());
    tokio::spawn(async move {
        let mut failures = Vec::new();
        let mut i = first;
        while !stop.load(Ordering::Relaxed) {
            let id = ids[i % ids.len()];
            i += step;
            match unit(id).await {
                Ok(()) => {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
                Err(failure) => failures.push(failure),
            }
        }
        failures
    })
}

/// Tells the load tasks to stop and gathers what each saw fail.
async fn stop_and_join(
    stop: &AtomicBool,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
) -> Vec<String> {
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for t in tasks {
        failures.extend(t.await.unwrap());
    }
    failures
}

/// A configuration with quick Redis timeouts and breaker (failure paths finish fast), no
/// background warming, and a pool that reconnects quickly.
fn config(redis_url: Option<&str>, prefix: &str) -> Config {
    let mut c = Config::from_env_with(vitals::env::pairs(&[
        ("CACHE_WARMING_ENABLED", "false"),
        ("DB_RETRY_MAX", "5"),
        ("DB_RETRY_BASE_DELAY", "20"),
        ("DB_RETRY_MAX_DELAY", "200"),
    ]))
    .unwrap();
    c.cache = c
        .cache
        .with_redis_url(redis_url)
        .with_key_prefix(prefix)
        .with_encryption(Some(common::test_keyring()))
        .with_redis_timeouts(
            Duration::from_millis(300),
            Duration::from_millis(300),
            Duration::from_millis(50),
        )
        .with_breaker(2, Duration::from_millis(150));
    c
}

fn prefix(name: &str) -> String {
    format!("vt-faults-{name}-{}", Uuid::new_v4().simple())
}

/// A pool of at most `max` connections on the test's database and the facade on it, without
/// Redis, on a key prefix named after `name`, its monitor idle for the test's length.
async fn facade_on_own_pool(
    opts: PgPoolOptions,
    conn: &PgConnectOptions,
    max: u32,
    name: &str,
) -> (PgPool, Vitals) {
    let pool = opts
        .max_connections(max)
        .connect_with(conn.clone())
        .await
        .unwrap();
    let config = config(None, &prefix(name));
    let vitals = vitals_on_postgres(config, pool.clone(), Some(Duration::from_secs(3600))).await;
    (pool, vitals)
}

/// Terminates every backend of the current database but the caller's own; returns how many.
async fn terminate_own_database_backends(conn: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()) t",
    )
    .fetch_one(conn)
    .await
    .unwrap()
}

/// Redis dies under 16 readers spread over two instances and comes back on the same port:
/// no read fails (L1, then the database, serve them), both instances resubscribe, the
/// breaker closes, and a write on one instance reaches the other's L1 again.
#[sqlx::test(migrations = "migrations/postgres")]
async fn redis_stopped_mid_load_and_restarted_no_read_fails_and_coherence_returns(pool: PgPool) {
    let mut server = TestRedis::start().await;
    let prefix = prefix("redis");
    let build = |pool: PgPool| {
        Vitals::builder()
            .config(config(Some(&server.url()), &prefix))
            .postgres_pool(pool)
            .monitor_interval(Duration::from_secs(3600))
            .build()
    };
    let a = build(pool.clone()).await.unwrap();
    let b = build(pool.clone()).await.unwrap();
    assert!(a.cache().wait_subscribed(Duration::from_secs(5)).await);
    assert!(b.cache().wait_subscribed(Duration::from_secs(5)).await);
    let school = load_postgres_school(&pool, 60, 11).await;
    let ids = student_ids(&school);

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for t in 0..16usize {
        let v = if t % 2 == 0 { a.clone() } else { b.clone() };
        readers.push(spawn_load(&stop, &ok, &ids, (t, 7), move |id| {
            let v = v.clone();
            async move {
                let read = v.health_cache().student_health_summary(id).await;
                tokio::task::yield_now().await;
                match read {
                    Ok(Some(s)) if s.student.id == id => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            }
        }));
    }
    let reads_at = |n: u64| count_reaches(&ok, n, Duration::from_secs(10));
    let more_reads = |by: u64| count_grows(&ok, by, Duration::from_secs(10));
    assert!(reads_at(300).await, "the load never got going");

    server.kill();
    // Both lose the subscription (and clear L1); reads go on.
    for v in [&a, &b] {
        assert!(
            eventually(Duration::from_secs(5), || async {
                !v.cache().is_subscribed()
            })
            .await
        );
    }
    assert!(more_reads(300).await, "reads stalled while Redis was down");
    let breaker_opened = [&a, &b]
        .iter()
        .any(|v| v.cache_stats().breaker == Some(BreakerState::Open));

    server.restart().await;
    assert!(a.cache().wait_subscribed(Duration::from_secs(10)).await);
    assert!(b.cache().wait_subscribed(Duration::from_secs(10)).await);
    assert!(more_reads(300).await, "reads stalled after the restart");
    let failures = stop_and_join(&stop, readers).await;
    assert!(failures.is_empty(), "failed reads: {failures:?}");

    // The breaker heals: writes reach the restarted Redis again.
    for v in [&a, &b] {
        assert!(
            eventually(Duration::from_secs(10), || async {
                v.cache()
                    .set("probe", &1, Duration::from_secs(60), &[])
                    .await
                    .unwrap();
                v.cache_stats().breaker == Some(BreakerState::Closed)
                    && v.cache_stats().redis_connected
            })
            .await,
            "breaker never closed: {:?}",
            v.cache_stats()
        );
    }

    // Coherent again: B holds a student's summary in L1; a write announced on A reaches it.
    let student = ids[5];
    let before = cached_summary(&b, student).await;
    let expected = before.vaccinations.len() + 1;
    let key = HealthData::Summary.key(student);
    assert!(b.cache().l1().unwrap().contains(&key));
    sqlx::query(
        "INSERT INTO vaccinations (id, student_id, vaccine_name, dose_number, administered_on) \
         VALUES ($1, $2, 'After-restart', 1, $3)",
    )
    .bind(Uuid::new_v4())
    .bind(student)
    .bind(NaiveDate::from_ymd_opt(2026, 10, 1).unwrap())
    .execute(&pool)
    .await
    .unwrap();
    a.health_cache().invalidate_student(student).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            cached_summary(&b, student).await.vaccinations.len() == expected
        })
        .await,
        "B's L1 never saw A's invalidation after the restart"
    );
    eprintln!(
        "redis fault: {} reads ok, 0 failed; breaker opened while down: {breaker_opened}; \
         subscription losses a={} b={}",
        ok.load(Ordering::Relaxed),
        a.cache_stats().subscription_losses,
        b.cache_stats().subscription_losses
    );
    assert!(a.cache_stats().subscription_losses >= 1);
    a.shutdown().await;
    b.shutdown().await;
}

/// Every backend of the test's database is terminated while 12 tasks query through the
/// facade's pool with the configured retry policy: no unit of work fails, and the pool
/// serves later queries on new backends.
#[sqlx::test(migrations = "migrations/postgres")]
async fn every_postgres_backend_killed_mid_load_later_queries_succeed(
    opts: PgPoolOptions,
    conn: PgConnectOptions,
) {
    let (pool, vitals) = facade_on_own_pool(opts, &conn, 8, "pgload").await;
    let school = load_postgres_school(&pool, 40, 3).await;
    let ids = student_ids(&school);
    let policy = vitals.config().pool.retry_policy();

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..12usize {
        let (v, policy) = (vitals.clone(), policy.clone());
        tasks.push(spawn_load(&stop, &ok, &ids, (t, 5), move |id| {
            let (v, policy) = (v.clone(), policy.clone());
            async move {
                let db = v.db().postgres().unwrap();
                let r = retry(&policy, || {
                    queries::health_summary_postgres(db, v.tables(), id)
                })
                .await;
                match r {
                    Ok(Some(_)) => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            }
        }));
    }
    let wait_for = |n: u64| count_reaches(&ok, n, Duration::from_secs(15));
    assert!(wait_for(200).await, "the load never got going");
    let mut killer = conn.connect().await.unwrap();
    let pids_before: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut killer)
    .await
    .unwrap();
    let killed = terminate_own_database_backends(&mut killer).await;
    assert!(killed >= 1, "no backend to kill");
    let resumed = count_grows(&ok, 300, Duration::from_secs(15)).await;
    assert!(resumed, "queries did not resume after the kill");
    let failures = stop_and_join(&stop, tasks).await;
    assert!(failures.is_empty(), "units of work failed: {failures:?}");
    // Later queries run on new backends.
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(vitals.db().postgres().unwrap())
        .await
        .unwrap();
    assert!(
        !pids_before.contains(&pid),
        "a terminated backend served a query"
    );
    eprintln!(
        "pg kill mid-load: {killed} backends terminated, {} units of work ok, 0 failed",
        ok.load(Ordering::Relaxed)
    );
    killer.close().await.unwrap();
    vitals.shutdown().await;
}

/// NDJSON of `n` students, each followed by one vaccination: 2·n records.
fn students_with_vaccinations(ids: &[Uuid]) -> String {
    let mut s = String::new();
    for (i, id) in ids.iter().enumerate() {
        s.push_str(&format!(
            "{{\"type\":\"student\",\"id\":\"{id}\",\"student_number\":\"F-{i}\",\"first_name\":\"Fa{i}\",\"last_name\":\"Ul{i}\",\"date_of_birth\":\"2014-01-01\",\"grade\":\"3\"}}\n\
             {{\"type\":\"vaccination\",\"student_id\":\"{id}\",\"vaccine_name\":\"MMR\",\"dose_number\":1,\"administered_on\":\"2015-01-01\"}}\n"
        ));
    }
    s
}

async fn counts(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as("SELECT (SELECT count(*) FROM students), (SELECT count(*) FROM vaccinations)")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The import's third chunk is made to wait on a row lock (another session inserted one of
/// its students and has not committed), then every backend of the database is terminated.
/// The import reports a database error naming the chunk's first line; the two chunks before
/// it are committed whole (students and their vaccinations), nothing of the third is; running
/// the same import again brings in exactly the rest.
#[sqlx::test(migrations = "migrations/postgres")]
async fn every_postgres_backend_killed_mid_import_chunks_are_whole_and_a_rerun_completes(
    opts: PgPoolOptions,
    conn: PgConnectOptions,
) {
    const STUDENTS: usize = 200;
    const CHUNK: usize = 100; // 50 students + their 50 vaccinations
    let (pool, vitals) = facade_on_own_pool(opts, &conn, 4, "pgimport").await;
    let ids: Vec<Uuid> = (0..STUDENTS).map(|_| Uuid::new_v4()).collect();
    let content = students_with_vaccinations(&ids);
    let source = move || {
        Source::from_reader(
            std::io::Cursor::new(content.clone().into_bytes()),
            Format::Ndjson,
        )
        .unwrap()
    };
    let options = || ImportOptions::new().chunk_size(CHUNK);

    // Another session holds an uncommitted insert of a student of the third chunk.
    let mut blocker = conn.connect().await.unwrap();
    let mut tx = blocker.begin().await.unwrap();
    let blocked = ids[2 * CHUNK / 2 + 3];
    sqlx::query(
        "INSERT INTO students (id, student_number, first_name, last_name, date_of_birth, grade) \
         VALUES ($1, 'blocker', 'B', 'B', '2014-01-01', '3')",
    )
    .bind(blocked)
    .execute(&mut *tx)
    .await
    .unwrap();

    let v = vitals.clone();
    let first = source();
    let import = tokio::spawn(async move { v.import(first, Some(options())).await });
    let mut killer = conn.connect().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let waiting = loop {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut killer)
        .await
        .unwrap();
        if n > 0 || Instant::now() >= deadline {
            break n > 0;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(waiting, "the import never reached the locked row");
    let killed = terminate_own_database_backends(&mut killer).await;
    assert!(
        killed >= 2,
        "the import's and the blocker's backends: {killed}"
    );
    drop(tx);
    let _ = blocker.close().await;

    let err = tokio::time::timeout(Duration::from_secs(20), import)
        .await
        .expect("the import ended")
        .unwrap()
        .unwrap_err();
    let line = match &err {
        Error::Import(ImportError::Database { line, .. }) => *line,
        other => panic!("expected a database error of the import, got {other}"),
    };
    assert_eq!(
        line,
        (2 * CHUNK + 1) as u64,
        "the failed chunk is the third: {err}"
    );
    assert!(
        err.to_string().contains("chunk starting on line 201"),
        "the error says which chunk was not committed: {err}"
    );
    // Two chunks committed whole, nothing of the third.
    assert_eq!(counts(&pool).await, (CHUNK as i64, CHUNK as i64));

    // Running it again completes it.
    let report = vitals
        .import(source(), Some(options()))
        .await
        .unwrap()
        .report;
    assert_eq!(report.total, 2 * STUDENTS as u64);
    assert_eq!(report.duplicates, 2 * CHUNK as u64, "{report:#?}");
    assert_eq!(
        report.imported,
        (2 * STUDENTS - 2 * CHUNK) as u64,
        "{report:#?}"
    );
    assert_eq!(report.rejected, 0, "{report:#?}");
    assert_eq!(counts(&pool).await, (STUDENTS as i64, STUDENTS as i64));
    eprintln!("pg kill mid-import: {killed} backends terminated; {err}");
    killer.close().await.unwrap();
    vitals.shutdown().await;
}

/// Nothing listens where `DATABASE_URL` points: `build` returns a connect error after the
/// retry policy's attempts (no panic; bounded time), naming where it tried, with the
/// password masked in its text, its debug form and whatever this thread logged.
#[test]
fn postgres_unreachable_at_start_is_a_clear_error_after_the_retries() {
    let captured = Captured::default();
    // This thread only: the other tests of this binary do not write here.
    let _guard = tracing::subscriber::set_default(captured.subscriber(tracing::Level::TRACE));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let port = free_port();
    let url = format!("postgres://vitals:Sup3rSecretPw@127.0.0.1:{port}/school");
    let config = Config::from_env_with(vitals::env::pairs(&[
        ("DATABASE_URL", url.as_str()),
        ("DB_RETRY_MAX", "3"),
        ("DB_RETRY_BASE_DELAY", "50"),
        ("DB_RETRY_MAX_DELAY", "100"),
        ("DB_ACQUIRE_TIMEOUT", "1000"),
    ]))
    .unwrap();
    let t0 = Instant::now();
    let err = rt
        .block_on(Vitals::builder().config(config).build())
        .unwrap_err();
    let elapsed = t0.elapsed();
    let text = err.to_string();
    let debug = format!("{err:?}");
    let log = captured.text();
    eprintln!("unreachable at start after {elapsed:?}: {text}");
    // The retry policy ran: three attempts, each refused at once (a refused connect is not
    // waited out to the acquire timeout), and the error says so with the real reason.
    assert!(
        matches!(err, Error::Unreachable { attempts: 3, .. }),
        "{debug}"
    );
    assert!(text.contains("after 3 attempt"), "{text}");
    assert!(text.contains("cannot connect to"), "{text}");
    assert!(
        text.contains("127.0.0.1"),
        "the error names the host: {text}"
    );
    for s in [&text, &debug, &log] {
        assert!(!s.contains("Sup3rSecretPw"), "password leaked: {s}");
    }
    // Three refused attempts and two backoffs of at most 100 ms: far under one acquire
    // timeout (1 s), where a pool would have waited it out three times.
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}
