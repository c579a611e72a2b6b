//! What the sanitiser made of each statement text, remembered: a host runs the same few
//! hundred texts over and over, and sanitising one (the lexer and a new string) is most of
//! what recording a statement costs (issue 16, item 5).
//!
//! The key is a 128-bit SipHash of the raw text under a key drawn when the logger is built,
//! never the text itself (a statement with an inline literal may carry PHI); the value is the
//! sanitised text, which holds no literal, and its fingerprint. Bounded: at most
//! [`ENTRIES`] texts of at most [`LONGEST`] bytes each; a full memo is emptied, so a host whose
//! statements inline their values (each text seen once) pays a lookup more per statement than
//! without it, and memory stays bounded.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use siphasher::sip128::{Hasher128, SipHasher13};

use crate::fingerprint::Fingerprint;

/// How many texts are remembered before the memo is emptied.
pub(crate) const ENTRIES: usize = 1024;

/// Longer texts are sanitised every time (a generated statement is rarely repeated).
pub(crate) const LONGEST: usize = 2048;

/// The sanitised text of a statement and its fingerprint.
pub(crate) type Sanitized = (Arc<str>, Fingerprint);

pub(crate) struct Texts {
    k0: u64,
    k1: u64,
    memo: Mutex<HashMap<u128, Sanitized>>,
}

impl Texts {
    pub(crate) fn new() -> Self {
        // Two draws from the process's random hashing keys (each a fresh `RandomState`, whose
        // keys are unpredictable, hashed over nothing): a key no log or caller can know.
        let k0 = RandomState::new().build_hasher().finish();
        let k1 = RandomState::new().build_hasher().finish();
        Self {
            k0,
            k1,
            memo: Mutex::new(HashMap::new()),
        }
    }

    /// What `sanitize` makes of `sql`, remembered (see the module docs).
    pub(crate) fn get(&self, sql: &str, sanitize: impl FnOnce(&str) -> Sanitized) -> Sanitized {
        if sql.len() > LONGEST {
            return sanitize(sql);
        }
        let mut h = SipHasher13::new_with_keys(self.k0, self.k1);
        h.write(sql.as_bytes());
        let key = h.finish128().as_u128();
        if let Some((text, fp)) = self.lock().get(&key) {
            return (Arc::clone(text), *fp);
        }
        let made = sanitize(sql);
        let mut memo = self.lock();
        if memo.len() >= ENTRIES {
            memo.clear();
        }
        memo.insert(key, (Arc::clone(&made.0), made.1));
        made
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u128, Sanitized>> {
        // Nothing panics while the map is held; a poisoned lock still holds a whole map.
        self.memo.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn made(sql: &str) -> Sanitized {
        (
            Arc::from(sql.to_ascii_uppercase()),
            Fingerprint(sql.len() as u64),
        )
    }

    #[test]
    fn a_text_is_sanitised_once_and_remembered() {
        let texts = Texts::new();
        let runs = Cell::new(0);
        let count = |sql: &str| {
            runs.set(runs.get() + 1);
            made(sql)
        };
        let a = texts.get("select 1", count);
        let b = texts.get("select 1", |sql: &str| {
            runs.set(runs.get() + 1);
            made(sql)
        });
        assert_eq!(runs.get(), 1);
        assert_eq!(a, b);
        let c = texts.get("select 2", made);
        assert_eq!(&*c.0, "SELECT 2");
    }

    #[test]
    fn stays_bounded_and_skips_long_texts() {
        let texts = Texts::new();
        for i in 0..ENTRIES * 3 {
            texts.get(&format!("select {i}"), made);
        }
        assert!(texts.lock().len() <= ENTRIES);
        let long = "x".repeat(LONGEST + 1);
        texts.get(&long, made);
        let runs = Cell::new(0);
        texts.get(&long, |sql: &str| {
            runs.set(1);
            made(sql)
        });
        assert_eq!(runs.get(), 1, "a text over LONGEST is not remembered");
    }
}
