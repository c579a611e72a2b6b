//! Tests of `QueryLogger`: statistics, slow tiers, history, eviction, N+1, report.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vitals_querylog::{
    LoggerConfig, QueryEvent, QueryLogger, QueryRecord, SlowQuerySink, SlowTier,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Records each `(sql, milliseconds)` in order.
fn record_all(logger: &QueryLogger, queries: &[(&str, u64)]) {
    for (sql, took) in queries {
        logger.record(QueryEvent::new(sql, ms(*took)));
    }
}

#[derive(Default)]
struct Collect(Mutex<Vec<QueryRecord>>);

impl SlowQuerySink for Collect {
    fn on_slow_query(&self, query: &QueryRecord) {
        self.0.lock().unwrap().push(query.clone());
    }
}

#[test]
fn statistics_count_totals_models_and_extremes() {
    let logger = QueryLogger::new(LoggerConfig::default());
    record_all(
        &logger,
        &[
            ("SELECT * FROM students WHERE id = 1", 10),
            ("select * from students where id = 2", 30),
            (
                "INSERT INTO vaccinations (student_id, dose) VALUES (1, 'x')",
                20,
            ),
            ("SELECT 1", 1),
        ],
    );
    let s = logger.statistics();
    assert_eq!(s.total_queries, 4);
    assert_eq!(s.slow_queries, 0);
    assert_eq!(s.queries_by_model["Student"], 2);
    assert_eq!(s.queries_by_model["Vaccination"], 1);
    assert_eq!(s.queries_by_model.len(), 2, "SELECT 1 has no model");
    assert_eq!(s.max_duration_ms, 30.0);
    assert_eq!(s.min_duration_ms, 1.0);
    assert_eq!(s.avg_duration_ms, 15.25);
    assert_eq!(s.distinct_fingerprints, 3);
    let top = &s.most_frequent_queries[0];
    assert_eq!(top.count, 2);
    assert_eq!(top.query, "SELECT * FROM students WHERE id = ?");
    assert_eq!(top.operation, "SELECT");
    assert_eq!(top.avg_ms, 20.0);
    assert_eq!(s.slowest_queries[0].max_ms, 30.0);
}

#[test]
fn percentiles_per_fingerprint() {
    let logger = QueryLogger::new(LoggerConfig::default());
    for i in 1..=100 {
        logger.record(QueryEvent::new(
            "SELECT * FROM allergies WHERE id = $1",
            ms(i),
        ));
    }
    let s = &logger.fingerprint_stats()[0];
    assert_eq!(s.count, 100);
    // hdrhistogram with 2 significant digits: within 1 %.
    assert!((s.p50_ms - 50.0).abs() <= 0.5, "{}", s.p50_ms);
    assert!((s.p95_ms - 95.0).abs() <= 1.0, "{}", s.p95_ms);
    assert!((s.p99_ms - 99.0).abs() <= 1.0, "{}", s.p99_ms);
}

#[test]
fn model_and_operation_are_derived_in_the_reports_style() {
    let logger = QueryLogger::new(LoggerConfig::default());
    let cases = [
        (
            "SELECT a FROM public.health_records r JOIN x ON true",
            "SELECT",
            Some("HealthRecord"),
        ),
        (
            "UPDATE allergies SET severity = 'high' WHERE id = 3",
            "UPDATE",
            Some("Allergy"),
        ),
        (
            "DELETE FROM \"Students\" WHERE id = 3",
            "DELETE",
            Some("Student"),
        ),
        (
            "WITH t AS (SELECT * FROM a) INSERT INTO classes SELECT * FROM t",
            "INSERT",
            Some("Class"),
        ),
        ("BEGIN", "BEGIN", None),
    ];
    for (sql, op, model) in cases {
        logger.record(QueryEvent::new(sql, ms(1)));
        let r = &logger.recent_queries(1)[0];
        assert_eq!(r.operation, op, "{sql}");
        assert_eq!(r.model.as_deref(), model, "{sql}");
    }
    logger.record(
        QueryEvent::new("SELECT 1", ms(1))
            .with_model("Health")
            .with_operation("ping"),
    );
    let r = &logger.recent_queries(1)[0];
    assert_eq!(
        (r.model.as_deref(), r.operation.as_str()),
        (Some("Health"), "ping")
    );
}

#[test]
fn slow_tiers_reach_the_sink_and_the_history() {
    let sink = Arc::new(Collect::default());
    let config = LoggerConfig::builder()
        .slow_warn(ms(100))
        .slow_critical(ms(500))
        .slow_capacity(2)
        .build()
        .unwrap();
    let logger = QueryLogger::with_sink(config, sink.clone());
    record_all(
        &logger,
        &[
            ("SELECT * FROM students WHERE id = 1", 99),
            ("SELECT * FROM students WHERE id = 2", 100),
            ("SELECT * FROM students WHERE id = 3", 500),
            ("SELECT * FROM staff WHERE id = 4", 200),
        ],
    );
    let alerts = sink.0.lock().unwrap();
    let tiers: Vec<_> = alerts.iter().map(|q| q.tier).collect();
    assert_eq!(
        tiers,
        [
            Some(SlowTier::Warning),
            Some(SlowTier::Critical),
            Some(SlowTier::Warning)
        ]
    );
    let slow = logger.slow_queries(10);
    assert_eq!(slow.len(), 2, "capacity 2");
    assert_eq!(slow[0].sql, "SELECT * FROM staff WHERE id = ?");
    assert_eq!(slow[1].tier, Some(SlowTier::Critical));
    let s = logger.statistics();
    assert_eq!((s.slow_queries, s.critical_queries), (3, 1));
}

#[test]
fn recent_history_is_bounded_and_sanitised() {
    let config = LoggerConfig::builder().recent_capacity(3).build().unwrap();
    let logger = QueryLogger::new(config);
    for i in 0..5 {
        let sql = format!("SELECT * FROM students WHERE email = 'kid{i}@school.example'");
        logger.record(QueryEvent::new(&sql, ms(1)));
    }
    let recent = logger.recent_queries(10);
    assert_eq!(recent.len(), 3);
    for r in &recent {
        assert_eq!(r.sql, "SELECT * FROM students WHERE email = ?");
    }
    assert_eq!(logger.recent_queries(1).len(), 1);
}

#[test]
fn errors_are_scrubbed_before_they_are_kept() {
    let logger = QueryLogger::new(LoggerConfig::default());
    logger.record(
        QueryEvent::new("INSERT INTO students (email) VALUES ($1)", ms(1)).with_error(
            "duplicate key value violates unique constraint \"students_email_key\"\n\
             DETAIL:  Key (email)=(ann.lee@example.com) already exists.",
        ),
    );
    let r = &logger.recent_queries(1)[0];
    let e = r.error.as_deref().unwrap();
    assert!(!e.contains("ann"), "{e}");
    assert!(e.contains("Key (email)=([VALUE])"), "{e}");
    assert_eq!(logger.statistics().failed_queries, 1);
}

#[test]
fn fingerprints_are_capped_and_evictions_counted() {
    let config = LoggerConfig::builder().max_fingerprints(3).build().unwrap();
    let logger = QueryLogger::new(config);
    for _ in 0..5 {
        logger.record(QueryEvent::new("SELECT * FROM hot WHERE id = 1", ms(1)));
    }
    for t in 0..10 {
        let sql = format!("SELECT * FROM cold_{t} WHERE id = 1");
        logger.record(QueryEvent::new(&sql, ms(1)));
    }
    let s = logger.statistics();
    assert_eq!(s.distinct_fingerprints, 3);
    assert_eq!(s.evicted_fingerprints, 8);
    assert_eq!(s.evicted_queries, 8);
    assert_eq!(s.total_queries, 15, "totals stay exact");
    assert_eq!(
        s.most_frequent_queries[0].count, 5,
        "the hot statement stays"
    );
}

#[test]
fn scope_guard_finds_n_plus_one() {
    let logger = QueryLogger::new(LoggerConfig::default());
    {
        let scope = logger.scope("GET /students/12345");
        scope.record(QueryEvent::new(
            "SELECT * FROM students WHERE school_id = 1",
            ms(3),
        ));
        for id in 0..7 {
            let sql = format!("SELECT * FROM allergies WHERE student_id = {id}");
            scope.record(QueryEvent::new(&sql, ms(2)));
        }
        for id in 0..4 {
            let sql = format!("SELECT * FROM vaccinations WHERE student_id = {id}");
            scope.record(QueryEvent::new(&sql, ms(2)));
        }
        assert!(
            logger.n_plus_one_findings().is_empty(),
            "made when the scope ends"
        );
    }
    let findings = logger.n_plus_one_findings();
    assert_eq!(
        findings.len(),
        1,
        "4 vaccinations stay under the threshold of 5"
    );
    let f = &findings[0];
    assert_eq!(f.count, 7);
    assert_eq!(f.total_ms, 14.0);
    assert_eq!(f.query, "SELECT * FROM allergies WHERE student_id = ?");
    assert_eq!(f.scope, "GET /students/?", "the scope name is scrubbed");
    assert_eq!(logger.statistics().n_plus_one_findings, 1);
}

#[test]
fn report_text_and_json() {
    let logger = QueryLogger::new(LoggerConfig::default());
    record_all(
        &logger,
        &[
            ("SELECT * FROM students WHERE id = 1", 3456),
            ("SELECT * FROM students WHERE id = 2", 10),
        ],
    );
    let report = logger.report();
    let text = report.to_text();
    assert!(
        text.starts_with("=== Database Query Performance Report ===\n"),
        "{text}"
    );
    assert!(text.contains("Total Queries: 2\n"), "{text}");
    assert!(text.contains("Slow Queries: 1 (50.00%)\n"), "{text}");
    assert!(text.contains("Max Duration: 3,456.00ms\n"), "{text}");
    assert!(text.contains("  Student: 2 queries\n"), "{text}");
    assert!(
        text.contains("  1. [3,456.00ms] Student: SELECT * FROM students WHERE id = ?"),
        "{text}"
    );
    let json = report.to_json().unwrap();
    let back: vitals_querylog::PerformanceReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);
}

#[test]
fn concurrent_recording_loses_nothing() {
    let logger = QueryLogger::new(LoggerConfig::default());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let logger = logger.clone();
            std::thread::spawn(move || {
                for i in 0..500 {
                    let sql = format!("SELECT * FROM t{} WHERE id = {i}", t % 2);
                    logger.record(QueryEvent::new(&sql, ms(1)));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = logger.statistics();
    assert_eq!(s.total_queries, 2000);
    assert_eq!(s.distinct_fingerprints, 2);
    assert_eq!(s.most_frequent_queries[0].count, 1000);
}

#[test]
fn summary_thread_stops_when_asked() {
    let logger = QueryLogger::new(LoggerConfig::default());
    let handle = logger.spawn_summary(Duration::from_millis(5)).unwrap();
    handle.stop();
}

#[test]
fn configured_summary_can_be_off() {
    let config = LoggerConfig::builder()
        .summary_interval(None)
        .build()
        .unwrap();
    let logger = QueryLogger::new(config);
    assert!(logger.start_configured_summary().unwrap().is_none());
}
