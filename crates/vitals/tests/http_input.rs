//! Hostile input at the HTTP API, on real PostgreSQL and Redis (issue 13, items 3, 7 and 8):
//! every route and extractor of the facade's router gets a value it must refuse (a path id
//! `123-45-6789`, a query `limit=123-45-6789`, malformed JSON holding a synthetic SSN, a
//! too-long lot number, year 0000, a birth date in the future, a NUL). Each answer is the
//! expected status with `{"error": …}` naming the field and the rule, and neither the body
//! nor any `tracing` event (every target, at TRACE) holds the value.
//!
//! Run with `cargo test -p vitals --test http_input`.
#![cfg(feature = "http")]

mod common;

use axum::http::StatusCode;
use chrono::{Duration, Utc};
use common::{call, count, Captured};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;
use vitals::health;

/// A synthetic SSN: the hostile value of every test here.
const SSN: &str = "123-45-6789";

/// The buffer every test's tracing output goes to: the binary's one global subscriber, at
/// TRACE (a thread-local default misses events of other runtime threads).
fn captured() -> &'static Captured {
    common::global_capture(tracing::Level::TRACE)
}

fn log_text() -> String {
    captured().text()
}

/// The school-health router on a facade with a small school, and one student's id.
async fn app_on(pool: PgPool, test: &str) -> (axum::Router, vitals::Vitals, PgPool, Uuid) {
    captured();
    let (vitals, school) =
        common::host_on_postgres(pool.clone(), &format!("hin-{test}"), 3, 31).await;
    let student = school.students[0].id;
    (health::api::router(vitals.clone()), vitals, pool, student)
}

/// Asserts a refusal: `status`, a JSON `error` holding `field: ` and `reason`, `field` among
/// `fields`, and none of `hidden` in the body or the log so far.
#[track_caller]
fn assert_refused(
    (status, body): &(StatusCode, String),
    want: StatusCode,
    field: &str,
    reason: &str,
    hidden: &[&str],
) {
    assert_eq!(*status, want, "{body}");
    let json: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    let error = json["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("{field}: ")),
        "{field} not named: {error}"
    );
    assert!(error.contains(reason), "{reason:?} not in {error}");
    assert!(
        json["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["field"] == field),
        "{body}"
    );
    assert_no_echo(body, hidden);
}

#[track_caller]
fn assert_no_echo(body: &str, hidden: &[&str]) {
    let log = log_text();
    for value in hidden {
        assert!(
            !body.contains(value),
            "{value:?} echoed in the body: {body}"
        );
        assert!(!log.contains(value), "{value:?} in the log");
    }
    assert!(
        !log.contains("axum::rejection"),
        "an axum rejection (which logs its body text) was answered"
    );
}

fn json_body(text: &str) -> Option<(&'static str, String)> {
    Some(("application/json", text.to_owned()))
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn a_path_id_is_refused_by_name_never_echoed(pool: PgPool) {
    let (app, vitals, _, _) = app_on(pool, "path").await;
    let good = r#"{"vaccine_name":"MMR","dose_number":1,"administered_on":"2020-01-02"}"#;
    for (method, uri, body) in [
        ("GET", format!("/api/students/{SSN}/health-summary"), None),
        ("GET", format!("/api/students/{SSN}/vaccinations"), None),
        (
            "POST",
            format!("/api/students/{SSN}/vaccinations"),
            json_body(good),
        ),
    ] {
        let answer = call(&app, method, &uri, body).await;
        assert_refused(
            &answer,
            StatusCode::BAD_REQUEST,
            "student_id",
            "not a uuid",
            &[SSN],
        );
    }
    // Percent-encoded bytes that are not UTF-8.
    let answer = call(
        &app,
        "GET",
        "/api/students/%FF%FE123-45-6789/vaccinations",
        None,
    )
    .await;
    assert_refused(
        &answer,
        StatusCode::BAD_REQUEST,
        "student_id",
        "not valid UTF-8",
        &[SSN],
    );
    vitals.shutdown().await;
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn a_query_parameter_is_refused_by_name_never_echoed(pool: PgPool) {
    let (app, vitals, _, _) = app_on(pool, "query").await;
    let answer = call(
        &app,
        "GET",
        &format!("/api/health/database/slow-queries?limit={SSN}"),
        None,
    )
    .await;
    assert_refused(
        &answer,
        StatusCode::BAD_REQUEST,
        "limit",
        "not valid",
        &[SSN],
    );

    let csv = Some(("text/csv", "student_id,vaccine_name\n".to_owned()));
    let cases = [
        ("type=vaccination&dry_run", "dry_run", "not valid"),
        ("format", "format", "expected csv, ndjson or json"),
        ("type", "type", "expected one of student, vaccination"),
    ];
    for (query, field, reason) in cases {
        let uri = format!("/api/import?{query}={SSN}");
        let answer = call(&app, "POST", &uri, csv.clone()).await;
        assert_refused(&answer, StatusCode::BAD_REQUEST, field, reason, &[SSN]);
    }
    vitals.shutdown().await;
}

/// An upload whose first line is data (no header row), one value twice, is refused as
/// unreadable by its body, never with that line quoted (the importer's own message names the
/// repeated "column", which is a value there).
#[sqlx::test(migrations = "migrations/postgres")]
async fn an_upload_without_a_header_row_is_refused_without_its_first_row(pool: PgPool) {
    let (app, vitals, _, _) = app_on(pool, "headerless").await;
    let csv = Some(("text/csv", "qzorblitis,qzorblitis\n".to_owned()));
    let answer = call(&app, "POST", "/api/import?type=vaccination", csv).await;
    assert_refused(
        &answer,
        StatusCode::BAD_REQUEST,
        "body",
        "not readable as CSV",
        &["qzorblitis"],
    );
    vitals.shutdown().await;
}

/// While four uploads are being read (their bodies still arriving), a fifth is answered 503
/// with `Retry-After` before its body is read; once they end, an upload goes through.
#[sqlx::test(migrations = "migrations/postgres")]
async fn a_fifth_upload_at_once_is_told_to_come_back(pool: PgPool) {
    use tower::ServiceExt as _;

    let (app, vitals, _, _) = app_on(pool, "uploads").await;
    let upload = |body: axum::body::Body| {
        axum::http::Request::post("/api/import?type=vaccination")
            .header("content-type", "text/csv")
            .body(body)
            .unwrap()
    };
    // Bodies that never arrive: each request, polled once, holds its place while it waits.
    let mut reading = Vec::new();
    for _ in 0..health::api::MAX_CONCURRENT_UPLOADS {
        let never = futures::stream::pending::<Result<axum::body::Bytes, std::io::Error>>();
        let mut answer = Box::pin(
            app.clone()
                .oneshot(upload(axum::body::Body::from_stream(never))),
        );
        assert!(futures::poll!(answer.as_mut()).is_pending());
        reading.push(answer);
    }
    let csv = || axum::body::Body::from("student_id,vaccine_name\n");
    let busy = app.clone().oneshot(upload(csv())).await.unwrap();
    assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(busy.headers()["retry-after"], "1");
    drop(reading);
    let through = app.clone().oneshot(upload(csv())).await.unwrap();
    assert_ne!(through.status(), StatusCode::SERVICE_UNAVAILABLE);
    vitals.shutdown().await;
}

/// Uploads whose bodies stall (a first line, then nothing) are refused 408 once
/// `VITALS_UPLOAD_READ_TIMEOUT_MS` has passed and give their places back: four clients that
/// stop sending do not keep the next upload out.
#[sqlx::test(migrations = "migrations/postgres")]
async fn uploads_that_stall_are_refused_and_give_their_places_back(pool: PgPool) {
    use tower::ServiceExt as _;

    captured();
    let mut config = common::redis_config("hin-stall");
    config.upload_read_timeout = std::time::Duration::from_millis(300);
    let vitals = common::vitals_on_postgres(config, pool, None).await;
    let app = health::api::router(vitals.clone());
    let upload = |body: axum::body::Body| {
        axum::http::Request::post("/api/import?type=vaccination")
            .header("content-type", "text/csv")
            .body(body)
            .unwrap()
    };
    let stalled = (0..health::api::MAX_CONCURRENT_UPLOADS).map(|_| {
        let first = futures::stream::iter([Ok::<_, std::io::Error>(format!("student_id\n{SSN}"))]);
        let body = axum::body::Body::from_stream(futures::StreamExt::chain(
            first,
            futures::stream::pending(),
        ));
        app.clone().oneshot(upload(body))
    });
    for answer in futures::future::join_all(stalled).await {
        let answer = answer.unwrap();
        assert_eq!(answer.status(), StatusCode::REQUEST_TIMEOUT);
        let body = axum::body::to_bytes(answer.into_body(), 4096)
            .await
            .unwrap();
        let error: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(error["error"], "body: not received in time");
        assert_no_echo(&String::from_utf8_lossy(&body), &[SSN]);
    }
    let csv = axum::body::Body::from("student_id,vaccine_name\n");
    let through = app.oneshot(upload(csv)).await.unwrap();
    assert_eq!(through.status(), StatusCode::OK);
    vitals.shutdown().await;
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn a_json_body_is_refused_by_line_and_field_never_echoed(pool: PgPool) {
    let (app, vitals, pg, student) = app_on(pool, "json").await;
    let uri = format!("/api/students/{student}/vaccinations");
    let before = count(&pg, "SELECT COUNT(*) FROM vaccinations").await;
    let cases = [
        // Cut short, inside a value.
        (
            format!(r#"{{"vaccine_name":"{SSN}","dose_number":"#),
            StatusCode::BAD_REQUEST,
            "body",
            "JSON ends early (line 1, column",
        ),
        // Not JSON: a bare SSN as a value.
        (
            format!(r#"{{"lot_number": {SSN}}}"#),
            StatusCode::BAD_REQUEST,
            "body",
            "not valid JSON (line 1, column",
        ),
        // Data after the object.
        (
            format!(r#"{{"vaccine_name":"MMR"}} "{SSN}""#),
            StatusCode::BAD_REQUEST,
            "body",
            "not valid JSON (line 1, column",
        ),
        // Not an object.
        (
            format!(r#""{SSN}""#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "body",
            "not the expected type or value (line 1, column",
        ),
        // The wrong type in a field: serde's own message quotes the string.
        (
            format!(
                r#"{{"vaccine_name":"MMR","dose_number":"{SSN}","administered_on":"2020-01-02"}}"#
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "dose_number",
            "not a whole number",
        ),
        (
            format!(r#"{{"vaccine_name":"MMR","dose_number":1,"administered_on":"{SSN}"}}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "administered_on",
            "not a date (YYYY-MM-DD)",
        ),
        (
            format!(
                r#"{{"vaccine_name":["{SSN}"],"dose_number":1,"administered_on":"2020-01-02"}}"#
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "vaccine_name",
            "not text",
        ),
    ];
    for (body, status, field, reason) in cases {
        let answer = call(&app, "POST", &uri, json_body(&body)).await;
        assert_refused(&answer, status, field, reason, &[SSN]);
    }

    // No JSON content type.
    let answer = call(&app, "POST", &uri, Some(("text/plain", SSN.to_owned()))).await;
    assert_refused(
        &answer,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "body",
        "expected Content-Type: application/json",
        &[SSN],
    );
    // Above axum's default 2 MB limit for a JSON body.
    let huge = format!(r#"{{"lot_number":"{}"}}"#, SSN.repeat(300_000));
    let answer = call(&app, "POST", &uri, json_body(&huge)).await;
    assert_refused(
        &answer,
        StatusCode::PAYLOAD_TOO_LARGE,
        "body",
        "larger than this route accepts",
        &[SSN],
    );
    assert_eq!(
        count(&pg, "SELECT COUNT(*) FROM vaccinations").await,
        before
    );
    vitals.shutdown().await;
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn a_vaccination_posted_follows_the_importers_rules(pool: PgPool) {
    let (app, vitals, pg, student) = app_on(pool, "rules").await;
    let uri = format!("/api/students/{student}/vaccinations");
    let before = count(&pg, "SELECT COUNT(*) FROM vaccinations").await;
    let long = SSN.repeat(91); // 1 001 characters
    let future = (Utc::now() + Duration::days(30))
        .date_naive()
        .format("%Y-%m-%d")
        .to_string();
    let post = |name: &str, dose: &str, on: &str, by: &str, lot: &str| {
        serde_json::json!({
            "vaccine_name": name, "dose_number": dose.parse::<i64>().unwrap(),
            "administered_on": on, "administered_by": by, "lot_number": lot,
        })
        .to_string()
    };
    let cases = [
        (
            post("MMR", "1", "2020-01-02", "Nurse", &long),
            "lot_number",
            "longer than 1000 characters",
            long.as_str(),
        ),
        (
            post("MMR", "1", "2020-01-02", &long, "L1"),
            "administered_by",
            "longer than 1000 characters",
            long.as_str(),
        ),
        (
            post(&long, "1", "2020-01-02", "Nurse", "L1"),
            "vaccine_name",
            "longer than 1000 characters",
            long.as_str(),
        ),
        (
            post("MMR", "1", "0000-03-04", "Nurse", "L1"),
            "administered_on",
            "year out of range 0001..=9999",
            "0000-03-04",
        ),
        (
            post("MMR", "1", &future, "Nurse", "L1"),
            "administered_on",
            "in the future",
            future.as_str(),
        ),
        (
            post("MMR", "21", "2020-01-02", "Nurse", "L1"),
            "dose_number",
            "out of range 1..=20",
            "21",
        ),
        (
            post("  ", "1", "2020-01-02", "Nurse", "L1"),
            "vaccine_name",
            "required",
            "  ",
        ),
    ];
    for (body, field, reason, value) in &cases {
        let answer = call(&app, "POST", &uri, json_body(body)).await;
        let hidden: &[&str] = if value.trim().len() > 3 {
            &[value, SSN]
        } else {
            &[SSN]
        };
        assert_refused(
            &answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            field,
            reason,
            hidden,
        );
    }
    // A NUL in any text field: a 422 naming it (PostgreSQL would refuse the row with a 500).
    for field in ["vaccine_name", "administered_by", "lot_number"] {
        let mut body = serde_json::json!({
            "vaccine_name": "MMR", "dose_number": 2, "administered_on": "2020-01-02",
            "administered_by": "Nurse", "lot_number": "L1",
        });
        body[field] = Value::String(format!("{SSN}\u{0}x"));
        let answer = call(&app, "POST", &uri, json_body(&body.to_string())).await;
        assert_refused(
            &answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            field,
            "contains a NUL character",
            &[SSN],
        );
    }
    // Every bad field at once, each named.
    let answer = call(
        &app,
        "POST",
        &uri,
        json_body(&post("MMR", "0", "0000-01-01", "Nurse", &long)),
    )
    .await;
    let json: Value = serde_json::from_str(&answer.1).unwrap();
    let fields: Vec<&str> = json["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["dose_number", "administered_on", "lot_number"],
        "{}",
        answer.1
    );
    assert_no_echo(&answer.1, &[&long]);
    assert_eq!(
        count(&pg, "SELECT COUNT(*) FROM vaccinations").await,
        before,
        "nothing refused was stored"
    );

    // At the bounds: 1 000 characters, year 0001, today.
    let at_limit = "L".repeat(1000);
    let today = Utc::now().date_naive().format("%Y-%m-%d").to_string();
    for (dose, on) in [("3", "0001-01-01"), ("4", today.as_str())] {
        let (status, body) = call(
            &app,
            "POST",
            &uri,
            json_body(&post("MMR", dose, on, &at_limit, &at_limit)),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    assert_eq!(
        count(&pg, "SELECT COUNT(*) FROM vaccinations").await,
        before + 2
    );
    vitals.shutdown().await;
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn an_import_upload_follows_the_same_date_rules(pool: PgPool) {
    let (app, vitals, pg, _) = app_on(pool, "import").await;
    let future = (Utc::now() + Duration::days(30))
        .date_naive()
        .format("%Y-%m-%d")
        .to_string();
    let csv = format!(
        "id,student_number,first_name,last_name,date_of_birth,grade\n\
         {},S9000001,Ann,Lee,0000-03-04,3\n\
         {},S9000002,Bo,Lee,{future},3\n\
         {},S9000003,Cy,Lee,2015-03-04,3\n",
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    let before = count(&pg, "SELECT COUNT(*) FROM students").await;
    let (report, body) = common::import_csv(&app, "student", csv).await;
    assert_eq!(report["imported"], 1, "{body}");
    let reasons: Vec<(u64, &str, &str)> = report["rejections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["field"].as_str().unwrap(),
                r["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            (2, "date_of_birth", "year out of range 0001..=9999"),
            (3, "date_of_birth", "in the future"),
        ]
    );
    assert_no_echo(&body, &["0000-03-04", &future]);
    assert_eq!(
        count(&pg, "SELECT COUNT(*) FROM students").await,
        before + 1
    );
    vitals.shutdown().await;
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn no_route_and_a_wrong_method_echo_nothing(pool: PgPool) {
    let (app, vitals, _, _) = app_on(pool, "fallback").await;
    for (method, uri, want) in [
        ("GET", format!("/api/{SSN}"), StatusCode::NOT_FOUND),
        ("GET", format!("/api/students/{SSN}"), StatusCode::NOT_FOUND),
        (
            "DELETE",
            format!("/api/students/{SSN}/vaccinations"),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "PUT",
            "/api/import".to_owned(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ] {
        let (status, body) = call(&app, method, &uri, None).await;
        assert_eq!(status, want, "{method} {uri}");
        // axum answers these with an empty body; it must stay free of the request.
        assert!(body.is_empty(), "{method} {uri}: {body}");
        assert_no_echo(&body, &[SSN]);
    }
    vitals.shutdown().await;
}
