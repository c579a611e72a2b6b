//! Helpers shared by the facade's test binaries: the servers' URLs, a migrated SQLite
//! database, a facade on a test's PostgreSQL pool with a school loaded, and log capture.
//! Each binary uses some of them.
#![allow(dead_code)]

pub mod child;
pub mod chromium;
pub mod example;
pub mod health_server;
pub mod import;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDate;
use sqlx::migrate::Migrator;
use sqlx::{PgPool, SqlitePool};
use uuid::Uuid;
use vitals::cache::{EncryptionKey, Keyring};
use vitals::health::{self, HealthSummary, School, SchoolGenerator};
use vitals::{Config, Db, Vitals};

/// vitals' school-health tables, by name.
pub const VITALS_TABLES: [&str; 7] = [
    "allergies",
    "appointments",
    "chronic_conditions",
    "incident_reports",
    "medication_logs",
    "students",
    "vaccinations",
];

/// `REDIS_URL`, or the local server.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A migrated in-memory SQLite database. One connection: every connection to
/// `sqlite::memory:` is a database of its own.
pub async fn sqlite_memory() -> SqlitePool {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    health::migrate_sqlite(&pool).await.unwrap();
    pool
}

/// The URL of an SQLite file `name` in `dir`.
pub fn sqlite_file_url(dir: &tempfile::TempDir, name: &str) -> String {
    format!("sqlite://{}", dir.path().join(name).display())
}

/// A new temporary directory and the URL of an SQLite file `name` in it (the file goes with
/// the directory: keep it while the test runs).
pub fn sqlite_file(name: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_file_url(&dir, name);
    (dir, url)
}

/// The facade on a test's PostgreSQL pool, with `config`, its monitor sampling every
/// `monitor_interval` (the builder's default when `None`).
pub async fn vitals_on_postgres(
    config: Config,
    pool: PgPool,
    monitor_interval: Option<Duration>,
) -> Vitals {
    let mut builder = Vitals::builder().config(config).postgres_pool(pool);
    if let Some(every) = monitor_interval {
        builder = builder.monitor_interval(every);
    }
    builder.build().await.unwrap()
}

/// A generated school of `students` (seed `seed`), loaded into `pool` (where its
/// `search_path` finds the tables: `#[sqlx::test]` migrated them into `public`).
pub async fn load_postgres_school(pool: &PgPool, students: usize, seed: u64) -> School {
    let school = SchoolGenerator::new(students).seed(seed).generate();
    health::load_school_postgres(pool, &health::Tables::unqualified(), &school)
        .await
        .unwrap();
    school
}

/// The ids of a school's students, to share between tasks.
pub fn student_ids(school: &School) -> Arc<Vec<Uuid>> {
    Arc::new(school.students.iter().map(|s| s.id).collect())
}

/// A student's health summary through the facade's cache; the student must exist.
pub async fn cached_summary(vitals: &Vitals, student: Uuid) -> HealthSummary {
    vitals
        .health_cache()
        .student_health_summary(student)
        .await
        .unwrap()
        .unwrap()
        .as_ref()
        .clone()
}

/// A free loopback port (nothing listens on it once this returns).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Everything written through a `tracing` subscriber that writes here.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// A subscriber that writes events up to `level` here, without colours or timestamps (a
    /// timestamp is a date: the scrubber's date detector would fire on every line).
    pub fn subscriber(&self, level: tracing::Level) -> impl tracing::Subscriber + Send + Sync {
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .without_time()
            .with_writer(self.clone())
            .finish()
    }

    /// Everything written so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// What this test binary's one global subscriber writes (events up to `level`; the first
/// call installs it, and its `level` holds). Global because a thread-local default misses
/// the events of the runtime's other threads.
pub fn global_capture(level: tracing::Level) -> &'static Captured {
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        tracing::subscriber::set_global_default(captured.subscriber(level)).unwrap();
        captured
    })
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// The facade on a new SQLite file `name` in `dir`, nothing else configured, its monitor
/// sampling every `monitor_interval` (the builder's default when `None`).
pub async fn vitals_on_sqlite_file(
    dir: &tempfile::TempDir,
    name: &str,
    monitor_interval: Option<Duration>,
) -> Vitals {
    let mut builder = Vitals::builder().database_url(Some(sqlite_file_url(dir, name)));
    if let Some(every) = monitor_interval {
        builder = builder.monitor_interval(every);
    }
    builder.build().await.unwrap()
}

/// One CSV record, every field quoted (quotes doubled), ended by CRLF.
pub fn csv_line<S: AsRef<str>>(fields: &[S]) -> String {
    let quoted: Vec<String> = fields
        .iter()
        .map(|f| format!("\"{}\"", f.as_ref().replace('"', "\"\"")))
        .collect();
    format!("{}\r\n", quoted.join(","))
}

/// The default configuration with Redis on a key prefix of the test's own
/// (`vitals-test:{test}:{uuid}`).
pub fn redis_config(test: &str) -> Config {
    let mut config = Config::defaults().unwrap();
    config.cache = config
        .cache
        .with_redis_url(Some(redis_url()))
        .with_key_prefix(format!("vitals-test:{test}:{}", Uuid::new_v4()))
        // Without a key vitals writes no value to Redis (PHI never in the clear): the tests
        // that read one instance's entries from another need one, as production does.
        .with_encryption(Some(test_keyring()));
    config
}

/// The encryption keys of the tests' Redis instances (synthetic, never a real key).
pub fn test_keyring() -> Keyring {
    // Invariant: "test-1" is a valid key id (letters, digits and `-`).
    Keyring::new(EncryptionKey::new("test-1", [7; 32]).unwrap(), [])
}

/// The facade on a test's PostgreSQL pool with [`redis_config`], and a generated school of
/// `students` (seed `seed`) loaded through the facade's handle.
pub async fn host_on_postgres(
    pool: PgPool,
    test: &str,
    students: usize,
    seed: u64,
) -> (Vitals, School) {
    let vitals = vitals_on_postgres(redis_config(test), pool, None).await;
    let school = SchoolGenerator::new(students).seed(seed).generate();
    load_school(&vitals, &school).await;
    (vitals, school)
}

/// Loads `school` into the facade's tables on whichever engine it runs, through the engine's
/// own pool (the load is setup: it stays out of the query log and the pool's statistics).
pub async fn load_school(vitals: &Vitals, school: &School) {
    let tables = vitals.tables();
    match vitals.db() {
        Db::Postgres(p) => health::load_school_postgres(p.inner(), tables, school).await,
        Db::Sqlite(p) => health::load_school_sqlite(p.inner(), tables, school).await,
    }
    .unwrap();
}

/// A host's write through the facade's handle: one dose of `vaccine` for `student` on `day`.
/// Returns the rows written.
///
/// # Errors
/// The database error.
pub async fn add_vaccination(
    vitals: &Vitals,
    student: Uuid,
    vaccine: &str,
    day: NaiveDate,
) -> Result<u64, sqlx::Error> {
    vitals::with_db!(vitals.db(), |db| {
        sqlx::query(
            "INSERT INTO vaccinations (id, student_id, vaccine_name, dose_number, administered_on) \
             VALUES ($1, $2, $3, 1, $4)",
        )
        .bind(Uuid::new_v4())
        .bind(student)
        .bind(vaccine)
        .bind(day)
        .execute(db)
        .await
        .map(|r| r.rows_affected())
    })
}

/// A pool of its own to the database of a test's `pool`, for a facade whose shutdown closes
/// it.
pub async fn own_pool(pool: &PgPool) -> PgPool {
    PgPool::connect_with((*pool.connect_options()).clone())
        .await
        .unwrap()
}

/// One start of a host's service: the facade with `config` on [`own_pool`].
///
/// # Errors
/// What [`vitals::VitalsBuilder::build`] returns.
pub async fn start_on_own_pool(pool: &PgPool, config: Config) -> Result<Vitals, vitals::Error> {
    Vitals::builder()
        .config(config)
        .postgres_pool(own_pool(pool).await)
        .build()
        .await
}

/// A rolling restart, `rounds` times: the host's migrations run, then the facade starts with
/// the default configuration on a pool of its own and the one before it shuts down (the two
/// overlap), then `check` on `pool`. Returns the last start, still running.
pub async fn host_then_vitals(
    pool: &PgPool,
    host: &Migrator,
    rounds: usize,
    check: impl AsyncFn(&PgPool),
) -> Vitals {
    let config = Config::defaults().unwrap();
    let mut last: Option<Vitals> = None;
    for _ in 0..rounds {
        host.run(pool).await.unwrap();
        let vitals = start_on_own_pool(pool, config.clone()).await.unwrap();
        if let Some(previous) = last.replace(vitals) {
            previous.shutdown().await;
        }
        check(pool).await;
    }
    last.expect("at least one round")
}

/// The one number a `SELECT COUNT(*) …` returns.
pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Sends one request to `app` (with a body of the given content type, if any) and returns
/// the status and the body's text.
#[cfg(feature = "http")]
pub async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    body: Option<(&str, String)>,
) -> (axum::http::StatusCode, String) {
    use tower::ServiceExt as _;
    let mut request = axum::http::Request::builder().method(method).uri(uri);
    let body = match body {
        Some((content_type, text)) => {
            request = request.header("content-type", content_type);
            axum::body::Body::from(text)
        }
        None => axum::body::Body::empty(),
    };
    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

/// The JSON report of `POST /api/import?type={kind}` with `csv`, which must answer 200, and
/// the body as sent.
pub async fn import_csv(
    app: &axum::Router,
    kind: &str,
    csv: String,
) -> (serde_json::Value, String) {
    let uri = format!("/api/import?type={kind}");
    let (status, body) = call(app, "POST", &uri, Some(("text/csv", csv))).await;
    assert_eq!(status, axum::http::StatusCode::OK, "{body}");
    (serde_json::from_str(&body).unwrap(), body)
}
