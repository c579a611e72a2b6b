//! `CACHE_EAGER_REFRESH`'s value: a fraction of an entry's TTL (`fail_safe.rs` uses it; the
//! configuration reads and checks it), apart so that the configuration depends on no cache
//! mechanism.

/// What `CACHE_EAGER_REFRESH` takes, in its problem.
pub(crate) const EAGER_EXPECTED: &str =
    "a fraction of the TTL between 0 and 1 exclusive (0.9, or 90%), or 0 for off";

/// `CACHE_EAGER_REFRESH`: `0.9` or `90%`; `0` (or `0%`) is off (`Some(None)`).
pub(crate) fn parse_fraction(v: &str) -> Option<Option<f64>> {
    let v = v.trim();
    let f = match v.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().ok()? / 100.0,
        None => v.parse::<f64>().ok()?,
    };
    if f == 0.0 {
        return Some(None);
    }
    (f > 0.0 && f < 1.0).then_some(Some(f))
}
