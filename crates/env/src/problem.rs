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
    /// The variable of every problem, in order (a test's or a host's quick look; the problems
    /// themselves say more).
    #[must_use]
    pub fn variables(&self) -> Vec<&str> {
        self.problems.iter().map(|p| p.variable.as_str()).collect()
    }

    /// The needles this error's text does not contain, in the order given; empty when it names
    /// them all (a test's check that every bad variable, or the words of a problem, is said).
    ///
    /// ```
    /// use vitals_env::{ConfigError, Problem};
    ///
    /// let err = ConfigError::one(Problem::new("app", "APP_ROWS", Some("x".into()), "a number"));
    /// assert_eq!(err.unmentioned(&["APP_ROWS=\"x\"", "APP_STRICT"]), ["APP_STRICT"]);
    /// ```
    #[must_use]
    pub fn unmentioned<'n>(&self, needles: &[&'n str]) -> Vec<&'n str> {
        let text = self.to_string();
        needles
            .iter()
            .copied()
            .filter(|n| !text.contains(n))
            .collect()
    }

    /// The first problem of `variable`, if there is one.
    #[must_use]
    pub fn problem(&self, variable: &str) -> Option<&Problem> {
        self.problems.iter().find(|p| p.variable == variable)
    }

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

    /// Both values, or one error listing the problems of both (a service reading two
    /// configurations reports every bad variable at once, not the first half).
    ///
    /// ```
    /// use vitals_env::{ConfigError, Problem};
    ///
    /// let bad = |v: &str| ConfigError::one(Problem::new("x", v, None, "a number"));
    /// let both: Result<(u8, u8), _> = ConfigError::both(Err(bad("A")), Err(bad("B")));
    /// assert_eq!(both.unwrap_err().variables(), ["A", "B"]);
    /// assert_eq!(ConfigError::both(Ok::<_, ConfigError>(1), Ok(2)).unwrap(), (1, 2));
    /// ```
    ///
    /// # Errors
    /// The problems of whichever of `a` and `b` failed, `a`'s first.
    pub fn both<A, B>(a: Result<A, Self>, b: Result<B, Self>) -> Result<(A, B), Self> {
        match (a, b) {
            (Ok(a), Ok(b)) => Ok((a, b)),
            (Err(a), Ok(_)) => Err(a),
            (Ok(_), Err(b)) => Err(b),
            (Err(mut a), Err(b)) => {
                a.problems.extend(b.problems);
                Err(a)
            }
        }
    }
}

/// The problems of one component, collected one by one: by an [`Env`](crate::Env) while it
/// reads, or by a builder's `build` or a configuration's `validate` that checks values set in
/// code, each problem named by the variable its setting stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Problems {
    component: &'static str,
    list: Vec<Problem>,
}

impl Problems {
    /// No problems yet, of `component`.
    pub fn new(component: &'static str) -> Self {
        Self {
            component,
            list: Vec::new(),
        }
    }

    /// The component named in these problems.
    #[must_use]
    pub fn component(&self) -> &'static str {
        self.component
    }

    /// Records that `variable` held `value`, where `expected` was expected.
    pub fn bad(&mut self, variable: &str, value: impl fmt::Display, expected: impl Into<String>) {
        self.push(variable, Some(value.to_string()), expected);
    }

    /// Records a problem of `variable` that shows no value (a relation between variables).
    pub fn relation(&mut self, variable: &str, expected: impl Into<String>) {
        self.push(variable, None, expected);
    }

    /// Records a problem of a secret variable: its value is shown as [`MASK`].
    pub fn secret(&mut self, variable: &str, expected: impl Into<String>) {
        self.bad(variable, MASK, expected);
    }

    /// Adds the problems of an error found elsewhere, after those recorded so far.
    pub fn absorb(&mut self, err: ConfigError) {
        self.list.extend(err.problems);
    }

    /// The problems recorded so far.
    #[must_use]
    pub fn as_slice(&self) -> &[Problem] {
        &self.list
    }

    /// `Ok(value)` when nothing was recorded, else the error listing every problem.
    ///
    /// # Errors
    /// [`ConfigError`] when any problem was recorded.
    pub fn finish<T>(self, value: T) -> Result<T, ConfigError> {
        ConfigError::check(self.list, value)
    }

    /// The error listing every problem recorded, whether or not there was any.
    pub(crate) fn into_error(self) -> ConfigError {
        ConfigError::new(self.list)
    }

    fn push(&mut self, variable: &str, value: Option<String>, expected: impl Into<String>) {
        self.list
            .push(Problem::new(self.component, variable, value, expected));
    }
}

/// What stands for a secret wherever one would be shown: in a problem, a masked URL, a
/// `Debug` view.
pub const MASK: &str = "***";

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
    fn problems_collect_values_relations_and_secrets_of_their_component() {
        let mut p = Problems::new("cache");
        p.bad("CACHE_L1_SHARDS", 3, "a power of two");
        p.relation("CACHE_MIN", "at most CACHE_MAX");
        p.secret("CACHE_KEY", "base64 of 32 bytes");
        p.absorb(ConfigError::one(Problem::new("cache", "LATER", None, "x")));
        let err = p.finish(()).unwrap_err();
        assert_eq!(
            err.variables(),
            ["CACHE_L1_SHARDS", "CACHE_MIN", "CACHE_KEY", "LATER"]
        );
        let shards = err.problem("CACHE_L1_SHARDS").unwrap();
        assert_eq!(
            (shards.component, shards.value.as_deref()),
            ("cache", Some("3"))
        );
        assert_eq!(
            err.problem("CACHE_KEY").unwrap().value.as_deref(),
            Some(MASK)
        );
        assert_eq!(err.problem("CACHE_MIN").unwrap().value, None);
        assert!(err.problem("NONE").is_none());
        assert_eq!(Problems::new("cache").finish(7), Ok(7));
    }

    #[test]
    fn errors_are_send_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<ConfigError>();
    }
}
