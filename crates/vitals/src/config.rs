//! One configuration for the whole of vitals, read from the environment in one pass.

use vitals_cache::CacheConfig;
use vitals_import::ImportOptions;
use vitals_pool::PoolConfig;
use vitals_querylog::LoggerConfig;

use vitals_env::Env;

use crate::error::ConfigError;

/// How many distinct statements get a `fingerprint` label of their own when
/// `DB_METRICS_FINGERPRINT` is on and `DB_METRICS_FINGERPRINT_MAX` is unset.
pub const DEFAULT_METRICS_FINGERPRINT_MAX: u32 = 100;

/// The longest an import upload's body may take to arrive when
/// `VITALS_UPLOAD_READ_TIMEOUT_MS` is unset: 64 MiB at 20 Mbit/s, with room.
pub const DEFAULT_UPLOAD_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Where the embedded SQLite database lives when `DATABASE_URL` is not set.
pub const DEFAULT_SQLITE_URL: &str = "sqlite://vitals.sqlite";

/// Every crate's configuration, plus the facade's own.
///
/// # Example
/// ```
/// # fn example() -> Result<(), vitals::ConfigError> {
/// // Reads DATABASE_URL, REDIS_URL, DB_*, CACHE_*, REDIS_* …; reports every bad one at once.
/// let config = vitals::Config::from_env_with(|name| match name {
///     "DB_POOL_MAX" => Some("20".into()),
///     _ => None,
/// })?;
/// assert_eq!(config.pool.max_connections(), 20);
/// assert!(config.database_url.is_none()); // the embedded SQLite default
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// `DATABASE_URL`: a `postgres://` or `sqlite:` URL; `None` runs on embedded SQLite at
    /// `VITALS_SQLITE_URL` (default [`DEFAULT_SQLITE_URL`]).
    pub database_url: Option<String>,
    /// `VITALS_SQLITE_URL`: the embedded database when `DATABASE_URL` is not set.
    pub sqlite_url: String,
    /// `VITALS_MIGRATE` (default `true`): apply the school-health migrations at start.
    pub migrate: bool,
    /// `VITALS_HEALTH` (default `true`): the school-health domain. `false` keeps the pool,
    /// the logger, the cache and the importer (for the host's own record specs) and drops the
    /// rest: no migrations, no tables, no warming, no health routes; the health cache's and
    /// the dashboard's reads return [`Error::Config`](crate::Error::Config) naming it.
    pub health: bool,
    /// `VITALS_PG_SCHEMA`: the PostgreSQL schema of vitals' tables and of its migration
    /// history, created if missing, so the host's `public` and `_sqlx_migrations` are never
    /// touched. `None` (unset): [`DEFAULT_PG_SCHEMA`](crate::health::DEFAULT_PG_SCHEMA)
    /// (`vitals`), unless an earlier vitals already migrated this database into `public`
    /// (then it stays there, with a warning). A lowercase identifier; unused on SQLite.
    pub pg_schema: Option<String>,
    /// `DB_METRICS_FINGERPRINT` (default `false`, `off`): label the statement histogram
    /// (`vitals_db_statement_duration_seconds`, feature `metrics`) by the fingerprint of the
    /// sanitised statement too, so a dashboard can tell statements apart; bounded by
    /// [`metrics_fingerprint_max`](Self::metrics_fingerprint_max). Never a literal: the
    /// fingerprint is the query report's, of the text with every literal masked.
    pub metrics_fingerprint: bool,
    /// `DB_METRICS_FINGERPRINT_MAX` (default [`DEFAULT_METRICS_FINGERPRINT_MAX`], 1 to 256):
    /// with [`metrics_fingerprint`](Self::metrics_fingerprint) on, the first this many distinct
    /// statements of an instance have a `fingerprint` label of their own; every later one is
    /// labelled `_other`. (The histogram's 256 series per process still bound it all.)
    pub metrics_fingerprint_max: u32,
    /// `VITALS_UPLOAD_READ_TIMEOUT_MS` (default [`DEFAULT_UPLOAD_READ_TIMEOUT`], 30 s): the
    /// longest an import upload's body may take to arrive, in all (feature `http`). A body
    /// still arriving then is refused 408, so a client that stalls cannot keep one of the
    /// [`MAX_CONCURRENT_UPLOADS`](crate::health::api::MAX_CONCURRENT_UPLOADS) places.
    pub upload_read_timeout: std::time::Duration,
    /// The pool's (`DB_*`).
    pub pool: PoolConfig,
    /// The query logger's (`DB_SLOW_QUERY_*`, `DB_QUERYLOG_*`).
    pub querylog: LoggerConfig,
    /// The cache's (`REDIS_*`, `CACHE_*`).
    pub cache: CacheConfig,
    /// The importer's (`IMPORT_*`).
    pub import: ImportOptions,
    /// The read replicas (`DATABASE_REPLICA_URLS`, `DB_REPLICA_*`; PostgreSQL only).
    pub replicas: vitals_pool::ReplicaConfig,
}

// Masked: a URL's password must not reach a log through `{:?}`.
vitals_env::debug_fields!(Config as c {
    database_url: c.database_url.as_deref().map(vitals_env::mask_url),
    sqlite_url: vitals_env::mask_url(&c.sqlite_url),
    migrate,
    health,
    pg_schema,
    metrics_fingerprint,
    metrics_fingerprint_max,
    upload_read_timeout,
    pool,
    querylog,
    cache,
    import,
    replicas,
});

impl Config {
    /// The defaults: embedded SQLite, L1 cache only, development pool profile.
    ///
    /// # Errors
    /// Never in practice (the defaults are valid); the crates' builders return `Result`.
    pub fn defaults() -> Result<Self, ConfigError> {
        Self::from_env_with(|_| None)
    }

    vitals_env::from_env_methods! {
        /// Reads every variable of every crate from the process environment (or, through
        /// `from_env_with`, a test's map or a secrets store).
        ///
        /// # Errors
        /// [`ConfigError`] listing every bad variable of every crate at once, each problem
        /// naming its crate in `component`: the crates' in the order pool, querylog, cache,
        /// import, then the facade's own.
        component: "vitals",
        read: read,
    }
}

/// Every crate's configuration from the same lookup, their problems kept, then the facade's own
/// variables.
fn read(env: &mut Env<'_>) -> Option<Config> {
    let lookup = env.lookup();
    let pool = env.adopt(PoolConfig::from_env_with(lookup));
    let querylog = env.adopt(LoggerConfig::from_env_with(lookup));
    let cache = env.adopt(CacheConfig::from_env_with(lookup));
    let import = env.adopt(ImportOptions::from_env_with(lookup));
    let replicas = env.adopt(vitals_pool::ReplicaConfig::from_env_with(lookup));

    // The facade's own variables are all read before the crates' `?`s, so a crate's problem
    // still leaves the facade's listed.
    Some(Config {
        database_url: env.url("DATABASE_URL", DATABASE_URL_PREFIXES),
        sqlite_url: env
            .url("VITALS_SQLITE_URL", &[SQLITE_PREFIX])
            .unwrap_or_else(|| DEFAULT_SQLITE_URL.into()),
        migrate: env.boolean("VITALS_MIGRATE").unwrap_or(true),
        health: env.boolean("VITALS_HEALTH").unwrap_or(true),
        pg_schema: env.parse(
            "VITALS_PG_SCHEMA",
            "a schema name: 1 to 63 lowercase letters, digits and _, not starting with a digit or pg_",
            |s| crate::health::is_schema_name(s).then(|| s.to_owned()),
        ),
        metrics_fingerprint: env.boolean("DB_METRICS_FINGERPRINT").unwrap_or(false),
        metrics_fingerprint_max: env
            .whole("DB_METRICS_FINGERPRINT_MAX", 1..=256)
            .unwrap_or(DEFAULT_METRICS_FINGERPRINT_MAX),
        upload_read_timeout: env
            .millis("VITALS_UPLOAD_READ_TIMEOUT_MS", 1)
            .unwrap_or(DEFAULT_UPLOAD_READ_TIMEOUT),
        pool: pool?,
        querylog: querylog?,
        cache: cache?,
        import: import?,
        replicas: replicas?,
    })
}

/// The URL prefixes `DATABASE_URL` accepts: PostgreSQL's two, then SQLite's.
const DATABASE_URL_PREFIXES: &[&str] = &["postgres://", "postgresql://", SQLITE_PREFIX];
const POSTGRES_PREFIXES: &[&str] = &["postgres://", "postgresql://"];
const SQLITE_PREFIX: &str = "sqlite:";

pub(crate) fn is_postgres(url: &str) -> bool {
    POSTGRES_PREFIXES.iter().any(|p| url.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    use vitals_env::pairs as env;

    #[test]
    fn defaults_run_embedded() {
        let config = Config::from_env_with(env(&[])).unwrap();
        assert!(config.database_url.is_none());
        assert_eq!(config.sqlite_url, DEFAULT_SQLITE_URL);
        assert!(config.migrate);
        assert!(config.health);
        assert_eq!(config.pg_schema, None);
        assert!(!config.metrics_fingerprint);
        assert_eq!(
            config.metrics_fingerprint_max,
            DEFAULT_METRICS_FINGERPRINT_MAX
        );
        assert_eq!(config.upload_read_timeout, DEFAULT_UPLOAD_READ_TIMEOUT);
    }

    #[test]
    fn the_upload_read_timeout_is_whole_milliseconds_of_at_least_one() {
        let config =
            Config::from_env_with(env(&[("VITALS_UPLOAD_READ_TIMEOUT_MS", "250")])).unwrap();
        assert_eq!(
            config.upload_read_timeout,
            std::time::Duration::from_millis(250)
        );
        for bad in ["0", "soon", "-1"] {
            let err =
                Config::from_env_with(env(&[("VITALS_UPLOAD_READ_TIMEOUT_MS", bad)])).unwrap_err();
            assert!(
                err.problem("VITALS_UPLOAD_READ_TIMEOUT_MS").is_some(),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn the_fingerprint_label_is_opted_into_and_bounded() {
        let config = Config::from_env_with(env(&[
            ("DB_METRICS_FINGERPRINT", "on"),
            ("DB_METRICS_FINGERPRINT_MAX", "20"),
        ]))
        .unwrap();
        assert!(config.metrics_fingerprint);
        assert_eq!(config.metrics_fingerprint_max, 20);
        let err = Config::from_env_with(env(&[
            ("DB_METRICS_FINGERPRINT", "sometimes"),
            ("DB_METRICS_FINGERPRINT_MAX", "0"),
        ]))
        .unwrap_err();
        assert!(err.problem("DB_METRICS_FINGERPRINT").is_some(), "{err}");
        assert!(err.problem("DB_METRICS_FINGERPRINT_MAX").is_some(), "{err}");
    }

    #[test]
    fn the_schema_is_an_identifier_and_the_domain_can_be_off() {
        let config = Config::from_env_with(env(&[
            ("VITALS_PG_SCHEMA", "school_health"),
            ("VITALS_HEALTH", "false"),
        ]))
        .unwrap();
        assert_eq!(config.pg_schema.as_deref(), Some("school_health"));
        assert!(!config.health);
        for bad in [
            "Vitals",
            "1abc",
            "pg_toast",
            "a-b",
            "x\"; DROP TABLE students; --",
        ] {
            let lookup = move |name: &str| (name == "VITALS_PG_SCHEMA").then(|| bad.to_string());
            let err = Config::from_env_with(lookup).unwrap_err();
            let p = &err.problems()[0];
            assert_eq!(
                (p.component, p.variable.as_str()),
                ("vitals", "VITALS_PG_SCHEMA")
            );
            assert_eq!(p.value.as_deref(), Some(bad));
        }
    }

    #[test]
    fn every_bad_variable_of_every_crate_is_reported_at_once() {
        let err = Config::from_env_with(env(&[
            ("DB_POOL_MAX", "lots"),
            ("CACHE_L1_MAX_SIZE", "-3"),
            ("DB_SLOW_QUERY_WARN_MS", "soon"),
            ("DATABASE_URL", "mysql://root:hunter2@127.0.0.1/x"),
            ("VITALS_MIGRATE", "perhaps"),
        ]))
        .unwrap_err();
        let missing = err.unmentioned(&[
            "DB_POOL_MAX",
            "CACHE_L1_MAX_SIZE",
            "DB_SLOW_QUERY_WARN_MS",
            "DATABASE_URL",
            "VITALS_MIGRATE",
        ]);
        assert!(missing.is_empty(), "{missing:?} missing from: {err}");
        assert_eq!(
            err.unmentioned(&["hunter2"]),
            ["hunter2"],
            "a password leaked: {err}"
        );
        let components: std::collections::BTreeSet<_> =
            err.problems().iter().map(|p| p.component).collect();
        assert_eq!(
            components.into_iter().collect::<Vec<_>>(),
            ["cache", "pool", "querylog", "vitals"]
        );
        // The crates' problems stay structured through the facade: no parsing of text.
        let max = err.problem("DB_POOL_MAX").unwrap();
        assert_eq!(
            (max.component, max.value.as_deref()),
            ("pool", Some("lots"))
        );
        let url = err.problem("DATABASE_URL").unwrap();
        assert_eq!(
            url.value.as_deref(),
            Some("mysql://root:***@127.0.0.1/x"),
            "masked"
        );
    }
}
