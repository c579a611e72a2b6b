//! A small school-health API on vitals: a student's summary through the cache, adding a
//! vaccination (which invalidates it), an import upload, and the health endpoints.
//!
//! Run with `cargo run --release --example health_server` (embedded SQLite, L1 cache), or
//! with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/test REDIS_URL=redis://127.0.0.1:6379`
//! for PostgreSQL and Redis. Options: `--addr 127.0.0.1:8080`, `--demo-students N` (load a
//! synthetic school of N students when the database has none; default 200, 0 for none).
//!
//! Then, for example:
//! ```text
//! curl -s 127.0.0.1:8080/api/health/database/pool
//! curl -s 127.0.0.1:8080/api/health/cache/stats
//! curl -s 127.0.0.1:8080/api/health/database/performance
//! curl -s '127.0.0.1:8080/api/health/database/slow-queries?limit=5'
//! curl -s 127.0.0.1:8080/metrics
//! curl -s 127.0.0.1:8080/api/students/$ID/health-summary
//! curl -s -XPOST -H 'content-type: application/json' \
//!   -d '{"vaccine_name":"MMR","dose_number":2,"administered_on":"2026-11-01"}' \
//!   127.0.0.1:8080/api/students/$ID/vaccinations
//! curl -s -XPOST --data-binary @vaccinations.csv '127.0.0.1:8080/api/import?type=vaccination'
//! ```
//! (a few student ids to try are printed at start).
//!
//! Served with `vitals::http::serve`, not bare `axum::serve`: a request's head must arrive
//! within `VITALS_HTTP_HEADER_TIMEOUT_MS` (10 s), an idle keep-alive connection is closed after
//! `VITALS_HTTP_IDLE_TIMEOUT_MS` (60 s), at most `VITALS_HTTP_MAX_CONNECTIONS` (1 024) are open
//! at once (more wait in the accept backlog), and Ctrl-C lets in-flight requests finish for up
//! to `VITALS_HTTP_SHUTDOWN_TIMEOUT_MS` (30 s) before closing what is left.

use std::net::SocketAddr;

use clap::Parser;
use vitals::health::{self, SchoolGenerator};
use vitals::http::ServeOptions;
use vitals::{Config, ConfigError, Db, Vitals};

/// The school-health API example.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Load a synthetic school of this many students when the database has none.
    #[arg(long, default_value_t = 200)]
    demo_students: usize,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx::query=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Err(e) = run(args).await {
        eprintln!("health_server: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // Every bad variable at once, vitals' and the server's.
    let (config, serve_options) = ConfigError::both(Config::from_env(), ServeOptions::from_env())?;
    let vitals = Vitals::builder().config(config).build().await?;
    if args.demo_students > 0 {
        let existing = health_counts(&vitals).await?.students;
        if existing == 0 {
            let school = SchoolGenerator::new(args.demo_students).generate();
            match vitals.db() {
                Db::Postgres(p) => {
                    health::load_school_postgres(p.inner(), vitals.tables(), &school).await?
                }
                Db::Sqlite(p) => {
                    health::load_school_sqlite(p.inner(), vitals.tables(), &school).await?
                }
            };
            eprintln!(
                "loaded a synthetic school of {} students",
                args.demo_students
            );
        }
    }
    let students = vitals.tables().table("students");
    let sample: Vec<uuid::Uuid> = vitals::with_db!(vitals.db(), |db| {
        sqlx::query_scalar(&format!(
            "SELECT id FROM {students} ORDER BY student_number LIMIT 3"
        ))
        .fetch_all(db)
        .await
    })?;
    for id in &sample {
        eprintln!(
            "try: curl -s http://{}/api/students/{id}/health-summary",
            args.addr
        );
    }
    let app = health::api::router(vitals.clone());
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    eprintln!(
        "serving on http://{} ({}, {})",
        listener.local_addr()?,
        vitals.engine().name(),
        if vitals.cache().redis().is_some() {
            "Redis L2"
        } else {
            "L1 only"
        }
    );
    let summary = vitals::http::serve(listener, app, serve_options)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    eprintln!(
        "stopped: {} connections served, {} closed at the shutdown deadline",
        summary.accepted, summary.closed_at_deadline
    );
    vitals.shutdown().await;
    Ok(())
}

async fn health_counts(vitals: &Vitals) -> Result<health::TableCounts, sqlx::Error> {
    match vitals.db() {
        Db::Postgres(p) => health::table_counts_postgres(p.inner(), vitals.tables()).await,
        Db::Sqlite(p) => health::table_counts_sqlite(p.inner(), vitals.tables()).await,
    }
}
