//! The ~5 KB health summary the cache benches store and read: `benches/benches/cache.rs`
//! (one Redis) and `benches/benches/cache_cluster.rs` (a Redis Cluster) include this file
//! with `#[path]`, so both decode the same struct of the same size.

use serde::{Deserialize, Serialize};

/// One record of a summary's lists.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    id: String,
    name: String,
    detail: String,
    date: String,
    verified: bool,
}

/// A student's health summary as a host caches it: the student and four lists of
/// records, about 5 KB of JSON (printed at start).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    student_id: String,
    school: String,
    grade: u8,
    vaccinations: Vec<Record>,
    allergies: Vec<Record>,
    conditions: Vec<Record>,
    medications: Vec<Record>,
}

/// Student `i`'s summary: 12 vaccinations, 5 allergies, 3 conditions, 9 medications.
pub fn summary(i: usize) -> Summary {
    let records = |kind: &str, n: usize| {
        (0..n)
            .map(|j| Record {
                id: format!("7f3e2a10-0000-4000-8000-{i:06}{j:06}"),
                name: format!("{kind} {j}"),
                detail: "administered at the school clinic; no reaction observed".into(),
                date: "2026-09-14".into(),
                verified: j % 2 == 0,
            })
            .collect()
    };
    Summary {
        student_id: format!("4f1c0000-0000-4000-8000-{i:012}"),
        school: "Northside Primary".into(),
        grade: 4,
        vaccinations: records("vaccine", 12),
        allergies: records("allergen", 5),
        conditions: records("condition", 3),
        medications: records("medication", 9),
    }
}
