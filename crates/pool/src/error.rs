//! The crate's error type.

use std::time::Duration;

use crate::classify::is_transient;

/// What can go wrong when connecting or acquiring through this crate.
///
/// Messages never contain a password: URLs are masked with [`mask_url`](crate::mask_url)
/// before they are stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The database URL could not be parsed.
    #[error("invalid database url {url}: {source}")]
    InvalidUrl {
        /// The URL with its password masked.
        url: String,
        /// What sqlx said about it.
        #[source]
        source: sqlx::Error,
    },
    /// The first connection of a new pool could not be opened.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The URL with its password masked.
        url: String,
        /// Why the connection failed.
        #[source]
        source: sqlx::Error,
    },
    /// No connection became free within the acquire timeout.
    #[error("no connection free after waiting {waited:?} (acquire timeout)")]
    AcquireTimeout {
        /// How long the caller waited.
        waited: Duration,
    },
    /// Acquiring a connection failed for another reason (connect error, pool closed).
    #[error("cannot acquire a connection: {0}")]
    Acquire(#[source] sqlx::Error),
    /// A statement or transaction failed.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    /// A file or directory for an embedded SQLite database could not be created.
    #[error("cannot create the directory of sqlite database {path}: {source}")]
    CreateSqliteDir {
        /// The directory that could not be created.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl PoolError {
    /// The underlying sqlx error, if there is one (used by the retry classifier).
    #[must_use]
    pub fn as_sqlx(&self) -> Option<&sqlx::Error> {
        match self {
            Self::InvalidUrl { source, .. } | Self::Connect { source, .. } => Some(source),
            Self::Acquire(e) | Self::Sqlx(e) => Some(e),
            Self::AcquireTimeout { .. } | Self::CreateSqliteDir { .. } => None,
        }
    }

    /// True when the error is worth retrying: the acquire timeout, and the sqlx errors
    /// [`is_transient`](crate::retry::is_transient) accepts; never a bad URL.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::InvalidUrl { .. } | Self::CreateSqliteDir { .. } => false,
            Self::AcquireTimeout { .. } => true,
            Self::Connect { source, .. } | Self::Acquire(source) | Self::Sqlx(source) => {
                is_transient(source)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_error_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<PoolError>();
    }
}
