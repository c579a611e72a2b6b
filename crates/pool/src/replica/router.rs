//! [`ReplicaRouter`]: the write handle (the primary) and the read handle (a fit replica, or
//! the primary), with read-your-writes.

use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Postgres, Row};
use vitals_env::{mask_bad_url, mask_url};

use crate::classify::error_kind;
use crate::config::PoolConfig;
use crate::handle::MonitoredPool;
use crate::health::{health_check, HealthReport};
use crate::monitor::{AlertSink, PoolAlert, PoolMonitor, PoolSummary};
use crate::probe::PoolProbe;
use crate::replica::check::{self, Checker};
use crate::replica::config::ReplicaConfig;
use crate::replica::error::ReplicaError;
use crate::replica::inner::{Counters, Inner};
use crate::replica::lsn::{Lsn, WalSizes};
use crate::replica::scope::{self, Need, WriteMarker, WriteToken};
use crate::replica::state::{LagClock, Replica, ReplicaStatus, Unfit};
use crate::sample::PoolMetrics;

/// Where a read went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadTarget {
    /// The primary.
    Primary,
    /// The replica at this index of [`ReplicaConfig::urls`].
    Replica(usize),
}

/// A routed read: the pool to run it on, and where it is.
///
/// `&*read` (or [`pool`](Self::pool)) is an sqlx executor: `query(..).fetch_all(read.pool())`.
#[derive(Debug, Clone, Copy)]
pub struct Read<'r> {
    pool: &'r MonitoredPool<Postgres>,
    target: ReadTarget,
}

impl<'r> Read<'r> {
    /// The pool chosen.
    #[must_use]
    pub fn pool(&self) -> &'r MonitoredPool<Postgres> {
        self.pool
    }
    /// Where the read goes.
    #[must_use]
    pub fn target(&self) -> ReadTarget {
        self.target
    }
}

impl std::ops::Deref for Read<'_> {
    type Target = MonitoredPool<Postgres>;
    fn deref(&self) -> &MonitoredPool<Postgres> {
        self.pool
    }
}

/// The router's counters since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RouterStats {
    /// Reads routed to a replica.
    pub replica_reads: u64,
    /// Reads routed to the primary (no fit replica, or none caught up in time).
    pub primary_reads: u64,
    /// Reads after a write that waited for a replica to replay it.
    pub catch_up_waits: u64,
    /// Of those, the ones that went to the primary after `DB_REPLICA_WAIT_MS`.
    pub catch_up_fallbacks: u64,
    /// Total time spent waiting for replicas to catch up, µs.
    pub catch_up_wait_micros: u64,
    /// Reads run again on the primary after a replica failed under them.
    pub failovers: u64,
}

/// One replica's report for `/api/health/database/pool`.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaReport {
    /// Fitness, lag, replay position, counters.
    #[serde(flatten)]
    pub status: ReplicaStatus,
    /// Its pool now.
    pub metrics: PoolMetrics,
    /// Its pool monitor's summary (alerts included).
    pub summary: Option<PoolSummary>,
    /// `SELECT 1` on it.
    pub health: HealthReport,
}

/// The primary and its read replicas, with reads routed to a fit replica.
///
/// [`write`](Self::write) is the primary's handle; [`read`](Self::read) picks a replica that is
/// up, in recovery, of the primary's cluster and at most `DB_REPLICA_MAX_LAG_MS` behind (round
/// robin among those), or the primary when none is. A task checks every replica each
/// `DB_REPLICA_CHECK_INTERVAL_MS`: its recovery state, its `pg_control_system()` identifier
/// and its replay position (`pg_last_wal_replay_lsn()`), whose lag is the age of the oldest
/// sampled primary position (`pg_current_wal_insert_lsn()`) it has not replayed. A replica
/// that fails a check is taken out, and put back by the first check it passes.
///
/// Read-your-writes: inside [`read_your_writes`](crate::read_your_writes), a statement through
/// the write handle marks the scope, and reads in it go only to a replica that replayed the
/// write: [`read`](Self::read) (no waiting) to the primary unless a replica is known to be past
/// it, [`read_consistent`](Self::read_consistent) waiting up to `DB_REPLICA_WAIT_MS` for one.
/// [`read_fresh`](Self::read_fresh) sees every write committed before it was called, in any
/// scope (what a cache's loader needs after an invalidation). Explicit tokens:
/// [`write_token`](Self::write_token) and [`read_after`](Self::read_after).
///
/// Each replica has its own pool (the primary's pool settings, acquire timeout
/// `DB_REPLICA_ACQUIRE_TIMEOUT_MS`), its own [`PoolMonitor`] whose alerts name it, and an entry
/// in [`reports`](Self::reports). Cloning is cheap (one `Arc`).
///
/// # Example
/// ```no_run
/// # async fn example(primary: vitals_pool::MonitoredPool<sqlx::Postgres>) -> Result<(), Box<dyn std::error::Error>> {
/// use vitals_pool::{read_your_writes, PoolConfig, ReplicaConfig, ReplicaRouter, TracingAlertSink};
///
/// let router = ReplicaRouter::connect(
///     primary,
///     &ReplicaConfig::from_env()?,
///     &PoolConfig::from_env()?,
///     std::sync::Arc::new(TracingAlertSink),
/// )
/// .await?;
/// read_your_writes(async {
///     sqlx::query("UPDATE visits SET closed = true WHERE id = $1")
///         .bind(7_i64)
///         .execute(router.write())
///         .await?;
///     // Waits (bounded) for a replica that replayed the UPDATE, else reads the primary.
///     let read = router.read_consistent().await;
///     let open: i64 = sqlx::query_scalar("SELECT count(*) FROM visits WHERE NOT closed")
///         .fetch_one(read.pool())
///         .await?;
///     Ok::<_, sqlx::Error>(open)
/// })
/// .await?;
/// router.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ReplicaRouter {
    inner: Arc<Inner>,
    tasks: Arc<Mutex<Option<Checker>>>,
}

impl std::fmt::Debug for ReplicaRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaRouter")
            .field("replicas", &self.inner.replicas.len())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Prefixes a replica's pool alerts with its URL.
struct NamedSink {
    url: String,
    next: Arc<dyn AlertSink>,
}

impl AlertSink for NamedSink {
    fn on_alert(&self, alert: &PoolAlert) {
        let mut named = alert.clone();
        named.message = format!("replica {}: {}", self.url, alert.message);
        self.next.on_alert(&named);
    }
}

impl ReplicaRouter {
    /// Opens a pool per replica of `config` (with `pool`'s settings and the primary's
    /// observer), checks each once, starts their monitors (alerts to `alerts`, named by
    /// replica) and the checking task. A replica that cannot be reached now is logged as a
    /// warning and kept out until a check reaches it.
    ///
    /// # Errors
    /// [`ReplicaError`] naming the replica: a URL that does not parse, a server that is not in
    /// recovery (a primary), a standby of another cluster; or the primary's own: in recovery,
    /// or unable to say its identity.
    pub async fn connect(
        primary: MonitoredPool<Postgres>,
        config: &ReplicaConfig,
        pool: &PoolConfig,
        alerts: Arc<dyn AlertSink>,
    ) -> Result<Self, ReplicaError> {
        let timeout = pool.acquire_timeout().min(Duration::from_secs(5));
        let me = check::identity(primary.inner(), timeout)
            .await
            .map_err(|u| ReplicaError::Primary {
                reason: u.to_string(),
            })?;
        if me.in_recovery {
            return Err(ReplicaError::PrimaryInRecovery);
        }
        let wal = wal_sizes(primary.inner()).await?;
        let observer = primary.observer().cloned();
        let mut replicas = Vec::with_capacity(config.urls().len());
        for url in config.urls() {
            let masked = mask_url(url);
            let options =
                PgConnectOptions::from_str(url).map_err(|source| ReplicaError::InvalidUrl {
                    url: mask_bad_url(url),
                    source,
                })?;
            let sqlx_pool = pool
                .pg_pool_options()
                .min_connections(0)
                .acquire_timeout(config.acquire_timeout())
                .connect_lazy_with(pool.apply_pg_options(options));
            let mut handle = pool.monitored(sqlx_pool);
            if let Some(o) = &observer {
                handle = handle.with_observer(Arc::clone(o));
            }
            let replica = Replica::new(
                masked.clone(),
                handle,
                Unfit::Unchecked,
                Arc::clone(&alerts),
            );
            match check::identity(replica.pool.inner(), timeout).await {
                Ok(id) if !id.in_recovery => return Err(ReplicaError::NotAReplica { url: masked }),
                Ok(id) if id.system_id != me.system_id => {
                    return Err(ReplicaError::OtherCluster {
                        url: masked,
                        replica_system_id: id.system_id,
                        primary_system_id: me.system_id,
                    })
                }
                Ok(_) => {}
                Err(unfit) => {
                    tracing::warn!(target: "vitals_pool::replica", replica = %masked, reason = %unfit,
                        "replica unreachable at start: no reads go to it until a check reaches it");
                    replica.set(Some(unfit), None);
                }
            }
            *replica
                .monitor
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(PoolMonitor::spawn(
                replica.pool.clone(),
                pool.monitor_config(),
                Arc::new(NamedSink {
                    url: masked,
                    next: Arc::clone(&alerts),
                }),
            ));
            replicas.push(replica);
        }
        let keep = (config.max_lag() * 4).max(Duration::from_secs(10));
        let write = primary.with_observer(Arc::new(WriteMarker { next: observer }));
        let inner = Arc::new(Inner {
            config: config.clone(),
            replicas,
            system_id: me.system_id,
            primary_read: primary,
            write,
            wal,
            clock: Mutex::new(LagClock::new(keep)),
            next: AtomicUsize::new(0),
            counters: Counters::default(),
            started: Instant::now(),
        });
        check::check_all(&inner).await;
        let checker = Checker::spawn(&inner);
        Ok(Self {
            inner,
            tasks: Arc::new(Mutex::new(Some(checker))),
        })
    }

    /// The write handle: the primary, every statement of which marks the ambient
    /// read-your-writes scope.
    #[must_use]
    pub fn write(&self) -> &MonitoredPool<Postgres> {
        &self.inner.write
    }

    /// The primary as a read handle (its statements mark no scope).
    #[must_use]
    pub fn primary(&self) -> &MonitoredPool<Postgres> {
        &self.inner.primary_read
    }

    /// A fit replica, round robin, or the primary; without waiting. In a scope with a write,
    /// only a replica known to have replayed it (else the primary).
    #[must_use]
    pub fn read(&self) -> Read<'_> {
        let min = match scope::need() {
            Need::Nothing => None,
            Need::Token(t) => Some(t),
            Need::Pending => return self.on_primary(),
        };
        self.pick(min).unwrap_or_else(|| self.on_primary())
    }

    /// Like [`read`](Self::read), but after a write in the scope waits up to
    /// `DB_REPLICA_WAIT_MS` for a fit replica to replay it (asking the primary for its
    /// position once per write), then reads the primary.
    pub async fn read_consistent(&self) -> Read<'_> {
        match scope::need() {
            Need::Nothing => self.read(),
            Need::Token(t) => self.read_after(WriteToken(t)).await,
            Need::Pending => {
                if !self.any_fit() {
                    return self.on_primary();
                }
                // The scope stays pending until the token is stored (see `scope`): a read
                // meanwhile asks again or reads the primary, and so does one after this
                // future is dropped while it waits.
                if let Some(writes) = scope::writes() {
                    match self.inner.primary_lsn(self.inner.check_timeout()).await {
                        Some(lsn) => scope::cover(writes, lsn),
                        None => return self.on_primary(),
                    }
                }
                match scope::need() {
                    Need::Token(t) => self.read_after(WriteToken(t)).await,
                    _ => self.on_primary(),
                }
            }
        }
    }

    /// A read that sees every write committed before this call, in any scope: the primary's
    /// position now, then as [`read_after`](Self::read_after). What a cache's loader uses, so
    /// that a load after an invalidation never caches a replica's older row.
    pub async fn read_fresh(&self) -> Read<'_> {
        if !self.any_fit() {
            return self.on_primary();
        }
        match self.write_token().await {
            Some(token) => self.read_after(token).await,
            None => self.on_primary(),
        }
    }

    /// The primary's WAL position now: every write that returned before this call is at or
    /// before it. `None` when the primary does not answer.
    pub async fn write_token(&self) -> Option<WriteToken> {
        self.inner
            .primary_lsn(self.inner.check_timeout())
            .await
            .map(WriteToken)
    }

    /// A fit replica that replayed `token` (waiting up to `DB_REPLICA_WAIT_MS`, asking the fit
    /// replicas their replay position with a growing pause, 1 to 16 ms; reads waiting at once
    /// share one poll per replica per millisecond), else the primary.
    pub async fn read_after(&self, token: WriteToken) -> Read<'_> {
        if let Some(read) = self.pick(Some(token.0)) {
            return read;
        }
        if !self.any_fit() {
            return self.on_primary();
        }
        let c = &self.inner.counters;
        c.catch_up_waits.fetch_add(1, Ordering::Relaxed);
        let start = Instant::now();
        let deadline = start + self.inner.config.wait();
        let mut pause = Duration::from_millis(1);
        let picked = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let polls = self
                .inner
                .replicas
                .iter()
                .filter(|r| r.is_fit() && r.claim_poll(Duration::from_millis(1)))
                .map(|r| async move {
                    if let Some(lsn) =
                        check::replay_position(r.pool.inner(), left.max(Duration::from_millis(1)))
                            .await
                    {
                        r.saw_replay(lsn);
                    }
                });
            futures::future::join_all(polls).await;
            if let Some(read) = self.pick(Some(token.0)) {
                break Some(read);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break None;
            }
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(Duration::from_millis(16));
        };
        let waited = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        c.catch_up_wait_micros.fetch_add(waited, Ordering::Relaxed);
        picked.unwrap_or_else(|| {
            c.catch_up_fallbacks.fetch_add(1, Ordering::Relaxed);
            self.on_primary()
        })
    }

    /// Runs the read `f` on [`read_consistent`](Self::read_consistent)'s pool; when a replica
    /// fails under it (connection lost, shut down, a recovery conflict, no connection in
    /// time), takes a lost replica out and runs `f` again on the primary, so a replica going
    /// down costs the caller no failed read.
    ///
    /// # Errors
    /// `f`'s error on the primary, or a replica's error that is not one of those.
    pub async fn run_read<T, F, Fut>(&self, f: F) -> Result<T, sqlx::Error>
    where
        F: Fn(MonitoredPool<Postgres>) -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let read = self.read_consistent().await;
        let (target, pool) = (read.target(), read.pool().clone());
        match f(pool).await {
            Err(e) if target != ReadTarget::Primary && replica_failure(&e) => {
                if lost(&e) {
                    self.report_failure(target, &error_kind(&e));
                }
                self.inner
                    .counters
                    .failovers
                    .fetch_add(1, Ordering::Relaxed);
                f(self.inner.primary_read.clone()).await
            }
            other => other,
        }
    }

    /// Takes the replica a read failed on out of the rotation now (the next check that
    /// reaches it puts it back); `reason` names the failure's kind, never a message.
    pub fn report_failure(&self, target: ReadTarget, reason: &str) {
        if let ReadTarget::Replica(i) = target {
            if let Some(r) = self.inner.replicas.get(i) {
                r.failed(Unfit::Unreachable {
                    reason: format!("a read failed: {reason}"),
                });
            }
        }
    }

    /// Each replica's fitness, lag and counters now.
    #[must_use]
    pub fn statuses(&self) -> Vec<ReplicaStatus> {
        self.inner.replicas.iter().map(Replica::status).collect()
    }

    /// Each replica's status, pool metrics, monitor summary and a `SELECT 1` within `timeout`
    /// (run on all replicas at once).
    pub async fn reports(&self, timeout: Duration) -> Vec<ReplicaReport> {
        let each = self.inner.replicas.iter().map(|r| async move {
            let summary = r
                .monitor
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .map(PoolMonitor::summary);
            ReplicaReport {
                status: r.status(),
                metrics: PoolMetrics::from_state(PoolProbe::state(&r.pool), Some(r.pool.stats())),
                summary,
                health: health_check(&r.pool, timeout).await,
            }
        });
        futures::future::join_all(each).await
    }

    /// The router's counters.
    #[must_use]
    pub fn stats(&self) -> RouterStats {
        let c = &self.inner.counters;
        RouterStats {
            replica_reads: c.replica_reads.load(Ordering::Relaxed),
            primary_reads: c.primary_reads.load(Ordering::Relaxed),
            catch_up_waits: c.catch_up_waits.load(Ordering::Relaxed),
            catch_up_fallbacks: c.catch_up_fallbacks.load(Ordering::Relaxed),
            catch_up_wait_micros: c.catch_up_wait_micros.load(Ordering::Relaxed),
            failovers: c.failovers.load(Ordering::Relaxed),
        }
    }

    /// Checks every replica now (the checking task does it every interval).
    pub async fn check_now(&self) {
        check::check_all(&self.inner).await;
    }

    /// How long the router has run.
    #[must_use]
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// Stops the checking task and the replicas' monitors and closes the replicas' pools (the
    /// primary's is the caller's). Idempotent.
    pub async fn shutdown(&self) {
        if let Some(c) = take(&self.tasks) {
            c.stop().await;
        }
        for r in &self.inner.replicas {
            if let Some(m) = take(&r.monitor) {
                m.stop().await;
            }
            r.pool.inner().close().await;
        }
    }

    fn any_fit(&self) -> bool {
        self.inner.replicas.iter().any(Replica::is_fit)
    }

    fn pick(&self, min: Option<Lsn>) -> Option<Read<'_>> {
        let replicas = &self.inner.replicas;
        let n = replicas.len();
        if n == 0 {
            return None;
        }
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed);
        (0..n).map(|k| (start + k) % n).find_map(|i| {
            let r = &replicas[i];
            let ok = r.is_fit() && min.is_none_or(|t| r.replay() >= t);
            ok.then(|| {
                r.reads.fetch_add(1, Ordering::Relaxed);
                self.inner
                    .counters
                    .replica_reads
                    .fetch_add(1, Ordering::Relaxed);
                Read {
                    pool: &r.pool,
                    target: ReadTarget::Replica(i),
                }
            })
        })
    }

    fn on_primary(&self) -> Read<'_> {
        self.inner
            .counters
            .primary_reads
            .fetch_add(1, Ordering::Relaxed);
        Read {
            pool: &self.inner.primary_read,
            target: ReadTarget::Primary,
        }
    }
}

/// Takes what `slot` holds (a poisoned lock is taken over: the slot holds no invariant).
fn take<T>(slot: &Mutex<Option<T>>) -> Option<T> {
    slot.lock().unwrap_or_else(PoisonError::into_inner).take()
}

/// A failure worth running the read again on the primary.
fn replica_failure(e: &sqlx::Error) -> bool {
    crate::classify::is_transient(e) || lost(e)
}

/// A failure that says the replica is gone (rather than busy or in a recovery conflict).
fn lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed => true,
        sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

async fn wal_sizes(pool: &sqlx::PgPool) -> Result<WalSizes, ReplicaError> {
    // A simple query (no named prepared statement), as the checks: see `check::identity`.
    let q = sqlx::raw_sql(
        "SELECT current_setting('wal_block_size')::bigint, \
         (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size')",
    );
    let (block, segment) = q
        .fetch_one(pool)
        .await
        .and_then(|row| Ok((row.try_get::<i64, _>(0)?, row.try_get::<i64, _>(1)?)))
        .map_err(|e| ReplicaError::Primary {
            reason: error_kind(&e),
        })?;
    Ok(WalSizes {
        block: u64::try_from(block).unwrap_or(0),
        segment: u64::try_from(segment).unwrap_or(0),
    })
}
