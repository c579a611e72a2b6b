//! A commit whose outcome is unknown is never run again, on real PostgreSQL (a fresh database
//! per test from `#[sqlx::test]`): the backend terminated before `COMMIT`, and a `COMMIT`
//! that landed but whose reply a TCP proxy in front of the server threw away.
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo test -p vitals-pool --test lost_commit`.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use vitals_pool::retry::{retry, RetryPolicy};
use vitals_pool::{MonitoredPool, MonitoredTransaction, PoolError};

mod common;

use common::{config, TestResult};

const TABLE: &str = "CREATE TABLE doses (id serial PRIMARY KEY, student_id int NOT NULL)";
const INSERT: &str = "INSERT INTO doses (student_id) VALUES (7)";

type Transaction = MonitoredTransaction<'static, sqlx::Postgres>;

/// Three attempts with short waits: the test is about whether a second one happens.
fn policy() -> RetryPolicy {
    RetryPolicy::new(3)
        .base_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(5))
}

async fn doses(opts: &PgConnectOptions) -> Result<i64, sqlx::Error> {
    let direct = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(opts.clone())
        .await?;
    sqlx::query_scalar("SELECT count(*) FROM doses")
        .fetch_one(&direct)
        .await
}

/// Inserts a dose and commits, retried under [`policy`], the first attempt running
/// `before_commit` on its transaction; then checks that the commit's outcome was unknown: an
/// error that says so and is not transient (`succeeded` is the message if there is none), a
/// closure that ran once, and `landed` doses in the table.
async fn commit_once_with_unknown_outcome(
    pool: &MonitoredPool<sqlx::Postgres>,
    before_commit: impl AsyncFn(&mut Transaction) -> Result<(), PoolError>,
    succeeded: &str,
    opts: &PgConnectOptions,
    landed: i64,
) -> TestResult {
    let runs = AtomicU32::new(0);
    let outcome = retry(&policy(), || async {
        let run = runs.fetch_add(1, Ordering::SeqCst);
        let mut tx = pool.begin().await?;
        sqlx::query(INSERT).execute(&mut *tx).await?;
        if run == 0 {
            before_commit(&mut tx).await?;
        }
        tx.commit().await?;
        Ok::<_, PoolError>(())
    })
    .await;
    let err = outcome.expect_err(succeeded);
    assert!(err.is_commit_outcome_unknown(), "{err} ({err:?})");
    assert!(!err.is_transient(), "{err}");
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the closure ran again");
    assert_eq!(doses(opts).await?, landed);
    Ok(())
}

#[sqlx::test]
async fn a_commit_on_a_terminated_backend_is_outcome_unknown_and_not_run_again(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) -> TestResult {
    let pool = MonitoredPool::builder(config(2).connect_postgres_with(opts.clone()).await?).build();
    sqlx::query(TABLE).execute(&pool).await?;
    let killer = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(opts.clone())
        .await?;
    let terminate = async |tx: &mut Transaction| {
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut **tx)
            .await?;
        // The two-argument form returns once the backend has exited (PostgreSQL 14+).
        let gone: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 10000)")
            .bind(pid)
            .fetch_one(&killer)
            .await?;
        assert!(gone, "backend {pid} still there");
        Ok(())
    };
    // The backend died before COMMIT, so nothing landed; the client could not know that.
    commit_once_with_unknown_outcome(
        &pool,
        terminate,
        "the commit on a terminated backend succeeded",
        &opts,
        0,
    )
    .await
}

/// A TCP proxy to the server that, once armed, forwards the next `COMMIT` to the server and
/// then closes the client's connection instead of forwarding the server's reply: the
/// transaction commits and the client never hears it.
struct LossyProxy {
    port: u16,
    armed: Arc<AtomicBool>,
}

impl LossyProxy {
    async fn start(server: (String, u16)) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let armed = Arc::new(AtomicBool::new(false));
        let trigger = armed.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = server.clone();
                let trigger = trigger.clone();
                tokio::spawn(async move {
                    if let Ok(upstream) = TcpStream::connect(server).await {
                        pipe(client, upstream, trigger).await;
                    }
                });
            }
        });
        Ok(Self { port, armed })
    }

    fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }
}

/// Forwards both ways until either side closes, or until the reply to an armed `COMMIT`
/// arrives: then both connections are dropped without it.
async fn pipe(client: TcpStream, upstream: TcpStream, armed: Arc<AtomicBool>) {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = upstream.into_split();
    let commit_sent = Arc::new(tokio::sync::Notify::new());
    let sent = commit_sent.clone();
    let to_server = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match client_rx.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            let lose_reply =
                chunk.windows(6).any(|w| w == b"COMMIT") && armed.swap(false, Ordering::SeqCst);
            // Told before the COMMIT leaves, so its reply cannot be forwarded first.
            if lose_reply {
                sent.notify_one();
            }
            if server_tx.write_all(chunk).await.is_err() {
                return;
            }
            if lose_reply {
                // Keep the server's side open until the reply has been read and dropped.
                std::future::pending::<()>().await;
            }
        }
    };
    let to_client = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            tokio::select! {
                biased;
                () = commit_sent.notified() => {
                    // The server's reply to COMMIT (CommandComplete, ReadyForQuery): it has
                    // committed. Read it, then drop everything unforwarded.
                    let _ = server_rx.read(&mut buf).await;
                    return;
                }
                read = server_rx.read(&mut buf) => {
                    let n = match read {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if client_tx.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    // Whichever direction ends first ends the connection: both halves drop here.
    tokio::select! {
        () = to_server => {}
        () = to_client => {}
    }
}

#[sqlx::test]
async fn a_commit_whose_reply_is_lost_is_not_run_again(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) -> TestResult {
    let proxy = LossyProxy::start((opts.get_host().to_owned(), opts.get_port())).await?;
    // In clear text, so the proxy can see the COMMIT.
    let through_proxy = opts
        .clone()
        .host("127.0.0.1")
        .port(proxy.port)
        .ssl_mode(PgSslMode::Disable);
    let pool =
        MonitoredPool::builder(config(2).connect_postgres_with(through_proxy).await?).build();
    sqlx::query(TABLE).execute(&pool).await?;
    proxy.arm();
    // The COMMIT landed: one dose. Running the closure again would have recorded a second.
    commit_once_with_unknown_outcome(
        &pool,
        async |_: &mut Transaction| Ok(()),
        "the COMMIT's reply reached the client",
        &opts,
        1,
    )
    .await
}
