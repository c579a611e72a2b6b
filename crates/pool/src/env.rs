//! Reading a [`PoolConfig`] from the environment: a thin step over the builder. Each variable
//! goes through a [`vitals_env::Env`] reader (component `pool`), then the builder's own checks
//! run, and every problem of both comes back at once.

use vitals_env::{ConfigError, Env};

use crate::builder::PoolConfigBuilder;
use crate::config::{PoolConfig, Profile};

/// `DB_PROFILE`'s accepted values.
const PROFILES: [(&str, Profile); 4] = [
    ("development", Profile::Development),
    ("dev", Profile::Development),
    ("production", Profile::Production),
    ("prod", Profile::Production),
];

impl PoolConfig {
    /// Reads the variables listed on [`PoolConfig`] from the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] listing every variable with a bad value, and `DB_POOL_MIN > DB_POOL_MAX`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(vitals_env::process_env)
    }

    /// Like [`from_env`](Self::from_env) but reads variables through `lookup`, so tests need
    /// not touch the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] (component `pool`) listing every variable with a bad value, and the
    /// builder's checks of the values together (`DB_POOL_MIN > DB_POOL_MAX`, ...).
    pub fn from_env_with<F>(lookup: F) -> Result<Self, ConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let mut env = Env::new("pool", &lookup);

        let profile = if env.is_set("DB_PROFILE") {
            env.choice("DB_PROFILE", &PROFILES, "\"development\" or \"production\"")
                .unwrap_or(Profile::Development)
        } else if ["APP_ENV", "NODE_ENV"].iter().any(|n| {
            env.string(n)
                .is_some_and(|v| v.eq_ignore_ascii_case("production"))
        }) {
            Profile::Production
        } else {
            Profile::Development
        };

        // A variable that is unset or bad leaves the profile's default.
        let mut b = PoolConfigBuilder::default().profile(profile);
        if let Some(v) = env.whole("DB_POOL_MIN", 0..) {
            b = b.min_connections(v);
        }
        if let Some(v) = env.whole("DB_POOL_MAX", 0..) {
            b = b.max_connections(v);
        }
        if let Some(v) = env.whole("DB_RETRY_MAX", 0..) {
            b = b.retry_max(v);
        }
        if let Some(v) = env.whole("DB_POOL_ALERT_WAITING", 0..) {
            b = b.alert_waiting(v);
        }

        if let Some(v) = env.millis("DB_ACQUIRE_TIMEOUT", 0) {
            b = b.acquire_timeout(v);
        }
        if let Some(v) = env.millis("DB_IDLE_TIMEOUT", 0) {
            b = b.idle_timeout(v);
        }
        if let Some(v) = env.millis("DB_POOL_EVICT", 0) {
            b = b.evict_interval(v);
        }
        if let Some(v) = env.millis("DB_STATEMENT_TIMEOUT", 0) {
            b = b.statement_timeout(v);
        }
        if let Some(v) = env.millis("DB_IDLE_IN_TRANSACTION_TIMEOUT", 0) {
            b = b.idle_in_transaction_timeout(v);
        }
        if let Some(v) = env.millis("DB_SQLITE_BUSY_TIMEOUT", 0) {
            b = b.sqlite_busy_timeout(v);
        }
        if let Some(v) = env.millis("DB_RETRY_BASE_DELAY", 0) {
            b = b.retry_base_delay(v);
        }
        if let Some(v) = env.millis("DB_RETRY_MAX_DELAY", 0) {
            b = b.retry_max_delay(v);
        }
        if let Some(d) = env.millis("DB_POOL_LEAK_THRESHOLD", 0) {
            b = b.leak_threshold((!d.is_zero()).then_some(d)); // zero turns it off
        }
        if let Some(v) = env.millis("DB_POOL_MONITOR_INTERVAL", 0) {
            b = b.monitor_interval(v);
        }

        if let Some(v) = env.boolean("DB_HANDLE_DISCONNECTS") {
            b = b.handle_disconnects(v);
        }
        if let Some(v) = env.boolean("DB_BENCHMARK") {
            b = b.benchmark(v);
        }

        if let Some(v) = env.percent("DB_POOL_ALERT_WARNING") {
            b = b.alert_warning_percent(v);
        }
        if let Some(v) = env.percent("DB_POOL_ALERT_CRITICAL") {
            b = b.alert_critical_percent(v);
        }

        // The builder checks the values together; its problems follow the parse problems.
        match b.build() {
            Ok(cfg) => env.finish(cfg),
            Err(e) => {
                env.absorb(e);
                Err(ConfigError::new(env.problems().to_vec()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn empty_environment_gives_development_defaults() {
        let cfg = PoolConfig::from_env_with(env(&[])).unwrap();
        assert_eq!(cfg.profile(), Profile::Development);
        assert_eq!((cfg.min_connections(), cfg.max_connections()), (2, 10));
        assert_eq!(cfg.acquire_timeout(), Duration::from_millis(30_000));
        assert_eq!(cfg.idle_timeout(), Duration::from_millis(10_000));
        assert_eq!(cfg.evict_interval(), Duration::from_millis(1_000));
        assert_eq!(cfg.statement_timeout(), Duration::from_millis(30_000));
        assert_eq!(
            cfg.idle_in_transaction_timeout(),
            Duration::from_millis(30_000)
        );
        assert!(cfg.handle_disconnects());
        assert!(!cfg.benchmark());
        assert_eq!(cfg.retry_policy().max_attempts(), 3);
    }

    #[test]
    fn production_profile_raises_pool_and_turns_benchmark_on() {
        for vars in [
            &[("DB_PROFILE", "production")][..],
            &[("NODE_ENV", "production")][..],
            &[("APP_ENV", "Production")][..],
        ] {
            let cfg = PoolConfig::from_env_with(env(vars)).unwrap();
            assert_eq!(cfg.profile(), Profile::Production, "{vars:?}");
            assert_eq!((cfg.min_connections(), cfg.max_connections()), (5, 50));
            assert!(cfg.benchmark());
        }
        // DB_PROFILE wins over NODE_ENV.
        let cfg =
            PoolConfig::from_env_with(env(&[("DB_PROFILE", "dev"), ("NODE_ENV", "production")]))
                .unwrap();
        assert_eq!(cfg.profile(), Profile::Development);
    }

    #[test]
    fn explicit_values_override_profile_defaults() {
        let cfg = PoolConfig::from_env_with(env(&[
            ("DB_PROFILE", "production"),
            ("DB_POOL_MAX", "80"),
            ("DB_STATEMENT_TIMEOUT", "1500"),
            ("DB_BENCHMARK", "off"),
            ("DB_POOL_LEAK_THRESHOLD", "0"),
        ]))
        .unwrap();
        assert_eq!(cfg.max_connections(), 80);
        assert_eq!(cfg.min_connections(), 5);
        assert_eq!(cfg.statement_timeout(), Duration::from_millis(1500));
        assert!(!cfg.benchmark());
        assert_eq!(cfg.leak_threshold(), None);
    }

    #[test]
    fn every_bad_variable_is_reported_at_once() {
        let err = PoolConfig::from_env_with(env(&[
            ("DB_PROFILE", "staging"),
            ("DB_POOL_MAX", "lots"),
            ("DB_ACQUIRE_TIMEOUT", "-5"),
            ("DB_BENCHMARK", "maybe"),
            ("DB_POOL_ALERT_WARNING", "120"),
        ]))
        .unwrap_err();
        let vars: Vec<&str> = err.problems().iter().map(|p| p.variable.as_str()).collect();
        for v in [
            "DB_PROFILE",
            "DB_POOL_MAX",
            "DB_ACQUIRE_TIMEOUT",
            "DB_BENCHMARK",
            "DB_POOL_ALERT_WARNING",
        ] {
            assert!(vars.contains(&v), "{v} missing from {vars:?}");
        }
        let msg = err.to_string();
        assert!(
            msg.contains("DB_POOL_MAX=\"lots\": expected a whole number"),
            "{msg}"
        );
        assert!(msg.contains("DB_ACQUIRE_TIMEOUT=\"-5\""), "{msg}");
    }

    #[test]
    fn min_above_max_is_an_error_alongside_parse_errors() {
        let err = PoolConfig::from_env_with(env(&[
            ("DB_POOL_MIN", "20"),
            ("DB_POOL_MAX", "10"),
            ("DB_RETRY_MAX", "x"),
        ]))
        .unwrap_err();
        let vars: Vec<&str> = err.problems().iter().map(|p| p.variable.as_str()).collect();
        assert_eq!(vars, ["DB_RETRY_MAX", "DB_POOL_MIN"]);
        assert!(err.to_string().contains("min > max"));
    }
}
