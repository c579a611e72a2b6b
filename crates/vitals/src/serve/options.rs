//! [`ServeOptions`]: the bounds [`serve`](super::serve) puts on connections, from `VITALS_HTTP_*`
//! or a builder.

use std::time::Duration;

use tokio::sync::Semaphore;
use vitals_env::{ConfigError, Env, Problem};

/// The component named in this module's configuration problems.
const COMPONENT: &str = "http";
const HEADER_TIMEOUT_VAR: &str = "VITALS_HTTP_HEADER_TIMEOUT_MS";
const IDLE_TIMEOUT_VAR: &str = "VITALS_HTTP_IDLE_TIMEOUT_MS";
const MAX_CONNECTIONS_VAR: &str = "VITALS_HTTP_MAX_CONNECTIONS";
const SHUTDOWN_TIMEOUT_VAR: &str = "VITALS_HTTP_SHUTDOWN_TIMEOUT_MS";

/// The longest timeout accepted: a day. Far beyond any sensible value, and short enough that
/// `now + timeout` can never overflow an `Instant`.
const MAX_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;
/// Past this tokio's semaphore cannot count.
const MAX_CONNECTIONS_LIMIT: usize = Semaphore::MAX_PERMITS;

/// How [`serve`](super::serve) bounds connections: timeouts, the number open at once, the shutdown deadline.
///
/// `ServeOptions::default()` are the production values; [`ServeOptions::from_env`] reads the
/// `VITALS_HTTP_*` variables over them, [`ServeOptions::builder`] sets them in code. Plain data:
/// clone it freely.
///
/// # Example
/// ```
/// # fn example() -> Result<(), vitals::ConfigError> {
/// use std::time::Duration;
/// use vitals::http::ServeOptions;
///
/// let options = ServeOptions::builder()
///     .header_read_timeout(Duration::from_secs(5))
///     .max_connections(256)
///     .build()?;
/// assert_eq!(options.idle_timeout(), Duration::from_secs(60));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    pub(super) header_read_timeout: Duration,
    pub(super) idle_timeout: Duration,
    pub(super) max_connections: usize,
    pub(super) shutdown_timeout: Duration,
}

impl Default for ServeOptions {
    /// Header read 10 s, idle 60 s, 1 024 connections, shutdown deadline 30 s.
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

impl ServeOptions {
    /// A builder over the defaults.
    pub fn builder() -> ServeOptionsBuilder {
        ServeOptionsBuilder::default()
    }

    /// Reads the options from the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] listing every variable with a bad value.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(vitals_env::process_env)
    }

    /// Reads the options through `lookup` (a variable name to its value), so tests need not
    /// touch the process environment.
    ///
    /// Variables: `VITALS_HTTP_HEADER_TIMEOUT_MS` and `VITALS_HTTP_IDLE_TIMEOUT_MS` (1 ms to a
    /// day), `VITALS_HTTP_MAX_CONNECTIONS` (at least 1), `VITALS_HTTP_SHUTDOWN_TIMEOUT_MS`
    /// (0 to a day; 0 closes whatever is open at once). Unset or empty variables keep their
    /// default.
    ///
    /// # Errors
    /// [`ConfigError`] (component `http`) listing every variable with a bad value.
    pub fn from_env_with<F>(lookup: F) -> Result<Self, ConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let mut env = Env::new(COMPONENT, &lookup);
        let mut builder = Self::builder();
        if let Some(ms) = env.whole(HEADER_TIMEOUT_VAR, 1..=MAX_TIMEOUT_MS) {
            builder = builder.header_read_timeout(Duration::from_millis(ms));
        }
        if let Some(ms) = env.whole(IDLE_TIMEOUT_VAR, 1..=MAX_TIMEOUT_MS) {
            builder = builder.idle_timeout(Duration::from_millis(ms));
        }
        if let Some(n) = env.whole(MAX_CONNECTIONS_VAR, 1..=MAX_CONNECTIONS_LIMIT) {
            builder = builder.max_connections(n);
        }
        if let Some(ms) = env.whole(SHUTDOWN_TIMEOUT_VAR, 0..=MAX_TIMEOUT_MS) {
            builder = builder.shutdown_timeout(Duration::from_millis(ms));
        }
        match builder.build() {
            Ok(options) => env.finish(options),
            Err(e) => {
                env.absorb(e);
                env.finish(Self::default())
            }
        }
    }

    /// How long a request's head may take: from the accept for a connection's first request,
    /// from the head's first byte for the next ones.
    #[must_use]
    pub fn header_read_timeout(&self) -> Duration {
        self.header_read_timeout
    }

    /// How long a keep-alive connection may wait, after a response, for the next request's
    /// first byte.
    #[must_use]
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// How many connections may be open at once; past it new ones wait in the accept backlog.
    #[must_use]
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// How long a graceful shutdown waits for in-flight requests before closing what is open.
    #[must_use]
    pub fn shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout
    }
}

/// Builder of [`ServeOptions`]; unset fields keep the defaults. `build` validates.
#[must_use]
#[derive(Debug, Clone, Default)]
pub struct ServeOptionsBuilder {
    header_read_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    max_connections: Option<usize>,
    shutdown_timeout: Option<Duration>,
}

impl ServeOptionsBuilder {
    /// `VITALS_HTTP_HEADER_TIMEOUT_MS`: more than 0, at most a day.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = Some(timeout);
        self
    }

    /// `VITALS_HTTP_IDLE_TIMEOUT_MS`: more than 0, at most a day.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// `VITALS_HTTP_MAX_CONNECTIONS`: at least 1.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = Some(max);
        self
    }

    /// `VITALS_HTTP_SHUTDOWN_TIMEOUT_MS`: at most a day (0: close everything at once).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = Some(timeout);
        self
    }

    /// The options, once every value is checked.
    ///
    /// # Errors
    /// [`ConfigError`] naming, by the variable each setter stands for, every value out of
    /// range.
    pub fn build(self) -> Result<ServeOptions, ConfigError> {
        let d = ServeOptions::default();
        let options = ServeOptions {
            header_read_timeout: self.header_read_timeout.unwrap_or(d.header_read_timeout),
            idle_timeout: self.idle_timeout.unwrap_or(d.idle_timeout),
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            shutdown_timeout: self.shutdown_timeout.unwrap_or(d.shutdown_timeout),
        };
        let max = Duration::from_millis(MAX_TIMEOUT_MS);
        let mut problems = Vec::new();
        for (variable, timeout, zero_allowed) in [
            (HEADER_TIMEOUT_VAR, options.header_read_timeout, false),
            (IDLE_TIMEOUT_VAR, options.idle_timeout, false),
            (SHUTDOWN_TIMEOUT_VAR, options.shutdown_timeout, true),
        ] {
            if (timeout.is_zero() && !zero_allowed) || timeout > max {
                let from = if zero_allowed { 0 } else { 1 };
                problems.push(Problem::new(
                    COMPONENT,
                    variable,
                    Some(timeout.as_millis().to_string()),
                    format!("milliseconds from {from} to {MAX_TIMEOUT_MS} (a day)"),
                ));
            }
        }
        if !(1..=MAX_CONNECTIONS_LIMIT).contains(&options.max_connections) {
            problems.push(Problem::new(
                COMPONENT,
                MAX_CONNECTIONS_VAR,
                Some(options.max_connections.to_string()),
                format!("a whole number from 1 to {MAX_CONNECTIONS_LIMIT}"),
            ));
        }
        ConfigError::check(problems, options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_string())
        }
    }

    #[test]
    fn unset_variables_give_the_defaults() {
        assert_eq!(
            ServeOptions::from_env_with(env(&[])).unwrap(),
            ServeOptions::default()
        );
    }

    #[test]
    fn variables_set_every_option() {
        let o = ServeOptions::from_env_with(env(&[
            (HEADER_TIMEOUT_VAR, "250"),
            (IDLE_TIMEOUT_VAR, "1500"),
            (MAX_CONNECTIONS_VAR, "8"),
            (SHUTDOWN_TIMEOUT_VAR, "0"),
        ]))
        .unwrap();
        assert_eq!(o.header_read_timeout(), Duration::from_millis(250));
        assert_eq!(o.idle_timeout(), Duration::from_millis(1500));
        assert_eq!(o.max_connections(), 8);
        assert_eq!(o.shutdown_timeout(), Duration::ZERO);
    }

    #[test]
    fn every_bad_variable_is_a_problem_naming_it() {
        let err = ServeOptions::from_env_with(env(&[
            (HEADER_TIMEOUT_VAR, "0"),
            (IDLE_TIMEOUT_VAR, "soon"),
            (MAX_CONNECTIONS_VAR, "0"),
            (SHUTDOWN_TIMEOUT_VAR, "86400001"),
        ]))
        .unwrap_err();
        let named: Vec<&str> = err.problems().iter().map(|p| p.variable.as_str()).collect();
        assert_eq!(
            named,
            [
                HEADER_TIMEOUT_VAR,
                IDLE_TIMEOUT_VAR,
                MAX_CONNECTIONS_VAR,
                SHUTDOWN_TIMEOUT_VAR
            ],
            "{err}"
        );
        assert!(err.problems().iter().all(|p| p.component == "http"));
    }

    #[test]
    fn the_builder_refuses_zero_timeouts_and_no_connections() {
        let err = ServeOptions::builder()
            .header_read_timeout(Duration::ZERO)
            .idle_timeout(Duration::from_secs(2 * 24 * 3600))
            .max_connections(0)
            .build()
            .unwrap_err();
        assert_eq!(err.problems().len(), 3, "{err}");
        assert!(ServeOptions::builder()
            .shutdown_timeout(Duration::ZERO)
            .build()
            .is_ok());
    }

    #[test]
    fn options_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ServeOptions>();
    }
}
