//! The SQL sanitiser never panics, and a string literal holding the input never survives it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vitals_querylog::sanitize_sql;

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
        format!(
            "INSERT INTO t VALUES ($q$zqMARKqz{}$q$)",
            text.replace("$q$", "")
        ),
    ] {
        let out = sanitize_sql(&sql);
        assert!(
            !out.contains("zqMARKqz"),
            "literal survived: {sql:?} -> {out:?}"
        );
    }
});
