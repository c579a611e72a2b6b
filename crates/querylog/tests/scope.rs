//! The ambient N+1 scope: statements recorded with the plain `QueryLogger::record` (as the
//! pool's observer does) inside `in_scope`, across `.await`s, worker threads and tasks the
//! scope is carried into, are counted in it, and nowhere else.
//!
//! Run with `cargo test -p vitals-querylog --test scope`.
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Barrier;
use tracing_subscriber::fmt::MakeWriter;
use vitals_querylog::{scoped, LoggerConfig, QueryEvent, QueryLogger, Scope};

const ROUTE: &str = "GET /api/health/students/:id/allergies";

/// The same lookup for student `id`: one fingerprint, a different literal each time.
fn lookup(logger: &QueryLogger, id: u32) {
    let sql =
        format!("SELECT * FROM allergies WHERE student_id = {id} AND allergen = 'peanut-{id}'");
    logger.record(QueryEvent::new(&sql, Duration::from_millis(1)));
}

/// [`lookup`] for each id of `ids`, one after another.
fn lookups(logger: &QueryLogger, ids: std::ops::Range<u32>) {
    for id in ids {
        lookup(logger, id);
    }
}

fn logger() -> QueryLogger {
    QueryLogger::new(LoggerConfig::default())
}

/// The scope and count of the logger's one N+1 finding, after checking there is one only.
fn only_finding(logger: &QueryLogger) -> (String, u64) {
    let findings = logger.n_plus_one_findings();
    assert_eq!(findings.len(), 1, "{findings:#?}");
    (findings[0].scope.clone(), findings[0].count)
}

/// Runs `body` inside the scope [`ROUTE`] of `logger`, handing it a handle of its own to move
/// into the tasks it spawns.
async fn in_route<F: std::future::Future<Output = ()>>(
    logger: &QueryLogger,
    body: impl FnOnce(QueryLogger) -> F,
) {
    logger.in_scope(ROUTE, body(logger.clone())).await;
}

/// What the `fmt` layer writes, kept for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// One subscriber for the whole test binary, installed once. A thread-local default
/// (`set_default`) raced with the other tests' threads over the warning's cached callsite
/// interest and lost the event about one run in three; a global default cannot.
fn global_capture() -> &'static Captured {
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other test of this binary installs a subscriber");
        captured
    })
}

/// A route no other test uses, so the captured warnings of this test can be told apart.
const WARNED_ROUTE: &str = "GET /api/health/students/:id/allergies/warned";

#[tokio::test]
async fn six_identical_lookups_make_one_finding_and_one_warning_without_literals() {
    let captured = global_capture();
    const ROUTE: &str = WARNED_ROUTE;

    let logger = logger();
    logger
        .in_scope(ROUTE, async {
            for id in 0..6 {
                lookup(&logger, 1000 + id);
                tokio::task::yield_now().await;
            }
        })
        .await;

    let findings = logger.n_plus_one_findings();
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!(f.scope, ROUTE);
    assert_eq!(f.count, 6);
    assert_eq!(
        f.query,
        "SELECT * FROM allergies WHERE student_id = ? AND allergen = ?"
    );
    assert_eq!(logger.statistics().n_plus_one_findings, 1);
    let report = logger.report();
    assert_eq!(report.n_plus_one, findings);
    assert!(report.to_text().contains("N+1 Findings:"));

    let text = captured.text();
    let warnings: Vec<_> = text
        .lines()
        .filter(|l| l.contains("N+1") && l.contains(ROUTE))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    let w = warnings[0];
    assert!(w.contains("WARN"), "{w}");
    assert!(w.contains(ROUTE), "names the route: {w}");
    assert!(
        w.contains(&f.fingerprint.to_string()),
        "names the fingerprint: {w}"
    );
    for id in 1000..1006 {
        assert!(!w.contains(&id.to_string()), "a literal leaked: {w}");
    }
    assert!(!w.contains("peanut"), "a literal leaked: {w}");
}

#[tokio::test]
async fn six_different_statements_make_no_finding() {
    let logger = logger();
    logger
        .in_scope(ROUTE, async {
            for table in [
                "students",
                "allergies",
                "vaccinations",
                "medications",
                "incidents",
                "appointments",
            ] {
                let sql = format!("SELECT * FROM {table} WHERE student_id = 7");
                logger.record(QueryEvent::new(&sql, Duration::from_millis(1)));
                tokio::task::yield_now().await;
            }
        })
        .await;
    assert!(logger.n_plus_one_findings().is_empty());
    assert_eq!(logger.statistics().total_queries, 6);
    assert_eq!(logger.statistics().n_plus_one_findings, 0);
}

#[tokio::test]
async fn four_identical_stay_under_the_threshold_of_five() {
    let logger = logger();
    assert_eq!(logger.config().n_plus_one_threshold(), 5);
    logger
        .in_scope(ROUTE, async {
            lookups(&logger, 0..4);
        })
        .await;
    assert!(logger.n_plus_one_findings().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_across_awaits_and_in_carried_tasks_count() {
    let logger = logger();
    in_route(&logger, |inner| async move {
        assert_eq!(
            Scope::current().map(|s| s.name().to_owned()).as_deref(),
            Some(ROUTE)
        );
        lookup(&inner, 1);
        tokio::task::yield_now().await;
        lookup(&inner, 2);
        // Carried with `scoped`...
        let l = inner.clone();
        tokio::spawn(scoped(async move {
            lookup(&l, 3);
            tokio::task::yield_now().await;
            lookup(&l, 4);
        }))
        .await
        .unwrap();
        // ...and with `Scope::current()` + `wrap`.
        let scope = Scope::current().unwrap();
        let l = inner.clone();
        tokio::spawn(scope.wrap(async move { lookup(&l, 5) }))
            .await
            .unwrap();
        // `spawn_blocking` with the synchronous form.
        let scope = Scope::current().unwrap();
        let l = inner.clone();
        tokio::task::spawn_blocking(move || scope.wrap_sync(|| lookup(&l, 6)))
            .await
            .unwrap();
    })
    .await;
    assert_eq!(only_finding(&logger), (ROUTE.to_owned(), 6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_spawned_without_the_scope_is_not_counted_in_it() {
    let logger = logger();
    in_route(&logger, |inner| async move {
        lookup(&inner, 1);
        let l = inner.clone();
        tokio::spawn(async move {
            assert!(Scope::current().is_none());
            for id in 2..8 {
                lookup(&l, id);
            }
        })
        .await
        .unwrap();
    })
    .await;
    assert!(logger.n_plus_one_findings().is_empty());
    assert_eq!(
        logger.statistics().total_queries,
        7,
        "still in the statistics"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_scopes_do_not_mix_their_counts() {
    let logger = logger();
    // Both scopes run the same statement, interleaved round by round: 5 in one, 4 in the
    // other. Mixed, they would make 9 in one scope or a finding in the second.
    let barrier = Arc::new(Barrier::new(2));
    let run = |name: &'static str, rounds: u32| {
        let logger = logger.clone();
        let barrier = barrier.clone();
        tokio::spawn(async move {
            let inner = logger.clone();
            logger
                .in_scope(name, async move {
                    for round in 0..5 {
                        barrier.wait().await;
                        if round < rounds {
                            lookup(&inner, round);
                        }
                        tokio::task::yield_now().await;
                    }
                })
                .await;
        })
    };
    let (a, b) = (run("job A", 5), run("job B", 4));
    a.await.unwrap();
    b.await.unwrap();
    assert_eq!(only_finding(&logger), ("job A".to_owned(), 5));
}

#[tokio::test]
async fn outside_any_scope_nothing_is_found() {
    let logger = logger();
    assert!(Scope::current().is_none());
    for id in 0..10 {
        lookup(&logger, id);
        tokio::task::yield_now().await;
    }
    // `scoped` outside a scope carries none.
    let l = logger.clone();
    tokio::spawn(scoped(async move {
        assert!(Scope::current().is_none());
        lookup(&l, 11);
    }))
    .await
    .unwrap();
    assert!(logger.n_plus_one_findings().is_empty());
    assert_eq!(logger.statistics().total_queries, 11);
}

#[tokio::test]
async fn another_loggers_scope_does_not_count_this_loggers_statements() {
    let (mine, other) = (logger(), logger());
    other
        .in_scope(ROUTE, async {
            lookups(&mine, 0..6);
        })
        .await;
    assert!(other.n_plus_one_findings().is_empty());
    assert!(mine.n_plus_one_findings().is_empty());
}

#[tokio::test]
async fn scopes_nest_and_a_statement_counts_in_the_innermost() {
    let logger = logger();
    logger
        .in_scope("job outer", async {
            lookups(&logger, 0..3);
            logger
                .in_scope("job inner", async {
                    lookups(&logger, 0..5);
                })
                .await;
        })
        .await;
    assert_eq!(only_finding(&logger), ("job inner".to_owned(), 5));
}

#[tokio::test]
async fn the_guard_runs_futures_and_records_once_each() {
    let logger = logger();
    {
        let guard = logger.scope("GET /students/12345");
        guard
            .run(async {
                lookups(&logger, 0..3);
            })
            .await;
        // Through the guard inside its own scope: counted once, not twice.
        guard
            .run(async {
                for id in 3..5 {
                    guard.record(QueryEvent::new(
                        &format!(
                            "SELECT * FROM allergies WHERE student_id = {id} AND allergen = 'x'"
                        ),
                        Duration::from_millis(1),
                    ));
                }
            })
            .await;
        assert_eq!(guard.as_scope().name(), "GET /students/?");
        assert!(
            logger.n_plus_one_findings().is_empty(),
            "made when the scope ends"
        );
    }
    let findings = logger.n_plus_one_findings();
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].count, 5);
}

#[test]
fn the_synchronous_form_needs_no_runtime() {
    let logger = logger();
    logger.in_scope_sync("import vaccinations.csv", || {
        lookups(&logger, 0..5);
    });
    assert_eq!(logger.n_plus_one_findings()[0].count, 5);
}
