//! The HTTP surface on real PostgreSQL and Redis: the health endpoints return the documented
//! JSON, `/metrics` the Prometheus text, writes invalidate after success only, an import
//! upload invalidates every student it names, and 200 concurrent requests to a server on
//! loopback all succeed.
//!
//! Run with `cargo test -p vitals --test http`.

mod common;

use common::call;

use axum::http::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;
use vitals::health;
use vitals::Vitals;

/// The school-health router on a facade with a school of 60 students.
async fn app_on(pool: PgPool, test: &str) -> (axum::Router, Vitals, health::School) {
    let (vitals, school) = common::host_on_postgres(pool, &format!("http-{test}"), 60, 21).await;
    (health::api::router(vitals.clone()), vitals, school)
}

async fn json(app: &axum::Router, uri: &str) -> Value {
    let (status, body) = call(app, "GET", uri, None).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// `POST uri` with the JSON `body`: the status and the body's text.
async fn post_json(app: &axum::Router, uri: &str, body: &str) -> (StatusCode, String) {
    call(app, "POST", uri, Some(("application/json", body.into()))).await
}

/// How many vaccinations the health summary at `uri` lists.
async fn doses(app: &axum::Router, uri: &str) -> usize {
    json(app, uri).await["vaccinations"]
        .as_array()
        .unwrap()
        .len()
}

/// Posts the vaccination `dose` to `post` (201); the health summary at `uri` then lists one
/// vaccination more than `before` (the write dropped the cached one).
async fn assert_dose_added(app: &axum::Router, post: &str, dose: &str, uri: &str, before: usize) {
    let (status, body) = post_json(app, post, dose).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(doses(app, uri).await, before + 1);
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn health_endpoints_return_the_documented_json(pool: PgPool) {
    let (app, vitals, school) = app_on(pool, "endpoints").await;
    // Some traffic first, so every figure has something to say.
    let student = school.students[0].id;
    for _ in 0..2 {
        call(
            &app,
            "GET",
            &format!("/api/students/{student}/health-summary"),
            None,
        )
        .await;
    }

    let pool = json(&app, "/api/health/database/pool").await;
    assert_eq!(pool["engine"], "postgres");
    assert!(
        pool["metrics"]["max_connections"].as_u64().unwrap() >= 1,
        "{pool}"
    );
    for field in [
        "active_connections",
        "idle_connections",
        "total_connections",
        "utilization_percent",
        "timestamp",
    ] {
        assert!(
            pool["metrics"].get(field).is_some(),
            "metrics.{field} missing: {pool}"
        );
    }
    assert_eq!(pool["health"]["status"], "healthy", "{pool}");
    assert!(
        pool["summary"].get("peak_utilization_percent").is_some(),
        "{pool}"
    );

    let cache = json(&app, "/api/health/cache/stats").await;
    assert!(cache["l1_hits"].as_u64().unwrap() >= 1, "{cache}");
    assert!(cache["misses"].as_u64().unwrap() >= 1, "{cache}");
    assert_eq!(cache["redis_configured"], true, "{cache}");

    let performance = json(&app, "/api/health/database/performance").await;
    assert!(
        performance["statistics"]["total_queries"].as_u64().unwrap() >= 5,
        "{performance}"
    );

    let slow = json(&app, "/api/health/database/slow-queries?limit=5").await;
    assert!(slow["slow_queries"].is_array(), "{slow}");
    assert_eq!(slow["warn_ms"], 1000);
    assert_eq!(slow["critical_ms"], 5000);

    let (status, metrics) = call(&app, "GET", "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    for name in [
        "vitals_pool_active_connections",
        "vitals_pool_utilization_percent",
        "vitals_cache_hits_total{tier=\"l1\"}",
        "vitals_cache_misses_total",
        "vitals_queries_total",
        "vitals_slow_queries_total{tier=\"critical\"}",
    ] {
        assert!(
            metrics.contains(name),
            "{name} missing from /metrics:\n{metrics}"
        );
    }
    let student_names = school.students.iter().map(|s| s.last_name.as_str());
    for name in student_names {
        assert!(
            !metrics.contains(name) && !performance.to_string().contains(name),
            "PHI in output"
        );
    }
    vitals.shutdown().await;
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn a_write_invalidates_after_success_only(pool: PgPool) {
    let (app, vitals, school) = app_on(pool, "write").await;
    let student = school.students[1].id;
    let uri = format!("/api/students/{student}/health-summary");
    let before = doses(&app, &uri).await;

    // A refused write (dose 0) leaves the cache as it was: the next read is an L1 hit.
    let post = format!("/api/students/{student}/vaccinations");
    let bad = r#"{"vaccine_name":"Rabies","dose_number":0,"administered_on":"2026-11-02"}"#;
    let (status, _) = post_json(&app, &post, bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let hits = vitals.cache_stats().l1_hits;
    json(&app, &uri).await;
    assert_eq!(
        vitals.cache_stats().l1_hits,
        hits + 1,
        "still cached after a failed write"
    );

    let good = r#"{"vaccine_name":"Rabies","dose_number":1,"administered_on":"2026-11-02"}"#;
    assert_dose_added(&app, &post, good, &uri, before).await;

    let (status, _) = post_json(&app, &post, good).await;
    assert_eq!(status, StatusCode::CONFLICT, "the same dose twice");
    let nobody = format!("/api/students/{}/vaccinations", Uuid::new_v4());
    let (status, _) = post_json(&app, &nobody, good).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    vitals.shutdown().await;
}

/// A student id the route accepts with white space around it (here `%20`, decoded) is the
/// student the layer invalidates: the route and the layer share one parser (the layer's own
/// parse used to refuse it, so the write answered 201 and the old summary stayed cached).
#[sqlx::test(migrations = "migrations/postgres")]
async fn a_write_to_a_padded_student_id_invalidates_that_student(pool: PgPool) {
    let (app, vitals, school) = app_on(pool, "padded").await;
    let student = school.students[2].id;
    let uri = format!("/api/students/{student}/health-summary");
    let before = doses(&app, &uri).await;
    let post = format!("/api/students/%20{student}%20/vaccinations");
    let good = r#"{"vaccine_name":"Rabies","dose_number":1,"administered_on":"2026-11-03"}"#;
    assert_dose_added(&app, &post, good, &uri, before).await;
    vitals.shutdown().await;
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn an_import_upload_invalidates_every_student_it_names(pool: PgPool) {
    let (app, vitals, school) = app_on(pool, "import").await;
    let students = [school.students[2].id, school.students[3].id];
    for s in students {
        json(&app, &format!("/api/students/{s}/health-summary")).await;
    }
    let csv = format!(
        "student_id,vaccine_name,dose_number,administered_on,administered_by,lot_number\n\
         {},Cholera,1,2026-10-01,Nurse Orlen,LOT1\n{},Cholera,1,2026-10-02,,\nnot-a-uuid,Cholera,1,2026-10-02,,\n",
        students[0], students[1]
    );
    let (report, _) = common::import_csv(&app, "vaccination", csv).await;
    assert_eq!(report["imported"], 2, "{report}");
    assert_eq!(report["rejected"], 1, "{report}");
    assert_eq!(report["rejections"][0]["line"], 4, "{report}");
    for s in students {
        let summary = json(&app, &format!("/api/students/{s}/health-summary")).await;
        let names: Vec<&str> = summary["vaccinations"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v["vaccine_name"].as_str())
            .collect();
        assert!(
            names.contains(&"Cholera"),
            "stale summary for {s}: {names:?}"
        );
    }
    vitals.shutdown().await;
}

/// Sends one HTTP/1.1 GET over a fresh loopback connection and returns the status code.
async fn get_status(addr: std::net::SocketAddr, path: &str) -> std::io::Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let head = String::from_utf8_lossy(&response[..response.len().min(32)]).to_string();
    head.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {head:?}")))
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn two_hundred_concurrent_requests_on_loopback_all_succeed(pool: PgPool) {
    let (app, vitals, school) = app_on(pool, "load").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let paths: Vec<String> = (0..200)
        .map(|i| match i % 4 {
            0 => "/api/health/database/pool".to_string(),
            1 => "/api/health/cache/stats".to_string(),
            _ => format!(
                "/api/students/{}/health-summary",
                school.students[i % school.students.len()].id
            ),
        })
        .collect();
    let tasks: Vec<_> = paths
        .into_iter()
        .map(|path| tokio::spawn(async move { (get_status(addr, &path).await, path) }))
        .collect();
    let mut failures = Vec::new();
    for task in tasks {
        let (status, path) = task.await.unwrap();
        match status {
            Ok(200) => {}
            other => failures.push(format!("{path}: {other:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 200 failed: {failures:?}",
        failures.len()
    );
    server.abort();
    vitals.shutdown().await;
}

/// With Redis and no encryption key, `/metrics` says values are kept out of Redis (PHI never
/// in the clear) and counts the writes refused; with a key, neither.
#[sqlx::test(migrations = "migrations/postgres")]
async fn metrics_say_when_values_are_kept_out_of_redis(pool: PgPool) {
    let mut config = common::redis_config("http-plaintext");
    config.cache = config.cache.with_encryption(None);
    let plain = common::vitals_on_postgres(config, pool.clone(), None).await;
    let encrypted =
        common::vitals_on_postgres(common::redis_config("http-encrypted"), pool, None).await;
    for vitals in [&plain, &encrypted] {
        vitals
            .cache()
            .set(
                "probe",
                "synthetic",
                std::time::Duration::from_secs(30),
                &[],
            )
            .await
            .unwrap();
    }
    for (vitals, refused) in [(&plain, 1), (&encrypted, 0)] {
        let text = vitals::http::prometheus_text(vitals);
        for metric in [
            "vitals_cache_redis_plaintext_refused",
            "vitals_cache_redis_refused_writes_total",
        ] {
            assert!(text.contains(&format!("{metric} {refused}")), "{text}");
        }
        // Where misses come from (issue 15 item 3): nothing loaded, evicted or expired here.
        for metric in [
            "vitals_cache_stale_loads_total",
            "vitals_cache_l1_evictions_total",
            "vitals_cache_l1_expired_total",
        ] {
            assert!(text.contains(&format!("{metric} 0")), "{text}");
        }
    }
    // One pool behind both: shut down once.
    plain.shutdown().await;
}

/// `/api/health/database/pool` answers 503 while its `SELECT 1` fails (the test's database
/// refuses new connections and every other backend of it is terminated: a real outage), with
/// the same JSON saying `unhealthy` and why; 200 again once the database takes connections.
#[sqlx::test(migrations = "migrations/postgres")]
async fn the_pool_endpoint_answers_503_while_the_database_is_down(pool: PgPool) {
    use sqlx::Executor as _;

    let (app, vitals, _) = app_on(pool.clone(), "down").await;
    let up = json(&app, "/api/health/database/pool").await;
    assert_ne!(up["health"]["status"], "unhealthy", "{up}");

    // A connection to the server's main database (`DATABASE_URL`) turns the test's own off
    // and on again (PostgreSQL refuses to do it from inside).
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let main = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&main)
        .await
        .unwrap();
    let allow = |on: bool| format!("ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS {on}");
    admin.execute(allow(false).as_str()).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&db)
        .execute(&mut admin)
        .await
        .unwrap();

    let (status, body) = call(&app, "GET", "/api/health/database/pool", None).await;
    admin.execute(allow(true).as_str()).await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let down: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(down["health"]["status"], "unhealthy", "{down}");
    assert!(down["health"]["reason"].is_string(), "{down}");
    assert!(down["metrics"].is_object(), "{down}");

    let again = json(&app, "/api/health/database/pool").await;
    assert_ne!(again["health"]["status"], "unhealthy", "{again}");
    vitals.shutdown().await;
}
