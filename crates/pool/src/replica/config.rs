//! [`ReplicaConfig`]: the read replicas and how reads are routed to them, as data, and its
//! reading from the environment (`DATABASE_REPLICA_URLS`, `DB_REPLICA_*`) through
//! `vitals-env`.

use std::fmt;
use std::time::Duration;

use vitals_env::{mask_bad_url, mask_url, Env};

/// Where the read replicas are and how reads are routed to them.
///
/// | variable | default | unit | effect |
/// |---|---|---|---|
/// | `DATABASE_REPLICA_URLS` | none | comma-separated URLs | the streaming standbys reads may go to |
/// | `DB_REPLICA_MAX_LAG_MS` | 1000 | ms | a replica further behind the primary takes no reads |
/// | `DB_REPLICA_WAIT_MS` | 200 | ms | how long a read after a write waits for a replica to replay it before it goes to the primary |
/// | `DB_REPLICA_CHECK_INTERVAL_MS` | 250 | ms | how often each replica's state and lag are measured |
/// | `DB_REPLICA_ACQUIRE_TIMEOUT_MS` | 1000 | ms | a replica's pool gives up on a connection after this (the read then goes to the primary) |
///
/// Plain data: build it with [`ReplicaConfig::new`] and the setters, or read it with
/// [`ReplicaConfig::from_env`]. `Debug` masks the URLs' passwords.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use vitals_pool::ReplicaConfig;
///
/// let config = ReplicaConfig::from_env_with(vitals_env::pairs(&[
///     ("DATABASE_REPLICA_URLS", "postgres://app@10.0.0.2/app, postgres://app@10.0.0.3/app"),
///     ("DB_REPLICA_MAX_LAG_MS", "500"),
/// ]))
/// .unwrap();
/// assert_eq!(config.urls().len(), 2);
/// assert_eq!(config.max_lag(), Duration::from_millis(500));
/// ```
#[derive(Clone, PartialEq)]
#[must_use]
pub struct ReplicaConfig {
    urls: Vec<String>,
    max_lag: Duration,
    wait: Duration,
    check_interval: Duration,
    acquire_timeout: Duration,
}

impl fmt::Debug for ReplicaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<String> = self.urls.iter().map(|u| mask_url(u)).collect();
        f.debug_struct("ReplicaConfig")
            .field("urls", &urls)
            .field("max_lag", &self.max_lag)
            .field("wait", &self.wait)
            .field("check_interval", &self.check_interval)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish()
    }
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        Self::new(Vec::<String>::new())
    }
}

impl ReplicaConfig {
    /// Replicas at `urls` with the default settings (see the table on the type).
    pub fn new<S: Into<String>>(urls: impl IntoIterator<Item = S>) -> Self {
        Self {
            urls: urls.into_iter().map(Into::into).collect(),
            max_lag: Duration::from_millis(1000),
            wait: Duration::from_millis(200),
            check_interval: Duration::from_millis(250),
            acquire_timeout: Duration::from_millis(1000),
        }
    }

    vitals_env::setter!(
        /// The most a replica may lag the primary and still take reads (`DB_REPLICA_MAX_LAG_MS`).
        max_lag_of => max_lag: Duration;
        /// How long a read after a write waits for a replica to replay it (`DB_REPLICA_WAIT_MS`).
        wait_of => wait: Duration;
    );
    /// How often replicas are checked (`DB_REPLICA_CHECK_INTERVAL_MS`; at least 1 ms).
    pub fn check_interval_of(mut self, every: Duration) -> Self {
        self.check_interval = every.max(Duration::from_millis(1));
        self
    }
    /// A replica pool's acquire timeout (`DB_REPLICA_ACQUIRE_TIMEOUT_MS`; at least 1 ms).
    pub fn acquire_timeout_of(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The replicas' URLs (with their passwords: mask them with [`mask_url`] before showing).
    #[must_use]
    pub fn urls(&self) -> &[String] {
        &self.urls
    }
    /// Whether any replica is configured.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }
    /// See [`max_lag_of`](Self::max_lag_of).
    #[must_use]
    pub fn max_lag(&self) -> Duration {
        self.max_lag
    }
    /// See [`wait_of`](Self::wait_of).
    #[must_use]
    pub fn wait(&self) -> Duration {
        self.wait
    }
    /// See [`check_interval_of`](Self::check_interval_of).
    #[must_use]
    pub fn check_interval(&self) -> Duration {
        self.check_interval
    }
    /// See [`acquire_timeout_of`](Self::acquire_timeout_of).
    #[must_use]
    pub fn acquire_timeout(&self) -> Duration {
        self.acquire_timeout
    }

    vitals_env::from_env_methods! {
        /// Reads `DATABASE_REPLICA_URLS` and the `DB_REPLICA_*` variables in the table on the
        /// type; unset ones keep their defaults.
        ///
        /// # Errors
        /// [`ConfigError`](vitals_env::ConfigError) (component `pool`) naming each bad
        /// variable: an entry of `DATABASE_REPLICA_URLS` that is empty or not a `postgres://`
        /// URL (its position named, its password masked), a duration that is not a whole
        /// number of milliseconds.
        component: "pool",
        read: read,
    }
}

const URLS: &str = "DATABASE_REPLICA_URLS";

fn read(env: &mut Env<'_>) -> Option<ReplicaConfig> {
    let mut config = ReplicaConfig::default();
    if let Some(raw) = env.string(URLS) {
        for (i, entry) in raw.split(',').map(str::trim).enumerate() {
            if entry.starts_with("postgres://") || entry.starts_with("postgresql://") {
                config.urls.push(entry.to_owned());
            } else {
                let what = if entry.is_empty() {
                    "is empty"
                } else {
                    "is not a postgres:// URL"
                };
                env.problem(
                    URLS,
                    &mask_each(&raw),
                    format!("comma-separated postgres:// URLs (entry {} {what})", i + 1),
                );
            }
        }
    }
    if let Some(d) = env.millis("DB_REPLICA_MAX_LAG_MS", 0) {
        config = config.max_lag_of(d);
    }
    if let Some(d) = env.millis("DB_REPLICA_WAIT_MS", 0) {
        config = config.wait_of(d);
    }
    if let Some(d) = env.millis("DB_REPLICA_CHECK_INTERVAL_MS", 1) {
        config = config.check_interval_of(d);
    }
    if let Some(d) = env.millis("DB_REPLICA_ACQUIRE_TIMEOUT_MS", 1) {
        config = config.acquire_timeout_of(d);
    }
    Some(config)
}

/// `raw` with each comma-separated entry masked on its own, as a value that may not be a
/// URL ([`mask_bad_url`]): [`mask_url`] of the whole list reads it as one URL and misses a
/// later entry's `?password=`, and an entry that is not a URL (`host=h password=pw`) has no
/// password [`mask_url`] could find. An empty entry stays empty, so its position shows.
fn mask_each(raw: &str) -> String {
    raw.split(',')
        .map(|entry| match entry.trim() {
            "" => String::new(),
            entry => mask_bad_url(entry),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use vitals_env::pairs as env;

    #[test]
    fn unset_means_no_replicas_and_defaults() {
        let c = ReplicaConfig::from_env_with(env(&[])).unwrap();
        assert!(c.is_empty());
        assert_eq!(c.max_lag(), Duration::from_millis(1000));
        assert_eq!(c.wait(), Duration::from_millis(200));
    }

    #[test]
    fn urls_are_split_trimmed_and_bad_entries_named_without_the_password() {
        let c = ReplicaConfig::from_env_with(env(&[(
            URLS,
            " postgres://a@h1/db ,postgresql://b@h2:5433/db",
        )]))
        .unwrap();
        assert_eq!(
            c.urls(),
            ["postgres://a@h1/db", "postgresql://b@h2:5433/db"]
        );

        let err = ReplicaConfig::from_env_with(env(&[
            (URLS, "postgres://u:hunter2@h1/db,,mysql://h3"),
            ("DB_REPLICA_MAX_LAG_MS", "soon"),
        ]))
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("entry 2 is empty"), "{msg}");
        assert!(msg.contains("entry 3 is not a postgres:// URL"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(err.problem("DB_REPLICA_MAX_LAG_MS").is_some(), "{msg}");
        assert!(
            !format!("{:?}", ReplicaConfig::new(["postgres://u:hunter2@h/d"])).contains("hunter2")
        );
    }

    #[test]
    fn each_entry_of_a_bad_list_is_masked_on_its_own() {
        let err = ReplicaConfig::from_env_with(env(&[(
            URLS,
            "postgres://h1/db?sslmode=require, ,postgres://h2/db?password=pw",
        )]))
        .unwrap_err();
        let (shown, debug) = (err.to_string(), format!("{err:?}"));
        assert!(shown.contains("entry 2 is empty"), "{shown}");
        assert!(!shown.contains("pw"), "{shown}");
        assert!(!debug.contains("pw"), "{debug}");
    }

    #[test]
    fn an_entry_that_is_not_a_url_is_not_shown() {
        for list in [
            "postgres://h1/db,host=h2 user=app password=hunter2",
            "postgres://h1/db,mysql://h2/0&password=hunter2",
        ] {
            let err = ReplicaConfig::from_env_with(env(&[(URLS, list)])).unwrap_err();
            let (shown, debug) = (err.to_string(), format!("{err:?}"));
            assert!(
                shown.contains("entry 2 is not a postgres:// URL"),
                "{shown}"
            );
            assert!(shown.contains("postgres://h1/db"), "{shown}");
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(!debug.contains("hunter2"), "{debug}");
        }
    }
}
