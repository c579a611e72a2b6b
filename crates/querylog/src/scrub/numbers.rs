//! The last pass of the free-text scrubber: every standalone number becomes `?`, every
//! PostgreSQL form of it; digits inside words, and a port after a masked or local host, stay.

use super::held::is_held_char;
use crate::sanitize::lexer::{is, scan_number, IDENT_CONT};

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
pub(super) fn mask_numbers(text: &str) -> String {
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
                while j < b.len() && is(IDENT_CONT, b[j]) {
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
        } else if is(IDENT_CONT, c) {
            // Skip the rest of a word so that digits inside it stay.
            while i < b.len() && is(IDENT_CONT, b[i]) {
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
