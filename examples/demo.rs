//! The vitals demo: builds a synthetic school and loads it.
//!
//! Run with `cargo run --release --example demo` (embedded SQLite in a temporary file), or
//! `DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run --release --example demo`
//! (PostgreSQL; the demo works in a schema of its own, `vitals_demo`, which it drops and
//! recreates, and touches nothing else).
//!
//! Options: `--students N` (default 2 000), `--seed N`.

use std::time::Instant;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use vitals::health::{self, SchoolGenerator, TableCounts};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    students: usize,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        students: 2_000,
        seed: 42,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--students" => {
                let v = value("--students")?;
                args.students = v
                    .parse()
                    .map_err(|_| format!("--students: expected a whole number, got {v:?}"))?;
            }
            "--seed" => {
                let v = value("--seed")?;
                args.seed = v
                    .parse()
                    .map_err(|_| format!("--seed: expected a whole number, got {v:?}"))?;
            }
            "-h" | "--help" => {
                println!("usage: demo [--students N] [--seed N]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other:?}; try --help")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("demo: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args).await {
        eprintln!("demo: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), BoxError> {
    let school = SchoolGenerator::new(args.students)
        .seed(args.seed)
        .generate();
    println!(
        "Generated a synthetic school: {} students, {} rows in all (seed {}).",
        school.students.len(),
        school.total_rows(),
        args.seed
    );
    let started = Instant::now();
    let (engine, counts) = match std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) {
        Some(url) => (
            "PostgreSQL (schema vitals_demo)",
            load_postgres(&url, &school).await?,
        ),
        None => ("SQLite (embedded)", load_sqlite(&school).await?),
    };
    println!(
        "Loaded into {engine} in {:.0} ms.",
        started.elapsed().as_secs_f64() * 1e3
    );
    print_counts(&counts);
    Ok(())
}

async fn load_postgres(url: &str, school: &health::School) -> Result<TableCounts, BoxError> {
    let options: PgConnectOptions = url.parse()?;
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await?;
    sqlx::query("DROP SCHEMA IF EXISTS vitals_demo CASCADE")
        .execute(&admin)
        .await?;
    sqlx::query("CREATE SCHEMA vitals_demo")
        .execute(&admin)
        .await?;
    admin.close().await;
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .connect_with(options.options([("search_path", "vitals_demo")]))
        .await?;
    health::migrate_postgres(&pool).await?;
    health::load_school_postgres(&pool, school).await?;
    Ok(health::table_counts_postgres(&pool).await?)
}

async fn load_sqlite(school: &health::School) -> Result<TableCounts, BoxError> {
    let path = std::env::temp_dir().join("vitals-demo.sqlite");
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await?;
    health::migrate_sqlite(&pool).await?;
    health::load_school_sqlite(&pool, school).await?;
    Ok(health::table_counts_sqlite(&pool).await?)
}

fn print_counts(c: &TableCounts) {
    println!("{:<20} {:>8}", "table", "rows");
    for (name, n) in [
        ("students", c.students),
        ("vaccinations", c.vaccinations),
        ("allergies", c.allergies),
        ("chronic_conditions", c.chronic_conditions),
        ("medication_logs", c.medication_logs),
        ("incident_reports", c.incident_reports),
        ("appointments", c.appointments),
    ] {
        println!("{name:<20} {n:>8}");
    }
    println!("{:<20} {:>8}", "total", c.total());
}
