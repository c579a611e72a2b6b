//! The free-text scrubber (for what is not SQL: database errors, DETAIL lines,
//! messages) and the log-line pass that runs a layout-preserving SQL literal
//! mask first and the free-text scrubber second.

use std::borrow::Cow;
use std::sync::OnceLock;

use regex::{Captures, Regex};

use crate::sanitize::{
    dollar_tag, is_ident_cont, scan_block_comment, scan_escape_string, scan_standard_string,
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
/// Masks, in order: the values of `Key (…)=(…)` and `Failing row contains (…)`
/// (`[VALUE]`, `[ROW]`), quoted values (`'[VALUE]'`, and `"…"` after `: ` or
/// `near `), `[EMAIL]`, `[IPV4]`, `[DATE]`, `[SSN]` (with or without separators,
/// checked like Presidio's recogniser), `[CARD]` (Luhn), `[PHONE]`, `[MRN]`
/// (labelled record, member, policy and insurance ids, and letter-prefixed
/// digit ids), then any remaining standalone number. Words are kept: a name in
/// running text that is neither quoted nor in a DETAIL line is not recognised.
///
/// ```
/// use vitals_querylog::scrub_text;
///
/// let detail = "DETAIL:  Key (email)=(ann.lee@example.com) already exists.";
/// assert_eq!(scrub_text(detail), "DETAIL:  Key (email)=([VALUE]) already exists.");
/// assert_eq!(scrub_text("ssn 219099999, call 555-867-5309"), "ssn [SSN], call [PHONE]");
/// ```
#[must_use]
pub fn scrub_text(text: &str) -> String {
    let mut cur: Cow<'_, str> = Cow::Borrowed(text);
    for rule in &rules().rules {
        let replaced = rule.re.replace_all(&cur, |c: &Captures<'_>| {
            (rule.replace)(c).unwrap_or_else(|| c[0].to_string())
        });
        if let Cow::Owned(s) = replaced {
            cur = Cow::Owned(s);
        }
    }
    mask_numbers(&cur)
}

/// Masks every standalone number: a digit run not glued to a word on either side
/// (`table_2024`, `30s`, `$1` and `v2` stay), with its fraction and exponent,
/// and `0x…` hex.
fn mask_numbers(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let glued_before = i > 0 && (is_ident_cont(b[i - 1]) || b[i - 1] == b'$');
        if c.is_ascii_digit() && !glued_before {
            let start = i;
            let mut j = i;
            if c == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X')) {
                j = i + 2;
                while j < b.len() && b[j].is_ascii_hexdigit() {
                    j += 1;
                }
            } else {
                while j < b.len() && (b[j].is_ascii_digit() || b[j] == b'_') {
                    j += 1;
                }
                if j + 1 < b.len() && b[j] == b'.' && b[j + 1].is_ascii_digit() {
                    j += 1;
                    while j < b.len() && b[j].is_ascii_digit() {
                        j += 1;
                    }
                }
                if j < b.len() && (b[j] == b'e' || b[j] == b'E') {
                    let mut k = j + 1;
                    if k < b.len() && (b[k] == b'+' || b[k] == b'-') {
                        k += 1;
                    }
                    if k < b.len() && b[k].is_ascii_digit() {
                        while k < b.len() && b[k].is_ascii_digit() {
                            k += 1;
                        }
                        j = k;
                    }
                }
            }
            let glued_after = j < b.len() && is_ident_cont(b[j]);
            if glued_after {
                // A word such as `30s` or `2nd`: skip the whole word.
                while j < b.len() && is_ident_cont(b[j]) {
                    j += 1;
                }
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

/// Masks the SQL literals in a log line while keeping its layout: strings (all
/// prefixes), dollar quotes become `?`, comments are dropped; anything that ends
/// inside one of them is masked to the end. Words, numbers and quoted identifiers
/// are left for the free-text pass. An apostrophe glued to a word (`can't`) is not
/// a quote here, unlike in [`crate::sanitize_sql`].
fn mask_sql_literals(text: &str) -> String {
    let b = text.as_bytes();
    let n = b.len();
    let mut out = String::with_capacity(n);
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
                if prev_ident && !prefix {
                    i += 1;
                    continue;
                }
                let escape = prefix && matches!(b[i - 1], b'E' | b'e');
                let start = if prefix { i - 1 } else { i };
                let end = if escape {
                    scan_escape_string(b, i + 1)
                } else {
                    scan_standard_string(b, i + 1)
                };
                out.push_str(&text[copied..start]);
                out.push('?');
                match end {
                    Some(e) => {
                        copied = e;
                        i = e;
                    }
                    None => return out,
                }
            }
            b'"' => match crate::sanitize::scan_quoted(b, i + 1, b'"') {
                Some(e) => i = e,
                None => i += 1,
            },
            b'$' if !prev_ident => match dollar_tag(b, i) {
                Some(tag_end) => {
                    let tag = &b[i..tag_end];
                    out.push_str(&text[copied..i]);
                    out.push('?');
                    match crate::sanitize::find(b, tag_end, tag) {
                        Some(close) => {
                            copied = close + tag.len();
                            i = copied;
                        }
                        None => return out,
                    }
                }
                None => i += 1,
            },
            b'-' if b.get(i + 1) == Some(&b'-') => {
                out.push_str(&text[copied..i]);
                out.push('?');
                // The comment runs to the end of its line; the next line goes on.
                match b[i..].iter().position(|&x| x == b'\n') {
                    Some(p) => {
                        copied = i + p;
                        i = copied;
                    }
                    None => return out,
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
                        return out;
                    }
                }
            }
            _ => i += 1,
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// Scrubs one log line (or any text that may hold SQL): the SQL pass first
/// (string and dollar-quoted literals become `?`, comments go, layout is kept),
/// then the free-text pass of [`scrub_text`]. This is what the `scrub` example
/// runs on each line of its input, and what the logger stores for error text.
///
/// ```
/// use vitals_querylog::scrub_log_line;
///
/// let line = "ERROR: duplicate key value; STATEMENT: INSERT INTO students(email, dob) VALUES ('ann@example.com', '2011-02-03')";
/// assert_eq!(
///     scrub_log_line(line),
///     "ERROR: duplicate key value; STATEMENT: INSERT INTO students(email, dob) VALUES (?, ?)"
/// );
/// ```
#[must_use]
pub fn scrub_log_line(line: &str) -> String {
    scrub_text(&mask_sql_literals(line))
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
            "LOG:  execute s1: SELECT * FROM t WHERE name = ?  AND id = ? ?"
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
