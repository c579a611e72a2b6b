//! The health cache serves allergies and chronic conditions stale when PostgreSQL fails
//! (issue 15, item 5), and only those: the failure is real (the test drops the tables of
//! its own `#[sqlx::test]` database), nothing shared is stopped.
//!
//! Run with `cargo test -p vitals --test fail_safe`.

mod common;

use std::time::Duration;

use sqlx::PgPool;
use tokio::time::Instant;
use vitals::health::{self, SchoolGenerator};
use vitals::Config;

#[sqlx::test(migrations = "migrations/postgres")]
async fn allergies_and_conditions_are_served_stale_when_postgresql_fails(pool: PgPool) {
    // L1 only, with a short L1 life: past it the next read goes to PostgreSQL.
    let l1_life = Duration::from_millis(300);
    let mut config = Config::defaults().unwrap();
    config.cache = config.cache.with_l1(true, 1000, l1_life);
    let vitals = common::vitals_on_postgres(config, pool.clone(), None).await;
    let school = SchoolGenerator::new(40).seed(5).generate();
    common::load_school(&vitals, &school).await;
    let allergic = school.allergies[0].student_id;
    let chronic = school.chronic_conditions[0].student_id;
    let health = vitals.health_cache();

    let read_at = Instant::now();
    let allergies = health.allergies_loaded(allergic).await.unwrap();
    assert!(!allergies.stale && !allergies.value.is_empty());
    let conditions = health.chronic_conditions_loaded(chronic).await.unwrap();
    assert!(!conditions.stale && !conditions.value.is_empty());
    health.vaccinations(allergic).await.unwrap();

    // PostgreSQL fails every read of these lists: their tables are gone.
    let t = vitals.tables();
    for table in ["allergies", "chronic_conditions", "vaccinations"] {
        sqlx::query(&format!("DROP TABLE {} CASCADE", t.table(table)))
            .execute(&pool)
            .await
            .unwrap();
    }
    tokio::time::sleep_until(read_at + l1_life + Duration::from_millis(100)).await;

    let before = vitals.cache_stats();
    let stale = health
        .allergies_loaded(allergic)
        .await
        .expect("served stale");
    assert!(stale.stale, "says it is stale");
    assert_eq!(stale.value, allergies.value, "the last list read");
    let stale = health
        .chronic_conditions_loaded(chronic)
        .await
        .expect("served stale");
    assert!(stale.stale);
    assert_eq!(stale.value, conditions.value);
    // The plain reads serve the same lists.
    assert_eq!(health.allergies(allergic).await.unwrap(), allergies.value);
    // Vaccinations have no fail-safe: the database's error reaches the caller.
    assert!(health.vaccinations(allergic).await.is_err());

    let after = vitals.cache_stats();
    assert_eq!(after.stale_served - before.stale_served, 3);
    assert_eq!(after.load_errors - before.load_errors, 4);
    assert_eq!(health::CRITICAL_FAIL_SAFE, Duration::from_secs(24 * 3600));
}
