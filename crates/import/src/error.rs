//! Error types.

/// A record-type description that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// A spec is malformed.
    #[error("record type {spec}: {what}")]
    Invalid {
        /// The type's name.
        spec: String,
        /// What is wrong.
        what: String,
    },
    /// Types reference each other in a cycle, so there is no parents-first order.
    #[error("record types reference each other in a cycle: {0}")]
    Cycle(String),
}

/// Why an import could not run or was cut short. Bad rows are not errors: they are
/// rejections in the [`crate::ImportReport`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The input cannot be opened or read (no such file, I/O error).
    #[error("cannot read {what}: {source}")]
    Read {
        /// The file or stream.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The input's format cannot be used: unknown extension, CSV without a header, a JSON
    /// document that is not an array.
    #[error("unusable input: {0}")]
    Format(String),
    /// The fixed record type given for the whole input is not registered.
    #[error("unknown record type {0:?}")]
    UnknownType(String),
    /// Invalid options.
    #[error("invalid import options: {0}")]
    Options(String),
    /// The database refused a statement; the current chunk (or, all-or-nothing, the whole
    /// import) was rolled back.
    ///
    /// Its text names only what cannot carry a row's value: the SQLSTATE (or SQLite's result
    /// code) and the table, column and constraint the server names, or the kind of driver
    /// failure. The server's message is left out: PostgreSQL quotes the offending value in
    /// some (`invalid input value for enum mood: "…"`), and hosts log this text. The
    /// driver's error, message and all, is the [`source`](std::error::Error::source), for a
    /// host that must debug; it may hold a row's values, so treat it as patient data.
    #[error("database error at chunk starting on line {line}: {}", database_text(.source))]
    Database {
        /// First line of the chunk being written.
        line: u64,
        /// The driver's error. Its text may quote a row's value.
        #[source]
        source: sqlx::Error,
    },
    /// The reading thread failed unexpectedly.
    #[error("reader task failed: {0}")]
    Reader(String),
    /// A task writing a chunk on a forked sink failed unexpectedly; chunks after it were
    /// rolled back.
    #[error("writer task failed: {0}")]
    Writer(String),
}

impl ImportError {
    /// Whether the input could not be read at all (as opposed to a database failure).
    #[must_use]
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            ImportError::Read { .. } | ImportError::Format(_) | ImportError::UnknownType(_)
        )
    }

    /// The exit status a command-line import should end with on this error: 2 (bad usage)
    /// when the input cannot be read or the options are invalid (a chunk size or a number
    /// of workers of 0), 1 when the database or a task failed. An import that ran exits 0,
    /// rejections or not.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        if self.is_input_error() || matches!(self, ImportError::Options(_)) {
            2
        } else {
            1
        }
    }
}

/// What an sqlx error says that cannot be a row's value: the SQLSTATE and the schema names
/// a server's error carries, or the kind of failure; never the server's message or detail.
fn database_text(err: &sqlx::Error) -> String {
    use std::fmt::Write as _;
    match err {
        sqlx::Error::Database(db) => {
            let mut text = String::from("the database refused a statement");
            if let Some(code) = db.code() {
                let _ = write!(text, " (SQLSTATE {code})");
            }
            if let Some(table) = db.table() {
                let _ = write!(text, ", table {table}");
            }
            #[cfg(feature = "postgres")]
            if let Some(column) = db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .and_then(sqlx::postgres::PgDatabaseError::column)
            {
                let _ = write!(text, ", column {column}");
            }
            if let Some(constraint) = db.constraint() {
                let _ = write!(text, ", constraint {constraint}");
            }
            text
        }
        sqlx::Error::Io(e) => format!("cannot talk to the database: {}", e.kind()),
        sqlx::Error::Tls(_) => "TLS with the database failed".into(),
        sqlx::Error::Protocol(_) => "unexpected data from the database".into(),
        sqlx::Error::ColumnDecode { index, .. } => {
            format!("cannot decode column {index} of a returned row")
        }
        sqlx::Error::Decode(_) => "cannot decode a returned value".into(),
        sqlx::Error::Encode(_) => "cannot encode a value to send".into(),
        // Fixed texts, or the names of types and columns: no value.
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::RowNotFound
        | sqlx::Error::BeginFailed
        | sqlx::Error::InvalidSavePointStatement
        | sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::ColumnIndexOutOfBounds { .. } => err.to_string(),
        _ => "database driver error".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_send_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<ImportError>();
        assert_send_sync::<SpecError>();
    }

    #[test]
    fn a_driver_error_is_described_without_its_message() {
        let e = ImportError::Database {
            line: 7,
            source: sqlx::Error::Protocol("value Synthname-Oak".into()),
        };
        let text = e.to_string();
        assert!(text.contains("line 7"), "{text}");
        assert!(!text.contains("Synthname"), "{text}");
        assert!(std::error::Error::source(&e).is_some());
    }
}
