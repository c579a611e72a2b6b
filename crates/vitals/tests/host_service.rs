//! The `host_service` example, driven without a socket on a fresh PostgreSQL database: the
//! host's migrations and vitals start side by side in either order; `POST /visits`' transaction
//! (BEGIN, two INSERTs, a SELECT, COMMIT) is in the query report, sanitised; a duplicate visit
//! is a 409 naming the SQLSTATE and the constraint, no value; `GET /clinics/{id}/visits` over 6
//! visits is one N+1 finding naming the route.
//!
//! Run with `cargo test -p vitals --test host_service` (PostgreSQL from `DATABASE_URL`).
#![cfg(feature = "http")]

mod common;
#[allow(dead_code)] // The example's `main`.
#[path = "../../../examples/host_service/main.rs"]
mod host_service;

use axum::http::StatusCode;
use common::count;
use host_service::{app, Created, Visit, MIGRATOR};
use sqlx::PgPool;
use vitals::{Config, Vitals};

/// Values the requests send as bind values, and the literal written in the SELECT's text:
/// none may reach the query report.
const LITERALS: [&str; 5] = [
    "B-7731",
    "Zelda Quirk",
    "twisted ankle",
    "2026-11-30",
    "cancelled",
];

/// One start of vitals on a pool of its own to the test's database (its shutdown closes that
/// pool), configured as the example is but for the URL the test harness chose.
async fn start_vitals(pool: &PgPool) -> Vitals {
    common::start_on_own_pool(pool, Config::defaults().unwrap())
        .await
        .unwrap()
}

/// Each history holds its own migrations once, and the host's tables are in `public`.
async fn assert_side_by_side(pool: &PgPool) {
    assert_eq!(
        count(pool, "SELECT COUNT(*) FROM public._sqlx_migrations").await,
        MIGRATOR.iter().count() as i64
    );
    assert_eq!(
        count(pool, "SELECT COUNT(*) FROM vitals._sqlx_migrations").await,
        vitals::health::MIGRATOR_POSTGRES.iter().count() as i64
    );
    let public: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'public' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        public,
        ["_sqlx_migrations", "clinics", "students", "visits"]
    );
}

async fn send(
    app: &axum::Router,
    method: &str,
    uri: &str,
    json: Option<String>,
) -> (StatusCode, String) {
    common::call(app, method, uri, json.map(|j| ("application/json", j))).await
}

fn visit(clinic: i64, badge: &str, name: &str, date: &str, reason: &str) -> String {
    serde_json::json!({
        "clinic_id": clinic,
        "badge": badge,
        "student_name": name,
        "visit_date": date,
        "reason": reason,
    })
    .to_string()
}

async fn new_clinic(app: &axum::Router, name: &str) -> i64 {
    let (status, body) = send(
        app,
        "POST",
        "/clinics",
        Some(serde_json::json!({ "name": name }).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    serde_json::from_str::<Created>(&body).unwrap().id
}

#[sqlx::test(migrations = false)]
async fn host_then_vitals_twice_then_the_service_works(pool: PgPool) {
    let vitals = common::host_then_vitals(&pool, &MIGRATOR, 2, assert_side_by_side).await;
    exercise(&vitals).await;
    vitals.shutdown().await;
}

#[sqlx::test(migrations = false)]
async fn vitals_then_host_twice_then_the_service_works(pool: PgPool) {
    for round in 0..2 {
        let vitals = start_vitals(&pool).await;
        // As the example does it: the host's migrations through vitals' handle.
        MIGRATOR.run(vitals.db().postgres().unwrap()).await.unwrap();
        assert_side_by_side(&pool).await;
        if round == 1 {
            exercise(&vitals).await;
        }
        vitals.shutdown().await;
    }
}

/// The three promises of the example, on a started service.
async fn exercise(vitals: &Vitals) {
    let app = app(vitals.clone());
    let clinic = new_clinic(&app, "North Wing").await;

    // The transaction: 201, and all five of its statements in the report, sanitised.
    let body = visit(clinic, LITERALS[0], LITERALS[1], LITERALS[3], LITERALS[2]);
    let (status, created) = send(&app, "POST", "/visits", Some(body.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        serde_json::from_str::<Created>(&created)
            .unwrap()
            .student_visits,
        Some(1)
    );

    let logger = vitals.query_logger();
    let recent: Vec<String> = logger
        .recent_queries(10_000)
        .into_iter()
        .map(|q| q.sql)
        .collect();
    let stats: Vec<String> = logger
        .fingerprint_stats()
        .into_iter()
        .map(|s| s.query)
        .collect();
    for (what, pattern) in [
        ("BEGIN", "BEGIN"),
        ("the student INSERT", "INSERT INTO students"),
        ("the visit INSERT", "INSERT INTO visits"),
        (
            "the SELECT",
            "FROM visits WHERE student_id = $1 AND status <> ?",
        ),
        ("COMMIT", "COMMIT"),
    ] {
        assert!(
            recent.iter().any(|q| q.contains(pattern)),
            "{what} in the recent queries: {recent:#?}"
        );
        assert!(
            stats.iter().any(|q| q.contains(pattern)),
            "{what} in the statistics: {stats:#?}"
        );
    }
    let report = logger.report();
    assert!(report.statistics.total_queries >= 5);
    let everything = format!("{}\n{recent:?}\n{stats:?}", report.to_json().unwrap());
    for literal in LITERALS {
        assert!(
            !everything.contains(literal),
            "{literal} reached the report"
        );
    }

    // The same visit again: 409, the SQLSTATE and the constraint, no value.
    let (status, conflict) = send(&app, "POST", "/visits", Some(body)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{conflict}");
    assert!(conflict.contains(r#""code":"23505""#), "{conflict}");
    let json: serde_json::Value = serde_json::from_str(&conflict).unwrap();
    assert_eq!(json["constraint"], "visits_once_a_day", "{conflict}");
    for literal in LITERALS {
        assert!(
            !conflict.contains(literal),
            "{literal} in the 409: {conflict}"
        );
    }

    // Six visits, one request, six identical lookups: one finding naming the route.
    let other = new_clinic(&app, "South Wing").await;
    for day in 1..=6 {
        let body = visit(
            other,
            &format!("S-{day}"),
            "Pupil",
            &format!("2026-10-0{day}"),
            "cold",
        );
        let (status, text) = send(&app, "POST", "/visits", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{text}");
    }
    let before = logger.n_plus_one_findings().len();
    let (status, listed) = send(&app, "GET", &format!("/clinics/{other}/visits"), None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(
        serde_json::from_str::<Vec<Visit>>(&listed).unwrap().len(),
        6
    );
    let findings = logger.n_plus_one_findings();
    assert_eq!(findings.len() - before, 1, "{findings:#?}");
    let finding = &findings[0]; // newest first
    assert_eq!(finding.scope, "GET /clinics/{id}/visits");
    assert_eq!(finding.count, 6);
    assert!(
        finding.query.contains("WHERE v.id = $1"),
        "{}",
        finding.query
    );
}
