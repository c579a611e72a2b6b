//! The facade over a primary and a streaming standby the test starts (`initdb`,
//! `pg_basebackup -R`, free loopback ports, stopped by pid): the health cache's loads read the
//! replica, a load after an invalidation never caches the replica's older row (the replica is
//! slowed with `recovery_min_apply_delay`), a request's reads after its write see it
//! (`ReadYourWritesLayer`; an import's too), and `/api/health/database/pool` has the replica's entry.
#![cfg(feature = "http")]

mod common;
#[path = "../../pool/tests/common/pg_standby.rs"]
mod pg_standby;

use std::time::{Duration, Instant};

use axum::body::Body;
use http::Request;
use tower::ServiceExt;
use vitals::health::{self, SchoolGenerator};
use vitals::{Config, Db, Vitals};

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn in_recovery(db: &Db) -> bool {
    sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(db.postgres().unwrap())
        .await
        .unwrap()
}

/// Text column `column` of `student`'s row of the `students` table (qualified name), read
/// on `db`.
async fn student_text<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Postgres>,
    students: &str,
    column: &str,
    student: uuid::Uuid,
) -> String {
    sqlx::query_scalar(&format!("SELECT {column} FROM {students} WHERE id = $1"))
        .bind(student)
        .fetch_one(db)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_to_the_replica_cache_loads_never_cache_its_older_row_and_requests_read_their_writes(
) {
    let primary = pg_standby::PgPrimary::start().unwrap();
    let standby = pg_standby::PgStandby::of(&primary).unwrap();
    let (primary_url, standby_url) = (primary.url(), standby.url());
    let config = Config::from_env_with(vitals::env::pairs(&[
        ("DATABASE_URL", &primary_url),
        ("DATABASE_REPLICA_URLS", &standby_url),
        ("DB_REPLICA_CHECK_INTERVAL_MS", "50"),
        ("DB_REPLICA_MAX_LAG_MS", "10000"),
        ("DB_REPLICA_WAIT_MS", "3000"),
        ("DB_POOL_MIN", "0"),
    ]))
    .unwrap();
    let vitals = Vitals::builder()
        .config(config)
        .redis_url(None::<String>)
        .build()
        .await
        .unwrap();
    let router = vitals
        .reads()
        .replicas()
        .expect("replicas configured")
        .clone();
    assert!(
        !in_recovery(vitals.db()).await,
        "the write handle is the primary"
    );

    let school = SchoolGenerator::new(5).seed(18).generate();
    health::load_school_postgres(vitals.db().postgres().unwrap(), vitals.tables(), &school)
        .await
        .unwrap();
    let student = school.students[0].id;
    until("the replica is fit", || router.statuses()[0].fit).await;

    // A miss reads the replica once it replayed the school.
    let before = router.stats().replica_reads;
    let first = common::cached_summary(&vitals, student).await;
    assert_eq!(first.student.first_name, school.students[0].first_name);
    assert!(
        router.stats().replica_reads > before,
        "{:?}",
        router.stats()
    );

    // Slow the replica, rename the student on the primary, invalidate.
    standby
        .set_apply_delay(Duration::from_millis(1500))
        .unwrap();
    let students = vitals.tables().table("students");
    sqlx::query(&format!(
        "UPDATE {students} SET first_name = 'Renamed' WHERE id = $1"
    ))
    .bind(student)
    .execute(vitals.db().postgres().unwrap())
    .await
    .unwrap();
    let on_replica = student_text(router.read().pool(), &students, "first_name", student).await;
    assert_ne!(
        on_replica, "Renamed",
        "the delay is real: the replica has the older row"
    );
    vitals.health_cache().invalidate_student(student).await;

    // The load after the invalidation (no scope: another request) waits for the replica or
    // reads the primary; what it caches is the new row, and so is the next (cached) read.
    for _ in 0..2 {
        let summary = common::cached_summary(&vitals, student).await;
        assert_eq!(summary.student.first_name, "Renamed");
    }

    // In a read-your-writes scope, a read right after a write goes to the primary (no wait)
    // or to a replica that replayed it (bounded wait).
    vitals::read_your_writes(async {
        sqlx::query(&format!("UPDATE {students} SET grade = '12' WHERE id = $1"))
            .bind(student)
            .execute(vitals.db().postgres().unwrap())
            .await
            .unwrap();
        assert!(
            !in_recovery(&vitals.reads().now()).await,
            "no wait: the primary"
        );
        let db = vitals.reads().consistent().await;
        let grade = student_text(db.postgres().unwrap(), &students, "grade", student).await;
        assert_eq!(grade, "12");
    })
    .await;

    // An import is a write of the scope too, though its chunks are written on raw
    // connections by the importer's own tasks: the read after it does not go to the (slowed)
    // replica that has not replayed it.
    vitals::read_your_writes(async {
        let csv = format!(
            "student_id,vaccine_name,dose_number,administered_on\n{student},Synthetic-RYW,1,2015-03-01\n"
        );
        let source = vitals::import::Source::from_reader(
            std::io::Cursor::new(csv.into_bytes()),
            vitals::import::Format::Csv,
        )
        .unwrap()
        .with_type(vitals::health::records::VACCINATION);
        let outcome = vitals.import(source, None).await.unwrap();
        assert_eq!(outcome.report.imported, 1, "{:?}", outcome.report);
        assert!(
            !in_recovery(&vitals.reads().now()).await,
            "the import marked the scope: no wait, so the primary"
        );
        let vaccinations = vitals.tables().table("vaccinations");
        let db = vitals.reads().consistent().await;
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {vaccinations} WHERE student_id = $1 AND vaccine_name = 'Synthetic-RYW'"
        ))
        .bind(student)
        .fetch_one(db.postgres().unwrap())
        .await
        .unwrap();
        assert_eq!(n, 1, "the read after the import sees it");
    })
    .await;

    // Per request through the layer: the handler's read after its write goes to the primary;
    // the same handler without the layer reads the replica (not in any scope).
    async fn write_then_read(
        axum::extract::State(vitals): axum::extract::State<Vitals>,
    ) -> &'static str {
        sqlx::query("SELECT 1")
            .execute(vitals.db().postgres().unwrap())
            .await
            .unwrap();
        match in_recovery(&vitals.reads().now()).await {
            true => "replica",
            false => "primary",
        }
    }
    for (layered, expected) in [(true, "primary"), (false, "replica")] {
        let app = axum::Router::new()
            .route("/w", axum::routing::post(write_then_read))
            .with_state(vitals.clone());
        let app = match layered {
            true => app.layer(vitals::http::ReadYourWritesLayer::new()),
            false => app,
        };
        let response = app
            .oneshot(Request::post("/w").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(body, expected, "layered: {layered}");
    }

    // A read cancelled by its own statement timeout on the replica is returned as it is,
    // not run again on the primary (it would take as long there, on the primary).
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let cancelled = vitals
        .reads()
        .run(false, |db| {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                let mut tx = db.postgres().unwrap().begin().await?;
                sqlx::query("SET LOCAL statement_timeout = 50")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("SELECT pg_sleep(5)").execute(&mut *tx).await?;
                Ok::<_, vitals::Error>(())
            }
        })
        .await;
    let err = cancelled.expect_err("the statement timeout cancels the read");
    assert_eq!(err.code(), Some("57014"), "{err}");
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "ran once"
    );

    // The pool endpoint names the replica.
    let response = vitals::http::router(vitals.clone())
        .oneshot(
            Request::get("/api/health/database/pool")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let replica = &json["replicas"][0];
    assert!(
        replica["url"]
            .as_str()
            .unwrap()
            .contains(&standby.server.port.to_string()),
        "{json}"
    );
    assert!(replica["metrics"]["max_connections"].is_number(), "{json}");
    assert!(replica["health"]["status"].is_string(), "{json}");
    vitals.shutdown().await;
}
