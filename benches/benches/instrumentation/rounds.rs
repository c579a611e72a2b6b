//! The end-to-end rounds of the instrumentation bench: the variants each round runs in turn,
//! and the statistics printed over the rounds (per-statement wall and thread CPU time, each
//! variant's median difference from the bare pool, with the interquartile range).

use std::time::Duration;

/// The interleaved measurement's variants, in the order each round runs them.
pub const VARIANTS: [&str; 7] = [
    "sqlx_pool",
    "monitored_pool",
    "vitals",
    "vitals_spans",
    "vitals_otel_batch",
    "vitals_otel",
    "sqlx_hand_span_otel",
];

/// Rounds of the interleaved measurement, and statements per variant in each.
pub const ROUNDS: usize = 200;
pub const PER_ROUND: u64 = 400;

/// µs per statement of one variant's `PER_ROUND` statements: wall time, and the CPU time
/// the calling thread spent (`None` where `/proc/thread-self/schedstat` cannot be read).
pub async fn per_statement(run: impl std::future::Future<Output = Duration>) -> (f64, Option<f64>) {
    let cpu_before = thread_cpu_ns();
    let took = run.await;
    let cpu = match (cpu_before, thread_cpu_ns()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / 1e3 / PER_ROUND as f64),
        _ => None,
    };
    (took.as_secs_f64() * 1e6 / PER_ROUND as f64, cpu)
}

/// Nanoseconds this thread has run on a CPU (Linux's schedstat: the first field). The
/// current-thread runtime polls every statement, the observer, the logger, the metrics and
/// the span export on this thread, while SQLite runs on sqlx's worker thread: the difference
/// between two variants is what the instrumentation costs the caller, and time spent waiting
/// for a core on a loaded machine is not in it.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Prints the bare pool's median and each other variant's median difference from it in the
/// same round, with the rounds' interquartile range.
pub fn report(what: &str, runs: &mut [Vec<f64>; VARIANTS.len()]) {
    let diffs: Vec<Vec<f64>> = runs[1..]
        .iter()
        .map(|v| v.iter().zip(&runs[0]).map(|(x, bare)| x - bare).collect())
        .collect();
    let (bare, _, _) = quartiles(&mut runs[0]);
    println!(
        "  {what}: {} {bare:.2} µs per statement (median)",
        VARIANTS[0]
    );
    for (name, mut d) in VARIANTS[1..].iter().zip(diffs) {
        let (median, q1, q3) = quartiles(&mut d);
        println!(
            "    {name:<18} {median:+.2} µs per statement over {} (median of rounds; \
             IQR {q1:+.2} .. {q3:+.2})",
            VARIANTS[0]
        );
    }
}

/// Median, first and third quartile (sorts `xs`; the rounds are never empty).
pub fn quartiles(xs: &mut [f64]) -> (f64, f64, f64) {
    xs.sort_by(f64::total_cmp);
    let at = |q: f64| xs[((xs.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.25), at(0.75))
}
