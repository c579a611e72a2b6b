//! The instrumented database handle: one monitored pool, PostgreSQL or the embedded SQLite,
//! whose every statement is timed into the query logger.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{Postgres, Sqlite};
use vitals_pool::{MonitoredPool, QueryObserver, ReadTarget, ReplicaRouter, Statement};
use vitals_querylog::QueryLogger;

use crate::telemetry::{self, Scoped, StatementMetrics};
use crate::{DbErrorKind, Error};

/// Which database engine vitals runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// PostgreSQL (`DATABASE_URL=postgres://…`).
    Postgres,
    /// Embedded SQLite (no `DATABASE_URL`, or `sqlite:…`).
    Sqlite,
}

impl Engine {
    /// OpenTelemetry's `db.system.name`: `"postgresql"` or `"sqlite"`.
    pub fn otel_system(self) -> &'static str {
        match self {
            Engine::Postgres => "postgresql",
            Engine::Sqlite => "sqlite",
        }
    }

    /// `"PostgreSQL"` or `"SQLite"` (also what `Display` writes).
    pub fn name(self) -> &'static str {
        match self {
            Engine::Postgres => "PostgreSQL",
            Engine::Sqlite => "SQLite",
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The database handle: a [`MonitoredPool`] of either engine.
///
/// Host code runs ordinary sqlx queries on the engine's pool:
/// `sqlx::query("SELECT 1").fetch_all(vitals.db().postgres()?)`; every statement is timed into
/// the query logger and every acquisition counted by the pool monitor. Code that must run on
/// both engines uses [`with_db!`](crate::with_db). Cloning is cheap (the pools are shared).
#[derive(Debug, Clone)]
pub enum Db {
    /// A PostgreSQL pool.
    Postgres(MonitoredPool<Postgres>),
    /// An SQLite pool.
    Sqlite(MonitoredPool<Sqlite>),
}

impl Db {
    /// The engine.
    pub fn engine(&self) -> Engine {
        match self {
            Db::Postgres(_) => Engine::Postgres,
            Db::Sqlite(_) => Engine::Sqlite,
        }
    }

    /// The PostgreSQL pool.
    ///
    /// # Errors
    /// [`Error::WrongEngine`] when vitals runs on SQLite.
    pub fn postgres(&self) -> Result<&MonitoredPool<Postgres>, Error> {
        match self {
            Db::Postgres(p) => Ok(p),
            Db::Sqlite(_) => Err(Error::WrongEngine {
                needed: Engine::Postgres,
                actual: Engine::Sqlite,
            }),
        }
    }

    /// The SQLite pool.
    ///
    /// # Errors
    /// [`Error::WrongEngine`] when vitals runs on PostgreSQL.
    pub fn sqlite(&self) -> Result<&MonitoredPool<Sqlite>, Error> {
        match self {
            Db::Sqlite(p) => Ok(p),
            Db::Postgres(_) => Err(Error::WrongEngine {
                needed: Engine::Sqlite,
                actual: Engine::Postgres,
            }),
        }
    }

    /// Connections open now and their ceiling, for a quick look (the monitor has the rest).
    pub fn size(&self) -> (u32, u32) {
        with_db!(self, |p| (
            p.inner().size(),
            p.inner().options().get_max_connections()
        ))
    }

    /// Closes every connection (after the ones in use are returned).
    pub async fn close(&self) {
        with_db!(self, |p| p.inner().close().await)
    }
}

/// Runs the same code on whichever engine a [`Db`] holds: `$p` is bound to the engine's
/// `&MonitoredPool<_>` (an sqlx executor) and the body is compiled once per engine, so its SQL
/// must suit both (positional `$n` parameters do).
///
/// This macro and the crate's internal `per_engine!` are the only code that knows a [`Db`] is PostgreSQL or
/// SQLite.
///
/// # Example
/// ```no_run
/// # async fn example(vitals: vitals::Vitals) -> Result<(), vitals::Error> {
/// let n: i64 = vitals::with_db!(vitals.db(), |db| {
///     sqlx::query_scalar("SELECT COUNT(*) FROM students").fetch_one(db).await
/// })?;
/// # Ok(()) }
/// ```
#[macro_export]
macro_rules! with_db {
    ($db:expr, |$p:ident| $body:expr) => {
        match $db {
            $crate::Db::Postgres($p) => $body,
            $crate::Db::Sqlite($p) => $body,
        }
    };
    // The crate's own form, for functions written once per engine by `per_engine!`:
    // `with_db!(@call db, path::to::module => name(args))` awaits `module::postgres::name(pool,
    // args)` or `module::sqlite::name(pool, args)`.
    (@call $db:expr, $($module:ident)::+ => $name:ident ( $($arg:expr),* $(,)? )) => {
        match $db {
            $crate::Db::Postgres(p) => $($module)::+::postgres::$name(p $(, $arg)*).await,
            $crate::Db::Sqlite(p) => $($module)::+::sqlite::$name(p $(, $arg)*).await,
        }
    };
}
pub use with_db;

/// Writes an async function once and defines it for each engine (`$vis fn $pg / $lite`): `$pg`
/// for PostgreSQL and `$lite` for SQLite, generic over the executor
/// `$exec: $Trait<'c, Database = engine>` (plus `+ Copy` when asked), with `$db` naming the
/// engine's sqlx database type in the body.
///
/// `<Db, mod engine>` also names the calling module's `postgres` or `sqlite` module (the
/// engine's functions under their plain names) `engine` in the body, so a function can call
/// its siblings on the same engine: `engine::student(db, tables, id)`.
///
/// Two macros because they do two things macro_rules cannot merge: [`with_db!`] picks one arm
/// of a [`Db`] value at run time (an expression, public), this one defines items at compile
/// time (the engine-generic sqlx code, whose bounds differ per engine and are too long to
/// write as one generic function). Both list the same two engines.
macro_rules! per_engine {
    ($(#[$meta:meta])* $vis:vis fn $pg:ident / $lite:ident <$db:ident $(, mod $sib:ident)?> ($exec:ident : $bound:ident $(+ $extra:ident)? $(, $arg:ident : $ty:ty)* $(,)?) -> $ret:ty $body:block) => {
        $crate::db::per_engine!(@one sqlx::Postgres, postgres, $(#[$meta])* $vis fn $pg <$db $(, $sib)?> ($exec: $bound $(+ $extra)? $(, $arg : $ty)*) -> $ret $body);
        $crate::db::per_engine!(@one sqlx::Sqlite, sqlite, $(#[$meta])* $vis fn $lite <$db $(, $sib)?> ($exec: $bound $(+ $extra)? $(, $arg : $ty)*) -> $ret $body);
    };
    (@one $engine:path, $module:ident, $(#[$meta:meta])* $vis:vis fn $name:ident <$db:ident $(, $sib:ident)?> ($exec:ident : $bound:ident $(+ $extra:ident)? $(, $arg:ident : $ty:ty)*) -> $ret:ty $body:block) => {
        $(#[$meta])*
        $vis async fn $name<'c, X>($exec: X $(, $arg: $ty)*) -> $ret
        where
            X: sqlx::$bound<'c, Database = $engine> $(+ $extra)?,
        {
            #[allow(dead_code)]
            type $db = $engine;
            $(use self::$module as $sib;)?
            $body
        }
    };
}
pub(crate) use per_engine;

/// Feeds every statement of the monitored pool to the query logger (the pool's
/// [`QueryObserver`] seam; the pool crate knows nothing of the logger).
pub(crate) struct LoggerObserver {
    pub(crate) logger: QueryLogger,
    pub(crate) metrics: Arc<StatementMetrics>,
}

impl QueryObserver for LoggerObserver {
    fn on_query(&self, sql: &str, elapsed: Duration, rows: u64, error: Option<&sqlx::Error>) {
        telemetry::record(&self.logger, sql, elapsed, rows, error, Scoped::Yes);
    }

    /// Records the statement once: the logger sanitises it, and the span and the statement
    /// histogram take the sanitised text, operation and table from what it recorded.
    fn on_statement(&self, s: &Statement<'_>) {
        let q = telemetry::record(&self.logger, s.sql, s.elapsed, s.rows, s.error, Scoped::Yes);
        telemetry::end_span(s.span, &q, s.rows, s.error);
        self.metrics
            .record(s.system, &q, s.elapsed, s.error.is_none());
    }

    /// `on_statement` records the span's whole end, rows and error with the description.
    fn records_span_end(&self) -> bool {
        true
    }
}

pub(crate) fn observer(
    logger: &QueryLogger,
    metrics: &Arc<StatementMetrics>,
) -> Arc<dyn QueryObserver> {
    Arc::new(LoggerObserver {
        logger: logger.clone(),
        metrics: Arc::clone(metrics),
    })
}

/// Where the facade's reads go: a read replica when `DATABASE_REPLICA_URLS` names fit ones
/// (see [`ReplicaRouter`]), else the primary, [`Db`] itself.
///
/// The health cache's loaders read through [`run`](Self::run) with `fresh`: the primary's
/// WAL position is taken after the cache's generation snapshot and the load waits for a
/// replica that replayed it (or reads the primary), so a load that follows an invalidation
/// never caches a replica's older row. The dashboard reads with read-your-writes
/// ([`consistent`](Self::consistent)). Writes go through [`Vitals::db`](crate::Vitals::db),
/// the router's write handle, whose statements mark the request's read-your-writes scope.
///
/// Cloning is cheap (a handle and an `Arc`).
///
/// # Example
/// ```no_run
/// # async fn example(vitals: vitals::Vitals) -> Result<(), vitals::Error> {
/// // A replica that replayed this scope's writes, or the primary.
/// let db = vitals.reads().consistent().await;
/// let n: i64 = sqlx::query_scalar("SELECT count(*) FROM vitals.students")
///     .fetch_one(db.postgres()?)
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Reads {
    db: Db,
    router: Option<ReplicaRouter>,
}

impl Reads {
    /// Reads on `db` itself (no replicas).
    pub fn primary(db: Db) -> Self {
        Self { db, router: None }
    }

    /// Reads routed by `router` (whose write handle is `db`'s pool).
    pub fn routed(db: Db, router: ReplicaRouter) -> Self {
        Self {
            db,
            router: Some(router),
        }
    }

    /// The replica router, when replicas are configured.
    pub fn replicas(&self) -> Option<&ReplicaRouter> {
        self.router.as_ref()
    }

    /// A fit replica, or the primary, without waiting (see [`ReplicaRouter::read`]).
    pub fn now(&self) -> Db {
        match &self.router {
            Some(r) => Db::Postgres(r.read().pool().clone()),
            None => self.db.clone(),
        }
    }

    /// A replica that replayed this scope's writes, waiting up to `DB_REPLICA_WAIT_MS`, or the
    /// primary (see [`ReplicaRouter::read_consistent`]).
    pub async fn consistent(&self) -> Db {
        match &self.router {
            Some(r) => Db::Postgres(r.read_consistent().await.pool().clone()),
            None => self.db.clone(),
        }
    }

    /// A replica that replayed every write committed before this call, or the primary (see
    /// [`ReplicaRouter::read_fresh`]).
    pub async fn fresh(&self) -> Db {
        match &self.router {
            Some(r) => Db::Postgres(r.read_fresh().await.pool().clone()),
            None => self.db.clone(),
        }
    }

    /// Runs the read `f` on a replica ([`fresh`](Self::fresh) when `fresh`, else
    /// [`consistent`](Self::consistent)); when it fails there with a lost connection, a
    /// recovery conflict or no connection of the replica's pool in time, a lost replica is
    /// taken out and `f` runs again on the primary, so a replica going down fails no request.
    /// A statement or lock timeout (57014, 55P03) is the query's own: returned, not run again
    /// on the primary. `f` may run twice: keep writes out of it.
    ///
    /// # Errors
    /// `f`'s error (on the primary when the replica failed).
    pub async fn run<T, F, Fut>(&self, fresh: bool, f: F) -> Result<T, Error>
    where
        F: Fn(Db) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let Some(router) = &self.router else {
            return f(self.db.clone()).await;
        };
        let read = match fresh {
            true => router.read_fresh().await,
            false => router.read_consistent().await,
        };
        let target = read.target();
        let outcome = f(Db::Postgres(read.pool().clone())).await;
        match outcome {
            Err(e) if target != ReadTarget::Primary && replica_failed(&e) => {
                if e.kind() == Some(DbErrorKind::Connection) {
                    router.report_failure(target, "connection lost");
                }
                f(Db::Postgres(router.primary().clone())).await
            }
            other => other,
        }
    }
}

/// Whether a read's failure on a replica is the replica's, so the primary runs it again: a
/// lost connection, a recovery conflict (40001), or no connection of the replica's pool in
/// time. Not a statement or lock timeout the query earned (57014, 55P03): run again on the
/// primary it would take as long there, and load the primary with it.
fn replica_failed(e: &Error) -> bool {
    match e.kind() {
        Some(DbErrorKind::Connection | DbErrorKind::SerializationFailure) => true,
        Some(DbErrorKind::Timeout) => e.code().is_none(),
        _ => false,
    }
}

/// Connects the replicas of `config` behind the PostgreSQL `db`: the returned [`Db`] is the
/// router's write handle (its statements mark read-your-writes scopes). SQLite, or no
/// replica configured: `db` unchanged and reads on it.
pub(crate) async fn attach_replicas(
    config: &crate::Config,
    db: Db,
    alerts: Arc<dyn vitals_pool::AlertSink>,
) -> Result<(Db, Reads), Error> {
    match &db {
        Db::Postgres(p) if !config.replicas.is_empty() => {
            let router =
                ReplicaRouter::connect(p.clone(), &config.replicas, &config.pool, alerts).await?;
            let db = Db::Postgres(router.write().clone());
            Ok((db.clone(), Reads::routed(db, router)))
        }
        Db::Sqlite(_) if !config.replicas.is_empty() => {
            tracing::warn!(
                "DATABASE_REPLICA_URLS is set but vitals runs on SQLite: reads stay on it"
            );
            Ok((db.clone(), Reads::primary(db)))
        }
        _ => Ok((db.clone(), Reads::primary(db))),
    }
}
