//! Fingerprints: a stable keyed 64-bit hash of the sanitised statement.

use std::fmt;
use std::hash::Hasher;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use siphasher::sip::SipHasher13;

use crate::sanitize::sanitize_sql;

/// The key used by [`fingerprint`] and [`Fingerprinter::default`]. Fixed so that
/// fingerprints are stable across processes and releases.
pub const DEFAULT_FINGERPRINT_KEY: [u8; 16] = *b"vitals-querylog1";

/// A 64-bit fingerprint of a statement's structure. Shown (and serialised) as
/// 16 lower-case hex digits.
///
/// Statements that differ only in literal values, list lengths, whitespace,
/// comments or keyword case share one; a different table, column, operator or
/// clause gives another (up to the odds of a 64-bit collision).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Fingerprint(pub u64);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The error of parsing a [`Fingerprint`] from text that is not 1 to 16 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fingerprint {text:?}: expected 16 hex digits")]
pub struct ParseFingerprintError {
    text: String,
}

impl FromStr for Fingerprint {
    type Err = ParseFingerprintError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 16 {
            return Err(ParseFingerprintError { text: s.into() });
        }
        u64::from_str_radix(s, 16)
            .map(Fingerprint)
            .map_err(|_| ParseFingerprintError { text: s.into() })
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Computes fingerprints with SipHash-1-3 under a 128-bit key. `Copy`, so share
/// it by value.
///
/// ```
/// use vitals_querylog::Fingerprinter;
///
/// let f = Fingerprinter::new(*b"0123456789abcdef");
/// assert_eq!(
///     f.fingerprint("SELECT * FROM t WHERE id IN (1, 2)"),
///     f.fingerprint("select *  from t where id in (3) -- again"),
/// );
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Fingerprinter {
    k0: u64,
    k1: u64,
}

impl Default for Fingerprinter {
    fn default() -> Self {
        Self::new(DEFAULT_FINGERPRINT_KEY)
    }
}

impl Fingerprinter {
    /// A fingerprinter with this key.
    #[must_use]
    pub fn new(key: [u8; 16]) -> Self {
        let mut k0 = [0u8; 8];
        let mut k1 = [0u8; 8];
        k0.copy_from_slice(&key[..8]);
        k1.copy_from_slice(&key[8..]);
        Self {
            k0: u64::from_le_bytes(k0),
            k1: u64::from_le_bytes(k1),
        }
    }

    /// Sanitises `sql` and fingerprints the result.
    #[must_use]
    pub fn fingerprint(&self, sql: &str) -> Fingerprint {
        self.fingerprint_sanitized(&sanitize_sql(sql))
    }

    /// Fingerprints text that [`sanitize_sql`] already produced (saves a pass).
    /// Surrounding whitespace and trailing `;` are ignored, as PostgreSQL's own
    /// fingerprinting ignores them.
    #[must_use]
    pub fn fingerprint_sanitized(&self, sanitized: &str) -> Fingerprint {
        let text = sanitized.trim_matches(|c: char| c.is_whitespace() || c == ';');
        let mut h = SipHasher13::new_with_keys(self.k0, self.k1);
        h.write(text.as_bytes());
        Fingerprint(h.finish())
    }
}

/// The fingerprint of `sql` under [`DEFAULT_FINGERPRINT_KEY`].
///
/// ```
/// use vitals_querylog::fingerprint;
///
/// let a = fingerprint("SELECT name FROM students WHERE id = 42");
/// assert_eq!(a, fingerprint("select name from students where id = 7"));
/// assert_ne!(a, fingerprint("SELECT name FROM staff WHERE id = 42"));
/// assert_eq!(a.to_string().len(), 16);
/// ```
#[must_use]
pub fn fingerprint(sql: &str) -> Fingerprint {
    Fingerprinter::default().fingerprint(sql)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each of `others` shares the fingerprint of `base`.
    fn shares(base: &str, others: &[&str]) {
        let base = fingerprint(base);
        for other in others {
            assert_eq!(base, fingerprint(other), "{other:?}");
        }
    }

    /// None of `others` shares the fingerprint of `base`.
    fn differs(base: &str, others: &[&str]) {
        let base = fingerprint(base);
        for other in others {
            assert_ne!(base, fingerprint(other), "{other:?}");
        }
    }

    #[test]
    fn same_structure_shares_a_fingerprint() {
        shares(
            "SELECT * FROM students WHERE id IN (1, 2, 3) AND name = 'Ann'",
            &[
                "select * from students where id in (9) and name = 'Bob'",
                "SELECT *\n  FROM students /* x */ WHERE id IN (1,2,3,4,5) AND name = E'Zoë'",
                "SELECT * FROM Students WHERE ID IN ( 7 ) AND NAME = $$x$$",
            ],
        );
    }

    #[test]
    fn different_structure_gets_another() {
        differs(
            "SELECT * FROM students WHERE id = 1",
            &[
                "SELECT * FROM staff WHERE id = 1",
                "SELECT * FROM students WHERE school_id = 1",
                "SELECT * FROM students WHERE id > 1",
                "SELECT * FROM students WHERE id = 1 ORDER BY id",
            ],
        );
    }

    #[test]
    fn trailing_semicolon_and_whitespace_are_ignored() {
        shares(
            "SELECT * FROM t WHERE id = $1",
            &[
                "SELECT * FROM t WHERE id = $1;",
                "  SELECT * FROM t WHERE id = $1 ;\n",
                "\tSELECT * FROM t WHERE id = $1;;",
            ],
        );
    }

    #[test]
    fn lists_and_rows_with_casts_collapse() {
        for (many, one) in [
            (
                "SELECT * FROM t WHERE id IN ($1::uuid, $2::uuid, $3::uuid)",
                "SELECT * FROM t WHERE id IN ($1::uuid)",
            ),
            (
                "SELECT * FROM t WHERE id IN ('a'::uuid, 'b'::uuid)",
                "SELECT * FROM t WHERE id IN ('a'::uuid)",
            ),
            (
                "SELECT * FROM t WHERE id IN ($1, $2, $3)",
                "SELECT * FROM t WHERE id IN ($1)",
            ),
            (
                "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4), ($5, $6)",
                "INSERT INTO t (a, b) VALUES ($1, $2)",
            ),
            (
                "INSERT INTO t (a, b) VALUES ($1::uuid, $2::int), ($3::uuid, $4::int)",
                "INSERT INTO t (a, b) VALUES ($1::uuid, $2::int)",
            ),
        ] {
            shares(one, &[many]);
        }
        // The cast is structure: another type is another statement.
        differs(
            "SELECT * FROM t WHERE id IN ($1::uuid)",
            &["SELECT * FROM t WHERE id IN ($1::int)"],
        );
    }

    #[test]
    fn operators_and_names_keep_their_fingerprints_apart() {
        for (a, b) in [
            ("SELECT d->'k' FROM t", "SELECT d->>'k' FROM t"),
            (
                "SELECT * FROM t WHERE d ? 'k'",
                "SELECT * FROM t WHERE d ?| ARRAY['k']",
            ),
            (
                "SELECT * FROM t WHERE d ? 'k'",
                "SELECT * FROM t WHERE d ?& 'k'",
            ),
            ("SELECT * FROM t_1", "SELECT * FROM t_2"),
            ("SELECT a FROM t", "SELECT \"A\" FROM t"),
        ] {
            differs(a, &[b]);
        }
    }

    #[test]
    fn ordinals_are_literals() {
        // Decided in docs/querylog.md: a number is always a literal, also as an
        // ordinal, so `GROUP BY 1` and `GROUP BY 2` share a fingerprint.
        shares(
            "SELECT a, b, count(*) FROM t GROUP BY 1, 2 ORDER BY 1",
            &["SELECT a, b, count(*) FROM t GROUP BY 2, 1 ORDER BY 2"],
        );
    }

    #[test]
    fn is_stable_across_releases() {
        // Dashboards key on fingerprints: changing the key or the sanitiser's
        // output changes this value and must be a deliberate, noted change.
        assert_eq!(fingerprint("SELECT 1").to_string(), "e0c175a4d1fa916e");
    }

    #[test]
    fn key_changes_the_fingerprint() {
        let a = Fingerprinter::new([1; 16]).fingerprint("SELECT 1");
        let b = Fingerprinter::new([2; 16]).fingerprint("SELECT 1");
        assert_ne!(a, b);
    }

    #[test]
    fn display_parse_and_serde_round_trip() {
        let f = Fingerprint(0xab);
        assert_eq!(f.to_string(), "00000000000000ab");
        assert_eq!("00000000000000ab".parse::<Fingerprint>(), Ok(f));
        assert!("xyz".parse::<Fingerprint>().is_err());
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(json, "\"00000000000000ab\"");
        assert_eq!(serde_json::from_str::<Fingerprint>(&json).unwrap(), f);
    }
}
