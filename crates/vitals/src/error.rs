//! The facade's error type.

/// Every bad variable of every crate, found in one pass: `vitals-env`'s error, so each
/// [`ConfigProblem`] still names its crate (`component`), variable, value (masked when secret)
/// and what was expected.
pub use vitals_env::ConfigError;
/// One bad configuration value, from any crate's variables.
pub use vitals_env::Problem as ConfigProblem;

/// What can go wrong in the facade.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration has bad values.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The pool could not be opened or used.
    #[error(transparent)]
    Pool(#[from] vitals_pool::PoolError),
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
    /// A query failed; the text is scrubbed of PHI.
    #[error("database error: {0}")]
    Database(String),
    /// The cache could not be built.
    #[error(transparent)]
    Cache(#[from] vitals_cache::CacheError),
    /// An import failed as a whole.
    #[error(transparent)]
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

impl Error {
    /// A database error with its text passed through the PHI scrubber: PostgreSQL puts row
    /// values in DETAIL lines (`Key (email)=(…) already exists`), so the raw text never leaves.
    pub fn database(err: &sqlx::Error) -> Self {
        Error::Database(vitals_querylog::scrub_text(&err.to_string()))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn errors_are_send_and_sync() {
        assert_send_sync::<Error>();
        assert_send_sync::<ConfigError>();
    }
}
