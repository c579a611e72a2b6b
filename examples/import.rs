//! Imports a file of healthcare records and prints the report as JSON.
//!
//! Run with
//! `cargo run --release -q --example import -- --database-url URL [--type TYPE] [--format csv|ndjson|json] [--all-or-nothing] [--dry-run] FILE`
//!
//! `URL` is a PostgreSQL (`postgres://…`) or SQLite (`sqlite://path?mode=rwc`, `sqlite::memory:`)
//! URL; the migrations are applied first. `TYPE` is `student`, `vaccination`, `allergy` or
//! `chronic_condition` (without it, every record names its own in a `type` field). The report
//! goes to standard output, a progress bar to standard error when it is a terminal.
//!
//! Exit status: 0 when the import ran (rejections or warnings or not), 2 on bad usage or
//! input that cannot be read at all (an unknown option, `--chunk-size 0`, `--workers 0`, no
//! such file, an empty file of any format, no CSV header or a column named twice in it, a
//! JSON file that is not an array, unknown `--type`), 1 on a database error. The codes come
//! from `ImportError::exit_code`, which `crates/import/tests/hostile.rs` tests.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use vitals::health::{self, records};
use vitals::import::{
    Format, ImportError, ImportOptions, ImportReport, Importer, PgSink, Source, SqliteSink,
};

/// Imports healthcare records (CSV, NDJSON or a JSON array) into PostgreSQL or SQLite.
#[derive(Debug, Parser)]
struct Args {
    /// Database URL: postgres://… or sqlite:…
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Record type of every row: student, vaccination, allergy, chronic_condition.
    #[arg(long = "type")]
    record_type: Option<String>,
    /// Input format (default: from the file's extension).
    #[arg(long)]
    format: Option<Format>,
    /// Roll the whole import back if any row is rejected.
    #[arg(long)]
    all_or_nothing: bool,
    /// Validate only; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Rows per chunk (per transaction).
    #[arg(long, default_value_t = vitals::import::DEFAULT_CHUNK_SIZE)]
    chunk_size: usize,
    /// Stop after this many rejected rows.
    #[arg(long)]
    max_errors: Option<u64>,
    /// Chunks written at once on PostgreSQL, each on its own connection (1: one connection).
    #[arg(long, env = "VITALS_IMPORT_WORKERS", default_value_t = vitals::import::DEFAULT_WORKERS)]
    workers: usize,
    /// The file to import.
    file: PathBuf,
}

/// Why the import did not run: bad usage or unreadable input (exit 2), or the database
/// (exit 1).
enum Failure {
    Input(String),
    Database(String),
}

impl From<ImportError> for Failure {
    fn from(e: ImportError) -> Self {
        // The crate says which is which (`--chunk-size 0` is bad usage, not the database).
        if e.exit_code() == 2 {
            Failure::Input(e.to_string())
        } else {
            Failure::Database(e.to_string())
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(report) => match print(&report) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: cannot write the report: {e}");
                ExitCode::from(1)
            }
        },
        Err(Failure::Input(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Database(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}

fn print(report: &ImportReport) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, report)?;
    writeln!(out)
}

async fn run(args: Args) -> Result<ImportReport, Failure> {
    // vitals' tables: in its own schema on PostgreSQL (VITALS_PG_SCHEMA's default), `main` on SQLite.
    let tables = match args.database_url.starts_with("sqlite:") {
        true => health::Tables::unqualified(),
        false => health::Tables::in_schema(health::DEFAULT_PG_SCHEMA)
            .map_err(|e| Failure::Database(e.to_string()))?,
    };
    let registry = records::registry_in(&tables);
    let mut source = Source::open(&args.file, args.format)?;
    if let Some(t) = &args.record_type {
        if registry.get(t).is_none() {
            return Err(ImportError::UnknownType(t.clone()).into());
        }
        source = source.with_type(t.clone());
    }

    let mut options = ImportOptions::new()
        .chunk_size(args.chunk_size)
        .workers(args.workers)
        .all_or_nothing(args.all_or_nothing)
        .dry_run(args.dry_run);
    if let Some(n) = args.max_errors {
        options = options.max_errors(n);
    }
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(source.size().unwrap_or(0));
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {msg} ({elapsed})",
        ) {
            bar.set_style(style);
        }
        Some(bar)
    } else {
        None
    };
    if let Some(bar) = bar.clone() {
        options = options.progress(move |p| {
            bar.set_position(p.bytes_read);
            bar.set_message(format!("{} rows, {} rejected", p.rows, p.rejected));
        });
    }
    let importer = Importer::new(registry, options)?;

    // Never print the URL: it may hold a password.
    let db = |what: &str, e: &dyn std::fmt::Display| Failure::Database(format!("{what}: {e}"));
    let report = if args.database_url.starts_with("sqlite:") {
        let options: sqlx::sqlite::SqliteConnectOptions = args
            .database_url
            .parse()
            .map_err(|e| db("bad SQLite URL", &e))?;
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.create_if_missing(true))
            .await
            .map_err(|e| db("cannot connect to SQLite", &e))?;
        health::migrate_sqlite(&pool)
            .await
            .map_err(|e| db("migration failed", &e))?;
        importer.run(source, &mut SqliteSink::new(pool)).await?
    } else {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&args.database_url)
            .await
            .map_err(|e| db("cannot connect to PostgreSQL", &e))?;
        health::migrate_postgres(&pool, &tables)
            .await
            .map_err(|e| db("migration failed", &e))?;
        importer.run(source, &mut PgSink::new(pool)).await?
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(report)
}
