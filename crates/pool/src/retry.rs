//! Retry of transient failures: classify an error, and run a whole unit of work again with
//! exponential backoff and full jitter.
//!
//! # What is retried, and what is not
//! Transient: the network (connection refused, reset, aborted, timed out, broken pipe,
//! unexpected EOF), the pool's acquire timeout, and the SQLSTATEs
//! `40001` serialization_failure, `40P01` deadlock_detected, `57P01` admin_shutdown,
//! `57P02` crash_shutdown, `57P03` cannot_connect_now, `53300` too_many_connections,
//! `08000` connection_exception, `08001`, `08003`, `08004`, `08006`. Everything else
//! (syntax errors, constraint violations, permission errors, ...) comes back at once: running
//! it again gives the same answer.
//!
//! **`08007` transaction_resolution_unknown is not retried.** The connection broke while the
//! `COMMIT` was in flight, so the transaction may or may not have committed. Running it again
//! may apply it twice (a second medication record, a second charge). Only the caller can check
//! whether it landed (e.g. by an idempotency key) before trying again.
//! [`MonitoredTransaction::commit`](crate::MonitoredTransaction::commit) turns an I/O error or
//! a `57P01`/`57P02` that ends the connection during `COMMIT` into exactly this error
//! ([`CommitOutcomeUnknown`](crate::CommitOutcomeUnknown), SQLSTATE `08007`), so a closure
//! that commits a [`MonitoredPool`](crate::MonitoredPool) transaction is not run again when the
//! commit's reply is lost. [`RetryPolicy::should_retry`] refuses it whatever
//! [`retry_sqlstate`](RetryPolicy::retry_sqlstate) and
//! [`retry_message`](RetryPolicy::retry_message) add; only a [classifier](RetryPolicy::classify)
//! can override that. A plain sqlx transaction (`sqlx::PgPool::begin`) does not do this: its
//! lost commit reply is an I/O error, which is transient, so retry only idempotent work in it.
//!
//! **Retry units of work, not statements, and only idempotent ones.** A retried statement in
//! the middle of a transaction runs on a connection whose transaction has already been rolled
//! back; retry the whole transaction closure instead. The same doubt as `08007` applies to any
//! network error that arrives after a non-idempotent statement was sent outside a transaction
//! (an `INSERT` in autocommit mode may have been applied before the connection reset): wrap
//! such work in a transaction with an idempotency key, or use [`RetryPolicy::classify`] to
//! refuse retries for it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use crate::classify::error_kind;
pub use crate::classify::{is_commit_outcome_unknown, is_transient, TRANSIENT_SQLSTATES};
use crate::error::PoolError;

/// An error [`retry`] can classify: it exposes the sqlx error inside, if any.
///
/// Implemented for `sqlx::Error` and [`PoolError`]; implement it for the application's error
/// type to retry closures that return that type.
pub trait RetryableError {
    /// The sqlx error inside, if this is one.
    fn as_sqlx_error(&self) -> Option<&sqlx::Error>;

    /// Transient without a sqlx error (e.g. [`PoolError::AcquireTimeout`]); default false.
    fn is_transient_other(&self) -> bool {
        false
    }
}

impl RetryableError for sqlx::Error {
    fn as_sqlx_error(&self) -> Option<&sqlx::Error> {
        Some(self)
    }
}

impl RetryableError for PoolError {
    fn as_sqlx_error(&self) -> Option<&sqlx::Error> {
        self.as_sqlx()
    }
    fn is_transient_other(&self) -> bool {
        // The rule itself lives in `PoolError::is_transient`; this is its part without sqlx.
        self.as_sqlx().is_none() && self.is_transient()
    }
}

/// A custom classifier: `Some(true)` retry, `Some(false)` do not, `None` use the rules.
pub type Classifier = Arc<dyn Fn(&sqlx::Error) -> Option<bool> + Send + Sync>;

/// How many times to run a unit of work and how long to wait between runs.
///
/// The wait before attempt `n + 1` is uniform in `[0, min(max_delay, base_delay * 2^(n-1))]`
/// ("full jitter"), so that clients that failed together do not retry together. Cloning is
/// cheap.
#[derive(Clone)]
#[must_use]
pub struct RetryPolicy {
    max_attempts: u32,
    base_delay: Duration,
    max_delay: Duration,
    extra_sqlstates: Vec<String>,
    message_patterns: Vec<String>,
    classifier: Option<Classifier>,
}

vitals_env::debug_fields!(RetryPolicy as r {
    max_attempts,
    base_delay,
    max_delay,
    extra_sqlstates,
    message_patterns,
    classifier: r.classifier.is_some(),
});

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::new(3)
    }
}

impl RetryPolicy {
    /// At most `max_attempts` runs (the first included; 0 is treated as 1), backoff from
    /// 100 ms up to 5 s.
    pub fn new(max_attempts: u32) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            extra_sqlstates: Vec::new(),
            message_patterns: Vec::new(),
            classifier: None,
        }
    }

    vitals_env::setter!(
        /// The ceiling of the first wait; doubled per attempt.
        base_delay: Duration
    );

    vitals_env::setter!(
        /// The largest wait.
        max_delay: Duration
    );

    /// Also retry this SQLSTATE (like adding to the report's `match` list).
    pub fn retry_sqlstate(mut self, code: impl Into<String>) -> Self {
        self.extra_sqlstates.push(code.into());
        self
    }

    /// Also retry errors whose message contains `pattern` (case-insensitive substring, the
    /// report's `match: RegExp[]` for plain words such as `"ETIMEDOUT"`). Messages are matched,
    /// never logged.
    pub fn retry_message(mut self, pattern: impl Into<String>) -> Self {
        self.message_patterns.push(pattern.into().to_lowercase());
        self
    }

    /// A classifier consulted first; `None` from it falls back to the rules.
    pub fn classify(mut self, classifier: Classifier) -> Self {
        self.classifier = Some(classifier);
        self
    }

    /// Runs at most this many times.
    #[must_use]
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Whether this policy retries `error`.
    #[must_use]
    pub fn should_retry<E: RetryableError + ?Sized>(&self, error: &E) -> bool {
        let Some(e) = error.as_sqlx_error() else {
            return error.is_transient_other();
        };
        if let Some(verdict) = self.classifier.as_ref().and_then(|c| c(e)) {
            return verdict;
        }
        // The work may be in the database already: never run it again by rule.
        if is_commit_outcome_unknown(e) {
            return false;
        }
        if is_transient(e) || error.is_transient_other() {
            return true;
        }
        if let sqlx::Error::Database(db) = e {
            if db
                .code()
                .is_some_and(|c| self.extra_sqlstates.iter().any(|x| x == c.as_ref()))
            {
                return true;
            }
        }
        if !self.message_patterns.is_empty() {
            let msg = match e {
                sqlx::Error::Database(db) => db.message().to_lowercase(),
                other => other.to_string().to_lowercase(),
            };
            return self.message_patterns.iter().any(|p| msg.contains(p));
        }
        false
    }

    /// The wait before attempt `attempt + 1` (after `attempt` failures), with full jitter.
    #[must_use]
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let ceiling = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::thread_rng().gen_range(0..=nanos))
    }
}

/// Runs `work` until it succeeds, fails with an error the policy does not retry, or has run
/// `policy.max_attempts()` times; sleeps [`RetryPolicy::backoff`] between runs.
///
/// `work` must be a whole unit of work (open a transaction, do it, commit) that is safe to
/// run again; see the [module docs](self) for why. A [`MonitoredTransaction`] whose commit
/// reply is lost returns [`CommitOutcomeUnknown`](crate::CommitOutcomeUnknown), which is not
/// retried: `retry` returns it, and the caller checks what landed.
///
/// # Errors
/// The last error of `work`.
///
/// # Example
/// Idempotent work: the dose has its own key, so a second run (after a failure the server
/// reported, when nothing was committed) inserts nothing more.
/// ```no_run
/// # async fn example(pool: vitals_pool::MonitoredPool<sqlx::Postgres>) -> Result<(), vitals_pool::PoolError> {
/// use vitals_pool::retry::{retry, RetryPolicy};
/// let policy = RetryPolicy::new(3);
/// let outcome = retry(&policy, || async {
///     let mut tx = pool.begin().await?;
///     sqlx::query("INSERT INTO doses (id, student_id) VALUES ($1, 7) ON CONFLICT (id) DO NOTHING")
///         .bind(uuid_of_this_request())
///         .execute(&mut *tx)
///         .await?;
///     tx.commit().await?;
///     Ok::<_, vitals_pool::PoolError>(())
/// })
/// .await;
/// match outcome {
///     Err(e) if e.is_commit_outcome_unknown() => { /* read the dose back before anything else */ }
///     other => other?,
/// }
/// # Ok(()) }
/// # fn uuid_of_this_request() -> i64 { 1 }
/// ```
///
/// [`MonitoredTransaction`]: crate::MonitoredTransaction
pub async fn retry<T, E, F, Fut>(policy: &RetryPolicy, mut work: F) -> Result<T, E>
where
    E: RetryableError,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match work().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < policy.max_attempts && policy.should_retry(&e) => {
                let wait = policy.backoff(attempt);
                tracing::debug!(
                    attempt,
                    max_attempts = policy.max_attempts,
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    error = %e.as_sqlx_error().map_or_else(|| "pool".to_owned(), error_kind),
                    "transient database error, retrying the unit of work"
                );
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn the_acquire_timeout_is_retried_and_a_bad_url_is_not() {
        assert!(
            RetryPolicy::default().should_retry(&PoolError::AcquireTimeout {
                waited: Duration::from_secs(1)
            })
        );
        assert!(
            !RetryPolicy::default().should_retry(&PoolError::CreateSqliteDir {
                path: "x".into(),
                source: std::io::Error::from(ErrorKind::PermissionDenied),
            })
        );
    }

    #[test]
    fn backoff_is_bounded_by_the_doubling_ceiling() {
        let p = RetryPolicy::new(10)
            .base_delay(Duration::from_millis(10))
            .max_delay(Duration::from_millis(50));
        for _ in 0..200 {
            assert!(p.backoff(1) <= Duration::from_millis(10));
            assert!(p.backoff(2) <= Duration::from_millis(20));
            assert!(p.backoff(9) <= Duration::from_millis(50));
        }
    }

    #[test]
    fn message_patterns_and_classifier_extend_the_rules() {
        let e = sqlx::Error::Protocol("server said ETIMEDOUT".into());
        assert!(!RetryPolicy::default().should_retry(&e));
        assert!(RetryPolicy::default()
            .retry_message("etimedout")
            .should_retry(&e));
        let never: Classifier = Arc::new(|_| Some(false));
        assert!(!RetryPolicy::default()
            .classify(never)
            .should_retry(&sqlx::Error::PoolTimedOut));
    }

    #[tokio::test(start_paused = true)]
    async fn a_commit_of_unknown_outcome_is_never_retried_by_rule() {
        let policy = RetryPolicy::new(3)
            .retry_sqlstate("08007")
            .retry_message("connection");
        let runs = AtomicU32::new(0);
        let r: Result<(), PoolError> = retry(&policy, || async {
            runs.fetch_add(1, Ordering::SeqCst);
            let lost = sqlx::Error::Io(ErrorKind::ConnectionReset.into());
            Err(crate::CommitOutcomeUnknown::wrap(lost).into())
        })
        .await;
        assert!(matches!(r, Err(ref e) if e.is_commit_outcome_unknown() && !e.is_transient()));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // A classifier, the caller's own decision, still can.
        let always: Classifier = Arc::new(|_| Some(true));
        let lost = sqlx::Error::Io(ErrorKind::UnexpectedEof.into());
        assert!(RetryPolicy::default()
            .classify(always)
            .should_retry(&crate::CommitOutcomeUnknown::wrap(lost)));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_stops_at_max_attempts_and_on_permanent_errors() {
        let policy = RetryPolicy::new(3);
        let runs = AtomicU32::new(0);
        let r: Result<(), sqlx::Error> = retry(&policy, || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Err(sqlx::Error::Io(ErrorKind::ConnectionReset.into()))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(runs.load(Ordering::SeqCst), 3);

        runs.store(0, Ordering::SeqCst);
        let r: Result<(), sqlx::Error> = retry(&policy, || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Err(sqlx::Error::RowNotFound)
        })
        .await;
        assert!(matches!(r, Err(sqlx::Error::RowNotFound)));
        assert_eq!(runs.load(Ordering::SeqCst), 1);

        runs.store(0, Ordering::SeqCst);
        let r = retry(&policy, || async {
            if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(sqlx::Error::Io(ErrorKind::BrokenPipe.into()))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }
}
