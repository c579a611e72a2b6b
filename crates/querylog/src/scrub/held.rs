//! Held spans: text already masked, or known to be structure, kept out of the later passes.
//! Each stands in the text as one private-use character until [`Held::restore`] puts it back;
//! the input's own private-use characters become `?` first, so a stand-in is never input.

use std::borrow::Cow;

/// The first of the private-use characters that stand for held spans.
const HELD_BASE: u32 = 0xE000;
/// How many spans can be held (the private-use area U+E000..U+F8FF); beyond,
/// a span is scrubbed like the rest (fail closed).
const HELD_MAX: usize = 0x1900;

pub(super) fn is_held_char(c: char) -> bool {
    ('\u{E000}'..='\u{F8FF}').contains(&c)
}

/// Private-use characters of the input become `?`, so that a held span's
/// stand-in is never confused with input.
pub(super) fn without_private_use(text: &str) -> Cow<'_, str> {
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
pub(super) struct Held {
    spans: Vec<String>,
}

impl Held {
    /// Writes `span` to `out` as its stand-in (or as itself once full).
    pub(super) fn hold(&mut self, span: String, out: &mut String) {
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

    pub(super) fn restore(&self, text: &str) -> String {
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
