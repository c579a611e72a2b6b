//! The reader: typed values from any lookup, every bad one kept as a [`Problem`].

use std::fmt::Display;
use std::ops::{Bound, RangeBounds};
use std::str::FromStr;
use std::time::Duration;

use crate::problem::{ConfigError, Problem, Problems};
use crate::url::mask_bad_url;

/// What [`process_env`] gives for a variable whose value is not valid UTF-8: a NUL, which no
/// value of the process environment can hold, so [`Env`] tells it from any real value and
/// records a problem (the value unshown) instead of reading the variable as unset.
pub const NOT_UTF8: &str = "\0not UTF-8";

/// The process environment as a lookup: the value of `name`, [`NOT_UTF8`] for one that is
/// not valid UTF-8 (which `std::env::var(name).ok()` would read as unset, so a bad value
/// would silently give the default).
#[must_use]
pub fn process_env(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) => Some(value),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => Some(NOT_UTF8.to_owned()),
    }
}

/// A lookup over fixed name/value pairs (a test's variables, a host's map); the first pair of
/// a name wins.
///
/// ```
/// let lookup = vitals_env::pairs(&[("DB_POOL_MAX", "20")]);
/// assert_eq!(lookup("DB_POOL_MAX").as_deref(), Some("20"));
/// assert_eq!(lookup("DB_POOL_MIN"), None);
/// ```
pub fn pairs(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Clone + 'static {
    let owned: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| {
        owned
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

/// Reads one configuration of `component` through `lookup`: `read` takes the values from an
/// [`Env`] and returns `None` only after recording why (a bad value, a builder's problems
/// [adopted](Env::adopt)). This is the body of every `from_env_with`
/// ([`from_env_methods!`](crate::from_env_methods)).
///
/// # Errors
/// [`ConfigError`] listing every problem recorded, in the order they were found.
pub fn read<T>(
    component: &'static str,
    lookup: &dyn Fn(&str) -> Option<String>,
    read: impl FnOnce(&mut Env<'_>) -> Option<T>,
) -> Result<T, ConfigError> {
    let mut env = Env::new(component, lookup);
    match read(&mut env) {
        Some(value) => env.finish(value),
        // By `read`'s contract its problems are recorded: they are the error.
        None => Err(env.problems.into_error()),
    }
}

/// Reads one crate's variables through a lookup, collecting every bad value.
///
/// An unset variable and one that is empty or only white space read as `None` (the default
/// applies); values are trimmed. Each typed reader returns `None` for a bad value too, after
/// recording a [`Problem`](crate::Problem) that names the variable, the value and what was
/// expected.
pub struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Problems,
}

impl std::fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("component", &self.component())
            .field("problems", &self.problems())
            .finish_non_exhaustive()
    }
}

impl<'a> Env<'a> {
    /// A reader for `component` (named in every problem) over `lookup`.
    pub fn new(component: &'static str, lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            lookup,
            problems: Problems::new(component),
        }
    }

    /// The component named in this reader's problems.
    #[must_use]
    pub fn component(&self) -> &'static str {
        self.problems.component()
    }

    /// The lookup this reader reads through, to hand on to another crate's reader (the facade
    /// reads every crate's variables from the same source).
    pub fn lookup(&self) -> &'a dyn Fn(&str) -> Option<String> {
        self.lookup
    }

    /// The trimmed value of `name`; `None` when unset or blank. A value that is not valid
    /// UTF-8 ([`NOT_UTF8`]) is `None` too, after a problem naming the variable (its value
    /// unshown: it may be a secret).
    pub fn string(&mut self, name: &str) -> Option<String> {
        let value = (self.lookup)(name)?;
        if value.starts_with('\0') {
            // Once, however often the variable is read.
            if !self.problems.as_slice().iter().any(|p| p.variable == name) {
                self.problems.secret(name, "a value of valid UTF-8");
            }
            return None;
        }
        Some(value.trim().to_owned()).filter(|v| !v.is_empty())
    }

    /// Whether `name` is set to something other than blanks (a value that is not valid UTF-8
    /// is set).
    #[must_use]
    pub fn is_set(&self, name: &str) -> bool {
        (self.lookup)(name).is_some_and(|v| !v.trim().is_empty())
    }

    /// Records that `name` held `value`, where `expected` was expected.
    pub fn problem(&mut self, name: &str, value: &str, expected: impl Into<String>) {
        self.problems.bad(name, value, expected);
    }

    /// Records a problem of `name` that shows no value (a relation between variables).
    pub fn relation_problem(&mut self, name: &str, expected: impl Into<String>) {
        self.problems.relation(name, expected);
    }

    /// Records a problem of a secret variable: the value is shown as `***`.
    pub fn secret_problem(&mut self, name: &str, expected: impl Into<String>) {
        self.problems.secret(name, expected);
    }

    /// Adds the problems of an error found elsewhere (a builder's validation).
    pub fn absorb(&mut self, err: ConfigError) {
        self.problems.absorb(err);
    }

    /// The value of something built from what was read (a builder's `build`, another crate's
    /// reading); its problems, if any, are kept after those found so far and `None` comes back.
    pub fn adopt<T>(&mut self, built: Result<T, ConfigError>) -> Option<T> {
        built.map_err(|e| self.absorb(e)).ok()
    }

    /// The problems found so far.
    #[must_use]
    pub fn problems(&self) -> &[Problem] {
        self.problems.as_slice()
    }

    /// `Ok(value)` when no problem was found, else every problem at once.
    ///
    /// # Errors
    /// [`ConfigError`] listing every problem this reader recorded.
    pub fn finish<T>(self, value: T) -> Result<T, ConfigError> {
        self.problems.finish(value)
    }

    /// The value of `name` through `parse`; a `None` from `parse` records `expected`.
    pub fn parse<T>(
        &mut self,
        name: &str,
        expected: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Option<T> {
        let raw = self.string(name)?;
        let parsed = parse(&raw);
        if parsed.is_none() {
            self.problem(name, &raw, expected);
        }
        parsed
    }

    /// A whole number within `range` (`1..`, `0..=100`).
    pub fn whole<T>(&mut self, name: &str, range: impl RangeBounds<T>) -> Option<T>
    where
        T: FromStr + PartialOrd + Display,
    {
        let expected = format!("a whole number{}", describe(&range));
        self.parse(name, &expected, |v| {
            v.parse::<T>().ok().filter(|n| range.contains(n))
        })
    }

    /// Milliseconds, a whole number of at least `min`.
    pub fn millis(&mut self, name: &str, min: u64) -> Option<Duration> {
        self.duration(name, min, "milliseconds", Duration::from_millis)
    }

    /// Seconds, a whole number of at least `min`.
    pub fn secs(&mut self, name: &str, min: u64) -> Option<Duration> {
        self.duration(name, min, "seconds", Duration::from_secs)
    }

    /// A whole number of at least `min` `unit`s, made a duration by `from`.
    fn duration(
        &mut self,
        name: &str,
        min: u64,
        unit: &str,
        from: fn(u64) -> Duration,
    ) -> Option<Duration> {
        let expected = format!("a whole number of {unit} >= {min}");
        self.parse(name, &expected, |v| {
            v.parse::<u64>().ok().filter(|n| *n >= min).map(from)
        })
    }

    /// `true`/`false`, also `1`/`0`, `yes`/`no`, `on`/`off`, in any case.
    pub fn boolean(&mut self, name: &str) -> Option<bool> {
        self.parse(
            name,
            "true or false (also 1/0, yes/no, on/off)",
            |v| match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Some(true),
                "0" | "false" | "no" | "off" => Some(false),
                _ => None,
            },
        )
    }

    /// A percentage from 0 to 100, with or without a trailing `%`.
    pub fn percent(&mut self, name: &str) -> Option<f64> {
        self.parse(name, "a percentage between 0 and 100", |v| {
            v.trim_end_matches('%')
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|p| (0.0..=100.0).contains(p))
        })
    }

    /// One of `choices` (names compared without regard to case); `expected` says them.
    pub fn choice<T: Clone>(
        &mut self,
        name: &str,
        choices: &[(&str, T)],
        expected: &str,
    ) -> Option<T> {
        self.parse(name, expected, |v| {
            choices
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(v))
                .map(|(_, t)| t.clone())
        })
    }

    /// A URL beginning with one of `prefixes` (`"postgres://"`, `"sqlite:"`). A bad one is
    /// recorded with its password masked, or when it is not shaped like a URL (a libpq
    /// `host=db password=...` string, a `postgres//` typo) with no more than its scheme
    /// ([`mask_bad_url`](crate::mask_bad_url)).
    pub fn url(&mut self, name: &str, prefixes: &[&str]) -> Option<String> {
        let raw = self.string(name)?;
        if prefixes.iter().any(|p| raw.starts_with(p)) {
            return Some(raw);
        }
        let expected = format!("a URL beginning with {}", or_list(prefixes));
        self.problem(name, &mask_bad_url(&raw), expected);
        None
    }
}

fn or_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn describe<T: Display>(range: &impl RangeBounds<T>) -> String {
    match (range.start_bound(), range.end_bound()) {
        (Bound::Included(a), Bound::Included(b)) => format!(" from {a} to {b}"),
        (Bound::Included(a), Bound::Unbounded) => format!(" >= {a}"),
        (Bound::Unbounded, Bound::Included(b)) => format!(" <= {b}"),
        (Bound::Included(a), Bound::Excluded(b)) => format!(" >= {a} and < {b}"),
        (Bound::Excluded(a), _) => format!(" > {a}"),
        (Bound::Unbounded, Bound::Excluded(b)) => format!(" < {b}"),
        (Bound::Unbounded, Bound::Unbounded) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_that_is_not_utf8_is_a_problem_not_unset() {
        let lookup = pairs(&[("DB_POOL_MAX", NOT_UTF8), ("DB_POOL_MIN", "2")]);
        let mut env = Env::new("pool", &lookup);
        assert_eq!(env.whole::<u32>("DB_POOL_MAX", 1..), None);
        assert_eq!(env.string("DB_POOL_MAX"), None);
        assert!(env.is_set("DB_POOL_MAX"));
        assert_eq!(env.whole::<u32>("DB_POOL_MIN", 0..), Some(2));
        let problems = env.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].variable, "DB_POOL_MAX");
        assert_eq!(problems[0].value.as_deref(), Some("***"));
        assert!(problems[0].expected.contains("UTF-8"), "{problems:?}");
    }

    #[cfg(unix)]
    #[test]
    fn the_process_environment_tells_a_value_that_is_not_utf8_from_an_unset_one() {
        use std::os::unix::ffi::OsStrExt as _;
        // A name no other test reads; the test's own process.
        let name = "VITALS_ENV_TEST_NOT_UTF8";
        std::env::set_var(name, std::ffi::OsStr::from_bytes(b"\xff\xfe20"));
        assert_eq!(process_env(name).as_deref(), Some(NOT_UTF8));
        std::env::remove_var(name);
        assert_eq!(process_env(name), None);
    }

    #[test]
    fn unset_and_blank_read_as_none_and_values_are_trimmed() {
        let lookup = pairs(&[("A", "  "), ("B", " 7 ")]);
        let mut env = Env::new("t", &lookup);
        assert_eq!(env.whole::<u32>("A", 0..), None);
        assert_eq!(env.whole::<u32>("B", 0..), Some(7));
        assert_eq!(env.whole::<u32>("C", 0..), None);
        assert!(env.finish(()).is_ok());
    }

    #[test]
    fn every_bad_value_is_named_with_what_was_expected() {
        let lookup = pairs(&[
            ("N", "-5"),
            ("R", "200"),
            ("MS", "soon"),
            ("S", "0"),
            ("B", "maybe"),
            ("P", "120%"),
            ("E", "staging"),
            ("U", "mysql://root:hunter2@h/x"),
        ]);
        let mut env = Env::new("pool", &lookup);
        assert_eq!(env.whole::<u32>("N", 0..), None);
        assert_eq!(env.whole::<u8>("R", 1..=100), None);
        assert_eq!(env.millis("MS", 0), None);
        assert_eq!(env.secs("S", 1), None);
        assert_eq!(env.boolean("B"), None);
        assert_eq!(env.percent("P"), None);
        assert_eq!(
            env.choice("E", &[("dev", 1), ("prod", 2)], "\"dev\" or \"prod\""),
            None
        );
        assert_eq!(env.url("U", &["postgres://", "sqlite:"]), None);
        let err = env.finish(()).unwrap_err();
        let missing = err.unmentioned(&[
            "pool: N=\"-5\": expected a whole number >= 0",
            "R=\"200\": expected a whole number from 1 to 100",
            "MS=\"soon\": expected a whole number of milliseconds >= 0",
            "S=\"0\": expected a whole number of seconds >= 1",
            "B=\"maybe\": expected true or false",
            "P=\"120%\": expected a percentage between 0 and 100",
            "E=\"staging\": expected \"dev\" or \"prod\"",
            "U=\"mysql://root:***@h/x\": expected a URL beginning with postgres:// or sqlite:",
        ]);
        assert!(missing.is_empty(), "{missing:?} missing from {err}");
        assert_eq!(err.unmentioned(&["hunter2"]), ["hunter2"], "{err}");
        assert_eq!(err.problems().len(), 8);
    }

    #[test]
    fn a_bad_url_that_is_not_a_url_shows_no_password() {
        for (raw, shown) in [
            ("host=db user=app password=hunter2", "U=\"***\""),
            ("postgres//app:hunter2@db/x", "U=\"***\""),
        ] {
            let lookup = pairs(&[("U", raw)]);
            let mut env = Env::new("pool", &lookup);
            assert_eq!(env.url("U", &["postgres://"]), None);
            let err = env.finish(()).unwrap_err();
            let (display, debug) = (err.to_string(), format!("{err:?}"));
            assert!(!display.contains("hunter2"), "{display}");
            assert!(!debug.contains("hunter2"), "{debug}");
            assert!(
                display.contains(&format!(
                    "{shown}: expected a URL beginning with postgres://"
                )),
                "{display}"
            );
        }
    }

    #[test]
    fn good_values_parse() {
        let lookup = pairs(&[
            ("MS", "1500"),
            ("B", "On"),
            ("P", "80%"),
            ("E", "PROD"),
            ("U", "sqlite::memory:"),
        ]);
        let mut env = Env::new("t", &lookup);
        assert_eq!(env.millis("MS", 1), Some(Duration::from_millis(1500)));
        assert_eq!(env.boolean("B"), Some(true));
        assert_eq!(env.percent("P"), Some(80.0));
        assert_eq!(env.choice("E", &[("dev", 1), ("prod", 2)], ""), Some(2));
        assert_eq!(
            env.url("U", &["sqlite:"]).as_deref(),
            Some("sqlite::memory:")
        );
        assert!(env.problems().is_empty());
    }

    #[test]
    fn read_keeps_the_readers_and_the_adopted_problems_in_order() {
        let lookup = pairs(&[("N", "x"), ("M", "2")]);
        let built = |m: u32| {
            if m > 1 {
                Err(ConfigError::one(Problem::new("t", "M", None, "at most 1")))
            } else {
                Ok(m)
            }
        };
        let err = read("t", &lookup, |env| {
            let n = env.whole::<u32>("N", 0..);
            let m = env.whole("M", 0..).unwrap_or(0);
            let m = env.adopt(built(m))?;
            Some((n, m))
        })
        .unwrap_err();
        assert_eq!(err.variables(), ["N", "M"]);
        let ok = read("t", &pairs(&[("M", "1")]), |env| {
            let m = env.whole("M", 0..).unwrap_or(0);
            let m = env.adopt(built(m))?;
            // The lookup is handed on unchanged.
            Some((m, env.lookup()("M")))
        });
        assert_eq!(ok, Ok((1, Some("1".to_owned()))));
    }

    #[test]
    fn secrets_and_relations_show_no_value() {
        let lookup = |_: &str| None;
        let mut env = Env::new("cache", &lookup);
        env.secret_problem("KEY", "base64 of 32 bytes");
        env.relation_problem("MIN", "at most MAX");
        let text = env.finish(()).unwrap_err().to_string();
        assert!(
            text.contains("KEY=\"***\": expected base64 of 32 bytes"),
            "{text}"
        );
        assert!(text.contains("MIN: expected at most MAX"), "{text}");
    }
}
