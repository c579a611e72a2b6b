//! Migrations, bulk loading of a generated school, and row counts, on PostgreSQL and SQLite.
//!
//! The same SQL serves both engines (positional `$n` parameters bind in order on SQLite too);
//! the crate's `per_engine!` writes each function once and instantiates it per engine.

use sqlx::QueryBuilder;

use super::generate::School;
use crate::db::per_engine;

/// The PostgreSQL migrations, embedded at compile time from `crates/vitals/migrations/postgres`.
pub static MIGRATOR_POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
/// The SQLite migrations, embedded at compile time from `crates/vitals/migrations/sqlite`.
pub static MIGRATOR_SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Applies the school-health migrations to a PostgreSQL database (idempotent).
///
/// # Errors
/// When a migration fails or the applied history disagrees with the embedded one.
pub async fn migrate_postgres(pool: &sqlx::PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR_POSTGRES.run(pool).await
}

/// Applies the school-health migrations to a SQLite database (idempotent).
///
/// # Errors
/// When a migration fails or the applied history disagrees with the embedded one.
pub async fn migrate_sqlite(pool: &sqlx::SqlitePool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR_SQLITE.run(pool).await
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
    fn load_school_postgres / load_school_sqlite <Db> (db: Acquire, school: &School) -> Result<u64, sqlx::Error> {
        let mut tx = db.begin().await?;
        let mut written = 0u64;
        for chunk in school.students.chunks(LOAD_BATCH) {
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO students (id, student_number, first_name, last_name, date_of_birth, grade, active) ",
            );
            q.push_values(chunk, |mut b, s| {
                b.push_bind(s.id)
                    .push_bind(s.student_number.clone())
                    .push_bind(s.first_name.clone())
                    .push_bind(s.last_name.clone())
                    .push_bind(s.date_of_birth)
                    .push_bind(s.grade.clone())
                    .push_bind(s.active);
            });
            written += q.build().execute(&mut *tx).await?.rows_affected();
        }
        for chunk in school.vaccinations.chunks(LOAD_BATCH) {
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO vaccinations (id, student_id, vaccine_name, dose_number, administered_on, administered_by, lot_number) ",
            );
            q.push_values(chunk, |mut b, v| {
                b.push_bind(v.id)
                    .push_bind(v.student_id)
                    .push_bind(v.vaccine_name.clone())
                    .push_bind(v.dose_number)
                    .push_bind(v.administered_on)
                    .push_bind(v.administered_by.clone())
                    .push_bind(v.lot_number.clone());
            });
            written += q.build().execute(&mut *tx).await?.rows_affected();
        }
        for chunk in school.allergies.chunks(LOAD_BATCH) {
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO allergies (id, student_id, allergen, severity, reaction, diagnosed_on, active) ",
            );
            q.push_values(chunk, |mut b, a| {
                b.push_bind(a.id)
                    .push_bind(a.student_id)
                    .push_bind(a.allergen.clone())
                    .push_bind(a.severity)
                    .push_bind(a.reaction.clone())
                    .push_bind(a.diagnosed_on)
                    .push_bind(a.active);
            });
            written += q.build().execute(&mut *tx).await?.rows_affected();
        }
        for chunk in school.chronic_conditions.chunks(LOAD_BATCH) {
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO chronic_conditions (id, student_id, condition, icd10_code, status, diagnosed_on, notes) ",
            );
            q.push_values(chunk, |mut b, c| {
                b.push_bind(c.id)
                    .push_bind(c.student_id)
                    .push_bind(c.condition.clone())
                    .push_bind(c.icd10_code.clone())
                    .push_bind(c.status)
                    .push_bind(c.diagnosed_on)
                    .push_bind(c.notes.clone());
            });
            written += q.build().execute(&mut *tx).await?.rows_affected();
        }
        for chunk in school.medication_logs.chunks(LOAD_BATCH) {
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO medication_logs (id, student_id, medication, dosage, administered_at, administered_by) ",
            );
            q.push_values(chunk, |mut b, m| {
                b.push_bind(m.id)
                    .push_bind(m.student_id)
                    .push_bind(m.medication.clone())
                    .push_bind(m.dosage.clone())
                    .push_bind(m.administered_at)
                    .push_bind(m.administered_by.clone());
            });
            written += q.build().execute(&mut *tx).await?.rows_affected();
        }
        for chunk in school.incident_reports.chunks(LOAD_BATCH) {
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO incident_reports (id, student_id, occurred_at, kind, severity, description) ",
            );
            q.push_values(chunk, |mut b, i| {
                b.push_bind(i.id)
                    .push_bind(i.student_id)
                    .push_bind(i.occurred_at)
                    .push_bind(i.kind.clone())
                    .push_bind(i.severity)
                    .push_bind(i.description.clone());
            });
            written += q.build().execute(&mut *tx).await?.rows_affected();
        }
        for chunk in school.appointments.chunks(LOAD_BATCH) {
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO appointments (id, student_id, scheduled_at, kind, status) ",
            );
            q.push_values(chunk, |mut b, a| {
                b.push_bind(a.id)
                    .push_bind(a.student_id)
                    .push_bind(a.scheduled_at)
                    .push_bind(a.kind.clone())
                    .push_bind(a.status);
            });
            written += q.build().execute(&mut *tx).await?.rows_affected();
        }
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
    fn table_counts_postgres / table_counts_sqlite <Db> (db: Acquire) -> Result<TableCounts, sqlx::Error> {
        let row: (i64, i64, i64, i64, i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM students), (SELECT COUNT(*) FROM vaccinations), \
             (SELECT COUNT(*) FROM allergies), (SELECT COUNT(*) FROM chronic_conditions), \
             (SELECT COUNT(*) FROM medication_logs), (SELECT COUNT(*) FROM incident_reports), \
             (SELECT COUNT(*) FROM appointments)",
        )
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
