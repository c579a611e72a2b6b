//! Where vitals' tables are ([`Tables`]), migrations, bulk loading of a generated school, and
//! row counts, on PostgreSQL and SQLite.
//!
//! On PostgreSQL vitals' tables and its migration history (`_sqlx_migrations`) live in a schema
//! of their own (`VITALS_PG_SCHEMA`, default [`DEFAULT_PG_SCHEMA`]), so a host's `public` and
//! its own `_sqlx_migrations` are never touched; every statement of vitals names its tables
//! with the schema, so it reaches them wherever the host's `search_path` points, and the
//! host's unqualified statements keep reaching the host's tables. On SQLite the tables stay in
//! `main` and the history is `_vitals_migrations`, beside any `_sqlx_migrations` of the host.
//!
//! The same SQL serves both engines (positional `$n` parameters bind in order on SQLite too);
//! the crate's `per_engine!` writes each function once and instantiates it per engine.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::migrate::{MigrateError, Migration};
use sqlx::{Connection as _, QueryBuilder};
use vitals_pool::{MonitoredPool, ObservedConnection};
use vitals_querylog::{QueryEvent, QueryLogger};

use super::generate::School;
use crate::db::per_engine;

/// The PostgreSQL migrations, embedded at compile time from `crates/vitals/migrations/postgres`.
pub static MIGRATOR_POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
/// The SQLite migrations, embedded at compile time from `crates/vitals/migrations/sqlite`.
pub static MIGRATOR_SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The PostgreSQL schema of vitals' tables and migration history when `VITALS_PG_SCHEMA` is
/// not set.
pub const DEFAULT_PG_SCHEMA: &str = "vitals";

/// The table of vitals' migration history on SQLite (a host's `sqlx::migrate!` keeps
/// `_sqlx_migrations` to itself).
pub const SQLITE_HISTORY_TABLE: &str = "_vitals_migrations";

/// A schema name that is not a lowercase PostgreSQL identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a schema name: expected 1 to 63 lowercase letters, digits and _, not starting with a digit or pg_")]
pub struct ParseSchemaError;

/// Whether `name` is a schema name vitals accepts: an identifier PostgreSQL leaves as written
/// unquoted (lowercase letters, digits and `_`, not starting with a digit, at most 63 bytes),
/// and not `pg_…` (reserved for the system). Such a name is spliced into SQL as it is.
pub fn is_schema_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 63
        && !name.starts_with("pg_")
        && matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Where vitals' school-health tables are, as its SQL names them: `vitals.students` in a
/// PostgreSQL schema ([`in_schema`](Tables::in_schema)), or plain `students`, found by the
/// connection's `search_path` (SQLite's `main`: [`unqualified`](Tables::unqualified)).
///
/// Every school-health read and write of this crate takes one. [`Vitals`](crate::Vitals)
/// builds it once at start (see [`Vitals::tables`](crate::Vitals::tables)); cloning is cheap.
///
/// # Example
/// ```
/// use vitals::health::Tables;
/// let tables = Tables::in_schema("vitals").unwrap();
/// assert_eq!(tables.table("students"), "vitals.students");
/// assert_eq!(Tables::unqualified().table("students"), "students");
/// assert!(Tables::in_schema("Robert'); DROP TABLE students;--").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    /// `"vitals."`, or empty when unqualified.
    prefix: Arc<str>,
}

impl Tables {
    /// The tables in PostgreSQL schema `schema`.
    ///
    /// # Errors
    /// [`ParseSchemaError`] unless [`is_schema_name`] accepts `schema`.
    pub fn in_schema(schema: &str) -> Result<Self, ParseSchemaError> {
        if !is_schema_name(schema) {
            return Err(ParseSchemaError);
        }
        Ok(Tables {
            prefix: format!("{schema}.").into(),
        })
    }

    /// The tables by their bare names: SQLite's, or wherever a PostgreSQL connection's
    /// `search_path` finds them (vitals before it had a schema of its own).
    pub fn unqualified() -> Self {
        Tables { prefix: "".into() }
    }

    /// The PostgreSQL schema, or `None` when unqualified.
    pub fn schema(&self) -> Option<&str> {
        self.prefix.strip_suffix('.')
    }

    /// `table` as vitals' SQL names it: `vitals.students`, or `students`.
    pub fn table(&self, table: &str) -> String {
        format!("{}{table}", self.prefix)
    }

    /// [`table`](Self::table) as a `&'static str`, for `vitals-import`'s record specs: each
    /// distinct name is allocated once for the life of the process (a few per schema).
    pub(crate) fn static_table(&self, table: &str) -> &'static str {
        static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
        let name = self.table(table);
        // A poisoned lock is taken over: the set only grows, one whole name at a time.
        let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = names.get(name.as_str()) {
            return found;
        }
        let leaked: &'static str = Box::leak(name.into_boxed_str());
        names.insert(leaked);
        leaked
    }

    /// `template` with each `{s}` (written before every vitals table name) replaced by the
    /// schema and a dot, or removed. One `str::replace` per statement, beside a round trip of
    /// tens of microseconds; sqlx's per-connection statement cache keys on the result.
    pub(crate) fn sql(&self, template: &str) -> String {
        template.replace("{s}", &self.prefix)
    }
}

/// What a school-health read returns when the host turned the domain off
/// (`VITALS_HEALTH=false`, [`VitalsBuilder::health`](crate::VitalsBuilder::health)): a
/// configuration error naming the variable, since there are no tables to read.
pub(crate) fn health_off() -> crate::Error {
    crate::Error::Config(vitals_env::ConfigError::one(vitals_env::Problem::new(
        "vitals",
        "VITALS_HEALTH",
        Some("false".into()),
        "true for school-health reads (the host turned the domain off: no tables)",
    )))
}

/// Applies the school-health migrations to a PostgreSQL database (idempotent).
///
/// With a schema (`tables.schema()`), creates it if missing and runs the migrations on one
/// connection of `pool` whose `search_path` is that schema alone, so the tables and sqlx's
/// `_sqlx_migrations` land there; that connection is then closed, never returned to the pool.
/// Unqualified, runs them where the pool's `search_path` points (sharing `_sqlx_migrations`
/// with anything else there).
///
/// # Errors
/// When a migration fails or the applied history disagrees with the embedded one (a changed
/// checksum, a version that is not embedded).
pub async fn migrate_postgres(pool: &sqlx::PgPool, tables: &Tables) -> Result<(), MigrateError> {
    let Some(schema) = tables.schema() else {
        return MIGRATOR_POSTGRES.run(pool).await;
    };
    let mut conn = pool.acquire().await?.detach();
    let outcome = migrate_in_schema(&mut conn, schema).await;
    // Its search_path is vitals' schema alone: close it rather than hand it to the host.
    let closed = conn.close().await;
    outcome?;
    Ok(closed?)
}

/// [`migrate_postgres`] on a connection of the facade's monitored pool (the monitor counts
/// its wait and its hold), reported to `logger`: the reads of the history around the run go
/// through the observed connection, and every migration this run applies is recorded as one
/// statement (its SQL, sanitised by the logger; the execution time sqlx recorded for it).
/// With a schema the connection is closed when dropped, never handed to the host.
pub(crate) async fn migrate_postgres_monitored(
    pool: &MonitoredPool<sqlx::Postgres>,
    tables: &Tables,
    logger: &QueryLogger,
) -> Result<(), MigrateError> {
    let mut conn = sqlx::Acquire::acquire(pool).await?;
    // `schema` passed `is_schema_name` (Tables' invariant): a bare identifier, safe to splice.
    let history = match tables.schema() {
        Some(schema) => {
            // Its search_path will be vitals' schema alone.
            conn.as_pool_connection().close_on_drop();
            format!("{schema}._sqlx_migrations")
        }
        None => "_sqlx_migrations".to_owned(),
    };
    let before = applied_postgres(&mut conn, &history).await?;
    match tables.schema() {
        Some(schema) => migrate_in_schema(&mut conn, schema).await?,
        None => MIGRATOR_POSTGRES.run(&mut *conn).await?,
    }
    let after = applied_postgres(&mut conn, &history).await?;
    for m in MIGRATOR_POSTGRES.iter() {
        let Some(nanos) = after.iter().find(|(v, _)| *v == m.version).map(|(_, t)| *t) else {
            continue;
        };
        if !before.iter().any(|(v, _)| *v == m.version) {
            let took = Duration::from_nanos(u64::try_from(nanos).unwrap_or(0));
            logger.record(QueryEvent::new(&m.sql, took));
        }
    }
    Ok(())
}

/// The versions in the PostgreSQL history `history` (a qualified or plain table name, not
/// user input) and their execution times (ns), none when it does not exist yet; read through
/// the observed connection.
async fn applied_postgres(
    conn: &mut ObservedConnection<sqlx::Postgres>,
    history: &str,
) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(history)
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx::query_as(&format!(
        "SELECT version, execution_time FROM {history} WHERE success"
    ))
    .fetch_all(&mut *conn)
    .await
}

async fn migrate_in_schema(
    conn: &mut sqlx::PgConnection,
    schema: &str,
) -> Result<(), MigrateError> {
    // Checked first: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege even when the
    // schema exists, and a host may have created it for a role without that privilege.
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&mut *conn)
            .await?;
    // `schema` passed `is_schema_name` (Tables' invariant): a bare identifier, safe to splice.
    if !exists {
        match sqlx::raw_sql(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .execute(&mut *conn)
            .await
        {
            Ok(_) => {}
            // Another instance created it between the check and here.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => {}
            Err(e) => return Err(e.into()),
        }
    }
    sqlx::raw_sql(&format!("SET search_path TO {schema}"))
        .execute(&mut *conn)
        .await?;
    MIGRATOR_POSTGRES.run(&mut *conn).await
}

/// Whether an earlier vitals (before `VITALS_PG_SCHEMA`) migrated this database into
/// `public`: vitals' first migration is in `public._sqlx_migrations` with its checksum, and
/// schema `schema` does not exist yet. Such a database keeps its tables where they are.
///
/// # Errors
/// A database error.
pub(crate) async fn is_legacy_public<'c, X>(db: X, schema: &str) -> Result<bool, sqlx::Error>
where
    X: sqlx::Executor<'c, Database = sqlx::Postgres> + Copy,
{
    let Some(first) = MIGRATOR_POSTGRES.iter().next() else {
        return Ok(false);
    };
    let candidate: bool = sqlx::query_scalar(
        "SELECT NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) \
         AND to_regclass('public._sqlx_migrations') IS NOT NULL",
    )
    .bind(schema)
    .fetch_one(db)
    .await?;
    if !candidate {
        return Ok(false);
    }
    in_sqlx_history_postgres(db, "public._sqlx_migrations", first).await
}

/// Applies the school-health migrations to a SQLite database (idempotent), recording them in
/// [`SQLITE_HISTORY_TABLE`] (version, description, checksum, applied at), so a host's own
/// `sqlx::migrate!` in the same file keeps `_sqlx_migrations` to itself. Each migration runs
/// in a transaction of its own (`BEGIN IMMEDIATE`: two processes starting at once apply it
/// once). A file an earlier vitals migrated (its history in `_sqlx_migrations`) has that
/// history copied over, migration by migration, where the checksums agree.
///
/// # Errors
/// [`MigrateError::VersionMismatch`] when an applied migration's checksum differs from the
/// embedded one (the file was migrated by another build), [`MigrateError::VersionMissing`]
/// when one applied is not embedded, or the failing migration's database error.
pub async fn migrate_sqlite(pool: &sqlx::SqlitePool) -> Result<(), MigrateError> {
    let mut conn = pool.acquire().await?;
    migrate_sqlite_on(&mut conn, |_, _| {}).await
}

/// [`migrate_sqlite`] on a connection of the facade's monitored pool (the monitor counts its
/// wait and its hold), every migration this run applies recorded in `logger` as one
/// statement (its SQL, sanitised by the logger, and how long it took).
pub(crate) async fn migrate_sqlite_monitored(
    pool: &MonitoredPool<sqlx::Sqlite>,
    logger: &QueryLogger,
) -> Result<(), MigrateError> {
    let mut conn = sqlx::Acquire::acquire(pool).await?;
    migrate_sqlite_on(&mut conn, |m, took| {
        logger.record(QueryEvent::new(&m.sql, took));
    })
    .await
}

/// The SQLite migrations on `conn`; `on_applied` is told of each migration run, with its time.
async fn migrate_sqlite_on(
    conn: &mut sqlx::SqliteConnection,
    mut on_applied: impl FnMut(&Migration, Duration),
) -> Result<(), MigrateError> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS _vitals_migrations ( \
           version INTEGER PRIMARY KEY, description TEXT NOT NULL, checksum BLOB NOT NULL, \
           applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    )
    .execute(&mut *conn)
    .await?;
    let legacy: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
    )
    .fetch_one(&mut *conn)
    .await?;
    for m in MIGRATOR_SQLITE
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
    {
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let applied: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT checksum FROM _vitals_migrations WHERE version = $1")
                .bind(m.version)
                .fetch_optional(&mut *tx)
                .await?;
        match applied {
            Some(sum) if sum == *m.checksum => continue,
            Some(_) => return Err(MigrateError::VersionMismatch(m.version)),
            None => {}
        }
        if !(legacy && in_sqlx_history_sqlite(&mut *tx, "_sqlx_migrations", m).await?) {
            let started = Instant::now();
            sqlx::raw_sql(&m.sql)
                .execute(&mut *tx)
                .await
                .map_err(|e| MigrateError::ExecuteMigration(e, m.version))?;
            on_applied(m, started.elapsed());
        }
        sqlx::query(
            "INSERT INTO _vitals_migrations (version, description, checksum) VALUES ($1, $2, $3)",
        )
        .bind(m.version)
        .bind(&*m.description)
        .bind(&*m.checksum)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _vitals_migrations")
        .fetch_all(&mut *conn)
        .await?;
    match applied
        .into_iter()
        .find(|v| !MIGRATOR_SQLITE.version_exists(*v))
    {
        Some(v) => Err(MigrateError::VersionMissing(v)),
        None => Ok(()),
    }
}

per_engine! {
    /// Whether sqlx's migration history `history` (`_sqlx_migrations`, where an earlier
    /// vitals recorded its migrations) holds `m` as applied, with the same checksum.
    fn in_sqlx_history_postgres / in_sqlx_history_sqlite <Db> (db: Executor, history: &str, m: &Migration) -> Result<bool, sqlx::Error> {
        let sql = format!("SELECT checksum FROM {history} WHERE version = $1 AND success");
        let recorded: Option<Vec<u8>> = sqlx::query_scalar(&sql)
            .bind(m.version)
            .fetch_optional(db)
            .await?;
        Ok(recorded.as_deref() == Some(&*m.checksum))
    }
}

/// How many rows each table of the school-health schema holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableCounts {
    /// `students`.
    pub students: i64,
    /// `vaccinations`.
    pub vaccinations: i64,
    /// `allergies`.
    pub allergies: i64,
    /// `chronic_conditions`.
    pub chronic_conditions: i64,
    /// `medication_logs`.
    pub medication_logs: i64,
    /// `incident_reports`.
    pub incident_reports: i64,
    /// `appointments`.
    pub appointments: i64,
}

impl TableCounts {
    /// The sum over every table.
    pub fn total(&self) -> i64 {
        self.students
            + self.vaccinations
            + self.allergies
            + self.chronic_conditions
            + self.medication_logs
            + self.incident_reports
            + self.appointments
    }
}

/// Rows per multi-row `INSERT`: at most 8 columns × 1 000 rows = 8 000 bind values, under both
/// PostgreSQL's 65 535 and SQLite's 32 766.
const LOAD_BATCH: usize = 1_000;

per_engine! {
    /// Inserts every row of a generated school, table by table, in batches of 1 000 rows.
    /// Returns how many rows were written. The load is one transaction: all of it or nothing.
    ///
    /// Takes a pool, a connection or a transaction (anything that is [`Acquire`](sqlx::Acquire)).
    ///
    /// # Errors
    /// The first database error; then nothing is written.
    pub fn load_school_postgres / load_school_sqlite <Db> (db: Acquire, tables: &Tables, school: &School) -> Result<u64, sqlx::Error> {
        /// Inserts `rows` with `head` (`INSERT INTO table (columns) `), [`LOAD_BATCH`] rows a
        /// statement, `bind` pushing one row's values in the columns' order.
        async fn insert<'args, T>(
            conn: &mut <Db as sqlx::Database>::Connection,
            head: String,
            rows: &[T],
            mut bind: impl FnMut(sqlx::query_builder::Separated<'_, 'args, Db, &'static str>, &T),
        ) -> Result<u64, sqlx::Error> {
            let mut written = 0;
            for chunk in rows.chunks(LOAD_BATCH) {
                let mut q = QueryBuilder::<'args, Db>::new(&head);
                q.push_values(chunk, &mut bind);
                written += q.build().execute(&mut *conn).await?.rows_affected();
            }
            Ok(written)
        }

        let mut tx = db.begin().await?;
        // Inserts `school.$table` into the table of that name, the columns named as the
        // record's fields (one list for both, so they cannot disagree).
        macro_rules! insert_all {
            ($table:ident ($($field:ident),+)) => {
                insert(
                    &mut tx,
                    tables.sql(concat!("INSERT INTO {s}", stringify!($table), " (", stringify!($($field),+), ") ")),
                    &school.$table,
                    |mut b, row| {
                        $(b.push_bind(row.$field.clone());)+
                    },
                )
                .await?
            };
        }
        let written = insert_all!(students (id, student_number, first_name, last_name, date_of_birth, grade, active))
            + insert_all!(vaccinations (id, student_id, vaccine_name, dose_number, administered_on, administered_by, lot_number))
            + insert_all!(allergies (id, student_id, allergen, severity, reaction, diagnosed_on, active))
            + insert_all!(chronic_conditions (id, student_id, condition, icd10_code, status, diagnosed_on, notes))
            + insert_all!(medication_logs (id, student_id, medication, dosage, administered_at, administered_by))
            + insert_all!(incident_reports (id, student_id, occurred_at, kind, severity, description))
            + insert_all!(appointments (id, student_id, scheduled_at, kind, status));
        tx.commit().await?;
        Ok(written)
    }
}

per_engine! {
    /// Counts the rows of every table, in one statement. Takes a pool, a connection or a
    /// transaction.
    ///
    /// # Errors
    /// A database error.
    pub fn table_counts_postgres / table_counts_sqlite <Db> (db: Acquire, tables: &Tables) -> Result<TableCounts, sqlx::Error> {
        let sql = tables.sql(
            "SELECT (SELECT COUNT(*) FROM {s}students), (SELECT COUNT(*) FROM {s}vaccinations), \
             (SELECT COUNT(*) FROM {s}allergies), (SELECT COUNT(*) FROM {s}chronic_conditions), \
             (SELECT COUNT(*) FROM {s}medication_logs), (SELECT COUNT(*) FROM {s}incident_reports), \
             (SELECT COUNT(*) FROM {s}appointments)",
        );
        let row: (i64, i64, i64, i64, i64, i64, i64) = sqlx::query_as(&sql)
        .fetch_one(&mut *db.acquire().await?)
        .await?;
        Ok(TableCounts {
            students: row.0,
            vaccinations: row.1,
            allergies: row.2,
            chronic_conditions: row.3,
            medication_logs: row.4,
            incident_reports: row.5,
            appointments: row.6,
        })
    }
}
