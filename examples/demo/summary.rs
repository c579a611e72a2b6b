//! The summary table (measured beside the report's estimate) and the readings that qualify
//! or contradict it.

use super::*;

pub(crate) fn summary_rows(
    concurrent: &ConcurrentSection,
    import: &[ImportRow],
    summary: &SummarySection,
    dashboard: &Comparison,
    recent: &Comparison,
) -> Vec<SummaryRow> {
    let mut rows = Vec::new();
    let measured = concurrent
        .loads
        .iter()
        .map(|l| {
            format!(
                "{}: {:.0} → {:.0} req/s",
                l.load, l.small.throughput_rps, l.large.throughput_rps
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let ratios = concurrent
        .loads
        .iter()
        .map(|l| format!("{:.2}x {}", l.throughput_ratio, l.load))
        .collect::<Vec<_>>()
        .join(", ");
    rows.push(SummaryRow {
        operation: "Concurrent Requests",
        report: "10 max → 50 max",
        report_improvement: "5x capacity",
        measured,
        measured_improvement: ratios,
    });
    let hundred = import.iter().position(|i| i.records == 100).unwrap_or(0);
    if let Some(first) = import.get(hundred) {
        rows.push(SummaryRow {
            operation: "Import 100 Records",
            report: "15s → 1.5s",
            report_improvement: "10x faster",
            measured: format!(
                "{} records: {} → {} ({} → {} statements)",
                first.records,
                fmt_ms(first.row_by_row.ms),
                fmt_ms(first.importer.ms),
                first.row_by_row.statements,
                first.importer.statements
            ),
            measured_improvement: format!("{:.1}x faster", first.speedup),
        });
    }
    for extra in import
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != hundred)
        .map(|(_, x)| x)
    {
        rows.push(SummaryRow {
            operation: if extra.records > 100 {
                "Import (larger)"
            } else {
                "Import (smaller)"
            },
            report: "—",
            report_improvement: "10x faster",
            measured: format!(
                "{} records: {}{} → {} ({} → {} statements)",
                extra.records,
                fmt_ms(extra.row_by_row.ms),
                if extra.row_by_row.extrapolated_from.is_some() {
                    " (extrapolated)"
                } else {
                    ""
                },
                fmt_ms(extra.importer.ms),
                extra.row_by_row.statements,
                extra.importer.statements
            ),
            measured_improvement: format!("{:.1}x faster", extra.speedup),
        });
    }
    rows.push(SummaryRow {
        operation: "Student Health Query (cached)",
        report: "300ms → <1ms",
        report_improvement: "300x faster",
        measured: format!(
            "{} → L1 {}{}",
            fmt_ms(summary.uncached.p50_ms),
            fmt_ms(summary.l1_hit.p50_ms),
            summary
                .l2_hit
                .map(|p| format!(", L2 {}", fmt_ms(p.p50_ms)))
                .unwrap_or_default()
        ),
        measured_improvement: format!(
            "{:.0}x (L1){}",
            summary.l1_speedup,
            summary
                .l2_speedup
                .map(|r| format!(", {r:.1}x (L2)"))
                .unwrap_or_default()
        ),
    });
    rows.push(sequential_then_parallel(
        "Dashboard Load",
        "2s → 300ms",
        "6.7x faster",
        dashboard,
    ));
    rows.push(sequential_then_parallel(
        "Recent Activities Query",
        "600ms → 200ms",
        "3x faster",
        recent,
    ));
    rows
}

/// The row of a sequential-versus-parallel comparison: the two medians and the speed-up.
fn sequential_then_parallel(
    operation: &'static str,
    report: &'static str,
    report_improvement: &'static str,
    measured: &Comparison,
) -> SummaryRow {
    SummaryRow {
        operation,
        report,
        report_improvement,
        measured: format!(
            "{} → {}",
            fmt_ms(measured.sequential.p50_ms),
            fmt_ms(measured.parallel.p50_ms)
        ),
        measured_improvement: format!("{:.2}x", measured.speedup),
    }
}

/// Adds the readings that qualify or contradict the report to `report.notes`.
pub(crate) fn add_readings(report: &mut Report) {
    let mut extra = Vec::new();
    if let Some(first) = report.import.first() {
        if first.speedup < 10.0 {
            extra.push(format!(
                "Import {} records: the importer is {:.1}x faster than one row at a time here, \
                 short of the report's 10x; the statements fall {} → {}.",
                first.records,
                first.speedup,
                first.row_by_row.statements,
                first.importer.statements
            ));
        }
    }
    let s = &report.health_summary;
    if s.uncached.p50_ms < 30.0 {
        extra.push(format!(
            "Health summary: uncached it takes {} here, not the report's 300 ms (a local \
             database and indexed reads); L1 still answers {:.0}x faster.",
            fmt_ms(s.uncached.p50_ms),
            s.l1_speedup
        ));
    }
    if let Some(r) = s.l2_speedup {
        if r < 1.5 {
            extra.push(format!(
                "Health summary, L2: a Redis hit ({}) is no faster than the database read \
                 ({}) on this machine; L2 pays off when the database is remote or loaded.",
                fmt_ms(s.l2_hit.map_or(0.0, |p| p.p50_ms)),
                fmt_ms(s.uncached.p50_ms)
            ));
        }
    }
    for (label, c, claim) in [
        ("Dashboard", &report.dashboard, 6.7),
        ("Recent activities", &report.recent_activities, 3.0),
    ] {
        if c.speedup < 1.1 {
            extra.push(format!(
                "{label}: parallel is no faster than sequential here ({} against {}): each read \
                 takes well under a millisecond on {} cores, so there is little waiting to overlap \
                 (the report assumed {claim}x with 200 ms reads).",
                fmt_ms(c.parallel.p50_ms),
                fmt_ms(c.sequential.p50_ms),
                report.concurrent_requests.cores
            ));
        } else if c.speedup < claim * 0.8 {
            extra.push(format!(
                "{label}: parallel is {:.2}x faster here, short of the report's {claim}x{}.",
                c.speedup,
                if label == "Dashboard" {
                    " (whose figure also counts on 80 % of the dashboard being cached)"
                } else {
                    ""
                }
            ));
        }
    }
    report.notes.extend(extra);
}
