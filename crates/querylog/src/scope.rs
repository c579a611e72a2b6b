//! N+1 detection: counts per fingerprint within one scope (a request, a span); when the scope
//! ends, each fingerprint repeated often enough becomes an [`NPlusOneFinding`].
//!
//! A tracker knows no logger: [`QueryLogger::scope`](crate::QueryLogger::scope)'s guard and
//! the tracing layer feed it what was recorded and hand its findings to the logger.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

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
