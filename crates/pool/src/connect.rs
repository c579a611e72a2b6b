//! Opening pools with a [`PoolConfig`]: the sqlx pool options, the per-connection
//! PostgreSQL settings (`statement_timeout`, `idle_in_transaction_session_timeout`; through
//! PgBouncer as `pgbouncer/` says, with its check at start), the SQLite settings (WAL,
//! `busy_timeout`, foreign keys), and the monitored handle.

#[cfg(feature = "sqlite")]
use std::path::Path;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
use std::str::FromStr;
#[cfg(feature = "postgres")]
use std::sync::Arc;

#[cfg(feature = "postgres")]
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
#[cfg(feature = "sqlite")]
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
#[cfg(any(feature = "postgres", feature = "sqlite"))]
use vitals_env::{mask_bad_url, mask_url};

use crate::config::PoolConfig;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
use crate::error::PoolError;
use crate::handle::MonitoredPool;
#[cfg(feature = "postgres")]
use crate::pgbouncer::mode::PgBouncerMode;
#[cfg(feature = "postgres")]
use crate::pgbouncer::{detect_pooling, PoolingCheck};

impl PoolConfig {
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    fn pool_options<DB: sqlx::Database>(&self) -> sqlx::pool::PoolOptions<DB> {
        sqlx::pool::PoolOptions::<DB>::new()
            .min_connections(self.min_connections)
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            .idle_timeout(self.idle_timeout)
            .test_before_acquire(self.handle_disconnects)
    }

    /// The PostgreSQL pool options of these settings, for callers that build the pool themselves.
    /// With `DB_PGBOUNCER=session` every new connection runs `SET statement_timeout = …; SET
    /// idle_in_transaction_session_timeout = …` (PgBouncer refuses them as startup options).
    #[must_use]
    #[cfg(feature = "postgres")]
    pub fn pg_pool_options(&self) -> PgPoolOptions {
        let options: PgPoolOptions = self.pool_options();
        if self.pgbouncer != PgBouncerMode::Session {
            return options;
        }
        let set: Arc<str> = self.timeouts_sql(false).into();
        options.after_connect(move |conn, _meta| {
            let set = Arc::clone(&set);
            Box::pin(async move {
                // A `&str` runs as one simple query: both SETs in one round trip.
                sqlx::Executor::execute(&mut *conn, &*set).await.map(drop)
            })
        })
    }

    /// Adds `statement_timeout` and `idle_in_transaction_session_timeout` to connect options.
    /// On a direct connection (`DB_PGBOUNCER=off`) they travel in the startup packet, so every
    /// connection has them without an extra round trip. Through PgBouncer no startup option
    /// is sent (nor sqlx's `extra_float_digits`: PgBouncer refuses both), and in transaction
    /// mode sqlx's statement cache is off; the timeouts are then set as
    /// [`PgBouncerMode`] says.
    #[must_use]
    #[cfg(feature = "postgres")]
    pub fn apply_pg_options(&self, options: PgConnectOptions) -> PgConnectOptions {
        self.pg_connect_options(options)
    }

    /// Opens a PostgreSQL pool with these settings and connects once to fail fast.
    ///
    /// # Errors
    /// [`PoolError::InvalidUrl`] or [`PoolError::Connect`], with the URL's password masked.
    #[cfg(feature = "postgres")]
    pub async fn connect_postgres(&self, url: &str) -> Result<sqlx::PgPool, PoolError> {
        let options = PgConnectOptions::from_str(url).map_err(|source| PoolError::InvalidUrl {
            url: mask_bad_url(url),
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
    #[cfg(feature = "postgres")]
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
        let pool = self
            .pg_pool_options()
            .connect_with(options.clone())
            .await
            .map_err(|source| PoolError::Connect {
                url: describe.clone(),
                source,
            })?;
        self.check_pgbouncer(&options, &describe).await?;
        Ok(pool)
    }

    /// With `DB_PGBOUNCER=session` or `transaction`, checks at start that the server side
    /// pools the way the setting says ([`detect_pooling`]): session mode over a server that
    /// shares connections between clients is an error (session settings and sqlx's named
    /// statements would reach other clients); transaction mode where no sharing is seen is a
    /// warning (everything still runs correctly, without transaction pooling's savings).
    #[cfg(feature = "postgres")]
    async fn check_pgbouncer(
        &self,
        options: &PgConnectOptions,
        describe: &str,
    ) -> Result<(), PoolError> {
        if self.pgbouncer == PgBouncerMode::Off {
            return Ok(());
        }
        let check = detect_pooling(options)
            .await
            .map_err(|source| PoolError::Connect {
                url: describe.to_owned(),
                source,
            })?;
        match (self.pgbouncer, check) {
            (PgBouncerMode::Session, PoolingCheck::SharedServer) => {
                Err(PoolError::PgBouncerMismatch {
                    url: describe.to_owned(),
                })
            }
            (PgBouncerMode::Transaction, PoolingCheck::ProxyWithoutSharing { server_port }) => {
                tracing::warn!(
                    url = describe,
                    server_port,
                    "DB_PGBOUNCER=transaction, but two clients never shared a server \
                     connection: a proxy in session mode (PgBouncer pool_mode=session?); \
                     statements run correctly, without transaction pooling's savings"
                );
                Ok(())
            }
            (PgBouncerMode::Transaction, PoolingCheck::Direct) => {
                tracing::warn!(
                    url = describe,
                    "DB_PGBOUNCER=transaction, but DATABASE_URL reaches PostgreSQL directly \
                     (no PgBouncer); statements run correctly, each in a transaction"
                );
                Ok(())
            }
            (PgBouncerMode::Transaction, PoolingCheck::NoSharingSeen) => {
                tracing::warn!(
                    url = describe,
                    "DB_PGBOUNCER=transaction, but two clients never shared a server \
                     connection (PgBouncer in session mode, or no PgBouncer)"
                );
                Ok(())
            }
            (mode, check) => {
                tracing::debug!(
                    url = describe,
                    pgbouncer = mode.as_str(),
                    ?check,
                    "pooling checked"
                );
                Ok(())
            }
        }
    }

    /// Opens a PostgreSQL pool wrapped in a [`MonitoredPool`] with this configuration's leak
    /// threshold and benchmark setting.
    ///
    /// # Errors
    /// As [`connect_postgres`](Self::connect_postgres).
    #[cfg(feature = "postgres")]
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
    #[cfg(feature = "sqlite")]
    pub async fn connect_sqlite(&self, url: &str) -> Result<sqlx::SqlitePool, PoolError> {
        let options =
            SqliteConnectOptions::from_str(url).map_err(|source| PoolError::InvalidUrl {
                url: mask_bad_url(url),
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
    /// benchmark setting, and with `DB_PGBOUNCER=transaction` (on PostgreSQL) the statement
    /// rules of transaction pooling (see [`PgBouncerMode::Transaction`]).
    #[must_use]
    pub fn monitored<DB: sqlx::Database>(&self, pool: sqlx::Pool<DB>) -> MonitoredPool<DB> {
        MonitoredPool::builder(pool)
            .leak_threshold(self.leak_threshold)
            .benchmark(self.benchmark)
            .transaction_pooling(self.transaction_pooling::<DB>())
            .build()
    }
}

#[cfg(all(test, feature = "postgres"))]
mod tests {
    use crate::{PoolConfig, PoolError};

    /// A URL sqlx cannot parse is refused as `InvalidUrl` with no password in it: a libpq
    /// key=value string, a scheme typo (`mask_url` gave such text back whole).
    #[tokio::test]
    async fn a_url_that_does_not_parse_is_refused_without_its_password() {
        for bad in [
            "host=db user=app password=pwZq9Secret",
            "postgres//app:pwZq9Secret@db/x",
        ] {
            let e = PoolConfig::default()
                .connect_postgres(bad)
                .await
                .unwrap_err();
            assert!(matches!(e, PoolError::InvalidUrl { .. }), "{e:?}");
            let (shown, debug) = (e.to_string(), format!("{e:?}"));
            assert!(
                !shown.contains("pwZq9Secret") && !debug.contains("pwZq9Secret"),
                "{shown}"
            );
        }
    }
}
