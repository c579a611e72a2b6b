//! A host service on vitals: a small clinic-visits API with its own migrations and tables
//! (`clinics`, `students`, `visits`) in the database's `public` schema, and vitals beside it in
//! its own schema (`VITALS_PG_SCHEMA`, default `vitals`), its monitoring routes merged in.
//!
//! Run with (PostgreSQL only: the routes use `vitals.db().postgres()?`):
//!
//! ```sh
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run --example host_service
//! curl -si -XPOST localhost:8080/clinics -H 'content-type: application/json' -d '{"name":"North"}'
//! curl -si -XPOST localhost:8080/visits -H 'content-type: application/json' \
//!   -d '{"clinic_id":1,"badge":"B-1","student_name":"Ada","visit_date":"2026-12-01","reason":"cough"}'
//! curl -s localhost:8080/clinics/1/visits
//! curl -s localhost:8080/api/health/database/performance
//! ```
//!
//! `HOST_SERVICE_ADDR` sets the address (default `127.0.0.1:8080`); every variable of vitals
//! (`REDIS_URL`, `DB_POOL_MAX`, …) is read by `Config::from_env()`, the server's
//! (`VITALS_HTTP_*`) by `ServeOptions::from_env()`. It serves with `vitals::http::serve`, not
//! bare `axum::serve`: header-read (10 s) and idle (60 s) timeouts, at most 1 024 connections
//! open, and Ctrl-C lets in-flight requests finish for up to 30 s, then closes what is left.
//!
//! What it shows: `POST /visits` is a transaction of two INSERTs and a SELECT on
//! `vitals.db().postgres()?.begin()`, every statement of it (BEGIN and COMMIT too) timed and
//! sanitised into vitals' query report; a second visit of a student to a clinic on the same
//! day is a 409 through `vitals::Error`'s `IntoResponse` (SQLSTATE 23505, constraint
//! `visits_once_a_day`, no value); `GET /clinics/{id}/visits` does the N+1 anti-pattern on
//! purpose (one query per visit), which the query scope layer reports as a finding naming the
//! route. `crates/vitals/tests/host_service.rs` drives [`app`] without a socket.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use vitals::http::ServeOptions;
use vitals::sqlx; // vitals' own sqlx: the version and features its handle implements
use vitals::sqlx::migrate::Migrator;
use vitals::{Config, ConfigError, Vitals};

/// The host's own migrations. The path is relative to the manifest of the package the example
/// belongs to (`crates/vitals`). Their history is `public._sqlx_migrations`; vitals' is in its
/// own schema, so neither sees the other's.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../examples/host_service/migrations");

/// The service: its routes, vitals' monitoring router, and one N+1 scope per request.
pub fn app(vitals: Vitals) -> Router {
    Router::new()
        .route("/clinics", post(create_clinic))
        .route("/visits", post(create_visit))
        .route("/clinics/{id}/visits", get(clinic_visits))
        .with_state(vitals.clone())
        // GET /api/health/database/pool, /api/health/database/performance, /metrics, …
        .merge(vitals::http::router(vitals.clone()))
        // Last, around the routes it covers, so each scope is named by its matched route.
        .layer(vitals.query_scope_layer())
}

/// `POST /clinics`'s body.
#[derive(Debug, Deserialize, Serialize)]
pub struct NewClinic {
    /// The clinic's name, unique.
    pub name: String,
}

/// What `POST /clinics` and `POST /visits` answer: the new row's id.
#[derive(Debug, Deserialize, Serialize)]
pub struct Created {
    /// The new row's id.
    pub id: i64,
    /// `POST /visits`: the student's visits so far, this one included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub student_visits: Option<i64>,
}

/// `POST /visits`'s body: the student is the host's (by badge), created on a first visit.
#[derive(Debug, Deserialize, Serialize)]
pub struct NewVisit {
    /// The clinic visited.
    pub clinic_id: i64,
    /// The student's badge, the natural key of the host's `students`.
    pub badge: String,
    /// The student's name as the host shows it.
    pub student_name: String,
    /// The day of the visit: one visit per student, clinic and day.
    pub visit_date: chrono::NaiveDate,
    /// Why the student came.
    pub reason: String,
}

/// One row of `GET /clinics/{id}/visits`.
#[derive(Debug, Deserialize, Serialize, sqlx::FromRow)]
pub struct Visit {
    /// The visit's id.
    pub id: i64,
    /// The day of the visit.
    pub visit_date: chrono::NaiveDate,
    /// Why the student came.
    pub reason: String,
    /// The student's name.
    pub student_name: String,
}

async fn create_clinic(
    State(vitals): State<Vitals>,
    Json(clinic): Json<NewClinic>,
) -> Result<(StatusCode, Json<Created>), vitals::Error> {
    let id: i64 = sqlx::query_scalar("INSERT INTO clinics (name) VALUES ($1) RETURNING id")
        .bind(&clinic.name)
        .fetch_one(vitals.db().postgres()?)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Created {
            id,
            student_visits: None,
        }),
    ))
}

/// One transaction: the student (inserted, or renamed if the badge is known), the visit, and
/// the student's visit count. A duplicate visit fails the second INSERT with 23505 on
/// `visits_once_a_day`; `?` returns it as `vitals::Error`, whose response is a 409, and the
/// dropped transaction rolls back.
async fn create_visit(
    State(vitals): State<Vitals>,
    Json(visit): Json<NewVisit>,
) -> Result<(StatusCode, Json<Created>), vitals::Error> {
    let mut tx = vitals.db().postgres()?.begin().await?;
    let student: i64 = sqlx::query_scalar(
        "INSERT INTO students (badge, display_name) VALUES ($1, $2) \
         ON CONFLICT (badge) DO UPDATE SET display_name = EXCLUDED.display_name RETURNING id",
    )
    .bind(&visit.badge)
    .bind(&visit.student_name)
    .fetch_one(&mut *tx)
    .await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO visits (clinic_id, student_id, visit_date, reason) \
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(visit.clinic_id)
    .bind(student)
    .bind(visit.visit_date)
    .bind(&visit.reason)
    .fetch_one(&mut *tx)
    .await?;
    let student_visits: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM visits WHERE student_id = $1 AND status <> 'cancelled'",
    )
    .bind(student)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(Created {
            id,
            student_visits: Some(student_visits),
        }),
    ))
}

/// The N+1 anti-pattern, on purpose: the visits' ids, then one query per visit. Five or more
/// of those in one request (`QUERYLOG_N_PLUS_ONE_THRESHOLD`) are a finding named
/// `GET /clinics/{id}/visits`. One JOIN would do.
async fn clinic_visits(
    State(vitals): State<Vitals>,
    Path(clinic): Path<i64>,
) -> Result<Json<Vec<Visit>>, vitals::Error> {
    let pg = vitals.db().postgres()?;
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM visits WHERE clinic_id = $1 ORDER BY id")
            .bind(clinic)
            .fetch_all(pg)
            .await?;
    let mut visits = Vec::with_capacity(ids.len());
    for id in ids {
        let visit: Visit = sqlx::query_as(
            "SELECT v.id, v.visit_date, v.reason, s.display_name AS student_name \
             FROM visits v JOIN students s ON s.id = v.student_id WHERE v.id = $1",
        )
        .bind(id)
        .fetch_one(pg)
        .await?;
        visits.push(visit);
    }
    Ok(Json(visits))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // vitals logs sanitised statements itself; sqlx's own statement events carry raw SQL.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info,sqlx::query=off"))
        .init();
    match start().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("host_service: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Starts vitals, then the service on it until Ctrl-C; vitals is shut down either way.
async fn start() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // DATABASE_URL, REDIS_URL, DB_POOL_MAX, VITALS_HTTP_*, …: every bad variable at once.
    let (config, serve_options) = ConfigError::both(Config::from_env(), ServeOptions::from_env())?;
    let vitals = Vitals::builder().config(config).build().await?;
    let served = serve(&vitals, serve_options).await;
    vitals.shutdown().await;
    served
}

async fn serve(
    vitals: &Vitals,
    options: ServeOptions,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // The host's migrations, through vitals' handle (`&MonitoredPool` is an `Acquire`).
    // Without a PostgreSQL DATABASE_URL vitals runs on SQLite and this is `WrongEngine`.
    MIGRATOR.run(vitals.db().postgres()?).await?;
    let addr = std::env::var("HOST_SERVICE_ADDR")
        .ok()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!(%addr, "host_service listening");
    let summary = vitals::http::serve(listener, app(vitals.clone()), options)
        .with_graceful_shutdown(async {
            // An error here means no signal handler: stop at once rather than never.
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    tracing::info!(
        accepted = summary.accepted,
        closed_at_deadline = summary.closed_at_deadline,
        "host_service stopped"
    );
    Ok(())
}
