//! The importer on PostgreSQL, each test in a schema of its own (dropped at its end) on the
//! server at `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`): an error's
//! text without the row's value, and a parent skipped as an existing duplicate whose
//! children are rejected rather than failing the import on the foreign key.
//!
//! Run with `cargo test -p vitals-import --test postgres`.

mod common;

use std::str::FromStr as _;

use common::{count, ndjson};
use sqlx::postgres::{PgConnectOptions, PgPool};
use vitals_import::{
    Column, DuplicateOf, ImportError, ImportOptions, Importer, KeyPart, PgSink, RecordSpec,
    Registry,
};

/// A schema of its own for one test: the pool's connections find its tables first.
struct Schema {
    name: String,
    pool: PgPool,
}

impl Schema {
    async fn new(ddl: &[&str]) -> Self {
        let url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let name = format!("import_test_{}", uuid::Uuid::new_v4().simple());
        let admin = PgPool::connect(&url)
            .await
            .expect("PostgreSQL at DATABASE_URL");
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let options = PgConnectOptions::from_str(&url)
            .unwrap()
            .options([("search_path", name.as_str())]);
        let pool = common::pool_after(2, options, ddl).await;
        Self { name, pool }
    }

    async fn drop(self) {
        sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.name))
            .execute(&self.pool)
            .await
            .unwrap();
        self.pool.close().await;
    }
}

#[tokio::test]
async fn a_cast_the_server_refuses_fails_without_the_value_in_the_text() {
    let schema = Schema::new(&[
        "CREATE TYPE mood AS ENUM ('calm', 'tired')",
        "CREATE TABLE checkins (id int8 PRIMARY KEY, mood mood NOT NULL)",
    ])
    .await;
    let registry = Registry::new([RecordSpec::new("checkin", "checkins")
        .column(Column::int("id").required())
        .column(Column::text("mood").required().pg_type("mood"))
        .natural_key([KeyPart::exact("id")])])
    .unwrap();
    let importer = Importer::new(registry, ImportOptions::new()).unwrap();
    let source = ndjson("{\"type\":\"checkin\",\"id\":1,\"mood\":\"Synthname-Quill\"}\n");
    let e = importer
        .run(source, &mut PgSink::new(schema.pool.clone()))
        .await
        .unwrap_err();
    let ImportError::Database { source, .. } = &e else {
        panic!("not a database error: {e}");
    };
    // The server's message quotes the value; the source keeps it for a host to debug.
    assert!(source.to_string().contains("Synthname-Quill"), "{source}");
    let text = e.to_string();
    assert!(!text.contains("Synthname"), "{text}");
    assert!(text.contains("SQLSTATE 22P02"), "{text}");
    assert!(!format!("{e:#}").contains("Synthname"));
    assert_eq!(count(&schema.pool, "checkins").await, 0);
    schema.drop().await;
}

const EXISTING: &str = "5a1c0e3e-0000-4000-8000-000000000001";
const NEW_ID: &str = "5a1c0e3e-0000-4000-8000-000000000002";

/// Students known by their `student_key` (`student_number` or `id`), vaccinations pointing
/// at a student's id.
fn school(student_key: &'static str) -> Registry {
    Registry::new([
        RecordSpec::new("student", "students")
            .column(Column::uuid("id").required())
            .column(Column::text("student_number").required().max_chars(20))
            .natural_key([KeyPart::exact(student_key)]),
        RecordSpec::new("vaccination", "vaccinations")
            .column(Column::uuid("student_id").required())
            .column(Column::text("vaccine").required().max_chars(20))
            .natural_key([KeyPart::exact("student_id"), KeyPart::exact("vaccine")])
            .foreign_key("student_id", "students", "id"),
    ])
    .unwrap()
}

async fn school_schema() -> Schema {
    let schema = Schema::new(&[
        "CREATE TABLE students (id uuid PRIMARY KEY, student_number text NOT NULL UNIQUE)",
        "CREATE TABLE vaccinations (student_id uuid NOT NULL REFERENCES students (id), \
         vaccine text NOT NULL, UNIQUE (student_id, vaccine))",
    ])
    .await;
    sqlx::query("INSERT INTO students (id, student_number) VALUES ($1::uuid, 'S-1')")
        .bind(EXISTING)
        .execute(&schema.pool)
        .await
        .unwrap();
    schema
}

/// A student already there by number but with a new id in the file, then a vaccination
/// of that new id, then one of the existing student's id.
fn known_student_under_a_new_id() -> String {
    format!(
        "{{\"type\":\"student\",\"id\":\"{NEW_ID}\",\"student_number\":\"S-1\"}}\n\
         {{\"type\":\"vaccination\",\"student_id\":\"{NEW_ID}\",\"vaccine\":\"MMR\"}}\n\
         {{\"type\":\"vaccination\",\"student_id\":\"{EXISTING}\",\"vaccine\":\"MMR\"}}\n"
    )
}

#[tokio::test]
async fn a_child_of_a_parent_skipped_as_existing_is_rejected_not_a_database_error() {
    // One chunk (the child is checked alongside its parent), then one row per chunk (the
    // child comes after the parent's chunk was committed).
    for (chunk_size, reason) in [
        (
            100,
            "unknown student_id: its row in this file was not imported",
        ),
        (1, "unknown student_id"),
    ] {
        let schema = school_schema().await;
        let importer = Importer::new(
            school("student_number"),
            ImportOptions::new().chunk_size(chunk_size),
        )
        .unwrap();
        let r = importer
            .run(
                ndjson(&known_student_under_a_new_id()),
                &mut PgSink::new(schema.pool.clone()),
            )
            .await
            .unwrap_or_else(|e| panic!("chunks of {chunk_size}: {e}"));
        assert_eq!(
            (r.total, r.imported, r.duplicates, r.rejected),
            (3, 1, 1, 1),
            "chunks of {chunk_size}: {r:#?}"
        );
        assert_eq!(r.duplicate_rows[0].line, 1);
        assert_eq!(r.duplicate_rows[0].of, DuplicateOf::Existing);
        assert_eq!(
            r.rejections,
            [common::rejected(2, "vaccination", "student_id", reason)],
            "chunks of {chunk_size}"
        );
        assert_eq!(count(&schema.pool, "students").await, 1);
        assert_eq!(count(&schema.pool, "vaccinations").await, 1);
        schema.drop().await;
    }
}

#[tokio::test]
async fn a_parent_known_by_its_referenced_id_costs_no_extra_lookup() {
    // The natural key is the id the vaccinations reference: an existing duplicate's id is
    // there, so its children are imported, with no lookup for it.
    let schema = school_schema().await;
    let registry = school("id");
    let input = format!(
        "{{\"type\":\"student\",\"id\":\"{EXISTING}\",\"student_number\":\"S-1\"}}\n\
         {{\"type\":\"vaccination\",\"student_id\":\"{EXISTING}\",\"vaccine\":\"MMR\"}}\n"
    );
    let r = Importer::new(registry, ImportOptions::new())
        .unwrap()
        .run(ndjson(&input), &mut PgSink::new(schema.pool.clone()))
        .await
        .unwrap();
    assert_eq!((r.imported, r.duplicates, r.rejected), (1, 1, 0), "{r:#?}");
    // BEGIN, the students' ids the vaccinations reference (looked up before the chunk's rows
    // are checked), the students' existing keys, the vaccinations' existing keys, their
    // insert, COMMIT: nothing more for the student skipped as existing.
    assert_eq!(r.queries, 6, "{r:#?}");
    assert_eq!(count(&schema.pool, "vaccinations").await, 1);
    schema.drop().await;
}
