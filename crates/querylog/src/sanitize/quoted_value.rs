//! Where a double-quoted token stands for a value. SQLite reads `"…"` as a string when no
//! column has that name (its "double-quoted string literal" misfeature, on by default), so a
//! host on SQLite writing `WHERE last_name = "Núñez"` sends a name in a token that PostgreSQL,
//! and this lexer, call a quoted identifier. Such a token is masked where a value stands:
//! right after a comparison (`=`, `<>`, `!=`, `<`, `>`, `<=`, `>=`, `LIKE`, `ILIKE`, `GLOB`,
//! `MATCH`, `REGEXP`, `IS`, `IS NOT`, `IS DISTINCT FROM`), an arithmetic or string operator
//! (`+`, `-`, `*` after an operand, `/`, `%`, `||`, `->`, `->>`), `BETWEEN` and its own `AND`,
//! `WHEN`, `THEN` and `ELSE`; and as an item of a list opened by `IN (`, of a row of
//! `VALUES (…), (…)`, of a function's arguments (`lower("Ann")`), of a parenthesis opened where
//! a value stands (`= ("Ann")`), or of any group more than 63 deep (fail closed); unless a `.`
//! follows it (`= "vaccinations"."student_id"`: a qualifier, as ORMs write joins). A quoted
//! name anywhere else (a table, after `SELECT *` too, a column selected, an alias, the lists of
//! `INSERT INTO t (…)`, `CREATE TABLE t (…)`, `CREATE VIEW v (…)`, `REFERENCES t (…)`,
//! `USING (…)`, `ON CONFLICT (…)`, a key) is kept. In PostgreSQL a quoted identifier in a
//! value's place is a column compared, listed or passed: masking it loses a name, never a
//! value. docs/querylog.md lists what is still kept. [`crate::sanitize_sql`] and the log
//! scrubber (`scrub/sql.rs`) both ask this one tracker, so the log path masks at least what
//! the sanitiser does.

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
    /// A word that may name a function: a `(` after it opens its arguments.
    Callee,
    /// The end of an operand that is not a word: a quoted name, a literal, a parameter (a
    /// `*` after it multiplies; elsewhere `*` is a wildcard).
    Operand,
    /// `IS`, `IS NOT`, `IS DISTINCT`: a value stands next, or `NOT`, `DISTINCT`, `FROM`.
    Is,
    /// `INTO`, `TABLE`, `REFERENCES`, `EXISTS`, `WITH`, `RECURSIVE` or `.`: the word after
    /// it names a table (or a column, a function of a schema), and a `(` after that word
    /// opens a list of names.
    NameNext,
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
    /// The depth of a `BETWEEN` whose `AND` has not come yet (an `AND` deeper down, in a
    /// subquery of its lower bound, is not it).
    between_at: Option<u32>,
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
            between_at: None,
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
        let value_here = self.value_here();
        self.see(t.kind, sql.get(t.start..t.end).unwrap_or_default());
        t.kind == Kind::QuotedIdent
            && value_here
            && sql
                .as_bytes()
                .get(t.end..)
                .and_then(|rest| rest.iter().find(|c| !c.is_ascii_whitespace()))
                != Some(&b'.')
    }

    /// Whether a value stands at the next token.
    fn value_here(&self) -> bool {
        match self.last {
            Last::Compare | Last::Is => true,
            Last::Open | Last::Comma => self.in_list(),
            _ => false,
        }
    }

    /// Whether the group open at this depth is a value list; past 63 groups deep, always
    /// (fail closed: a name lost, never a value).
    fn in_list(&self) -> bool {
        self.depth >= 64 || self.lists & (1u64 << self.depth) != 0
    }

    /// Takes in the next significant token.
    fn see(&mut self, kind: Kind, text: &str) {
        self.last = match (kind, text) {
            (Kind::Punct, "(") => {
                let row = self.values_at == Some(self.depth)
                    && matches!(self.last, Last::Values | Last::Comma);
                let list = matches!(self.last, Last::In | Last::Callee) || row || self.value_here();
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
                if self.between_at.is_some_and(|d| d > self.depth) {
                    self.between_at = None;
                }
                Last::Close
            }
            (Kind::Punct, ",") => Last::Comma,
            (Kind::Punct, ".") => Last::NameNext,
            (Kind::Punct, ";") => {
                *self = Self::new();
                Last::Other
            }
            // A backtick glued to an operator (``a`="x"``, MySQL's quoting) is the lexer's
            // operator run; the operator is what is left.
            (Kind::Op, op) => match op.trim_matches('`') {
                // A wildcard (`SELECT *`, `t.*`, `count(*)`) unless it follows an operand.
                "*" if !matches!(self.last, Last::Operand | Last::Callee | Last::Close) => {
                    Last::Other
                }
                "=" | "<>" | "!=" | "<" | ">" | "<=" | ">=" | "==" | "+" | "-" | "*" | "/"
                | "%" | "||" | "->" | "->>" => Last::Compare,
                _ => Last::Other,
            },
            (Kind::Word, w) => self.word(w),
            (Kind::QuotedIdent | Kind::Str | Kind::Number | Kind::Param, _) => Last::Operand,
            _ => Last::Other,
        };
    }

    /// What a word makes of the next token. One match on the word upper-cased (compiled to a
    /// dispatch on its length), not a scan of keyword lists: ORM statements, every name
    /// quoted, run this for each of their words.
    fn word(&mut self, w: &str) -> Last {
        let mut buf = [0u8; 16];
        // Longer than every keyword below: `b""`.
        let kw = super::upper(w.as_bytes(), &mut buf).unwrap_or_default();
        if kw == b"VALUES" {
            self.values_at = Some(self.depth);
            return Last::Values;
        }
        // A word at the clause's own depth (`ON CONFLICT`, `RETURNING`) ends it.
        if self.values_at == Some(self.depth) {
            self.values_at = None;
        }
        match (self.last, kw) {
            // `IS NOT`, `IS DISTINCT FROM`: still a comparison.
            (Last::Is, b"NOT" | b"DISTINCT") => return Last::Is,
            (Last::Is, b"FROM") => return Last::Compare,
            _ => {}
        }
        match kw {
            b"IS" => Last::Is,
            // Only a BETWEEN's own AND (not one in a subquery of its lower bound).
            b"AND" if self.between_at == Some(self.depth) => {
                self.between_at = None;
                Last::Compare
            }
            b"BETWEEN" => {
                self.between_at = Some(self.depth);
                Last::Compare
            }
            b"IN" => Last::In,
            b"LIKE" | b"ILIKE" | b"GLOB" | b"MATCH" | b"REGEXP" | b"WHEN" | b"THEN" | b"ELSE" => {
                Last::Compare
            }
            // The next word names a table, a CTE or a view.
            b"INTO" | b"TABLE" | b"REFERENCES" | b"EXISTS" | b"WITH" | b"RECURSIVE" | b"VIEW" => {
                Last::NameNext
            }
            _ if self.last == Last::NameNext => Last::Other,
            // Keywords a `(` may follow that open no function's arguments: a subquery, an
            // expression in parentheses, a list of names (`USING`, `ON CONFLICT`, `PRIMARY
            // KEY`, `UNIQUE`), a window or a filter.
            b"SELECT" | b"FROM" | b"WHERE" | b"AND" | b"OR" | b"NOT" | b"ON" | b"JOIN" | b"AS"
            | b"USING" | b"CONFLICT" | b"KEY" | b"UNIQUE" | b"OVER" | b"FILTER" | b"CHECK"
            | b"CASE" | b"BY" | b"HAVING" | b"LATERAL" | b"RETURNING" | b"SET" | b"UNION"
            | b"ALL" | b"EXCEPT" | b"INTERSECT" | b"DISTINCT" | b"MATERIALIZED" | b"END"
            | b"ANY" | b"SOME" | b"ARRAY" | b"ROW" | b"DO" | b"UPDATE" | b"DELETE" | b"INSERT"
            | b"CREATE" | b"INDEX" => Last::Other,
            _ => Last::Callee,
        }
    }
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
            [r#""a""#, r#""b""#, r#""c""#, r#""d""#]
        );
        assert_eq!(
            values(
                r#"INSERT INTO "t" ("id", "name") VALUES ("x", "Ann"), ("y", lower("Bo")) ON CONFLICT ("id") DO NOTHING"#
            ),
            [r#""x""#, r#""Ann""#, r#""y""#, r#""Bo""#]
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

    #[test]
    fn every_other_place_a_value_stands_is_found() {
        let found = |sql| values(sql).len();
        // A function's arguments, nested calls and a parenthesis where a value stands.
        assert_eq!(
            found(r#"SELECT * FROM t WHERE lower(name) = lower("Ann")"#),
            1
        );
        assert_eq!(found(r#"SELECT coalesce("Ann", upper(trim("Bo")))"#), 2);
        assert_eq!(found(r#"SELECT * FROM t WHERE name = ("Ann")"#), 1);
        assert_eq!(found(r#"SELECT CAST("1990-04-01" AS DATE)"#), 1);
        // Operators, BETWEEN ... AND, IS [NOT | DISTINCT FROM], CASE.
        assert_eq!(found(r#"SELECT name || "Ann", n + "1", j ->> "name""#), 3);
        assert_eq!(
            found(r#"SELECT * FROM t WHERE born BETWEEN "2010-01-01" AND "2012-12-31" AND "ok""#),
            2
        );
        assert_eq!(
            found(r#"SELECT * FROM t WHERE a IS "x" OR b IS NOT "y" OR c IS DISTINCT FROM "z""#),
            3
        );
        assert_eq!(
            found(r#"SELECT CASE "status" WHEN "active" THEN "Ann" ELSE "Bo" END FROM t"#),
            3
        );
        // MATCH, REGEXP; a backtick glued to the operator; a BETWEEN whose lower bound is a
        // subquery with an AND of its own; lists nested past 63 groups (fail closed).
        assert_eq!(
            found(r#"SELECT * FROM notes WHERE notes MATCH "Ann" OR b REGEXP "B.*""#),
            2
        );
        assert_eq!(found(r#"SELECT * FROM t WHERE `last_name`="Ann""#), 1);
        assert_eq!(
            found(r#"SELECT * FROM t WHERE d BETWEEN (SELECT 1 WHERE a = 1 AND b = 2) AND "Ann""#),
            1
        );
        let deep = format!("SELECT {}\"Ann\"{}", "f(".repeat(70), ")".repeat(70));
        assert_eq!(found(&deep), 1);
        // `*` multiplies after an operand.
        assert_eq!(found(r#"SELECT 2 * "3", "a" * "4", f(x) * "5""#), 3);
    }

    #[test]
    fn lists_of_names_stay_names() {
        for sql in [
            r#"INSERT INTO t ("id", "name") SELECT "id", "name" FROM u"#,
            r#"INSERT INTO app.t ("id") VALUES ($1) ON CONFLICT ("id") DO NOTHING"#,
            r#"CREATE TABLE IF NOT EXISTS t ("id" INT PRIMARY KEY, "sid" INT REFERENCES s ("id"), UNIQUE ("sid"))"#,
            r#"SELECT "id" FROM a JOIN b USING ("id") WHERE EXISTS (SELECT "id" FROM c)"#,
            r#"WITH w ("id") AS (SELECT "id" FROM t) SELECT rank() OVER (PARTITION BY "sid" ORDER BY "id") FROM w"#,
            r#"SELECT count(*) FILTER (WHERE "ok") FROM t GROUP BY "sid" ORDER BY "sid""#,
            // A wildcard is no operator: the table after it stays a name.
            r#"SELECT * FROM "students" WHERE "id" = $1"#,
            r#"SELECT "t".* FROM "t"; INSERT INTO "a" SELECT * FROM "u""#,
            r#"SELECT * FROM (SELECT "id", "name" FROM "s") AS "x""#,
            r#"SELECT * FROM t WHERE a IS NULL AND "b" IS NOT NULL"#,
            r#"CREATE VIEW v ("a", "b") AS SELECT "a", "b" FROM t"#,
        ] {
            assert!(values(sql).is_empty(), "{sql}: {:?}", values(sql));
        }
    }
}
