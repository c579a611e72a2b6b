//! The PgBouncer path's latency beside a direct connection (issue 18, item 5), through the
//! monitored handle, one client, against real PostgreSQL (DATABASE_URL, default
//! postgres://postgres@127.0.0.1:5432/test) and a PgBouncer (`pool_mode = transaction`) the
//! bench starts itself on a free loopback port (the pool tests' harness) and kills on exit.
//! Without `/usr/sbin/pgbouncer` it says so and measures nothing.
//!
//! `cargo bench -p vitals-benches --bench pgbouncer -- --warm-up-time 1 --measurement-time 3`
//!
//! Three handles in each group, so the two costs come apart in one run:
//! - `direct`: `DB_PGBOUNCER=off`, straight to PostgreSQL;
//! - `direct_tx_rules`: `DB_PGBOUNCER=transaction` rules (a single statement wrapped in
//!   `BEGIN; SET LOCAL …` / `COMMIT`, unnamed statements) but still straight to PostgreSQL: the
//!   rules' own cost;
//! - `pgbouncer`: the same rules through PgBouncer: the rules plus the proxy's hop.
// criterion_group! generates an undocumented `pub fn benches`.
#![allow(missing_docs)]

#[path = "../../crates/pool/tests/common/pgbouncer.rs"]
mod pgbouncer_server;

use std::future::Future;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pgbouncer_server::{Mode, TestPgBouncer};
use vitals_pool::{MonitoredPool, PgBouncerMode, PoolConfig};

fn config(mode: PgBouncerMode) -> PoolConfig {
    PoolConfig::builder()
        .min_connections(1)
        .max_connections(4)
        .statement_timeout(Duration::from_secs(10))
        .pgbouncer(mode)
        .build()
        .expect("a valid pool configuration")
}

/// Group `group`: `unit` once an iteration on each of `handles`, one element each.
fn bench_each<'h, F, Fut>(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    handles: &'h [(&str, MonitoredPool<sqlx::Postgres>)],
    group: &str,
    unit: F,
) where
    F: Fn(&'h MonitoredPool<sqlx::Postgres>) -> Fut,
    Fut: Future<Output = i64>,
{
    let mut group = c.benchmark_group(group);
    group.throughput(Throughput::Elements(1));
    for (name, pool) in handles {
        group.bench_function(*name, |b| b.iter(|| black_box(rt.block_on(unit(pool)))));
    }
    group.finish();
}

/// One bound single statement (`SELECT $1::int8 + 1`) and one transaction (`BEGIN`, the
/// statement, `COMMIT`) on each of the three handles.
fn pgbouncer_path(c: &mut Criterion) {
    if !pgbouncer_server::installed() {
        eprintln!(
            "pgbouncer bench skipped: {} is not installed (Debian package `pgbouncer`)",
            pgbouncer_server::PGBOUNCER
        );
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let bouncer = TestPgBouncer::start(Mode::Transaction, 4);
    let direct_url = pgbouncer_server::database_url();
    let handles: Vec<(&str, MonitoredPool<sqlx::Postgres>)> = rt.block_on(async {
        let open = |mode, url: String| async move {
            config(mode)
                .connect_postgres_monitored(&url)
                .await
                .expect("connect")
        };
        vec![
            ("direct", open(PgBouncerMode::Off, direct_url.clone()).await),
            (
                "direct_tx_rules",
                open(PgBouncerMode::Transaction, direct_url.clone()).await,
            ),
            (
                "pgbouncer",
                open(PgBouncerMode::Transaction, bouncer.url()).await,
            ),
        ]
    });

    bench_each(c, &rt, &handles, "pgbouncer/statement", |pool| async move {
        sqlx::query_scalar("SELECT $1::int8 + 1")
            .bind(black_box(41_i64))
            .fetch_one(pool)
            .await
            .expect("statement")
    });
    bench_each(
        c,
        &rt,
        &handles,
        "pgbouncer/transaction",
        |pool| async move {
            let mut tx = pool.begin().await.expect("begin");
            let v: i64 = sqlx::query_scalar("SELECT $1::int8 + 1")
                .bind(black_box(41_i64))
                .fetch_one(&mut *tx)
                .await
                .expect("statement");
            tx.commit().await.expect("commit");
            v
        },
    );
    rt.block_on(async {
        for (_, pool) in handles {
            pool.inner().close().await;
        }
    });
    drop(bouncer);
}

criterion_group!(benches, pgbouncer_path);
criterion_main!(benches);
