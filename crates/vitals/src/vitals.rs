//! [`Vitals`]: one handle that owns the pool and its monitor, the query logger, the cache,
//! the warmer and the importer of a host service.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use vitals_cache::{CacheStats, TieredCache, WarmScheduler, WarmSummary};
use vitals_import::Importer;
use vitals_pool::{
    health_check, AlertSink, HealthReport, PoolMetrics, PoolMonitor, PoolProbe, PoolSummary,
    TracingAlertSink,
};
use vitals_querylog::{QueryLogger, SlowQuerySink, SummaryHandle};

use crate::cache_history::{CacheHistory, CacheSample};
use crate::config::{is_postgres, Config};
use crate::db::{observer, Db, Engine, Reads};
use crate::health::{
    self, Dashboard, DashboardSource, HealthDataCache, HealthSource, HealthWarmer, Tables,
    VitalsSchema,
};
use crate::telemetry::StatementMetrics;
use crate::Error;

/// The database layer of a school-health service, composed: build one at start, clone it
/// into every handler (cloning is cheap: one `Arc`), call [`shutdown`](Vitals::shutdown)
/// at the end.
///
/// # Example
/// ```no_run
/// # async fn example() -> Result<(), vitals::Error> {
/// // DATABASE_URL, REDIS_URL, DB_*, CACHE_* … (see docs/configuration.md).
/// let vitals = vitals::Vitals::builder().config(vitals::Config::from_env()?).build().await?;
/// // vitals' own tables are in its schema (`vitals.students`); bare names are the host's.
/// let sql = format!("SELECT id FROM {} LIMIT 5", vitals.tables().table("students"));
/// let ids: Vec<uuid::Uuid> = vitals::with_db!(vitals.db(), |db| {
///     sqlx::query_scalar(&sql).fetch_all(db).await
/// })?;
/// println!("{} students; pool: {:?}", ids.len(), vitals.pool_metrics());
/// vitals.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Vitals {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    db: Db,
    logger: QueryLogger,
    cache: TieredCache,
    tables: Tables,
    health_cache: HealthDataCache,
    dashboard: Dashboard,
    warmer: WarmScheduler,
    importer: Importer,
    monitor: Mutex<Option<PoolMonitor>>,
    reads: Reads,
    summary: Mutex<Option<SummaryHandle>>,
    cache_history: CacheHistory,
    /// The statement histogram's labels (`DB_METRICS_FINGERPRINT`), shared by the observers.
    statement_metrics: Arc<StatementMetrics>,
}

impl std::fmt::Debug for Vitals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vitals")
            .field("engine", &self.engine())
            .field("redis", &self.inner.cache.config().uses_redis())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Vitals`]. Without a configuration it reads none: embedded SQLite, L1 only.
#[must_use]
pub struct VitalsBuilder {
    config: Option<Config>,
    database_url: Option<Option<String>>,
    redis_url: Option<Option<String>>,
    alert_sink: Arc<dyn AlertSink>,
    slow_query_sink: Option<Arc<dyn SlowQuerySink>>,
    monitor_interval: Option<Duration>,
    pool: Option<AnyPool>,
    health: Option<bool>,
    health_source: Option<Arc<dyn HealthSource>>,
    dashboard_source: Option<Arc<dyn DashboardSource>>,
}

/// A pool the host already has.
enum AnyPool {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

impl VitalsBuilder {
    /// Uses a PostgreSQL pool the host already opened (its options stay as they are; the
    /// pool configuration's connection settings do not apply to it).
    pub fn postgres_pool(mut self, pool: sqlx::PgPool) -> Self {
        self.pool = Some(AnyPool::Postgres(pool));
        self
    }

    /// Uses an SQLite pool the host already opened.
    pub fn sqlite_pool(mut self, pool: sqlx::SqlitePool) -> Self {
        self.pool = Some(AnyPool::Sqlite(pool));
        self
    }

    /// Uses `config` (from [`Config::from_env`] or built in code).
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// Overrides the database URL (`None`: the embedded SQLite database).
    pub fn database_url(mut self, url: Option<impl Into<String>>) -> Self {
        self.database_url = Some(url.map(Into::into));
        self
    }

    /// Overrides the Redis URL (`None`: L1 only).
    pub fn redis_url(mut self, url: Option<impl Into<String>>) -> Self {
        self.redis_url = Some(url.map(Into::into));
        self
    }

    /// Where pool alerts go (default: `tracing`).
    pub fn alert_sink(mut self, sink: Arc<dyn AlertSink>) -> Self {
        self.alert_sink = sink;
        self
    }

    vitals_env::setter!(
        /// Where slow-query alerts go (default: `tracing`).
        slow_query_sink: Some(Arc<dyn SlowQuerySink>);
        /// Turns the school-health domain on or off (default: the configuration's
        /// `VITALS_HEALTH`, on). Off, vitals keeps the pool, the logger, the cache and the
        /// importer, and applies no migration, creates no table and warms nothing; the health
        /// cache's and the dashboard's reads return [`Error::Config`] naming `VITALS_HEALTH`.
        health: Some(bool);
        /// Reads students' health records (the health cache's misses, the warmer) from `value`
        /// rather than from vitals' own tables: a host whose records live in tables of its own
        /// implements [`HealthSource`] over them. Its statements run on the facade's monitored
        /// handle (it is given [`Vitals::db`]). The cache's keys, TTLs and invalidation
        /// stay vitals'. Ignored when the domain is off ([`health(false)`](Self::health)). vitals'
        /// own tables are still migrated (the importer writes them) unless `VITALS_MIGRATE=false`.
        health_source: Some(Arc<dyn HealthSource>);
        /// Reads the dashboard's figures from `value` rather than from vitals' own tables (see
        /// [`health_source`](Self::health_source); one type may implement both traits).
        dashboard_source: Some(Arc<dyn DashboardSource>);
        /// How often the pool monitor samples (default: the pool configuration's, 30 s).
        monitor_interval: Some(Duration)
    );

    /// Opens the database (retrying transient failures with the pool's retry policy), applies
    /// the school-health migrations (unless `VITALS_MIGRATE=false` or `VITALS_HEALTH=false`;
    /// on PostgreSQL into `VITALS_PG_SCHEMA`, history included, leaving the host's `public`
    /// and `_sqlx_migrations` alone), starts the pool monitor, the cache (L2
    /// when Redis is configured; an unreachable Redis leaves it on L1 and healing), the warming
    /// schedule (when enabled) and the periodic query summary (when configured).
    ///
    /// # Errors
    /// [`Error::Config`] for bad configuration, [`Error::Pool`] when the database cannot be
    /// reached after the retries (the URL's password masked), [`Error::Migrate`], or
    /// [`Error::Cache`] / [`Error::Import`] for their setup.
    pub async fn build(self) -> Result<Vitals, Error> {
        // The Prometheus recorder for /metrics, unless the host installed its own first.
        #[cfg(feature = "metrics")]
        crate::metrics::install_prometheus();
        let mut config = match self.config {
            Some(c) => c,
            None => Config::defaults()?,
        };
        if let Some(url) = self.database_url {
            config.database_url = url;
        }
        if let Some(url) = self.redis_url {
            config.cache = config.cache.with_redis_url(url);
        }
        if let Some(on) = self.health {
            config.health = on;
        }
        let logger = match self.slow_query_sink {
            Some(sink) => QueryLogger::with_sink(config.querylog.clone(), sink),
            None => QueryLogger::new(config.querylog.clone()),
        };
        let statement_metrics = StatementMetrics::new(&config);
        let db = match self.pool {
            Some(pool) => wrap_pool(&config, &logger, &statement_metrics, pool),
            None => open_db(&config, &logger, &statement_metrics).await?,
        };
        let (db, reads) = crate::db::attach_replicas(&config, db, self.alert_sink.clone()).await?;
        let tables = health_tables(&config, &db).await?;
        if config.health && config.migrate {
            refuse_migrations_through_transaction_pooling(&config, &db)?;
            match &db {
                Db::Postgres(p) => health::migrate_postgres_monitored(p, &tables, &logger).await?,
                Db::Sqlite(p) => health::migrate_sqlite_monitored(p, &logger).await?,
            }
        }
        let mut monitor_config = config.pool.monitor_config();
        if let Some(every) = self.monitor_interval {
            monitor_config = monitor_config.interval(every);
        }
        let sample_every = monitor_config.sampling_interval();
        let monitor = crate::with_db!(&db, |p| PoolMonitor::spawn(
            p.clone(),
            monitor_config,
            self.alert_sink.clone()
        ));
        let cache = TieredCache::builder(config.cache.clone()).build().await?;
        // The cache's hit rates per interval, at the pool monitor's pace (one dashboard clock).
        let cache_history = CacheHistory::spawn(cache.clone(), sample_every);
        let schema = VitalsSchema::new(tables.clone());
        let health_source: Arc<dyn HealthSource> = match self.health_source {
            Some(source) => source,
            None => Arc::new(schema.clone()),
        };
        let dashboard_source: Arc<dyn DashboardSource> = match self.dashboard_source {
            Some(source) => source,
            None => Arc::new(schema),
        };
        let warmer = if config.health {
            WarmScheduler::start(
                &cache,
                HealthWarmer::with_source(db.clone(), health_source.clone()),
            )
        } else {
            WarmScheduler::start(&cache, health::NoWarming)
        };
        let importer = Importer::new(health::records::registry_in(&tables), config.import.clone())?;
        let summary = logger.start_configured_summary().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not start the periodic query summary");
            None
        });
        tracing::info!(
            engine = db.engine().name(),
            redis = cache.config().uses_redis(),
            "vitals started"
        );
        Ok(Vitals {
            inner: Arc::new(Inner {
                health_cache: match config.health {
                    true => HealthDataCache::with_source(db.clone(), health_source, cache.clone())
                        .with_reads(reads.clone()),
                    false => HealthDataCache::disabled(db.clone(), cache.clone()),
                },
                dashboard: match config.health {
                    true => Dashboard::with_source(db.clone(), dashboard_source)
                        .with_reads(reads.clone()),
                    false => Dashboard::disabled(db.clone()),
                },
                tables,
                config,
                db,
                logger,
                cache,
                warmer,
                importer,
                monitor: Mutex::new(Some(monitor)),
                reads,
                summary: Mutex::new(summary),
                cache_history,
                statement_metrics,
            }),
        })
    }
}

/// Migrations need a session: sqlx's migrator holds an advisory lock across its statements
/// and vitals sets `search_path` for them, which PgBouncer's transaction pooling would leave
/// on (or lose to) server connections other clients get. Named at start instead.
fn refuse_migrations_through_transaction_pooling(config: &Config, db: &Db) -> Result<(), Error> {
    if db.engine() != crate::Engine::Postgres
        || config.pool.pgbouncer() != vitals_pool::PgBouncerMode::Transaction
    {
        return Ok(());
    }
    let problem = crate::ConfigProblem::new(
        "vitals",
        "VITALS_MIGRATE",
        Some("true".to_owned()),
        "false with DB_PGBOUNCER=transaction: migrations need a session (an advisory lock, \
         search_path); run them once on a direct connection (vitals::health::migrate_postgres) \
         and start the pooled instances with VITALS_MIGRATE=false",
    );
    Err(Error::Config(crate::ConfigError::one(problem)))
}

/// Where vitals' tables are: on PostgreSQL `VITALS_PG_SCHEMA`, or when unset the default
/// schema, unless an earlier vitals migrated this database into `public` (its history in
/// `public._sqlx_migrations`, no schema of its own yet): then `public`, with a warning. On
/// SQLite, `main`.
async fn health_tables(config: &Config, db: &Db) -> Result<Tables, Error> {
    let Db::Postgres(p) = db else {
        return Ok(Tables::unqualified());
    };
    let schema = match config.pg_schema.as_deref() {
        Some(schema) => schema,
        None if config.health && health::is_legacy_public(p, health::DEFAULT_PG_SCHEMA).await? => {
            tracing::warn!(
                schema = "public",
                "vitals' tables were migrated into public by an earlier vitals; they stay there \
                 (set VITALS_PG_SCHEMA=public to say so, or move them to a schema of their own)"
            );
            "public"
        }
        None => health::DEFAULT_PG_SCHEMA,
    };
    Tables::in_schema(schema).map_err(|e| {
        Error::Config(crate::ConfigError::one(crate::ConfigProblem::new(
            "vitals",
            "VITALS_PG_SCHEMA",
            Some(schema.to_owned()),
            e.to_string(),
        )))
    })
}

async fn open_db(
    config: &Config,
    logger: &QueryLogger,
    metrics: &Arc<StatementMetrics>,
) -> Result<Db, Error> {
    let pool_config = &config.pool;
    let pool = match config.database_url.as_deref() {
        Some(url) if is_postgres(url) => {
            probe_postgres(config, url).await?;
            AnyPool::Postgres(pool_config.connect_postgres(url).await?)
        }
        other => AnyPool::Sqlite(
            pool_config
                .connect_sqlite(other.unwrap_or(config.sqlite_url.as_str()))
                .await?,
        ),
    };
    Ok(wrap_pool(config, logger, metrics, pool))
}

/// One direct connection, retried with the pool's policy, before the pool is built: a pool
/// retries a refused connect until its acquire timeout and then says only "timed out", so
/// an unreachable database would take `DB_RETRY_MAX` × `DB_ACQUIRE_TIMEOUT` to report, and
/// report the wrong thing. A refused connect fails at once here, with the real reason.
async fn probe_postgres(config: &Config, url: &str) -> Result<(), Error> {
    use sqlx::ConnectOptions as _;
    use std::sync::atomic::{AtomicU32, Ordering};

    let masked = vitals_pool::mask_url(url);
    let options: sqlx::postgres::PgConnectOptions =
        url.parse()
            .map_err(|source| vitals_pool::PoolError::InvalidUrl {
                url: vitals_pool::mask_bad_url(url),
                source,
            })?;
    let options = config.pool.apply_pg_options(options);
    let timeout = config.pool.acquire_timeout();
    let attempts = AtomicU32::new(0);
    let outcome = vitals_pool::retry::retry(&config.pool.retry_policy(), || async {
        attempts.fetch_add(1, Ordering::Relaxed);
        match tokio::time::timeout(timeout, options.connect()).await {
            Ok(Ok(conn)) => {
                let _ = sqlx::Connection::close(conn).await;
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(sqlx::Error::PoolTimedOut),
        }
    })
    .await;
    outcome.map_err(|source| Error::Unreachable {
        url: masked.clone(),
        attempts: attempts.load(Ordering::Relaxed),
        reason: vitals_querylog::scrub_text(
            &vitals_pool::PoolError::Connect {
                url: masked,
                source,
            }
            .to_string(),
        ),
    })
}

/// Wraps a pool in the monitored handle whose statements feed the query logger.
fn wrap_pool(
    config: &Config,
    logger: &QueryLogger,
    metrics: &Arc<StatementMetrics>,
    pool: AnyPool,
) -> Db {
    let pool_config = &config.pool;
    let observer = observer(logger, metrics);
    match pool {
        AnyPool::Postgres(p) => Db::Postgres(pool_config.monitored(p).with_observer(observer)),
        AnyPool::Sqlite(p) => Db::Sqlite(pool_config.monitored(p).with_observer(observer)),
    }
}

impl Vitals {
    /// A builder; see [`VitalsBuilder::build`].
    pub fn builder() -> VitalsBuilder {
        VitalsBuilder {
            config: None,
            database_url: None,
            redis_url: None,
            alert_sink: Arc::new(TracingAlertSink),
            slow_query_sink: None,
            monitor_interval: None,
            pool: None,
            health: None,
            health_source: None,
            dashboard_source: None,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The engine vitals runs on.
    pub fn engine(&self) -> Engine {
        self.inner.db.engine()
    }

    /// The instrumented database handle (see [`Db`] and [`with_db!`](crate::with_db)).
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Where reads go: a read replica when `DATABASE_REPLICA_URLS` names fit ones, else the
    /// primary (see [`Reads`]); [`db`](Self::db) is the write handle.
    pub fn reads(&self) -> &Reads {
        &self.inner.reads
    }

    /// Each read replica's fitness, lag, pool metrics, monitor summary and a `SELECT 1`
    /// within `timeout` (empty without replicas).
    pub async fn replica_reports(&self, timeout: Duration) -> Vec<vitals_pool::ReplicaReport> {
        match self.inner.reads.replicas() {
            Some(r) => r.reports(timeout).await,
            None => Vec::new(),
        }
    }

    /// The query logger: statistics, slow queries, the performance report.
    pub fn query_logger(&self) -> &QueryLogger {
        &self.inner.logger
    }

    /// The statement histogram's labels of this instance, for the importer's observer.
    pub(crate) fn statement_metrics(&self) -> Arc<StatementMetrics> {
        Arc::clone(&self.inner.statement_metrics)
    }

    /// The two-tier cache.
    pub fn cache(&self) -> &TieredCache {
        &self.inner.cache
    }

    /// Where vitals' school-health tables are (`vitals.students` … on PostgreSQL, see
    /// `VITALS_PG_SCHEMA`), for the functions of [`health`] that take them.
    pub fn tables(&self) -> &Tables {
        &self.inner.tables
    }

    /// The school-health cache (the report's `HealthDataCache`).
    pub fn health_cache(&self) -> &HealthDataCache {
        &self.inner.health_cache
    }

    /// The dashboard reads.
    pub fn dashboard(&self) -> &Dashboard {
        &self.inner.dashboard
    }

    /// The warming scheduler (`warm_now()` for the report's on-demand warming).
    pub fn warmer(&self) -> &WarmScheduler {
        &self.inner.warmer
    }

    /// The importer of the school-health record types.
    pub fn importer(&self) -> &Importer {
        &self.inner.importer
    }

    /// Warms the cache now and returns the summary.
    pub async fn warm_now(&self) -> WarmSummary {
        self.inner.warmer.warm_now().await
    }

    /// The cache's statistics.
    pub fn cache_stats(&self) -> CacheStats {
        self.inner.cache.stats()
    }

    fn with_monitor<T>(&self, f: impl FnOnce(&PoolMonitor) -> T) -> Option<T> {
        let guard = self.inner.monitor.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().map(f)
    }

    /// The pool now: connections, waiters and the handle's statistics since the monitor's
    /// last sample. Reading it does not disturb the monitor (its history, alerts and the
    /// windows of its histograms are its own).
    pub fn pool_metrics(&self) -> PoolMetrics {
        crate::with_db!(&self.inner.db, |p| PoolMetrics::from_state(
            PoolProbe::state(p),
            Some(p.stats())
        ))
    }

    /// Makes the monitor take a sample now, as if its interval had passed: recorded in its
    /// history, alerts raised or cleared, the handle's histogram window closed. `None` after
    /// [`shutdown`](Self::shutdown).
    pub fn sample_pool_now(&self) -> Option<PoolMetrics> {
        self.with_monitor(PoolMonitor::sample_now)
    }

    /// The monitor's latest periodic sample (`None` before the first interval has passed or
    /// after [`shutdown`](Self::shutdown)).
    pub fn pool_latest_sample(&self) -> Option<PoolMetrics> {
        self.with_monitor(PoolMonitor::latest).flatten()
    }

    /// The monitor's recent samples, oldest first.
    pub fn pool_history(&self) -> Vec<PoolMetrics> {
        self.with_monitor(PoolMonitor::history).unwrap_or_default()
    }

    /// The monitor's summary for dashboards (averages, peaks, alerts by kind).
    pub fn pool_summary(&self) -> Option<PoolSummary> {
        self.with_monitor(PoolMonitor::summary)
    }

    /// The cache's lookups and hit rates per tier, one entry per pool-monitor interval
    /// (`DB_POOL_MONITOR_INTERVAL`), oldest first, the latest
    /// [`CACHE_HISTORY_SAMPLES`](crate::cache_history::CACHE_HISTORY_SAMPLES).
    pub fn cache_history(&self) -> Vec<CacheSample> {
        self.inner.cache_history.samples()
    }

    /// Ends the cache's current interval now, as if the monitor's interval had passed.
    pub fn sample_cache_now(&self) -> CacheSample {
        self.inner.cache_history.sample_now()
    }

    /// `SELECT 1` within `timeout`: healthy, degraded or unhealthy, with latency.
    pub async fn pool_health(&self, timeout: Duration) -> HealthReport {
        crate::with_db!(&self.inner.db, |p| health_check(p, timeout).await)
    }

    /// Stops the background tasks (pool monitor, query summary, cache subscription and
    /// warming) and closes the pool. Idempotent; clones still work for reads that need no
    /// background task.
    pub async fn shutdown(&self) {
        if let Some(m) = take(&self.inner.monitor) {
            m.stop().await;
        }
        if let Some(s) = take(&self.inner.summary) {
            s.stop();
        }
        self.inner.cache_history.stop();
        self.inner.cache.shutdown().await;
        if let Some(router) = self.inner.reads.replicas() {
            router.shutdown().await;
        }
        self.inner.db.close().await;
        tracing::info!("vitals stopped");
    }
}

/// Takes what `slot` holds, leaving `None` (a poisoned lock is taken over: the slot holds no
/// invariant a panic could break).
fn take<T>(slot: &Mutex<Option<T>>) -> Option<T> {
    slot.lock().unwrap_or_else(|p| p.into_inner()).take()
}
