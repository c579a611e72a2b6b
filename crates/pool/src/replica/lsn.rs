//! [`Lsn`]: a position in PostgreSQL's write-ahead log, as `pg_current_wal_insert_lsn()` and
//! `pg_last_wal_replay_lsn()` return it (`16/B374D848`), comparable across the primary and its
//! standbys.

use std::fmt;

/// A WAL position. Ordered: a standby whose replay position is at or past a write's `Lsn` has
/// replayed that write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

/// The server's WAL geometry, `wal_block_size` and `wal_segment_size` in bytes, read once at
/// start: where [`Lsn::normalized`] looks for page headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct WalSizes {
    pub(crate) block: u64,
    pub(crate) segment: u64,
}

/// A WAL page header's size at a page start (`SizeOfXLogShortPHD`) and at a segment start
/// (`SizeOfXLogLongPHD`).
const SHORT_HEADER: u64 = 24;
const LONG_HEADER: u64 = 40;

impl Lsn {
    /// Parses PostgreSQL's text form, `HI/LO` in hexadecimal.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let (hi, lo) = text.trim().split_once('/')?;
        let hi = u32::from_str_radix(hi, 16).ok()?;
        let lo = u32::from_str_radix(lo, 16).ok()?;
        Some(Self((u64::from(hi) << 32) | u64::from(lo)))
    }

    /// The insert position moved back over an empty page's header: when the last record ends
    /// exactly at a page (or segment) boundary, `pg_current_wal_insert_lsn()` points past the
    /// next page's header, where a standby that replayed everything stops at the boundary
    /// (`pg_last_wal_replay_lsn()` is the end of the last record). Without this, a write
    /// followed by silence would never look replayed. `block` and `segment` are the server's
    /// `wal_block_size` and `wal_segment_size` in bytes.
    #[must_use]
    pub fn normalized(self, block: u64, segment: u64) -> Self {
        if segment > 0 && self.0 % segment == LONG_HEADER {
            Self(self.0 - LONG_HEADER)
        } else if block > 0 && self.0 % block == SHORT_HEADER {
            Self(self.0 - SHORT_HEADER)
        } else {
            self
        }
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_orders_and_prints_postgres_text() {
        let a = Lsn::parse("0/3000028").unwrap();
        let b = Lsn::parse("16/B374D848").unwrap();
        assert!(a < b);
        assert_eq!(b.to_string(), "16/B374D848");
        assert_eq!(Lsn::parse("16/"), None);
        assert_eq!(Lsn::parse("x"), None);
    }

    #[test]
    fn a_header_past_a_boundary_is_the_boundary() {
        let (block, seg) = (8192, 16 << 20);
        assert_eq!(
            Lsn::parse("0/3000028").unwrap().normalized(block, seg),
            Lsn(0x300_0000)
        );
        assert_eq!(Lsn(8192 * 5 + 24).normalized(block, seg), Lsn(8192 * 5));
        assert_eq!(
            Lsn(8192 * 5 + 48).normalized(block, seg),
            Lsn(8192 * 5 + 48)
        );
    }
}
