//! The one row type of the chunk pipeline: a valid row with what the stages ask of it, and
//! what became of it.

use crate::keys::Hash128;
use crate::report::{DuplicateOf, Rejection};
use crate::spec::{Registry, Value};
use crate::validate::Row;

/// What became of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Valid so far; still on its way to the sink.
    Pending,
    /// Inserted (in a dry run: would have been).
    Imported,
    /// A duplicate of an earlier line or of a row in the database.
    Duplicate(DuplicateOf),
    /// Refused, for these reasons.
    Rejected(Vec<Rejection>),
}

/// A row that passed field validation, with its keys hashed on the reading thread so the
/// database loop only looks hashes up. Every stage of the pipeline takes and returns rows of
/// this type, setting [`outcome`](Self::outcome) when the row goes no further.
#[derive(Debug)]
pub(crate) struct PreparedRow {
    /// Line where the row starts.
    pub(crate) line: u64,
    /// Index of its type in [`Registry::specs`].
    pub(crate) spec: usize,
    /// One value per column of the spec, in column order.
    pub(crate) values: Vec<Value>,
    /// The natural key, normalised: one value per key part. Taken by the lookup of
    /// existing keys, the last stage that needs it.
    pub(crate) key: Vec<Value>,
    /// [`Hash128::key`] of the natural key.
    pub(crate) key_hash: u128,
    /// Per foreign key of the type (in `foreign_keys()` order): [`Hash128::reference`] of
    /// the value, `None` for a NULL value (or a column the spec lacks).
    pub(crate) fk_hashes: Vec<Option<u128>>,
    pub(crate) outcome: Outcome,
}

impl PreparedRow {
    /// Hashes the keys of `row`, a row of `registry`.
    pub(crate) fn new(registry: &Registry, hasher: &Hash128, row: Row) -> Self {
        let spec = &registry.specs()[row.spec];
        let key: Vec<Value> = spec
            .key()
            .iter()
            .map(|k| {
                spec.column_index(k.column())
                    .map_or(Value::Null, |ci| k.apply(&row.values[ci]))
            })
            .collect();
        let key_hash = hasher.key(row.spec, &key);
        let fk_hashes = spec
            .foreign_keys()
            .iter()
            .map(|fk| {
                let v = spec.column_index(fk.column()).map(|ci| &row.values[ci])?;
                (*v != Value::Null).then(|| hasher.reference(fk.table(), fk.referenced(), v))
            })
            .collect();
        Self {
            line: row.line,
            spec: row.spec,
            values: row.values,
            key,
            key_hash,
            fk_hashes,
            outcome: Outcome::Pending,
        }
    }

    /// Whether the row is still on its way to the sink.
    pub(crate) fn is_pending(&self) -> bool {
        matches!(self.outcome, Outcome::Pending)
    }
}
