//! Import record specs for the healthcare types: what `vitals-import` needs to validate,
//! de-duplicate and insert `student`, `vaccination`, `allergy` and `chronic_condition` rows.
//!
//! The type names are the NDJSON `"type"` values and the `--type` of the `import` example;
//! the columns are the CSV headers:
//!
//! | type | columns | natural key |
//! |---|---|---|
//! | `student` | `id,student_number,first_name,last_name,date_of_birth,grade` | `id` |
//! | `vaccination` | `student_id,vaccine_name,dose_number,administered_on,administered_by,lot_number` | student, vaccine name, dose number, date |
//! | `allergy` | `student_id,allergen,severity,reaction,diagnosed_on` | student, `lower(trim(allergen))`, active rows only |
//! | `chronic_condition` | `student_id,condition,icd10_code,status,diagnosed_on` | student, ICD-10 code |
//!
//! Each key matches a unique index of the migrations, which stays the backstop for
//! concurrent imports. Dates are `YYYY-MM-DD`; text is at most 1 000 characters and stored
//! exactly as given (always bound, never spliced).
//!
//! # Example
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use vitals::health::{self, records};
//! use vitals::import::{ImportOptions, Importer, PgSink, Source};
//! let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1/test").await?;
//! health::migrate_postgres(&pool).await?;
//! let importer = Importer::new(records::registry(), ImportOptions::new())?;
//! let source = Source::open("vaccinations.csv", None)?.with_type(records::VACCINATION);
//! let report = importer.run(source, &mut PgSink::new(pool)).await?;
//! println!("{} imported, {} rejected", report.imported, report.rejected);
//! # Ok(()) }
//! ```

use vitals_import::{Column, KeyPart, RecordSpec, Registry};

/// Type name of a student record.
pub const STUDENT: &str = "student";
/// Type name of a vaccination record.
pub const VACCINATION: &str = "vaccination";
/// Type name of an allergy record.
pub const ALLERGY: &str = "allergy";
/// Type name of a chronic-condition record.
pub const CHRONIC_CONDITION: &str = "chronic_condition";

/// Allergy severities, as stored.
pub const SEVERITIES: &[&str] = &["MILD", "MODERATE", "SEVERE", "LIFE_THREATENING"];
/// Chronic-condition statuses, as stored.
pub const STATUSES: &[&str] = &["ACTIVE", "MANAGED", "RESOLVED"];

/// Highest dose number accepted (the schema requires above 0).
pub const MAX_DOSE: i64 = 20;

/// The `student` spec (table `students`).
pub fn student() -> RecordSpec {
    RecordSpec::new(STUDENT, "students")
        .column(Column::uuid("id").required())
        .column(Column::text("student_number").required())
        .column(Column::text("first_name").required())
        .column(Column::text("last_name").required())
        .column(Column::date("date_of_birth").required())
        .column(Column::text("grade").required())
        .natural_key([KeyPart::exact("id")])
}

/// The `vaccination` spec (table `vaccinations`).
pub fn vaccination() -> RecordSpec {
    RecordSpec::new(VACCINATION, "vaccinations")
        .column(Column::uuid("student_id").required())
        .column(Column::text("vaccine_name").required())
        .column(Column::int("dose_number").required().range(1, MAX_DOSE))
        .column(Column::date("administered_on").required())
        .column(Column::text("administered_by"))
        .column(Column::text("lot_number"))
        .natural_key([
            KeyPart::exact("student_id"),
            KeyPart::exact("vaccine_name"),
            KeyPart::exact("dose_number"),
            KeyPart::exact("administered_on"),
        ])
        .foreign_key("student_id", "students", "id")
}

/// The `allergy` spec (table `allergies`): one active allergy per student and allergen,
/// compared trimmed and case-insensitively.
pub fn allergy() -> RecordSpec {
    RecordSpec::new(ALLERGY, "allergies")
        .column(Column::uuid("student_id").required())
        .column(Column::text("allergen").required())
        .column(Column::one_of("severity", SEVERITIES).required())
        .column(Column::text("reaction"))
        .column(Column::date("diagnosed_on"))
        .natural_key([
            KeyPart::exact("student_id"),
            KeyPart::lower_trim("allergen"),
        ])
        .key_filter("active")
        .foreign_key("student_id", "students", "id")
}

/// The `chronic_condition` spec (table `chronic_conditions`).
pub fn chronic_condition() -> RecordSpec {
    RecordSpec::new(CHRONIC_CONDITION, "chronic_conditions")
        .column(Column::uuid("student_id").required())
        .column(Column::text("condition").required())
        .column(Column::text("icd10_code").required().max_chars(16))
        .column(Column::one_of("status", STATUSES).required())
        .column(Column::date("diagnosed_on"))
        .natural_key([KeyPart::exact("student_id"), KeyPart::exact("icd10_code")])
        .foreign_key("student_id", "students", "id")
}

/// Every healthcare record type, students first.
pub fn registry() -> Registry {
    match Registry::new([student(), vaccination(), allergy(), chronic_condition()]) {
        Ok(r) => r,
        // The specs above are constants; `registry_is_valid` below checks them.
        Err(e) => unreachable!("healthcare record specs are invalid: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_valid_and_students_come_first() {
        let r = registry();
        assert_eq!(r.specs()[0].name(), STUDENT);
        for name in [STUDENT, VACCINATION, ALLERGY, CHRONIC_CONDITION] {
            assert!(r.get(name).is_some(), "{name}");
        }
        let cols: Vec<&str> = r
            .get(VACCINATION)
            .unwrap()
            .columns()
            .iter()
            .map(|c| c.name())
            .collect();
        assert_eq!(
            cols,
            [
                "student_id",
                "vaccine_name",
                "dose_number",
                "administered_on",
                "administered_by",
                "lot_number"
            ]
        );
    }
}
