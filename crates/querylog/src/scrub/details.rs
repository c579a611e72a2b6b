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

/// How many bytes [`closing_paren`] may read, in all, per byte of the text: enough for any
/// line PostgreSQL writes, and what keeps a line of thousands of nested or unclosed
/// `Key (` openings linear (each would otherwise be scanned to its line's end).
const SCAN_BUDGET_PER_BYTE: usize = 4;

/// Why [`closing_paren`] found no `)`.
enum Unclosed {
    /// The line ends first.
    Line,
    /// The scan budget is spent.
    Budget,
}

/// The offset of the `)` that closes the `(` just before `i`, skipping quoted
/// text; each byte read is taken from `budget`.
fn closing_paren(b: &[u8], mut i: usize, budget: &mut usize) -> Result<usize, Unclosed> {
    let mut depth = 1usize;
    while i < b.len() {
        if *budget == 0 {
            return Err(Unclosed::Budget);
        }
        *budget -= 1;
        match b[i] {
            b'\n' => return Err(Unclosed::Line),
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i);
                }
            }
            b'"' | b'\'' => {
                let q = b[i];
                let end = b[i + 1..]
                    .iter()
                    .position(|&x| x == q || x == b'\n')
                    .ok_or(Unclosed::Line)?;
                *budget = budget.saturating_sub(end);
                i += end + 1;
                if b[i] == b'\n' {
                    return Err(Unclosed::Line);
                }
            }
            _ => {}
        }
        i += 1;
    }
    Err(Unclosed::Line)
}

/// PostgreSQL's DETAIL shapes for constraints and expression indexes, masked
/// and held: `Key (cols)=(values)` (the columns may be expressions, their
/// literals masked; the values, to the last `)` of the line, become `[VALUE]`;
/// `… conflicts with existing key (…)=(…)` is inside that), and
/// `Failing row contains (…)` → `[ROW]`. Past the scan budget, what follows a `Key (` up to
/// the line's last `)` is `[VALUE]` whole: more masked, never less, and linear time.
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
    let mut budget = SCAN_BUDGET_PER_BYTE.saturating_mul(b.len());
    // The current line's end and its last `)`, found once per line, not once per opening.
    let mut line: Option<(usize, Option<usize>)> = None;
    while let Some(m) = re.find_at(text, from) {
        let open = m.end(); // just past `(`
        let (line_end, line_last_close) = match line {
            Some(l) if open <= l.0 => l,
            _ => {
                let end = b[open..]
                    .iter()
                    .position(|&x| x == b'\n')
                    .map_or(b.len(), |p| open + p);
                let last = b[open..end]
                    .iter()
                    .rposition(|&x| x == b')')
                    .map(|p| open + p);
                *line.insert((end, last))
            }
        };
        let last_close = line_last_close.filter(|&c| c >= open);
        let is_key = b[m.start()].eq_ignore_ascii_case(&b'k');
        let mut span = String::new();
        let end = if is_key {
            let close = match closing_paren(b, open, &mut budget) {
                Ok(close) => close,
                Err(Unclosed::Line) => {
                    from = open;
                    continue;
                }
                Err(Unclosed::Budget) => {
                    span.push_str(&text[m.start()..open]);
                    span.push_str("[VALUE]");
                    out.push_str(&text[copied..m.start()]);
                    held.hold(span, &mut out);
                    copied = last_close.unwrap_or(line_end);
                    from = copied;
                    continue;
                }
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
