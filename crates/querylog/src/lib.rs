//! placeholder
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
mod fingerprint;
mod sanitize;
mod scrub;
pub use fingerprint::{
    fingerprint, Fingerprint, Fingerprinter, ParseFingerprintError, DEFAULT_FINGERPRINT_KEY,
};
pub use sanitize::sanitize_sql;
pub use scrub::{sanitize_any, scrub_log_line, scrub_text};
