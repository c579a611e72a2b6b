//! Pool configuration: a builder, the environment variables of the report, and the
//! connect functions that apply the per-connection settings.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

use crate::error::{mask_url, PoolError};
use crate::handle::MonitoredPool;
use crate::monitor::MonitorConfig;
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

impl Profile {
    fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "development" | "dev" => Some(Self::Development),
            "production" | "prod" => Some(Self::Production),
            _ => None,
        }
    }
}

/// One bad configuration value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigProblem {
    /// The environment variable (or, for a builder, the variable the setter stands for).
    pub variable: String,
    /// The value as given (`None` when the problem is a relation between variables).
    pub value: Option<String>,
    /// What was expected.
    pub expected: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={v:?}: expected {}", self.variable, self.expected),
            None => write!(f, "{}: {}", self.variable, self.expected),
        }
    }
}

/// A configuration with one or more bad values; every problem is listed at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[error("invalid pool configuration: {}", list(.problems))]
pub struct ConfigError {
    problems: Vec<ConfigProblem>,
}

fn list(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ConfigError {
    /// Every problem found, in variable order.
    #[must_use]
    pub fn problems(&self) -> &[ConfigProblem] {
        &self.problems
    }
}

/// Pool, timeout and retry settings of the report's `database.config.ts`.
///
/// Build it with [`PoolConfig::builder`] or read it with [`PoolConfig::from_env`]; then
/// [`connect_postgres`](Self::connect_postgres) or [`connect_sqlite`](Self::connect_sqlite).
/// Cloning copies a few numbers.
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
/// | `DB_BENCHMARK` | false / true | bool | time every query through [`MonitoredPool`] |
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
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolConfig {
    profile: Profile,
    min_connections: u32,
    max_connections: u32,
    acquire_timeout: Duration,
    idle_timeout: Duration,
    evict_interval: Duration,
    handle_disconnects: bool,
    benchmark: bool,
    statement_timeout: Duration,
    idle_in_transaction_timeout: Duration,
    sqlite_busy_timeout: Duration,
    retry_max: u32,
    retry_base_delay: Duration,
    retry_max_delay: Duration,
    leak_threshold: Option<Duration>,
    monitor_interval: Duration,
    alert_warning_percent: f64,
    alert_critical_percent: f64,
    alert_waiting: u32,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self::defaults(Profile::Development)
    }
}

impl PoolConfig {
    fn defaults(profile: Profile) -> Self {
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
        }
    }

    /// A builder with the development defaults; call [`PoolConfigBuilder::profile`] to switch.
    pub fn builder() -> PoolConfigBuilder {
        PoolConfigBuilder::default()
    }

    /// Reads the variables listed on [`PoolConfig`] from the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] listing every variable with a bad value, and `DB_POOL_MIN > DB_POOL_MAX`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env) but reads variables through `lookup`, so tests need
    /// not touch the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] listing every variable with a bad value, and `DB_POOL_MIN > DB_POOL_MAX`.
    pub fn from_env_with<F>(lookup: F) -> Result<Self, ConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let mut problems = Vec::new();
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let profile = match get("DB_PROFILE") {
            Some(v) => Profile::parse(&v).unwrap_or_else(|| {
                problems.push(problem(
                    "DB_PROFILE",
                    &v,
                    "\"development\" or \"production\"",
                ));
                Profile::Development
            }),
            None => {
                let prod = ["APP_ENV", "NODE_ENV"]
                    .iter()
                    .any(|n| get(n).is_some_and(|v| v.trim().eq_ignore_ascii_case("production")));
                if prod {
                    Profile::Production
                } else {
                    Profile::Development
                }
            }
        };

        let mut b = PoolConfigBuilder::default().profile(profile);
        let mut u32_var = |name: &str, set: &mut dyn FnMut(u32)| {
            if let Some(v) = get(name) {
                match v.trim().parse::<u32>() {
                    Ok(n) => set(n),
                    Err(_) => problems.push(problem(name, &v, "a whole number >= 0")),
                }
            }
        };
        u32_var("DB_POOL_MIN", &mut |n| b.min_connections = Some(n));
        u32_var("DB_POOL_MAX", &mut |n| b.max_connections = Some(n));
        u32_var("DB_RETRY_MAX", &mut |n| b.retry_max = Some(n));
        u32_var("DB_POOL_ALERT_WAITING", &mut |n| b.alert_waiting = Some(n));

        let mut ms_var = |name: &str, set: &mut dyn FnMut(Duration)| {
            if let Some(v) = get(name) {
                match v.trim().parse::<u64>() {
                    Ok(n) => set(Duration::from_millis(n)),
                    Err(_) => problems.push(problem(name, &v, "milliseconds, a whole number >= 0")),
                }
            }
        };
        ms_var("DB_ACQUIRE_TIMEOUT", &mut |d| b.acquire_timeout = Some(d));
        ms_var("DB_IDLE_TIMEOUT", &mut |d| b.idle_timeout = Some(d));
        ms_var("DB_POOL_EVICT", &mut |d| b.evict_interval = Some(d));
        ms_var("DB_STATEMENT_TIMEOUT", &mut |d| {
            b.statement_timeout = Some(d)
        });
        ms_var("DB_IDLE_IN_TRANSACTION_TIMEOUT", &mut |d| {
            b.idle_in_transaction_timeout = Some(d);
        });
        ms_var("DB_SQLITE_BUSY_TIMEOUT", &mut |d| {
            b.sqlite_busy_timeout = Some(d)
        });
        ms_var("DB_RETRY_BASE_DELAY", &mut |d| b.retry_base_delay = Some(d));
        ms_var("DB_RETRY_MAX_DELAY", &mut |d| b.retry_max_delay = Some(d));
        ms_var("DB_POOL_LEAK_THRESHOLD", &mut |d| {
            b.leak_threshold = Some((!d.is_zero()).then_some(d));
        });
        ms_var("DB_POOL_MONITOR_INTERVAL", &mut |d| {
            b.monitor_interval = Some(d)
        });

        let mut bool_var = |name: &str, set: &mut dyn FnMut(bool)| {
            if let Some(v) = get(name) {
                match v.trim().to_ascii_lowercase().as_str() {
                    "1" | "true" | "yes" | "on" => set(true),
                    "0" | "false" | "no" | "off" => set(false),
                    _ => problems.push(problem(
                        name,
                        &v,
                        "true or false (also 1/0, yes/no, on/off)",
                    )),
                }
            }
        };
        bool_var("DB_HANDLE_DISCONNECTS", &mut |x| {
            b.handle_disconnects = Some(x)
        });
        bool_var("DB_BENCHMARK", &mut |x| b.benchmark = Some(x));

        let mut pct_var = |name: &str, set: &mut dyn FnMut(f64)| {
            if let Some(v) = get(name) {
                match v.trim().trim_end_matches('%').parse::<f64>() {
                    Ok(p) if (0.0..=100.0).contains(&p) => set(p),
                    _ => problems.push(problem(name, &v, "a percentage between 0 and 100")),
                }
            }
        };
        pct_var("DB_POOL_ALERT_WARNING", &mut |p| {
            b.alert_warning_percent = Some(p)
        });
        pct_var("DB_POOL_ALERT_CRITICAL", &mut |p| {
            b.alert_critical_percent = Some(p)
        });

        match b.build() {
            Ok(cfg) if problems.is_empty() => Ok(cfg),
            Ok(_) => Err(ConfigError { problems }),
            Err(e) => {
                problems.extend(e.problems);
                Err(ConfigError { problems })
            }
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
    /// Whether [`MonitoredPool`] times every query (`DB_BENCHMARK`).
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

    fn pool_options<DB: sqlx::Database>(&self) -> sqlx::pool::PoolOptions<DB> {
        sqlx::pool::PoolOptions::<DB>::new()
            .min_connections(self.min_connections)
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            .idle_timeout(self.idle_timeout)
            .test_before_acquire(self.handle_disconnects)
    }

    /// The PostgreSQL pool options of these settings, for callers that build the pool themselves.
    #[must_use]
    pub fn pg_pool_options(&self) -> PgPoolOptions {
        self.pool_options()
    }

    /// Adds `statement_timeout` and `idle_in_transaction_session_timeout` to connect options.
    /// They travel in the startup packet, so every connection has them without an extra round
    /// trip.
    #[must_use]
    pub fn apply_pg_options(&self, options: PgConnectOptions) -> PgConnectOptions {
        options.options([
            (
                "statement_timeout",
                self.statement_timeout.as_millis().to_string(),
            ),
            (
                "idle_in_transaction_session_timeout",
                self.idle_in_transaction_timeout.as_millis().to_string(),
            ),
        ])
    }

    /// Opens a PostgreSQL pool with these settings and connects once to fail fast.
    ///
    /// # Errors
    /// [`PoolError::InvalidUrl`] or [`PoolError::Connect`], with the URL's password masked.
    pub async fn connect_postgres(&self, url: &str) -> Result<sqlx::PgPool, PoolError> {
        let options = PgConnectOptions::from_str(url).map_err(|source| PoolError::InvalidUrl {
            url: mask_url(url),
            source,
        })?;
        self.connect_postgres_with(options)
            .await
            .map_err(|e| match e {
                PoolError::Connect { source, .. } => PoolError::Connect {
                    url: mask_url(url),
                    source,
                },
                other => other,
            })
    }

    /// Like [`connect_postgres`](Self::connect_postgres) with parsed connect options.
    ///
    /// # Errors
    /// [`PoolError::Connect`] when the first connection fails.
    pub async fn connect_postgres_with(
        &self,
        options: PgConnectOptions,
    ) -> Result<sqlx::PgPool, PoolError> {
        let describe = format!(
            "postgres://{}/{}",
            options.get_host(),
            options.get_database().unwrap_or("")
        );
        let options = self.apply_pg_options(options);
        self.pg_pool_options()
            .connect_with(options)
            .await
            .map_err(|source| PoolError::Connect {
                url: describe,
                source,
            })
    }

    /// Opens a PostgreSQL pool wrapped in a [`MonitoredPool`] with this configuration's leak
    /// threshold and benchmark setting.
    ///
    /// # Errors
    /// As [`connect_postgres`](Self::connect_postgres).
    pub async fn connect_postgres_monitored(
        &self,
        url: &str,
    ) -> Result<MonitoredPool<sqlx::Postgres>, PoolError> {
        Ok(self.monitored(self.connect_postgres(url).await?))
    }

    /// Opens an embedded SQLite pool (`sqlite://path/app.db`, `sqlite::memory:`): creates the
    /// file (and its directory) if missing, and sets WAL journal mode, `busy_timeout` and
    /// `foreign_keys = ON` on every connection.
    ///
    /// # Errors
    /// [`PoolError::InvalidUrl`], [`PoolError::CreateSqliteDir`] or [`PoolError::Connect`].
    pub async fn connect_sqlite(&self, url: &str) -> Result<sqlx::SqlitePool, PoolError> {
        let options =
            SqliteConnectOptions::from_str(url).map_err(|source| PoolError::InvalidUrl {
                url: mask_url(url),
                source,
            })?;
        if let Some(dir) = Path::new(options.get_filename()).parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                std::fs::create_dir_all(dir).map_err(|source| PoolError::CreateSqliteDir {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
        }
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(self.sqlite_busy_timeout)
            .foreign_keys(true);
        let pool: SqlitePoolOptions = self.pool_options();
        pool.connect_with(options)
            .await
            .map_err(|source| PoolError::Connect {
                url: mask_url(url),
                source,
            })
    }

    /// Wraps a pool in a [`MonitoredPool`] with this configuration's leak threshold and
    /// benchmark setting.
    #[must_use]
    pub fn monitored<DB: sqlx::Database>(&self, pool: sqlx::Pool<DB>) -> MonitoredPool<DB> {
        MonitoredPool::builder(pool)
            .leak_threshold(self.leak_threshold)
            .benchmark(self.benchmark)
            .build()
    }
}

fn problem(variable: &str, value: &str, expected: &str) -> ConfigProblem {
    ConfigProblem {
        variable: variable.to_owned(),
        value: Some(value.to_owned()),
        expected: expected.to_owned(),
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
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.$name = Some(value);
            self
        }
    };
}

impl PoolConfigBuilder {
    /// The profile whose defaults fill the fields not set.
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile = profile;
        self
    }
    setter!(
        /// `DB_POOL_MIN`.
        min_connections: u32
    );
    setter!(
        /// `DB_POOL_MAX`; must be at least 1 and at least `min_connections`.
        max_connections: u32
    );
    setter!(
        /// `DB_ACQUIRE_TIMEOUT`; must not be zero.
        acquire_timeout: Duration
    );
    setter!(
        /// `DB_IDLE_TIMEOUT`.
        idle_timeout: Duration
    );
    setter!(
        /// `DB_POOL_EVICT` (see [`PoolConfig::evict_interval`]).
        evict_interval: Duration
    );
    setter!(
        /// `DB_HANDLE_DISCONNECTS`.
        handle_disconnects: bool
    );
    setter!(
        /// `DB_BENCHMARK`.
        benchmark: bool
    );
    setter!(
        /// `DB_STATEMENT_TIMEOUT` (zero turns it off).
        statement_timeout: Duration
    );
    setter!(
        /// `DB_IDLE_IN_TRANSACTION_TIMEOUT` (zero turns it off).
        idle_in_transaction_timeout: Duration
    );
    setter!(
        /// `DB_SQLITE_BUSY_TIMEOUT`.
        sqlite_busy_timeout: Duration
    );
    setter!(
        /// `DB_RETRY_MAX`: attempts of a unit of work, the first included; at least 1.
        retry_max: u32
    );
    setter!(
        /// `DB_RETRY_BASE_DELAY`.
        retry_base_delay: Duration
    );
    setter!(
        /// `DB_RETRY_MAX_DELAY`.
        retry_max_delay: Duration
    );
    setter!(
        /// `DB_POOL_LEAK_THRESHOLD` (`None` turns leak counting off).
        leak_threshold: Option<Duration>
    );
    setter!(
        /// `DB_POOL_MONITOR_INTERVAL`; must not be zero.
        monitor_interval: Duration
    );
    setter!(
        /// `DB_POOL_ALERT_WARNING`, percent.
        alert_warning_percent: f64
    );
    setter!(
        /// `DB_POOL_ALERT_CRITICAL`, percent; at least the warning level.
        alert_critical_percent: f64
    );
    setter!(
        /// `DB_POOL_ALERT_WAITING`: `connection_wait` when more tasks than this wait.
        alert_waiting: u32
    );

    /// Fills unset fields from the profile and validates.
    ///
    /// # Errors
    /// [`ConfigError`] listing every problem: `max_connections` of 0, `min > max`, zero acquire
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
        };
        let mut problems = Vec::new();
        let mut bad = |variable: &str, value: String, expected: &str| {
            problems.push(problem(variable, &value, expected));
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
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError { problems })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

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

    #[test]
    fn builder_validates() {
        let err = PoolConfig::builder()
            .max_connections(0)
            .retry_max(0)
            .build()
            .unwrap_err();
        assert_eq!(err.problems().len(), 3, "{err}"); // max 0, min 2 > 0, retry 0
        let cfg = PoolConfig::builder()
            .profile(Profile::Production)
            .min_connections(1)
            .build()
            .unwrap();
        assert_eq!((cfg.min_connections(), cfg.max_connections()), (1, 50));
    }

    #[test]
    fn config_types_are_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<PoolConfig>();
        assert_send_sync::<ConfigError>();
    }
}
