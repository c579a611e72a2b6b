//! The SQL sanitiser: a single-pass lexer for PostgreSQL's lexical grammar that
//! masks every literal, drops comments, collapses lists and normalises layout.
//!
//! It is deliberately not a parser: it only needs to know where literals start
//! and end, which the lexical grammar alone decides. Where the grammar is
//! ambiguous (a standard string whose closing quote follows a backslash means
//! different things under `standard_conforming_strings` on and off) or input
//! ends inside a literal or comment, the rest of the input is masked: the
//! sanitiser fails closed.

pub(crate) mod lexer;
pub(crate) mod quoted_value;
#[cfg(test)]
mod tests;

use lexer::{Kind, Lexer};
use quoted_value::QuotedValues;

thread_local! {
    /// How many times [`sanitize_sql`] ran on this thread (one add on a thread-local).
    static RUNS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many times [`sanitize_sql`] has run on the calling thread, so a benchmark or a test can
/// check that a statement is sanitised once for the logger, its span and its metrics
/// (`benches/benches/instrumentation.rs`). Not part of the stable API.
#[doc(hidden)]
#[must_use]
pub fn sanitizer_runs_on_this_thread() -> u64 {
    RUNS.with(std::cell::Cell::get)
}

/// What is emitted for any literal, and for any masked remainder.
const MASK: &str = "?";

/// The kind of the last token written, which decides spacing and list collapse.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tok {
    /// Nothing written yet.
    Start,
    /// A keyword (written upper case).
    Keyword,
    /// An identifier (unquoted, folded to lower case, or quoted as written).
    Ident,
    /// A masked literal `?` or a parameter `$n`.
    Value,
    /// `(` or `[`.
    Open,
    /// `)` or `]`.
    Close,
    /// `,`.
    Comma,
    /// `.` or `::` (no space on either side).
    Join,
    /// `;`.
    Semi,
    /// Any other operator or punctuation.
    Op,
    /// A unary sign that a following number will absorb.
    Sign,
}

/// A group opened by `(` or `[`, to collapse repeated sibling groups such as
/// the rows of `VALUES`.
#[derive(Clone, Copy)]
struct Group {
    /// Offset of the opening bracket in the output.
    start: usize,
    /// The previous sibling group closed directly inside this one: its range.
    prev_sibling: Option<(usize, usize)>,
}

struct Writer {
    out: String,
    last: Tok,
    /// Output length right after the last value of a list run (`(?` or `(?, ?`).
    run_end: Option<usize>,
    /// Where the last string literal's mask ended, to fold adjacent strings.
    last_string_end: Option<usize>,
    /// Offset of a pending unary sign, so a number can absorb it.
    sign_at: Option<usize>,
    /// The token before a pending unary sign.
    before_sign: Tok,
    groups: Vec<Group>,
    /// Sibling tracking for the top level (outside any bracket).
    top_prev: Option<(usize, usize)>,
}

/// Maximum nesting of brackets tracked for list collapse; deeper groups are
/// still written, just not collapsed (bounded memory on hostile input).
const MAX_GROUPS: usize = 256;

impl Writer {
    fn new(cap: usize) -> Self {
        Self {
            out: String::with_capacity(cap),
            last: Tok::Start,
            run_end: None,
            last_string_end: None,
            sign_at: None,
            before_sign: Tok::Start,
            groups: Vec::new(),
            top_prev: None,
        }
    }

    /// Writes the separator that the token kinds `self.last` then `next` call for.
    fn space_before(&mut self, next: Tok, next_is_open_paren: bool) {
        let space = match (self.last, next) {
            (Tok::Start, _) => false,
            (Tok::Open | Tok::Join | Tok::Sign, _) => false,
            (_, Tok::Close | Tok::Comma | Tok::Join | Tok::Semi) => false,
            // A function call or a column list: `count(*)`, `students(id, name)`.
            (Tok::Ident, Tok::Open) if next_is_open_paren => false,
            _ => true,
        };
        if space {
            self.out.push(' ');
        }
    }

    fn push(&mut self, tok: Tok, text: &str) {
        self.space_before(tok, false);
        self.out.push_str(text);
        self.finish(tok);
    }

    fn finish(&mut self, tok: Tok) {
        if tok != Tok::Value {
            // A comma, or a sign a number will absorb, continues a list run.
            if !matches!(tok, Tok::Comma | Tok::Sign) {
                self.run_end = None;
            }
            self.last_string_end = None;
        }
        if tok != Tok::Sign {
            self.sign_at = None;
        }
        self.last = tok;
    }

    /// Writes a value (`?` or `$n`), collapsing `v, v, v` list runs into `v`.
    fn value(&mut self, text: &str, is_string: bool) {
        if let Some(at) = self.sign_at.take() {
            // `- 5` in unary position: the sign belongs to the literal.
            self.out.truncate(at);
            self.last = self.before_sign;
        }
        if is_string {
            if let Some(end) = self.last_string_end {
                if end == self.out.len() {
                    // 'a' 'b' (continued string constant): still one literal.
                    return;
                }
            }
        }
        if let Some(end) = self.run_end {
            if self.out.len() == end + 1 && self.out.ends_with(',') {
                // `(?, ?` → `(?`: drop the comma and this value.
                self.out.truncate(end);
                self.last = Tok::Value;
                if is_string {
                    self.last_string_end = Some(end);
                }
                return;
            }
        }
        let head = matches!(
            self.last,
            Tok::Open | Tok::Start | Tok::Keyword | Tok::Comma
        );
        self.space_before(Tok::Value, false);
        self.out.push_str(text);
        self.last = Tok::Value;
        self.run_end = if head { Some(self.out.len()) } else { None };
        self.last_string_end = if is_string {
            Some(self.out.len())
        } else {
            None
        };
    }

    fn open(&mut self, text: &str) {
        if text == "[" && matches!(self.last, Tok::Ident | Tok::Keyword | Tok::Close) {
            // `ARRAY[`, `col[`, `f(x)[`: no space before a subscript or array.
        } else {
            self.space_before(Tok::Open, text == "(");
        }
        let start = self.out.len();
        self.out.push_str(text);
        if self.groups.len() < MAX_GROUPS {
            self.groups.push(Group {
                start,
                prev_sibling: None,
            });
        }
        self.finish(Tok::Open);
    }

    fn close(&mut self, text: &str) {
        self.space_before(Tok::Close, false);
        if let Some(group) = self.groups.last() {
            collapse_cast_items(&mut self.out, group.start + 1);
        }
        self.out.push_str(text);
        let end = self.out.len();
        self.finish(Tok::Close);
        let Some(group) = self.groups.pop() else {
            return;
        };
        let start = group.start;
        let prev = match self.groups.last_mut() {
            Some(parent) => &mut parent.prev_sibling,
            None => &mut self.top_prev,
        };
        if let Some((ps, pe)) = *prev {
            let between = self.out.get(pe..start);
            let same = match (self.out.get(ps..pe), self.out.get(start..end)) {
                (Some(a), Some(b)) => same_shape(a, b),
                _ => false,
            };
            if between == Some(", ") && same {
                // `(?), (?)` → `(?)`: repeated rows become one.
                self.out.truncate(pe);
                return;
            }
        }
        *prev = Some((start, end));
    }

    /// Masks everything from here on (fail closed) and ends the output.
    fn mask_rest(mut self) -> String {
        self.sign_at = None;
        if !(self.last == Tok::Value && self.out.ends_with(MASK)) {
            self.space_before(Tok::Value, false);
            self.out.push_str(MASK);
        }
        self.out
    }
}

/// Whether two pieces of output are the same but for the numbers of `$n`
/// parameters: rows `($1, $2), ($3, $4)` repeat one shape.
fn same_shape(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] != b[j] {
            return false;
        }
        let param = a[i] == b'$';
        i += 1;
        j += 1;
        if param {
            while i < a.len() && a[i].is_ascii_digit() {
                i += 1;
            }
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
        }
    }
    i == a.len() && j == b.len()
}

/// A list item that is one value with a cast: `?::uuid`, `$2::int[]`,
/// `?::public.mood`, `?::double precision`.
fn is_cast_item(item: &str) -> bool {
    let rest = if let Some(r) = item.strip_prefix('?') {
        r
    } else if let Some(r) = item.strip_prefix('$') {
        r.trim_start_matches(|c: char| c.is_ascii_digit())
    } else {
        return false;
    };
    rest.starts_with("::")
        && rest
            .bytes()
            .all(|c| lexer::is(lexer::IDENT_CONT, c) && c != b'$' || b":[]. ".contains(&c))
}

/// Collapses a bracket's items `v::t, v::t, …` (from `from` to the end of the
/// output) into the first, as plain values collapse: `IN ($1::uuid, $2::uuid)`
/// is `IN ($1::uuid)`.
fn collapse_cast_items(out: &mut String, from: usize) {
    let Some(content) = out.get(from..) else {
        return;
    };
    if !content.starts_with(['?', '$']) {
        return;
    }
    let mut items = content.split(", ");
    let Some(first) = items.next() else {
        return;
    };
    if first.len() == content.len() || !is_cast_item(first) {
        return;
    }
    if items.all(|it| same_shape(it, first)) {
        out.truncate(from + first.len());
    }
}

/// `word` upper-cased (ASCII letters only) into `buf`; `None` when it is longer than `buf`,
/// and so than every keyword.
#[inline]
pub(crate) fn upper<'b>(word: &[u8], buf: &'b mut [u8; 16]) -> Option<&'b [u8]> {
    let up = buf.get_mut(..word.len())?;
    for (d, s) in up.iter_mut().zip(word) {
        *d = s.to_ascii_uppercase();
    }
    Some(up)
}

/// Upper-cases `word` into `buf` and says whether it is a keyword we write in
/// upper case. Words that are not keywords are identifiers (folded to lower case,
/// as PostgreSQL folds them).
fn keyword(word: &[u8], buf: &mut [u8; 16]) -> bool {
    let Some(up) = upper(word, buf) else {
        return false;
    };
    matches!(
        up,
        b"SELECT"
            | b"FROM"
            | b"WHERE"
            | b"AND"
            | b"OR"
            | b"NOT"
            | b"IN"
            | b"IS"
            | b"NULL"
            | b"AS"
            | b"ON"
            | b"JOIN"
            | b"LEFT"
            | b"RIGHT"
            | b"INNER"
            | b"OUTER"
            | b"FULL"
            | b"CROSS"
            | b"LATERAL"
            | b"NATURAL"
            | b"USING"
            | b"GROUP"
            | b"ORDER"
            | b"BY"
            | b"HAVING"
            | b"LIMIT"
            | b"OFFSET"
            | b"FETCH"
            | b"FIRST"
            | b"NEXT"
            | b"ROWS"
            | b"ROW"
            | b"ONLY"
            | b"ASC"
            | b"DESC"
            | b"NULLS"
            | b"LAST"
            | b"DISTINCT"
            | b"ALL"
            | b"ANY"
            | b"SOME"
            | b"EXISTS"
            | b"BETWEEN"
            | b"LIKE"
            | b"ILIKE"
            | b"SIMILAR"
            | b"ESCAPE"
            | b"CASE"
            | b"WHEN"
            | b"THEN"
            | b"ELSE"
            | b"END"
            | b"CAST"
            | b"UNION"
            | b"INTERSECT"
            | b"EXCEPT"
            | b"WITH"
            | b"RECURSIVE"
            | b"INSERT"
            | b"INTO"
            | b"VALUES"
            | b"DEFAULT"
            | b"UPDATE"
            | b"SET"
            | b"DELETE"
            | b"RETURNING"
            | b"CONFLICT"
            | b"DO"
            | b"NOTHING"
            | b"CREATE"
            | b"ALTER"
            | b"DROP"
            | b"TABLE"
            | b"INDEX"
            | b"VIEW"
            | b"IF"
            | b"PRIMARY"
            | b"KEY"
            | b"FOREIGN"
            | b"REFERENCES"
            | b"UNIQUE"
            | b"CHECK"
            | b"CONSTRAINT"
            | b"BEGIN"
            | b"COMMIT"
            | b"ROLLBACK"
            | b"SAVEPOINT"
            | b"RELEASE"
            | b"TRANSACTION"
            | b"FOR"
            | b"SHARE"
            | b"NOWAIT"
            | b"SKIP"
            | b"LOCKED"
            | b"OVER"
            | b"PARTITION"
            | b"WINDOW"
            | b"FILTER"
            | b"ARRAY"
            | b"COPY"
            | b"TRUNCATE"
            | b"EXPLAIN"
            | b"ANALYZE"
            | b"SHOW"
            | b"RESET"
            | b"LOCAL"
            | b"DATE"
            | b"TIME"
            | b"TIMESTAMP"
            | b"TIMESTAMPTZ"
            | b"INTERVAL"
            | b"ZONE"
            | b"AT"
            | b"UESCAPE"
            | b"COLLATE"
            | b"MATERIALIZED"
            | b"REFRESH"
            | b"OVERLAPS"
            | b"SYMMETRIC"
    )
}

/// Sanitises a SQL statement: every literal becomes `?`, comments are dropped,
/// lists collapse and layout is normalised. `$n` parameters stay.
///
/// Never panics and never returns a literal of the input: input that ends inside
/// a string, dollar quote, quoted identifier or comment, or a string whose end is
/// ambiguous, is masked from the start of that construct to the end.
///
/// - Strings: `'…'` with `''`, `E'…'` with backslash escapes, `U&'…'`, `B'…'`,
///   `X'…'`, `N'…'`, dollar-quoted `$tag$…$tag$`, adjacent continued strings.
/// - Numbers (with a unary sign), `TRUE`/`FALSE`, typed literals (`DATE '…'`
///   becomes `DATE ?`).
/// - `--` and nested `/* */` comments are dropped.
/// - `IN (1, 2, 3)` becomes `IN (?)`; the rows of `VALUES` and the items of
///   `ARRAY[…]` become one.
/// - Keywords are written upper case, other unquoted identifiers lower case
///   (as PostgreSQL folds them); quoted identifiers stay as written.
///
/// ```
/// use vitals_querylog::sanitize_sql;
///
/// let sql = "select * FROM students where email = 'ann.lee@example.com' AND id in (1,2,3) -- ann";
/// assert_eq!(
///     sanitize_sql(sql),
///     "SELECT * FROM students WHERE email = ? AND id IN (?)"
/// );
/// ```
#[must_use]
pub fn sanitize_sql(sql: &str) -> String {
    RUNS.with(|runs| runs.set(runs.get().wrapping_add(1)));
    let b = sql.as_bytes();
    let mut w = Writer::new(b.len().min(4096));
    let mut kw = [0u8; 16];
    let mut quoted = QuotedValues::for_sql(sql);
    for t in Lexer::new(sql) {
        if matches!(t.kind, Kind::Space | Kind::Comment) {
            continue;
        }
        // SQLite's double-quoted string where a value stands (`quoted_value.rs`); the
        // tracker takes in every token.
        if quoted.masks(&t, sql) {
            w.value(MASK, true);
            continue;
        }
        // Token boundaries are at ASCII bytes (see `lexer::Token`).
        let text = sql.get(t.start..t.end).unwrap_or(MASK);
        match t.kind {
            Kind::Str => {
                w.value(MASK, true);
                continue;
            }
            Kind::Number => {
                w.value(MASK, false);
                continue;
            }
            _ => {}
        }
        match t.kind {
            Kind::Space | Kind::Comment | Kind::Str | Kind::Number => {}
            Kind::Param => w.value(text, false),
            Kind::QuotedIdent => w.push(Tok::Ident, text),
            Kind::Unterminated => return w.mask_rest(),
            Kind::Cast => w.push(Tok::Join, "::"),
            Kind::Punct => match b[t.start] {
                b'(' => w.open("("),
                b'[' => w.open("["),
                b')' => w.close(")"),
                b']' => w.close("]"),
                b',' => w.push(Tok::Comma, ","),
                b';' => w.push(Tok::Semi, ";"),
                b'.' => w.push(Tok::Join, "."),
                _ => w.push(Tok::Op, text),
            },
            Kind::Op => {
                let unary = (text == "-" || text == "+")
                    && matches!(
                        w.last,
                        Tok::Start | Tok::Open | Tok::Comma | Tok::Op | Tok::Keyword | Tok::Semi
                    );
                if unary {
                    let at = w.out.len();
                    w.before_sign = w.last;
                    w.space_before(Tok::Sign, false);
                    w.out.push_str(text);
                    w.finish(Tok::Sign);
                    w.sign_at = Some(at);
                } else {
                    w.push(Tok::Op, text);
                }
            }
            Kind::Word => {
                let word = text.as_bytes();
                if keyword(word, &mut kw) {
                    let up = &kw[..word.len()];
                    // Only ASCII letters were upper-cased, so this is UTF-8.
                    let up = std::str::from_utf8(up).unwrap_or(MASK);
                    w.push(Tok::Keyword, up);
                } else if word.eq_ignore_ascii_case(b"true") || word.eq_ignore_ascii_case(b"false")
                {
                    w.value(MASK, false);
                } else {
                    w.space_before(Tok::Ident, false);
                    let at = w.out.len();
                    w.out.push_str(text);
                    w.out[at..].make_ascii_lowercase();
                    w.finish(Tok::Ident);
                }
            }
            Kind::Other => {
                // `\`, `{`, `}`, a lone `$`, control characters: one token each.
                w.space_before(Tok::Op, false);
                w.out.push_str(text);
                w.finish(Tok::Op);
            }
        }
    }
    w.out
}
