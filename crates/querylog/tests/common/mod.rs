//! What the test files share: a PostgreSQL log line's prefix, and what the log-line path
//! makes of it.

/// A log line's prefix as PostgreSQL writes it (`log_line_prefix = '%m [%p] '`).
pub const PREFIX: &str = "2026-12-02 08:00:00.123 UTC [4242] STATEMENT:  ";
/// What the prefix becomes.
pub const PREFIX_OUT: &str = "[DATE] UTC [?] STATEMENT:  ";
