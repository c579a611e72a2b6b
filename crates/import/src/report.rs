//! The import report: what happened to every row, as JSON.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

/// Counts of one record type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeCounts {
    /// Rows of this type read.
    pub total: u64,
    /// Rows inserted (in a dry run: that would have been inserted).
    pub imported: u64,
    /// Rows skipped as duplicates.
    pub duplicates: u64,
    /// Rows refused.
    pub rejected: u64,
}

/// Why one row was refused. The reason names the problem, never the value (it may be PHI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// Physical line where the row starts (a CSV header is line 1).
    pub line: u64,
    /// The row's type, when known.
    #[serde(rename = "type")]
    pub type_name: Option<String>,
    /// The field at fault, when one is.
    pub field: Option<String>,
    /// What is wrong, e.g. `not a date (YYYY-MM-DD)`, `unknown student_id`.
    pub reason: String,
}

/// Something about the input that refused no row but should not pass in silence: a CSV
/// column no record type has (its values are ignored), a JSON array cut short or followed by
/// more data. Like a [`Rejection`], it names the line and the field, never a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// Physical line it concerns (a CSV header is line 1).
    pub line: u64,
    /// The column it concerns, when one.
    pub field: Option<String>,
    /// What was noticed, e.g. `unknown column: its values are ignored`.
    pub reason: String,
}

/// What a duplicate row duplicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuplicateOf {
    /// An earlier row of the same input, by line; serialised as the number.
    Line(u64),
    /// A row already in the database; serialised as `"existing"`.
    Existing,
}

impl Serialize for DuplicateOf {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            DuplicateOf::Line(l) => s.serialize_u64(*l),
            DuplicateOf::Existing => s.serialize_str("existing"),
        }
    }
}

impl<'de> Deserialize<'de> for DuplicateOf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DuplicateOf;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a line number or \"existing\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DuplicateOf, E> {
                Ok(DuplicateOf::Line(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DuplicateOf, E> {
                if v == "existing" {
                    Ok(DuplicateOf::Existing)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A row skipped because its natural key was already seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicateRow {
    /// Line of the skipped row.
    pub line: u64,
    /// The earlier line it repeats, or `"existing"` for a row already in the database.
    pub of: DuplicateOf,
}

/// The outcome of an import. `imported + duplicates + rejected == total`, always.
///
/// `rejected` counts rows; `rejections` may hold several entries for one row (one per bad
/// field). The lists are bounded ([`ImportOptions::max_listed`](crate::ImportOptions::max_listed),
/// default [`DEFAULT_MAX_LISTED`](crate::DEFAULT_MAX_LISTED)): they keep the entries of the
/// first lines, the counts stay exact, and `truncated` says when an entry was left out
/// (`rejections_not_listed`, `duplicate_rows_not_listed` say how many). When an all-or-nothing import is rolled back, `imported` is 0 and the valid rows
/// count as rejected too (they have no entry of their own; `rolled_back` is true).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    /// Rows read.
    pub total: u64,
    /// Rows inserted (in a dry run: that would have been inserted).
    pub imported: u64,
    /// Rows skipped as duplicates (in the input or already in the database).
    pub duplicates: u64,
    /// Rows refused.
    pub rejected: u64,
    /// The same counts per record type (rows of unknown type are only in the totals).
    pub by_type: BTreeMap<String, TypeCounts>,
    /// The problems found, in line order, at most `max_listed` of them.
    pub rejections: Vec<Rejection>,
    /// The duplicate rows, in line order, at most `max_listed` of them.
    pub duplicate_rows: Vec<DuplicateRow>,
    /// What refused no row but is worth knowing (unknown CSV columns, a JSON array cut
    /// short), at most `max_listed` of them.
    #[serde(default)]
    pub warnings: Vec<Warning>,
    /// Whether any list above was cut at `max_listed` entries.
    #[serde(default)]
    pub truncated: bool,
    /// Entries of `rejections` left out of the list.
    #[serde(default)]
    pub rejections_not_listed: u64,
    /// Entries of `duplicate_rows` left out of the list.
    #[serde(default)]
    pub duplicate_rows_not_listed: u64,
    /// SQL statements sent, `BEGIN` and `COMMIT` included.
    pub queries: u64,
    /// Wall time of the import, in milliseconds.
    pub elapsed_ms: u64,
    /// Whether this was a dry run (validation only, nothing written).
    pub dry_run: bool,
    /// Whether an all-or-nothing import was rolled back because of rejections.
    pub rolled_back: bool,
    /// Whether reading stopped early because the maximum number of errors was exceeded;
    /// `total` then counts the rows read until then.
    pub stopped_early: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_of_serialises_as_line_or_existing() {
        let rows = vec![
            DuplicateRow {
                line: 5,
                of: DuplicateOf::Line(2),
            },
            DuplicateRow {
                line: 6,
                of: DuplicateOf::Existing,
            },
        ];
        let json = serde_json::to_string(&rows).unwrap();
        assert_eq!(json, r#"[{"line":5,"of":2},{"line":6,"of":"existing"}]"#);
        let back: Vec<DuplicateRow> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, rows);
    }

    #[test]
    fn rejection_uses_type_as_field_name() {
        let r = Rejection {
            line: 3,
            type_name: Some("allergy".into()),
            field: Some("severity".into()),
            reason: "not one of MILD".into(),
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["type"], "allergy");
        assert_eq!(v["line"], 3);
    }
}
