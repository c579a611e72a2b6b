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

use super::lexer::{Kind, Token};

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

/// The tracker: fed every token in order ([`QuotedValues::masks`]), it tells whether each is
/// a double-quoted token standing for a value.
pub(crate) struct QuotedValues {
    /// Whether the text holds a `"` at all: if not, nothing is tracked (the sanitiser's hot
    /// path pays one byte scan, not a match per token).
    active: bool,
    last: Last,
    /// Parenthesis depth (saturating).
    depth: u32,
    /// Bit `d` set: the group open at depth `d` (1 to 63) is a value list.
    lists: u64,
    /// The depth a `VALUES` clause stands at, while its rows go on.
    values_at: Option<u32>,
}

impl QuotedValues {
    /// A tracker for `sql`.
    pub(crate) fn for_sql(sql: &str) -> Self {
        Self {
            active: sql.as_bytes().contains(&b'"'),
            ..Self::new()
        }
    }

    fn new() -> Self {
        Self {
            active: true,
            last: Last::Other,
            depth: 0,
            lists: 0,
            values_at: None,
        }
    }

    /// Takes in the next token of `sql` and says whether it is a double-quoted token to mask:
    /// one where a value stands, no `.` after it (blanks aside; a comment there counts as no
    /// `.`, so the token is masked). Blanks and comments are passed over (false).
    #[inline]
    pub(crate) fn masks(&mut self, t: &Token, sql: &str) -> bool {
        if !self.active || matches!(t.kind, Kind::Space | Kind::Comment) {
            return false;
        }
        let value_here = match self.last {
            Last::Compare => true,
            Last::Open | Last::Comma => self.in_list(),
            _ => false,
        };
        self.see(t.kind, sql.get(t.start..t.end).unwrap_or_default());
        t.kind == Kind::QuotedIdent
            && value_here
            && sql
                .as_bytes()
                .get(t.end..)
                .and_then(|rest| rest.iter().find(|c| !c.is_ascii_whitespace()))
                != Some(&b'.')
    }

    fn in_list(&self) -> bool {
        self.depth < 64 && self.lists & (1u64 << self.depth) != 0
    }

    /// Takes in the next significant token.
    fn see(&mut self, kind: Kind, text: &str) {
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
            // By length first: most words are none of these.
            (Kind::Word, w) if w.len() == 2 && w.eq_ignore_ascii_case("IN") => Last::In,
            (Kind::Word, w)
                if matches!(w.len(), 4 | 5) && is_any(w, &["LIKE", "ILIKE", "GLOB"]) =>
            {
                Last::Compare
            }
            (Kind::Word, w) if w.len() == 6 && w.eq_ignore_ascii_case("VALUES") => {
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
        let mut q = QuotedValues::for_sql(sql);
        let mut found = Vec::new();
        for t in Lexer::new(sql) {
            if q.masks(&t, sql) {
                found.push(&sql[t.start..t.end]);
            }
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
