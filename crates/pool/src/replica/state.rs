//! What the router knows of each replica between checks: fit or not and why, its replay
//! position and lag, and its counters; read without a lock on the routing path (atomics), the
//! details for the health endpoint behind a mutex.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Postgres;

use crate::handle::MonitoredPool;
use crate::monitor::{AlertKind, AlertSink, AlertState, PoolAlert, PoolMonitor, Severity};
use crate::probe::PoolProbe;
use crate::replica::lsn::Lsn;
use crate::sample::PoolMetrics;

/// Why a replica takes no reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum Unfit {
    /// Its check failed or timed out (the error's kind or SQLSTATE, never a message).
    Unreachable {
        /// What failed.
        reason: String,
    },
    /// It is not in recovery: a primary (or a promoted standby), not a replica.
    NotInRecovery,
    /// Its system identifier is not the primary's: a standby of another cluster.
    OtherCluster,
    /// It has replayed nothing yet.
    NoReplay,
    /// Further behind the primary than `DB_REPLICA_MAX_LAG_MS`.
    Lagging {
        /// How far behind, ms.
        lag_ms: u64,
    },
    /// Not checked yet.
    Unchecked,
}

impl std::fmt::Display for Unfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unfit::Unreachable { reason } => write!(f, "unreachable ({reason})"),
            Unfit::NotInRecovery => f.write_str("not in recovery: it is a primary, not a replica"),
            Unfit::OtherCluster => f.write_str(
                "system identifier differs from the primary's: a replica of another cluster",
            ),
            Unfit::NoReplay => f.write_str("has replayed no WAL yet"),
            Unfit::Lagging { lag_ms } => write!(f, "lagging {lag_ms} ms"),
            Unfit::Unchecked => f.write_str("not checked yet"),
        }
    }
}

/// One replica's state, for `/api/health/database/pool` and dashboards.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaStatus {
    /// The replica's URL, password masked.
    pub url: String,
    /// Whether it takes reads now.
    pub fit: bool,
    /// Why not, when it does not.
    pub unfit: Option<Unfit>,
    /// How far behind the primary it was at the last check, ms.
    pub lag_ms: Option<u64>,
    /// Its replay position at the last check (`pg_last_wal_replay_lsn()`).
    pub replay_lsn: Option<String>,
    /// When it was last checked.
    pub checked_at: Option<DateTime<Utc>>,
    /// How many times it was taken out of the rotation.
    pub taken_out_total: u64,
    /// Reads routed to it.
    pub reads_total: u64,
}

pub(crate) struct Details {
    pub(crate) unfit: Option<Unfit>,
    pub(crate) checked_at: Option<DateTime<Utc>>,
    pub(crate) lag_ms: Option<u64>,
}

/// One replica: its pool and monitor, and what the checks found.
pub(crate) struct Replica {
    pub(crate) url: String,
    pub(crate) pool: MonitoredPool<Postgres>,
    pub(crate) monitor: Mutex<Option<PoolMonitor>>,
    fit: AtomicBool,
    replay: AtomicU64,
    taken_out: AtomicU64,
    /// Reads that failed on it and took it out ([`Replica::failed`]).
    failures: AtomicU64,
    pub(crate) reads: AtomicU64,
    details: Mutex<Details>,
    alerts: Arc<dyn AlertSink>,
    created: Instant,
    /// When a waiting read last asked its replay position, µs after `created` plus one (0:
    /// never), so that many reads waiting at once send one poll per pause, not one each.
    polled: AtomicU64,
}

impl Replica {
    pub(crate) fn new(
        url: String,
        pool: MonitoredPool<Postgres>,
        unfit: Unfit,
        alerts: Arc<dyn AlertSink>,
    ) -> Self {
        Self {
            alerts,
            created: Instant::now(),
            polled: AtomicU64::new(0),
            url,
            pool,
            monitor: Mutex::new(None),
            fit: AtomicBool::new(false),
            replay: AtomicU64::new(0),
            taken_out: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            details: Mutex::new(Details {
                unfit: Some(unfit),
                checked_at: None,
                lag_ms: None,
            }),
        }
    }

    pub(crate) fn is_fit(&self) -> bool {
        self.fit.load(Ordering::Acquire)
    }

    /// The highest replay position seen (never goes back: a standby's replay does not).
    pub(crate) fn replay(&self) -> Lsn {
        Lsn(self.replay.load(Ordering::Acquire))
    }

    /// Whether this caller should ask the replica its replay position now: no other waiting
    /// read did in the last `every`.
    pub(crate) fn claim_poll(&self, every: Duration) -> bool {
        let now = u64::try_from(self.created.elapsed().as_micros())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1);
        let last = self.polled.load(Ordering::Acquire);
        let every = u64::try_from(every.as_micros()).unwrap_or(u64::MAX);
        if last != 0 && now.saturating_sub(last) < every {
            return false;
        }
        self.polled
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub(crate) fn saw_replay(&self, lsn: Lsn) {
        self.replay.fetch_max(lsn.0, Ordering::AcqRel);
    }

    fn details(&self) -> MutexGuard<'_, Details> {
        self.details.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many reads failed on it so far (a check notes it before its queries).
    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Acquire)
    }

    /// A read failed on it: out of the rotation now, and a check that began before the
    /// failure does not put it back ([`Replica::set_checked`]).
    pub(crate) fn failed(&self, unfit: Unfit) {
        self.failures.fetch_add(1, Ordering::AcqRel);
        self.set(Some(unfit), None);
    }

    /// A check's outcome, from a check that began when [`failures`](Self::failures) was
    /// `failures_before`: a verdict of fit is dropped when a read failed on the replica
    /// meanwhile (the next check decides).
    pub(crate) fn set_checked(
        &self,
        unfit: Option<Unfit>,
        lag_ms: Option<u64>,
        failures_before: u64,
    ) {
        self.apply(unfit, lag_ms, Some(failures_before));
    }

    /// Records an outcome; logs and counts a change of fitness.
    pub(crate) fn set(&self, unfit: Option<Unfit>, lag_ms: Option<u64>) {
        self.apply(unfit, lag_ms, None);
    }

    fn apply(&self, unfit: Option<Unfit>, lag_ms: Option<u64>, failures_before: Option<u64>) {
        let fit = unfit.is_none();
        // The flag changes under the details lock, so that the flag, the reason and the
        // alerts raised and cleared stay in step when a check and a failed read race.
        let mut d = self.details();
        if fit && failures_before.is_some_and(|n| n != self.failures()) {
            return;
        }
        let was = self.fit.swap(fit, Ordering::AcqRel);
        let unchecked = d.unfit == Some(Unfit::Unchecked);
        match (&unfit, was) {
            (Some(why), true) => {
                self.taken_out.fetch_add(1, Ordering::Relaxed);
                self.alert(AlertState::Raised, why);
                tracing::warn!(target: "vitals_pool::replica", replica = %self.url, reason = %why,
                    "replica taken out of the read rotation");
            }
            (Some(why), false) if unchecked => {
                self.alert(AlertState::Raised, why);
                tracing::warn!(target: "vitals_pool::replica", replica = %self.url, reason = %why,
                    "replica takes no reads");
            }
            (Some(why), false) if d.unfit.as_ref() != Some(why) && !lagging_both(&d.unfit, why) => {
                tracing::warn!(target: "vitals_pool::replica", replica = %self.url, reason = %why,
                    "replica takes no reads");
            }
            (None, false) => {
                if let Some(why) = d.unfit.as_ref().filter(|_| !unchecked) {
                    self.alert(AlertState::Cleared, why);
                }
                tracing::info!(target: "vitals_pool::replica", replica = %self.url, first_check = unchecked,
                    "replica in the read rotation");
            }
            _ => {}
        }
        d.unfit = unfit;
        d.lag_ms = lag_ms;
        d.checked_at = Some(Utc::now());
    }

    /// Tells the alert sink the replica left or rejoined the rotation (`why`: the reason it
    /// left). Called under the details lock: the sink must be quick (see [`AlertSink`]).
    fn alert(&self, state: AlertState, why: &Unfit) {
        let severity = match why {
            Unfit::Lagging { .. } => Severity::Warning,
            _ => Severity::Critical,
        };
        let message = match state {
            AlertState::Raised => {
                format!("replica {} taken out of the read rotation: {why}", self.url)
            }
            AlertState::Cleared => format!(
                "cleared: replica {} back in the read rotation (was: {why})",
                self.url
            ),
        };
        let metrics = PoolMetrics::from_state(PoolProbe::state(&self.pool), None);
        self.alerts.on_alert(&PoolAlert {
            kind: AlertKind::ReplicaUnfit,
            severity,
            state,
            message,
            timestamp: metrics.timestamp,
            metrics,
        });
    }

    pub(crate) fn status(&self) -> ReplicaStatus {
        let d = self.details();
        let replay = self.replay();
        ReplicaStatus {
            url: self.url.clone(),
            fit: self.is_fit(),
            unfit: d.unfit.clone(),
            lag_ms: d.lag_ms,
            replay_lsn: (replay.0 > 0).then(|| replay.to_string()),
            checked_at: d.checked_at,
            taken_out_total: self.taken_out.load(Ordering::Relaxed),
            reads_total: self.reads.load(Ordering::Relaxed),
        }
    }
}

fn lagging_both(a: &Option<Unfit>, b: &Unfit) -> bool {
    matches!((a, b), (Some(Unfit::Lagging { .. }), Unfit::Lagging { .. }))
}

/// The primary's WAL position over the last while, to turn a replica's replay position into
/// a time: a replica's lag is the age of the oldest sampled primary position it has not
/// replayed (0 when it replayed the newest).
pub(crate) struct LagClock {
    samples: VecDeque<(Instant, Lsn)>,
    keep: Duration,
}

impl LagClock {
    pub(crate) fn new(keep: Duration) -> Self {
        Self {
            samples: VecDeque::new(),
            keep,
        }
    }

    pub(crate) fn record(&mut self, at: Instant, lsn: Lsn) {
        // Only a new position starts a new sample: the oldest unreplayed one keeps its time.
        if self.samples.back().is_none_or(|&(_, last)| lsn > last) {
            self.samples.push_back((at, lsn));
        }
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|&(t, _)| at.saturating_duration_since(t) > self.keep)
        {
            self.samples.pop_front();
        }
        while self.samples.len() > 4096 {
            self.samples.pop_front();
        }
    }

    /// How far behind a replica at `replay` is at `now`. Behind the oldest sample (or with
    /// no sample yet) the clock knows only a lower bound: the oldest sample's age, which just
    /// after start is about nothing, however far behind the replica is.
    pub(crate) fn lag(&self, now: Instant, replay: Lsn) -> Lag {
        match self.samples.iter().position(|&(_, lsn)| lsn > replay) {
            None if self.samples.is_empty() => Lag::AtLeast(Duration::ZERO),
            None => Lag::Exact(Duration::ZERO),
            Some(0) => Lag::AtLeast(now.saturating_duration_since(self.samples[0].0)),
            // `i` was found in `samples`: the index is in bounds.
            Some(i) => Lag::Exact(now.saturating_duration_since(self.samples[i].0)),
        }
    }
}

/// A replica's lag as the [`LagClock`] knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lag {
    /// The age of the oldest primary position it has not replayed.
    Exact(Duration),
    /// Behind every position sampled (or none sampled): at least this far behind.
    AtLeast(Duration),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_age_of_the_oldest_unreplayed_position() {
        let t0 = Instant::now();
        let mut clock = LagClock::new(Duration::from_secs(10));
        clock.record(t0, Lsn(100));
        clock.record(t0 + Duration::from_millis(100), Lsn(200));
        clock.record(t0 + Duration::from_millis(200), Lsn(200)); // no write: same sample
        clock.record(t0 + Duration::from_millis(300), Lsn(300));
        let now = t0 + Duration::from_millis(400);
        let ms = Duration::from_millis;
        for (replayed, lag) in [
            (300, Lag::Exact(Duration::ZERO)),
            (250, Lag::Exact(ms(100))),
            (150, Lag::Exact(ms(300))),
            (100, Lag::Exact(ms(300))),
            (50, Lag::AtLeast(ms(400))),
        ] {
            assert_eq!(clock.lag(now, Lsn(replayed)), lag, "replayed {replayed}");
        }
    }

    #[test]
    fn a_replica_behind_the_first_sample_has_no_known_lag() {
        let t0 = Instant::now();
        let mut clock = LagClock::new(Duration::from_secs(10));
        assert_eq!(clock.lag(t0, Lsn(1)), Lag::AtLeast(Duration::ZERO));
        clock.record(t0, Lsn(1000));
        let now = t0 + Duration::from_millis(1);
        // Just started: a replica 30 s behind is not "1 ms behind".
        assert_eq!(
            clock.lag(now, Lsn(10)),
            Lag::AtLeast(Duration::from_millis(1))
        );
        assert_eq!(clock.lag(now, Lsn(1000)), Lag::Exact(Duration::ZERO));
    }
}
