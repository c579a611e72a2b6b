//! Property tests: random literals of every form the lexer knows, put into random statements
//! (glued to the word before them or not, whole or cut at a random point), never reach the
//! output of the sanitiser or of the log-line path, alone or in a log line; and no input makes
//! the sanitiser or the scrubber panic. `tests/token_forms.rs` holds the same forms as a table.
//!
//! Run with `cargo test -p vitals-querylog --test properties`.
use proptest::prelude::*;
use vitals_querylog::{sanitize_sql, scrub_log_line, scrub_text};

mod common;
use common::{PREFIX, PREFIX_OUT};

/// A secret that cannot occur in the statement's structure: `zq`, letters and digits, `qz`,
/// so a leak is found by a plain substring search.
fn secret() -> impl Strategy<Value = String> {
    "[a-z]{0,3}[0-9]{0,3}".prop_map(|s| format!("zq{s}qz"))
}

/// A secret as a literal of one of the forms of the token-form table. Most numeric forms are
/// made of `7`s (a leak is a run of `7`s, which the statements lack); two are made of the
/// secret's bytes as digits (a leak is a digit in the sanitised statement).
fn literal(s: &str, kind: u8) -> String {
    let hex: String = s
        .bytes()
        .map(|b| char::from(b"0123456789abcdef"[usize::from(b % 16)]))
        .collect();
    let digits: String = s.bytes().map(|b| char::from(b'0' + b % 10)).collect();
    match kind % 24 {
        0 => format!("'{s}'"),
        1 => format!("E'{s}\\'s'"),
        2 => format!("U&'{s}'"),
        3 => format!("U&'{s}' UESCAPE '!'"),
        4 => format!("B'{s}'"),
        5 => format!("X'{s}'"),
        6 => format!("N'{s}'"),
        7 => format!("$tag${s}$tag$"),
        8 => format!("$${s}$$"),
        9 => format!("'{s}'\n'{s}'"),
        10 => "7_777_777".to_string(),
        11 => "0x77_7F".to_string(),
        12 => "-0o777".to_string(),
        13 => "0b1_0111".to_string(),
        14 => "7_777.777_7e-7".to_string(),
        15 => ".777".to_string(),
        16 => format!("777{s}"),
        17 => format!("7.7e7{s}"),
        18 => format!(
            "77777777-{}-4777-8777-777777777777",
            &format!("{hex}7777")[..4]
        ),
        19 => format!("DATE '{s}'"),
        20 => "TRUE".to_string(),
        21 => format!("9{digits}"),
        22 => format!("-9{digits}.5e-3"),
        _ => format!("'{s}' /* {s} */ -- {s}\n"),
    }
}

/// Glue between a keyword, identifier or operator and the literal: none, or a
/// space. Only a string can be glued to a word before it (`LIKE'x'`): a word
/// glued to a number or a dollar quote is one identifier (`LIKE7`, `THEN$q$`),
/// in PostgreSQL too. Only the statements that name `t_2024` hold a digit.
fn statement(shape: u8, glue: &[bool], lits: &[String]) -> String {
    let gluable = |i: usize| lits[i].starts_with('\'');
    let g = |i: usize| if glue[i] && gluable(i) { "" } else { " " };
    let (a, b, c) = (&lits[0], &lits[1], &lits[2]);
    match shape % 8 {
        0 => format!(
            "SELECT * FROM students WHERE email ={}{a} AND id IN ({b}, {c})",
            if glue[0] { "" } else { " " }
        ),
        1 => format!("INSERT INTO allergies (a, b) VALUES ({a}, {b}), ({c}::text, {a})"),
        2 => format!(
            "UPDATE students SET name ={}{a}, dob = {b} WHERE id = {c}",
            g(0)
        ),
        3 => format!(
            "DELETE FROM notes WHERE body LIKE{}{a} OR x = ARRAY[{b}, {c}]",
            g(0)
        ),
        4 => format!(
            "SELECT CASE WHEN x THEN{}{a}ELSE{}{b}END, f({c}) FROM t",
            g(0),
            g(1)
        ),
        5 => format!("SELECT {a}::text AS \"Name\" FROM t_2024 WHERE y = {b} OR z IN ({c})"),
        6 => format!("INSERT INTO allergies (a, b) VALUES ({a}, {b}), ({c}, {a})"),
        _ => format!("SELECT {a}::text, f({b}) FROM t_2024 /* {c} */ WHERE y = {c}"),
    }
}

fn leaks(out: &str) -> bool {
    out.contains("zq") || out.contains("qz") || out.contains("77")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// For any statement with literals of the table's forms, glued or not, no
    /// literal's content survives the sanitiser, the log-line path (alone and
    /// in a log line) or the fingerprint's input.
    #[test]
    fn no_literal_survives_any_path(
        secrets in proptest::collection::vec(secret(), 3),
        kinds in proptest::collection::vec(any::<u8>(), 3),
        glue in proptest::collection::vec(any::<bool>(), 2),
        shape in any::<u8>(),
    ) {
        let lits: Vec<String> = secrets.iter().zip(&kinds).map(|(s, k)| literal(s, *k)).collect();
        let sql = statement(shape, &glue, &lits);
        let out = sanitize_sql(&sql);
        prop_assert!(!leaks(&out), "{sql:?} -> {out:?}");
        prop_assert!(out.contains("t_2024") || !out.chars().any(|c| c.is_ascii_digit()), "{sql:?} -> {out:?}");
        let alone = scrub_log_line(&sql);
        prop_assert!(!leaks(&alone), "{sql:?} -> {alone:?}");
        let line = scrub_log_line(&format!("{PREFIX}{sql}"));
        prop_assert!(!leaks(&line), "{sql:?} -> {line:?}");
        prop_assert_eq!(line, format!("{PREFIX_OUT}{alone}"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn truncated_statements_fail_closed(
        secret in secret(),
        kind in any::<u8>(),
        glue in proptest::collection::vec(any::<bool>(), 2),
        shape in any::<u8>(),
        cut in 0usize..200,
    ) {
        let lits = vec![literal(&secret, kind), literal(&secret, kind.wrapping_add(1)), literal(&secret, kind.wrapping_add(2))];
        let sql = statement(shape, &glue, &lits);
        let mut end = cut.min(sql.len());
        while !sql.is_char_boundary(end) {
            end -= 1;
        }
        let out = sanitize_sql(&sql[..end]);
        // A cut inside a literal may leave part of the secret before the cut.
        prop_assert!(!out.contains("zq") && !out.contains("qz"), "{} -> {out}", &sql[..end]);
    }

    #[test]
    fn arbitrary_input_never_panics(s in "\\PC{0,80}", raw in proptest::collection::vec(any::<u8>(), 0..80)) {
        let _ = sanitize_sql(&s);
        let _ = scrub_text(&s);
        let _ = scrub_log_line(&s);
        let lossy = String::from_utf8_lossy(&raw);
        let _ = sanitize_sql(&lossy);
        let _ = scrub_log_line(&lossy);
    }

    #[test]
    fn sql_shaped_noise_never_panics(s in "[ '\"$a-z0-9(),.;:*/\\-\\\\\\[\\]E&U+=<>?\n]{0,60}") {
        let _ = sanitize_sql(&s);
        let _ = scrub_log_line(&s);
    }
}
