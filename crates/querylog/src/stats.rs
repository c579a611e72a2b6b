//! The statistics store: totals, queries per model, and per fingerprint a count, a duration
//! histogram and the described statement; bounded by evicting the least used fingerprint;
//! read back as the top-N lists of [`QueryStatistics`].

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::describe::{model_name, operation_and_table};
use crate::fingerprint::Fingerprint;
use crate::record::SlowTier;
use crate::report::{by_count_desc, FingerprintStats, QueryStatistics};
use crate::scrub::scrub_text;

/// The model bucket used once the per-model map is as large as the fingerprint cap.
const OTHER_MODEL: &str = "(other)";
/// How many queries the statistics' top lists hold.
const TOP: usize = 10;

/// A duration in whole microseconds, the store's unit.
pub(crate) fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// `x` to three decimals (microseconds, for values in ms).
fn round_ms(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The mean of `count` durations totalling `total_us`, in ms to three decimals; 0 for none.
fn avg_ms(total_us: u64, count: u64) -> f64 {
    if count == 0 {
        0.0
    } else {
        round_ms(total_us as f64 / count as f64 / 1000.0)
    }
}

/// One query as the store counts it; everything in it is already sanitised or scrubbed,
/// except the model and operation a caller gave, which are scrubbed here if kept.
pub(crate) struct Sample<'a> {
    pub(crate) fingerprint: Fingerprint,
    pub(crate) sanitized: Arc<str>,
    pub(crate) duration_us: u64,
    pub(crate) tier: Option<SlowTier>,
    pub(crate) failed: bool,
    pub(crate) rows: Option<u64>,
    pub(crate) model: Option<&'a str>,
    pub(crate) operation: Option<&'a str>,
}

/// What the store knows of a counted query's statement, shared with the histories.
pub(crate) struct Described {
    pub(crate) sql: Arc<str>,
    pub(crate) model: Option<Arc<str>>,
    pub(crate) operation: Arc<str>,
    /// The first table as written (`vaccinations`), for spans and metrics.
    pub(crate) collection: Option<Arc<str>>,
}

struct Entry {
    sql: Arc<str>,
    model: Option<Arc<str>>,
    operation: Arc<str>,
    collection: Option<Arc<str>>,
    count: u64,
    total_us: u64,
    min_us: u64,
    max_us: u64,
    errors: u64,
    rows: u64,
    hist: Option<Histogram<u32>>,
    last_seen: u64,
}

impl Entry {
    /// The longest execution in milliseconds ([`FingerprintStats::max_ms`]).
    fn max_ms(&self) -> f64 {
        self.max_us as f64 / 1000.0
    }

    fn stats(&self, fp: Fingerprint) -> FingerprintStats {
        let q = |p: f64| {
            self.hist
                .as_ref()
                .map_or(0.0, |h| h.value_at_quantile(p) as f64 / 1000.0)
        };
        FingerprintStats {
            fingerprint: fp,
            query: self.sql.to_string(),
            model: self.model.as_deref().map(str::to_string),
            operation: self.operation.to_string(),
            count: self.count,
            errors: self.errors,
            rows: self.rows,
            avg_ms: avg_ms(self.total_us, self.count),
            min_ms: self.min_us as f64 / 1000.0,
            max_ms: self.max_ms(),
            p50_ms: q(0.50),
            p95_ms: q(0.95),
            p99_ms: q(0.99),
        }
    }
}

/// The statistics of every query recorded.
pub(crate) struct Stats {
    max_fingerprints: usize,
    total: u64,
    slow: u64,
    critical: u64,
    errors: u64,
    total_us: u64,
    min_us: Option<u64>,
    max_us: u64,
    seq: u64,
    by_model: HashMap<Arc<str>, u64>,
    fingerprints: HashMap<Fingerprint, Entry>,
    evicted_fingerprints: u64,
    evicted_queries: u64,
}

impl Stats {
    /// A store of at most `max_fingerprints` fingerprints (and as many models).
    pub(crate) fn new(max_fingerprints: usize) -> Self {
        Self {
            max_fingerprints,
            total: 0,
            slow: 0,
            critical: 0,
            errors: 0,
            total_us: 0,
            min_us: None,
            max_us: 0,
            seq: 0,
            by_model: HashMap::new(),
            fingerprints: HashMap::new(),
            evicted_fingerprints: 0,
            evicted_queries: 0,
        }
    }

    /// Counts one query. A new fingerprint is described (operation and model) once, evicting
    /// the least used one when the store is full. Returns the statement, model and operation
    /// to keep with the query: the fingerprint's, unless the caller gave its own.
    pub(crate) fn add(&mut self, s: Sample<'_>) -> Described {
        let d_us = s.duration_us;
        self.seq += 1;
        self.total += 1;
        self.total_us = self.total_us.saturating_add(d_us);
        self.min_us = Some(self.min_us.map_or(d_us, |m| m.min(d_us)));
        self.max_us = self.max_us.max(d_us);
        if s.tier.is_some() {
            self.slow += 1;
        }
        if s.tier == Some(SlowTier::Critical) {
            self.critical += 1;
        }
        if s.failed {
            self.errors += 1;
        }

        if self.fingerprints.len() >= self.max_fingerprints
            && !self.fingerprints.contains_key(&s.fingerprint)
        {
            self.evict_one();
        }
        let seq = self.seq;
        let sanitized = s.sanitized;
        let entry = self.fingerprints.entry(s.fingerprint).or_insert_with(|| {
            let (operation, collection) = operation_and_table(&sanitized);
            Entry {
                sql: sanitized,
                model: collection.as_deref().map(|t| Arc::from(model_name(t))),
                operation,
                collection,
                count: 0,
                total_us: 0,
                min_us: u64::MAX,
                max_us: 0,
                errors: 0,
                rows: 0,
                hist: Histogram::new(2).ok(),
                last_seen: 0,
            }
        });
        entry.count += 1;
        entry.total_us = entry.total_us.saturating_add(d_us);
        entry.min_us = entry.min_us.min(d_us);
        entry.max_us = entry.max_us.max(d_us);
        entry.last_seen = seq;
        if s.failed {
            entry.errors += 1;
        }
        entry.rows = entry.rows.saturating_add(s.rows.unwrap_or(0));
        if let Some(h) = entry.hist.as_mut() {
            // `record` grows the histogram; clamp only if it cannot grow further.
            if h.record(d_us).is_err() {
                h.saturating_record(d_us);
            }
        }
        let model = match s.model {
            Some(m) if entry.model.as_deref() == Some(m) => entry.model.clone(),
            Some(m) => Some(Arc::from(scrub_text(m))),
            None => entry.model.clone(),
        };
        let operation = match s.operation {
            Some(o) if &*entry.operation != o => Arc::from(scrub_text(o)),
            _ => entry.operation.clone(),
        };
        let sql = entry.sql.clone();
        let collection = entry.collection.clone();

        if let Some(m) = &model {
            if let Some(n) = self.by_model.get_mut(&**m) {
                *n += 1;
            } else if self.by_model.len() < self.max_fingerprints {
                self.by_model.insert(m.clone(), 1);
            } else {
                *self.by_model.entry(Arc::from(OTHER_MODEL)).or_insert(0) += 1;
            }
        }
        Described {
            sql,
            model,
            operation,
            collection,
        }
    }

    fn evict_one(&mut self) {
        let victim = self
            .fingerprints
            .iter()
            .min_by_key(|(_, e)| (e.count, e.last_seen))
            .map(|(fp, _)| *fp);
        if let Some(fp) = victim {
            if let Some(e) = self.fingerprints.remove(&fp) {
                self.evicted_fingerprints += 1;
                self.evicted_queries += e.count;
            }
        }
    }

    /// Totals, per model, the slowest and the most frequent statements (10 each);
    /// `n_plus_one_findings` is the count of findings, which the store does not see.
    pub(crate) fn statistics(&self, n_plus_one_findings: u64) -> QueryStatistics {
        QueryStatistics {
            total_queries: self.total,
            slow_queries: self.slow,
            critical_queries: self.critical,
            failed_queries: self.errors,
            avg_duration_ms: avg_ms(self.total_us, self.total),
            min_duration_ms: self.min_us.unwrap_or(0) as f64 / 1000.0,
            max_duration_ms: self.max_us as f64 / 1000.0,
            queries_by_model: self
                .by_model
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<BTreeMap<_, _>>(),
            slowest_queries: top_stats(&self.fingerprints, TOP, slowest_first),
            most_frequent_queries: top_stats(&self.fingerprints, TOP, most_frequent_first),
            distinct_fingerprints: self.fingerprints.len() as u64,
            evicted_fingerprints: self.evicted_fingerprints,
            evicted_queries: self.evicted_queries,
            n_plus_one_findings,
        }
    }

    /// Statistics of every tracked fingerprint, most frequent first.
    pub(crate) fn fingerprint_stats(&self) -> Vec<FingerprintStats> {
        top_stats(&self.fingerprints, usize::MAX, most_frequent_first)
    }
}

type Tracked<'a> = (&'a Fingerprint, &'a Entry);

/// Most executed first, then by fingerprint.
fn most_frequent_first(a: &Tracked<'_>, b: &Tracked<'_>) -> Ordering {
    by_count_desc((a.1.count, *a.0), (b.1.count, *b.0))
}

/// Longest single execution first, then by fingerprint. Compares
/// [`FingerprintStats::max_ms`] (milliseconds as `f64`), not the raw
/// microseconds, so that ties are broken exactly as on the reported values.
fn slowest_first(a: &Tracked<'_>, b: &Tracked<'_>) -> Ordering {
    b.1.max_ms().total_cmp(&a.1.max_ms()).then(a.0.cmp(b.0))
}

/// Statistics of the first `n` fingerprints in `order`. Only those are turned
/// into [`FingerprintStats`]; the rest are compared in place.
fn top_stats(
    fingerprints: &HashMap<Fingerprint, Entry>,
    n: usize,
    order: fn(&Tracked<'_>, &Tracked<'_>) -> Ordering,
) -> Vec<FingerprintStats> {
    let mut all: Vec<Tracked<'_>> = fingerprints.iter().collect();
    if n < all.len() {
        // Partition so that the first `n` are the smallest in `order`; then sort only those.
        all.select_nth_unstable_by(n, order);
        all.truncate(n);
    }
    all.sort_unstable_by(order);
    all.into_iter().map(|(fp, e)| e.stats(*fp)).collect()
}
