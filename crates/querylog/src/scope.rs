//! N+1 detection: counts per fingerprint within one scope (a request, a job, a span); when the
//! scope ends, each fingerprint repeated often enough becomes an [`NPlusOneFinding`].
//!
//! A scope can be ambient: [`Scope`] is a tokio task-local, so every statement recorded while a
//! future runs inside it is counted there, across `.await`s and worker threads, without the
//! scope being passed around. This file knows no logger: a scope hands its counts, when it
//! ends, to the [`ScopeEnd`] it was opened with (the logger implements it).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use tokio::task::futures::TaskLocalFuture;

use crate::fingerprint::Fingerprint;
use crate::record::{ms, Recorded};
use crate::report::{by_count_desc, NPlusOneFinding};
use crate::scrub::scrub_text;

/// Most distinct fingerprints one scope tracks (bounded memory per request).
const SCOPE_MAX_FINGERPRINTS: usize = 256;

struct ScopeEntry {
    count: u64,
    total: Duration,
    sql: Arc<str>,
    model: Option<Arc<str>>,
}

/// Per-scope counts for N+1 detection (used by [`ScopeGuard`](crate::ScopeGuard) and the
/// layer).
#[derive(Default)]
pub(crate) struct ScopeTracker {
    name: String,
    entries: HashMap<Fingerprint, ScopeEntry>,
}

impl ScopeTracker {
    /// A tracker for the scope `name` (scrubbed: a route may hold an id).
    pub(crate) fn new(name: &str) -> Self {
        Self {
            name: scrub_text(name),
            entries: HashMap::new(),
        }
    }

    /// The scope's (scrubbed) name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn observe(&mut self, r: &Recorded) {
        // Statements on no table (`BEGIN`, `SELECT ?`) are not N+1 material.
        if r.model.is_none() {
            return;
        }
        if let Some(e) = self.entries.get_mut(&r.fingerprint) {
            e.count += 1;
            e.total += r.duration;
        } else if self.entries.len() < SCOPE_MAX_FINGERPRINTS {
            self.entries.insert(
                r.fingerprint,
                ScopeEntry {
                    count: 1,
                    total: r.duration,
                    sql: r.sql.clone(),
                    model: r.model.clone(),
                },
            );
        }
    }

    /// Ends the scope: a finding for each fingerprint seen `threshold` times or more, most
    /// frequent first.
    pub(crate) fn finish(self, threshold: u32) -> Vec<NPlusOneFinding> {
        let threshold = u64::from(threshold);
        let at = Utc::now();
        let mut findings: Vec<NPlusOneFinding> = self
            .entries
            .into_iter()
            .filter(|(_, e)| e.count >= threshold)
            .map(|(fp, e)| NPlusOneFinding {
                at,
                scope: self.name.clone(),
                fingerprint: fp,
                query: e.sql.to_string(),
                model: e.model.as_deref().map(str::to_string),
                count: e.count,
                total_ms: ms(e.total),
            })
            .collect();
        findings.sort_by(|a, b| by_count_desc((a.count, a.fingerprint), (b.count, b.fingerprint)));
        findings
    }
}

/// Where a scope's counts go when it ends (the logger, which makes and keeps the findings).
pub(crate) trait ScopeEnd: Send + Sync {
    /// Called once, when the last handle of the scope is dropped.
    fn end_scope(&self, tracker: ScopeTracker);
}

tokio::task_local! {
    /// The scope the running task's statements are counted in.
    static CURRENT: Scope;
}

/// The shared state of one open scope; ends it when the last [`Scope`] handle drops.
struct Open {
    name: String,
    tracker: Mutex<ScopeTracker>,
    end: Arc<dyn ScopeEnd>,
}

impl Drop for Open {
    fn drop(&mut self) {
        let tracker = std::mem::take(
            self.tracker
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner),
        );
        self.end.end_scope(tracker);
    }
}

/// A handle to an open N+1 detection scope: a request, a job, an import; nothing in it is
/// HTTP-specific. Open one with [`QueryLogger::in_scope`](crate::QueryLogger::in_scope) or
/// [`QueryLogger::scope`](crate::QueryLogger::scope); while a future runs inside it (see
/// [`wrap`](Self::wrap)), every [`QueryLogger::record`](crate::QueryLogger::record) on the
/// logger that opened it is counted in it, on whatever worker thread and across `.await`s.
///
/// A task spawned inside a scope does not inherit it (tokio task-locals are per task): carry
/// it with [`scoped`](crate::scoped) or `Scope::current()` and [`wrap`](Self::wrap).
///
/// The scope ends, and its findings are made, when its last handle is dropped: the future of
/// `in_scope` (normally right after it completes), the [`ScopeGuard`](crate::ScopeGuard), and
/// every future it was carried into. Carry it only into work that belongs to the scope and
/// ends with it; a handle kept for ever keeps the scope open for ever.
///
/// Cloning is cheap (one `Arc`); it is `Send + Sync`.
#[derive(Clone)]
pub struct Scope {
    // `None` only inside [`scoped`] called outside any scope: it carries no scope.
    open: Option<Arc<Open>>,
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}

/// A future running inside a [`Scope`]: what [`Scope::wrap`], [`scoped`](crate::scoped),
/// [`QueryLogger::in_scope`](crate::QueryLogger::in_scope) and
/// [`ScopeGuard::run`](crate::ScopeGuard::run) return. A named type, so a tower service can
/// use it as its `Future`; `Send` when the wrapped future is.
pub type Scoped<F> = TaskLocalFuture<Scope, F>;

impl Scope {
    /// Opens a scope named `name` (scrubbed: a route may hold an id) that hands its counts to
    /// `end` when it ends.
    pub(crate) fn open(name: &str, end: Arc<dyn ScopeEnd>) -> Self {
        let tracker = ScopeTracker::new(name);
        Self {
            open: Some(Arc::new(Open {
                name: tracker.name().to_owned(),
                tracker: Mutex::new(tracker),
                end,
            })),
        }
    }

    /// The scope the current task runs in, if any: to carry it into a task spawned from here
    /// with [`wrap`](Self::wrap).
    #[must_use]
    pub fn current() -> Option<Scope> {
        CURRENT
            .try_with(|s| s.open.is_some().then(|| s.clone()))
            .ok()
            .flatten()
    }

    /// The scope's name, scrubbed (`GET /students/?`).
    #[must_use]
    pub fn name(&self) -> &str {
        self.open.as_deref().map_or("", |o| o.name.as_str())
    }

    /// Runs `future` inside this scope (until it completes, and while it is dropped).
    pub fn wrap<F: Future>(self, future: F) -> Scoped<F> {
        CURRENT.scope(self, future)
    }

    /// Runs `f` inside this scope, on this thread: for synchronous work of the scope (a
    /// `spawn_blocking` closure, a job with no runtime).
    ///
    /// # Panics
    ///
    /// Only when called while this thread's thread-locals are being destroyed (as tokio's
    /// `LocalKey::sync_scope`).
    pub fn wrap_sync<R>(self, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(self, f)
    }

    /// Counts `r` in this scope.
    pub(crate) fn observe(&self, r: &Recorded) {
        if let Some(open) = &self.open {
            open.tracker
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .observe(r);
        }
    }
}

/// Runs `future` inside the scope of the current task, if there is one: wrap the future of a
/// task spawned inside a scope with it, so that its statements count in that scope
/// (`tokio::spawn(vitals_querylog::scoped(async move { .. }))`). Outside any scope, `future`
/// runs in none.
pub fn scoped<F: Future>(future: F) -> Scoped<F> {
    let scope = CURRENT
        .try_with(Scope::clone)
        .unwrap_or(Scope { open: None });
    scope.wrap(future)
}

/// Counts `r` in the current task's scope when that scope was opened by `owner` (one task-local
/// lookup when there is none).
pub(crate) fn observe_current(owner: *const (), r: &Recorded) {
    let _ = CURRENT.try_with(|scope| {
        if let Some(open) = &scope.open {
            if Arc::as_ptr(&open.end).cast::<()>() == owner {
                scope.observe(r);
            }
        }
    });
}
