//! Row 1: concurrent requests, a pool of 10 against a pool of 50, under a latency load and a
//! CPU load.

use super::*;

#[derive(Clone)]
pub(crate) enum CmpPool {
    Pg(MonitoredPool<sqlx::Postgres>),
    Lite(MonitoredPool<sqlx::Sqlite>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Load {
    /// The database (or the request) waits 5 ms per request while holding the connection.
    Latency,
    /// A student's health summary, uncached: five reads, CPU on the database.
    Cpu,
}

pub(crate) async fn open_cmp_pool(target: &Target, size: u32) -> Result<CmpPool, BoxError> {
    let config = PoolConfig::builder()
        .min_connections(0)
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(30))
        .benchmark(false)
        .build()?;
    Ok(match target {
        Target::Postgres(options) => {
            CmpPool::Pg(config.monitored(config.connect_postgres_with((**options).clone()).await?))
        }
        Target::Sqlite(url) => CmpPool::Lite(config.monitored(config.connect_sqlite(url).await?)),
    })
}

pub(crate) async fn one_request(pool: &CmpPool, load: Load, student: Uuid) -> Result<(), BoxError> {
    match (pool, load) {
        (CmpPool::Pg(p), Load::Latency) => {
            sqlx::query("SELECT pg_sleep(0.005)").execute(p).await?;
        }
        (CmpPool::Lite(p), Load::Latency) => {
            // SQLite has no server to wait on: the request holds its connection for 5 ms of
            // waiting (a remote call, a slow client), the shape of a latency-bound request.
            let mut conn = p.acquire().await?;
            sqlx::query("SELECT 1").execute(&mut *conn).await?;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (CmpPool::Pg(p), Load::Cpu) => {
            // The comparison pool's search_path is the demo's schema: bare names find it.
            queries::postgres::health_summary(p, &health::Tables::unqualified(), student).await?;
        }
        (CmpPool::Lite(p), Load::Cpu) => {
            queries::sqlite::health_summary(p, &health::Tables::unqualified(), student).await?;
        }
    }
    Ok(())
}

/// One round: `clients` tasks take requests from a shared counter until `requests` are done.
pub(crate) async fn pool_round(
    pool: &CmpPool,
    load: Load,
    ids: &Arc<Vec<Uuid>>,
    clients: usize,
    requests: usize,
) -> (Duration, Vec<f64>, u64) {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (pool, ids, next) = (pool.clone(), Arc::clone(ids), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                let t = Instant::now();
                if one_request(&pool, load, ids[i % ids.len()]).await.is_err() {
                    errors += 1;
                }
                lat.push(ms(t.elapsed()));
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::with_capacity(requests);
    let mut errors = 0;
    for t in tasks {
        match t.await {
            Ok((l, e)) => {
                lat.extend(l);
                errors += e;
            }
            Err(_) => errors += 1,
        }
    }
    (started.elapsed(), lat, errors)
}

pub(crate) async fn pool_run(m: &Measure<'_>, size: u32, load: Load) -> Result<PoolRun, BoxError> {
    let Measure {
        args, target, ids, ..
    } = *m;
    let pool = open_cmp_pool(target, size).await?;
    // Warm-up: open the connections before timing, as a running service has them.
    pool_round(
        &pool,
        load,
        ids,
        args.clients,
        args.clients.max(size as usize),
    )
    .await;
    // The monitor takes the handle's statistics at every sample: start its first window now.
    let monitor = match &pool {
        CmpPool::Pg(p) => {
            p.take_stats();
            monitor_for(p.clone())
        }
        CmpPool::Lite(p) => {
            p.take_stats();
            monitor_for(p.clone())
        }
    };
    let mut rates = Vec::new();
    let mut lat = Vec::new();
    let mut errors = 0;
    for _ in 0..args.rounds {
        let (wall, l, e) = pool_round(&pool, load, ids, args.clients, args.requests).await;
        rates.push(args.requests as f64 / wall.as_secs_f64());
        lat.extend(l);
        errors += e;
    }
    monitor.sample_now();
    let summary = monitor.summary();
    let history = monitor.history();
    monitor.stop().await;
    let windows: Vec<_> = history.into_iter().filter_map(|m| m.handle).collect();
    let peak_waiting = windows
        .iter()
        .map(|w| w.peak_waiting)
        .chain(summary.peak_waiting)
        .max()
        .unwrap_or(0);
    let acquired: u64 = windows.iter().map(|w| w.acquire.count).sum();
    let mut by_median: Vec<(f64, u64)> = windows
        .iter()
        .filter(|w| w.acquire.count > 0)
        .map(|w| (w.acquire.p50_ms, w.acquire.count))
        .collect();
    by_median.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut seen = 0;
    let acquire_p50_ms = by_median
        .iter()
        .find(|(_, n)| {
            seen += n;
            seen * 2 >= acquired
        })
        .map_or(0.0, |(v, _)| *v);
    let acquire_p95_worst_window_ms = windows.iter().map(|w| w.acquire.p95_ms).fold(0.0, f64::max);
    match pool {
        CmpPool::Pg(p) => p.inner().close().await,
        CmpPool::Lite(p) => p.inner().close().await,
    }
    Ok(PoolRun {
        max_connections: size,
        throughput_rps: median(&mut rates),
        latency: percentiles(&mut lat),
        peak_waiting,
        acquired,
        avg_utilization_percent: summary.average_utilization_percent,
        peak_utilization_percent: summary.peak_utilization_percent,
        acquire_p50_ms,
        acquire_p95_worst_window_ms,
        alerts: summary
            .alerts_by_kind
            .iter()
            .map(|(k, n)| {
                let name = serde_json::to_value(k)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| format!("{k:?}"));
                (name, *n)
            })
            .collect(),
        errors,
    })
}

pub(crate) fn monitor_for<DB: sqlx::Database>(pool: MonitoredPool<DB>) -> PoolMonitor {
    let config = PoolConfig::default()
        .monitor_config()
        .interval(Duration::from_millis(50))
        .history(10_000);
    PoolMonitor::spawn(pool, config, Arc::new(TracingAlertSink))
}

pub(crate) async fn measure_pools(m: &mut Measure<'_>) -> Result<ConcurrentSection, BoxError> {
    let Measure { args, target, .. } = *m;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (small, large) = args.pools;
    let mut loads = Vec::new();
    for load in [Load::Latency, Load::Cpu] {
        let s = pool_run(m, small, load).await?;
        let l = pool_run(m, large, load).await?;
        let ratio = l.throughput_rps / s.throughput_rps;
        let (name, request) = match (load, target) {
            (Load::Latency, Target::Postgres(_)) => (
                "latency-bound",
                "SELECT pg_sleep(0.005): the server waits 5 ms, using no CPU".to_owned(),
            ),
            (Load::Latency, Target::Sqlite(_)) => (
                "latency-bound",
                "SELECT 1 then 5 ms of waiting while holding the connection (SQLite has no \
                 server to wait on; this is what a pool of SQLite connections can overlap)"
                    .to_owned(),
            ),
            (Load::Cpu, _) => (
                "cpu-bound",
                "a student's health summary, uncached (5 reads, CPU on the database)".to_owned(),
            ),
        };
        let verdict = if ratio < 1.2 {
            let how = if ratio < 0.9 {
                "slower than"
            } else {
                "no faster than"
            };
            let v = format!(
                "{large} connections: {how} {small} on this {cores}-core database server \
                 ({ratio:.2}x the throughput) for {name} requests: the database's CPU, not the \
                 pool, is the limit, and more connections only queue inside it"
            );
            m.notes.push(format!("Concurrent requests ({name}): {v}."));
            v
        } else if load == Load::Cpu {
            format!("{large} connections carried {ratio:.2}x the throughput of {small}")
        } else {
            format!(
                "{large} connections carried {ratio:.2}x the throughput of {small}: while the \
                 database waits, more connections overlap more waits (the report's case)"
            )
        };
        if s.errors + l.errors > 0 {
            m.notes.push(format!(
                "Concurrent requests ({name}): {} requests failed (pool of {small}: {}, pool of {large}: {}).",
                s.errors + l.errors,
                s.errors,
                l.errors
            ));
        }
        loads.push(LoadComparison {
            load: name,
            request,
            small: s,
            large: l,
            throughput_ratio: ratio,
            verdict,
        });
    }
    Ok(ConcurrentSection {
        clients: args.clients,
        requests: args.requests,
        rounds: args.rounds,
        cores,
        loads,
    })
}
