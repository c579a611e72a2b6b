//! What every source yields, whatever its format: records of raw values, or the lines that
//! could not be parsed into one, and the limits that bound a record.

use std::sync::Arc;

/// Largest record accepted, in bytes: an NDJSON line, a JSON array element, or a CSV row's
/// field data; a longer one is a rejection (read to its end, not kept), so one broken
/// record cannot exhaust memory.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// The field that names a record's type in NDJSON, JSON and (optionally) CSV input.
pub const TYPE_FIELD: &str = "type";

/// A field's value as read, before validation.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RawValue {
    /// Absent, `null` or an empty CSV field.
    Null,
    /// A string (every CSV field is one).
    Text(String),
    /// A JSON number.
    Number(serde_json::Number),
    /// A JSON boolean.
    Bool(bool),
    /// A JSON array or object, which no column accepts.
    Nested,
}

impl From<serde_json::Value> for RawValue {
    fn from(v: serde_json::Value) -> Self {
        match v {
            serde_json::Value::Null => RawValue::Null,
            serde_json::Value::String(s) => RawValue::Text(s),
            serde_json::Value::Number(n) => RawValue::Number(n),
            serde_json::Value::Bool(b) => RawValue::Bool(b),
            _ => RawValue::Nested,
        }
    }
}

/// One record as read: its line, its type name and its fields.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord {
    pub(super) line: u64,
    pub(super) type_name: Option<String>,
    pub(super) fields: Vec<(Arc<str>, RawValue)>,
}

impl RawRecord {
    /// A record from parts (for custom sources and tests).
    #[must_use]
    pub fn new(line: u64, type_name: Option<String>, fields: Vec<(Arc<str>, RawValue)>) -> Self {
        Self {
            line,
            type_name,
            fields,
        }
    }

    /// The physical line the record starts on (1-based; a CSV header is line 1).
    #[must_use]
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The record's type name, if the record or the source gave one.
    #[must_use]
    pub fn type_name(&self) -> Option<&str> {
        self.type_name.as_deref()
    }

    /// The value of field `name` (`None` when the field is absent).
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&RawValue> {
        self.fields
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| v)
    }

    /// The names of the record's fields, in the order read.
    pub(crate) fn field_names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(n, _)| &**n)
    }

    /// Takes the value of field `name` out of the record.
    pub(crate) fn take(&mut self, name: &str) -> Option<RawValue> {
        self.fields
            .iter_mut()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| std::mem::replace(v, RawValue::Null))
    }
}

/// What a source yields: a record, or a line that could not be parsed into one.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Item {
    /// A parsed record.
    Record(RawRecord),
    /// A record that could not be parsed; the reason never quotes the input.
    Malformed {
        /// Line where the record starts.
        line: u64,
        /// What is wrong.
        reason: String,
    },
}

impl Item {
    /// The line where the record starts.
    pub(crate) fn line(&self) -> u64 {
        match self {
            Item::Record(r) => r.line,
            Item::Malformed { line, .. } => *line,
        }
    }
}

/// The line each of `items` starts on: what the sources' tests compare.
#[cfg(test)]
pub(super) fn lines(items: &[Item]) -> Vec<u64> {
    items.iter().map(Item::line).collect()
}
