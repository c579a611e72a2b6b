//! One bad variable, and the error that lists every one found.

use std::fmt;

use serde::Serialize;

/// One bad configuration value: which crate read it, which variable, the value (masked when
/// secret) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Problem {
    /// The crate (or part) that read it: `pool`, `querylog`, `cache`, `import`, `vitals`.
    pub component: &'static str,
    /// The environment variable, or for a builder the variable its setter stands for.
    pub variable: String,
    /// The value as given, masked when secret; `None` when the problem is a relation between
    /// variables or the value cannot be shown at all.
    pub value: Option<String>,
    /// What a good value looks like.
    pub expected: String,
}

impl Problem {
    /// A problem of `variable`, which held `value` (`None`: not shown), where `expected` was
    /// expected.
    pub fn new(
        component: &'static str,
        variable: impl Into<String>,
        value: Option<String>,
        expected: impl Into<String>,
    ) -> Self {
        Self {
            component,
            variable: variable.into(),
            value,
            expected: expected.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={v:?}: expected {}", self.variable, self.expected),
            None => write!(f, "{}: expected {}", self.variable, self.expected),
        }
    }
}

/// A configuration with one or more bad values; [`problems`](Self::problems) lists every one,
/// in the order they were read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct ConfigError {
    problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "invalid configuration ({n} problem{}): ",
            if n == 1 { "" } else { "s" }
        )?;
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {p}", p.component)?;
        }
        Ok(())
    }
}

impl ConfigError {
    /// An error of these problems.
    ///
    /// An empty list makes an error that says nothing; callers use [`Env::finish`] or
    /// [`ConfigError::check`], which return `Ok` when nothing was found.
    ///
    /// [`Env::finish`]: crate::Env::finish
    #[must_use]
    pub fn new(problems: Vec<Problem>) -> Self {
        Self { problems }
    }

    /// An error of a single problem.
    #[must_use]
    pub fn one(problem: Problem) -> Self {
        Self::new(vec![problem])
    }

    /// `Ok(value)` when `problems` is empty, else the error listing them.
    ///
    /// # Errors
    /// [`ConfigError`] when any problem was found.
    pub fn check<T>(problems: Vec<Problem>, value: T) -> Result<T, Self> {
        if problems.is_empty() {
            Ok(value)
        } else {
            Err(Self::new(problems))
        }
    }

    /// Every problem found.
    #[must_use]
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// The problems, owned.
    #[must_use]
    pub fn into_problems(self) -> Vec<Problem> {
        self.problems
    }

    /// One error listing the problems of every error given, in order; `None` when none had
    /// any (the facade gathers the crates' errors with it).
    #[must_use]
    pub fn merge(errors: impl IntoIterator<Item = ConfigError>) -> Option<Self> {
        let problems: Vec<Problem> = errors.into_iter().flat_map(|e| e.problems).collect();
        (!problems.is_empty()).then(|| Self::new(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_component_variable_value_and_expectation() {
        let err = ConfigError::new(vec![
            Problem::new("pool", "DB_POOL_MAX", Some("lots".into()), "a whole number"),
            Problem::new("pool", "DB_POOL_MIN", None, "at most DB_POOL_MAX"),
        ]);
        assert_eq!(
            err.to_string(),
            "invalid configuration (2 problems): pool: DB_POOL_MAX=\"lots\": expected a whole \
             number; pool: DB_POOL_MIN: expected at most DB_POOL_MAX"
        );
    }

    #[test]
    fn merge_keeps_every_problem_in_order_and_none_when_clean() {
        let a = ConfigError::one(Problem::new("pool", "A", None, "x"));
        let b = ConfigError::one(Problem::new("cache", "B", None, "y"));
        let merged = ConfigError::merge([a, b]).unwrap();
        let names: Vec<_> = merged
            .problems()
            .iter()
            .map(|p| (p.component, p.variable.as_str()))
            .collect();
        assert_eq!(names, [("pool", "A"), ("cache", "B")]);
        assert!(ConfigError::merge([]).is_none());
    }

    #[test]
    fn errors_are_send_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<ConfigError>();
    }
}
