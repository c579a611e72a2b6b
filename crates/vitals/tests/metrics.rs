//! `/metrics` as a Prometheus server reads it: the body, rendered by
//! metrics-exporter-prometheus, parsed by a real exposition-format parser (`prometheus-parse`).
//! A known workload (25 lookups of one table, 3 failing statements) moves the statement
//! histogram's buckets by exactly that much, under the labels it names; the acquire and
//! hold histograms and the pool gauges are there; today's snapshot names still are.
//!
//! Run with `cargo test -p vitals --test metrics` (SQLite: no server needed).

use prometheus_parse::{HistogramCount, Sample, Scrape, Value};
use vitals::{Config, Vitals};

/// Lookups of the workload, and failing statements.
const LOOKUPS: u64 = 25;
const FAILURES: u64 = 3;

/// The facade with the default configuration on a new SQLite file `name` in `dir` (keep `dir`
/// while the test runs).
async fn vitals_on_sqlite(dir: &tempfile::TempDir, name: &str) -> Vitals {
    let url = format!("sqlite://{}", dir.path().join(name).display());
    Vitals::builder()
        .config(Config::defaults().unwrap())
        .database_url(Some(url))
        .build()
        .await
        .unwrap()
}

fn scrape(vitals: &Vitals) -> Scrape {
    let body = vitals::http::prometheus_text(vitals);
    Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("a valid exposition")
}

/// The buckets of histogram `name` whose labels include every pair of `labels`, if any.
fn buckets(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<Vec<HistogramCount>> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Histogram(b) => b.clone(),
            other => panic!("{name} is not a histogram: {other:?}"),
        })
}

/// The `+Inf` bucket: how many values were recorded.
fn total(b: &Option<Vec<HistogramCount>>) -> f64 {
    b.as_ref()
        .and_then(|b| b.iter().find(|c| c.less_than.is_infinite()))
        .map_or(0.0, |c| c.count)
}

fn sample<'a>(scrape: &'a Scrape, name: &str) -> &'a Sample {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name)
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

#[tokio::test]
async fn a_known_workload_moves_the_statement_histogram_buckets_by_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let vitals = vitals_on_sqlite(&dir, "metrics.db").await;
    let db = vitals.db().sqlite().unwrap().clone();
    let ok = [
        ("system", "sqlite"),
        ("operation", "SELECT"),
        ("collection", "students"),
        ("outcome", "ok"),
    ];
    let failed = [
        ("system", "sqlite"),
        ("operation", "SELECT"),
        ("collection", "no_such_table"),
        ("outcome", "error"),
    ];
    let name = "vitals_db_statement_duration_seconds";
    let before = scrape(&vitals);
    let (ok_before, failed_before) = (buckets(&before, name, &ok), buckets(&before, name, &failed));
    let acquired_before = total(&buckets(
        &before,
        "vitals_pool_acquire_wait_seconds",
        &[("outcome", "ok")],
    ));

    for i in 0..LOOKUPS {
        sqlx::query("SELECT id FROM students WHERE student_number = $1")
            .bind(format!("S-{i:05}"))
            .fetch_all(&db)
            .await
            .unwrap();
    }
    for _ in 0..FAILURES {
        assert!(sqlx::query("SELECT 1 FROM no_such_table")
            .fetch_all(&db)
            .await
            .is_err());
    }

    let after = scrape(&vitals);
    let ok_after = buckets(&after, name, &ok).expect("the lookups' series");
    assert_eq!(
        total(&Some(ok_after.clone())) - total(&ok_before),
        LOOKUPS as f64
    );
    assert_eq!(
        total(&buckets(&after, name, &failed)) - total(&failed_before),
        FAILURES as f64
    );
    // Cumulative buckets with the configured bounds, 100 µs to 10 s, then +Inf.
    let bounds: Vec<f64> = ok_after.iter().map(|c| c.less_than).collect();
    let mut want = vitals::metrics::BUCKETS.to_vec();
    want.push(f64::INFINITY);
    assert_eq!(bounds, want);
    assert!(ok_after.windows(2).all(|w| w[0].count <= w[1].count));
    // Every lookup waited for a connection, and held one.
    let acquired_after = total(&buckets(
        &after,
        "vitals_pool_acquire_wait_seconds",
        &[("outcome", "ok")],
    ));
    assert!(acquired_after - acquired_before >= (LOOKUPS + FAILURES) as f64);
    assert!(total(&buckets(&after, "vitals_pool_connection_hold_seconds", &[])) >= LOOKUPS as f64);

    // The gauges and today's snapshot figures, under today's names.
    for gauge in [
        "vitals_pool_active_connections",
        "vitals_pool_idle_connections",
        "vitals_pool_waiting_requests",
        "vitals_pool_max_connections",
        "vitals_pool_utilization_percent",
        "vitals_cache_l1_entries",
    ] {
        assert!(
            matches!(sample(&after, gauge).value, Value::Gauge(_)),
            "{gauge}"
        );
    }
    match sample(&after, "vitals_queries_total").value {
        Value::Counter(n) => assert!(n >= (LOOKUPS + FAILURES) as f64),
        ref other => panic!("vitals_queries_total is {other:?}"),
    }
    match sample(&after, "vitals_pool_max_connections").value {
        Value::Gauge(n) => assert!(n >= 1.0),
        ref other => panic!("{other:?}"),
    }
    // No literal in the body: statements with inline literals (after the counts above), one
    // that succeeds and one that fails, through the monitored handle. Bind values never
    // reach a label; a literal is what would if the SQL text leaked into one.
    sqlx::query("SELECT id FROM students WHERE student_number = 'S-99999'")
        .fetch_all(&db)
        .await
        .unwrap();
    assert!(
        sqlx::query("SELECT id FROM no_such_table WHERE student_number = 'S-88888'")
            .fetch_all(&db)
            .await
            .is_err()
    );
    let body = vitals::http::prometheus_text(&vitals);
    assert!(
        body.contains("collection=\"students\""),
        "the statements are in /metrics"
    );
    for literal in ["S-99999", "S-88888", "S-0000"] {
        assert!(!body.contains(literal), "{literal} in /metrics");
    }
    vitals.shutdown().await;
}

/// Every metric the Grafana dashboard (docs/grafana-dashboard.json) queries is in /metrics.
#[tokio::test]
async fn the_grafana_dashboard_queries_only_metrics_that_exist() {
    let dir = tempfile::tempdir().unwrap();
    let vitals = vitals_on_sqlite(&dir, "grafana.db").await;
    // A statement and a cache read: histograms appear with their first value.
    let db = vitals.db().sqlite().unwrap().clone();
    sqlx::query("SELECT 1").fetch_all(&db).await.unwrap();
    vitals.cache().clear_l1();
    let _ = vitals
        .cache()
        .get_or_load(
            "grafana:probe",
            std::time::Duration::from_secs(5),
            &[],
            || async { Ok::<u32, std::convert::Infallible>(1) },
        )
        .await;
    let body = vitals::http::prometheus_text(&vitals);
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../../../docs/grafana-dashboard.json")).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().clone())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    assert!(exprs.len() >= 12);
    for expr in &exprs {
        for (at, _) in expr.match_indices("vitals_") {
            let rest = &expr[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len());
            let name = &rest[..end];
            let family = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            assert!(
                body.contains(&format!("# TYPE {family} ")),
                "{family} (in {expr}) not in /metrics"
            );
        }
    }
    vitals.shutdown().await;
}
