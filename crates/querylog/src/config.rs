//! The logger's configuration, from code (a builder) or from the environment.

use std::time::Duration;

use vitals_env::{ConfigError, Env, Problems, Secret, Var};

use crate::fingerprint::DEFAULT_FINGERPRINT_KEY;

/// The component named in this crate's configuration problems.
const COMPONENT: &str = "querylog";

/// Warning threshold variable (milliseconds, default 1000).
pub const ENV_SLOW_WARN_MS: &str = "DB_SLOW_QUERY_WARN_MS";
/// Critical threshold variable (milliseconds, default 5000).
pub const ENV_SLOW_CRITICAL_MS: &str = "DB_SLOW_QUERY_CRITICAL_MS";
/// How many recent queries are kept (default 1000; 0 keeps none).
pub const ENV_RECENT: &str = "DB_QUERYLOG_RECENT";
/// How many slow queries are kept (default 100; 0 keeps none).
pub const ENV_SLOW_HISTORY: &str = "DB_QUERYLOG_SLOW_HISTORY";
/// Cap on distinct fingerprints with statistics (default 1000, at least 1).
pub const ENV_MAX_FINGERPRINTS: &str = "DB_QUERYLOG_MAX_FINGERPRINTS";
/// Repeats of one fingerprint in one scope that make an N+1 finding (default 5, Sentry's
/// threshold; at least 2). The older name [`ENV_N_PLUS_ONE_THRESHOLD_DB`] is read too; when
/// both are set, this one wins and the older one is not read.
pub const ENV_N_PLUS_ONE_THRESHOLD: &str = "QUERYLOG_N_PLUS_ONE_THRESHOLD";
/// The older name of [`ENV_N_PLUS_ONE_THRESHOLD`], still read when that one is unset or blank.
pub const ENV_N_PLUS_ONE_THRESHOLD_DB: &str = "DB_QUERYLOG_N_PLUS_ONE_THRESHOLD";
/// Period of the summary log line in seconds (default 300; 0 turns it off).
pub const ENV_SUMMARY_SECS: &str = "DB_QUERYLOG_SUMMARY_SECS";
/// Fingerprint key: 32 hex digits (default: the built-in key). Masked in errors.
pub const ENV_FINGERPRINT_KEY: &str = "DB_QUERYLOG_FINGERPRINT_KEY";

/// The logger's settings. Build one with [`LoggerConfig::builder`], read one
/// from the environment with [`LoggerConfig::from_env`], or take the defaults.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LoggerConfig {
    slow_warn: Duration,
    slow_critical: Duration,
    recent_capacity: usize,
    slow_capacity: usize,
    max_fingerprints: usize,
    n_plus_one_threshold: u32,
    summary_interval: Option<Duration>,
    /// A secret: with it, fingerprints can be tested for guesses.
    fingerprint_key: Secret<[u8; 16]>,
}

impl Default for LoggerConfig {
    fn default() -> Self {
        Self {
            slow_warn: Duration::from_millis(1000),
            slow_critical: Duration::from_millis(5000),
            recent_capacity: 1000,
            slow_capacity: 100,
            max_fingerprints: 1000,
            n_plus_one_threshold: 5,
            summary_interval: Some(Duration::from_secs(300)),
            fingerprint_key: Secret::new(DEFAULT_FINGERPRINT_KEY),
        }
    }
}

impl LoggerConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> LoggerConfigBuilder {
        LoggerConfigBuilder {
            config: Self::default(),
        }
    }

    vitals_env::from_env_methods! {
        /// Reads the `DB_SLOW_QUERY_*` and `DB_QUERYLOG_*` variables and
        /// `QUERYLOG_N_PLUS_ONE_THRESHOLD`; unset or blank ones take their defaults.
        ///
        /// ```
        /// use vitals_querylog::LoggerConfig;
        ///
        /// let config = LoggerConfig::from_env_with(|name| match name {
        ///     "DB_SLOW_QUERY_WARN_MS" => Some("250".into()),
        ///     _ => None,
        /// })
        /// .unwrap();
        /// assert_eq!(config.slow_warn().as_millis(), 250);
        /// ```
        ///
        /// # Errors
        ///
        /// [`ConfigError`] listing every bad variable (component `querylog`).
        component: "querylog",
        read: read,
    }

    /// Duration from which a query is slow (a warning).
    #[must_use]
    pub fn slow_warn(&self) -> Duration {
        self.slow_warn
    }

    /// Duration from which a slow query is critical.
    #[must_use]
    pub fn slow_critical(&self) -> Duration {
        self.slow_critical
    }

    /// How many recent queries are kept.
    #[must_use]
    pub fn recent_capacity(&self) -> usize {
        self.recent_capacity
    }

    /// How many slow queries are kept.
    #[must_use]
    pub fn slow_capacity(&self) -> usize {
        self.slow_capacity
    }

    /// Cap on distinct fingerprints with statistics.
    #[must_use]
    pub fn max_fingerprints(&self) -> usize {
        self.max_fingerprints
    }

    /// Repeats of one fingerprint in one scope that make an N+1 finding.
    #[must_use]
    pub fn n_plus_one_threshold(&self) -> u32 {
        self.n_plus_one_threshold
    }

    /// Period of the summary log line, if any.
    #[must_use]
    pub fn summary_interval(&self) -> Option<Duration> {
        self.summary_interval
    }

    /// The fingerprint key.
    #[must_use]
    pub fn fingerprint_key(&self) -> [u8; 16] {
        *self.fingerprint_key.expose()
    }
}

/// The plain variables: read as plain numbers, their ranges checked by the builder, so each
/// rule is written once.
const VARS: &[Var<LoggerConfigBuilder>] = vitals_env::vars!(builder LoggerConfigBuilder {
    slow_warn: Millis(ENV_SLOW_WARN_MS, 0),
    slow_critical: Millis(ENV_SLOW_CRITICAL_MS, 0),
    recent_capacity: Usize(ENV_RECENT, 0),
    slow_capacity: Usize(ENV_SLOW_HISTORY, 0),
    max_fingerprints: Usize(ENV_MAX_FINGERPRINTS, 0),
});

/// The plain variables, the N+1 threshold under whichever name is set, the summary period
/// and the key; then the builder's checks, named by the variables.
fn read(env: &mut Env<'_>) -> Option<LoggerConfig> {
    let mut b = env.apply(LoggerConfig::builder(), VARS);
    // The issue's name wins; a problem names whichever variable was read.
    let threshold_var = if env.is_set(ENV_N_PLUS_ONE_THRESHOLD) {
        ENV_N_PLUS_ONE_THRESHOLD
    } else {
        ENV_N_PLUS_ONE_THRESHOLD_DB
    };
    if let Some(n) = env.whole::<u32>(threshold_var, 0..) {
        b = b.n_plus_one_threshold(n);
    }
    if let Some(d) = env.secs(ENV_SUMMARY_SECS, 0) {
        // 0 turns the summary off.
        b = b.summary_interval((!d.is_zero()).then_some(d));
    }
    if let Some(raw) = env.string(ENV_FINGERPRINT_KEY) {
        match parse_key(&raw) {
            Some(key) => b = b.fingerprint_key(key),
            None => env.secret_problem(ENV_FINGERPRINT_KEY, "32 hex digits"),
        }
    }
    env.adopt(b.build().map_err(|e| in_env_names(e, threshold_var)))
}

/// The builder's problems, each naming the variable that stands for its setting
/// (`threshold_var`: the N+1 threshold's name that was read).
fn in_env_names(err: ConfigError, threshold_var: &str) -> ConfigError {
    let mut problems = err.into_problems();
    for p in &mut problems {
        p.variable = env_name(&p.variable, threshold_var).to_owned();
    }
    ConfigError::new(problems)
}

fn env_name<'a>(setting: &'a str, threshold_var: &'a str) -> &'a str {
    match setting {
        "slow_warn" => ENV_SLOW_WARN_MS,
        "slow_critical" => ENV_SLOW_CRITICAL_MS,
        "max_fingerprints" => ENV_MAX_FINGERPRINTS,
        "n_plus_one_threshold" => threshold_var,
        other => other,
    }
}

fn parse_key(raw: &str) -> Option<[u8; 16]> {
    let raw = raw.trim();
    // Hex digits only: `from_str_radix` alone would take a pair such as `+f`.
    if raw.len() != 32 || !raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut key = [0u8; 16];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(raw.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(key)
}

/// Builds a [`LoggerConfig`]; [`build`](Self::build) checks it.
#[derive(Clone, Debug)]
#[must_use]
pub struct LoggerConfigBuilder {
    config: LoggerConfig,
}

impl LoggerConfigBuilder {
    vitals_env::setter!(
        /// Duration from which a query is slow (default 1 s).
        config.slow_warn: Duration;
        /// Duration from which a slow query is critical (default 5 s; not below `slow_warn`).
        config.slow_critical: Duration;
        /// How many recent queries are kept (default 1000; 0 keeps none).
        config.recent_capacity: usize;
        /// How many slow queries are kept (default 100; 0 keeps none).
        config.slow_capacity: usize;
        /// Cap on distinct fingerprints with statistics (default 1000, at least 1).
        config.max_fingerprints: usize;
        /// Repeats of one fingerprint in one scope that make an N+1 finding (default 5, at least
        /// 2).
        config.n_plus_one_threshold: u32;
        /// Period of the summary log line (default 5 min; `None` for none).
        config.summary_interval: Option<Duration>
    );

    /// The fingerprint key (default [`DEFAULT_FINGERPRINT_KEY`]).
    pub fn fingerprint_key(mut self, key: [u8; 16]) -> Self {
        self.config.fingerprint_key = Secret::new(key);
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] listing every bad setting (component `querylog`, each problem naming
    /// the setting: `slow_critical`, `slow_warn`, `max_fingerprints`, `n_plus_one_threshold`).
    pub fn build(self) -> Result<LoggerConfig, ConfigError> {
        let c = self.config;
        let mut problems = Problems::new(COMPONENT);
        if c.slow_critical < c.slow_warn {
            problems.bad(
                "slow_critical",
                c.slow_critical.as_millis(),
                format!(
                    "at least the warning threshold ({} ms)",
                    c.slow_warn.as_millis()
                ),
            );
        }
        if c.slow_warn.is_zero() {
            problems.bad("slow_warn", 0, "more than 0 ms");
        }
        if c.max_fingerprints == 0 {
            problems.bad("max_fingerprints", 0, "at least 1");
        }
        if c.n_plus_one_threshold < 2 {
            problems.bad("n_plus_one_threshold", c.n_plus_one_threshold, "at least 2");
        }
        problems.finish(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_report() {
        let c = LoggerConfig::from_env_with(|_| None).unwrap();
        assert_eq!(c, LoggerConfig::default());
        assert_eq!(c.slow_warn(), Duration::from_secs(1));
        assert_eq!(c.slow_critical(), Duration::from_secs(5));
        assert_eq!(c.slow_capacity(), 100);
    }

    #[test]
    fn reads_every_variable() {
        let c = LoggerConfig::from_env_with(|n| {
            Some(
                match n {
                    ENV_SLOW_WARN_MS => "200",
                    ENV_SLOW_CRITICAL_MS => "900",
                    ENV_RECENT => "10",
                    ENV_SLOW_HISTORY => "5",
                    ENV_MAX_FINGERPRINTS => "50",
                    ENV_N_PLUS_ONE_THRESHOLD => "3",
                    ENV_SUMMARY_SECS => "0",
                    ENV_FINGERPRINT_KEY => "000102030405060708090a0b0c0d0e0f",
                    _ => return None,
                }
                .into(),
            )
        })
        .unwrap();
        assert_eq!(c.slow_warn(), Duration::from_millis(200));
        assert_eq!(c.slow_critical(), Duration::from_millis(900));
        assert_eq!(
            (c.recent_capacity(), c.slow_capacity(), c.max_fingerprints()),
            (10, 5, 50)
        );
        assert_eq!(c.n_plus_one_threshold(), 3);
        assert_eq!(c.summary_interval(), None);
        assert_eq!(c.fingerprint_key()[15], 15);
    }

    /// A key of 32 characters that `from_str_radix` would take pair by pair (`+0+1…`) is
    /// no key; a threshold past `u32` is refused, not clamped.
    #[test]
    fn a_signed_hex_key_and_a_threshold_past_u32_are_refused() {
        let key: String = (0..16).map(|i| format!("+{i:x}")).collect();
        let err = LoggerConfig::from_env_with(|n| match n {
            ENV_FINGERPRINT_KEY => Some(key.clone()),
            ENV_N_PLUS_ONE_THRESHOLD => Some("4294967296".into()),
            _ => None,
        })
        .unwrap_err();
        let vars: Vec<_> = err.problems().iter().map(|p| p.variable.as_str()).collect();
        assert!(vars.contains(&ENV_FINGERPRINT_KEY), "{err}");
        assert!(vars.contains(&ENV_N_PLUS_ONE_THRESHOLD), "{err}");
    }

    #[test]
    fn lists_every_bad_variable_and_masks_the_key() {
        let err = LoggerConfig::from_env_with(|n| {
            Some(
                match n {
                    ENV_SLOW_WARN_MS => "soon",
                    ENV_RECENT => "-1",
                    ENV_MAX_FINGERPRINTS => "0",
                    ENV_FINGERPRINT_KEY => "secret-key",
                    _ => return None,
                }
                .into(),
            )
        })
        .unwrap_err();
        let vars: Vec<_> = err.problems().iter().map(|p| p.variable.as_str()).collect();
        assert_eq!(
            vars,
            [
                ENV_SLOW_WARN_MS,
                ENV_RECENT,
                ENV_FINGERPRINT_KEY,
                ENV_MAX_FINGERPRINTS
            ]
        );
        let text = err.to_string();
        assert!(text.contains("DB_SLOW_QUERY_WARN_MS=\"soon\""), "{text}");
        assert!(!text.contains("secret-key"), "{text}");
    }

    #[test]
    fn problems_are_the_querylog_components_and_name_variables() {
        let err = LoggerConfig::from_env_with(|n| {
            Some(
                match n {
                    ENV_SLOW_WARN_MS => "2000",
                    ENV_SLOW_CRITICAL_MS => "1000",
                    ENV_FINGERPRINT_KEY => "secret-key",
                    _ => return None,
                }
                .into(),
            )
        })
        .unwrap_err();
        assert!(err.problems().iter().all(|p| p.component == "querylog"));
        let key = &err.problems()[0];
        assert_eq!(
            (key.variable.as_str(), key.value.as_deref()),
            (ENV_FINGERPRINT_KEY, Some("***"))
        );
        // The builder's range problem names the variable, not the setting.
        assert_eq!(err.problems()[1].variable, ENV_SLOW_CRITICAL_MS);
    }

    #[test]
    fn n_plus_one_threshold_reads_either_name_and_the_issues_wins() {
        let read = |vars: &'static [(&'static str, &'static str)]| {
            LoggerConfig::from_env_with(move |n| {
                vars.iter().find(|(k, _)| *k == n).map(|(_, v)| (*v).into())
            })
        };
        let old = read(&[(ENV_N_PLUS_ONE_THRESHOLD_DB, "7")]).unwrap();
        assert_eq!(old.n_plus_one_threshold(), 7);
        let new = read(&[(ENV_N_PLUS_ONE_THRESHOLD, "3")]).unwrap();
        assert_eq!(new.n_plus_one_threshold(), 3);
        let both = read(&[
            (ENV_N_PLUS_ONE_THRESHOLD, "4"),
            (ENV_N_PLUS_ONE_THRESHOLD_DB, "not read"),
        ])
        .unwrap();
        assert_eq!(both.n_plus_one_threshold(), 4);
        let blank = read(&[
            (ENV_N_PLUS_ONE_THRESHOLD, " "),
            (ENV_N_PLUS_ONE_THRESHOLD_DB, "6"),
        ])
        .unwrap();
        assert_eq!(blank.n_plus_one_threshold(), 6);
    }

    #[test]
    fn n_plus_one_threshold_problems_name_the_variable_read() {
        for name in [ENV_N_PLUS_ONE_THRESHOLD, ENV_N_PLUS_ONE_THRESHOLD_DB] {
            for bad in ["1", "five"] {
                let err =
                    LoggerConfig::from_env_with(|n| (n == name).then(|| bad.into())).unwrap_err();
                let vars: Vec<_> = err.problems().iter().map(|p| p.variable.as_str()).collect();
                assert_eq!(vars, [name], "{bad}");
            }
        }
    }

    #[test]
    fn critical_below_warning_is_rejected() {
        let err = LoggerConfig::builder()
            .slow_warn(Duration::from_secs(2))
            .slow_critical(Duration::from_secs(1))
            .build()
            .unwrap_err();
        assert_eq!(err.problems()[0].variable, "slow_critical");
    }
}
