//! [`ServeOptions`]: the bounds [`serve`](super::serve) puts on connections, from `VITALS_HTTP_*`
//! or a builder.

use std::time::Duration;

use tokio::sync::Semaphore;
use vitals_env::{ConfigError, Env, Problems, Var};

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
    header_read_timeout: Duration,
    idle_timeout: Duration,
    max_connections: usize,
    shutdown_timeout: Duration,
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

    vitals_env::from_env_methods! {
        /// Reads the options from the process environment.
        ///
        /// Variables: `VITALS_HTTP_HEADER_TIMEOUT_MS` and `VITALS_HTTP_IDLE_TIMEOUT_MS` (1 ms to
        /// a day), `VITALS_HTTP_MAX_CONNECTIONS` (at least 1), `VITALS_HTTP_SHUTDOWN_TIMEOUT_MS`
        /// (0 to a day; 0 closes whatever is open at once). Unset or empty variables keep their
        /// default.
        ///
        /// # Errors
        /// [`ConfigError`] (component `http`) listing every variable with a bad value.
        component: "http",
        read: |env: &mut Env<'_>| {
            let builder = env.apply(Self::builder(), VARS);
            env.adopt(builder.build())
        },
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

/// Every variable, with the builder setter its value goes to; the builder's checks run after.
const VARS: &[Var<ServeOptionsBuilder>] = vitals_env::vars!(builder ServeOptionsBuilder {
    header_read_timeout: MillisIn(HEADER_TIMEOUT_VAR, 1, MAX_TIMEOUT_MS),
    idle_timeout: MillisIn(IDLE_TIMEOUT_VAR, 1, MAX_TIMEOUT_MS),
    max_connections: UsizeIn(MAX_CONNECTIONS_VAR, 1, MAX_CONNECTIONS_LIMIT),
    shutdown_timeout: MillisIn(SHUTDOWN_TIMEOUT_VAR, 0, MAX_TIMEOUT_MS),
});

/// Builder of [`ServeOptions`]; unset fields keep the defaults. `build` validates.
#[must_use]
#[derive(Debug, Clone, Default)]
pub struct ServeOptionsBuilder {
    options: ServeOptions,
}

impl ServeOptionsBuilder {
    vitals_env::setter!(
        /// `VITALS_HTTP_HEADER_TIMEOUT_MS`: more than 0, at most a day.
        options.header_read_timeout: Duration;
        /// `VITALS_HTTP_IDLE_TIMEOUT_MS`: more than 0, at most a day.
        options.idle_timeout: Duration;
        /// `VITALS_HTTP_MAX_CONNECTIONS`: at least 1.
        options.max_connections: usize;
        /// `VITALS_HTTP_SHUTDOWN_TIMEOUT_MS`: at most a day (0: close everything at once).
        options.shutdown_timeout: Duration
    );

    /// The options, once every value is checked.
    ///
    /// # Errors
    /// [`ConfigError`] naming, by the variable each setter stands for, every value out of
    /// range.
    pub fn build(self) -> Result<ServeOptions, ConfigError> {
        let options = self.options;
        let max = Duration::from_millis(MAX_TIMEOUT_MS);
        let mut problems = Problems::new(COMPONENT);
        for (variable, timeout, zero_allowed) in [
            (HEADER_TIMEOUT_VAR, options.header_read_timeout, false),
            (IDLE_TIMEOUT_VAR, options.idle_timeout, false),
            (SHUTDOWN_TIMEOUT_VAR, options.shutdown_timeout, true),
        ] {
            if (timeout.is_zero() && !zero_allowed) || timeout > max {
                let from = if zero_allowed { 0 } else { 1 };
                problems.bad(
                    variable,
                    timeout.as_millis(),
                    format!("milliseconds from {from} to {MAX_TIMEOUT_MS} (a day)"),
                );
            }
        }
        if !(1..=MAX_CONNECTIONS_LIMIT).contains(&options.max_connections) {
            problems.bad(
                MAX_CONNECTIONS_VAR,
                options.max_connections,
                format!("a whole number from 1 to {MAX_CONNECTIONS_LIMIT}"),
            );
        }
        problems.finish(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use vitals_env::pairs as env;

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
