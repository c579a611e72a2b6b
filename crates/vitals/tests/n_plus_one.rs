//! N+1 detection per request through the facade, on real PostgreSQL: an axum app with
//! `QueryScopeLayer`, handlers that query a host table of their own through `vitals.db()`.
//! Six identical lookups in one request are one finding, named by the route template, in the
//! report, in `/metrics` and in one warning holding no id; six different queries are none; a
//! task spawned with `vitals::querylog::scoped` counts in the request that spawned it.
//!
//! Run with `cargo test -p vitals --test n_plus_one`.
#![cfg(feature = "http")]

mod common;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::Router;
use sqlx::PgPool;
use tower::ServiceExt;
use uuid::Uuid;
use vitals::sqlx as vsqlx;
use vitals::{Config, Vitals};

/// The lookup the handlers repeat, one id per statement.
const LOOKUP: &str = "SELECT name FROM pupils WHERE id = $1";

/// The host's own table (not vitals'), with six pupils.
async fn host_with_pupils(pool: PgPool) -> (Vitals, Vec<Uuid>) {
    let vitals = common::vitals_on_postgres(Config::defaults().unwrap(), pool, None).await;
    let pg = vitals.db().postgres().unwrap();
    vsqlx::query("CREATE TABLE pupils (id uuid PRIMARY KEY, name text NOT NULL)")
        .execute(pg)
        .await
        .unwrap();
    let ids: Vec<Uuid> = (0..6).map(|_| Uuid::new_v4()).collect();
    for (i, id) in ids.iter().enumerate() {
        vsqlx::query("INSERT INTO pupils (id, name) VALUES ($1, $2)")
            .bind(id)
            .bind(format!("pupil-{i}"))
            .execute(pg)
            .await
            .unwrap();
    }
    (vitals, ids)
}

/// What the handlers share: the facade and the pupils' ids.
#[derive(Clone)]
struct App {
    vitals: Vitals,
    ids: Vec<Uuid>,
}

/// Six lookups of one shape, one per pupil: the N+1 pattern.
async fn lookups(vitals: &Vitals, ids: &[Uuid]) -> usize {
    let pg = vitals.db().postgres().unwrap();
    let mut found = 0;
    for id in ids {
        let name: Option<String> = vsqlx::query_scalar(LOOKUP)
            .bind(id)
            .fetch_optional(pg)
            .await
            .unwrap();
        found += usize::from(name.is_some());
    }
    found
}

/// `GET /students/{id}`: the student, then each classmate one by one.
async fn student(State(app): State<App>, Path(_id): Path<Uuid>) -> String {
    lookups(&app.vitals, &app.ids).await.to_string()
}

/// `GET /overview`: six statements of six shapes.
async fn overview(State(app): State<App>) -> String {
    let pg = app.vitals.db().postgres().unwrap();
    let shapes = [
        "SELECT count(*) FROM pupils",
        "SELECT count(*) FROM pupils WHERE name LIKE 'pupil-%'",
        "SELECT max(name) FROM pupils",
        "SELECT min(name) FROM pupils",
        "SELECT count(DISTINCT name) FROM pupils",
        "SELECT count(*) FROM pupils WHERE id IS NOT NULL",
    ];
    for sql in shapes {
        vsqlx::query(sql).execute(pg).await.unwrap();
    }
    "ok".into()
}

/// `GET /report`: the lookups run in a task of their own, carried into the request's scope.
async fn report(State(app): State<App>) -> String {
    let task = tokio::spawn(vitals::querylog::scoped(async move {
        lookups(&app.vitals, &app.ids).await
    }));
    task.await.unwrap().to_string()
}

fn app(vitals: &Vitals, ids: Vec<Uuid>) -> Router {
    Router::new()
        .route("/students/{id}", get(student))
        .route("/overview", get(overview))
        .route("/report", get(report))
        .with_state(App {
            vitals: vitals.clone(),
            ids,
        })
        .merge(vitals::http::router(vitals.clone()))
        .layer(vitals.query_scope_layer())
}

/// The host with its pupils, and its app.
async fn serving_pupils(pool: PgPool) -> (Vitals, Vec<Uuid>, Router) {
    let (vitals, ids) = host_with_pupils(pool).await;
    let app = app(&vitals, ids.clone());
    (vitals, ids, app)
}

async fn get_text(app: &Router, uri: &str) -> String {
    let request = Request::builder().uri(uri).body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{uri}");
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// `vitals_query_n_plus_one_findings_total` as `/metrics` shows it.
async fn findings_metric(app: &Router) -> f64 {
    let text = get_text(app, "/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix("vitals_query_n_plus_one_findings_total "))
        .unwrap_or_else(|| panic!("no N+1 counter in /metrics:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn six_identical_lookups_in_one_request_are_one_finding_named_by_the_route(pool: PgPool) {
    // One subscriber for the whole binary: a thread-local default races with the other tests'
    // threads over the warning's cached callsite interest and can lose the event. The other
    // tests' warnings name other routes (`GET /report`), so this test's lines are told apart.
    let captured = common::global_capture(tracing::Level::WARN);
    let (vitals, ids, app) = serving_pupils(pool).await;
    assert_eq!(findings_metric(&app).await, 0.0);

    let requested = Uuid::new_v4();
    assert_eq!(get_text(&app, &format!("/students/{requested}")).await, "6");

    let findings = vitals.query_logger().n_plus_one_findings();
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let finding = &findings[0];
    assert_eq!(finding.scope, "GET /students/{id}");
    assert_eq!(finding.count, 6);
    assert_eq!(finding.model.as_deref(), Some("Pupil"));
    let fingerprint = vitals.query_logger().fingerprinter().fingerprint(LOOKUP);
    assert_eq!(finding.fingerprint, fingerprint);
    assert_eq!(vitals.query_logger().report().n_plus_one, findings);
    assert_eq!(findings_metric(&app).await, 1.0);

    let logged = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let warnings: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains("possible N+1 query pattern") && l.contains("GET /students/{id}"))
        .collect();
    assert_eq!(warnings.len(), 1, "{logged}");
    assert!(warnings[0].contains("GET /students/{id}"), "{logged}");
    assert!(warnings[0].contains(&fingerprint.to_string()), "{logged}");
    for id in ids.iter().chain([&requested]) {
        assert!(
            !logged.contains(&id.to_string()),
            "an id was logged: {logged}"
        );
    }
    vitals.shutdown().await;
}

#[sqlx::test(migrations = false)]
async fn six_different_queries_in_one_request_are_no_finding(pool: PgPool) {
    let (vitals, _, app) = serving_pupils(pool).await;
    assert_eq!(get_text(&app, "/overview").await, "ok");
    assert_eq!(vitals.query_logger().n_plus_one_findings(), vec![]);
    assert_eq!(findings_metric(&app).await, 0.0);
    vitals.shutdown().await;
}

#[sqlx::test(migrations = false)]
async fn a_task_spawned_with_the_scope_counts_in_its_request(pool: PgPool) {
    let (vitals, _, app) = serving_pupils(pool).await;
    assert_eq!(get_text(&app, "/report").await, "6");
    let findings = vitals.query_logger().n_plus_one_findings();
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(
        (findings[0].scope.as_str(), findings[0].count),
        ("GET /report", 6)
    );
    vitals.shutdown().await;
}
