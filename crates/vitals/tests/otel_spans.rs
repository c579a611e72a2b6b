//! The spans a host's exporter receives: `tracing-opentelemetry` over the OpenTelemetry SDK's
//! in-memory exporter, with vitals on PostgreSQL. A statement with PHI literals, a
//! transaction, a failing statement, a cache read and an import, all inside one request span:
//! each statement is a span named `{operation} {table}` with OpenTelemetry's database
//! attributes (the sanitised text as `db.query.text`), a failure carries its SQLSTATE as
//! `error.type`, the cache read is a `cache.get` span naming the tier that answered, the
//! import an `import` span with its counts; all are children of the request span, and no
//! literal is in any attribute of any span.
//!
//! Run with `cargo test -p vitals --test otel_spans` (PostgreSQL from `DATABASE_URL`).

use std::collections::HashMap;
use std::io::Write as _;
use std::time::Duration;

use opentelemetry::trace::{SpanId, SpanKind, Status, TracerProvider as _};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use sqlx::PgPool;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;
use vitals::import::Source;
use vitals::{Config, Vitals};

/// Literals no attribute may hold: a vaccine name, a first name, a date of birth.
const VACCINE: &str = "Qzorvaxin";
const FIRST_NAME: &str = "Ilvaquenne";
const BORN: &str = "2014-07-19";

fn attributes(span: &SpanData) -> HashMap<String, Value> {
    span.attributes
        .iter()
        .map(|kv| (kv.key.as_str().to_owned(), kv.value.clone()))
        .collect()
}

fn text(attrs: &HashMap<String, Value>, key: &str) -> String {
    attrs
        .get(key)
        .unwrap_or_else(|| panic!("no {key} in {attrs:?}"))
        .as_str()
        .into_owned()
}

fn int(attrs: &HashMap<String, Value>, key: &str) -> i64 {
    match attrs.get(key) {
        Some(Value::I64(n)) => *n,
        other => panic!("{key} is {other:?} in {attrs:?}"),
    }
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn one<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    let found = named(spans, name);
    let names: Vec<&str> = spans.iter().map(|s| &*s.name).collect();
    assert!(!found.is_empty(), "no span {name:?} in {names:?}");
    found[0]
}

#[sqlx::test]
async fn statements_transactions_cache_reads_and_imports_are_spans_without_literals(pool: PgPool) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("otel_spans")));
    // This thread's subscriber: `#[sqlx::test]` runs the test on a current-thread runtime,
    // so every span below is opened on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);

    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let vitals = Vitals::builder()
        .config(Config::defaults().unwrap())
        .postgres_pool(pool)
        .build()
        .await
        .unwrap();
    let db = vitals.db().postgres().unwrap().clone();
    let student = uuid::Uuid::new_v4();
    let csv = format!(
        "id,student_number,first_name,last_name,date_of_birth,grade\n\
         {student},S-00001,{FIRST_NAME},Testperson,{BORN},4\n"
    );
    let mut file = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
    file.write_all(csv.as_bytes()).unwrap();

    let request = tracing::info_span!("request");
    async {
        let source = Source::open(file.path(), None).unwrap().with_type("student");
        let outcome = vitals.import(source, None).await.unwrap();
        assert_eq!(outcome.report.imported, 1);

        let rows = sqlx::query(&format!(
            "SELECT id FROM vitals.vaccinations WHERE vaccine_name = '{VACCINE}' AND student_id = '{student}'"
        ))
        .fetch_all(&db)
        .await
        .unwrap();
        assert!(rows.is_empty());

        let mut tx = db.begin().await.unwrap();
        sqlx::query(&format!(
            "INSERT INTO vitals.vaccinations (id, student_id, vaccine_name, dose_number, administered_on) \
             VALUES ('{}', '{student}', '{VACCINE}', 1, '{BORN}')",
            uuid::Uuid::new_v4()
        ))
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();

        let failed = sqlx::query(&format!(
            "SELECT 1 / 0 FROM vitals.students WHERE first_name = '{FIRST_NAME}'"
        ))
        .fetch_all(&db)
        .await;
        assert!(failed.is_err());

        // A miss that loads, then a hit in L1.
        for _ in 0..2 {
            let loaded = vitals
                .cache()
                .get_or_load("otel:probe", Duration::from_secs(30), &[], || async {
                    Ok::<u32, std::convert::Infallible>(1)
                })
                .await;
            assert!(loaded.is_ok());
        }
    }
    .instrument(request)
    .await;
    vitals.shutdown().await;
    let _ = provider.force_flush();
    let spans = exporter.get_finished_spans().unwrap();
    let request_id = one(&spans, "request").span_context.span_id();

    // The SELECT: named after its operation and table, the conventions' attributes.
    let select = one(&spans, "SELECT vaccinations");
    let a = attributes(select);
    assert_eq!(text(&a, "db.system.name"), "postgresql");
    assert_eq!(text(&a, "db.operation.name"), "SELECT");
    assert_eq!(text(&a, "db.collection.name"), "vaccinations");
    assert_eq!(text(&a, "db.namespace"), database);
    assert!(a.contains_key("server.address"), "{a:?}");
    assert!(int(&a, "server.port") > 0);
    assert_eq!(int(&a, "db.response.returned_rows"), 0);
    assert_eq!(
        text(&a, "db.query.text"),
        "SELECT id FROM vitals.vaccinations WHERE vaccine_name = ? AND student_id = ?"
    );
    assert_eq!(select.span_kind, SpanKind::Client);
    assert_eq!(select.parent_span_id, request_id);

    // The transaction: BEGIN, the INSERT and COMMIT, each a child of the request (the
    // import's own BEGIN and COMMIT are children of the import span).
    let of_request = |name: &str| {
        named(&spans, name)
            .into_iter()
            .find(|s| s.parent_span_id == request_id)
            .unwrap_or_else(|| panic!("no {name} under the request"))
    };
    for name in ["BEGIN", "INSERT vaccinations", "COMMIT"] {
        of_request(name);
    }
    let insert = attributes(of_request("INSERT vaccinations"));
    assert_eq!(int(&insert, "db.response.returned_rows"), 1);

    // The failure: its SQLSTATE (22012, division by zero) and an error status.
    let failed = one(&spans, "SELECT students");
    assert_eq!(text(&attributes(failed), "error.type"), "22012");
    assert!(
        matches!(failed.status, Status::Error { .. }),
        "{:?}",
        failed.status
    );

    // The cache read: answered by L1.
    let get = named(&spans, "cache.get");
    assert!(
        get.iter().any(|s| attributes(s)
            .get("cache.tier")
            .map(|v| v.as_str().into_owned())
            == Some("l1".to_owned())
            && s.parent_span_id == request_id),
        "no cache.get answered by l1 under the request"
    );

    // The import: its counts, a child of the request; its statements are its children.
    let import = one(&spans, "import");
    assert_eq!(import.parent_span_id, request_id);
    let ia = attributes(import);
    assert_eq!(int(&ia, "import.rows"), 1);
    assert_eq!(int(&ia, "import.imported"), 1);
    assert_eq!(int(&ia, "import.rejected"), 0);
    let import_id = import.span_context.span_id();
    assert!(
        spans.iter().any(|s| s.parent_span_id == import_id
            && attributes(s)
                .get("db.operation.name")
                .map(|v| v.as_str().into_owned())
                == Some("INSERT".to_owned())),
        "no INSERT span under the import"
    );

    // No literal anywhere.
    let student = student.to_string();
    for span in &spans {
        for kv in &span.attributes {
            let value = kv.value.as_str();
            for literal in [VACCINE, FIRST_NAME, BORN, student.as_str()] {
                assert!(
                    !value.contains(literal),
                    "{literal} in {} of span {}",
                    kv.key,
                    span.name
                );
            }
        }
        assert!(!span.name.contains(VACCINE));
    }
    assert_ne!(request_id, SpanId::INVALID);
}
