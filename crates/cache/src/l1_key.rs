//! An L1 entry's own copy of its key, which a hit compares with the key asked for: inline in
//! the entry up to [`INLINE`] bytes (the keys a service uses, `student:1234:allergies`, are
//! that short), so the comparison reads the entry the lookup just loaded rather than another
//! allocation (one dependent memory access fewer on every hit); a longer key is boxed.

/// The longest key held inline: the enum is then 24 bytes, 8 more than a `Box<str>`.
const INLINE: usize = 22;

/// A key as an entry holds it.
pub(crate) enum EntryKey {
    /// The first `len` bytes of `bytes` (`len <= INLINE`), the rest zero.
    Inline {
        len: u8,
        bytes: [u8; INLINE],
    },
    Boxed(Box<str>),
}

impl EntryKey {
    pub(crate) fn new(key: &str) -> Self {
        let b = key.as_bytes();
        match u8::try_from(b.len()) {
            Ok(len) if b.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..b.len()].copy_from_slice(b);
                Self::Inline { len, bytes }
            }
            _ => Self::Boxed(key.into()),
        }
    }

    /// Whether this is `key`.
    #[inline]
    pub(crate) fn is(&self, key: &str) -> bool {
        match self {
            Self::Inline { len, bytes } => {
                usize::from(*len) == key.len()
                    && bytes
                        .get(..key.len())
                        .is_some_and(|b| same_short(b, key.as_bytes()))
            }
            Self::Boxed(b) => **b == *key,
        }
    }

    /// The key as an owned string.
    pub(crate) fn into_string(self) -> String {
        match self {
            // The bytes were a whole `&str` (`new`): valid UTF-8, so nothing is replaced.
            Self::Inline { len, bytes } => {
                String::from_utf8_lossy(&bytes[..usize::from(len).min(INLINE)]).into_owned()
            }
            Self::Boxed(b) => b.into_string(),
        }
    }
}

/// Whether `a` and `b` hold the same bytes: for a length of 8 to 24, by 8-byte words (the
/// last one overlapping the one before) rather than a `memcmp` call, which a profile of the
/// L1 hit showed for a 20-byte key.
#[inline]
fn same_short(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if !(8..=24).contains(&n) {
        return a == b;
    }
    let word = |s: &[u8], at: usize| {
        s.get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map(u64::from_ne_bytes)
    };
    // Words at 0, 8 (if the key is longer than 16 bytes) and n - 8 cover every byte.
    word(a, 0) == word(b, 0)
        && (n <= 16 || word(a, 8) == word(b, 8))
        && word(a, n - 8) == word(b, n - 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_inline_and_boxed_compare_and_come_back_whole() {
        let long = "k".repeat(INLINE + 1);
        for key in [
            "",
            "a",
            "student:1234:allergies",
            "é☃",
            &long[..INLINE],
            &long,
        ] {
            let k = EntryKey::new(key);
            assert_eq!(
                matches!(k, EntryKey::Inline { .. }),
                key.len() <= INLINE,
                "{key}"
            );
            assert!(k.is(key), "{key}");
            assert!(!k.is(&format!("{key}x")), "{key}");
            if let Some(shorter) = key.get(..key.len().saturating_sub(1)) {
                assert!(shorter == key || !k.is(shorter), "{key}");
            }
            assert_eq!(k.into_string(), key);
        }
        // Every length, a difference at every position.
        for n in 0..=INLINE {
            let key: String = (0..n).map(|i| char::from(b'a' + i as u8)).collect();
            let k = EntryKey::new(&key);
            assert!(k.is(&key), "{n}");
            for at in 0..n {
                let mut other = key.clone().into_bytes();
                other[at] = b'Z';
                let other = String::from_utf8(other).unwrap();
                assert!(!k.is(&other), "{n} {at}");
            }
        }
        // A shorter key that is a prefix, padded with what the inline tail holds.
        assert!(!EntryKey::new("ab").is("ab\0"));
        assert_eq!(std::mem::size_of::<EntryKey>(), 24);
    }
}
