//! What kind of sqlx error this is: transient or not, and a description that carries no data.
//!
//! The retry policy, the error type, the monitored handle and the health check all ask these
//! questions; they live here so that each of those files imports this one and none of them
//! imports another for it.

use std::io::ErrorKind;

/// The SQLSTATEs retried by default (see [`retry`](crate::retry) for why each is, and why
/// `08007` is not).
pub const TRANSIENT_SQLSTATES: &[&str] = &[
    "40001", "40P01", "57P01", "57P02", "57P03", "53300", "08000", "08001", "08003", "08004",
    "08006",
];

/// True for the transient errors listed in the [`retry`](crate::retry) module docs: the
/// network, the pool's acquire timeout and [`TRANSIENT_SQLSTATES`].
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
