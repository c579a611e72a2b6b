//! Benchmarks of vitals-querylog: the sanitiser beside the performance report's
//! four regexes (and, with `--features pg-query`, `pg_query::normalize`, the
//! PostgreSQL parser) on one corpus, in one run; and `QueryLogger::record` beside
//! a report-style logger (regexes + a map + a history).
//!
//! Run: `cargo bench -p vitals-benches --bench querylog -- --warm-up-time 1 --measurement-time 3`
//! (add `--features pg-query` for the parser peer; it needs libclang to build).
// criterion_group! generates an undocumented `pub fn benches`.
#![allow(missing_docs)]
use std::collections::{HashMap, VecDeque};
use std::hint::black_box;
use std::sync::Mutex;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use regex::Regex;
use vitals_querylog::{sanitize_sql, LoggerConfig, QueryEvent, QueryLogger};

/// Realistic statements of a school-health service, with the literal values
/// each holds (checked against every sanitiser's output before timing).
const CORPUS: &[(&str, &[&str])] = &[
    ("SELECT s.id, s.first_name, s.last_name FROM students s WHERE s.school_id = 42 AND s.last_name = 'Núñez' ORDER BY s.last_name LIMIT 50", &["Núñez"]),
    ("SELECT * FROM students WHERE email = 'ann.lee@example.com'", &["ann.lee@example.com"]),
    ("SELECT * FROM students WHERE ssn = '219099999' OR ssn = '219-09-9999'", &["219099999", "219-09-9999"]),
    ("INSERT INTO health_records (student_id, record_type, notes, recorded_at) VALUES (1017, 'visit', 'complained of headache; mother (Maria Lopez) called', '2024-03-05 10:12:00'), (1018, 'visit', 'ok', '2024-03-05 10:30:00')", &["Maria Lopez", "headache", "2024-03-05"]),
    ("UPDATE allergies SET severity = 'severe', reaction = E'anaphylaxis\\nuses epipen' WHERE student_id = 1017 AND allergen = 'peanut'", &["anaphylaxis", "peanut", "epipen"]),
    ("SELECT v.* FROM vaccinations v JOIN students s ON s.id = v.student_id WHERE s.id IN (1017, 1018, 1019, 1020, 1021, 1022) AND v.administered_on > DATE '2023-09-01'", &["1019", "2023-09-01"]),
    ("DELETE FROM medications WHERE student_id = 998877 AND name = 'methylphenidate'", &["998877", "methylphenidate"]),
    ("SELECT count(*) FROM appointments WHERE nurse_id = $1 AND starts_at BETWEEN $2 AND $3", &[]),
    ("INSERT INTO audit_log (actor, action, detail) VALUES ($1, $2, $$patient 'ann' viewed record$$)", &["patient 'ann' viewed"]),
    ("/* request 5f3a, user nurse.joy@school.example */ SELECT id FROM students WHERE dob = '2011-02-03'::date -- dob lookup for Ann Lee", &["nurse.joy@school.example", "2011-02-03", "Ann Lee"]),
    ("SELECT * FROM emergency_contacts WHERE phone = '5558675309' OR phone = '(555) 867-5309'", &["5558675309", "867-5309"]),
    ("SELECT s.id, json_agg(a.*) FROM students s LEFT JOIN allergies a ON a.student_id = s.id WHERE s.grade = 7 AND s.homeroom = 'B-12' GROUP BY s.id HAVING count(a.id) > 2", &["B-12"]),
    ("UPDATE students SET first_name = 'josé', last_name = 'garcía', updated_at = now() WHERE id = 55501", &["josé", "garcía", "55501"]),
    ("SELECT * FROM incidents WHERE description ILIKE '%broken arm%' AND reported_at >= '2024-01-01' AND reported_at < '2024-02-01' ORDER BY reported_at DESC", &["broken arm", "2024-01-01"]),
    ("INSERT INTO screenings (student_id, kind, result, values) VALUES (777001, 'vision', 'refer', ARRAY[20, 40, 20, 50])", &["777001", "vision"]),
    ("SELECT id FROM insurance WHERE member_id = 'W123456789' AND group_no = 'GRP-0042'", &["W123456789", "GRP-0042"]),
];

/// Statements as ORMs write them (every name double-quoted, SeaORM and Diesel alike), and one
/// SQLite host passing a double-quoted string: the statements for which the sanitiser's
/// double-quoted value tracker (`sanitize/quoted_value.rs`) runs, with their literals.
const QUOTED_CORPUS: &[(&str, &[&str])] = &[
    (
        r#"SELECT "students"."id", "students"."first_name", "students"."last_name" FROM "students" WHERE "students"."last_name" = 'Núñez' AND "students"."active" = TRUE ORDER BY "students"."last_name" ASC LIMIT 50"#,
        &["Núñez"],
    ),
    (
        r#"SELECT "vaccinations"."id", "vaccinations"."vaccine_name", "vaccinations"."administered_on" FROM "vaccinations" INNER JOIN "students" ON "students"."id" = "vaccinations"."student_id" WHERE "students"."id" IN (1017, 1018, 1019) AND "vaccinations"."administered_on" > '2023-09-01'"#,
        &["1019", "2023-09-01"],
    ),
    (
        r#"INSERT INTO "allergies" ("student_id", "allergen", "severity", "reaction", "active") VALUES ($1, $2, $3, $4, $5) RETURNING "id""#,
        &[],
    ),
    (
        r#"UPDATE "students" SET "first_name" = 'josé', "updated_at" = CURRENT_TIMESTAMP WHERE "students"."id" = 55501"#,
        &["josé", "55501"],
    ),
    (
        r#"SELECT COUNT(*) AS "num_items" FROM (SELECT "incidents"."id" FROM "incidents" WHERE "incidents"."description" ILIKE '%broken arm%' AND "incidents"."student_id" = $1) AS "sub_query""#,
        &["broken arm"],
    ),
    (
        r#"SELECT "id" FROM "students" WHERE lower("last_name") = lower("Núñez") AND "born" BETWEEN "2011-01-01" AND "2011-12-31""#,
        &["Núñez", "2011-01-01"],
    ),
];

/// The performance report's four regexes, applied in its order.
struct ReportRegexes([(Regex, &'static str); 4]);

impl ReportRegexes {
    fn new() -> Self {
        let r = |p: &str| Regex::new(p).unwrap();
        Self([
            (r(r"'\w+@\w+\.\w+'"), "'[EMAIL]'"),
            (r(r"'\d{3}-\d{2}-\d{4}'"), "'[SSN]'"),
            (r(r"'\d{10,}'"), "'[PHONE]'"),
            (r(r"'[A-Z][a-z]+ [A-Z][a-z]+'"), "'[NAME]'"),
        ])
    }

    fn sanitize(&self, sql: &str) -> String {
        let mut s = sql.to_string();
        for (re, to) in &self.0 {
            s = re.replace_all(&s, *to).into_owned();
        }
        s
    }
}

/// Literal values of `corpus` that survive in a sanitiser's output.
fn leaks(corpus: &[(&str, &[&str])], sanitize: impl Fn(&str) -> String) -> usize {
    corpus
        .iter()
        .map(|(sql, secrets)| {
            let out = sanitize(sql);
            secrets.iter().filter(|s| out.contains(*s)).count()
        })
        .sum()
}

#[cfg(feature = "pg-query")]
fn pg_normalize(sql: &str) -> String {
    pg_query::normalize(sql).unwrap_or_default()
}

/// Sanitises the whole corpus once per iteration: vitals' lexer, the report's
/// four regexes and (feature `pg-query`) `pg_query::normalize`, as bytes/s and
/// statements/s of the same input.
fn sanitize(c: &mut Criterion) {
    let regexes = ReportRegexes::new();
    for (corpus_name, corpus) in [("corpus", CORPUS), ("quoted", QUOTED_CORPUS)] {
        assert_eq!(
            leaks(corpus, sanitize_sql),
            0,
            "vitals sanitiser leaks a literal of the {corpus_name} corpus"
        );
        eprintln!(
            "{corpus_name}: {} statements, {} bytes; literals left: vitals 0, report regexes {}",
            corpus.len(),
            corpus.iter().map(|(s, _)| s.len()).sum::<usize>(),
            leaks(corpus, |s| regexes.sanitize(s)),
        );
        #[cfg(feature = "pg-query")]
        eprintln!(
            "{corpus_name}: literals left: pg_query::normalize {}",
            leaks(corpus, pg_normalize)
        );
    }

    let bytes = |corpus: &[(&str, &[&str])]| corpus.iter().map(|(s, _)| s.len() as u64).sum();
    for (name, corpus_name, corpus, throughput) in [
        (
            "querylog/sanitize_bytes",
            "corpus",
            CORPUS,
            Throughput::Bytes(bytes(CORPUS)),
        ),
        (
            "querylog/sanitize_statements",
            "corpus",
            CORPUS,
            Throughput::Elements(CORPUS.len() as u64),
        ),
        (
            "querylog/sanitize_quoted_bytes",
            "quoted",
            QUOTED_CORPUS,
            Throughput::Bytes(bytes(QUOTED_CORPUS)),
        ),
    ] {
        let mut g = c.benchmark_group(name);
        g.throughput(throughput);
        g.bench_function(BenchmarkId::new("vitals_sanitize_sql", corpus_name), |b| {
            b.iter(|| {
                for (sql, _) in corpus {
                    black_box(sanitize_sql(black_box(sql)));
                }
            })
        });
        g.bench_function(BenchmarkId::new("report_four_regexes", corpus_name), |b| {
            b.iter(|| {
                for (sql, _) in corpus {
                    black_box(regexes.sanitize(black_box(sql)));
                }
            })
        });
        #[cfg(feature = "pg-query")]
        g.bench_function(BenchmarkId::new("pg_query_normalize", corpus_name), |b| {
            b.iter(|| {
                for (sql, _) in corpus {
                    black_box(pg_normalize(black_box(sql)));
                }
            })
        });
        g.finish();
    }
}

/// Count and total ms per sanitised text, and the bounded history.
type ReportState = (HashMap<String, (u64, f64)>, VecDeque<(String, f64)>);

/// The report's logger, as its TypeScript does it: regex-sanitise, count per
/// sanitised text in a map, push to a bounded history, all under one lock.
struct ReportStyleLogger {
    regexes: ReportRegexes,
    state: Mutex<ReportState>,
}

impl ReportStyleLogger {
    fn record(&self, sql: &str, d: Duration) {
        let s = self.regexes.sanitize(sql);
        let ms = d.as_secs_f64() * 1000.0;
        let mut st = self.state.lock().unwrap();
        let e = st.0.entry(s.clone()).or_insert((0, 0.0));
        e.0 += 1;
        e.1 += ms;
        if st.1.len() >= 1000 {
            st.1.pop_front();
        }
        st.1.push_back((s, ms));
    }
}

/// One `record()` per iteration, cycling through the corpus: vitals'
/// `QueryLogger` (sanitise, fingerprint, stats with histogram, history) beside
/// the report-style logger (four regexes, a map, a history).
fn record(c: &mut Criterion) {
    let logger = QueryLogger::new(LoggerConfig::default());
    let peer = ReportStyleLogger {
        regexes: ReportRegexes::new(),
        state: Mutex::new((HashMap::new(), VecDeque::new())),
    };
    let mut g = c.benchmark_group("querylog/record");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("vitals_query_logger", |b| {
        b.iter(|| {
            let (sql, _) = CORPUS[i % CORPUS.len()];
            i += 1;
            logger.record(QueryEvent::new(black_box(sql), Duration::from_micros(1500)));
        })
    });
    let mut i = 0usize;
    g.bench_function("report_style_logger", |b| {
        b.iter(|| {
            let (sql, _) = CORPUS[i % CORPUS.len()];
            i += 1;
            peer.record(black_box(sql), Duration::from_micros(1500));
        })
    });
    g.finish();
}

criterion_group!(benches, sanitize, record);
criterion_main!(benches);
