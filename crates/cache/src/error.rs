//! Errors of the cache.

use std::fmt;

/// One problem found in the configuration: which variable, its value (masked
/// when secret) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The environment variable (or setting) at fault.
    pub variable: String,
    /// The value found, masked if it is a secret.
    pub value: String,
    /// What was expected instead.
    pub expected: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={:?}: expected {}",
            self.variable, self.value, self.expected
        )
    }
}

/// The configuration is invalid; [`ConfigError::problems`] lists every bad
/// variable at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    problems: Vec<ConfigProblem>,
}

impl ConfigError {
    pub(crate) fn new(problems: Vec<ConfigProblem>) -> Self {
        Self { problems }
    }

    /// An error of a single problem: `variable` had `value`, `expected` was
    /// expected instead.
    pub(crate) fn one(
        variable: impl Into<String>,
        value: impl Into<String>,
        expected: impl Into<String>,
    ) -> Self {
        Self::new(vec![ConfigProblem {
            variable: variable.into(),
            value: value.into(),
            expected: expected.into(),
        }])
    }

    /// Every problem found, in the order the variables were read.
    pub fn problems(&self) -> &[ConfigProblem] {
        &self.problems
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid cache configuration: ")?;
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// An error of the cache.
///
/// The [`TieredCache`](crate::TieredCache) never returns Redis errors to its
/// callers (it falls back to L1 and the loader); these errors come from the
/// tiers used directly, from configuration and from encoding.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Redis answered with an error or the connection failed.
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis did not answer within the configured timeout.
    #[error("redis did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The circuit breaker is open: Redis is skipped until the cool-down ends.
    #[error("circuit breaker open: redis skipped")]
    BreakerOpen,
    /// No Redis connection is established (yet).
    #[error("redis not connected")]
    NotConnected,
    /// A value could not be serialised or deserialised.
    #[error("value (de)serialisation failed: {0}")]
    Serde(#[from] serde_json::Error),
    /// A stored payload is malformed (bad header, bad compression).
    #[error("malformed cached payload: {0}")]
    Decode(&'static str),
    /// A payload could not be encrypted or decrypted (wrong key, tampering).
    #[error("encryption failed: {0}")]
    Crypto(String),
}
