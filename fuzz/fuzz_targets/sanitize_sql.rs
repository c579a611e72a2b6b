//! The SQL sanitiser never panics, and a string literal holding the input never survives it
//! (alone or glued to a keyword, in every string form); nor does the log-line path, where
//! the statement follows a log line's prefix.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vitals_querylog::{sanitize_sql, scrub_log_line};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Any input: no panic.
    let _ = sanitize_sql(&text);
    // The input as the content of a literal (quotes doubled), marked so a leak is found by
    // a substring search: the marker must not reach the output.
    let escaped = text.replace('\'', "''");
    for sql in [
        format!("SELECT * FROM students WHERE last_name = 'zqMARKqz{escaped}'"),
        format!(
            "UPDATE t SET note = E'zqMARKqz{}' WHERE id = 1",
            text.replace('\\', "\\\\").replace('\'', "\\'")
        ),
        format!("INSERT INTO t VALUES ($q$zqMARKqz{}$q$)", without_tag(&text)),
        // Glued to a keyword, and the forms without backslash escapes.
        format!("SELECT a FROM t WHERE b LIKE'zqMARKqz{escaped}'"),
        format!("SELECT CASE WHEN x THEN'zqMARKqz{escaped}'ELSE'b'END"),
        format!("SELECT U&'zqMARKqz{escaped}' UESCAPE '!'"),
        format!("SELECT X'zqMARKqz{escaped}', N'zqMARKqz{escaped}'"),
    ] {
        let out = sanitize_sql(&sql);
        assert!(
            !out.contains("zqMARKqz"),
            "literal survived: {sql:?} -> {out:?}"
        );
        if !text.contains(['z', 'q']) {
            // The log-line path (its SQL starts at `SELECT`/`UPDATE`/`INSERT`).
            let line = scrub_log_line(&format!("2026-12-02 08:00:00 UTC [1] STATEMENT:  {sql}"));
            assert!(
                !line.contains("zqMARKqz"),
                "literal survived the log line: {sql:?} -> {line:?}"
            );
        }
    }
});

/// The input with no `$q$` left in it, so the dollar quote above ends where the harness put
/// its end. One `replace` is not enough: removing `$q$` from `$$q$q$` forms another.
fn without_tag(text: &str) -> String {
    let mut t = text.to_owned();
    while t.contains("$q$") {
        t = t.replace("$q$", "");
    }
    t
}
