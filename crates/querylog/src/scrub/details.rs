//! PostgreSQL's DETAIL lines: the values of `Key (…)=(…)` and `Failing row contains (…)`,
//! masked and held before anything else reads the text.

use std::borrow::Cow;
use std::sync::OnceLock;

use regex::Regex;

use super::held::Held;
use super::sql::mask_sql_region;

pub(super) fn detail_starts() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    // A constant pattern, tested in `tests.rs`; if it did not compile, the `Key` and
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
pub(super) fn mask_details<'a>(text: &'a str, held: &mut Held) -> Cow<'a, str> {
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
