//! Opening pools with a [`PoolConfig`]: the sqlx pool options, the per-connection
//! PostgreSQL settings (`statement_timeout`, `idle_in_transaction_session_timeout`), the
//! SQLite settings (WAL, `busy_timeout`, foreign keys), and the monitored handle.

use std::path::Path;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use vitals_env::mask_url;

use crate::config::PoolConfig;
use crate::error::PoolError;
use crate::handle::MonitoredPool;

impl PoolConfig {
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
