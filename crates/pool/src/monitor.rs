//! [`PoolMonitor`]: samples a [`PoolProbe`] on an interval into [`PoolMetrics`], raises and
//! clears [`PoolAlert`]s, and keeps a short history and a summary for dashboards.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::probe::PoolProbe;
use crate::sample::PoolMetrics;
use crate::ticker::Ticker;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// The report's alert types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AlertKind {
    /// Utilisation at or above the warning (80 %) or critical (90 %) level.
    HighUtilization,
    /// More tasks waiting than the threshold (5).
    ConnectionWait,
    /// Every connection busy and tasks waiting.
    PoolExhaustion,
    /// Connecting failed since the previous sample.
    ConnectionError,
    /// A read replica was taken out of the read rotation (down, lagging, not in recovery, of
    /// another cluster); cleared when it is back. Raised by the
    /// [`ReplicaRouter`](crate::ReplicaRouter), not the sampler.
    ReplicaUnfit,
}

/// How bad an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Look soon.
    Warning,
    /// Look now.
    Critical,
}

/// Whether an alert starts or ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The pool entered the state (or its severity changed).
    Raised,
    /// The pool left the state.
    Cleared,
}

/// An alert, in the report's `PoolAlert` shape plus whether it is raised or cleared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolAlert {
    /// What happened.
    pub kind: AlertKind,
    /// How bad it is.
    pub severity: Severity,
    /// Raised or cleared.
    pub state: AlertState,
    /// A sentence for humans (numbers only, no data).
    pub message: String,
    /// The sample that raised or cleared it.
    pub metrics: PoolMetrics,
    /// When.
    pub timestamp: DateTime<Utc>,
}

/// Where alerts go. Called from the sampler, so keep it quick (queue, don't block).
pub trait AlertSink: Send + Sync {
    /// An alert was raised or cleared (see [`PoolAlert::state`]).
    fn on_alert(&self, alert: &PoolAlert);
}

/// The default sink: raised critical alerts go to `tracing::error!`, raised warnings to
/// `warn!`, clears to `info!`, all with target `vitals_pool::alert`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingAlertSink;

impl AlertSink for TracingAlertSink {
    fn on_alert(&self, alert: &PoolAlert) {
        let kind = format!("{:?}", alert.kind);
        let m = &alert.metrics;
        match (alert.state, alert.severity) {
            (AlertState::Raised, Severity::Critical) => tracing::error!(
                target: "vitals_pool::alert", kind = %kind, utilization = m.utilization_percent,
                waiting = ?m.waiting_requests, "{}", alert.message),
            (AlertState::Raised, Severity::Warning) => tracing::warn!(
                target: "vitals_pool::alert", kind = %kind, utilization = m.utilization_percent,
                waiting = ?m.waiting_requests, "{}", alert.message),
            (AlertState::Cleared, _) => tracing::info!(
                target: "vitals_pool::alert", kind = %kind, utilization = m.utilization_percent,
                waiting = ?m.waiting_requests, "{}", alert.message),
        }
    }
}

/// Monitor settings. Defaults are the report's: 30 s, 80 % / 90 %, more than 5 waiting,
/// 100 samples of history.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[must_use]
pub struct MonitorConfig {
    interval: Duration,
    warning_percent: f64,
    critical_percent: f64,
    waiting_threshold: u32,
    history: usize,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            warning_percent: 80.0,
            critical_percent: 90.0,
            waiting_threshold: 5,
            history: 100,
        }
    }
}

impl MonitorConfig {
    /// Sampling interval (zero is raised to 1 ms).
    pub fn interval(mut self, every: Duration) -> Self {
        self.interval = every.max(Duration::from_millis(1));
        self
    }
    vitals_env::setter!(
        /// Utilisation warning level, percent.
        utilization_warning => warning_percent: f64;
        /// Utilisation critical level, percent.
        utilization_critical => critical_percent: f64;
        /// `connection_wait` when more than this many tasks wait.
        waiting_threshold => waiting_threshold: u32;
    );
    /// Samples kept in history (at least 1).
    pub fn history(mut self, samples: usize) -> Self {
        self.history = samples.max(1);
        self
    }
    /// The sampling interval.
    #[must_use]
    pub fn sampling_interval(&self) -> Duration {
        self.interval
    }
}

/// For dashboards: over the samples in history, plus alert counts since the start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolSummary {
    /// Samples in history.
    pub samples: usize,
    /// Mean utilisation over history, percent.
    pub average_utilization_percent: f64,
    /// Highest utilisation over history, percent.
    pub peak_utilization_percent: f64,
    /// Most tasks waiting over history (with a monitored handle, the peak between samples).
    pub peak_waiting: Option<u32>,
    /// Alerts raised since the monitor started, by kind.
    pub alerts_by_kind: BTreeMap<AlertKind, u64>,
    /// Alerts raised and not yet cleared.
    pub active_alerts: Vec<PoolAlert>,
    /// The latest sample.
    pub latest: Option<PoolMetrics>,
}

struct Data {
    history: VecDeque<PoolMetrics>,
    active: BTreeMap<AlertKind, PoolAlert>,
    alerts_by_kind: BTreeMap<AlertKind, u64>,
    last_connect_errors: u64,
}

struct Inner {
    probe: Box<dyn PoolProbe>,
    config: MonitorConfig,
    sink: Arc<dyn AlertSink>,
    data: Mutex<Data>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Data> {
        // Plain data; a panic in a sink leaves it consistent.
        self.data.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn sample(&self) -> PoolMetrics {
        let state = self.probe.state();
        let handle = self.probe.take_handle_stats();
        let metrics = PoolMetrics::from_state(state, handle);
        crate::metrics::record_pool_gauges(&metrics);
        let mut data = self.lock();
        let wanted = self.evaluate(&metrics, &mut data);
        let mut events = Vec::new();
        for kind in [
            AlertKind::HighUtilization,
            AlertKind::ConnectionWait,
            AlertKind::PoolExhaustion,
            AlertKind::ConnectionError,
        ] {
            let want = wanted.get(&kind);
            let have = data.active.get(&kind).map(|a| a.severity);
            match (have, want) {
                (None, None) => {}
                (Some(h), Some((sev, _))) if h == *sev => {}
                (_, Some((sev, message))) => {
                    let alert = PoolAlert {
                        kind,
                        severity: *sev,
                        state: AlertState::Raised,
                        message: message.clone(),
                        metrics: metrics.clone(),
                        timestamp: metrics.timestamp,
                    };
                    *data.alerts_by_kind.entry(kind).or_insert(0) += 1;
                    data.active.insert(kind, alert.clone());
                    events.push(alert);
                }
                (Some(_), None) => {
                    if let Some(old) = data.active.remove(&kind) {
                        events.push(PoolAlert {
                            state: AlertState::Cleared,
                            message: format!("cleared: {}", old.message),
                            metrics: metrics.clone(),
                            timestamp: metrics.timestamp,
                            ..old
                        });
                    }
                }
            }
        }
        data.history.push_back(metrics.clone());
        while data.history.len() > self.config.history {
            data.history.pop_front();
        }
        drop(data);
        for e in &events {
            self.sink.on_alert(e);
        }
        metrics
    }

    fn evaluate(
        &self,
        m: &PoolMetrics,
        data: &mut Data,
    ) -> BTreeMap<AlertKind, (Severity, String)> {
        let c = &self.config;
        let mut out = BTreeMap::new();
        let u = m.utilization_percent;
        if u >= c.critical_percent {
            out.insert(
                AlertKind::HighUtilization,
                (
                    Severity::Critical,
                    format!(
                        "pool utilisation {u:.0} % (critical at {:.0} %)",
                        c.critical_percent
                    ),
                ),
            );
        } else if u >= c.warning_percent {
            out.insert(
                AlertKind::HighUtilization,
                (
                    Severity::Warning,
                    format!(
                        "pool utilisation {u:.0} % (warning at {:.0} %)",
                        c.warning_percent
                    ),
                ),
            );
        }
        let waiting = m.waiting_requests;
        if let Some(w) = waiting {
            if w > c.waiting_threshold {
                out.insert(
                    AlertKind::ConnectionWait,
                    (
                        Severity::Warning,
                        format!(
                            "{w} tasks waiting for a connection (threshold {})",
                            c.waiting_threshold
                        ),
                    ),
                );
            }
        }
        let all_busy = m.max_connections > 0 && m.active_connections >= m.max_connections;
        // Without a waiter count, all connections busy is the best sign of exhaustion.
        if all_busy && waiting.is_none_or(|w| w > 0) {
            out.insert(
                AlertKind::PoolExhaustion,
                (
                    Severity::Critical,
                    format!(
                        "all {} connections busy and {} waiting",
                        m.max_connections,
                        waiting.map_or_else(|| "unknown".to_owned(), |w| w.to_string())
                    ),
                ),
            );
        }
        if let Some(h) = &m.handle {
            let errors = h.acquire_errors_total;
            if errors > data.last_connect_errors {
                out.insert(
                    AlertKind::ConnectionError,
                    (
                        Severity::Critical,
                        format!(
                            "{} failed connection attempts since the last sample ({})",
                            errors - data.last_connect_errors,
                            h.last_acquire_error.as_deref().unwrap_or("unknown")
                        ),
                    ),
                );
            }
            data.last_connect_errors = errors;
        }
        out
    }

    fn summary(&self) -> PoolSummary {
        let data = self.lock();
        let n = data.history.len();
        let avg = if n == 0 {
            0.0
        } else {
            data.history
                .iter()
                .map(|m| m.utilization_percent)
                .sum::<f64>()
                / n as f64
        };
        let peak = data
            .history
            .iter()
            .map(|m| m.utilization_percent)
            .fold(0.0, f64::max);
        let peak_waiting = data
            .history
            .iter()
            .filter_map(|m| {
                m.handle
                    .as_ref()
                    .map(|h| h.peak_waiting)
                    .or(m.waiting_requests)
            })
            .max();
        PoolSummary {
            samples: n,
            average_utilization_percent: avg,
            peak_utilization_percent: peak,
            peak_waiting,
            alerts_by_kind: data.alerts_by_kind.clone(),
            active_alerts: data.active.values().cloned().collect(),
            latest: data.history.back().cloned(),
        }
    }
}

/// Samples a pool on an interval (the report's `@Cron` every 30 s).
///
/// [`spawn`](Self::spawn) starts a tokio task; [`stop`](Self::stop) ends it, and dropping the
/// monitor aborts it. [`sample_now`](Self::sample_now) takes a sample at once (tests, the
/// health endpoint). Alerts are raised when the pool enters a state and cleared when it
/// leaves it, never repeated while it stays; a change of severity raises again. The monitor
/// is `Send + Sync`; share it behind an `Arc`.
pub struct PoolMonitor {
    inner: Arc<Inner>,
    /// The sampler, when spawned.
    sampler: Option<Ticker>,
}

impl std::fmt::Debug for PoolMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolMonitor")
            .field("config", &self.inner.config)
            .field("running", &self.sampler.is_some())
            .finish()
    }
}

impl PoolMonitor {
    /// A monitor that samples only when [`sample_now`](Self::sample_now) is called.
    pub fn manual<P: PoolProbe + 'static>(
        probe: P,
        config: MonitorConfig,
        sink: Arc<dyn AlertSink>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                probe: Box::new(probe),
                config,
                sink,
                data: Mutex::new(Data {
                    history: VecDeque::new(),
                    active: BTreeMap::new(),
                    alerts_by_kind: BTreeMap::new(),
                    last_connect_errors: 0,
                }),
            }),
            sampler: None,
        }
    }

    /// Starts sampling `probe` every `config` interval on the current tokio runtime; the first
    /// sample is taken after one interval.
    ///
    /// # Panics
    /// When called outside a tokio runtime (as `tokio::spawn`).
    pub fn spawn<P: PoolProbe + 'static>(
        probe: P,
        config: MonitorConfig,
        sink: Arc<dyn AlertSink>,
    ) -> Self {
        let mut me = Self::manual(probe, config, sink);
        let inner = Arc::clone(&me.inner);
        let every = inner.config.interval;
        me.sampler = Some(Ticker::spawn(every, every, move || {
            inner.sample();
            std::future::ready(true)
        }));
        me
    }

    /// Takes a sample now: records it in history, raises or clears alerts, and returns it.
    pub fn sample_now(&self) -> PoolMetrics {
        self.inner.sample()
    }

    /// The latest sample, if any.
    pub fn latest(&self) -> Option<PoolMetrics> {
        self.inner.lock().history.back().cloned()
    }

    /// The samples kept (oldest first; 100 by default).
    pub fn history(&self) -> Vec<PoolMetrics> {
        self.inner.lock().history.iter().cloned().collect()
    }

    /// Alerts raised and not cleared.
    pub fn active_alerts(&self) -> Vec<PoolAlert> {
        self.inner.lock().active.values().cloned().collect()
    }

    /// Average and peak utilisation, peak waiting, alerts by kind, active alerts.
    pub fn summary(&self) -> PoolSummary {
        self.inner.summary()
    }

    /// Stops the sampler and waits for it to end.
    pub async fn stop(self) {
        if let Some(sampler) = self.sampler {
            sampler.stop().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::PoolState;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Default)]
    struct FakeProbe {
        size: AtomicU32,
        idle: AtomicU32,
        waiting: AtomicU32,
    }

    impl PoolProbe for FakeProbe {
        fn state(&self) -> PoolState {
            PoolState {
                size: self.size.load(Ordering::SeqCst),
                idle: self.idle.load(Ordering::SeqCst),
                max: 10,
                waiting: Some(self.waiting.load(Ordering::SeqCst)),
                waiting_exact: true,
            }
        }
    }

    #[derive(Default)]
    struct Collect(Mutex<Vec<PoolAlert>>);
    impl AlertSink for Collect {
        fn on_alert(&self, alert: &PoolAlert) {
            self.0.lock().unwrap().push(alert.clone());
        }
    }

    fn set(p: &FakeProbe, size: u32, idle: u32, waiting: u32) {
        p.size.store(size, Ordering::SeqCst);
        p.idle.store(idle, Ordering::SeqCst);
        p.waiting.store(waiting, Ordering::SeqCst);
    }

    #[test]
    fn alerts_raise_once_escalate_and_clear() {
        let probe = Arc::new(FakeProbe::default());
        let sink = Arc::new(Collect::default());
        let mon = PoolMonitor::manual(Arc::clone(&probe), MonitorConfig::default(), sink.clone());

        set(&probe, 10, 2, 0); // 80 %
        mon.sample_now();
        mon.sample_now(); // still 80 %: nothing new
        set(&probe, 10, 1, 0); // 90 %: escalates
        mon.sample_now();
        set(&probe, 10, 0, 7); // exhausted, 7 waiting
        mon.sample_now();
        mon.sample_now();
        set(&probe, 10, 10, 0); // all idle
        mon.sample_now();

        let got: Vec<(AlertKind, Severity, AlertState)> = sink
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|a| (a.kind, a.severity, a.state))
            .collect();
        use AlertKind::*;
        use AlertState::*;
        use Severity::*;
        assert_eq!(
            got,
            vec![
                (HighUtilization, Warning, Raised),
                (HighUtilization, Critical, Raised),
                (ConnectionWait, Warning, Raised),
                (PoolExhaustion, Critical, Raised),
                (HighUtilization, Critical, Cleared),
                (ConnectionWait, Warning, Cleared),
                (PoolExhaustion, Critical, Cleared),
            ]
        );
        let s = mon.summary();
        assert_eq!(s.samples, 6);
        assert_eq!(s.peak_utilization_percent, 100.0);
        assert_eq!(s.peak_waiting, Some(7));
        assert_eq!(s.alerts_by_kind.get(&HighUtilization), Some(&2));
        assert!(s.active_alerts.is_empty());
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["alerts_by_kind"]["high_utilization"], 2);
        assert!(json["latest"]["utilization_percent"].is_number());
    }

    #[test]
    fn history_keeps_the_last_samples() {
        let probe = Arc::new(FakeProbe::default());
        let mon = PoolMonitor::manual(
            Arc::clone(&probe),
            MonitorConfig::default().history(3),
            Arc::new(TracingAlertSink),
        );
        for i in 0..5 {
            set(&probe, i, 0, 0);
            mon.sample_now();
        }
        let h: Vec<u32> = mon.history().iter().map(|m| m.total_connections).collect();
        assert_eq!(h, [2, 3, 4]);
        assert_eq!(mon.latest().map(|m| m.total_connections), Some(4));
    }

    #[tokio::test(start_paused = true)]
    async fn spawned_monitor_samples_on_its_interval_and_stops() {
        let probe = Arc::new(FakeProbe::default());
        let mon = PoolMonitor::spawn(
            Arc::clone(&probe),
            MonitorConfig::default(),
            Arc::new(TracingAlertSink),
        );
        assert!(mon.latest().is_none());
        // Paused clock: sleeping auto-advances time to the next timer, deterministically.
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert_eq!(mon.history().len(), 2);
        mon.stop().await;
    }
}
