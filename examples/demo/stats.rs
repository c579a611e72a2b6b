//! Milliseconds, medians and percentiles, and how they are written.

use super::*;

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub(crate) fn fmt_ms(v: f64) -> String {
    if v >= 1_000.0 {
        format!("{:.2} s", v / 1e3)
    } else if v >= 10.0 {
        format!("{v:.0} ms")
    } else if v >= 1.0 {
        format!("{v:.2} ms")
    } else {
        format!("{:.1} µs", v * 1e3)
    }
}

pub(crate) fn median(v: &mut [f64]) -> f64 {
    percentile_sorted(sort(v), 0.5)
}

pub(crate) fn sort(v: &mut [f64]) -> &[f64] {
    v.sort_by(f64::total_cmp);
    v
}

pub(crate) fn percentile_sorted(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    v[i.min(v.len() - 1)]
}

pub(crate) fn percentiles(v: &mut [f64]) -> Percentiles {
    let s = sort(v);
    Percentiles {
        count: s.len(),
        p50_ms: percentile_sorted(s, 0.5),
        p95_ms: percentile_sorted(s, 0.95),
        p99_ms: percentile_sorted(s, 0.99),
    }
}

pub(crate) fn fmt_p(p: &Percentiles) -> String {
    format!(
        "p50 {} · p95 {} · p99 {} (n={})",
        fmt_ms(p.p50_ms),
        fmt_ms(p.p95_ms),
        fmt_ms(p.p99_ms),
        p.count
    )
}
