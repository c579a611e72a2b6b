//! Read replicas on real engines: a primary (`initdb`, `wal_level=replica`) and a streaming
//! standby (`pg_basebackup -R`) that each test starts on free loopback ports and stops by pid.
//! Reads go to the replica; read-your-writes holds under `recovery_min_apply_delay`; the
//! replica stopped mid-load costs no read and comes back when it restarts, a lagging one is
//! taken out until it catches up; a primary, a replica of another cluster and an unreachable
//! replica given as replicas are named at start.

mod common;
#[path = "common/pg_standby.rs"]
mod pg_standby;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Alerts, TestResult};
use pg_standby::{PgPrimary, PgStandby};
use sqlx::Postgres;
use vitals_pool::{
    read_your_writes, AlertKind, AlertSink, AlertState, MonitoredPool, PoolConfig, ReadTarget,
    ReplicaConfig, ReplicaError, ReplicaRouter, TracingAlertSink, Unfit,
};

fn pool_config() -> PoolConfig {
    PoolConfig::builder()
        .min_connections(0)
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn primary_pool(primary: &PgPrimary) -> MonitoredPool<Postgres> {
    pool_config()
        .connect_postgres_monitored(&primary.url())
        .await
        .unwrap()
}

fn replicas(urls: &[String]) -> ReplicaConfig {
    ReplicaConfig::new(urls.iter().cloned())
        .check_interval_of(Duration::from_millis(50))
        .max_lag_of(Duration::from_secs(5))
        .wait_of(Duration::from_secs(3))
}

async fn router(
    primary: &PgPrimary,
    config: &ReplicaConfig,
) -> Result<ReplicaRouter, ReplicaError> {
    router_with(primary, config, Arc::new(TracingAlertSink)).await
}

async fn router_with(
    primary: &PgPrimary,
    config: &ReplicaConfig,
    sink: Arc<dyn AlertSink>,
) -> Result<ReplicaRouter, ReplicaError> {
    ReplicaRouter::connect(primary_pool(primary).await, config, &pool_config(), sink).await
}

/// Polls `cond` every 10 ms until it holds or 20 s pass.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn count(pool: &MonitoredPool<Postgres>, tag: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM visits WHERE tag = $1")
        .bind(tag)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn setup(router: &ReplicaRouter) {
    sqlx::query("CREATE TABLE visits (id bigserial PRIMARY KEY, tag text NOT NULL)")
        .execute(router.write())
        .await
        .unwrap();
    // The table reached the replica once a fresh read can go there.
    let token = router.write_token().await.unwrap();
    until("the replica replays the CREATE", || {
        router.statuses()[0].fit
    })
    .await;
    assert!(matches!(
        router.read_after(token).await.target(),
        ReadTarget::Replica(0)
    ));
}

/// A primary, a streaming standby of it and a router over both (the standby's configuration
/// from `replicas`, changed by `config`; alerts to `sink`), the `visits` table created and
/// replayed (`setup`). Keep the primary and the standby while the test runs.
async fn replicated(
    config: impl FnOnce(ReplicaConfig) -> ReplicaConfig,
    sink: Arc<dyn AlertSink>,
) -> Result<(PgPrimary, PgStandby, ReplicaRouter), Box<dyn std::error::Error>> {
    let primary = PgPrimary::start()?;
    let standby = PgStandby::of(&primary)?;
    let router = router_with(&primary, &config(replicas(&[standby.url()])), sink).await?;
    setup(&router).await;
    Ok((primary, standby, router))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_to_the_replica_and_writes_to_the_primary() -> TestResult {
    let (_primary, standby, router) = replicated(|c| c, Arc::new(TracingAlertSink)).await?;

    let read = router.read();
    assert_eq!(read.target(), ReadTarget::Replica(0));
    let on_standby: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(read.pool())
        .await?;
    assert!(on_standby, "the read ran on the standby");
    let on_primary: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(router.write())
        .await?;
    assert!(!on_primary, "the write handle is the primary");

    let status = &router.statuses()[0];
    assert!(status.fit && status.unfit.is_none(), "{status:?}");
    assert!(status.lag_ms.is_some_and(|l| l < 5_000), "{status:?}");
    let reports = router.reports(Duration::from_secs(2)).await;
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].health.status, vitals_pool::HealthStatus::Healthy);
    let json = serde_json::to_value(&reports[0])?;
    assert_eq!(json["fit"], true, "{json}");
    assert!(json["url"]
        .as_str()
        .unwrap()
        .contains(&standby.server.port.to_string()));
    assert!(router.stats().replica_reads >= 2);
    router.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_replica_is_taken_out_and_put_back_when_it_catches_up() -> TestResult {
    let lag = Duration::from_millis(300);
    let (primary, standby, router) =
        replicated(|c| c.max_lag_of(lag), Arc::new(TracingAlertSink)).await?;

    standby.set_apply_delay(Duration::from_secs(30))?;
    sqlx::query("INSERT INTO visits (tag) VALUES ('late')")
        .execute(router.write())
        .await?;
    // `pg_reload_conf()` only signals the standby: its startup process takes the delay up a
    // moment later, and a write replayed before then leaves nothing behind to lag on. So a
    // write every 50 ms while waiting (at most 400, as a live primary has): those are held.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(router.statuses()[0].unfit, Some(Unfit::Lagging { .. })) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting until the replica is taken out as lagging"
        );
        sqlx::query("INSERT INTO visits (tag) VALUES ('tick')")
            .execute(router.write())
            .await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(router.read().target(), ReadTarget::Primary);
    assert!(router.statuses()[0].taken_out_total >= 1);

    // A router started now (a deploy while the standby is behind) has sampled the primary
    // once: the replica is behind that sample by an unknown amount, so it takes no read, not
    // even just after the start, and is named lagging once the sample is older than the bound.
    let config = replicas(&[standby.url()]).max_lag_of(lag);
    let fresh = router_with(&primary, &config, Arc::new(TracingAlertSink)).await?;
    assert!(!fresh.statuses()[0].fit, "{:?}", fresh.statuses()[0]);
    assert_eq!(fresh.read().target(), ReadTarget::Primary);
    until("the fresh router names the replica lagging", || {
        assert!(!fresh.statuses()[0].fit, "{:?}", fresh.statuses()[0]);
        matches!(fresh.statuses()[0].unfit, Some(Unfit::Lagging { .. }))
    })
    .await;
    fresh.shutdown().await;

    standby.set_apply_delay(Duration::ZERO)?;
    until("the replica catches up and is back", || {
        router.statuses()[0].fit
    })
    .await;
    let read = router.read();
    assert_eq!(read.target(), ReadTarget::Replica(0));
    assert_eq!(count(read.pool(), "late").await, 1);
    router.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_your_writes_holds_under_a_replica_slowed_by_apply_delay() -> TestResult {
    let (_primary, standby, router) = replicated(|c| c, Arc::new(TracingAlertSink)).await?;
    let delay = Duration::from_millis(1000);
    standby.set_apply_delay(delay)?;
    let before = router.stats();

    let (waited, seen, target, elsewhere) = read_your_writes(async {
        sqlx::query("INSERT INTO visits (tag) VALUES ('ryw')")
            .execute(router.write())
            .await
            .unwrap();
        // Outside the scope the replica is still fit and has not applied the INSERT: the
        // delay is real, so the scope is what keeps the read right.
        let elsewhere = tokio::spawn({
            let router = router.clone();
            async move { count(router.read().pool(), "ryw").await }
        })
        .await
        .unwrap();
        // Without waiting, a scope with a write reads the primary.
        assert_eq!(router.read().target(), ReadTarget::Primary);
        let start = Instant::now();
        let read = router.read_consistent().await;
        let waited = start.elapsed();
        (
            waited,
            count(read.pool(), "ryw").await,
            read.target(),
            elsewhere,
        )
    })
    .await;
    assert_eq!(
        elsewhere, 0,
        "the replica outside the scope has not applied the write yet"
    );
    assert_eq!(target, ReadTarget::Replica(0), "waited {waited:?}");
    assert_eq!(seen, 1, "the read in the scope sees its own write");
    assert!(
        waited >= delay / 2,
        "it waited for the replica to replay: {waited:?}"
    );
    let stats = router.stats();
    assert_eq!(
        (
            stats.catch_up_waits - before.catch_up_waits,
            stats.catch_up_fallbacks - before.catch_up_fallbacks
        ),
        (1, 0),
        "{stats:?}"
    );

    // A wait shorter than the delay gives up and reads the primary, which has the row.
    let impatient = ReplicaRouter::connect(
        router.primary().clone(),
        &replicas(&[standby.url()]).wait_of(Duration::from_millis(50)),
        &pool_config(),
        Arc::new(TracingAlertSink),
    )
    .await?;
    let (target, seen) = read_your_writes(async {
        sqlx::query("INSERT INTO visits (tag) VALUES ('impatient')")
            .execute(impatient.write())
            .await
            .unwrap();
        let read = impatient.read_consistent().await;
        (read.target(), count(read.pool(), "impatient").await)
    })
    .await;
    assert_eq!((target, seen), (ReadTarget::Primary, 1));
    assert_eq!(impatient.stats().catch_up_fallbacks, 1);

    // A fresh read (a cache's loader) outside any scope sees every committed write.
    sqlx::query("INSERT INTO visits (tag) VALUES ('fresh')")
        .execute(router.primary())
        .await?;
    let fresh = router.read_fresh().await;
    assert_eq!(
        count(fresh.pool(), "fresh").await,
        1,
        "{:?}",
        fresh.target()
    );
    impatient.shutdown().await;
    router.shutdown().await;
    Ok(())
}

/// The scope stays pending until the read that asks the primary has stored the token: a
/// second read meanwhile, and a read after one dropped while it asked, both see the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_your_writes_holds_for_a_concurrent_read_and_after_a_dropped_one() -> TestResult {
    let (_primary, standby, router) = replicated(|c| c, Arc::new(TracingAlertSink)).await?;
    standby.set_apply_delay(Duration::from_millis(1000))?;

    let (both, after_drop, target) = read_your_writes(async {
        sqlx::query("INSERT INTO visits (tag) VALUES ('both')")
            .execute(router.write())
            .await
            .unwrap();
        let one = || async {
            let read = router.read_consistent().await;
            (read.target(), count(read.pool(), "both").await)
        };
        let both = tokio::join!(one(), one());

        sqlx::query("INSERT INTO visits (tag) VALUES ('dropped')")
            .execute(router.write())
            .await
            .unwrap();
        // Polled once (it is asking the primary for its position), then dropped.
        let mut asking = Box::pin(router.read_consistent());
        let pending = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(std::future::Future::poll(asking.as_mut(), cx).is_pending())
        })
        .await;
        assert!(pending, "the read was still asking the primary");
        drop(asking);
        let target = router.read().target();
        let read = router.read_consistent().await;
        (both, count(read.pool(), "dropped").await, target)
    })
    .await;
    assert_eq!(
        (both.0 .1, both.1 .1),
        (1, 1),
        "both concurrent reads see the write: {both:?}"
    );
    assert_eq!(
        target,
        ReadTarget::Primary,
        "the dropped read left the mark"
    );
    assert_eq!(
        after_drop, 1,
        "the read after the dropped one sees the write"
    );
    router.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_stopped_mid_load_costs_no_read_and_comes_back() -> TestResult {
    let alerts = Arc::new(Alerts::default());
    let (_primary, mut standby, router) = replicated(|c| c, alerts.clone()).await?;

    let reads = 300;
    let mut targets = Vec::with_capacity(reads);
    let mut failed = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..reads {
        if i == 100 {
            standby.stop();
        }
        let target = router.read().target();
        let outcome = router
            .run_read(|pool| async move {
                sqlx::query_scalar::<_, i64>("SELECT count(*) FROM visits")
                    .fetch_one(&pool)
                    .await
            })
            .await;
        failed += usize::from(outcome.is_err());
        targets.push(target);
        assert!(Instant::now() < deadline, "the load took too long");
    }
    assert_eq!(failed, 0, "no read failed while the replica went down");
    assert!(targets[..100].iter().all(|t| *t == ReadTarget::Replica(0)));
    assert_eq!(
        targets[reads - 1],
        ReadTarget::Primary,
        "reads fell back to the primary"
    );
    let status = &router.statuses()[0];
    assert!(
        matches!(status.unfit, Some(Unfit::Unreachable { .. })),
        "{status:?}"
    );
    assert!(status.taken_out_total >= 1);

    standby.start()?;
    until("the replica is back", || router.statuses()[0].fit).await;
    assert_eq!(router.read().target(), ReadTarget::Replica(0));
    assert_eq!(
        alerts.states(AlertKind::ReplicaUnfit),
        [AlertState::Raised, AlertState::Cleared],
        "taken out and back, each once, through the alert sink"
    );
    router.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_replicas_are_named_at_start() -> TestResult {
    let primary = PgPrimary::start()?;
    let mut standby = PgStandby::of(&primary)?;
    let other = PgPrimary::start()?;
    let other_standby = PgStandby::of(&other)?;

    // The primary's own URL given as a replica.
    let err = router(&primary, &replicas(&[other.url()]))
        .await
        .unwrap_err();
    assert!(matches!(err, ReplicaError::NotAReplica { .. }), "{err}");
    assert!(
        err.to_string().contains(&other.server.port.to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("not in recovery"), "{err}");

    // A standby of another cluster.
    let err = router(&primary, &replicas(&[other_standby.url()]))
        .await
        .unwrap_err();
    let ReplicaError::OtherCluster {
        replica_system_id,
        primary_system_id,
        ..
    } = &err
    else {
        panic!("expected OtherCluster, got {err}");
    };
    assert_eq!(*replica_system_id, other.server.system_identifier()?);
    assert_eq!(*primary_system_id, primary.server.system_identifier()?);
    assert!(err.to_string().contains("another cluster"), "{err}");

    // DATABASE_URL pointing at a standby.
    let err = ReplicaRouter::connect(
        pool_config()
            .connect_postgres_monitored(&standby.url())
            .await?,
        &replicas(&[]),
        &pool_config(),
        Arc::new(TracingAlertSink),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ReplicaError::PrimaryInRecovery), "{err}");

    // Unreachable at start: a warning, reads on the primary, and in when it starts.
    standby.stop();
    let router = router(&primary, &replicas(&[standby.url()])).await?;
    let status = &router.statuses()[0];
    assert!(
        matches!(status.unfit, Some(Unfit::Unreachable { .. })),
        "{status:?}"
    );
    assert_eq!(router.read().target(), ReadTarget::Primary);
    standby.start()?;
    until("the replica unreachable at start comes in", || {
        router.statuses()[0].fit
    })
    .await;
    assert_eq!(router.read().target(), ReadTarget::Replica(0));
    router.shutdown().await;
    Ok(())
}
