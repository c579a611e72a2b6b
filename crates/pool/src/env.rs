//! Reading a [`PoolConfig`] from the environment: a thin step over the builder. Each variable
//! goes through a [`vitals_env::Env`] reader (component `pool`), then the builder's own checks
//! run, and every problem of both comes back at once.

use vitals_env::{Env, Var};

use crate::builder::PoolConfigBuilder as B;
use crate::config::{PoolConfig, Profile};

/// `DB_PROFILE`'s accepted values.
const PROFILES: [(&str, Profile); 4] = [
    ("development", Profile::Development),
    ("dev", Profile::Development),
    ("production", Profile::Production),
    ("prod", Profile::Production),
];

/// Every variable but `DB_PROFILE`, with the builder setter its value goes to; one that is
/// unset or bad leaves the profile's default.
const VARS: &[Var<B>] = vitals_env::vars!(builder B {
    min_connections: U32("DB_POOL_MIN", 0),
    max_connections: U32("DB_POOL_MAX", 0),
    retry_max: U32("DB_RETRY_MAX", 0),
    alert_waiting: U32("DB_POOL_ALERT_WAITING", 0),
    acquire_timeout: Millis("DB_ACQUIRE_TIMEOUT", 0),
    idle_timeout: Millis("DB_IDLE_TIMEOUT", 0),
    evict_interval: Millis("DB_POOL_EVICT", 0),
    statement_timeout: Millis("DB_STATEMENT_TIMEOUT", 0),
    idle_in_transaction_timeout: Millis("DB_IDLE_IN_TRANSACTION_TIMEOUT", 0),
    sqlite_busy_timeout: Millis("DB_SQLITE_BUSY_TIMEOUT", 0),
    retry_base_delay: Millis("DB_RETRY_BASE_DELAY", 0),
    retry_max_delay: Millis("DB_RETRY_MAX_DELAY", 0),
    leak_threshold: Millis("DB_POOL_LEAK_THRESHOLD", 0) => |b, d| {
        b.leak_threshold((!d.is_zero()).then_some(d)) // zero turns it off
    },
    monitor_interval: Millis("DB_POOL_MONITOR_INTERVAL", 0),
    handle_disconnects: Boolean("DB_HANDLE_DISCONNECTS"),
    benchmark: Boolean("DB_BENCHMARK"),
    alert_warning_percent: Percent("DB_POOL_ALERT_WARNING"),
    alert_critical_percent: Percent("DB_POOL_ALERT_CRITICAL"),
});

impl PoolConfig {
    vitals_env::from_env_methods! {
        /// Reads the variables listed on [`PoolConfig`] from the process environment.
        ///
        /// # Errors
        /// [`ConfigError`](vitals_env::ConfigError) (component `pool`) listing every variable
        /// with a bad value, then the builder's checks of the values together
        /// (`DB_POOL_MIN > DB_POOL_MAX`, ...).
        component: "pool",
        read: read,
    }
}

/// The profile, then every other variable through the builder, whose checks run last.
fn read(env: &mut Env<'_>) -> Option<PoolConfig> {
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
    let builder = env.apply(B::default().profile(profile), VARS);
    let builder = crate::pgbouncer::read_env(env, builder);
    env.adopt(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use vitals_env::{pairs as env, ConfigError};

    /// The error of a configuration with these variables.
    fn bad(vars: &[(&str, &str)]) -> ConfigError {
        PoolConfig::from_env_with(env(vars)).unwrap_err()
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
        let err = bad(&[
            ("DB_PROFILE", "staging"),
            ("DB_POOL_MAX", "lots"),
            ("DB_ACQUIRE_TIMEOUT", "-5"),
            ("DB_BENCHMARK", "maybe"),
            ("DB_POOL_ALERT_WARNING", "120"),
        ]);
        for v in [
            "DB_PROFILE",
            "DB_POOL_MAX",
            "DB_ACQUIRE_TIMEOUT",
            "DB_BENCHMARK",
            "DB_POOL_ALERT_WARNING",
        ] {
            assert!(err.problem(v).is_some(), "{v} missing from {err}");
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
        let err = bad(&[
            ("DB_POOL_MIN", "20"),
            ("DB_POOL_MAX", "10"),
            ("DB_RETRY_MAX", "x"),
        ]);
        assert_eq!(err.variables(), ["DB_RETRY_MAX", "DB_POOL_MIN"]);
        assert!(err.to_string().contains("min > max"));
    }
}
