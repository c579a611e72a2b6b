//! The prose part of a log line: its string and dollar-quoted literals masked and its
//! comments removed, layout kept, without taking an apostrophe in a word for a quote.

use super::sql::sql_word;
use crate::sanitize::lexer::{
    dollar_tag, find, is, scan_block_comment, scan_escape_string, scan_quoted,
    scan_standard_string, IDENT_CONT,
};

/// The prose part of a log line: string and dollar-quoted literals become `?`
/// and comments are removed (layout kept); an apostrophe glued to a word is
/// not a quote (`can't`) unless the word is SQL (`like'%x%'`). Returns `false`
/// when input ended inside a construct (masked to the end).
pub(super) fn mask_prose(text: &str, out: &mut String) -> bool {
    let b = text.as_bytes();
    let n = b.len();
    let mut copied = 0;
    let mut i = 0;
    while i < n {
        let c = b[i];
        let prev_ident = i > 0 && is(IDENT_CONT, b[i - 1]);
        match c {
            b'\'' => {
                // `E'`, `B'`, `X'`, `N'`: a one-letter prefix at a word start.
                let prefix = i > 0
                    && matches!(
                        b[i - 1],
                        b'E' | b'e' | b'B' | b'b' | b'X' | b'x' | b'N' | b'n'
                    )
                    && (i < 2 || !is(IDENT_CONT, b[i - 2]));
                let u_amp = i >= 2
                    && b[i - 1] == b'&'
                    && matches!(b[i - 2], b'U' | b'u')
                    && (i < 3 || !is(IDENT_CONT, b[i - 3]));
                let sql_before = prev_ident && {
                    let ws = b[..i]
                        .iter()
                        .rposition(|&x| !is(IDENT_CONT, x))
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
