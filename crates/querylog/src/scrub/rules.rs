//! The typed rules of the free-text scrubber: each recognised value (an email, an IPv4
//! address, a date, an SSN, a card number, a phone number, a record id, an unquoted UUID)
//! becomes its typed mask, with the checks (Presidio's SSN rules, Luhn) that decide a match.

use std::borrow::Cow;
use std::sync::OnceLock;

use regex::{Captures, Regex};

use crate::sanitize::lexer::{is, uuid_at, IDENT_CONT};

/// One rule: a pattern, and what a match becomes (`None` keeps the match).
pub(super) struct Rule {
    re: Regex,
    replace: fn(&Captures<'_>) -> Option<String>,
}

pub(super) struct Rules {
    pub(super) rules: Vec<Rule>,
}

pub(super) fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(|| {
        let mut rules = Vec::new();
        let mut add = |pattern: &str, replace: fn(&Captures<'_>) -> Option<String>| {
            // The patterns are constants of this file, tested in `tests.rs`; a pattern that
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
pub(super) fn valid_ssn(text: &str) -> bool {
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

/// Only the typed rules (no number pass): what a kept quoted identifier goes
/// through, so `"34567890"` stays and `"219099999"` becomes `"[SSN]"`.
pub(super) fn scrub_typed(text: &str) -> String {
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
        if b[i].is_ascii_hexdigit() && (i == 0 || !is(IDENT_CONT, b[i - 1])) {
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
