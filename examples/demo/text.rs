//! The report as text: the sections in the order the demo runs them, then the pool's
//! summary, the cache's statistics and the query performance report.

use super::*;

/// The report as text.
pub fn render_text(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(o, "vitals demo — {}; cache: {}", r.engine, r.redis.detail);
    let _ = writeln!(
        o,
        "School: {} students (seed {}), {} rows loaded in {}.",
        r.school.students,
        r.school.seed,
        r.school.tables.total(),
        fmt_ms(r.school.load_ms)
    );

    let c = &r.concurrent_requests;
    let _ = writeln!(
        o,
        "\n1. Concurrent requests — report: 10 max → 50 max, \"5x capacity\"\n   {} clients, {} requests per round, median of {} rounds; {} cores shared by the database and the demo.",
        c.clients, c.requests, c.rounds, c.cores
    );
    for l in &c.loads {
        let _ = writeln!(o, "   {} — {}", l.load, l.request);
        for p in [&l.small, &l.large] {
            let _ = writeln!(
                o,
                "     pool {:>3}: {:>7.0} req/s · latency {} · peak waiting {} · utilisation avg {:.0} % peak {:.0} % · acquire wait p50 {} (worst-window p95 {}){}{}",
                p.max_connections,
                p.throughput_rps,
                fmt_p(&p.latency),
                p.peak_waiting,
                p.avg_utilization_percent,
                p.peak_utilization_percent,
                fmt_ms(p.acquire_p50_ms),
                fmt_ms(p.acquire_p95_worst_window_ms),
                if p.alerts.is_empty() {
                    String::new()
                } else {
                    format!(
                        " · alerts {}",
                        p.alerts
                            .iter()
                            .map(|(k, n)| format!("{k}×{n}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
                if p.errors > 0 {
                    format!(" · {} errors", p.errors)
                } else {
                    String::new()
                }
            );
        }
        let _ = writeln!(o, "     → {}", l.verdict);
    }

    let _ = writeln!(
        o,
        "\n2. Imports — report: 100 records 15 s → 1.5 s, \"10x faster\"\n   input: 70 % vaccinations, 30 % allergies; 1 % unknown student, 1 % duplicates"
    );
    for i in &r.import {
        let rb = &i.row_by_row;
        let _ = writeln!(
            o,
            "   {:>6} records: one row at a time {}{} ({} statements) · importer {} ({} statements) → {:.1}x faster, {:.0}x fewer statements",
            i.records,
            fmt_ms(rb.ms),
            rb.extrapolated_from
                .map(|n| format!(" (extrapolated from {n} rows)"))
                .unwrap_or_default(),
            rb.statements,
            fmt_ms(i.importer.ms),
            i.importer.statements,
            i.speedup,
            rb.statements as f64 / (i.importer.statements.max(1)) as f64
        );
        let _ = writeln!(
            o,
            "          imported/duplicates/rejected: row at a time {}/{}/{}{} · importer {}/{}/{}",
            rb.imported,
            rb.duplicates,
            rb.rejected,
            if rb.extrapolated_from.is_some() {
                " (rows done)"
            } else {
                ""
            },
            i.importer.imported,
            i.importer.duplicates,
            i.importer.rejected
        );
    }

    let s = &r.health_summary;
    let _ = writeln!(
        o,
        "\n3. A student's health summary — report: 300 ms → <1 ms, \"300x faster\" (L2: 5-15 ms)\n   {} students sampled",
        s.students
    );
    let _ = writeln!(o, "   uncached (5 reads)  {}", fmt_p(&s.uncached));
    let _ = writeln!(o, "   miss + fill cache   {}", fmt_p(&s.miss_and_fill));
    let _ = writeln!(
        o,
        "   L1 hit              {} → {:.0}x faster than uncached",
        fmt_p(&s.l1_hit),
        s.l1_speedup
    );
    match (&s.l2_hit, s.l2_speedup) {
        (Some(p), Some(x)) => {
            let _ = writeln!(
                o,
                "   L2 hit (L1 cleared) {} → {:.1}x faster than uncached ({} L2 hits counted)",
                fmt_p(p),
                x,
                s.l2_hits_counted.unwrap_or(0)
            );
        }
        _ => {
            let _ = writeln!(o, "   L2 hit              not measured ({})", r.redis.mode);
        }
    }

    for (n, title, claim, cmp) in [
        (
            4,
            "The dashboard",
            "2 s → 300 ms, \"6.7x faster\"",
            &r.dashboard,
        ),
        (
            5,
            "Recent activities",
            "600 ms → 200 ms, \"3x faster\"",
            &r.recent_activities,
        ),
    ] {
        let _ = writeln!(
            o,
            "\n{n}. {title} — report: {claim}\n   {} ({} statements)",
            cmp.what, cmp.statements
        );
        let _ = writeln!(o, "   sequential  {}", fmt_p(&cmp.sequential));
        let _ = writeln!(
            o,
            "   parallel    {} → {:.2}x",
            fmt_p(&cmp.parallel),
            cmp.speedup
        );
    }

    let _ = writeln!(o, "\nSummary beside the report's table (medians)");
    let _ = writeln!(
        o,
        "   {:<30} {:<18} {:<13} Measured here",
        "Operation", "Report", "Report gain"
    );
    for row in &r.summary {
        let _ = writeln!(
            o,
            "   {:<30} {:<18} {:<13} {} — {}",
            row.operation,
            row.report,
            row.report_improvement,
            row.measured,
            row.measured_improvement
        );
    }
    if !r.notes.is_empty() {
        let _ = writeln!(o, "\nWhere the measurement differs from the report");
        for n in &r.notes {
            let _ = writeln!(o, "   - {n}");
        }
    }

    let _ = writeln!(o, "\nPool (the facade's pool, whole run)");
    match &r.pool_summary {
        Some(p) => {
            let _ = writeln!(
                o,
                "   {} samples · utilisation avg {:.0} % peak {:.0} % · peak waiting {} · alerts {}",
                p.samples,
                p.average_utilization_percent,
                p.peak_utilization_percent,
                p.peak_waiting.map_or("n/a".into(), |w| w.to_string()),
                p.alerts_by_kind.values().sum::<u64>()
            );
        }
        None => {
            let _ = writeln!(o, "   (no monitor)");
        }
    }
    let cs = &r.cache_stats;
    let _ = writeln!(
        o,
        "\nCache\n   hits {} (L1 {}, L2 {}) · misses {} · hit rate {:.1} % · sets {} · loads {} · L1 entries {} ({} bytes) · redis configured {} connected {} · redis errors {}",
        cs.hits,
        cs.l1_hits,
        cs.l2_hits,
        cs.misses,
        cs.hit_rate * if cs.hit_rate <= 1.0 { 100.0 } else { 1.0 },
        cs.sets,
        cs.loads,
        cs.l1_entries,
        cs.l1_bytes,
        cs.redis_configured,
        cs.redis_connected,
        cs.redis_errors
    );
    let _ = writeln!(o, "\nQuery performance report (sanitised)");
    for line in r.query_report.to_text().lines() {
        let _ = writeln!(o, "   {line}");
    }
    let _ = writeln!(o, "\nDone in {}.", fmt_ms(r.elapsed_ms));
    o
}
