//! The replica router's cost per statement and the read-your-writes catch-up wait, on a
//! primary and a streaming standby this bench starts (`initdb`, `pg_basebackup -R`, free
//! loopback ports; the harness of `crates/pool/tests/replicas.rs`).
//!
//! `cargo bench -p vitals-benches --bench routing -- routing/pick --warm-up-time 1 --measurement-time 3`
//! times choosing the read handle: `ReplicaRouter::read` outside a scope, inside a
//! read-your-writes scope holding a write token, and (the peer) borrowing the primary's pool.
//!
//! `cargo bench -p vitals-benches --bench routing -- routing/statement --warm-up-time 1 --measurement-time 3`
//! runs `SELECT 1` on the primary directly and on the router's read handle (the standby).
//!
//! `cargo bench -p vitals-benches --bench routing -- routing/catch_up` prints the wait of a read
//! after a write for the standby to replay it (200 writes; median, p90, max): not a criterion
//! measurement, it runs only when asked for.
//!
//! `cargo bench -p vitals-benches --bench routing -- routing/throughput` prints the reads per
//! second of 8 tasks for 2 s each: all on the primary, then all through the router (on the
//! standby, which shares the machine's 2 cores with the primary). Asked-for only, like
//! `catch_up`.
// criterion_group! generates an undocumented `pub fn benches`.
#![allow(missing_docs)]

#[path = "../../crates/pool/tests/common/pg_standby.rs"]
mod pg_standby;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vitals_pool::{read_your_writes, PoolConfig, ReadTarget, ReplicaConfig, ReplicaRouter};

struct Setup {
    _primary: pg_standby::PgPrimary,
    _standby: pg_standby::PgStandby,
    router: ReplicaRouter,
    rt: tokio::runtime::Runtime,
}

fn setup() -> Setup {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let primary = pg_standby::PgPrimary::start().expect("start a primary");
    let standby = pg_standby::PgStandby::of(&primary).expect("start a standby");
    let config = PoolConfig::builder()
        .min_connections(2)
        .max_connections(4)
        .build()
        .expect("pool config");
    let router = rt.block_on(async {
        let pool = config
            .connect_postgres_monitored(&primary.url())
            .await
            .expect("connect to the primary");
        let replicas = ReplicaConfig::new([standby.url()])
            .check_interval_of(Duration::from_millis(100))
            .wait_of(Duration::from_secs(2));
        let router = ReplicaRouter::connect(
            pool,
            &replicas,
            &config,
            Arc::new(vitals_pool::TracingAlertSink),
        )
        .await
        .expect("connect the replica");
        sqlx::query("CREATE TABLE marks (id bigserial PRIMARY KEY, n int NOT NULL)")
            .execute(router.write())
            .await
            .expect("create a table");
        let deadline = Instant::now() + Duration::from_secs(20);
        while router.read().target() == ReadTarget::Primary {
            assert!(Instant::now() < deadline, "the standby never became fit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        router
    });
    Setup {
        _primary: primary,
        _standby: standby,
        router,
        rt,
    }
}

/// Choosing the read handle: the router outside a scope (round robin over fit replicas),
/// inside a scope holding a token (each replica's replay position compared), and the peer:
/// borrowing the primary's pool, which is what a single-database handle costs.
fn pick(c: &mut Criterion, s: &Setup) {
    let mut group = c.benchmark_group("routing/pick");
    group.throughput(Throughput::Elements(1));
    let router = &s.router;
    group.bench_function("primary_pool_borrowed", |b| {
        b.iter(|| black_box(router.primary()))
    });
    group.bench_function("read_outside_scope", |b| {
        b.iter(|| black_box(router.read().target()))
    });
    s.rt.block_on(read_your_writes(async {
        sqlx::query("INSERT INTO marks (n) VALUES (1)")
            .execute(router.write())
            .await
            .expect("insert");
        assert_ne!(router.read_consistent().await.target(), ReadTarget::Primary);
        group.bench_function("read_in_scope_with_token", |b| {
            b.iter(|| black_box(router.read().target()))
        });
    }));
    group.finish();
}

/// `SELECT 1` on the primary's pool directly and on the router's read handle (the standby).
fn statement(c: &mut Criterion, s: &Setup) {
    let mut group = c.benchmark_group("routing/statement");
    group.throughput(Throughput::Elements(1));
    let router = &s.router;
    group.bench_function("primary_direct", |b| {
        b.to_async(&s.rt).iter(|| async {
            sqlx::query("SELECT 1")
                .execute(router.primary())
                .await
                .expect("select")
        })
    });
    group.bench_function("routed_read", |b| {
        b.to_async(&s.rt).iter(|| async {
            sqlx::query("SELECT 1")
                .execute(router.read().pool())
                .await
                .expect("select")
        })
    });
    group.finish();
}

/// The wait of a read after a write (in its scope) for the standby to replay it.
fn catch_up(s: &Setup) {
    let router = &s.router;
    let mut waits: Vec<Duration> = s.rt.block_on(async {
        let mut waits = Vec::with_capacity(200);
        for i in 0..200 {
            let wait = read_your_writes(async {
                sqlx::query("INSERT INTO marks (n) VALUES ($1)")
                    .bind(i)
                    .execute(router.write())
                    .await
                    .expect("insert");
                let start = Instant::now();
                let read = router.read_consistent().await;
                assert_ne!(
                    read.target(),
                    ReadTarget::Primary,
                    "the standby fell behind"
                );
                start.elapsed()
            })
            .await;
            waits.push(wait);
        }
        waits
    });
    waits.sort();
    let at = |q: f64| waits[((waits.len() - 1) as f64 * q) as usize];
    println!(
        "routing/catch_up: {} reads after a write: median {:?}, p90 {:?}, max {:?}; {:?}",
        waits.len(),
        at(0.5),
        at(0.9),
        at(1.0),
        router.stats()
    );
}

/// Reads per second of 8 tasks for 2 s: on the primary's pool, then on the router's reads.
fn throughput(s: &Setup) {
    let router = &s.router;
    let run = |routed: bool| {
        s.rt.block_on(async {
            let end = Instant::now() + Duration::from_secs(2);
            let tasks = (0..8).map(|_| {
                let router = router.clone();
                tokio::spawn(async move {
                    let mut n = 0_u64;
                    while Instant::now() < end {
                        let pool = if routed {
                            router.read().pool().clone()
                        } else {
                            router.primary().clone()
                        };
                        sqlx::query("SELECT count(*) FROM marks")
                            .execute(&pool)
                            .await
                            .expect("select");
                        n += 1;
                    }
                    n
                })
            });
            let counts = futures::future::join_all(tasks).await;
            counts.into_iter().map(|c| c.expect("task")).sum::<u64>() as f64 / 2.0
        })
    };
    let primary = run(false);
    let routed = run(true);
    println!(
        "routing/throughput: primary only {primary:.0} reads/s, through the router (standby) \
         {routed:.0} reads/s, ratio {:.2}",
        routed / primary
    );
}

fn benches(c: &mut Criterion) {
    let s = setup();
    pick(c, &s);
    statement(c, &s);
    if std::env::args().any(|a| a.contains("routing/catch_up")) {
        catch_up(&s);
    }
    if std::env::args().any(|a| a.contains("routing/throughput")) {
        throughput(&s);
    }
    s.rt.block_on(s.router.shutdown());
}

criterion_group!(routing, benches);
criterion_main!(routing);
