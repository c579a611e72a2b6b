//! The facade's error type.

/// Every bad variable of every crate, found in one pass: `vitals-env`'s error, so each
/// [`ConfigProblem`] still names its crate (`component`), variable, value (masked when secret)
/// and what was expected.
pub use vitals_env::ConfigError;
/// One bad configuration value, from any crate's variables.
pub use vitals_env::Problem as ConfigProblem;

/// What can go wrong in the facade.
///
/// A failed statement keeps its structure: [`code`](Error::code) (the SQLSTATE),
/// [`constraint`](Error::constraint) and [`kind`](Error::kind) answer without parsing the
/// message, so a host can tell a duplicate from a dead server after `?`:
///
/// ```
/// use vitals::{DbErrorKind, Error};
///
/// fn status(err: &Error) -> u16 {
///     match err.kind() {
///         Some(DbErrorKind::UniqueViolation) => 409,
///         Some(DbErrorKind::ForeignKeyViolation | DbErrorKind::CheckViolation) => 422,
///         _ if err.is_retryable() => 503,
///         _ => 500,
///     }
/// }
/// assert_eq!(status(&Error::from(sqlx::Error::PoolTimedOut)), 503);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration has bad values.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The pool could not be opened or used. Its text is scrubbed: sqlx's messages may quote
    /// a value.
    #[error("{}", scrubbed(.0))]
    Pool(vitals_pool::PoolError),
    /// A read replica is unusable at start (a primary, another cluster's standby, a bad
    /// URL), or `DATABASE_URL` is a standby; the replica is named, its password masked.
    #[error(transparent)]
    Replica(#[from] vitals_pool::ReplicaError),
    /// The database could not be reached at start, after the retry policy's attempts.
    #[error("cannot reach the database at {url} after {attempts} attempt(s): {reason}")]
    Unreachable {
        /// The URL, its password masked.
        url: String,
        /// Connection attempts made.
        attempts: u32,
        /// The last attempt's error (scrubbed, password masked).
        reason: String,
    },
    /// The schema migrations failed.
    #[error("schema migration failed: {0}")]
    Migrate(String),
    /// A query failed: its kind, SQLSTATE and constraint, and a message scrubbed of PHI.
    #[error("database error: {0}")]
    Database(DatabaseError),
    /// The cache could not be built. Its text is scrubbed: serde's messages quote the value.
    #[error("{}", scrubbed(.0))]
    Cache(#[from] vitals_cache::CacheError),
    /// An import failed as a whole. Its text is scrubbed: a database error inside it carries
    /// sqlx's text.
    #[error("{}", import_text(.0))]
    Import(#[from] vitals_import::ImportError),
    /// The operation needs the other database engine.
    #[error("this operation needs {needed}, but vitals runs on {actual}")]
    WrongEngine {
        /// The engine the operation needs.
        needed: crate::Engine,
        /// The engine configured.
        actual: crate::Engine,
    },
}

/// The Display text of an error from another crate, through the PHI scrubber: every
/// `vitals::Error` that reaches a log or a response says no value, whichever crate it came
/// from. (The source chain keeps the original for matching.)
fn scrubbed(err: &impl std::fmt::Display) -> String {
    vitals_querylog::scrub_text(&err.to_string())
}

/// An import error's text. A database error's is shown as vitals-import writes it: built from
/// the error's structure (SQLSTATE, table, column, constraint, the chunk's first line), never
/// the driver's message, so there is nothing to scrub and the scrubber would only mask the
/// line and the SQLSTATE an operator needs. The other variants go through the scrubber.
fn import_text(err: &vitals_import::ImportError) -> String {
    match err {
        vitals_import::ImportError::Database { .. } => err.to_string(),
        other => scrubbed(other),
    }
}

/// What kind of database failure an [`Error`] is: sqlx's
/// [`ErrorKind`](sqlx::error::ErrorKind) for the four constraint violations (it knows
/// PostgreSQL's SQLSTATEs and SQLite's extended codes), and the classes a host retries.
///
/// | kind | PostgreSQL | SQLite | sqlx |
/// |---|---|---|---|
/// | `UniqueViolation` | 23505 | 2067, 1555 | |
/// | `ForeignKeyViolation` | 23503 | 787 | |
/// | `NotNullViolation` | 23502 | 1299 | |
/// | `CheckViolation` | 23514 | 275 | |
/// | `SerializationFailure` | 40001, 40P01 (deadlock) | | |
/// | `Timeout` | 57014, 55P03 (lock timeout) | 5, 261, 517 (busy) | `PoolTimedOut`, the pool's acquire timeout |
/// | `Connection` | class 08 but 08007, 57P01-57P03, 53300 | | `Io`, `Tls`, `PoolClosed`, `WorkerCrashed` |
/// | `Other` | 08007 (the commit may have landed), anything else | | |
///
/// 08007 (`transaction_resolution_unknown`) is not [`Connection`](DbErrorKind::Connection):
/// the connection went away while the transaction was being committed, so its work may be
/// in the database already, and running it again could do it twice. It is not retryable; the
/// host finds out what landed before doing anything again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DbErrorKind {
    /// A unique or primary-key constraint refused a duplicate.
    UniqueViolation,
    /// A foreign key refused a row whose parent does not exist (or a parent still referenced).
    ForeignKeyViolation,
    /// A `NOT NULL` column was given no value.
    NotNullViolation,
    /// A `CHECK` constraint refused a row.
    CheckViolation,
    /// The transaction lost a serialization conflict (40001) or a deadlock (40P01): run it again.
    SerializationFailure,
    /// A statement or lock timeout cancelled the statement, the pool had no free connection in
    /// time, or SQLite stayed busy.
    Timeout,
    /// The connection was lost, refused or shut down.
    Connection,
    /// Any other failure (a syntax error, a data exception, a row not found, ...).
    Other,
}

impl DbErrorKind {
    /// True for the kinds worth running again unchanged: [`SerializationFailure`],
    /// [`Timeout`] and [`Connection`].
    ///
    /// [`SerializationFailure`]: DbErrorKind::SerializationFailure
    /// [`Timeout`]: DbErrorKind::Timeout
    /// [`Connection`]: DbErrorKind::Connection
    #[must_use]
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::SerializationFailure | Self::Timeout | Self::Connection
        )
    }

    /// The kind of an sqlx error.
    fn of(err: &sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        match err {
            sqlx::Error::Database(db) => match db.kind() {
                ErrorKind::UniqueViolation => Self::UniqueViolation,
                ErrorKind::ForeignKeyViolation => Self::ForeignKeyViolation,
                ErrorKind::NotNullViolation => Self::NotNullViolation,
                ErrorKind::CheckViolation => Self::CheckViolation,
                _ => db.code().map_or(Self::Other, |c| Self::of_code(&c)),
            },
            sqlx::Error::PoolTimedOut => Self::Timeout,
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Self::Connection,
            _ => Self::Other,
        }
    }

    /// The kind of a code sqlx's own kind calls "other": a PostgreSQL SQLSTATE (five
    /// characters) or an SQLite extended result code (a number).
    fn of_code(code: &str) -> Self {
        match code {
            "40001" | "40P01" => Self::SerializationFailure,
            // query_canceled (statement_timeout), lock_not_available (lock_timeout);
            // SQLITE_BUSY, SQLITE_BUSY_RECOVERY, SQLITE_BUSY_SNAPSHOT.
            "57014" | "55P03" | "5" | "261" | "517" => Self::Timeout,
            // admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections.
            "57P01" | "57P02" | "57P03" | "53300" => Self::Connection,
            // transaction_resolution_unknown: the commit may have landed, so not retryable.
            "08007" => Self::Other,
            c if c.len() == 5 && c.starts_with("08") => Self::Connection,
            _ => Self::Other,
        }
    }
}

/// A failed statement, without its data: the kind, the SQLSTATE (or SQLite's extended
/// code), the constraint's name, and the message passed through the PHI scrubber.
///
/// The code and the constraint are identifiers of the schema and kept as the server sent
/// them; the message is scrubbed ([`vitals_querylog::scrub_text`]) because PostgreSQL quotes
/// values in some messages (`invalid input syntax for type integer: "…"`), and the DETAIL
/// line (`Key (email)=(…) already exists`) is never read.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DatabaseError {
    kind: DbErrorKind,
    code: Option<String>,
    constraint: Option<String>,
    message: String,
}

impl std::fmt::Debug for DatabaseError {
    /// The fields bare, not quoted: the message is already scrubbed, and `message: "…"` in a
    /// log reads to a PHI scrubber (the host's, or vitals' own) like a quoted value, which it
    /// would mask along with the constraint name an operator needs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DatabaseError {{ kind: {:?}, code: {}, constraint: {}, message: {} }}",
            self.kind,
            self.code.as_deref().unwrap_or("none"),
            self.constraint.as_deref().unwrap_or("none"),
            self.message
        )
    }
}

impl DatabaseError {
    /// The structure of an sqlx error, its message scrubbed.
    fn of(err: &sqlx::Error) -> Self {
        let db = err.as_database_error();
        DatabaseError {
            kind: DbErrorKind::of(err),
            code: db.and_then(|d| d.code()).map(|c| c.into_owned()),
            constraint: db.and_then(|d| d.constraint()).map(str::to_owned),
            message: vitals_querylog::scrub_text(&err.to_string()),
        }
    }

    /// What kind of failure this is.
    #[must_use]
    pub fn kind(&self) -> DbErrorKind {
        self.kind
    }

    /// The SQLSTATE (`"23505"`), or SQLite's extended result code (`"2067"`); `None` when the
    /// failure did not come from the server (a lost connection, a pool timeout).
    #[must_use]
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The name of the constraint that refused the statement, when the server names one
    /// (PostgreSQL does for unique, foreign-key and check violations; SQLite does not).
    #[must_use]
    pub fn constraint(&self) -> Option<&str> {
        self.constraint.as_deref()
    }

    /// The message, scrubbed of PHI.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    /// True when running the statement (or its transaction) again may succeed.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}

impl Error {
    /// A database error with its structure kept and its text passed through the PHI scrubber:
    /// PostgreSQL puts row values in DETAIL lines (`Key (email)=(…) already exists`), so the
    /// raw text never leaves.
    #[must_use]
    pub fn database(err: &sqlx::Error) -> Self {
        Error::Database(DatabaseError::of(err))
    }

    /// The failed statement inside this error ([`Error::Database`]).
    #[must_use]
    pub fn as_database(&self) -> Option<&DatabaseError> {
        match self {
            Error::Database(db) => Some(db),
            _ => None,
        }
    }

    /// What kind of database failure this is; `None` when it is not one (configuration,
    /// migrations, cache, an import's own failure, engine). The pool's acquire timeout is
    /// [`DbErrorKind::Timeout`], and a pool error carrying an sqlx error has that error's kind;
    /// so has an import that the database failed ([`ImportError::Database`]: a lost
    /// connection mid-import is [`DbErrorKind::Connection`], retryable, as running the import
    /// again brings in the rest).
    ///
    /// [`ImportError::Database`]: vitals_import::ImportError::Database
    #[must_use]
    pub fn kind(&self) -> Option<DbErrorKind> {
        match self {
            Error::Database(db) => Some(db.kind()),
            Error::Import(vitals_import::ImportError::Database { source, .. }) => {
                Some(DbErrorKind::of(source))
            }
            Error::Pool(vitals_pool::PoolError::AcquireTimeout { .. }) => {
                Some(DbErrorKind::Timeout)
            }
            Error::Pool(p) => p.as_sqlx().map(DbErrorKind::of),
            _ => None,
        }
    }

    /// The SQLSTATE of a failed statement (`"23505"`), or SQLite's extended result code
    /// (`"2067"`).
    #[must_use]
    pub fn code(&self) -> Option<&str> {
        self.as_database().and_then(DatabaseError::code)
    }

    /// The name of the constraint that refused a statement, when the server names one.
    #[must_use]
    pub fn constraint(&self) -> Option<&str> {
        self.as_database().and_then(DatabaseError::constraint)
    }

    /// True when the same work may succeed if run again: a serialization failure or a
    /// deadlock (run the whole transaction again), a timeout, a lost connection.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        self.kind().is_some_and(DbErrorKind::is_retryable)
    }
}

impl From<vitals_pool::PoolError> for Error {
    /// A statement the server refused (`PoolError::Sqlx` with a database error, as a failed
    /// `BEGIN` gives) becomes [`Error::Database`], so its SQLSTATE and constraint reach
    /// [`Error::code`] and the HTTP reply; every other pool error stays [`Error::Pool`].
    fn from(err: vitals_pool::PoolError) -> Self {
        match &err {
            vitals_pool::PoolError::Sqlx(e) if e.as_database_error().is_some() => {
                Error::database(e)
            }
            _ => Error::Pool(err),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Error::database(&err)
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        Error::Migrate(vitals_querylog::scrub_text(&err.to_string()))
    }
}

// The errors cross threads: checked by every build, not only by the tests.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<(Error, ConfigError, DatabaseError)>();
};

/// docs/errors.md's Rust snippets, compiled as doctests so they cannot rot.
#[cfg(all(doctest, feature = "http"))]
#[doc = include_str!("../../../docs/errors.md")]
pub struct ErrorsDoctests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_import_database_error_keeps_its_line_and_shows_no_value() {
        let err = Error::Import(vitals_import::ImportError::Database {
            line: 1207,
            source: sqlx::Error::Protocol("row Synthname-Oak 2014-03-09".into()),
        });
        let text = err.to_string();
        assert!(text.contains("line 1207"), "{text}");
        assert!(!text.contains("Synthname"), "{text}");
        assert!(!text.contains("2014-03-09"), "{text}");
    }

    #[test]
    fn errors_without_a_server_have_a_kind_and_no_code() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        for (err, kind) in [
            (sqlx::Error::PoolTimedOut, DbErrorKind::Timeout),
            (sqlx::Error::PoolClosed, DbErrorKind::Connection),
            (sqlx::Error::WorkerCrashed, DbErrorKind::Connection),
            (sqlx::Error::Io(io), DbErrorKind::Connection),
            (sqlx::Error::RowNotFound, DbErrorKind::Other),
        ] {
            let err = Error::from(err);
            assert_eq!(err.kind(), Some(kind), "{err}");
            assert_eq!(err.code(), None);
            assert_eq!(err.is_retryable(), kind != DbErrorKind::Other);
        }
        let waited = std::time::Duration::from_secs(1);
        let pool = Error::Pool(vitals_pool::PoolError::AcquireTimeout { waited });
        assert_eq!(pool.kind(), Some(DbErrorKind::Timeout));
        assert!(pool.is_retryable());
        assert_eq!(Error::Migrate("x".into()).kind(), None);
    }

    #[test]
    fn codes_sqlx_calls_other_are_classified() {
        for (code, kind) in [
            ("40001", DbErrorKind::SerializationFailure),
            ("40P01", DbErrorKind::SerializationFailure),
            ("57014", DbErrorKind::Timeout),
            ("55P03", DbErrorKind::Timeout),
            ("5", DbErrorKind::Timeout),
            ("08006", DbErrorKind::Connection),
            ("08000", DbErrorKind::Connection),
            ("08007", DbErrorKind::Other),
            ("57P01", DbErrorKind::Connection),
            ("22P02", DbErrorKind::Other),
            // SQLite's SQLITE_IOERR_SHORT_READ is a number, not class 08.
            ("522", DbErrorKind::Other),
        ] {
            assert_eq!(DbErrorKind::of_code(code), kind, "{code}");
        }
    }

    /// The pool's commit whose reply was lost (08007, the I/O error its source): not retried
    /// by the pool, and not a 503 here either.
    #[test]
    fn a_commit_of_unknown_outcome_is_not_retryable() {
        let lost = sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into());
        let pool_err = vitals_pool::PoolError::from(vitals_pool::CommitOutcomeUnknown::wrap(lost));
        assert!(pool_err.is_commit_outcome_unknown());
        let err = Error::from(pool_err);
        assert_eq!(err.code(), Some("08007"), "{err}");
        assert_eq!(err.kind(), Some(DbErrorKind::Other), "{err}");
        assert!(!err.is_retryable(), "{err}");
    }

    /// 08007 from a real server (raised by PL/pgSQL, as a server or a proxy would send it):
    /// the commit may have landed, so it is neither retryable nor a 503 with `Retry-After`.
    #[sqlx::test(migrations = false)]
    async fn transaction_resolution_unknown_is_not_retryable(pool: sqlx::PgPool) {
        let err = sqlx::query(
            "DO $$ BEGIN RAISE EXCEPTION 'resolution unknown' USING ERRCODE = '08007'; END $$",
        )
        .execute(&pool)
        .await
        .unwrap_err();
        let err = Error::from(err);
        assert_eq!(err.code(), Some("08007"), "{err}");
        assert_eq!(err.kind(), Some(DbErrorKind::Other), "{err}");
        assert!(!err.is_retryable(), "{err}");
        #[cfg(feature = "http")]
        {
            let response = axum::response::IntoResponse::into_response(err);
            assert_eq!(
                response.status(),
                axum::http::StatusCode::INTERNAL_SERVER_ERROR
            );
            assert!(response
                .headers()
                .get(axum::http::header::RETRY_AFTER)
                .is_none());
        }
    }
}
