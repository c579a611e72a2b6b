//! [`PoolConfig`]: the pool, timeout and retry settings as data, their profiles' defaults and
//! their getters. Building and validating them is `builder.rs`, reading them from the
//! environment `env.rs`, opening pools with them `connect.rs`.

use std::time::Duration;

use serde::Serialize;

use crate::monitor::MonitorConfig;
use crate::pgbouncer::mode::PgBouncerMode;
use crate::retry::RetryPolicy;

/// Which set of defaults applies.
///
/// Read from `DB_PROFILE` (`development`/`dev` or `production`/`prod`); when that is unset,
/// `APP_ENV` or `NODE_ENV` equal to `production` selects [`Profile::Production`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Small pool, no query timing: min 2, max 10, benchmark off.
    #[default]
    Development,
    /// The report's production pool: min 5, max 50, benchmark on.
    Production,
}

/// Pool, timeout and retry settings of the report's `database.config.ts`.
///
/// Plain data: build it with [`PoolConfig::builder`] or read it with
/// [`PoolConfig::from_env`]; then [`connect_postgres`](Self::connect_postgres) or
/// [`connect_sqlite`](Self::connect_sqlite). Cloning copies a few numbers.
///
/// | variable | default (dev / prod) | unit | effect |
/// |---|---|---|---|
/// | `DB_PROFILE` | development | – | picks the defaults below |
/// | `DB_POOL_MIN` | 2 / 5 | connections | kept open when idle |
/// | `DB_POOL_MAX` | 10 / 50 | connections | upper bound of the pool |
/// | `DB_ACQUIRE_TIMEOUT` | 30000 | ms | longest wait for a connection |
/// | `DB_IDLE_TIMEOUT` | 10000 | ms | idle connections above the minimum are closed after this |
/// | `DB_POOL_EVICT` | 1000 | ms | kept for the report; sqlx reaps every `min(idle, lifetime)` |
/// | `DB_HANDLE_DISCONNECTS` | true | bool | ping idle connections before handing them out |
/// | `DB_BENCHMARK` | false / true | bool | time every query through [`MonitoredPool`](crate::MonitoredPool) |
/// | `DB_STATEMENT_TIMEOUT` | 30000 | ms | PostgreSQL `statement_timeout` (0 = off) |
/// | `DB_IDLE_IN_TRANSACTION_TIMEOUT` | 30000 | ms | `idle_in_transaction_session_timeout` (0 = off) |
/// | `DB_SQLITE_BUSY_TIMEOUT` | 5000 | ms | SQLite `busy_timeout` |
/// | `DB_RETRY_MAX` | 3 | attempts | attempts of a unit of work, the first included |
/// | `DB_RETRY_BASE_DELAY` | 100 | ms | first backoff ceiling, doubled per attempt |
/// | `DB_RETRY_MAX_DELAY` | 5000 | ms | backoff ceiling |
/// | `DB_POOL_LEAK_THRESHOLD` | 60000 | ms | a connection held longer counts as leaked (0 = off) |
/// | `DB_POOL_MONITOR_INTERVAL` | 30000 | ms | sampling interval of [`PoolMonitor`](crate::PoolMonitor) |
/// | `DB_POOL_ALERT_WARNING` | 80 | % | utilisation warning |
/// | `DB_POOL_ALERT_CRITICAL` | 90 | % | utilisation critical |
/// | `DB_POOL_ALERT_WAITING` | 5 | tasks | `connection_wait` when more wait |
/// | `DB_PGBOUNCER` | off | off/session/transaction | PgBouncer's pool mode ([`PgBouncerMode`]) |
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolConfig {
    pub(crate) profile: Profile,
    pub(crate) min_connections: u32,
    pub(crate) max_connections: u32,
    pub(crate) acquire_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) evict_interval: Duration,
    pub(crate) handle_disconnects: bool,
    pub(crate) benchmark: bool,
    pub(crate) statement_timeout: Duration,
    pub(crate) idle_in_transaction_timeout: Duration,
    pub(crate) sqlite_busy_timeout: Duration,
    pub(crate) retry_max: u32,
    pub(crate) retry_base_delay: Duration,
    pub(crate) retry_max_delay: Duration,
    pub(crate) leak_threshold: Option<Duration>,
    pub(crate) monitor_interval: Duration,
    pub(crate) alert_warning_percent: f64,
    pub(crate) alert_critical_percent: f64,
    pub(crate) alert_waiting: u32,
    pub(crate) pgbouncer: PgBouncerMode,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self::defaults(Profile::Development)
    }
}

impl PoolConfig {
    /// The defaults of `profile` (the table above).
    pub(crate) fn defaults(profile: Profile) -> Self {
        let prod = profile == Profile::Production;
        Self {
            profile,
            min_connections: if prod { 5 } else { 2 },
            max_connections: if prod { 50 } else { 10 },
            acquire_timeout: Duration::from_millis(30_000),
            idle_timeout: Duration::from_millis(10_000),
            evict_interval: Duration::from_millis(1_000),
            handle_disconnects: true,
            benchmark: prod,
            statement_timeout: Duration::from_millis(30_000),
            idle_in_transaction_timeout: Duration::from_millis(30_000),
            sqlite_busy_timeout: Duration::from_millis(5_000),
            retry_max: 3,
            retry_base_delay: Duration::from_millis(100),
            retry_max_delay: Duration::from_millis(5_000),
            leak_threshold: Some(Duration::from_millis(60_000)),
            monitor_interval: Duration::from_millis(30_000),
            alert_warning_percent: 80.0,
            alert_critical_percent: 90.0,
            alert_waiting: 5,
            pgbouncer: PgBouncerMode::Off,
        }
    }

    /// The profile the defaults came from.
    #[must_use]
    pub fn profile(&self) -> Profile {
        self.profile
    }
    /// Connections kept open when idle (`DB_POOL_MIN`).
    #[must_use]
    pub fn min_connections(&self) -> u32 {
        self.min_connections
    }
    /// Upper bound of the pool (`DB_POOL_MAX`).
    #[must_use]
    pub fn max_connections(&self) -> u32 {
        self.max_connections
    }
    /// Longest wait for a connection (`DB_ACQUIRE_TIMEOUT`).
    #[must_use]
    pub fn acquire_timeout(&self) -> Duration {
        self.acquire_timeout
    }
    /// Idle time after which connections above the minimum close (`DB_IDLE_TIMEOUT`).
    #[must_use]
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }
    /// The report's eviction interval (`DB_POOL_EVICT`). sqlx does not expose its reaper's
    /// period (it runs every `min(idle_timeout, max_lifetime)`), so this value is validated and
    /// reported but does not change sqlx's behaviour.
    #[must_use]
    pub fn evict_interval(&self) -> Duration {
        self.evict_interval
    }
    /// Whether idle connections are pinged before being handed out, so broken ones are
    /// replaced (`DB_HANDLE_DISCONNECTS`, the report's `handleDisconnects`).
    #[must_use]
    pub fn handle_disconnects(&self) -> bool {
        self.handle_disconnects
    }
    /// Whether [`MonitoredPool`](crate::MonitoredPool) times every query (`DB_BENCHMARK`).
    #[must_use]
    pub fn benchmark(&self) -> bool {
        self.benchmark
    }
    /// PostgreSQL `statement_timeout` (`DB_STATEMENT_TIMEOUT`; zero = off).
    #[must_use]
    pub fn statement_timeout(&self) -> Duration {
        self.statement_timeout
    }
    /// PostgreSQL `idle_in_transaction_session_timeout` (`DB_IDLE_IN_TRANSACTION_TIMEOUT`).
    #[must_use]
    pub fn idle_in_transaction_timeout(&self) -> Duration {
        self.idle_in_transaction_timeout
    }
    /// SQLite `busy_timeout` (`DB_SQLITE_BUSY_TIMEOUT`).
    #[must_use]
    pub fn sqlite_busy_timeout(&self) -> Duration {
        self.sqlite_busy_timeout
    }
    /// Connections held longer than this count as leaked (`DB_POOL_LEAK_THRESHOLD`).
    #[must_use]
    pub fn leak_threshold(&self) -> Option<Duration> {
        self.leak_threshold
    }

    /// The retry policy of these settings (`DB_RETRY_MAX`, `DB_RETRY_BASE_DELAY`,
    /// `DB_RETRY_MAX_DELAY`) with the default transient classification.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::new(self.retry_max)
            .base_delay(self.retry_base_delay)
            .max_delay(self.retry_max_delay)
    }

    /// The monitor settings (`DB_POOL_MONITOR_INTERVAL` and the alert thresholds).
    pub fn monitor_config(&self) -> MonitorConfig {
        MonitorConfig::default()
            .interval(self.monitor_interval)
            .utilization_warning(self.alert_warning_percent)
            .utilization_critical(self.alert_critical_percent)
            .waiting_threshold(self.alert_waiting)
    }
}
