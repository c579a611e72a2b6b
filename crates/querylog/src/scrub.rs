//! The free-text scrubber (for what is not SQL: database errors, DETAIL lines,
//! messages) and the log-line pass that runs a layout-preserving SQL literal
//! mask first and the free-text scrubber second.

use std::borrow::Cow;
use std::sync::OnceLock;

use regex::{Captures, Regex};

use crate::sanitize::lexer::{
    dollar_tag, find, is_ident_cont, scan_block_comment, scan_escape_string, scan_number,
    scan_quoted, scan_standard_string, uuid_at, Kind, Lexer,
};

/// One rule: a pattern, and what a match becomes (`None` keeps the match).
struct Rule {
    re: Regex,
    replace: fn(&Captures<'_>) -> Option<String>,
}

struct Rules {
    rules: Vec<Rule>,
}

fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(|| {
        let mut rules = Vec::new();
        let mut add = |pattern: &str, replace: fn(&Captures<'_>) -> Option<String>| {
            // The patterns are constants of this file, tested below; a pattern that
            // does not compile is skipped rather than panicking in a library.
            if let Ok(re) = Regex::new(pattern) {
                rules.push(Rule { re, replace });
            }
        };
        // PostgreSQL DETAIL shapes: every value inside is data.
        add(r"(Key \([^)\n]*\)=\()[^\n]*\)", |c| Some(format!("{}[VALUE])", &c[1])));
        add(r"(?i)(Failing row contains \()[^\n]*\)", |c| Some(format!("{}[ROW])", &c[1])));
        add(r"(?i)(Array value must start with |input syntax for [^:\n]*: |value for [^:\n]*: |out of range: |near |: )(?:'[^'\n]*'|\x22[^\x22\n]*\x22)", |c| {
            Some(format!("{}[VALUE]", &c[1]))
        });
        // Quoted values in messages; an apostrophe after a letter is not a quote.
        add(r"(^|[^\w'])'[^'\n]*'", |c| Some(format!("{}'[VALUE]'", &c[1])));
        add(r"[\w.%+\-]+@[\w\-]+(?:\.[\w\-]+)+", |_| Some("[EMAIL]".into()));
        add(r"\b(?:\d{1,3}\.){3}\d{1,3}\b", |c| {
            let ok = c[0].split('.').all(|p| p.parse::<u16>().is_ok_and(|v| v <= 255));
            ok.then(|| "[IPV4]".into())
        });
        add(
            r"\b\d{4}-\d{1,2}-\d{1,2}(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?\b",
            |_| Some("[DATE]".into()),
        );
        add(r"\b\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b", |_| Some("[DATE]".into()));
        add(
            r"(?i)\b(?:\d{1,2}(?:st|nd|rd|th)? )?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?(?: \d{1,2}(?:st|nd|rd|th)?,?)? \d{4}\b",
            |_| Some("[DATE]".into()),
        );
        add(r"\b\d{3}[- .]?\d{2}[- .]?\d{4}\b", |c| valid_ssn(&c[0]).then(|| "[SSN]".into()));
        add(r"\b(?:\d[ -]?){12,18}\d\b", |c| luhn(&c[0]).then(|| "[CARD]".into()));
        add(
            r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{3}\)|\b\d{3})[ .-]?\d{3}[ .-]?\d{4}\b",
            |_| Some("[PHONE]".into()),
        );
        add(
            r"(?i)\b(mrn|medical record(?: number| no\.?)?|patient id|member id|subscriber id|policy(?: number| no\.?)?|insurance id|medicaid id|medicare id|group number)(\s*[:#=]?\s*)[A-Z0-9][A-Z0-9\-]{3,}\b",
            |c| Some(format!("{}{}[MRN]", &c[1], &c[2])),
        );
        add(r"\b[A-Z]{1,4}-?\d{5,}\b", |_| Some("[MRN]".into()));
        Rules { rules }
    })
}

/// Presidio's checks for a US social security number: no mixed separators, not
/// all one digit, group not `00`, serial not `0000`, area not `000` or `666`,
/// and not one of the well-known sample numbers.
fn valid_ssn(text: &str) -> bool {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_digit).collect();
    let seps: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_digit()).collect();
    if digits.len() != 9 || (seps.len() == 2 && seps[0] != seps[1]) || seps.len() == 1 {
        return false;
    }
    if digits.iter().all(|d| *d == digits[0]) {
        return false;
    }
    if &digits[3..5] == b"00" || &digits[5..] == b"0000" {
        return false;
    }
    for sample in [&b"000"[..], b"666", b"123456789", b"98765432", b"078051120"] {
        if digits.starts_with(sample) {
            return false;
        }
    }
    true
}

/// The Luhn check of a card number (separators ignored), 13 to 19 digits.
fn luhn(text: &str) -> bool {
    let digits: Vec<u32> = text.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

/// Scrubs free text (database errors, DETAIL lines, messages): each value it
/// recognises becomes a typed mask, and every other standalone number becomes `?`.
///
/// Masks, in order: the values of `Key (…)=(…)` (the column list may hold
/// parentheses: expression indexes) and `Failing row contains (…)` (`[VALUE]`,
/// `[ROW]`), quoted values (`'[VALUE]'`, and `"…"` after `: ` or `near `),
/// `[UUID]`, `[EMAIL]`, `[IPV4]`, `[DATE]`, `[SSN]` (with or without
/// separators, checked like Presidio's recogniser), `[CARD]` (Luhn), `[PHONE]`,
/// `[MRN]` (labelled record, member, policy and insurance ids, and
/// letter-prefixed digit ids), then any remaining standalone number (every
/// PostgreSQL form: `0x1EEE_FFFF`, `0b101`, `1_000.000_005`, `.5`). Words are
/// kept: a name in running text that is neither quoted nor in a DETAIL line is
/// not recognised.
///
/// Kept as structure, because they are: SQLSTATE codes (`SQLSTATE 23505`,
/// `ERROR:  23505:`), errno (`os error 111`), migration versions
/// (`migration 20261129000001`), a port after a masked host (`[IPV4]:5432`,
/// `localhost:5432`) and identifiers in double quotes after the object they
/// name (`relation "t_2024"`, `column "34567890"`; a typed value inside one,
/// such as an SSN, is still masked).
///
/// ```
/// use vitals_querylog::scrub_text;
///
/// let detail = "DETAIL:  Key (email)=(ann.lee@example.com) already exists.";
/// assert_eq!(scrub_text(detail), "DETAIL:  Key (email)=([VALUE]) already exists.");
/// assert_eq!(scrub_text("ssn 219099999, call 555-867-5309"), "ssn [SSN], call [PHONE]");
/// assert_eq!(
///     scrub_text("connect to 10.0.0.7:5432 failed (os error 111)"),
///     "connect to [IPV4]:5432 failed (os error 111)"
/// );
/// ```
#[must_use]
pub fn scrub_text(text: &str) -> String {
    let text = without_private_use(text);
    let mut held = Held::default();
    let text = mask_details(&text, &mut held);
    let text = protect_structure(&text, &mut held);
    held.restore(&scrub_free(&text))
}

/// The rules, then the number pass: the free-text scrubber without the
/// structure it keeps.
fn scrub_free(text: &str) -> String {
    mask_numbers(&scrub_typed(text))
}

/// Only the typed rules (no number pass): what a kept quoted identifier goes
/// through, so `"34567890"` stays and `"219099999"` becomes `"[SSN]"`.
fn scrub_typed(text: &str) -> String {
    let uuids = mask_uuids(text);
    let mut cur: Cow<'_, str> = Cow::Borrowed(&uuids);
    for rule in &rules().rules {
        let replaced = rule.re.replace_all(&cur, |c: &Captures<'_>| {
            (rule.replace)(c).unwrap_or_else(|| c[0].to_string())
        });
        if let Cow::Owned(s) = replaced {
            cur = Cow::Owned(s);
        }
    }
    cur.into_owned()
}

/// The first of the private-use characters that stand for held spans.
const HELD_BASE: u32 = 0xE000;
/// How many spans can be held (the private-use area U+E000..U+F8FF); beyond,
/// a span is scrubbed like the rest (fail closed).
const HELD_MAX: usize = 0x1900;

fn is_held_char(c: char) -> bool {
    ('\u{E000}'..='\u{F8FF}').contains(&c)
}

/// Private-use characters of the input become `?`, so that a held span's
/// stand-in is never confused with input.
fn without_private_use(text: &str) -> Cow<'_, str> {
    // All of U+E000..U+F8FF encode with lead byte 0xEE or 0xEF.
    if !text.bytes().any(|b| b == 0xEE || b == 0xEF) || !text.chars().any(is_held_char) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| if is_held_char(c) { '?' } else { c })
            .collect(),
    )
}

/// Spans already masked or known to be structure, held out of the rules: each
/// stands in the text as one private-use character until [`Held::restore`].
#[derive(Default)]
struct Held {
    spans: Vec<String>,
}

impl Held {
    /// Writes `span` to `out` as its stand-in (or as itself once full).
    fn hold(&mut self, span: String, out: &mut String) {
        let stand_in = u32::try_from(self.spans.len())
            .ok()
            .filter(|k| (*k as usize) < HELD_MAX)
            .and_then(|k| char::from_u32(HELD_BASE + k));
        match stand_in {
            Some(c) => {
                self.spans.push(span);
                out.push(c);
            }
            None => out.push_str(&span),
        }
    }

    fn restore(&self, text: &str) -> String {
        if self.spans.is_empty() {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            let span = is_held_char(c)
                .then(|| (c as u32 - HELD_BASE) as usize)
                .and_then(|k| self.spans.get(k));
            match span {
                Some(s) => out.push_str(s),
                None => out.push(c),
            }
        }
        out
    }
}

fn detail_starts() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    // A constant pattern, tested below; if it did not compile, the `Key` and
    // `Failing row` rules of `rules()` would still mask the values.
    RE.get_or_init(|| Regex::new(r"(?i)\b(?:key \(|failing row contains \()").ok())
        .as_ref()
}

/// The offset of the `)` that closes the `(` just before `i`, skipping quoted
/// text; `None` if it does not close on this line.
fn closing_paren(b: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 1usize;
    while i < b.len() {
        match b[i] {
            b'\n' => return None,
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            b'"' | b'\'' => {
                let q = b[i];
                let end = b[i + 1..].iter().position(|&x| x == q || x == b'\n')?;
                i += end + 1;
                if b[i] == b'\n' {
                    return None;
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// PostgreSQL's DETAIL shapes for constraints and expression indexes, masked
/// and held: `Key (cols)=(values)` (the columns may be expressions, their
/// literals masked; the values, to the last `)` of the line, become `[VALUE]`;
/// `… conflicts with existing key (…)=(…)` is inside that), and
/// `Failing row contains (…)` → `[ROW]`.
fn mask_details<'a>(text: &'a str, held: &mut Held) -> Cow<'a, str> {
    let Some(re) = detail_starts() else {
        return Cow::Borrowed(text);
    };
    if !re.is_match(text) {
        return Cow::Borrowed(text);
    }
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(m) = re.find_at(text, from) {
        let open = m.end(); // just past `(`
        let line_end = b[open..]
            .iter()
            .position(|&x| x == b'\n')
            .map_or(b.len(), |p| open + p);
        let last_close = b[open..line_end]
            .iter()
            .rposition(|&x| x == b')')
            .map(|p| open + p);
        let is_key = b[m.start()].eq_ignore_ascii_case(&b'k');
        let mut span = String::new();
        let end = if is_key {
            let Some(close) = closing_paren(b, open) else {
                from = open;
                continue;
            };
            if b.get(close + 1..close + 3) != Some(b"=(") {
                from = open;
                continue;
            }
            span.push_str(&text[m.start()..open]);
            mask_sql_region(&text[open..close], &mut span, held);
            span.push_str(")=([VALUE]");
            match last_close.filter(|&c| c > close + 2) {
                Some(c) => c,
                None => line_end,
            }
        } else {
            span.push_str(&text[m.start()..open]);
            span.push_str("[ROW]");
            last_close.unwrap_or(line_end)
        };
        out.push_str(&text[copied..m.start()]);
        held.hold(span, &mut out);
        copied = end;
        from = end;
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

fn structure_re() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(concat!(
            r#"(?i)\b(?:relation|column|table|constraint|index|type|function|procedure|schema|database|role|user|sequence|view|trigger|extension|operator|cursor|savepoint|statement|portal|policy|publication|subscription|tablespace|collation|domain|server|rule|aggregate)\s+("(?:[^"\n]|"")*")"#,
            r"|(?P<s>\bSQLSTATE\b[\s:=\[(]*[0-9A-Z]{5}\b|\b(?:ERROR|FATAL|PANIC|WARNING|NOTICE|LOG|INFO|DEBUG[1-5]?):\s+[0-9A-Z]{5}:)",
            r"|(?P<k>\bos error \d{1,6}\b|\berrno[\s:=]*\d{1,6}\b|\bmigration \d{1,20}\b)",
        ))
        .ok()
    })
    .as_ref()
}

/// Holds what is structure, not data: quoted identifiers after the object
/// they name (their typed values still masked), SQLSTATE codes (five
/// characters holding a digit), errno and migration versions.
fn protect_structure<'a>(text: &'a str, held: &mut Held) -> Cow<'a, str> {
    let Some(re) = structure_re() else {
        return Cow::Borrowed(text);
    };
    if !re.is_match(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for c in re.captures_iter(text) {
        if let Some(q) = c.get(1) {
            out.push_str(&text[copied..q.start()]);
            held.hold(scrub_typed(q.as_str()), &mut out);
            copied = q.end();
        } else if let Some(s) = c.name("s") {
            // A SQLSTATE holds a digit (`23505`, `42P01`, `XX000`); `JONES` is no code.
            if s.as_str().bytes().rev().take(6).any(|x| x.is_ascii_digit()) {
                out.push_str(&text[copied..s.start()]);
                held.hold(s.as_str().to_string(), &mut out);
                copied = s.end();
            }
        } else if let Some(k) = c.name("k") {
            out.push_str(&text[copied..k.start()]);
            held.hold(k.as_str().to_string(), &mut out);
            copied = k.end();
        }
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// Unquoted UUIDs at a word start become `[UUID]`.
fn mask_uuids(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    if b.len() < 36 || !b.contains(&b'-') {
        return Cow::Borrowed(text);
    }
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i + 36 <= b.len() {
        if b[i].is_ascii_hexdigit() && (i == 0 || !is_ident_cont(b[i - 1])) {
            if let Some(end) = uuid_at(b, i) {
                let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
                o.push_str(&text[copied..i]);
                o.push_str("[UUID]");
                copied = end;
                i = end;
                continue;
            }
        }
        i += 1;
    }
    match out {
        Some(mut o) => {
            o.push_str(&text[copied..]);
            Cow::Owned(o)
        }
        None => Cow::Borrowed(text),
    }
}

/// Whether the character before byte `i` glues a number to a word (an
/// identifier character, `$`; not a held span's stand-in).
fn glued_before(text: &str, i: usize) -> bool {
    text[..i]
        .chars()
        .next_back()
        .is_some_and(|c| (c.is_alphanumeric() || c == '_' || c == '$') && !is_held_char(c))
}

/// Masks every standalone number: a digit run not glued to a word on either side
/// (`table_2024`, `30s`, `$1` and `v2` stay), with every PostgreSQL form
/// (`_` separators, fraction, exponent, `.5`, `0x…`/`0o…`/`0b…`). A number that
/// has a fraction, exponent, separator or prefix is masked even when glued to
/// letters after it (`0.0e1a`). A port after a masked host stays.
fn mask_numbers(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let starts = c.is_ascii_digit()
            || (c == b'.'
                && b.get(i + 1).is_some_and(u8::is_ascii_digit)
                && (i == 0 || !(b[i - 1].is_ascii_digit() || b[i - 1] == b'.')));
        if starts && !glued_before(text, i) {
            let start = i;
            let mut j = scan_number(b, i);
            let body = &b[start..j];
            let has_letter_tail = body
                .last()
                .is_some_and(|x| x.is_ascii_alphabetic() || *x == b'$' || *x >= 0x80);
            let plain_int_word = has_letter_tail && {
                // `30s`, `2nd`: digits then letters only, a word of prose.
                let digits = body.iter().take_while(|x| x.is_ascii_digit()).count();
                digits > 0
                    && body[digits..]
                        .iter()
                        .all(|x| x.is_ascii_alphabetic() || *x >= 0x80)
            };
            if plain_int_word {
                while j < b.len() && is_ident_cont(b[j]) {
                    j += 1;
                }
            } else if is_port(text, start, j) {
                // `[IPV4]:5432`: the port of a masked host is structure.
            } else {
                out.push_str(&text[copied..start]);
                out.push('?');
                copied = j;
            }
            i = j;
        } else if is_ident_cont(c) {
            // Skip the rest of a word so that digits inside it stay.
            while i < b.len() && is_ident_cont(b[i]) {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// Whether `text[start..end]` is a port after a masked or local host.
fn is_port(text: &str, start: usize, end: usize) -> bool {
    let before = &text[..start];
    end - start <= 5
        && text.as_bytes()[start..end].iter().all(u8::is_ascii_digit)
        && (before.ends_with("[IPV4]:") || before.ends_with("localhost:"))
}

/// Words that make an apostrophe glued to them a quote (`LIKE'%x%'`), and that
/// start a SQL region of a log line.
fn sql_word(word: &[u8]) -> Option<SqlWord> {
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
enum SqlWord {
    Statement,
    Clause,
}

/// Where the SQL of a log line starts, and where it ends: at a SQL keyword
/// written upper case (`… STATEMENT:  INSERT …`, `WHERE a LIKE'x'`), or at one
/// in any case at the start of the text or after `:` (`statement: select …`);
/// inside `"…"` (`SQL statement "…"`) it ends at the line's last `"`, else at
/// the end of the text.
fn sql_region(text: &str) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_alphabetic() || (i > 0 && is_ident_cont(b[i - 1])) {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < b.len() && is_ident_cont(b[j]) {
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
fn mask_sql_region(sql: &str, out: &mut String, held: &mut Held) {
    let b = sql.as_bytes();
    let mut dropped_comment = false;
    let mask = |out: &mut String, end: usize| {
        if out.as_bytes().last().is_some_and(|&c| is_ident_cont(c)) {
            out.push(' ');
        }
        out.push('?');
        if b.get(end).is_some_and(|&c| is_ident_cont(c) || c == b'\'') {
            out.push(' ');
        }
    };
    // Where the last string's mask ended, while only blanks and comments follow:
    // `'a'\n'b'` is one continued string, one mask.
    let mut str_end: Option<usize> = None;
    for t in Lexer::new(sql) {
        let text = &sql[t.start..t.end];
        if t.kind != Kind::Space {
            dropped_comment = false;
        }
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

/// The prose part of a log line: string and dollar-quoted literals become `?`
/// and comments are removed (layout kept); an apostrophe glued to a word is
/// not a quote (`can't`) unless the word is SQL (`like'%x%'`). Returns `false`
/// when input ended inside a construct (masked to the end).
fn mask_prose(text: &str, out: &mut String) -> bool {
    let b = text.as_bytes();
    let n = b.len();
    let mut copied = 0;
    let mut i = 0;
    while i < n {
        let c = b[i];
        let prev_ident = i > 0 && is_ident_cont(b[i - 1]);
        match c {
            b'\'' => {
                // `E'`, `B'`, `X'`, `N'`: a one-letter prefix at a word start.
                let prefix = i > 0
                    && matches!(
                        b[i - 1],
                        b'E' | b'e' | b'B' | b'b' | b'X' | b'x' | b'N' | b'n'
                    )
                    && (i < 2 || !is_ident_cont(b[i - 2]));
                let u_amp = i >= 2
                    && b[i - 1] == b'&'
                    && matches!(b[i - 2], b'U' | b'u')
                    && (i < 3 || !is_ident_cont(b[i - 3]));
                let sql_before = prev_ident && {
                    let ws = b[..i]
                        .iter()
                        .rposition(|&x| !is_ident_cont(x))
                        .map_or(0, |p| p + 1);
                    sql_word(&b[ws..i]).is_some()
                };
                if prev_ident && !prefix && !sql_before {
                    i += 1;
                    continue;
                }
                let escape = prefix && matches!(b[i - 1], b'E' | b'e');
                let start = if prefix {
                    i - 1
                } else if u_amp {
                    i - 2
                } else {
                    i
                };
                let end = if escape {
                    scan_escape_string(b, i + 1)
                } else {
                    scan_standard_string(b, i + 1)
                };
                out.push_str(&text[copied..start]);
                if sql_before {
                    out.push(' ');
                }
                out.push('?');
                match end {
                    Some(e) => {
                        copied = e;
                        i = e;
                    }
                    None => return false,
                }
            }
            b'"' => match scan_quoted(b, i + 1) {
                Some(e) => i = e,
                None => i += 1,
            },
            b'$' if !prev_ident => match dollar_tag(b, i) {
                Some(tag_end) => {
                    let tag = &b[i..tag_end];
                    out.push_str(&text[copied..i]);
                    out.push('?');
                    match find(b, tag_end, tag) {
                        Some(close) => {
                            copied = close + tag.len();
                            i = copied;
                        }
                        None => return false,
                    }
                }
                None => i += 1,
            },
            b'-' if b.get(i + 1) == Some(&b'-') => {
                // The comment runs to the end of its line and is removed.
                out.push_str(text[copied..i].trim_end());
                match b[i..].iter().position(|&x| x == b'\n') {
                    Some(p) => {
                        copied = i + p;
                        i = copied;
                    }
                    None => return true,
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                out.push_str(&text[copied..i]);
                match scan_block_comment(b, i) {
                    Some(e) => {
                        copied = e;
                        i = e;
                    }
                    None => {
                        out.push('?');
                        return false;
                    }
                }
            }
            _ => i += 1,
        }
    }
    out.push_str(&text[copied..]);
    true
}

/// Scrubs one log line (or any text that may hold SQL). The `Key (…)=(…)` and
/// `Failing row contains (…)` values go first; then where the text holds SQL
/// (from a SQL keyword: see below) that part is masked by the sanitiser's own
/// lexer, so it masks at least every literal [`crate::sanitize_sql`] masks
/// (layout kept, comments removed, quoted identifiers kept); the prose before
/// it has its quoted and dollar-quoted literals masked; then the free-text
/// pass of [`scrub_text`] runs over all of it. This is what the `scrub` example
/// runs on each line of its input, and what the logger stores for error text.
///
/// The SQL starts at a SQL keyword written upper case, or at one in any case
/// at the start of the text or after a `:` (`LOG:  statement: select …`); in
/// `SQL statement "…"` it ends at the line's last `"`.
///
/// ```
/// use vitals_querylog::scrub_log_line;
///
/// let line = "ERROR: duplicate key value; STATEMENT: INSERT INTO students(email, dob) VALUES ('ann@example.com', '2011-02-03')";
/// assert_eq!(
///     scrub_log_line(line),
///     "ERROR: duplicate key value; STATEMENT: INSERT INTO students(email, dob) VALUES (?, ?)"
/// );
/// assert_eq!(
///     scrub_log_line("STATEMENT:  SELECT 0b100101 AS \"34567890\" WHERE a LIKE'%secret%' -- ann"),
///     "STATEMENT:  SELECT ? AS \"34567890\" WHERE a LIKE ?"
/// );
/// ```
#[must_use]
pub fn scrub_log_line(line: &str) -> String {
    let text = without_private_use(line);
    let mut held = Held::default();
    let text = mask_details(&text, &mut held);
    let mut out = String::with_capacity(text.len() + 8);
    match sql_region(&text) {
        Some((start, end)) => {
            if mask_prose(&text[..start], &mut out) {
                mask_sql_region(&text[start..end], &mut out, &mut held);
                if end < text.len() {
                    mask_prose(&text[end..], &mut out);
                }
            }
        }
        None => {
            mask_prose(&text, &mut out);
        }
    }
    let text = protect_structure(&out, &mut held);
    held.restore(&scrub_free(&text))
}

/// Another name for [`scrub_log_line`]: sanitises text of any kind, SQL or not.
#[must_use]
pub fn sanitize_any(text: &str) -> String {
    scrub_log_line(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_rules_compile() {
        assert_eq!(rules().rules.len(), 14);
        assert!(detail_starts().is_some());
        assert!(structure_re().is_some());
    }

    #[test]
    fn masks_detail_lines() {
        assert_eq!(
            scrub_text("DETAIL:  Failing row contains (42, ann, lee, null, 2011-02-03)."),
            "DETAIL:  Failing row contains ([ROW])."
        );
        assert_eq!(
            scrub_text("Key (student_id)=(98765) is not present in table \"students\"."),
            "Key (student_id)=([VALUE]) is not present in table \"students\"."
        );
        assert_eq!(
            scrub_text("invalid input syntax for type uuid: \"ann lee\""),
            "invalid input syntax for type uuid: [VALUE]"
        );
    }

    #[test]
    fn masks_emails_with_dots_and_accents() {
        assert_eq!(
            scrub_text("sent to josé.núñez@mail.example.org today"),
            "sent to [EMAIL] today"
        );
    }

    #[test]
    fn ssn_with_and_without_separators_is_checked() {
        assert_eq!(scrub_text("ssn 123-45-6788"), "ssn [SSN]");
        assert_eq!(scrub_text("ssn 219 09 9999"), "ssn [SSN]");
        assert_eq!(scrub_text("ssn 219099999"), "ssn [SSN]");
        // Invalid as an SSN (area 000): still masked as a number, never kept.
        assert_eq!(scrub_text("ssn 000-12-3456"), "ssn ?-?-?");
        assert!(!valid_ssn("123-45 6789"));
        assert!(!valid_ssn("111-11-1111"));
        assert!(!valid_ssn("078-05-1120"));
    }

    #[test]
    fn cards_need_luhn() {
        assert_eq!(scrub_text("card 4111 1111 1111 1111"), "card [CARD]");
        assert_eq!(scrub_text("card 4111-1111-1111-1112"), "card ?-?-?-?");
    }

    #[test]
    fn phones_dates_ips_and_ids() {
        assert_eq!(scrub_text("call (555) 867-5309"), "call [PHONE]");
        assert_eq!(scrub_text("call +1 555 867 5309"), "call [PHONE]");
        assert_eq!(
            scrub_text("born 2011-02-03 or 03/02/2011"),
            "born [DATE] or [DATE]"
        );
        assert_eq!(scrub_text("born March 3, 2011"), "born [DATE]");
        assert_eq!(scrub_text("from 10.1.2.3"), "from [IPV4]");
        assert_eq!(scrub_text("MRN: 00123456"), "MRN: [MRN]");
        assert_eq!(scrub_text("policy number AB-99812"), "policy number [MRN]");
        assert_eq!(scrub_text("member W123456789"), "member [MRN]");
    }

    #[test]
    fn keeps_structure_words_and_glued_digits() {
        assert_eq!(
            scrub_text("relation \"table_2024\" does not exist after 30s on $1"),
            "relation \"table_2024\" does not exist after 30s on $1"
        );
        assert_eq!(scrub_text("retry 3 of 10"), "retry ? of ?");
    }

    #[test]
    fn quoted_values_are_masked_apostrophes_are_not() {
        assert_eq!(
            scrub_text("can't find patient 'Ann Lee'"),
            "can't find patient '[VALUE]'"
        );
    }

    #[test]
    fn log_line_masks_sql_literals_and_keeps_layout() {
        assert_eq!(
            scrub_log_line(
                "LOG:  execute s1: SELECT * FROM t WHERE name = 'ann'  AND id = 42 -- x"
            ),
            // Issue 14: a `--` comment is removed like a block comment (it was a stray `?`).
            "LOG:  execute s1: SELECT * FROM t WHERE name = ?  AND id = ?"
        );
        assert_eq!(scrub_log_line("x = E'ann\\'s' , $$lee$$"), "x = ? , ?");
        assert_eq!(scrub_log_line("x = 'ann lee"), "x = ?");
        assert_eq!(scrub_log_line("it's /* ann */ fine"), "it's  fine");
    }

    #[test]
    fn odd_input_does_not_panic() {
        for t in [
            "", "'", "$", "$a$", "--", "/*", "\"", "0x", "1e", "1.", "é'é", "@.", "E'",
        ] {
            let _ = scrub_log_line(t);
            let _ = scrub_text(t);
        }
    }
}
