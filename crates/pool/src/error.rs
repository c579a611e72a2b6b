//! The crate's error type.

use std::time::Duration;

use crate::classify::{error_kind, is_commit_outcome_unknown, is_transient};

/// What can go wrong when connecting or acquiring through this crate.
///
/// Messages never contain a password: URLs are masked with [`mask_url`](crate::mask_url)
/// before they are stored. [`Acquire`](Self::Acquire) and [`Sqlx`](Self::Sqlx) show the kind
/// of the error (and its SQLSTATE), never the server's text, which may quote a value; the
/// sqlx error itself stays the [`source`](std::error::Error::source) for matching.
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
    #[error("cannot acquire a connection: {}", error_kind(.0))]
    Acquire(#[source] sqlx::Error),
    /// A statement or transaction failed.
    #[error("{}", statement_failure(.0))]
    Sqlx(#[from] sqlx::Error),
    /// `DB_PGBOUNCER=session`, but the server side shares server connections between clients
    /// (PgBouncer in transaction mode): session settings and sqlx's named statements would
    /// reach other clients.
    #[error(
        "DB_PGBOUNCER=session, but {url} shares server connections between clients \
         (PgBouncer pool_mode=transaction?): set DB_PGBOUNCER=transaction"
    )]
    PgBouncerMismatch {
        /// The server, without credentials.
        url: String,
    },
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
            Self::AcquireTimeout { .. }
            | Self::CreateSqliteDir { .. }
            | Self::PgBouncerMismatch { .. } => None,
        }
    }

    /// True when a transaction may or may not have committed: a
    /// [`CommitOutcomeUnknown`](crate::CommitOutcomeUnknown) (the connection broke during
    /// `COMMIT`) or SQLSTATE `08007`. Never transient: find out what landed before running
    /// the work again.
    #[must_use]
    pub fn is_commit_outcome_unknown(&self) -> bool {
        self.as_sqlx().is_some_and(is_commit_outcome_unknown)
    }

    /// True when the error is worth retrying: the acquire timeout, and the sqlx errors
    /// [`is_transient`](crate::retry::is_transient) accepts; never a bad URL, never a commit
    /// whose outcome is unknown.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::InvalidUrl { .. }
            | Self::CreateSqliteDir { .. }
            | Self::PgBouncerMismatch { .. } => false,
            Self::AcquireTimeout { .. } => true,
            Self::Connect { source, .. } | Self::Acquire(source) | Self::Sqlx(source) => {
                is_transient(source)
            }
        }
    }
}

/// `database error: sqlstate 23505` for an error the server returned, else `database error:`
/// and the kind (`io: ConnectionReset`): no message, which may quote a value.
fn statement_failure(e: &sqlx::Error) -> String {
    match e.as_database_error().and_then(|d| d.code()) {
        Some(code) => format!("database error: sqlstate {code}"),
        None => format!("database error: {}", error_kind(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acquire_and_sqlx_show_the_kind_not_the_message() {
        let acquire = PoolError::Acquire(sqlx::Error::Protocol("value 'Ann Lee' quoted".into()));
        assert_eq!(
            acquire.to_string(),
            "cannot acquire a connection: protocol error"
        );
        assert!(std::error::Error::source(&acquire).is_some());
        let io = PoolError::from(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "peer 10.0.0.7 said secret",
        )));
        assert_eq!(io.to_string(), "database error: io: ConnectionReset");
        assert!(matches!(io, PoolError::Sqlx(sqlx::Error::Io(_))));
    }
}
