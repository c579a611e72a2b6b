//! A failed statement keeps its structure through `?` and answers HTTP by its class, on real
//! PostgreSQL (each test's own tables) and on SQLite: the kind, the code and the constraint,
//! the status, `Retry-After`, and a JSON body that never carries a value.
//!
//! Run with `cargo test -p vitals --test errors` (PostgreSQL from `DATABASE_URL`).
#![cfg(feature = "http")]

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use http_body_util::BodyExt;
use sqlx::{PgPool, Postgres, Transaction};
use vitals::{DbErrorKind, Error};

/// A value no message, code or constraint name contains: if it reaches a body, a value leaked.
const VALUE: &str = "Zostavax-4471";

/// The tables of these tests: a unique, a foreign key, a not-null and a check constraint,
/// each named.
const SCHEMA: &str = "
    CREATE TABLE students (id int PRIMARY KEY);
    CREATE TABLE vaccinations (
        id int PRIMARY KEY,
        student_id int NOT NULL CONSTRAINT vaccinations_student_fkey REFERENCES students (id),
        vaccine text NOT NULL,
        dose int NOT NULL CONSTRAINT vaccinations_dose_check CHECK (dose > 0),
        CONSTRAINT vaccinations_student_vaccine_dose_key UNIQUE (student_id, vaccine, dose)
    );
    CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL);
    INSERT INTO students VALUES (1);
    INSERT INTO counters VALUES (1, 0), (2, 0);
";

const INSERT: &str =
    "INSERT INTO vaccinations (id, student_id, vaccine, dose) VALUES ($1, $2, $3, $4)";

async fn schema(pool: &PgPool) {
    sqlx::raw_sql(SCHEMA).execute(pool).await.unwrap();
}

/// The statement's error after `?`, as a host's handler sees it.
async fn insert(pool: &PgPool, id: i32, student: i32, vaccine: Option<&str>, dose: i32) -> Error {
    let run = async {
        sqlx::query(INSERT)
            .bind(id)
            .bind(student)
            .bind(vaccine)
            .bind(dose)
            .execute(pool)
            .await?;
        Ok::<_, Error>(())
    };
    run.await.unwrap_err()
}

/// The response of an error: its status, its `Retry-After`, its body as text and as JSON.
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    text: String,
    json: serde_json::Value,
}

async fn answer(err: Error) -> Answer {
    let response = err.into_response();
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let json = serde_json::from_str(&text).unwrap();
    Answer {
        status,
        retry_after,
        text,
        json,
    }
}

/// Bad input: 422, no `Retry-After`, the code and the constraint in the body, no value.
async fn assert_bad_input(err: Error, code: &str, kind: DbErrorKind, constraint: Option<&str>) {
    assert_eq!(err.code(), Some(code), "{err}");
    assert_eq!(err.kind(), Some(kind));
    assert_eq!(err.constraint(), constraint);
    assert!(!err.is_retryable());
    assert!(!err.to_string().contains(VALUE), "{err}");
    let a = answer(err).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text);
    assert_eq!(a.retry_after, None);
    assert_eq!(a.json["code"], code);
    match constraint {
        Some(name) => assert_eq!(a.json["constraint"], name),
        None => assert!(a.json.get("constraint").is_none(), "{}", a.text),
    }
    assert!(!a.text.contains(VALUE), "{}", a.text);
}

/// Retryable: 503 with `Retry-After: 1` and the code when the server sent one.
async fn assert_retryable(err: Error, code: Option<&str>, kind: DbErrorKind) {
    assert_eq!(err.kind(), Some(kind), "{err}");
    assert_eq!(err.code(), code);
    assert!(err.is_retryable());
    let a = answer(err).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.text);
    assert_eq!(a.retry_after.as_deref(), Some("1"));
    match code {
        Some(code) => assert_eq!(a.json["code"], code),
        None => assert!(a.json.get("code").is_none(), "{}", a.text),
    }
    assert!(a.json["error"].is_string());
}

#[sqlx::test(migrations = false)]
async fn a_duplicate_is_a_409_naming_the_constraint_not_the_value(pool: PgPool) {
    schema(&pool).await;
    sqlx::query(INSERT)
        .bind(1)
        .bind(1)
        .bind(VALUE)
        .bind(1)
        .execute(&pool)
        .await
        .unwrap();
    let err = insert(&pool, 2, 1, Some(VALUE), 1).await;

    let constraint = "vaccinations_student_vaccine_dose_key";
    assert_eq!(err.code(), Some("23505"));
    assert_eq!(err.constraint(), Some(constraint));
    assert_eq!(err.kind(), Some(DbErrorKind::UniqueViolation));
    assert!(!err.is_retryable());
    assert!(matches!(&err, Error::Database(db) if db.code() == Some("23505")));
    let a = answer(err).await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert_eq!(a.retry_after, None);
    assert_eq!(a.json["code"], "23505");
    assert_eq!(a.json["constraint"], constraint);
    assert!(
        a.json["error"].as_str().unwrap().contains(constraint),
        "{}",
        a.text
    );
    assert!(!a.text.contains(VALUE), "{}", a.text);
    assert!(!a.text.contains("Key ("), "no DETAIL line: {}", a.text);
}

/// A missing parent, a missing value and a failed check: each a 422 naming its code and, where
/// the server names one, its constraint.
#[sqlx::test(migrations = false)]
async fn a_missing_parent_a_missing_value_and_a_failed_check_are_422s(pool: PgPool) {
    use DbErrorKind::{CheckViolation, ForeignKeyViolation, NotNullViolation};
    schema(&pool).await;
    let (fk, check) = (
        Some("vaccinations_student_fkey"),
        Some("vaccinations_dose_check"),
    );
    // (student, vaccine, dose) of the row, and what refuses it. PostgreSQL 15 names the
    // column, not a constraint, for NOT NULL.
    for (student, vaccine, dose, code, kind, constraint) in [
        (999, Some(VALUE), 1, "23503", ForeignKeyViolation, fk),
        (1, None, 1, "23502", NotNullViolation, None),
        (1, Some(VALUE), 0, "23514", CheckViolation, check),
    ] {
        let err = insert(&pool, 1, student, vaccine, dose).await;
        assert_bad_input(err, code, kind, constraint).await;
    }
}

#[sqlx::test(migrations = false)]
async fn a_data_exception_is_a_422_without_the_input(pool: PgPool) {
    // 22P02: PostgreSQL quotes the input in the message; the scrubber masks it.
    let err: Error = sqlx::query("SELECT $1::text::int")
        .bind(VALUE)
        .execute(&pool)
        .await
        .unwrap_err()
        .into();
    assert_bad_input(err, "22P02", DbErrorKind::Other, None).await;
}

async fn add(tx: &mut Transaction<'_, Postgres>, id: i32) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE counters SET n = n + 1 WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await
        .map(drop)
}

type Tx = Transaction<'static, Postgres>;

/// Two transactions on the tables of [`SCHEMA`] (created here), each having run `setup`.
async fn two_transactions(pool: &PgPool, setup: &[&str]) -> (Tx, Tx) {
    schema(pool).await;
    let mut a = pool.begin().await.unwrap();
    let mut b = pool.begin().await.unwrap();
    for tx in [&mut a, &mut b] {
        for sql in setup {
            sqlx::query(sql).execute(&mut **tx).await.unwrap();
        }
    }
    (a, b)
}

#[sqlx::test(migrations = false)]
async fn a_deadlock_is_retryable_503(pool: PgPool) {
    let (mut a, mut b) = two_transactions(&pool, &["SET LOCAL deadlock_timeout = '50ms'"]).await;
    // Each holds one row, then wants the other's: the server picks one of them to fail.
    add(&mut a, 1).await.unwrap();
    add(&mut b, 2).await.unwrap();
    let (ra, rb) = tokio::join!(add(&mut a, 2), add(&mut b, 1));
    let err = match (ra, rb) {
        (Err(e), Ok(())) | (Ok(()), Err(e)) => Error::from(e),
        other => panic!("exactly one side fails: {other:?}"),
    };
    assert_retryable(err, Some("40P01"), DbErrorKind::SerializationFailure).await;
}

#[sqlx::test(migrations = false)]
async fn a_serialization_failure_is_retryable_503(pool: PgPool) {
    // Write skew: each reads what the other then writes.
    let setup = [
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "SELECT sum(n) FROM counters",
    ];
    let (mut a, mut b) = two_transactions(&pool, &setup).await;
    add(&mut a, 1).await.unwrap();
    let written = add(&mut b, 2).await;
    a.commit().await.unwrap();
    let err = match written {
        Err(e) => e,
        Ok(()) => b.commit().await.unwrap_err(),
    };
    assert_retryable(
        Error::from(err),
        Some("40001"),
        DbErrorKind::SerializationFailure,
    )
    .await;
}

#[sqlx::test(migrations = false)]
async fn a_statement_timeout_is_retryable_503(pool: PgPool) {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL statement_timeout = 50")
        .execute(&mut *tx)
        .await
        .unwrap();
    let err = sqlx::query("SELECT pg_sleep(1)")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_retryable(Error::from(err), Some("57014"), DbErrorKind::Timeout).await;
}

#[sqlx::test(migrations = false)]
async fn a_lost_connection_is_retryable_503(pool: PgPool) {
    let mut victim = pool.acquire().await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *victim)
        .await
        .unwrap();
    // The two-argument form returns once the backend has exited (PostgreSQL 14+).
    let gone: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 10000)")
        .bind(pid)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(gone);
    let err = Error::from(
        sqlx::query("SELECT 1")
            .execute(&mut *victim)
            .await
            .unwrap_err(),
    );
    // The server's FATAL 57P01 when sqlx reads it first, an I/O error when the socket is.
    let code = err.code().map(str::to_owned);
    assert!(matches!(code.as_deref(), None | Some("57P01")), "{err}");
    assert_retryable(err, code.as_deref(), DbErrorKind::Connection).await;
}

#[tokio::test]
async fn an_sqlite_duplicate_is_a_409_with_its_extended_code() {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    sqlx::query("CREATE TABLE vaccinations (vaccine TEXT NOT NULL UNIQUE)")
        .execute(&pool)
        .await
        .unwrap();
    let insert = || {
        sqlx::query("INSERT INTO vaccinations (vaccine) VALUES ($1)")
            .bind(VALUE)
            .execute(&pool)
    };
    insert().await.unwrap();
    let err = Error::from(insert().await.unwrap_err());
    // SQLITE_CONSTRAINT_UNIQUE; SQLite names the columns, not a constraint.
    assert_eq!(err.code(), Some("2067"));
    assert_eq!(err.kind(), Some(DbErrorKind::UniqueViolation));
    assert_eq!(err.constraint(), None);
    let a = answer(err).await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert_eq!(a.json["code"], "2067");
    assert!(!a.text.contains(VALUE), "{}", a.text);
}

#[tokio::test]
async fn errors_that_are_not_the_databases_keep_their_status() {
    let a = answer(Error::Migrate("checksum mismatch".into())).await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(a.json.get("code").is_none());
    let waited = std::time::Duration::from_millis(30);
    let pool = Error::Pool(vitals::pool::PoolError::AcquireTimeout { waited });
    let a = answer(pool).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.retry_after.as_deref(), Some("1"));
}
