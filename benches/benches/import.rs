//! Benchmarks of vitals-import on PostgreSQL: vaccination rows through one `INSERT` per row,
//! hand-written `QueryBuilder::push_values` batches, the importer (validation, foreign keys
//! and de-duplication on; with its defaults, on one connection, and in one transaction), and
//! `psql \copy`, side by side in one group.
//!
//! Run with `cargo bench -p vitals-benches --bench import` (needs PostgreSQL at
//! `DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`; creates and drops its own
//! database `vitals_bench_import`). `IMPORT_BENCH_ROWS` (default `10000`, comma-separated for
//! several sizes, e.g. `10000,100000`) sets the sizes; the one-`INSERT`-per-row peers only run
//! up to 10 000 rows, beyond that they would take minutes (the auto-committed one takes about
//! 10 s per iteration at 10 000 rows already).

// criterion_group! generates an undocumented `pub fn benches`.
#![allow(missing_docs)]

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{Connection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;
use vitals::health::{self, records};
use vitals::import::{ImportOptions, Importer, PgSink, Source};

const DB: &str = "vitals_bench_import";
const STUDENTS: usize = 1000;
const COLUMNS: &str =
    "student_id, vaccine_name, dose_number, administered_on, administered_by, lot_number";

struct Row {
    student_id: Uuid,
    vaccine_name: String,
    dose_number: i32,
    administered_on: chrono::NaiveDate,
    administered_by: String,
    lot_number: String,
}

fn rows(students: &[Uuid], n: usize) -> Vec<Row> {
    let day = chrono::NaiveDate::from_ymd_opt(2024, 9, 1).unwrap_or_default();
    (0..n)
        .map(|i| Row {
            student_id: students[i % students.len()],
            vaccine_name: format!("Vaccine {}", i / students.len()),
            dose_number: 1,
            administered_on: day,
            administered_by: "Nurse O'Neil".to_owned(),
            lot_number: format!("L{i}"),
        })
        .collect()
}

fn write_csv(path: &Path, rows: &[Row]) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(f, "{}", COLUMNS.replace(' ', "")).unwrap();
    for r in rows {
        writeln!(
            f,
            "{},{},{},{},{},{}",
            r.student_id,
            r.vaccine_name,
            r.dose_number,
            r.administered_on,
            r.administered_by,
            r.lot_number
        )
        .unwrap();
    }
}

async fn setup(base: &str) -> (PgPool, String, Vec<Uuid>) {
    let mut admin = sqlx::PgConnection::connect(base).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {DB}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = match base.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{DB}"),
        None => panic!("DATABASE_URL has no database path"),
    };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .unwrap();
    // Unqualified: the bench database is vitals' alone, its tables in `public`.
    health::migrate_postgres(&pool, &health::Tables::unqualified())
        .await
        .unwrap();
    let students: Vec<Uuid> = (0..STUDENTS).map(|_| Uuid::new_v4()).collect();
    let numbers: Vec<String> = (0..STUDENTS).map(|i| format!("S-{i}")).collect();
    sqlx::query(
        "INSERT INTO students (id, student_number, first_name, last_name, date_of_birth, grade) \
         SELECT id, n, 'First', 'Last', DATE '2014-01-01', '4' FROM UNNEST($1::uuid[], $2::text[]) AS u(id, n)",
    )
    .bind(&students)
    .bind(&numbers)
    .execute(&pool)
    .await
    .unwrap();
    (pool, url, students)
}

async fn truncate(pool: &PgPool) {
    sqlx::query("TRUNCATE vaccinations")
        .execute(pool)
        .await
        .unwrap();
}

/// The one-row `INSERT` of the per-row peers, bound to `r`.
fn insert_one(r: &Row) -> Query<'_, Postgres, PgArguments> {
    sqlx::query(
        "INSERT INTO vaccinations (student_id, vaccine_name, dose_number, administered_on, \
         administered_by, lot_number) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(r.student_id)
    .bind(&r.vaccine_name)
    .bind(r.dose_number)
    .bind(r.administered_on)
    .bind(&r.administered_by)
    .bind(&r.lot_number)
}

/// One `INSERT` per row, each its own transaction: the performance report's "before" (its
/// loop awaits one `create()` per record, with no transaction around them).
async fn insert_per_row_autocommit(pool: &PgPool, rows: &[Row]) {
    for r in rows {
        insert_one(r).execute(pool).await.unwrap();
    }
}

/// One `INSERT` per row inside one transaction: a stronger peer than the report's "before"
/// (no commit per row).
async fn insert_per_row(pool: &PgPool, rows: &[Row]) {
    let mut tx = pool.begin().await.unwrap();
    for r in rows {
        insert_one(r).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// `QueryBuilder::push_values` in batches of 1 000 rows, in one transaction: what a Rust
/// developer writes by hand (no validation report, no de-duplication beyond ON CONFLICT).
async fn push_values(pool: &PgPool, rows: &[Row]) {
    let mut tx = pool.begin().await.unwrap();
    for batch in rows.chunks(1000) {
        let mut qb = QueryBuilder::new(format!("INSERT INTO vaccinations ({COLUMNS}) "));
        qb.push_values(batch, |mut b, r| {
            b.push_bind(r.student_id)
                .push_bind(&r.vaccine_name)
                .push_bind(r.dose_number)
                .push_bind(r.administered_on)
                .push_bind(&r.administered_by)
                .push_bind(&r.lot_number);
        });
        qb.push(" ON CONFLICT DO NOTHING");
        qb.build().execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// The importer from the CSV file: parse, validate, foreign keys, de-duplication, insert.
async fn importer(pool: &PgPool, importer: &Importer, path: &Path, n: usize) {
    let source = Source::open(path, None)
        .unwrap()
        .with_type(records::VACCINATION);
    let report = importer
        .run(source, &mut PgSink::new(pool.clone()))
        .await
        .unwrap();
    assert_eq!(
        report.imported as usize,
        n,
        "{:?}",
        report.rejections.first()
    );
}

/// `psql \copy … FROM file CSV`: the practical limit (process start and connection included).
fn psql_copy(url: &str, path: &Path) {
    let status = std::process::Command::new("psql")
        .arg(url)
        .arg("-q")
        .arg("-c")
        .arg(format!(
            "\\copy vaccinations ({COLUMNS}) FROM '{}' CSV HEADER",
            path.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
}

/// Imports N vaccination rows for 1 000 existing students through each way, one group per N.
fn bench_import(c: &mut Criterion) {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let sizes: Vec<usize> = std::env::var("IMPORT_BENCH_ROWS")
        .unwrap_or_else(|_| "10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (pool, url, students) = rt.block_on(setup(&base));
    let dir = std::env::temp_dir().join(format!("vitals-bench-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Defaults: chunks of 5 000 rows, two written at once on two connections.
    let imp = Importer::new(records::registry(), ImportOptions::new()).unwrap();
    // Everything on one connection, chunk after chunk: the same work, no overlap.
    let imp_one_conn = Importer::new(records::registry(), ImportOptions::new().workers(1)).unwrap();
    // The same pipeline in one transaction (all-or-nothing): isolates the cost of the
    // per-chunk commits.
    let imp_one_tx = Importer::new(
        records::registry(),
        ImportOptions::new().all_or_nothing(true),
    )
    .unwrap();

    for &n in &sizes {
        let data = rows(&students, n);
        let path = dir.join(format!("vaccinations-{n}.csv"));
        write_csv(&path, &data);
        let mut group = c.benchmark_group(format!("import/{n}"));
        group.throughput(Throughput::Elements(n as u64));
        group.sample_size(10);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(3));

        let timed =
            |label: &str,
             group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
             f: &dyn Fn()| {
                group.bench_function(BenchmarkId::from_parameter(label), |b| {
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            rt.block_on(truncate(&pool));
                            let start = Instant::now();
                            f();
                            total += start.elapsed();
                        }
                        total
                    })
                });
            };
        if n <= 10_000 {
            timed("insert_per_row_autocommit", &mut group, &|| {
                rt.block_on(insert_per_row_autocommit(&pool, &data))
            });
            timed("insert_per_row", &mut group, &|| {
                rt.block_on(insert_per_row(&pool, &data))
            });
        }
        timed("push_values", &mut group, &|| {
            rt.block_on(push_values(&pool, &data))
        });
        timed("importer", &mut group, &|| {
            rt.block_on(importer(&pool, &imp, &path, n))
        });
        timed("importer_one_connection", &mut group, &|| {
            rt.block_on(importer(&pool, &imp_one_conn, &path, n))
        });
        timed("importer_one_transaction", &mut group, &|| {
            rt.block_on(importer(&pool, &imp_one_tx, &path, n))
        });
        timed("psql_copy", &mut group, &|| psql_copy(&url, &path));
        group.finish();
    }
    let _ = std::fs::remove_dir_all(&dir);
    rt.block_on(async {
        pool.close().await;
        if let Ok(mut admin) = sqlx::PgConnection::connect(&base).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))
                .execute(&mut admin)
                .await;
        }
    });
}

criterion_group!(benches, bench_import);
criterion_main!(benches);
