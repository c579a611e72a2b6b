//! The facade through a real PgBouncer in transaction mode (`DB_PGBOUNCER=transaction`,
//! two server connections, started on a free loopback port and killed by its pid: the pool's
//! harness, `crates/pool/tests/common/pgbouncer.rs`): a host's queries and transactions
//! through the handle, `statement_timeout` enforced, the importer, and the health cache.
//!
//! The migrations run on the test's direct connection first (`#[sqlx::test]`): sqlx's
//! migrator takes a session advisory lock, which transaction pooling cannot hold, so the
//! facade starts with `VITALS_MIGRATE=false` (docs/scaling.md says so).
//!
//! Run with `cargo test -p vitals --test pgbouncer` (needs `/usr/sbin/pgbouncer`).

mod common;
#[path = "../../pool/tests/common/pgbouncer.rs"]
mod pgbouncer_server;

use std::time::Duration;

use chrono::NaiveDate;
use common::import::file;
use pgbouncer_server::{Mode, TestPgBouncer};
use sqlx::PgPool;
use vitals::health::{self, records, SchoolGenerator, Tables};
use vitals::import::Source;
use vitals::pool::{PgBouncerMode, PoolConfig};
use vitals::{Config, Vitals};

/// The facade on `pool`'s database through `bouncer` in transaction mode, a 300 ms
/// statement timeout, Redis on a key prefix of `test`'s own, migrations off.
async fn vitals_through(bouncer: &TestPgBouncer, pool: &PgPool, test: &str) -> Vitals {
    let database = pool.connect_options().get_database().unwrap().to_owned();
    let mut config: Config = common::redis_config(test);
    config.database_url = Some(bouncer.url_of(&database));
    config.migrate = false;
    config.pg_schema = Some("public".into()); // where #[sqlx::test] migrated
    config.pool = PoolConfig::builder()
        .min_connections(0)
        .max_connections(6)
        .statement_timeout(Duration::from_millis(300))
        .pgbouncer(PgBouncerMode::Transaction)
        .build()
        .unwrap();
    Vitals::builder().config(config).build().await.unwrap()
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn the_facade_runs_through_pgbouncer_in_transaction_mode(pool: PgPool) {
    let bouncer = TestPgBouncer::start(Mode::Transaction, 2);
    let school = SchoolGenerator::new(40).seed(18).generate();
    health::load_school_postgres(&pool, &Tables::unqualified(), &school)
        .await
        .unwrap();
    let vitals = vitals_through(&bouncer, &pool, "pgbouncer").await;
    let db = vitals.db().postgres().unwrap();

    // Queries: bound statements from concurrent tasks, every answer right.
    let tasks: Vec<_> = (0..6_i64)
        .map(|t| {
            let db = db.clone();
            tokio::spawn(async move {
                for i in 0..20_i64 {
                    let n: i64 = sqlx::query_scalar("SELECT $1::int8 * 100 + $2::int8")
                        .bind(t)
                        .bind(i)
                        .fetch_one(&db)
                        .await
                        .unwrap();
                    assert_eq!(n, t * 100 + i);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let active: i64 = sqlx::query_scalar("SELECT count(*) FROM students WHERE active = $1")
        .bind(true)
        .fetch_one(db)
        .await
        .unwrap();
    assert_eq!(
        active,
        school.students.iter().filter(|s| s.active).count() as i64
    );

    // Transactions: a committed write is seen, a rolled-back one is not.
    let student = school.students[0].id;
    let doses = |vaccine: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM vaccinations WHERE student_id = $1 AND vaccine_name = $2",
            )
            .bind(student)
            .bind(vaccine)
            .fetch_one(&db)
            .await
            .unwrap()
        }
    };
    let day = NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
    let insert = "INSERT INTO vaccinations (id, student_id, vaccine_name, dose_number, \
                  administered_on) VALUES ($1, $2, $3, 1, $4)";
    for (vaccine, commit) in [("Committed", true), ("RolledBack", false)] {
        let mut tx = db.begin().await.unwrap();
        sqlx::query(insert)
            .bind(uuid::Uuid::new_v4())
            .bind(student)
            .bind(vaccine)
            .bind(day)
            .execute(&mut *tx)
            .await
            .unwrap();
        match commit {
            true => tx.commit().await.unwrap(),
            false => tx.rollback().await.unwrap(),
        }
    }
    assert_eq!(
        (doses("Committed").await, doses("RolledBack").await),
        (1, 0)
    );

    // statement_timeout enforced: a pg_sleep past it is cancelled.
    let err = sqlx::query("SELECT pg_sleep(3)")
        .execute(db)
        .await
        .unwrap_err();
    let code = err.as_database_error().and_then(|e| e.code());
    assert_eq!(code.as_deref(), Some("57014"), "{err}");

    // The health cache: a miss, then a hit; after a write and invalidation, the new row.
    let before = common::cached_summary(&vitals, student).await;
    assert_eq!(common::cached_summary(&vitals, student).await, before);
    common::add_vaccination(&vitals, student, "Dengue", day)
        .await
        .unwrap();
    vitals.health_cache().invalidate_student(student).await;
    let after = common::cached_summary(&vitals, student).await;
    assert_eq!(after.vaccinations.len(), before.vaccinations.len() + 1);
    let cache = vitals.cache_stats();
    assert!(cache.misses >= 2 && cache.l1_hits >= 1, "{cache:?}");

    // The importer: two imports (their statements on server connections other clients used).
    for round in 0..2 {
        let mut csv = String::from("student_id,vaccine_name,dose_number,administered_on\n");
        for s in &school.students {
            csv.push_str(&format!("{},Imported{round},1,2015-03-01\n", s.id));
        }
        let f = file(".csv", &csv);
        let source = Source::open(f.path(), None)
            .unwrap()
            .with_type(records::VACCINATION);
        let outcome = vitals.import(source, None).await.unwrap();
        assert_eq!(
            (outcome.report.imported, outcome.report.rejected),
            (school.students.len() as u64, 0),
            "{:#?}",
            outcome.report
        );
    }

    // The logger and the monitor saw it all.
    assert!(vitals.query_logger().statistics().total_queries > 100);
    let handle = vitals.pool_metrics().handle.unwrap();
    assert_eq!(handle.held, 0);
    assert_eq!(handle.acquire_errors_total, 0);
    vitals.shutdown().await;
}

/// Migrations through transaction pooling are refused at start, naming `VITALS_MIGRATE` and
/// the fix, before any migration statement is sent.
#[sqlx::test(migrations = "migrations/postgres")]
async fn migrations_through_transaction_pooling_are_refused_at_start(pool: PgPool) {
    let bouncer = TestPgBouncer::start(Mode::Transaction, 2);
    let database = pool.connect_options().get_database().unwrap().to_owned();
    let mut config = Config::defaults().unwrap();
    config.database_url = Some(bouncer.url_of(&database));
    config.migrate = true;
    config.pg_schema = Some("public".into());
    config.pool = PoolConfig::builder()
        .min_connections(0)
        .pgbouncer(PgBouncerMode::Transaction)
        .build()
        .unwrap();
    let Err(vitals::Error::Config(err)) = Vitals::builder().config(config).build().await else {
        panic!("migrations through PgBouncer's transaction mode should be refused");
    };
    let problem = err.problem("VITALS_MIGRATE").expect("VITALS_MIGRATE named");
    assert!(
        err.to_string().contains("DB_PGBOUNCER=transaction"),
        "{problem:?}"
    );
}
