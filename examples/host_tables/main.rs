//! vitals' health cache over a host's own tables: the host keeps its pupils, immunisations,
//! sensitivities and conditions in a schema of its own (`school`, other table and column
//! names than vitals'), implements `HealthSource` and `DashboardSource` over them
//! (`source.rs`), and vitals caches, warms and invalidates what they return.
//!
//! Run with (PostgreSQL only: the source uses `db.postgres()?`):
//!
//! ```sh
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run --example host_tables
//! ```
//!
//! It creates `school.*` (idempotent), adds one synthetic pupil, reads the pupil's summary
//! twice through `vitals.health_cache()` (the second from the cache: no statement), and prints
//! it with the cache's figures and the statements vitals saw. `crates/vitals/tests/health_source.rs`
//! tests the same source.

mod source;

use std::sync::Arc;

use source::HostTables;
use vitals::{Config, Vitals};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let vitals = Vitals::builder()
        .config(Config::from_env()?)
        .health_source(Arc::new(HostTables))
        .dashboard_source(Arc::new(HostTables))
        .build()
        .await?;
    let db = vitals.db();
    source::create_tables(db).await?;
    let pupil = source::add_pupil(
        db,
        &format!("EX-{}", uuid::Uuid::new_v4()),
        "Ada",
        "Example",
    )
    .await?;
    source::add_immunisation(db, pupil, "MMR", 1, 20).await?;
    source::add_sensitivity(db, pupil, "Peanut", "anaphylaxis").await?;
    source::add_condition(db, pupil, "Asthma", "J45", "active").await?;

    let health = vitals.health_cache();
    let before = vitals.query_logger().statistics().total_queries;
    let first = health
        .student_health_summary(pupil)
        .await?
        .ok_or("no such pupil")?;
    let after_first = vitals.query_logger().statistics().total_queries;
    let second = health
        .student_health_summary(pupil)
        .await?
        .ok_or("no such pupil")?;
    let after_second = vitals.query_logger().statistics().total_queries;
    assert_eq!(first, second);

    // Synthetic data: printing it is fine here; a real service never prints a summary.
    println!(
        "{} {}: {} vaccination(s), {} allergy(ies) (most severe: {:?}), {} condition(s)",
        second.student.first_name,
        second.student.last_name,
        second.vaccinations.len(),
        second.allergies.len(),
        second.allergies.first().map(|a| a.severity),
        second.chronic_conditions.len(),
    );
    println!(
        "statements: first read {}, second read {} (from the cache)",
        after_first - before,
        after_second - after_first
    );
    let stats = vitals.cache_stats();
    println!("cache: {} hit(s), {} load(s)", stats.hits, stats.loads);
    let dashboard = vitals.dashboard().stats().await;
    println!(
        "dashboard: {:?} pupils on roll, {:?} with a critical allergy",
        dashboard.active_students, dashboard.critical_allergies
    );
    for row in vitals.query_logger().fingerprint_stats() {
        if row.query.contains("school.") {
            println!("  {:>3}x {}", row.count, row.query);
        }
    }
    vitals.shutdown().await;
    Ok(())
}
