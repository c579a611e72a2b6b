//! What a cast to a PostgreSQL character type of bounded length keeps ([`Column::pg_type`]):
//! PostgreSQL cuts a longer value short on an explicit cast (`varchar(n)`, `char(n)`, …),
//! without an error, so [`Registry::new`] refuses a spec whose column could lose characters
//! that way (the check is in `spec.rs`; the lengths are here).
//!
//! [`Column::pg_type`]: crate::Column::pg_type
//! [`Registry::new`]: crate::Registry::new

use crate::spec::Kind;

/// What a bounded cast keeps: characters (`varchar(n)`, `char(n)`, …) or bytes (`"char"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kept {
    /// At most this many characters.
    Chars(usize),
    /// At most this many bytes (of UTF-8).
    Bytes(usize),
}

impl Kept {
    /// How many units it keeps.
    pub(crate) fn len(self) -> usize {
        match self {
            Kept::Chars(n) | Kept::Bytes(n) => n,
        }
    }

    /// The unit's name, for a problem's text.
    pub(crate) fn unit(self) -> &'static str {
        match self {
            Kept::Chars(1) => "character",
            Kept::Chars(_) => "characters",
            Kept::Bytes(1) => "byte",
            Kept::Bytes(_) => "bytes",
        }
    }

    /// The most a value of `kind` can take as text, in this cast's unit.
    pub(crate) fn longest(self, kind: &Kind) -> usize {
        match (self, kind) {
            // A character is at most 4 bytes of UTF-8.
            (Kept::Bytes(_), Kind::Text { max_chars }) => max_chars.saturating_mul(4),
            (Kept::Bytes(_), Kind::Enum(values)) => {
                values.iter().map(|v| v.len()).max().unwrap_or(0)
            }
            (_, kind) => longest_text(kind),
        }
    }
}

/// The most characters a value of `kind` can take as text: what a cast to a bounded
/// character type must keep. (Numbers, dates and UUIDs are ASCII: as many bytes.)
fn longest_text(kind: &Kind) -> usize {
    match kind {
        Kind::Text { max_chars } => *max_chars,
        Kind::Int { min, max } => min.to_string().len().max(max.to_string().len()),
        // `Wed Dec 17 1997` (DateStyle Postgres); ISO, SQL and German are 10.
        Kind::Date => 15,
        Kind::Uuid => 36,
        Kind::Enum(values) => values.iter().map(|v| v.chars().count()).max().unwrap_or(0),
    }
}

/// What a cast to `pg_type` keeps, when it is a character type of bounded length:
/// PostgreSQL truncates a longer value on an explicit cast, without an error. `None` for any
/// other type (`text`, `varchar` without a length, an enum, an array: a scalar cast to an
/// array is an error, not a cut).
pub(crate) fn cast_length(pg_type: &str) -> Option<Kept> {
    let t: String = pg_type
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    let t = t.strip_prefix("pg_catalog.").unwrap_or(&t);
    // `"char"`, the internal type, keeps one byte (a character of two or more bytes is cut
    // inside it).
    if t == "\"char\"" {
        return Some(Kept::Bytes(1));
    }
    // Bare `char`, `character`, `nchar` and `national character` are `character(1)`.
    if matches!(
        t,
        "char" | "character" | "nchar" | "nationalchar" | "nationalcharacter"
    ) {
        return Some(Kept::Chars(1));
    }
    [
        "charactervarying(",
        "charvarying(",
        "nationalcharactervarying(",
        "nationalcharvarying(",
        "ncharvarying(",
        "nvarchar(",
        "varchar(",
        "nationalcharacter(",
        "nationalchar(",
        "character(",
        "nchar(",
        "char(",
        "bpchar(",
    ]
    .iter()
    .find_map(|prefix| t.strip_prefix(prefix))
    .and_then(|rest| rest.strip_suffix(')'))
    .and_then(|n| n.parse().ok())
    .map(Kept::Chars)
}

#[cfg(test)]
mod tests {
    use crate::spec::{Column, KeyPart, RecordSpec, Registry};

    #[test]
    fn a_cast_that_would_cut_values_short_is_refused() {
        let spec = |column: Column| {
            RecordSpec::new("note", "notes")
                .column(Column::uuid("id").required())
                .column(column)
                .natural_key([KeyPart::exact("id")])
        };
        for (column, shown) in [
            (Column::text("name").pg_type("varchar(50)"), "up to 1000"),
            (
                Column::text("name")
                    .max_chars(60)
                    .pg_type("character varying (50)"),
                "up to 60",
            ),
            (
                Column::text("name").max_chars(8).pg_type("char(5)"),
                "up to 8",
            ),
            (
                Column::text("name").max_chars(8).pg_type("BPCHAR(5)"),
                "up to 8",
            ),
            (
                Column::text("name").max_chars(2).pg_type("character"),
                "up to 2",
            ),
            (
                Column::text("name").max_chars(1).pg_type("\"char\""),
                "keeps 1 byte but the column accepts values of up to 4",
            ),
            (
                Column::one_of("name", &["a", "é"]).pg_type("\"char\""),
                "up to 2",
            ),
            (
                Column::text("name")
                    .max_chars(8)
                    .pg_type("national character varying(5)"),
                "up to 8",
            ),
            (
                Column::text("name").max_chars(8).pg_type("NCHAR(5)"),
                "up to 8",
            ),
            (
                Column::text("name")
                    .max_chars(2)
                    .pg_type("national character"),
                "up to 2",
            ),
            (
                Column::one_of("name", &["short", "longer"]).pg_type("varchar(5)"),
                "up to 6",
            ),
            (
                Column::int("name").range(-100, 5).pg_type("varchar(3)"),
                "up to 4",
            ),
            (
                Column::uuid("name").pg_type("pg_catalog.varchar(32)"),
                "up to 36",
            ),
        ] {
            let cast = column.pg_cast().unwrap_or_default();
            let e = Registry::new([spec(column)]).unwrap_err().to_string();
            assert!(e.contains("column name") && e.contains(cast), "{e}");
            assert!(e.contains(shown), "{e}");
        }
        for column in [
            Column::text("name").max_chars(50).pg_type("varchar(50)"),
            Column::text("name").max_chars(5).pg_type("char(5)"),
            Column::text("name").pg_type("varchar"),
            Column::text("name").pg_type("bpchar"),
            Column::text("name").pg_type("text"),
            Column::text("name").pg_type("citext"),
            Column::one_of("name", &["short", "longer"]).pg_type("varchar(6)"),
            Column::int("name").range(-99, 999).pg_type("varchar(3)"),
            Column::date("name").pg_type("varchar(15)"),
            Column::one_of("name", &["a", "b"]).pg_type("\"char\""),
            Column::text("name").max_chars(5).pg_type("nvarchar(5)"),
        ] {
            assert!(Registry::new([spec(column.clone())]).is_ok(), "{column:?}");
        }
    }
}
