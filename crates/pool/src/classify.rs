//! What kind of sqlx error this is: transient or not, and a description that carries no data.
//!
//! The retry policy, the error type, the monitored handle and the health check all ask these
//! questions; they live here so that each of those files imports this one and none of them
//! imports another for it.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::io::ErrorKind;

use sqlx::error::DatabaseError;

/// The SQLSTATEs retried by default (see [`retry`](crate::retry) for why each is, and why
/// `08007` is not).
pub const TRANSIENT_SQLSTATES: &[&str] = &[
    "40001", "40P01", "57P01", "57P02", "57P03", "53300", "08000", "08001", "08003", "08004",
    "08006",
];

/// SQLSTATE `08007` transaction_resolution_unknown: the code of a [`CommitOutcomeUnknown`].
pub const OUTCOME_UNKNOWN_SQLSTATE: &str = "08007";

/// True for the transient errors listed in the [`retry`](crate::retry) module docs: the
/// network, the pool's acquire timeout and [`TRANSIENT_SQLSTATES`]. Never for a commit whose
/// outcome is unknown ([`is_commit_outcome_unknown`]).
#[must_use]
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(e) => is_transient_io(e.kind()),
        sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| TRANSIENT_SQLSTATES.contains(&c.as_ref())),
        _ => false,
    }
}

fn is_transient_io(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::TimedOut
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof
            | ErrorKind::NotConnected
    )
}

/// True when `error` says a transaction may or may not have committed: a
/// [`CommitOutcomeUnknown`] from [`MonitoredTransaction::commit`](crate::MonitoredTransaction::commit),
/// or SQLSTATE `08007` from the server. Such work must not be run again blindly: it may be
/// in the database already.
#[must_use]
pub fn is_commit_outcome_unknown(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|c| c == OUTCOME_UNKNOWN_SQLSTATE)
}

/// The connection broke while `COMMIT` was in flight: the transaction may have committed (its
/// reply was lost) or not, and only the data can tell.
/// [`MonitoredTransaction::commit`](crate::MonitoredTransaction::commit) returns it, as
/// `sqlx::Error::Database` with SQLSTATE `08007` (transaction_resolution_unknown), in place of
/// the I/O error or the server's `57P01`/`57P02` that ended the connection, so that neither
/// [`is_transient`] nor [`retry`](crate::retry::retry) runs the work again; the error that
/// ended the connection is its [`source`](std::error::Error::source) and [`cause`](Self::cause).
///
/// ```
/// use vitals_pool::{is_commit_outcome_unknown, is_transient, CommitOutcomeUnknown};
/// let lost = sqlx::Error::Io(std::io::ErrorKind::UnexpectedEof.into());
/// assert!(is_transient(&lost));
/// let err = CommitOutcomeUnknown::wrap(lost);
/// assert!(is_commit_outcome_unknown(&err) && !is_transient(&err));
/// let inner = err.as_database_error().unwrap().downcast_ref::<CommitOutcomeUnknown>();
/// assert!(matches!(inner.cause(), sqlx::Error::Io(_)));
/// ```
#[derive(Debug)]
pub struct CommitOutcomeUnknown {
    cause: sqlx::Error,
}

impl CommitOutcomeUnknown {
    /// `cause` (the error `COMMIT` ended with) as the sqlx error of an unknown outcome.
    #[must_use]
    pub fn wrap(cause: sqlx::Error) -> sqlx::Error {
        sqlx::Error::Database(Box::new(Self { cause }))
    }

    /// The error that ended the connection during `COMMIT`.
    #[must_use]
    pub fn cause(&self) -> &sqlx::Error {
        &self.cause
    }
}

impl fmt::Display for CommitOutcomeUnknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl StdError for CommitOutcomeUnknown {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.cause)
    }
}

impl DatabaseError for CommitOutcomeUnknown {
    fn message(&self) -> &str {
        "connection lost during COMMIT: the transaction may or may not have committed"
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(OUTCOME_UNKNOWN_SQLSTATE))
    }

    fn as_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn StdError + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn StdError + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        sqlx::error::ErrorKind::Other
    }
}

/// True when `error`, raised by `COMMIT`, leaves its outcome unknown: the connection broke (an
/// I/O error, a crashed worker) or the server ended it (`57P01` admin_shutdown, `57P02`
/// crash_shutdown, class `08`) before the reply was read. A server's answer that the
/// transaction failed (`40001`, `23505` of a deferred constraint, ...) is an outcome: it did
/// not commit.
pub(crate) fn loses_commit_outcome(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c == "57P01" || c == "57P02" || c.starts_with("08")),
        _ => false,
    }
}

/// A short description of an error that carries no data: the I/O kind or the SQLSTATE, never
/// a message (a database message may quote a value).
pub(crate) fn error_kind(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) => format!("io: {:?}", io.kind()),
        sqlx::Error::Database(db) => format!(
            "database error, sqlstate {}",
            db.code().as_deref().unwrap_or("unknown")
        ),
        sqlx::Error::Tls(_) => "tls error".to_owned(),
        sqlx::Error::PoolTimedOut => "pool timed out".to_owned(),
        sqlx::Error::PoolClosed => "pool closed".to_owned(),
        sqlx::Error::Protocol(_) => "protocol error".to_owned(),
        sqlx::Error::Configuration(_) => "configuration error".to_owned(),
        _ => "other error".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(kind: ErrorKind) -> sqlx::Error {
        sqlx::Error::Io(std::io::Error::from(kind))
    }

    #[test]
    fn network_and_pool_errors_are_transient() {
        for k in [
            ErrorKind::ConnectionRefused,
            ErrorKind::ConnectionReset,
            ErrorKind::TimedOut,
            ErrorKind::BrokenPipe,
        ] {
            assert!(is_transient(&io(k)), "{k:?}");
        }
        assert!(!is_transient(&io(ErrorKind::PermissionDenied)));
        assert!(is_transient(&sqlx::Error::PoolTimedOut));
        assert!(!is_transient(&sqlx::Error::PoolClosed));
        assert!(!is_transient(&sqlx::Error::RowNotFound));
    }

    #[test]
    fn a_lost_commit_is_outcome_unknown_and_not_transient() {
        for k in [ErrorKind::ConnectionReset, ErrorKind::UnexpectedEof] {
            let lost = io(k);
            assert!(is_transient(&lost) && loses_commit_outcome(&lost), "{k:?}");
            let err = CommitOutcomeUnknown::wrap(lost);
            assert!(is_commit_outcome_unknown(&err), "{k:?}");
            assert!(!is_transient(&err), "{k:?}");
            assert!(!loses_commit_outcome(&sqlx::Error::RowNotFound));
            let unknown = err
                .as_database_error()
                .and_then(|db| db.try_downcast_ref::<CommitOutcomeUnknown>());
            assert!(
                matches!(unknown.map(CommitOutcomeUnknown::cause), Some(sqlx::Error::Io(e)) if e.kind() == k)
            );
            let source = unknown
                .and_then(StdError::source)
                .and_then(|s| s.downcast_ref::<sqlx::Error>());
            assert!(matches!(source, Some(sqlx::Error::Io(e)) if e.kind() == k));
        }
    }

    #[test]
    fn error_kind_names_the_kind_not_the_message() {
        assert_eq!(
            error_kind(&io(ErrorKind::ConnectionReset)),
            "io: ConnectionReset"
        );
        assert_eq!(
            error_kind(&sqlx::Error::Protocol("secret value 42".into())),
            "protocol error"
        );
    }
}
