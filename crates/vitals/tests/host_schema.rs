//! The host keeps its schema: a host with its own `sqlx::migrate!` migrations (its own
//! `students` table among them) in `public`, and vitals beside it in a schema of its own, both
//! started three times in either order: every migration is applied once, each history table
//! holds its own, the host's rows and columns are untouched, and each side's statements reach
//! its own tables. The same on SQLite in one file, and with the school-health domain off.
//!
//! Run with `cargo test -p vitals --test host_schema` (PostgreSQL from `DATABASE_URL`).

mod common;

use common::{count, VITALS_TABLES};

use sqlx::migrate::Migrator;
use sqlx::{PgPool, SqlitePool};
use vitals::health::{self, SchoolGenerator, Tables, MIGRATOR_POSTGRES, MIGRATOR_SQLITE};
use vitals::import::{Format, PgSink, Source};
use vitals::{Config, Error, Vitals};

/// The host's own migrations: `students` (other columns, one row) and `visits`.
static HOST: Migrator = sqlx::migrate!("tests/fixtures/host_migrations");
/// The host's own migrations on SQLite: `staff` (one row) and `shifts`.
static HOST_SQLITE: Migrator = sqlx::migrate!("tests/fixtures/host_migrations_sqlite");

/// One start of the facade on a pool of its own to the test's database (its shutdown closes
/// that pool), with `config`.
async fn start_vitals(pool: &PgPool, config: Config) -> Vitals {
    common::start_on_own_pool(pool, config).await.unwrap()
}

async fn tables_in(pool: &PgPool, schema: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// After any order of starts: each history holds its own migrations once, each schema its
/// own tables, and the host's table is as the host left it.
async fn assert_side_by_side(pool: &PgPool) {
    assert_eq!(
        count(pool, "SELECT COUNT(*) FROM public._sqlx_migrations").await,
        HOST.iter().count() as i64,
        "the host's history holds the host's migrations only"
    );
    assert_eq!(
        count(pool, "SELECT COUNT(*) FROM vitals._sqlx_migrations").await,
        MIGRATOR_POSTGRES.iter().count() as i64,
        "vitals' history is in its schema, each migration once"
    );
    assert_eq!(
        tables_in(pool, "public").await,
        ["_sqlx_migrations", "students", "visits"]
    );
    let mut expected: Vec<&str> = VITALS_TABLES.to_vec();
    expected.insert(0, "_sqlx_migrations");
    assert_eq!(tables_in(pool, "vitals").await, expected);
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name = 'students' ORDER BY ordinal_position",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        columns,
        ["id", "full_name", "homeroom"],
        "the host's columns"
    );
    let names: Vec<String> = sqlx::query_scalar("SELECT full_name FROM public.students")
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(names, ["Host Pupil"], "the host's rows, untouched");
}

/// vitals' reads, writes and imports reach `vitals.*`; the host's unqualified statement
/// through `vitals.db()` reaches the host's `public.students`.
async fn assert_each_side_reaches_its_tables(vitals: &Vitals) {
    assert_eq!(vitals.tables().schema(), Some("vitals"));
    let db = vitals.db().postgres().unwrap();
    let school = SchoolGenerator::new(30).seed(4).generate();
    health::load_school_postgres(db, vitals.tables(), &school)
        .await
        .unwrap();
    let student = school.students[0].id;
    let summary = common::cached_summary(vitals, student).await;
    assert_eq!(summary.student, school.students[0]);
    let stats = vitals.dashboard().stats().await;
    assert!(stats.failures.is_empty(), "{:?}", stats.failures);
    assert_eq!(
        stats.active_students,
        Some(school.students.iter().filter(|s| s.active).count() as i64)
    );
    let warmed = vitals.warm_now().await;
    assert!(warmed.warmed > 0 && warmed.failed == 0, "{warmed:?}");

    let csv = "id,student_number,first_name,last_name,date_of_birth,grade\r\n\
               7b0f4c1e-8a51-4b8e-9d6e-3f1d2c9a4b10,HS-1,Ada,Byron,2015-03-04,4\r\n";
    let source = Source::from_reader(std::io::Cursor::new(csv.as_bytes().to_vec()), Format::Csv)
        .unwrap()
        .with_type(health::records::STUDENT);
    let report = vitals
        .importer()
        .run(source, &mut PgSink::new(db.inner().clone()))
        .await
        .unwrap();
    assert_eq!((report.imported, report.rejected), (1, 0), "{report:#?}");

    // The host's own statement, unqualified, through vitals' handle: the host's table.
    let host: Vec<(i32, String)> = sqlx::query_as("SELECT id, full_name FROM students")
        .fetch_all(db)
        .await
        .unwrap();
    assert_eq!(host, [(1, "Host Pupil".to_string())]);
    let counts = health::table_counts_postgres(db, vitals.tables())
        .await
        .unwrap();
    assert_eq!(counts.students as usize, school.students.len() + 1);
}

#[sqlx::test(migrations = false)]
async fn host_then_vitals_three_times_each_migration_once(pool: PgPool) {
    let vitals = common::host_then_vitals(&pool, &HOST, 3, assert_side_by_side).await;
    assert_each_side_reaches_its_tables(&vitals).await;
    vitals.shutdown().await;
    HOST.run(&pool).await.unwrap();
    assert_side_by_side(&pool).await;
}

#[sqlx::test(migrations = false)]
async fn vitals_then_host_three_times_each_migration_once(pool: PgPool) {
    for round in 0..3 {
        let vitals = start_vitals(&pool, Config::defaults().unwrap()).await;
        HOST.run(&pool).await.unwrap();
        assert_side_by_side(&pool).await;
        if round == 2 {
            assert_each_side_reaches_its_tables(&vitals).await;
        }
        vitals.shutdown().await;
    }
    assert_side_by_side(&pool).await;
}

#[sqlx::test(migrations = false)]
async fn vitals_pg_schema_names_the_schema_and_a_changed_migration_is_refused(pool: PgPool) {
    let config =
        Config::from_env_with(|n| (n == "VITALS_PG_SCHEMA").then(|| "school_health".into()))
            .unwrap();
    let vitals = start_vitals(&pool, config.clone()).await;
    assert_eq!(vitals.tables().schema(), Some("school_health"));
    vitals.shutdown().await;
    let mut expected: Vec<&str> = VITALS_TABLES.to_vec();
    expected.insert(0, "_sqlx_migrations");
    assert_eq!(tables_in(&pool, "school_health").await, expected);
    assert!(
        tables_in(&pool, "public").await.is_empty(),
        "public untouched"
    );

    sqlx::query("UPDATE school_health._sqlx_migrations SET checksum = '\\x00'")
        .execute(&pool)
        .await
        .unwrap();
    let err = common::start_on_own_pool(&pool, config).await.unwrap_err();
    assert!(
        matches!(&err, Error::Migrate(m) if m.contains("modified")),
        "{err}"
    );
}

#[sqlx::test(migrations = false)]
async fn a_database_an_earlier_vitals_migrated_into_public_stays_there(pool: PgPool) {
    // What vitals did before it had a schema: sqlx's migrator on the pool's search_path.
    MIGRATOR_POSTGRES.run(&pool).await.unwrap();
    let vitals = start_vitals(&pool, Config::defaults().unwrap()).await;
    assert_eq!(vitals.tables().schema(), Some("public"));
    vitals.shutdown().await;
    assert!(
        tables_in(&pool, "vitals").await.is_empty(),
        "no second copy"
    );
    assert_eq!(
        count(&pool, "SELECT COUNT(*) FROM public._sqlx_migrations").await,
        MIGRATOR_POSTGRES.iter().count() as i64
    );
}

#[sqlx::test(migrations = false)]
async fn with_the_health_domain_off_no_vitals_table_is_created(pool: PgPool) {
    HOST.run(&pool).await.unwrap();
    let config = Config::from_env_with(|n| (n == "VITALS_HEALTH").then(|| "false".into())).unwrap();
    let vitals = start_vitals(&pool, config).await;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'vitals')")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!exists, "no schema of vitals");
    assert_eq!(
        tables_in(&pool, "public").await,
        ["_sqlx_migrations", "students", "visits"]
    );

    let err = vitals
        .health_cache()
        .student_health_summary(uuid::Uuid::new_v4())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config(c) if c.problems()[0].variable == "VITALS_HEALTH"),
        "{err}"
    );
    assert!(vitals.dashboard().recent_activities(5).await.is_err());
    let stats = vitals.dashboard().stats().await;
    assert_eq!((stats.active_students, stats.failures.len()), (None, 5));
    assert_eq!(vitals.warm_now().await.warmed, 0);
    // The pool, the logger and the cache still serve the host.
    let names: Vec<String> = sqlx::query_scalar("SELECT full_name FROM students")
        .fetch_all(vitals.db().postgres().unwrap())
        .await
        .unwrap();
    assert_eq!(names, ["Host Pupil"]);
    assert!(vitals.query_logger().report().statistics.total_queries >= 1);
    vitals.shutdown().await;
}

async fn sqlite_tables(pool: &SqlitePool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn sqlite_count(pool: &SqlitePool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn start_vitals_sqlite(url: &str, health: bool) -> Vitals {
    Vitals::builder()
        .database_url(Some(url))
        .health(health)
        .build()
        .await
        .unwrap()
}

/// The host's own pool on the SQLite file at `url` (created if missing).
async fn host_pool(url: &str) -> SqlitePool {
    let options: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
    sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options.create_if_missing(true))
        .await
        .unwrap()
}

#[tokio::test]
async fn on_sqlite_the_host_and_vitals_keep_separate_histories_in_one_file() {
    let (_dir, url) = common::sqlite_file("shared.sqlite");
    let host = host_pool(&url).await;
    for _ in 0..3 {
        HOST_SQLITE.run(&host).await.unwrap();
        start_vitals_sqlite(&url, true).await.shutdown().await;
    }
    for _ in 0..3 {
        start_vitals_sqlite(&url, true).await.shutdown().await;
        HOST_SQLITE.run(&host).await.unwrap();
    }
    assert_eq!(
        sqlite_count(&host, "SELECT COUNT(*) FROM _sqlx_migrations").await,
        HOST_SQLITE.iter().count() as i64,
        "the host's history holds the host's migrations only"
    );
    assert_eq!(
        sqlite_count(&host, "SELECT COUNT(*) FROM _vitals_migrations").await,
        MIGRATOR_SQLITE.iter().count() as i64
    );
    let mut expected = vec!["_sqlx_migrations", "_vitals_migrations"];
    expected.extend(VITALS_TABLES);
    expected.extend(["shifts", "staff"]);
    expected.sort_unstable();
    assert_eq!(sqlite_tables(&host).await, expected);

    let vitals = start_vitals_sqlite(&url, true).await;
    let school = SchoolGenerator::new(20).seed(8).generate();
    common::load_school(&vitals, &school).await;
    let summary = common::cached_summary(&vitals, school.students[0].id).await;
    assert_eq!(summary.student, school.students[0]);
    let staff: Vec<String> = sqlx::query_scalar("SELECT full_name FROM staff")
        .fetch_all(vitals.db().sqlite().unwrap())
        .await
        .unwrap();
    assert_eq!(staff, ["Host Nurse"]);
    vitals.shutdown().await;

    // A changed migration is refused, with the version named.
    sqlx::query("UPDATE _vitals_migrations SET checksum = x'00'")
        .execute(&host)
        .await
        .unwrap();
    let err = Vitals::builder()
        .database_url(Some(&url))
        .build()
        .await
        .unwrap_err();
    let version = MIGRATOR_SQLITE.iter().next().unwrap().version;
    assert!(
        matches!(&err, Error::Migrate(m) if m.contains("modified") && m.contains(&version.to_string())),
        "{err}"
    );
    host.close().await;
}

#[tokio::test]
async fn a_sqlite_file_an_earlier_vitals_migrated_is_adopted_not_migrated_again() {
    let (_dir, url) = common::sqlite_file("earlier.sqlite");
    let pool = host_pool(&url).await;
    MIGRATOR_SQLITE.run(&pool).await.unwrap();
    health::load_school_sqlite(
        &pool,
        &Tables::unqualified(),
        &SchoolGenerator::new(5).generate(),
    )
    .await
    .unwrap();
    start_vitals_sqlite(&url, true).await.shutdown().await;
    assert_eq!(
        sqlite_count(&pool, "SELECT COUNT(*) FROM _vitals_migrations").await,
        MIGRATOR_SQLITE.iter().count() as i64
    );
    assert_eq!(
        sqlite_count(&pool, "SELECT COUNT(*) FROM students").await,
        5,
        "rows kept"
    );
    pool.close().await;
}

#[tokio::test]
async fn on_sqlite_with_the_health_domain_off_no_vitals_table_is_created() {
    let (_dir, url) = common::sqlite_file("off.sqlite");
    let vitals = start_vitals_sqlite(&url, false).await;
    assert!(!vitals.config().health);
    assert!(vitals.dashboard().chart_data(false).await.is_err());
    let pool = vitals.db().sqlite().unwrap().inner().clone();
    assert!(
        sqlite_tables(&pool).await.is_empty(),
        "{:?}",
        sqlite_tables(&pool).await
    );
    vitals.shutdown().await;
}
