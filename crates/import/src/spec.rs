//! Record-type descriptions: what a type's table, columns, keys and references are.
//!
//! A [`RecordSpec`] is data, not code: the importer validates, de-duplicates and inserts any
//! type described this way. Names and SQL fragments are `&'static str` on purpose: they are
//! spliced into SQL, so they must come from the program, never from the input file.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use uuid::Uuid;

use crate::error::SpecError;
use crate::pg_cast::cast_length;

/// Maximum length of a text column, in characters, unless a spec says otherwise.
pub const DEFAULT_MAX_TEXT: usize = 1000;

/// The kind of a column: how a raw field is checked and converted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// Text of at most `max_chars` characters, stored exactly as given.
    Text {
        /// Maximum length in characters.
        max_chars: usize,
    },
    /// A whole number in `min..=max`.
    Int {
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// A calendar date written `YYYY-MM-DD`, in years 0001 to 9999 (PostgreSQL would store
    /// year 0000 as 1 BC); [`Column::not_in_future`] also refuses a date that has begun
    /// nowhere on Earth yet.
    Date,
    /// A UUID in any form [`Uuid::parse_str`] accepts.
    Uuid,
    /// One of a fixed set of values, matched ignoring case and surrounding spaces and stored
    /// in the spelling given here.
    Enum(&'static [&'static str]),
}

impl Kind {
    /// The PostgreSQL array element type the importer binds values of this kind as.
    #[cfg(feature = "postgres")]
    pub(crate) fn pg_base(&self) -> &'static str {
        match self {
            Kind::Text { .. } | Kind::Enum(_) => "text",
            Kind::Int { .. } => "int8",
            Kind::Date => "date",
            Kind::Uuid => "uuid",
        }
    }
}

/// A typed, validated value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Value {
    /// No value (an optional field left empty).
    Null,
    /// Text or an enum value.
    Text(String),
    /// A whole number.
    Int(i64),
    /// A date.
    Date(NaiveDate),
    /// A UUID.
    Uuid(Uuid),
}

/// One column of a record type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    name: &'static str,
    kind: Kind,
    required: bool,
    not_in_future: bool,
    pg_type: Option<&'static str>,
}

impl Column {
    fn new(name: &'static str, kind: Kind) -> Self {
        Self {
            name,
            kind,
            required: false,
            not_in_future: false,
            pg_type: None,
        }
    }

    /// A text column of at most [`DEFAULT_MAX_TEXT`] characters.
    #[must_use]
    pub fn text(name: &'static str) -> Self {
        Self::new(
            name,
            Kind::Text {
                max_chars: DEFAULT_MAX_TEXT,
            },
        )
    }

    /// A whole-number column accepting any `i64`; narrow it with [`Column::range`].
    #[must_use]
    pub fn int(name: &'static str) -> Self {
        Self::new(
            name,
            Kind::Int {
                min: i64::MIN,
                max: i64::MAX,
            },
        )
    }

    /// A `YYYY-MM-DD` date column.
    #[must_use]
    pub fn date(name: &'static str) -> Self {
        Self::new(name, Kind::Date)
    }

    /// A UUID column.
    #[must_use]
    pub fn uuid(name: &'static str) -> Self {
        Self::new(name, Kind::Uuid)
    }

    /// A column whose value is one of `values`.
    #[must_use]
    pub fn one_of(name: &'static str, values: &'static [&'static str]) -> Self {
        Self::new(name, Kind::Enum(values))
    }

    /// Makes the field required: missing, `null` or blank is a rejection.
    #[must_use]
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Sets the maximum length of a text column, in characters.
    #[must_use]
    pub fn max_chars(mut self, max_chars: usize) -> Self {
        if let Kind::Text { .. } = self.kind {
            self.kind = Kind::Text { max_chars };
        }
        self
    }

    /// Refuses a date in the future (`in the future`) in a date column: a date of birth, a
    /// day a vaccine was given. "Today" is the date in UTC+14, the easternmost time zone, so a
    /// date that has begun anywhere is accepted, whatever the sender's zone. No effect on a
    /// column of another kind.
    #[must_use]
    pub fn not_in_future(mut self) -> Self {
        if let Kind::Date = self.kind {
            self.not_in_future = true;
        }
        self
    }

    /// Restricts a whole-number column to `min..=max`.
    #[must_use]
    pub fn range(mut self, min: i64, max: i64) -> Self {
        if let Kind::Int { .. } = self.kind {
            self.kind = Kind::Int { min, max };
        }
        self
    }

    /// The PostgreSQL type the value is cast to on insert, when the column is not of the
    /// kind's natural type (`int4`, a `CREATE TYPE … AS ENUM`, `varchar(n)` …).
    ///
    /// PostgreSQL cuts a value short, without an error, when it is cast to a type of bounded
    /// length (`varchar(n)`, `character varying(n)`, `char(n)`, `character(n)`, `bpchar(n)`,
    /// bare `char`/`character`, which are one character, and `"char"`). So
    /// [`Registry::new`] refuses such a cast on a column whose values can be longer than `n`
    /// characters: a text column needs [`Column::max_chars`] of at most `n` (the default,
    /// [`DEFAULT_MAX_TEXT`], is longer than most), an enum column values of at most `n`, a
    /// whole-number column a [`Column::range`] whose bounds are written in at most `n`, a
    /// UUID 36 and a date 15 (its longest `DateStyle`, `Wed Dec 17 1997`).
    #[must_use]
    pub fn pg_type(mut self, pg_type: &'static str) -> Self {
        self.pg_type = Some(pg_type);
        self
    }

    /// The column (and field) name.
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The kind of the column.
    #[must_use]
    pub fn kind(&self) -> &Kind {
        &self.kind
    }

    /// Whether the field is required.
    #[must_use]
    pub fn is_required(&self) -> bool {
        self.required
    }

    /// Whether a date column refuses dates in the future ([`Column::not_in_future`]).
    #[must_use]
    pub fn is_not_in_future(&self) -> bool {
        self.not_in_future
    }

    /// The cast applied on insert into PostgreSQL, if any.
    #[must_use]
    pub fn pg_cast(&self) -> Option<&'static str> {
        self.pg_type
    }
}

/// How a natural-key part is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Normalise {
    /// Exactly as stored.
    Exact,
    /// Trimmed and lower-cased: `lower(trim(column))` in SQL. The database's unique index
    /// should use the same expression.
    LowerTrim,
}

/// One part of a natural key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPart {
    column: &'static str,
    normalise: Normalise,
}

impl KeyPart {
    /// A key part compared exactly.
    #[must_use]
    pub fn exact(column: &'static str) -> Self {
        Self {
            column,
            normalise: Normalise::Exact,
        }
    }

    /// A key part compared trimmed and case-insensitively.
    #[must_use]
    pub fn lower_trim(column: &'static str) -> Self {
        Self {
            column,
            normalise: Normalise::LowerTrim,
        }
    }

    /// The column.
    #[must_use]
    pub fn column(&self) -> &'static str {
        self.column
    }

    /// How it is compared.
    #[must_use]
    pub fn normalise(&self) -> Normalise {
        self.normalise
    }

    /// Normalises a value the way the SQL expression does.
    pub(crate) fn apply(&self, value: &Value) -> Value {
        match (self.normalise, value) {
            (Normalise::LowerTrim, Value::Text(s)) => Value::Text(s.trim().to_lowercase()),
            _ => value.clone(),
        }
    }
}

/// A foreign key: `column` must name an existing `table.referenced`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForeignKey {
    column: &'static str,
    table: &'static str,
    referenced: &'static str,
}

impl ForeignKey {
    /// The referencing column of this record type.
    #[must_use]
    pub fn column(&self) -> &'static str {
        self.column
    }

    /// The referenced table.
    #[must_use]
    pub fn table(&self) -> &'static str {
        self.table
    }

    /// The referenced column.
    #[must_use]
    pub fn referenced(&self) -> &'static str {
        self.referenced
    }
}

/// A record type: its name in the input, its table, columns, natural key and references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSpec {
    name: &'static str,
    table: &'static str,
    columns: Vec<Column>,
    natural_key: Vec<KeyPart>,
    key_filter: Option<&'static str>,
    foreign_keys: Vec<ForeignKey>,
    conflict_target: Option<&'static str>,
}

impl RecordSpec {
    /// A type named `name` in the input (`"type"` field, `--type`) stored in `table`.
    #[must_use]
    pub fn new(name: &'static str, table: &'static str) -> Self {
        Self {
            name,
            table,
            columns: Vec::new(),
            natural_key: Vec::new(),
            key_filter: None,
            foreign_keys: Vec::new(),
            conflict_target: None,
        }
    }

    /// Adds a column; the input field has the same name. Columns are inserted in this order.
    #[must_use]
    pub fn column(mut self, column: Column) -> Self {
        self.columns.push(column);
        self
    }

    /// Sets the natural key: two records with equal keys are the same record.
    #[must_use]
    pub fn natural_key(mut self, parts: impl IntoIterator<Item = KeyPart>) -> Self {
        self.natural_key = parts.into_iter().collect();
        self
    }

    /// A SQL predicate over the table's columns that existing rows must satisfy to count as
    /// duplicates (the partial unique index's `WHERE`, e.g. `active`).
    #[must_use]
    pub fn key_filter(mut self, predicate: &'static str) -> Self {
        self.key_filter = Some(predicate);
        self
    }

    /// Adds a foreign key: `column` must name an existing `table.referenced`, or one this
    /// import brought earlier.
    #[must_use]
    pub fn foreign_key(
        mut self,
        column: &'static str,
        table: &'static str,
        referenced: &'static str,
    ) -> Self {
        self.foreign_keys.push(ForeignKey {
            column,
            table,
            referenced,
        });
        self
    }

    /// The `ON CONFLICT` target, e.g. `(student_id, lower(trim(allergen))) WHERE active`.
    /// Without one the insert uses `ON CONFLICT DO NOTHING`, which covers every unique index.
    #[must_use]
    pub fn conflict_target(mut self, target: &'static str) -> Self {
        self.conflict_target = Some(target);
        self
    }

    /// The type's name in the input.
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The table.
    #[must_use]
    pub fn table(&self) -> &'static str {
        self.table
    }

    /// The columns, in insert order.
    #[must_use]
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The natural key.
    #[must_use]
    pub fn key(&self) -> &[KeyPart] {
        &self.natural_key
    }

    /// The predicate existing rows must satisfy to count as duplicates.
    #[must_use]
    pub fn filter(&self) -> Option<&'static str> {
        self.key_filter
    }

    /// The foreign keys.
    #[must_use]
    pub fn foreign_keys(&self) -> &[ForeignKey] {
        &self.foreign_keys
    }

    /// The `ON CONFLICT` target, if any.
    #[must_use]
    pub fn conflict(&self) -> Option<&'static str> {
        self.conflict_target
    }

    /// Index of a column by name.
    #[must_use]
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    fn check(&self) -> Result<(), SpecError> {
        let bad = |what: String| {
            Err(SpecError::Invalid {
                spec: self.name.to_owned(),
                what,
            })
        };
        if !is_ident(self.name) {
            return bad("type name is not an identifier".into());
        }
        if !is_table(self.table) {
            return bad(format!("table {:?} is not an identifier", self.table));
        }
        if self.columns.is_empty() {
            return bad("no columns".into());
        }
        let mut seen = HashSet::new();
        for c in &self.columns {
            if !is_ident(c.name) {
                return bad(format!("column {:?} is not an identifier", c.name));
            }
            if !seen.insert(c.name) {
                return bad(format!("column {} declared twice", c.name));
            }
            if let Kind::Int { min, max } = c.kind {
                if min > max {
                    return bad(format!("column {}: empty range", c.name));
                }
            }
            if let Some((cast, kept)) = c.pg_type.and_then(|t| cast_length(t).map(|n| (t, n))) {
                let longest = kept.longest(&c.kind);
                if longest > kept.len() {
                    return bad(format!(
                        "column {}: pg_type {cast} keeps {} {} but the column \
                         accepts values of up to {longest} (PostgreSQL would cut them short); \
                         narrow the column (max_chars, range) or widen the type",
                        c.name,
                        kept.len(),
                        kept.unit()
                    ));
                }
            }
        }
        if self.natural_key.is_empty() {
            return bad("no natural key".into());
        }
        for k in &self.natural_key {
            match self.column_index(k.column) {
                None => return bad(format!("key column {} is not a column", k.column)),
                Some(i) if !self.columns[i].required => {
                    return bad(format!("key column {} must be required", k.column))
                }
                Some(_) => {}
            }
        }
        for fk in &self.foreign_keys {
            if self.column_index(fk.column).is_none() {
                return bad(format!("foreign key column {} is not a column", fk.column));
            }
            if !is_table(fk.table) || !is_ident(fk.referenced) {
                return bad(format!("foreign key {}: bad referenced name", fk.column));
            }
        }
        Ok(())
    }
}

/// The longest header cell [`shown_name`] shows.
const MAX_SHOWN_NAME: usize = 64;

/// A CSV header cell as a report or an error may show it: only when it is spelt like a
/// column a [`RecordSpec`] can declare (a lowercase identifier) and at most
/// [`MAX_SHOWN_NAME`] bytes; else `None`, and the column is named by its position.
///
/// In a file without a header row the first data row is read as the header, so its cells
/// may be names or dates of birth; a report shows no value. An identifier cannot be a date or
/// a number (it begins with a letter or `_`), and a capitalised name is not one.
pub(crate) fn shown_name(cell: &str) -> Option<&str> {
    (cell.len() <= MAX_SHOWN_NAME && is_ident(cell)).then_some(cell)
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn is_table(s: &str) -> bool {
    match s.split_once('.') {
        Some((schema, table)) => is_ident(schema) && is_ident(table),
        None => is_ident(s),
    }
}

/// The record types one import accepts, ordered parents first.
///
/// Cheap to share behind an `Arc` (the importer does); `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Registry {
    specs: Vec<RecordSpec>,
    by_name: HashMap<&'static str, usize>,
}

impl Registry {
    /// Builds a registry from specs, ordering them so that a type comes after every type
    /// whose table it references (students before vaccinations).
    ///
    /// # Errors
    /// [`SpecError`] when a spec is malformed, two share a name, or references form a cycle.
    pub fn new(specs: impl IntoIterator<Item = RecordSpec>) -> Result<Self, SpecError> {
        let specs: Vec<RecordSpec> = specs.into_iter().collect();
        let mut names = HashSet::new();
        for s in &specs {
            s.check()?;
            if !names.insert(s.name) {
                return Err(SpecError::Invalid {
                    spec: s.name.to_owned(),
                    what: "type declared twice".into(),
                });
            }
        }
        // Topological order (Kahn), stable with respect to the given order.
        let mut ordered: Vec<RecordSpec> = Vec::with_capacity(specs.len());
        let mut rest = specs;
        while !rest.is_empty() {
            let ready = rest.iter().position(|s| {
                s.foreign_keys
                    .iter()
                    .all(|fk| fk.table == s.table || !rest.iter().any(|o| o.table == fk.table))
            });
            match ready {
                Some(i) => ordered.push(rest.remove(i)),
                None => {
                    return Err(SpecError::Cycle(
                        rest.iter()
                            .map(|s| s.name.to_owned())
                            .collect::<Vec<_>>()
                            .join(", "),
                    ))
                }
            }
        }
        let by_name = ordered
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name, i))
            .collect();
        Ok(Self {
            specs: ordered,
            by_name,
        })
    }

    /// The specs, parents first.
    #[must_use]
    pub fn specs(&self) -> &[RecordSpec] {
        &self.specs
    }

    /// The spec of type `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&RecordSpec> {
        self.index(name).map(|i| &self.specs[i])
    }

    /// Position of type `name` in [`Registry::specs`].
    #[must_use]
    pub fn index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_header_cell_spelt_like_a_column_name_is_shown() {
        for shown in ["id", "student_id", "_x", "icd10_code", &"a".repeat(64)] {
            assert_eq!(shown_name(shown), Some(shown));
        }
        let long = "a".repeat(65);
        for hidden in [
            "Ann",
            "Lee",
            "SSN",
            "2014-03-02",
            "20140302",
            "123",
            "1e10",
            "12.5",
            "a b",
            "née",
            "",
            &long,
        ] {
            assert_eq!(shown_name(hidden), None, "{hidden}");
        }
    }

    fn parent() -> RecordSpec {
        RecordSpec::new("parent", "parents")
            .column(Column::uuid("id").required())
            .natural_key([KeyPart::exact("id")])
    }

    fn child() -> RecordSpec {
        RecordSpec::new("child", "children")
            .column(Column::uuid("parent_id").required())
            .column(Column::text("name").required())
            .natural_key([KeyPart::exact("parent_id"), KeyPart::lower_trim("name")])
            .foreign_key("parent_id", "parents", "id")
    }

    #[test]
    fn parents_come_first() {
        let r = Registry::new([child(), parent()]).unwrap();
        assert_eq!(r.specs()[0].name(), "parent");
        assert_eq!(r.index("child"), Some(1));
    }

    #[test]
    fn rejects_bad_specs() {
        let e = Registry::new([parent(), parent()]).unwrap_err();
        assert!(e.to_string().contains("declared twice"), "{e}");
        let bad = RecordSpec::new("x", "x; drop table y").column(Column::text("a").required());
        assert!(Registry::new([bad]).is_err());
        let optional_key = RecordSpec::new("x", "x")
            .column(Column::text("a"))
            .natural_key([KeyPart::exact("a")]);
        assert!(Registry::new([optional_key])
            .unwrap_err()
            .to_string()
            .contains("required"));
    }

    #[test]
    fn detects_cycles() {
        let a = RecordSpec::new("a", "as_")
            .column(Column::uuid("b").required())
            .natural_key([KeyPart::exact("b")])
            .foreign_key("b", "bs", "id");
        let b = RecordSpec::new("b", "bs")
            .column(Column::uuid("a").required())
            .natural_key([KeyPart::exact("a")])
            .foreign_key("a", "as_", "id");
        assert!(matches!(Registry::new([a, b]), Err(SpecError::Cycle(_))));
    }
}
