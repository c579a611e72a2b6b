//! [`PoolConfigBuilder`]: chained setters over a profile's defaults, and the validation of
//! the relations between settings (`min > max`, critical below warning, ...).

use std::time::Duration;

use vitals_env::{ConfigError, Problems};

use crate::config::{PoolConfig, Profile};
use crate::pgbouncer::mode::PgBouncerMode;

impl PoolConfig {
    /// A builder with the development defaults; call [`PoolConfigBuilder::profile`] to switch.
    pub fn builder() -> PoolConfigBuilder {
        PoolConfigBuilder::default()
    }
}

/// Builder of [`PoolConfig`]; unset fields take the profile's defaults.
#[must_use]
#[derive(Debug, Clone, Default)]
pub struct PoolConfigBuilder {
    profile: Profile,
    min_connections: Option<u32>,
    max_connections: Option<u32>,
    acquire_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    evict_interval: Option<Duration>,
    handle_disconnects: Option<bool>,
    benchmark: Option<bool>,
    statement_timeout: Option<Duration>,
    idle_in_transaction_timeout: Option<Duration>,
    sqlite_busy_timeout: Option<Duration>,
    retry_max: Option<u32>,
    retry_base_delay: Option<Duration>,
    retry_max_delay: Option<Duration>,
    leak_threshold: Option<Option<Duration>>,
    monitor_interval: Option<Duration>,
    alert_warning_percent: Option<f64>,
    alert_critical_percent: Option<f64>,
    alert_waiting: Option<u32>,
    pub(crate) pgbouncer: Option<PgBouncerMode>,
}

impl PoolConfigBuilder {
    /// The profile whose defaults fill the fields not set.
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile = profile;
        self
    }

    vitals_env::setter!(
        /// `DB_POOL_MIN`.
        min_connections: Some(u32);
        /// `DB_POOL_MAX`; must be at least 1 and at least `min_connections`.
        max_connections: Some(u32);
        /// `DB_ACQUIRE_TIMEOUT`; must not be zero.
        acquire_timeout: Some(Duration);
        /// `DB_IDLE_TIMEOUT`.
        idle_timeout: Some(Duration);
        /// `DB_POOL_EVICT` (see [`PoolConfig::evict_interval`]).
        evict_interval: Some(Duration);
        /// `DB_HANDLE_DISCONNECTS`.
        handle_disconnects: Some(bool);
        /// `DB_BENCHMARK`.
        benchmark: Some(bool);
        /// `DB_STATEMENT_TIMEOUT` (zero turns it off).
        statement_timeout: Some(Duration);
        /// `DB_IDLE_IN_TRANSACTION_TIMEOUT` (zero turns it off).
        idle_in_transaction_timeout: Some(Duration);
        /// `DB_SQLITE_BUSY_TIMEOUT`.
        sqlite_busy_timeout: Some(Duration);
        /// `DB_RETRY_MAX`: attempts of a unit of work, the first included; at least 1.
        retry_max: Some(u32);
        /// `DB_RETRY_BASE_DELAY`.
        retry_base_delay: Some(Duration);
        /// `DB_RETRY_MAX_DELAY`.
        retry_max_delay: Some(Duration);
        /// `DB_POOL_LEAK_THRESHOLD` (`None` turns leak counting off).
        leak_threshold: Some(Option<Duration>);
        /// `DB_POOL_MONITOR_INTERVAL`; must not be zero.
        monitor_interval: Some(Duration);
        /// `DB_POOL_ALERT_WARNING`, percent.
        alert_warning_percent: Some(f64);
        /// `DB_POOL_ALERT_CRITICAL`, percent; at least the warning level.
        alert_critical_percent: Some(f64);
        /// `DB_POOL_ALERT_WAITING`: `connection_wait` when more tasks than this wait.
        alert_waiting: Some(u32)
    );

    /// Fills unset fields from the profile and validates.
    ///
    /// # Errors
    /// [`ConfigError`] (component `pool`, each problem named by the variable the setter stands
    /// for) listing every problem: `max_connections` of 0, `min > max`, zero acquire
    /// timeout or monitor interval, zero retry attempts, thresholds outside 0–100 or
    /// critical below warning.
    pub fn build(self) -> Result<PoolConfig, ConfigError> {
        let d = PoolConfig::defaults(self.profile);
        let cfg = PoolConfig {
            profile: self.profile,
            min_connections: self.min_connections.unwrap_or(d.min_connections),
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            acquire_timeout: self.acquire_timeout.unwrap_or(d.acquire_timeout),
            idle_timeout: self.idle_timeout.unwrap_or(d.idle_timeout),
            evict_interval: self.evict_interval.unwrap_or(d.evict_interval),
            handle_disconnects: self.handle_disconnects.unwrap_or(d.handle_disconnects),
            benchmark: self.benchmark.unwrap_or(d.benchmark),
            statement_timeout: self.statement_timeout.unwrap_or(d.statement_timeout),
            idle_in_transaction_timeout: self
                .idle_in_transaction_timeout
                .unwrap_or(d.idle_in_transaction_timeout),
            sqlite_busy_timeout: self.sqlite_busy_timeout.unwrap_or(d.sqlite_busy_timeout),
            retry_max: self.retry_max.unwrap_or(d.retry_max),
            retry_base_delay: self.retry_base_delay.unwrap_or(d.retry_base_delay),
            retry_max_delay: self.retry_max_delay.unwrap_or(d.retry_max_delay),
            leak_threshold: self.leak_threshold.unwrap_or(d.leak_threshold),
            monitor_interval: self.monitor_interval.unwrap_or(d.monitor_interval),
            alert_warning_percent: self
                .alert_warning_percent
                .unwrap_or(d.alert_warning_percent),
            alert_critical_percent: self
                .alert_critical_percent
                .unwrap_or(d.alert_critical_percent),
            alert_waiting: self.alert_waiting.unwrap_or(d.alert_waiting),
            pgbouncer: self.pgbouncer.unwrap_or(d.pgbouncer),
        };
        let mut problems = Problems::new("pool");
        let mut bad = |variable: &str, value: String, expected: &str| {
            problems.bad(variable, value, expected);
        };
        if cfg.max_connections == 0 {
            bad("DB_POOL_MAX", "0".into(), "at least 1");
        }
        if cfg.min_connections > cfg.max_connections {
            bad(
                "DB_POOL_MIN",
                cfg.min_connections.to_string(),
                &format!("at most DB_POOL_MAX ({}): min > max", cfg.max_connections),
            );
        }
        if cfg.acquire_timeout.is_zero() {
            bad("DB_ACQUIRE_TIMEOUT", "0".into(), "more than 0 ms");
        }
        if cfg.monitor_interval.is_zero() {
            bad("DB_POOL_MONITOR_INTERVAL", "0".into(), "more than 0 ms");
        }
        if cfg.retry_max == 0 {
            bad("DB_RETRY_MAX", "0".into(), "at least 1 (the first attempt)");
        }
        for (name, p) in [
            ("DB_POOL_ALERT_WARNING", cfg.alert_warning_percent),
            ("DB_POOL_ALERT_CRITICAL", cfg.alert_critical_percent),
        ] {
            if !(0.0..=100.0).contains(&p) {
                bad(name, p.to_string(), "a percentage between 0 and 100");
            }
        }
        if cfg.alert_critical_percent < cfg.alert_warning_percent {
            bad(
                "DB_POOL_ALERT_CRITICAL",
                cfg.alert_critical_percent.to_string(),
                "at least DB_POOL_ALERT_WARNING",
            );
        }
        problems.finish(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_validates() {
        let err = PoolConfig::builder()
            .max_connections(0)
            .retry_max(0)
            .build()
            .unwrap_err();
        assert_eq!(err.problems().len(), 3, "{err}"); // max 0, min 2 > 0, retry 0
        assert!(err.problems().iter().all(|p| p.component == "pool"));
        let cfg = PoolConfig::builder()
            .profile(Profile::Production)
            .min_connections(1)
            .build()
            .unwrap();
        assert_eq!((cfg.min_connections(), cfg.max_connections()), (1, 50));
    }
}
