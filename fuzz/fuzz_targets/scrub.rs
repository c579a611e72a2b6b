//! The free-text scrubber and the log-line scrubber never panic, and the value of a
//! PostgreSQL `Key (…)=(…)` DETAIL never survives, also when the column list holds
//! parentheses (an expression index).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vitals_querylog::{scrub_log_line, scrub_text};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = scrub_text(&text);
    let _ = scrub_log_line(&text);
    // A DETAIL line's value: anything without a line break or a closing parenthesis.
    let value: String = text.chars().filter(|c| *c != '\n' && *c != ')').collect();
    let detail = format!("DETAIL:  Key (email)=(zqMARKqz{value}) already exists.");
    let out = scrub_text(&detail);
    assert!(
        !out.contains("zqMARKqz"),
        "DETAIL value survived: {detail:?} -> {out:?}"
    );
    // Parentheses in the column list (an expression index), and the log-line path.
    let detail = format!(
        "DETAIL:  Key (student_id, lower(TRIM(BOTH FROM allergen)))=(zqMARKqz{value}) already exists."
    );
    for out in [scrub_text(&detail), scrub_log_line(&detail)] {
        assert!(
            !out.contains("zqMARKqz"),
            "DETAIL value survived: {detail:?} -> {out:?}"
        );
    }
});
