//! Property tests: random literals put into random statements never appear in
//! the sanitiser's output, and neither the sanitiser nor the scrubber panics.
use proptest::prelude::*;
use vitals_querylog::{sanitize_sql, scrub_log_line, scrub_text};

/// A secret that cannot occur in the statement's structure: `zq` then digits and
/// letters, so a leak is found by a plain substring search.
fn secret() -> impl Strategy<Value = String> {
    "[a-z]{0,3}[0-9]{0,3}".prop_map(|s| format!("zq{s}qz"))
}

/// A literal of some PostgreSQL kind holding `s`.
fn literal(s: &str, kind: u8) -> String {
    let digits: String = s.bytes().map(|b| char::from(b'0' + b % 10)).collect();
    match kind % 9 {
        0 => format!("'{}'", s.replace('\'', "''")),
        1 => format!("E'{s}\\'s'"),
        2 => format!("U&'{s}'"),
        3 => format!("$tag${s}$tag$"),
        4 => format!("$${s}$$"),
        5 => format!("9{digits}"),
        6 => format!("-9{digits}.5e-3"),
        7 => format!("DATE '{s}'"),
        _ => format!("'{s}' /* {s} */ -- {s}\n"),
    }
}

fn statement(kind: u8, lits: &[String]) -> String {
    let a = &lits[0];
    let b = &lits[1];
    let c = &lits[2];
    match kind % 5 {
        0 => format!("SELECT * FROM students WHERE email = {a} AND id IN ({b}, {c})"),
        1 => format!("INSERT INTO allergies (a, b) VALUES ({a}, {b}), ({c}, {a})"),
        2 => format!("UPDATE students SET name = {a}, dob = {b} WHERE id = {c}"),
        3 => format!("DELETE FROM notes WHERE body LIKE {a} OR x = ARRAY[{b}, {c}]"),
        _ => format!("SELECT {a}::text, f({b}) FROM t_2024 /* {c} */ WHERE y = {c}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn literals_never_reach_the_output(
        secrets in proptest::collection::vec(secret(), 3),
        kinds in proptest::collection::vec(any::<u8>(), 3),
        shape in any::<u8>(),
    ) {
        let lits: Vec<String> = secrets.iter().zip(&kinds).map(|(s, k)| literal(s, *k)).collect();
        let sql = statement(shape, &lits);
        let out = sanitize_sql(&sql);
        prop_assert!(!out.contains("zq"), "{sql} -> {out}");
        prop_assert!(!out.chars().any(|c| c.is_ascii_digit() && !out.contains("t_2024")), "{sql} -> {out}");
        let line = scrub_log_line(&sql);
        prop_assert!(!line.contains("zq"), "{sql} -> {line}");
    }

    #[test]
    fn truncated_statements_fail_closed(
        secret in secret(),
        kind in any::<u8>(),
        shape in any::<u8>(),
        cut in 0usize..200,
    ) {
        let lits = vec![literal(&secret, kind), literal(&secret, kind.wrapping_add(1)), literal(&secret, kind.wrapping_add(2))];
        let sql = statement(shape, &lits);
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
