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
    #[error("database error at chunk starting on line {line}: {source}")]
    Database {
        /// First line of the chunk being written.
        line: u64,
        /// The driver's error.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_send_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<ImportError>();
        assert_send_sync::<SpecError>();
    }
}
