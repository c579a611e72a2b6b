//! The SQL part of a log line: where it starts and ends, and its literals masked in place
//! by the sanitiser's own lexer (layout kept).

use super::held::Held;
use super::rules::scrub_typed;
use crate::sanitize::lexer::{is, Kind, Lexer, IDENT_CONT};
use crate::sanitize::quoted_value::QuotedValues;

/// Words that make an apostrophe glued to them a quote (`LIKE'%x%'`), and that
/// start a SQL region of a log line.
pub(super) fn sql_word(word: &[u8]) -> Option<SqlWord> {
    let mut up = [0u8; 10];
    if word.len() > up.len() {
        return None;
    }
    for (d, s) in up.iter_mut().zip(word) {
        *d = s.to_ascii_uppercase();
    }
    match &up[..word.len()] {
        b"SELECT" | b"INSERT" | b"UPDATE" | b"DELETE" | b"WITH" | b"VALUES" | b"MERGE"
        | b"CREATE" | b"ALTER" | b"DROP" | b"TRUNCATE" | b"EXPLAIN" | b"CALL" | b"PREPARE"
        | b"EXECUTE" | b"DECLARE" | b"GRANT" | b"REVOKE" | b"DO" => Some(SqlWord::Statement),
        b"WHERE" | b"FROM" | b"AND" | b"OR" | b"CASE" | b"WHEN" | b"THEN" | b"ELSE" | b"LIKE"
        | b"ILIKE" | b"HAVING" | b"JOIN" | b"ON" | b"ORDER" | b"GROUP" | b"LIMIT" | b"OFFSET"
        | b"RETURNING" | b"INTO" | b"BETWEEN" | b"IN" | b"IS" | b"NOT" | b"SET" | b"ESCAPE"
        | b"SIMILAR" | b"ANY" | b"ALL" => Some(SqlWord::Clause),
        _ => None,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum SqlWord {
    Statement,
    Clause,
}

/// Where the SQL of a log line starts, and where it ends: at a SQL keyword
/// written upper case (`… STATEMENT:  INSERT …`, `WHERE a LIKE'x'`), or at one
/// in any case at the start of the text or after `:` (`statement: select …`);
/// inside `"…"` (`SQL statement "…"`) it ends at the line's last `"`, else at
/// the end of the text.
pub(super) fn sql_region(text: &str) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_alphabetic() || (i > 0 && is(IDENT_CONT, b[i - 1])) {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < b.len() && is(IDENT_CONT, b[j]) {
            j += 1;
        }
        let word = &b[i..j];
        if sql_word(word).is_some() {
            let upper = word.iter().all(|c| !c.is_ascii_lowercase());
            let before = text[..i].trim_end();
            let after_quote = before.ends_with('"');
            if upper || before.is_empty() || before.ends_with(':') || after_quote {
                let end = if after_quote {
                    let line_end = b[i..]
                        .iter()
                        .position(|&x| x == b'\n')
                        .map_or(b.len(), |p| i + p);
                    b[i..line_end]
                        .iter()
                        .rposition(|&x| x == b'"')
                        .map_or(b.len(), |p| i + p)
                } else {
                    b.len()
                };
                return Some((i, end));
            }
        }
        i = j;
    }
    None
}

/// Masks the literals of SQL text while keeping its layout, with the one lexer
/// of [`crate::sanitize_sql`]: every literal it masks becomes `?` here too
/// (strings of every form, numbers of every form, junk numbers, UUIDs,
/// `TRUE`/`FALSE`), comments (`--` and `/* */` alike) are removed, quoted
/// identifiers are held (their typed values masked). Input that ends inside a
/// construct is `?` to the end.
pub(super) fn mask_sql_region(sql: &str, out: &mut String, held: &mut Held) {
    let b = sql.as_bytes();
    let mut dropped_comment = false;
    let mask = |out: &mut String, end: usize| {
        if out.as_bytes().last().is_some_and(|&c| is(IDENT_CONT, c)) {
            out.push(' ');
        }
        out.push('?');
        if b.get(end).is_some_and(|&c| is(IDENT_CONT, c) || c == b'\'') {
            out.push(' ');
        }
    };
    // Where the last string's mask ended, while only blanks and comments follow:
    // `'a'\n'b'` is one continued string, one mask.
    let mut str_end: Option<usize> = None;
    let mut quoted = QuotedValues::for_sql(sql);
    for t in Lexer::new(sql) {
        let text = &sql[t.start..t.end];
        if t.kind != Kind::Space {
            dropped_comment = false;
        }
        let quoted_value = quoted.masks(&t, sql);
        match (t.kind, str_end) {
            (Kind::Str, Some(end)) => {
                out.truncate(end);
                continue;
            }
            (Kind::Space | Kind::Comment, _) => {}
            _ => str_end = None,
        }
        match t.kind {
            Kind::Comment => {
                let glue = out
                    .as_bytes()
                    .last()
                    .is_some_and(|c| !c.is_ascii_whitespace())
                    && b.get(t.end).is_some_and(|c| !c.is_ascii_whitespace());
                if glue {
                    out.push(' ');
                }
                dropped_comment = true;
            }
            Kind::Str => {
                mask(out, t.end);
                str_end = Some(out.len());
            }
            Kind::Number => mask(out, t.end),
            Kind::Word
                if text.eq_ignore_ascii_case("true") || text.eq_ignore_ascii_case("false") =>
            {
                mask(out, t.end);
            }
            // SQLite's double-quoted string where a value stands (`quoted_value.rs`).
            Kind::QuotedIdent if quoted_value => mask(out, t.end),
            Kind::QuotedIdent => held.hold(scrub_typed(text), out),
            Kind::Unterminated => {
                mask(out, t.end);
                return;
            }
            _ => out.push_str(text),
        }
    }
    if dropped_comment {
        // A comment at the end leaves no trailing blank.
        let keep = out.trim_end().len();
        out.truncate(keep);
    }
}
