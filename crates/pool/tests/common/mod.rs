//! What the PostgreSQL, replica, transaction and SQLite suites share: a small pool
//! configuration, a poll for an event, a setting read on a connection, the recording observer
//! and the recording alert sink.
// Each suite uses only part of it.
#![allow(dead_code)]

use std::sync::Mutex;
use std::time::{Duration, Instant};

use vitals_pool::{AlertKind, AlertSink, AlertState, PoolAlert, PoolConfig, QueryObserver};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Polls `cond` every few milliseconds until it holds or 8 s pass.
pub async fn wait_until<F: FnMut() -> bool>(what: &str, mut cond: F) {
    let deadline = Instant::now() + Duration::from_secs(8);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The one value `sql` (a `SHOW` or a `PRAGMA`) returns on `e`.
pub async fn scalar<'e, E, T>(e: E, sql: &'e str) -> Result<T, sqlx::Error>
where
    E: sqlx::Executor<'e>,
    (T,): for<'r> sqlx::FromRow<'r, <E::Database as sqlx::Database>::Row>,
    T: Send + Unpin,
    for<'q> <E::Database as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, E::Database>,
{
    sqlx::query_scalar(sql).fetch_one(e).await
}

/// No idle connections kept, at most `max`, and a 10 s acquire timeout.
pub fn config(max: u32) -> PoolConfig {
    PoolConfig::builder()
        .min_connections(0)
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// What the observer saw: statement text, rows, whether it failed.
#[derive(Default)]
pub struct Seen(pub Mutex<Vec<(String, u64, bool)>>);

impl QueryObserver for Seen {
    fn on_query(&self, sql: &str, _elapsed: Duration, rows: u64, error: Option<&sqlx::Error>) {
        self.0
            .lock()
            .unwrap()
            .push((sql.to_owned(), rows, error.is_some()));
    }
}

impl Seen {
    /// Everything seen so far, and forgets it.
    pub fn take(&self) -> Vec<(String, u64, bool)> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// The alerts raised and cleared, in order.
#[derive(Default)]
pub struct Alerts(pub Mutex<Vec<PoolAlert>>);

impl AlertSink for Alerts {
    fn on_alert(&self, alert: &PoolAlert) {
        self.0.lock().unwrap().push(alert.clone());
    }
}

impl Alerts {
    /// Whether an alert of `kind` went to `state`.
    pub fn has(&self, kind: AlertKind, state: AlertState) -> bool {
        self.0
            .lock()
            .unwrap()
            .iter()
            .any(|a| a.kind == kind && a.state == state)
    }

    /// The states alerts of `kind` went to, in order.
    pub fn states(&self, kind: AlertKind) -> Vec<AlertState> {
        let alerts = self.0.lock().unwrap();
        alerts
            .iter()
            .filter(|a| a.kind == kind)
            .map(|a| a.state)
            .collect()
    }
}
