//! The one lexer of this crate: it alone decides what is a literal, for the SQL
//! sanitiser, the fingerprint and the SQL found inside log and error lines.
//!
//! It follows PostgreSQL 16's scanner (`src/backend/parser/scan.l`) where it
//! matters for masking, and fails closed where PostgreSQL would reject the input:
//!
//! - numbers: `{decinteger}` with `_` separators, `{numeric}` (`1.5`, `1.`, `.5`),
//!   `{real}` (`1e-3`), `0x…`, `0o…`, `0b…`; and the forms scan.l rejects as
//!   "trailing junk" (`{decinteger}{identifier}` such as `123abc`, `0.0e1a`, `0x`,
//!   `1e+`), which are one literal token here, as is an unquoted UUID
//!   (`01234567-89ab-cdef-0123-456789abcdef`);
//! - strings: `'…'` (with `''`), `E'…'` (backslash escapes), `U&'…'`, `B'…'`,
//!   `X'…'`, `N'…'`, `$tag$…$tag$`; a string continued across a newline is two
//!   string tokens that the sanitiser folds into one mask;
//! - comments: `--` to the end of the line and nested `/* */`;
//! - quoted identifiers `"…"` and `U&"…"` (kept by every path);
//! - parameters `$n` (and SQLite's `?n`); `$1abc` is junk, a literal.
//!
//! Input that ends inside a string, dollar quote, quoted identifier or block
//! comment, or a standard string whose end is ambiguous (a quote after an odd
//! run of backslashes), is one [`Kind::Unterminated`] token to the end.

/// What a token is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    /// A run of whitespace.
    Space,
    /// A `--` comment (without its newline) or a nested `/* */` comment.
    Comment,
    /// A string literal of any form (always masked).
    Str,
    /// A numeric literal of any form, junk forms and unquoted UUIDs included
    /// (always masked).
    Number,
    /// A parameter `$n` or `?n` (kept).
    Param,
    /// A quoted identifier `"…"` or `U&"…"` (kept).
    QuotedIdent,
    /// A keyword or an unquoted identifier (`TRUE`/`FALSE` included).
    Word,
    /// An operator (a run of operator characters, cut as PostgreSQL cuts it).
    Op,
    /// `(`, `)`, `[`, `]`, `,`, `;`, `.` or `:`; the byte is the token.
    Punct,
    /// `::`.
    Cast,
    /// Any other byte (`\`, `{`, a control character, a lone `$`).
    Other,
    /// A string, dollar quote, quoted identifier or block comment that does not
    /// end (or a standard string whose end is ambiguous): runs to the end.
    Unterminated,
}

/// One token: its kind and its byte range in the input. Token boundaries are
/// always at ASCII bytes or the ends, so they are `char` boundaries.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Token {
    pub(crate) kind: Kind,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// The tokens of a text, in order; every byte belongs to exactly one token.
pub(crate) struct Lexer<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self {
            b: text.as_bytes(),
            i: 0,
        }
    }
}

impl Iterator for Lexer<'_> {
    type Item = Token;

    #[inline]
    fn next(&mut self) -> Option<Token> {
        if self.i >= self.b.len() {
            return None;
        }
        let start = self.i;
        let (kind, end) = token_at(self.b, start);
        debug_assert!(end > start);
        self.i = end;
        Some(Token { kind, start, end })
    }
}

/// Byte classes, one table lookup per test (the lexer's hot path).
pub(crate) const SPACE: u8 = 1;
pub(crate) const IDENT_START: u8 = 2;
pub(crate) const IDENT_CONT: u8 = 4;
pub(crate) const OP: u8 = 8;

const CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut c = 0;
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c') {
            c |= SPACE;
        }
        if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 {
            c |= IDENT_START | IDENT_CONT;
        }
        if b.is_ascii_digit() || b == b'$' {
            c |= IDENT_CONT;
        }
        if matches!(
            b,
            b'+' | b'-'
                | b'*'
                | b'/'
                | b'<'
                | b'>'
                | b'='
                | b'~'
                | b'!'
                | b'@'
                | b'#'
                | b'%'
                | b'^'
                | b'&'
                | b'|'
                | b'`'
                | b'?'
        ) {
            c |= OP;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// Whether `b` is in `class`, one of the byte classes above: `SPACE`, `IDENT_START`,
/// `IDENT_CONT` (an identifier character after the first: letters, digits, `_`, `$`, and any
/// byte of a non-ASCII character) or `OP` (PostgreSQL's operator characters, `?` included, for
/// jsonb's `?|`).
#[inline]
pub(crate) fn is(class: u8, b: u8) -> bool {
    CLASSES[usize::from(b)] & class != 0
}

/// The token starting at `i` (which is within `b`): its kind and end.
#[inline(always)]
fn token_at(b: &[u8], i: usize) -> (Kind, usize) {
    let n = b.len();
    let c = b[i];
    let next = b.get(i + 1).copied();
    let string = |end: Option<usize>| match end {
        Some(e) => (Kind::Str, e),
        None => (Kind::Unterminated, n),
    };
    match c {
        _ if is(SPACE, c) => {
            let mut j = i + 1;
            while j < n && is(SPACE, b[j]) {
                j += 1;
            }
            (Kind::Space, j)
        }
        b'\'' => string(scan_standard_string(b, i + 1)),
        b'"' => match scan_quoted(b, i + 1) {
            Some(e) => (Kind::QuotedIdent, e),
            None => (Kind::Unterminated, n),
        },
        b'$' => {
            if next.is_some_and(|d| d.is_ascii_digit()) {
                let mut j = i + 1;
                while j < n && b[j].is_ascii_digit() {
                    j += 1;
                }
                if j < n && is(IDENT_CONT, b[j]) {
                    // `{param_junk}`: `$1abc`, rejected by PostgreSQL; a literal here.
                    while j < n && is(IDENT_CONT, b[j]) {
                        j += 1;
                    }
                    return (Kind::Number, j);
                }
                (Kind::Param, j)
            } else if let Some(tag_end) = dollar_tag(b, i) {
                let tag = &b[i..tag_end];
                match find(b, tag_end, tag) {
                    Some(close) => (Kind::Str, close + tag.len()),
                    None => (Kind::Unterminated, n),
                }
            } else {
                (Kind::Other, i + 1)
            }
        }
        b'0'..=b'9' => match uuid_at(b, i) {
            Some(e) => (Kind::Number, e),
            None => (Kind::Number, scan_number(b, i)),
        },
        b'.' if next.is_some_and(|d| d.is_ascii_digit()) => (Kind::Number, scan_number(b, i)),
        b'-' if next == Some(b'-') => {
            let j = b[i..].iter().position(|&x| x == b'\n').map_or(n, |p| i + p);
            (Kind::Comment, j)
        }
        b'/' if next == Some(b'*') => match scan_block_comment(b, i) {
            Some(e) => (Kind::Comment, e),
            None => (Kind::Unterminated, n),
        },
        b'(' | b')' | b'[' | b']' | b',' | b';' | b'.' => (Kind::Punct, i + 1),
        b':' if next == Some(b':') => (Kind::Cast, i + 2),
        b':' => (Kind::Punct, i + 1),
        b'?' if next.is_some_and(|d| d.is_ascii_digit()) => {
            // SQLite's numbered parameter `?NNN`.
            let mut j = i + 1;
            while j < n && b[j].is_ascii_digit() {
                j += 1;
            }
            (Kind::Param, j)
        }
        _ if is(OP, c) => (Kind::Op, scan_operator(b, i)),
        _ if is(IDENT_START, c) => {
            if next == Some(b'\'') {
                match c {
                    b'E' | b'e' => return string(scan_escape_string(b, i + 2)),
                    // scan.l's `xbinside`/`xhinside` is `[^']*`: a backslash is
                    // nothing there, whatever `standard_conforming_strings` says.
                    b'B' | b'b' | b'X' | b'x' => return string(scan_plain_string(b, i + 2)),
                    b'N' | b'n' => return string(scan_standard_string(b, i + 2)),
                    _ => {}
                }
            }
            if (c == b'U' || c == b'u') && next == Some(b'&') {
                match b.get(i + 2) {
                    // `U&'…'` is only accepted with `standard_conforming_strings`
                    // on, so a backslash never escapes its quote (`U&' \'` ends).
                    Some(b'\'') => return string(scan_plain_string(b, i + 3)),
                    Some(b'"') => {
                        return match scan_quoted(b, i + 3) {
                            Some(e) => (Kind::QuotedIdent, e),
                            None => (Kind::Unterminated, n),
                        }
                    }
                    _ => {}
                }
            }
            if let Some(e) = uuid_at(b, i) {
                return (Kind::Number, e);
            }
            let mut j = i + 1;
            while j < n && is(IDENT_CONT, b[j]) {
                j += 1;
            }
            (Kind::Word, j)
        }
        _ => (Kind::Other, i + 1),
    }
}

/// An operator run from `i`, cut as PostgreSQL cuts it: before a comment start
/// (`=--x`, `+/*`), and without trailing `+`/`-` unless the run holds one of
/// `~ ! @ # % ^ & | \` ?` (so `=-5` is `=` then `-5`).
fn scan_operator(b: &[u8], i: usize) -> usize {
    let n = b.len();
    let mut j = i + 1;
    while j < n && is(OP, b[j]) {
        if j + 1 < n && (b[j] == b'-' && b[j + 1] == b'-' || b[j] == b'/' && b[j + 1] == b'*') {
            break;
        }
        j += 1;
    }
    if !b[i..j].iter().any(|c| b"~!@#%^&|`?".contains(c)) {
        while j > i + 1 && matches!(b[j - 1], b'+' | b'-') {
            j -= 1;
        }
    }
    j
}

/// If an unquoted UUID (8-4-4-4-12 hex digits) starts at `i`, the offset past
/// it and any identifier characters glued to it (junk, masked with it).
pub(crate) fn uuid_at(b: &[u8], i: usize) -> Option<usize> {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    // Most words are not UUIDs: look at the first dash before anything else.
    if b.get(i + 8) != Some(&b'-') {
        return None;
    }
    let mut j = i;
    for (k, len) in GROUPS.iter().enumerate() {
        if k > 0 {
            if b.get(j) != Some(&b'-') {
                return None;
            }
            j += 1;
        }
        let end = j + len;
        if end > b.len() || !b[j..end].iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        j = end;
    }
    while j < b.len() && is(IDENT_CONT, b[j]) {
        j += 1;
    }
    Some(j)
}

/// Scans a numeric constant from `i` (a digit, or `.` before a digit): every
/// form of scan.l, and the junk forms it rejects (`{decinteger}{identifier}`,
/// `{numeric}{identifier}`, `{real}{identifier}`, `0x`, `1e+`), all one token.
/// `1..5` stops before `..` (scan.l's `numericfail`).
pub(crate) fn scan_number(b: &[u8], i: usize) -> usize {
    let n = b.len();
    let digits = |mut j: usize| {
        while j < n && (b[j].is_ascii_digit() || b[j] == b'_') {
            j += 1;
        }
        j
    };
    let ident_tail = |mut j: usize| {
        while j < n && is(IDENT_CONT, b[j]) {
            j += 1;
        }
        j
    };
    if b[i] == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X' | b'o' | b'O' | b'b' | b'B')) {
        // `0x1EEE_FFFF`, `0o17`, `0b1010`; `0x` alone and `0b102` are junk.
        return ident_tail(i + 2);
    }
    let mut j = digits(i);
    if j < n && b[j] == b'.' && b.get(j + 1) != Some(&b'.') {
        j = digits(j + 1);
    }
    if j < n && (b[j] == b'e' || b[j] == b'E') {
        let mut k = j + 1;
        if k < n && (b[k] == b'+' || b[k] == b'-') {
            k += 1;
        }
        if k < n && b[k].is_ascii_digit() {
            j = digits(k);
        } else if k > j + 1 {
            // `{realfail}`: `1e+` (rejected); the sign belongs to the literal.
            j = k;
        }
    }
    ident_tail(j)
}

/// Scans a standard string body from `i` (just past the opening quote); returns
/// the offset past the closing quote. `None` when unterminated, or when a quote
/// follows an odd run of backslashes: with `standard_conforming_strings` off
/// that quote would not end the string, so where it ends is ambiguous.
pub(crate) fn scan_standard_string(b: &[u8], mut i: usize) -> Option<usize> {
    let mut backslashes = 0usize;
    while i < b.len() {
        match b[i] {
            b'\'' => {
                if backslashes % 2 == 1 {
                    return None;
                }
                if b.get(i + 1) == Some(&b'\'') {
                    i += 2;
                    backslashes = 0;
                    continue;
                }
                return Some(i + 1);
            }
            b'\\' => backslashes += 1,
            _ => backslashes = 0,
        }
        i += 1;
    }
    None
}

/// Scans a string body in which only `''` escapes the quote (`U&'…'`, `B'…'`,
/// `X'…'`).
pub(crate) fn scan_plain_string(b: &[u8], i: usize) -> Option<usize> {
    scan_delimited(b, i, b'\'')
}

/// Scans an `E'…'` body: backslash escapes any byte, `''` is a quote.
pub(crate) fn scan_escape_string(b: &[u8], mut i: usize) -> Option<usize> {
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'\'' => {
                if b.get(i + 1) == Some(&b'\'') {
                    i += 2;
                } else {
                    return Some(i + 1);
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// Scans a quoted identifier body (`""` escapes the quote).
pub(crate) fn scan_quoted(b: &[u8], i: usize) -> Option<usize> {
    scan_delimited(b, i, b'"')
}

/// Scans to the closing `q` (a doubled `q` escapes it); past it.
fn scan_delimited(b: &[u8], mut i: usize, q: u8) -> Option<usize> {
    while i < b.len() {
        if b[i] == q {
            if b.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

/// Scans a nested `/* */` comment starting at `i`; the offset past its end.
pub(crate) fn scan_block_comment(b: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 0usize;
    while i + 1 < b.len() {
        if b[i] == b'/' && b[i + 1] == b'*' {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b[i + 1] == b'/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return Some(i);
            }
        } else {
            i += 1;
        }
    }
    None
}

/// If a dollar-quote tag (`$$` or `$tag$`) starts at `i`, the offset past it.
pub(crate) fn dollar_tag(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    if j < b.len() && b[j] == b'$' {
        return Some(j + 1);
    }
    if j < b.len() && is(IDENT_START, b[j]) {
        j += 1;
        while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] >= 0x80) {
            j += 1;
        }
        if j < b.len() && b[j] == b'$' {
            return Some(j + 1);
        }
    }
    None
}

/// Finds `needle` in `hay` from `from`.
pub(crate) fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<(Kind, &str)> {
        Lexer::new(s)
            .filter(|t| t.kind != Kind::Space)
            .map(|t| (t.kind, &s[t.start..t.end]))
            .collect()
    }

    #[test]
    fn numbers_of_every_form_are_one_token() {
        for n in [
            "42",
            "1_000_000",
            "1_000.000_005",
            "1.",
            ".5",
            "1.5e-3",
            "0x1EEE_FFFF",
            "0o17",
            "0b100101",
            "123abc",
            "0.0e1a",
            "0x",
            "1e+",
            "1_",
            "0b102",
        ] {
            assert_eq!(kinds(n), vec![(Kind::Number, n)], "{n}");
        }
        // scan.l's `numericfail`: `1..5` is `1` then `..`; `.5` is a number again.
        assert_eq!(
            kinds("1..5"),
            vec![
                (Kind::Number, "1"),
                (Kind::Punct, "."),
                (Kind::Number, ".5")
            ]
        );
    }

    #[test]
    fn uuids_are_one_token_and_idents_stay() {
        let u = "01234567-89ab-cdef-0123-456789abcdef";
        assert_eq!(kinds(u), vec![(Kind::Number, u)]);
        let u = "deadbeef-89ab-cdef-0123-456789abcdef";
        assert_eq!(kinds(u), vec![(Kind::Number, u)]);
        assert_eq!(kinds("t_1"), vec![(Kind::Word, "t_1")]);
    }

    #[test]
    fn byte_classes() {
        assert!(is(SPACE, b'\x0c') && !is(SPACE, b'a'));
        assert!(is(IDENT_START, b'_') && is(IDENT_START, 0xC3) && !is(IDENT_START, b'1'));
        assert!(is(IDENT_CONT, b'$') && is(IDENT_CONT, b'9') && !is(IDENT_CONT, b'-'));
        assert!(is(OP, b'?') && is(OP, b'`') && !is(OP, b'('));
    }

    #[test]
    fn strings_glued_to_words() {
        assert_eq!(
            kinds("THEN'minor'ELSE'adult'END"),
            vec![
                (Kind::Word, "THEN"),
                (Kind::Str, "'minor'"),
                (Kind::Word, "ELSE"),
                (Kind::Str, "'adult'"),
                (Kind::Word, "END")
            ]
        );
    }
}
