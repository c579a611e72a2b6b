//! Where a double-quoted token stands for a value. SQLite reads `"…"` as a string when no
//! column has that name (its "double-quoted string literal" misfeature, on by default), so a
//! host on SQLite writing `WHERE last_name = "Núñez"` sends a name in a token that PostgreSQL,
//! and this lexer, call a quoted identifier. Such a token is masked where a value stands:
//! right after a comparison (`=`, `<>`, `!=`, `<`, `>`, `<=`, `>=`, `LIKE`, `ILIKE`, `GLOB`),
//! and as an item of a list opened by `IN (` or of a row of `VALUES (…), (…)`, unless a `.`
//! follows it (`= "vaccinations"."student_id"`: a qualifier, as ORMs write joins). A quoted
//! name anywhere else (a column, a table, an alias) is kept. In PostgreSQL a
//! quoted identifier in those places is a column compared or listed: masking it loses a name,
//! never a value. [`crate::sanitize_sql`] and the log scrubber (`scrub/sql.rs`) both ask this
//! one tracker, so the log path masks at least what the sanitiser does.

use super::lexer::{Kind, Lexer};

/// What the last significant token (not a blank or a comment) was, as far as a quoted token
/// that follows it is concerned.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Last {
    /// A comparison operator or `LIKE`/`ILIKE`/`GLOB`.
    Compare,
    /// The keyword `IN`.
    In,
    /// The keyword `VALUES`.
    Values,
    /// `(`.
    Open,
    /// `,`.
    Comma,
    /// `)`.
    Close,
    /// Anything else.
    Other,
}

/// The tracker: fed every significant token in order ([`QuotedValues::see`]), it tells
/// whether a quoted token met next stands for a value ([`QuotedValues::value_here`]).
pub(crate) struct QuotedValues {
    last: Last,
    /// Parenthesis depth (saturating).
    depth: u32,
    /// Bit `d` set: the group open at depth `d` (1 to 63) is a value list.
    lists: u64,
    /// The depth a `VALUES` clause stands at, while its rows go on.
    values_at: Option<u32>,
}

impl QuotedValues {
    pub(crate) fn new() -> Self {
        Self {
            last: Last::Other,
            depth: 0,
            lists: 0,
            values_at: None,
        }
    }

    /// Whether a quoted token at this point stands where a value does.
    pub(crate) fn value_here(&self) -> bool {
        match self.last {
            Last::Compare => true,
            Last::Open | Last::Comma => self.in_list(),
            _ => false,
        }
    }

    /// Whether the quoted token just read, `rest` reading on after it, is a value to mask: it
    /// stands where a value does ([`QuotedValues::value_here`], asked before it was seen) and
    /// no `.` follows it.
    pub(crate) fn masks(value_here: bool, sql: &str, rest: &Lexer<'_>) -> bool {
        value_here
            && rest
                .clone()
                .find(|t| !matches!(t.kind, Kind::Space | Kind::Comment))
                .is_none_or(|t| sql.get(t.start..t.end) != Some("."))
    }

    fn in_list(&self) -> bool {
        self.depth < 64 && self.lists & (1u64 << self.depth) != 0
    }

    /// Takes in the next significant token.
    pub(crate) fn see(&mut self, kind: Kind, text: &str) {
        self.last = match (kind, text) {
            (Kind::Punct, "(") => {
                let row = self.values_at == Some(self.depth)
                    && matches!(self.last, Last::Values | Last::Comma);
                let list = self.last == Last::In || row;
                self.depth = self.depth.saturating_add(1);
                if self.depth < 64 {
                    let bit = 1u64 << self.depth;
                    self.lists = if list {
                        self.lists | bit
                    } else {
                        self.lists & !bit
                    };
                }
                Last::Open
            }
            (Kind::Punct, ")") => {
                if self.depth < 64 {
                    self.lists &= !(1u64 << self.depth);
                }
                self.depth = self.depth.saturating_sub(1);
                if self.values_at.is_some_and(|d| d > self.depth) {
                    self.values_at = None;
                }
                Last::Close
            }
            (Kind::Punct, ",") => Last::Comma,
            (Kind::Punct, ";") => {
                *self = Self::new();
                Last::Other
            }
            (Kind::Op, "=" | "<>" | "!=" | "<" | ">" | "<=" | ">=" | "==") => Last::Compare,
            (Kind::Word, w) if is_any(w, &["LIKE", "ILIKE", "GLOB"]) => Last::Compare,
            (Kind::Word, w) if w.eq_ignore_ascii_case("IN") => Last::In,
            (Kind::Word, w) if w.eq_ignore_ascii_case("VALUES") => {
                self.values_at = Some(self.depth);
                Last::Values
            }
            (Kind::Word, _) => {
                // A word at the clause's own depth (`ON CONFLICT`, `RETURNING`) ends it.
                if self.values_at == Some(self.depth) {
                    self.values_at = None;
                }
                Last::Other
            }
            _ => Last::Other,
        };
    }
}

fn is_any(word: &str, of: &[&str]) -> bool {
    of.iter().any(|k| word.eq_ignore_ascii_case(k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sanitize::lexer::Lexer;

    /// The quoted tokens of `sql` that stand for values.
    fn values(sql: &str) -> Vec<&str> {
        let mut q = QuotedValues::new();
        let mut found = Vec::new();
        let mut lexer = Lexer::new(sql);
        while let Some(t) = lexer.next() {
            if matches!(t.kind, Kind::Space | Kind::Comment) {
                continue;
            }
            let text = &sql[t.start..t.end];
            if t.kind == Kind::QuotedIdent && QuotedValues::masks(q.value_here(), sql, &lexer) {
                found.push(text);
            }
            q.see(t.kind, text);
        }
        found
    }

    #[test]
    fn a_quoted_token_where_a_value_stands_is_found_and_a_name_is_not() {
        assert_eq!(
            values(r#"SELECT "id" FROM "students" WHERE "last_name" = "Ann" AND x <> "Bo""#),
            [r#""Ann""#, r#""Bo""#]
        );
        assert_eq!(
            values(r#"SELECT * FROM t WHERE name LIKE "An%" OR name NOT GLOB "B*""#),
            [r#""An%""#, r#""B*""#]
        );
        assert_eq!(
            values(r#"SELECT * FROM t WHERE "id" IN ("a", "b") AND f("c", "d") > 0"#),
            [r#""a""#, r#""b""#]
        );
        assert_eq!(
            values(
                r#"INSERT INTO "t" ("id", "name") VALUES ("x", "Ann"), ("y", lower("Bo")) ON CONFLICT ("id") DO NOTHING"#
            ),
            [r#""x""#, r#""Ann""#, r#""y""#]
        );
        // Names only: a join, an alias, a qualified column, a subquery's list, a qualifier
        // after `=` and in a list (as ORMs write them).
        assert!(values(
            r#"SELECT s."id" AS "Student" FROM "students" s JOIN v ON s."id" = v."student_id" WHERE s.id IN (SELECT "id" FROM t)"#
        )
        .is_empty());
        assert!(values(
            r#"SELECT "students"."id" FROM "students" INNER JOIN "vaccinations" ON "students"."id" = "vaccinations" . "student_id" WHERE "students"."id" IN ("vaccinations"."id")"#
        )
        .is_empty());
        // A statement's end resets the clause.
        assert!(values(r#"INSERT INTO t VALUES (1); SELECT ("a") FROM t"#).is_empty());
    }
}
