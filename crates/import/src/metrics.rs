//! The importer's span and metrics: an `import` span around each run (a child of the
//! caller's span) with the run's counts, and `vitals_import_rows_total{outcome}` through the
//! `metrics` facade (feature `metrics`; without it, or with no recorder installed, a no-op).

use tracing::field::Empty;
use tracing::Span;

use crate::error::ImportError;
use crate::report::ImportReport;

/// The rows counter's name; `outcome` is `imported`, `duplicate` or `rejected`.
pub const ROWS_TOTAL: &str = "vitals_import_rows_total";

/// The span of one import run, its counts empty until it ends.
pub(crate) fn span() -> Span {
    tracing::info_span!(
        target: "vitals_import",
        "import",
        import.rows = Empty,
        import.imported = Empty,
        import.duplicates = Empty,
        import.rejected = Empty,
        import.statements = Empty,
        otel.status_code = Empty,
        error.type = Empty,
    )
}

/// Records a run's end on its span and in the rows counter.
pub(crate) fn finish(span: &Span, result: &Result<ImportReport, ImportError>) {
    match result {
        Ok(r) => {
            span.record("import.rows", signed(r.total));
            span.record("import.imported", signed(r.imported));
            span.record("import.duplicates", signed(r.duplicates));
            span.record("import.rejected", signed(r.rejected));
            span.record("import.statements", signed(r.queries));
            #[cfg(feature = "metrics")]
            for (outcome, n) in [
                ("imported", r.imported),
                ("duplicate", r.duplicates),
                ("rejected", r.rejected),
            ] {
                metrics::counter!(ROWS_TOTAL, "outcome" => outcome).increment(n);
            }
        }
        Err(_) => {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", "import");
        }
    }
}

/// A count as OpenTelemetry's integer (tracing-opentelemetry exports a u64 as a string).
fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Describes the rows counter to the installed recorder and registers it at zero, so a
/// scrape shows it before the first import.
pub fn describe_import_metrics() {
    #[cfg(feature = "metrics")]
    {
        metrics::describe_counter!(
            ROWS_TOTAL,
            "Imported rows by outcome (imported, duplicate, rejected)."
        );
        for outcome in ["imported", "duplicate", "rejected"] {
            metrics::counter!(ROWS_TOTAL, "outcome" => outcome).increment(0);
        }
    }
}
