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
//! let tables = health::Tables::in_schema(health::DEFAULT_PG_SCHEMA)?; // vitals.students …
//! health::migrate_postgres(&pool, &tables).await?;
//! let importer = Importer::new(records::registry_in(&tables), ImportOptions::new())?;
//! let source = Source::open("vaccinations.csv", None)?.with_type(records::VACCINATION);
//! let report = importer.run(source, &mut PgSink::new(pool)).await?;
//! println!("{} imported, {} rejected", report.imported, report.rejected);
//! # Ok(()) }
//! ```

use std::sync::Arc;

use vitals_import::{
    validate, Column, KeyPart, RawRecord, RawValue, RecordSpec, Registry, Rejection, Value,
};

use super::store::Tables;

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
    student_in(&Tables::unqualified())
}

fn student_in(t: &Tables) -> RecordSpec {
    RecordSpec::new(STUDENT, t.static_table("students"))
        .column(Column::uuid("id").required())
        .column(Column::text("student_number").required())
        .column(Column::text("first_name").required())
        .column(Column::text("last_name").required())
        .column(Column::date("date_of_birth").required().not_in_future())
        .column(Column::text("grade").required())
        .natural_key([KeyPart::exact("id")])
}

/// The `vaccination` spec (table `vaccinations`).
pub fn vaccination() -> RecordSpec {
    vaccination_in(&Tables::unqualified())
}

fn vaccination_in(t: &Tables) -> RecordSpec {
    of_student(VACCINATION, "vaccinations", t)
        .column(Column::text("vaccine_name").required())
        .column(Column::int("dose_number").required().range(1, MAX_DOSE))
        .column(Column::date("administered_on").required().not_in_future())
        .column(Column::text("administered_by"))
        .column(Column::text("lot_number"))
        .natural_key([
            KeyPart::exact("student_id"),
            KeyPart::exact("vaccine_name"),
            KeyPart::exact("dose_number"),
            KeyPart::exact("administered_on"),
        ])
}

/// The `allergy` spec (table `allergies`): one active allergy per student and allergen,
/// compared trimmed and case-insensitively.
pub fn allergy() -> RecordSpec {
    allergy_in(&Tables::unqualified())
}

fn allergy_in(t: &Tables) -> RecordSpec {
    of_student(ALLERGY, "allergies", t)
        .column(Column::text("allergen").required())
        .column(Column::one_of("severity", SEVERITIES).required())
        .column(Column::text("reaction"))
        .column(Column::date("diagnosed_on").not_in_future())
        .natural_key([
            KeyPart::exact("student_id"),
            KeyPart::lower_trim("allergen"),
        ])
        .key_filter("active")
}

/// The `chronic_condition` spec (table `chronic_conditions`).
pub fn chronic_condition() -> RecordSpec {
    chronic_condition_in(&Tables::unqualified())
}

fn chronic_condition_in(t: &Tables) -> RecordSpec {
    of_student(CHRONIC_CONDITION, "chronic_conditions", t)
        .column(Column::text("condition").required())
        .column(Column::text("icd10_code").required().max_chars(16))
        .column(Column::one_of("status", STATUSES).required())
        .column(Column::date("diagnosed_on").not_in_future())
        .natural_key([KeyPart::exact("student_id"), KeyPart::exact("icd10_code")])
}

/// The start of every spec of a student's record, `name` in `table`: its first column
/// `student_id`, required, naming an existing student.
fn of_student(name: &'static str, table: &str, t: &Tables) -> RecordSpec {
    RecordSpec::new(name, t.static_table(table))
        .column(Column::uuid("student_id").required())
        .foreign_key("student_id", t.static_table("students"), "id")
}

/// Every healthcare record type, students first, by their bare table names (SQLite's, or a
/// PostgreSQL connection's `search_path`).
pub fn registry() -> Registry {
    registry_in(&Tables::unqualified())
}

/// Every healthcare record type, students first, writing to and checking against `tables`
/// (`vitals.students` …): what [`Vitals::importer`](crate::Vitals::importer) uses.
pub fn registry_in(tables: &Tables) -> Registry {
    let t = tables;
    match Registry::new([
        student_in(t),
        vaccination_in(t),
        allergy_in(t),
        chronic_condition_in(t),
    ]) {
        Ok(r) => r,
        // The specs above are constants; `registry_is_valid` below checks them.
        Err(e) => unreachable!("healthcare record specs are invalid: {e}"),
    }
}

/// Checks one record of type `type_name` that did not come from a file (the body of a `POST`)
/// by the rules an import of it follows: its spec in `registry` (lengths, required fields,
/// ranges, `YYYY-MM-DD` dates in years 0001 to 9999 and not in the future where the spec says
/// so, no NUL character). `fields` are the body's; `fixed` the route's own (the path's
/// `student_id`), which replace a body field of the same name. Fields the spec has no column
/// for are ignored, as an import ignores them.
///
/// Returns one value per column of the spec, in its column order.
///
/// # Errors
/// Every bad field's [`Rejection`] (line 1, the field, the rule broken; never the value), or
/// one for the field `type` when `registry` has no type `type_name`.
pub fn check_fields(
    registry: &Registry,
    type_name: &str,
    fields: serde_json::Map<String, serde_json::Value>,
    fixed: Vec<(&'static str, RawValue)>,
) -> Result<Vec<Value>, Vec<Rejection>> {
    let mut raw: Vec<(Arc<str>, RawValue)> = fields
        .into_iter()
        .filter(|(name, _)| !fixed.iter().any(|(f, _)| f == name))
        .map(|(name, value)| (Arc::from(name), RawValue::from(value)))
        .collect();
    raw.extend(fixed.into_iter().map(|(f, v)| (Arc::from(f), v)));
    let record = RawRecord::new(1, Some(type_name.to_owned()), raw);
    validate(registry, record).map(|row| row.values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_qualifies_every_table_and_foreign_key() {
        let r = registry_in(&Tables::in_schema("vitals").unwrap());
        for spec in r.specs() {
            assert!(spec.table().starts_with("vitals."), "{}", spec.table());
            for fk in spec.foreign_keys() {
                assert_eq!(fk.table(), "vitals.students");
            }
        }
    }

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
