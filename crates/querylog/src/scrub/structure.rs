//! What error text holds as structure, not data, held so the number pass leaves it:
//! quoted identifiers after the object they name, SQLSTATE codes, errno and migration
//! versions.

use std::borrow::Cow;
use std::sync::OnceLock;

use regex::Regex;

use super::held::Held;
use super::rules::scrub_typed;

pub(super) fn structure_re() -> Option<&'static Regex> {
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
pub(super) fn protect_structure<'a>(text: &'a str, held: &mut Held) -> Cow<'a, str> {
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
