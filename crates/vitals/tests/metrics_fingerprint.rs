//! The statement histogram's `fingerprint` label (`DB_METRICS_FINGERPRINT`), on PostgreSQL:
//! absent without the opt-in; with it, the fingerprint of the sanitised statement (the query
//! report's, never a literal) for the first `DB_METRICS_FINGERPRINT_MAX` distinct statements,
//! and `_other` for every later one. `/metrics` is parsed by a real exposition-format parser
//! (`prometheus-parse`).
//!
//! A test binary of its own: the Prometheus recorder and the histogram's series are the
//! process's, so the two instances here see no other test's statements.
//!
//! Run with `cargo test -p vitals --test metrics_fingerprint` (PostgreSQL at 127.0.0.1:5432).

use std::collections::{BTreeMap, BTreeSet};

use prometheus_parse::{Scrape, Value};
use sqlx::PgPool;
use vitals::{Config, Vitals};

const HISTOGRAM: &str = "vitals_db_statement_duration_seconds";

/// Distinct fingerprints that keep a label of their own in the opted-in instance.
const MAX: usize = 3;

/// Distinct statements of the workload, more than [`MAX`]; each names the table `visits` and
/// carries an inline literal (a student number) that must reach no label.
const STATEMENTS: [&str; 5] = [
    "SELECT id FROM visits WHERE student_number = 'S-40001'",
    "SELECT note FROM visits WHERE student_number = 'S-40002'",
    "SELECT id, note FROM visits WHERE student_number = 'S-40003'",
    "SELECT count(*) FROM visits WHERE student_number = 'S-40004'",
    "SELECT max(id) FROM visits WHERE student_number = 'S-40005'",
];

/// Runs of each statement.
const RUNS: u64 = 2;

fn scrape(vitals: &Vitals) -> Scrape {
    let body = vitals::http::prometheus_text(vitals);
    for literal in ["S-40001", "S-40003", "S-40005"] {
        assert!(!body.contains(literal), "{literal} reached /metrics");
    }
    Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("a valid exposition")
}

/// The statement histogram's series of table `visits`: their `fingerprint` label (`None`
/// when absent) and how many statements each counted.
fn visits_series(scrape: &Scrape) -> Vec<(Option<String>, f64)> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == HISTOGRAM && s.labels.get("collection") == Some("visits"))
        .map(|s| {
            let count = match &s.value {
                Value::Histogram(b) => b
                    .iter()
                    .find(|c| c.less_than.is_infinite())
                    .map_or(0.0, |c| c.count),
                other => panic!("{HISTOGRAM} is not a histogram: {other:?}"),
            };
            (s.labels.get("fingerprint").map(str::to_owned), count)
        })
        .collect()
}

/// The facade on the test's database with the domain off (no migrations: the statements of
/// the workload are the only ones on `visits`) and `vars` as its environment.
async fn start(pool: &PgPool, vars: &[(&str, &str)]) -> Vitals {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .chain([("VITALS_HEALTH".to_owned(), "false".to_owned())])
        .collect();
    let config = Config::from_env_with(move |name: &str| {
        vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
    .unwrap();
    Vitals::builder()
        .config(config)
        .postgres_pool(
            PgPool::connect_with((*pool.connect_options()).clone())
                .await
                .unwrap(),
        )
        .build()
        .await
        .unwrap()
}

async fn workload(vitals: &Vitals) {
    let db = vitals.db().postgres().unwrap();
    for sql in STATEMENTS {
        for _ in 0..RUNS {
            sqlx::query(sql).fetch_all(db).await.unwrap();
        }
    }
}

#[sqlx::test]
async fn the_fingerprint_label_is_opt_in_and_bounded(pool: PgPool) {
    sqlx::query("CREATE TABLE visits (id int8, note text, student_number text)")
        .execute(&pool)
        .await
        .unwrap();

    // Without the opt-in: the workload's series have no fingerprint label.
    let plain = start(&pool, &[]).await;
    workload(&plain).await;
    let series = visits_series(&scrape(&plain));
    let total: f64 = series.iter().map(|(_, n)| n).sum();
    assert_eq!(total, (STATEMENTS.len() as u64 * RUNS) as f64, "{series:?}");
    assert!(series.iter().all(|(f, _)| f.is_none()), "{series:?}");
    plain.shutdown().await;

    // With it: the label appears on the opted-in instance's series, bounded by MAX.
    let max = MAX.to_string();
    let labelled = start(
        &pool,
        &[
            ("DB_METRICS_FINGERPRINT", "on"),
            ("DB_METRICS_FINGERPRINT_MAX", &max),
        ],
    )
    .await;
    // Statements the instance ran at start, if any, took their places in the bound first.
    let before: BTreeSet<String> = scrape(&labelled)
        .samples
        .iter()
        .filter(|s| s.metric == HISTOGRAM)
        .filter_map(|s| s.labels.get("fingerprint").map(str::to_owned))
        .filter(|f| f != "_other")
        .collect();
    let free = MAX.checked_sub(before.len()).expect("at most MAX before");
    assert!(free > 0, "the start used the whole bound: {before:?}");

    workload(&labelled).await;
    let mut counts: BTreeMap<String, f64> = BTreeMap::new();
    for (f, n) in visits_series(&scrape(&labelled)) {
        if let Some(f) = f {
            *counts.entry(f).or_default() += n;
        }
    }
    let fingerprinter = labelled.query_logger().fingerprinter();
    for (i, sql) in STATEMENTS.iter().enumerate() {
        let own = fingerprinter.fingerprint(sql).to_string();
        assert_eq!(own.len(), 16, "{own}");
        let got = counts.get(&own).copied().unwrap_or(0.0);
        let want = if i < free { RUNS as f64 } else { 0.0 };
        assert_eq!(got, want, "statement {i} ({own}) in {counts:?}");
    }
    assert_eq!(
        counts.get("_other").copied(),
        Some(((STATEMENTS.len() - free) as u64 * RUNS) as f64),
        "{counts:?}"
    );
    let own: BTreeSet<&String> = counts.keys().filter(|f| *f != "_other").collect();
    assert!(own.len() <= MAX, "{counts:?}");
    labelled.shutdown().await;
}
