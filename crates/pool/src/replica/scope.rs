//! Read-your-writes scopes: a tokio task-local that remembers that a write ran in the scope
//! (and, once asked, the primary's WAL position after it), and the observer that notes every
//! statement of the write handle in the ambient scope.
//!
//! A statement through the write handle marks the scope *pending* inline, from the pool's
//! observer (which runs in the task that awaits the statement); the next routed read in the
//! scope turns the mark into a [`WriteToken`] with one `pg_current_wal_insert_lsn()` on the
//! primary, taken after the write returned, so at or past its commit record.
//!
//! The mark is a count of writes: a read notes the count before it asks the primary, and
//! only once the token is stored does it mark that many writes covered. Until then (another
//! read of the scope meanwhile, a write meanwhile, or the read's future dropped while it
//! waits) the scope stays pending, so no read goes to a replica that may not have the write.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::observer::{QueryObserver, Statement};
use crate::replica::lsn::Lsn;

/// The WAL position a read must see: a replica whose replay position is at or past it has
/// replayed the write it was taken after. From [`ReplicaRouter::write_token`](crate::ReplicaRouter::write_token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WriteToken(pub Lsn);

#[derive(Debug, Default)]
pub(crate) struct ScopeState {
    /// Statements run on the write handle in the scope.
    writes: AtomicU64,
    /// How many of `writes` the token covers (stored after the token): fewer means pending.
    covered: AtomicU64,
    /// The highest token the scope holds (0: none).
    token: AtomicU64,
}

tokio::task_local! {
    static SCOPE: Arc<ScopeState>;
}

/// Runs `fut` in a read-your-writes scope: after a statement through the router's write
/// handle, reads routed in the scope ([`ReplicaRouter::read`](crate::ReplicaRouter::read),
/// [`read_consistent`](crate::ReplicaRouter::read_consistent)) go only to a replica that
/// replayed it, or to the primary. Inside a scope already, `fut` shares that scope.
///
/// A task spawned inside is outside the scope unless its future is wrapped with this function
/// too (then it has a scope of its own).
pub fn read_your_writes<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    let state = SCOPE.try_with(Arc::clone).unwrap_or_default();
    SCOPE.scope(state, fut)
}

/// Whether the current task is in a read-your-writes scope.
#[must_use]
pub fn in_read_scope() -> bool {
    SCOPE.try_with(|_| ()).is_ok()
}

/// Notes a write in the ambient scope (nothing outside one), for writes that did not go
/// through the router's write handle in this task: statements on a raw connection taken with
/// sqlx's `Acquire`, or run by tasks spawned outside the scope (the facade's importer writes
/// its chunks so, and calls this when the import returns). The next routed read in the scope
/// then waits for a replica that has replayed everything written until now, or takes the
/// primary.
pub fn note_write() {
    mark_written();
}

/// Notes a write in the ambient scope (nothing outside one).
pub(crate) fn mark_written() {
    let _ = SCOPE.try_with(|s| s.writes.fetch_add(1, Ordering::AcqRel));
}

/// What a read in the ambient scope must see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// No scope, or no write in it: any fit replica.
    Nothing,
    /// A write whose position is not known yet.
    Pending,
    /// Replayed at least this far.
    Token(Lsn),
}

pub(crate) fn need() -> Need {
    SCOPE
        .try_with(|s| {
            if s.covered.load(Ordering::Acquire) < s.writes.load(Ordering::Acquire) {
                Need::Pending
            } else {
                match s.token.load(Ordering::Acquire) {
                    0 => Need::Nothing,
                    t => Need::Token(Lsn(t)),
                }
            }
        })
        .unwrap_or(Need::Nothing)
}

/// The scope's write count, taken before the primary is asked for its position (`None`
/// outside a scope).
pub(crate) fn writes() -> Option<u64> {
    SCOPE.try_with(|s| s.writes.load(Ordering::Acquire)).ok()
}

/// Raises the scope's token to `lsn`, asked after `writes` writes had returned, then marks
/// those writes covered (a write since, or a read that never got here, leaves the scope
/// pending).
pub(crate) fn cover(writes: u64, lsn: Lsn) {
    let _ = SCOPE.try_with(|s| {
        s.token.fetch_max(lsn.0, Ordering::AcqRel);
        s.covered.fetch_max(writes, Ordering::AcqRel);
    });
}

/// The write handle's observer: marks the ambient scope, then hands the statement on.
pub(crate) struct WriteMarker {
    pub(crate) next: Option<Arc<dyn QueryObserver>>,
}

impl QueryObserver for WriteMarker {
    fn on_query(&self, sql: &str, elapsed: Duration, rows: u64, error: Option<&sqlx::Error>) {
        mark_written();
        if let Some(next) = &self.next {
            next.on_query(sql, elapsed, rows, error);
        }
    }

    // Forwarded whole, so the next observer still records on the statement's span.
    fn on_statement(&self, statement: &Statement<'_>) {
        mark_written();
        if let Some(next) = &self.next {
            next.on_statement(statement);
        }
    }

    // The next observer's: when it records the span's end itself, the handle must not too.
    fn records_span_end(&self) -> bool {
        self.next.as_ref().is_some_and(|n| n.records_span_end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An observer that records a statement span's end itself, as the facade's does.
    struct EndsSpans;

    impl QueryObserver for EndsSpans {
        fn on_query(&self, _: &str, _: Duration, _: u64, _: Option<&sqlx::Error>) {}

        fn records_span_end(&self) -> bool {
            true
        }
    }

    /// The handle records the rows and error on a span only when the observer does not: the
    /// write marker answers for the observer it wraps, or the rows would be recorded (and
    /// exported) twice on every write through the router.
    #[test]
    fn the_write_marker_answers_records_span_end_for_the_observer_it_wraps() {
        let wrapping = |next: Option<Arc<dyn QueryObserver>>| WriteMarker { next };
        assert!(wrapping(Some(Arc::new(EndsSpans))).records_span_end());
        assert!(!wrapping(None).records_span_end());
    }
}
