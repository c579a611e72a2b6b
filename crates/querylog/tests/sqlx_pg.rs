//! The layer against real sqlx and PostgreSQL: sqlx's own per-statement events
//! reach the logger sanitised, with no change to the query code.
//! Needs DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test).
use sqlx::PgPool;
use tracing::Instrument;
use tracing_subscriber::prelude::*;
use vitals_querylog::{LoggerConfig, QueryLogger, SqlxQueryLayer};

#[sqlx::test]
async fn real_sqlx_statements_are_logged_sanitised(pool: PgPool) -> sqlx::Result<()> {
    let logger = QueryLogger::new(LoggerConfig::default());
    let subscriber = tracing_subscriber::registry()
        .with(SqlxQueryLayer::new(logger.clone()).with_filter(SqlxQueryLayer::interest()));
    // The test runtime is single-threaded, so a thread default sees the events.
    let _guard = tracing::subscriber::set_default(subscriber);

    sqlx::query("CREATE TABLE allergies (id serial PRIMARY KEY, student_id int, note text)")
        .execute(&pool)
        .await?;
    sqlx::query("INSERT INTO allergies (student_id, note) VALUES (1, 'ann.lee@example.com peanuts'), (2, 'x')")
        .execute(&pool)
        .await?;
    async {
        for id in 0..6 {
            sqlx::query("SELECT note FROM allergies WHERE student_id = $1")
                .bind(id)
                .fetch_all(&pool)
                .await?;
        }
        Ok::<_, sqlx::Error>(())
    }
    .instrument(tracing::info_span!("request"))
    .await?;

    let recent = logger.recent_queries(100);
    let texts: Vec<&str> = recent.iter().map(|r| r.sql.as_str()).collect();
    assert!(
        texts.contains(&"INSERT INTO allergies(student_id, note) VALUES (?)"),
        "{texts:?}"
    );
    assert!(
        texts.contains(&"SELECT note FROM allergies WHERE student_id = $1"),
        "{texts:?}"
    );
    assert!(texts.iter().all(|t| !t.contains("ann")), "{texts:?}");
    let insert = recent.iter().find(|r| r.operation == "INSERT").unwrap();
    assert_eq!(insert.rows, Some(2));
    let findings = logger.n_plus_one_findings();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].count, 6);
    assert_eq!(findings[0].model.as_deref(), Some("Allergy"));
    Ok(())
}
