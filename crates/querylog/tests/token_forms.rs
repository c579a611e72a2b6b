//! The token forms of PostgreSQL 16's scanner (`src/backend/parser/scan.l`) and
//! of its regression tests (`numerology.sql`, `int4.sql`, `numeric.sql`,
//! `strings.sql`, `errors`), one row each: what the sanitiser writes, and that
//! the log-line path (`scrub_log_line`, what the `scrub` example runs) masks the
//! same literals whether the statement comes alone or inside a log line.
//! `tests/properties.rs` puts the same forms into random statements.
//!
//! Run with `cargo test -p vitals-querylog --test token_forms`.
use vitals_querylog::{fingerprint, sanitize_sql, scrub_log_line, scrub_text};

mod common;
use common::{PREFIX, PREFIX_OUT};

/// One row: the input, the sanitiser's output, and the literal contents that
/// must not survive either path.
struct Row {
    sql: &'static str,
    sanitized: &'static str,
    secrets: &'static [&'static str],
}

const fn row(sql: &'static str, sanitized: &'static str, secrets: &'static [&'static str]) -> Row {
    Row {
        sql,
        sanitized,
        secrets,
    }
}

/// The table. Sources: scan.l's rules (`decinteger`, `numeric`, `real`, the
/// `*_junk` and `*fail` rules, `xq`/`xe`/`xus`/`xb`/`xh`/`xd`/`xui`/`xdolq`,
/// `quotecontinue`, `xc`), and the statements of the regression tests named.
const TABLE: &[Row] = &[
    // Decimal integers and `_` separators (int4.sql, numeric.sql).
    row("SELECT 42", "SELECT ?", &["42"]),
    row("SELECT 1_000_000, 1_2_3", "SELECT ?", &["000", "1_2_3"]),
    row("SELECT -2147483648", "SELECT ?", &["2147483648"]),
    row("SELECT 100__000", "SELECT ?", &["100"]),
    row("SELECT 100_", "SELECT ?", &["100"]),
    row("SELECT _100", "SELECT _100", &[]),
    // Hex, octal, binary (int4.sql, int8.sql).
    row("SELECT 0b100101, 0o273, 0x42F", "SELECT ?", &["100101", "273", "42F"]),
    row("SELECT -0o20000000000", "SELECT ?", &["20000000000"]),
    row("SELECT -0b10000000000000000000000000000000", "SELECT ?", &["10000000"]),
    row("SELECT 0x1EEE_FFFF, 0o2_73, 0b_10_0101", "SELECT ?", &["1EEE", "FFFF", "2_73", "0101"]),
    row("SELECT 0X7FFFFFFF, 0O17777777777, 0B1111", "SELECT ?", &["7FFFFFFF", "17777777777", "1111"]),
    // Reals and fractions (numeric.sql, float8.sql).
    row("SELECT 1_000.000_005, 1_000., .000_005, 1_000.5e0_1", "SELECT ?", &["000_005", "5e0_1"]),
    row("SELECT 1.5e-3, 2E+10, 3e4", "SELECT ?", &["1.5e", "2E", "3e4"]),
    row("SELECT .2 AS x", "SELECT ? AS x", &[".2"]),
    row("SELECT 0.5::float8", "SELECT ?::float8", &["0.5"]),
    row("SELECT x FROM t WHERE a[1:2] = ARRAY[3]", "SELECT x FROM t WHERE a[? : ?] = ARRAY[?]", &[]),
    // Junk forms scan.l rejects (numerology.sql): masked whole.
    row("SELECT 123abc", "SELECT ?", &["123", "abc"]),
    row("SELECT 0x0o", "SELECT ?", &["0x0o"]),
    row("SELECT 0.a", "SELECT ?", &["0.a"]),
    row("SELECT 0.0a", "SELECT ?", &["0.0a"]),
    row("SELECT .0a", "SELECT ?", &[".0a"]),
    row("SELECT 0.0e1a", "SELECT ?", &["0.0e1a", "e1a"]),
    row("SELECT 0.0e", "SELECT ?", &["0.0e"]),
    row("SELECT 0.0e+a", "SELECT ?", &["e+a"]),
    row("PREPARE p1 AS SELECT $1a", "prepare p1 AS SELECT ?", &["$1a"]),
    row("SELECT 0x", "SELECT ?", &["0x"]),
    row("SELECT 1e+", "SELECT ?", &["1e"]),
    row("SELECT 0b102", "SELECT ?", &["102"]),
    row(
        "SELECT * FROM foo WHERE bar=01234567-89ab-cdef-0123-456789abcdef",
        "SELECT * FROM foo WHERE bar = ?",
        &["01234567", "89ab", "cdef", "0123", "456789abcdef"],
    ),
    row(
        "SELECT * FROM foo WHERE id = deadbeef-0000-4000-8000-00000000cafe",
        "SELECT * FROM foo WHERE id = ?",
        &["deadbeef", "cafe", "4000"],
    ),
    // Parameters stay.
    row("SELECT $1, $2 FROM t WHERE a = $3", "SELECT $1 FROM t WHERE a = $3", &[]),
    // Standard strings (strings.sql).
    row("SELECT 'first line'", "SELECT ?", &["first"]),
    row("SELECT 'O''Brien'", "SELECT ?", &["Brien"]),
    row("SELECT 'first line'\n' - next line'\n\t' - third line' AS \"Three lines to one\"", "SELECT ? AS \"Three lines to one\"", &["first", "next", "third"]),
    row("SELECT 'first line' ' - next line' /* this comment is not allowed here */ ' - third line' AS \"Illegal comment within continuation\"", "SELECT ? AS \"Illegal comment within continuation\"", &["first", "next", "third", "allowed"]),
    row("SELECT a FROM t WHERE b LIKE'%secret%'", "SELECT a FROM t WHERE b LIKE ?", &["secret"]),
    row("SELECT CASE WHEN age<18 THEN'minor'ELSE'adult'END FROM p", "SELECT CASE WHEN age < ? THEN ? ELSE ? END FROM p", &["minor", "adult", "18"]),
    // Escape strings.
    row(r"SELECT E'd\u0061t\U00000061' AS data", "SELECT ? AS data", &["u0061", "U00000061"]),
    row(r"SELECT E'\\xDeAdBeEf'::bytea", "SELECT ?::bytea", &["DeAdBeEf"]),
    row(r"SELECT e'it\'s ann\\'", "SELECT ?", &["ann"]),
    row(r"SELECT E'\'' || E'ann'", "SELECT ? || ?", &["ann"]),
    // Unicode escapes, with and without UESCAPE (strings.sql).
    row(r#"SELECT U&'d\0061t\+000061' AS U&"d\0061t\+000061""#, r#"SELECT ? AS U&"d\0061t\+000061""#, &["'d"]),
    row(r#"SELECT U&'d!0061t\+000061' UESCAPE '!' AS U&"d*0061t\+000061" UESCAPE '*'"#, r#"SELECT ? UESCAPE ? AS U&"d*0061t\+000061" UESCAPE ?"#, &["d!0061"]),
    row(r#"SELECT U&' \' UESCAPE '!' AS "tricky""#, r#"SELECT ? UESCAPE ? AS "tricky""#, &[]),
    row(r"SELECT u&'wrong: \061'", "SELECT ?", &["wrong"]),
    // Bit and hex strings (bit.sql).
    row("SELECT B'0101', b'1', X'1F', x'fF'", "SELECT ?", &["0101", "1F", "fF"]),
    row(r"SELECT X'\1F'", "SELECT ?", &["1F"]),
    // National strings.
    row("SELECT N'ann lee', n'bob'", "SELECT ?", &["ann", "bob"]),
    // Dollar quotes.
    row("SELECT $$Ann's note$$", "SELECT ?", &["Ann", "note"]),
    row("SELECT $body$ x $$ y $body$, $a_1$z$a_1$", "SELECT ?", &["x $$ y"]),
    row("CREATE FUNCTION f() RETURNS int AS $fn$ SELECT 42 $fn$ LANGUAGE sql", "CREATE function f() returns int AS ? language sql", &["42"]),
    row("SELECT $q$multi\nline$q$", "SELECT ?", &["multi", "line"]),
    // Typed literals and booleans.
    row("SELECT DATE '2011-02-03', interval '1 day', TRUE, false", "SELECT DATE ?, INTERVAL ?", &["2011", "day"]),
    row("SELECT int4 '0b100101', '1'::int", "SELECT int4 ?, ?::int", &["100101"]),
    // Comments: `--` and nested `/* */` removed alike.
    row("SELECT a -- ann lee\nFROM t", "SELECT a FROM t", &["ann"]),
    row("SELECT a /* ann /* lee */ smith */ FROM t", "SELECT a FROM t", &["ann", "lee", "smith"]),
    row("SELECT a FROM t -- ann", "SELECT a FROM t", &["ann"]),
    row("SELECT a FROM t /* ann */", "SELECT a FROM t", &["ann"]),
    row("SELECT 1+/*ann*/2, a=--ann\n3", "SELECT ? + ?, a = ?", &["ann"]),
    // Quoted identifiers are kept as written.
    row("SELECT count(*) AS \"34567890\" FROM t", "SELECT count(*) AS \"34567890\" FROM t", &[]),
    row("SELECT \"First \"\"Name\"\"\" FROM \"Students\"", "SELECT \"First \"\"Name\"\"\" FROM \"Students\"", &[]),
    row("SELECT U&\"d\\0061t\" FROM t_1", "SELECT U&\"d\\0061t\" FROM t_1", &[]),
    // Dates and slashes inside SQL are numbers, not `[DATE]`.
    row("SELECT 1/2/34 AS r", "SELECT ? / ? / ? AS r", &["34"]),
    // Lists and rows collapse, casts included.
    row("SELECT * FROM t WHERE id IN ($1::uuid, $2::uuid, $3::uuid)", "SELECT * FROM t WHERE id IN ($1::uuid)", &[]),
    row("SELECT * FROM t WHERE id IN ('a'::text, 'b'::text)", "SELECT * FROM t WHERE id IN (?::text)", &[]),
    row("INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)", "INSERT INTO t(a, b) VALUES ($1)", &[]),
    // Fail closed: unterminated or ambiguous constructs mask the rest.
    row("SELECT 'ann lee", "SELECT ?", &["ann"]),
    row("SELECT $x$ ann lee", "SELECT ?", &["ann"]),
    row("SELECT a /* ann lee", "SELECT a ?", &["ann"]),
    row("SELECT \"ann lee", "SELECT ?", &["ann"]),
    row(r"SELECT 'a\' , ann lee, 'b'", "SELECT ?", &["ann"]),
];

#[test]
fn the_sanitiser_writes_each_row() {
    let mut bad = Vec::new();
    for r in TABLE {
        let out = sanitize_sql(r.sql);
        if out != r.sanitized {
            bad.push(format!(
                "{:?}\n   got  {out:?}\n   want {:?}",
                r.sql, r.sanitized
            ));
        }
        for s in r.secrets {
            assert!(!out.contains(s), "{:?} -> {out:?} keeps {s:?}", r.sql);
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} rows differ:\n{}",
        bad.len(),
        TABLE.len(),
        bad.join("\n")
    );
}

#[test]
fn the_log_line_path_masks_what_the_sanitiser_masks() {
    for r in TABLE {
        let alone = scrub_log_line(r.sql);
        let in_line = scrub_log_line(&format!("{PREFIX}{}", r.sql));
        for s in r.secrets {
            assert!(!alone.contains(s), "{:?} -> {alone:?} keeps {s:?}", r.sql);
            assert!(
                !in_line.contains(s),
                "{:?} -> {in_line:?} keeps {s:?}",
                r.sql
            );
        }
        // The `scrub` example's masking: the same whether the statement comes
        // alone or inside a log line.
        assert_eq!(in_line, format!("{PREFIX_OUT}{alone}"), "{:?}", r.sql);
        // Every literal the sanitiser masks is masked here: sanitising the
        // log-line output gives the same statement as sanitising the input.
        assert_eq!(
            masks(&sanitize_sql(&alone)),
            masks(r.sanitized),
            "{:?} -> {alone:?}",
            r.sql
        );
    }
}

/// A sanitised statement with its masks compared by place only: spaces go,
/// a sign joins its mask, and runs of masks (`?, ?`) are one.
fn masks(sanitized: &str) -> String {
    let mut s: String = sanitized.chars().filter(|c| *c != ' ').collect();
    loop {
        let next = s.replace("?,?", "?").replace("-?", "?").replace("+?", "?");
        if next == s {
            return s;
        }
        s = next;
    }
}

/// The `scrub` example reads one line at a time: each line of a row is masked
/// the same alone and behind a prefix.
#[test]
fn each_line_of_a_row_is_masked_alike_in_a_log() {
    for r in TABLE {
        for line in r.sql.lines() {
            let alone = scrub_log_line(line);
            assert_eq!(
                scrub_log_line(&format!("{PREFIX}{line}")),
                format!("{PREFIX_OUT}{alone}"),
                "{line:?}"
            );
        }
    }
}

/// Log and error lines: exact outputs.
const LINES: &[(&str, &str)] = &[
    ("LOG:  statement: SELECT 0b100101, -0o20000000000, 0x1EEE_FFFF, 1_000.000_005", "LOG:  statement: SELECT ?, -?, ?, ?"),
    ("LOG:  statement: SELECT * FROM foo WHERE bar=01234567-89ab-cdef-0123-456789abcdef", "LOG:  statement: SELECT * FROM foo WHERE bar=?"),
    ("ERROR:  syntax error at or near \"abc\" STATEMENT:  SELECT 123abc", "ERROR:  syntax error at or near [VALUE] STATEMENT:  SELECT ?"),
    ("WHERE a LIKE'%secret%'", "WHERE a LIKE ?"),
    ("STATEMENT:  SELECT CASE WHEN x THEN'minor'ELSE'adult'END", "STATEMENT:  SELECT CASE WHEN x THEN ? ELSE ? END"),
    ("STATEMENT:  SELECT n AS \"34567890\" FROM t WHERE d = 1/2/34", "STATEMENT:  SELECT n AS \"34567890\" FROM t WHERE d = ?/?/?"),
    ("STATEMENT:  SELECT .2, U&'ann', U&'d!0061' UESCAPE '!'", "STATEMENT:  SELECT ?, ?, ? UESCAPE ?"),
    ("STATEMENT:  SELECT a -- ann", "STATEMENT:  SELECT a"),
    ("STATEMENT:  SELECT a /* ann */", "STATEMENT:  SELECT a"),
    ("can't find patient 'Ann Lee' -- see note", "can't find patient ?"),
    ("ERROR:  duplicate key value violates unique constraint \"allergies_uniq\" (SQLSTATE 23505)", "ERROR:  duplicate key value violates unique constraint \"allergies_uniq\" (SQLSTATE 23505)"),
    ("ERROR:  42P01: relation \"t_2024\" does not exist", "ERROR:  42P01: relation \"t_2024\" does not exist"),
    ("pool timed out: Connection refused (os error 111)", "pool timed out: Connection refused (os error 111)"),
    ("error connecting to 10.1.2.3:5432: timeout after 30s", "error connecting to [IPV4]:5432: timeout after 30s"),
    ("migration 20261129000001 was previously applied but is missing in the resolved migrations", "migration 20261129000001 was previously applied but is missing in the resolved migrations"),
    ("ERROR:  column \"34567890\" does not exist", "ERROR:  column \"34567890\" does not exist"),
    ("ERROR:  column \"219099999\" does not exist", "ERROR:  column \"[SSN]\" does not exist"),
    ("ERROR:  value \"3000000000\" is out of range for type integer", "ERROR:  value \"[PHONE]\" is out of range for type integer"),
    ("ERROR:  invalid input syntax for type uuid: \"ann lee\"", "ERROR:  invalid input syntax for type uuid: [VALUE]"),
    // Issue 13, item 2: the column list of an expression index holds parentheses.
    ("DETAIL:  Key (student_id, lower(TRIM(BOTH FROM allergen)))=(0000abc0-0000-4000-8000-000000000000, peanut) already exists.", "DETAIL:  Key (student_id, lower(TRIM(BOTH FROM allergen)))=([VALUE]) already exists."),
    ("DETAIL:  Key (lower((data ->> 'email'::text)))=(ann@example.com) is duplicated.", "DETAIL:  Key (lower((data ->> ?::text)))=([VALUE]) is duplicated."),
    ("DETAIL:  Key (student_id)=(98765) is not present in table \"students\".", "DETAIL:  Key (student_id)=([VALUE]) is not present in table \"students\"."),
    ("DETAIL:  Key (id)=(5) is still referenced from table \"allergies\".", "DETAIL:  Key (id)=([VALUE]) is still referenced from table \"allergies\"."),
    ("DETAIL:  Key (room, during)=(101, [\"2026-01-01 10:00:00\",\"2026-01-01 11:00:00\")) conflicts with existing key (room, during)=(101, [\"2026-01-01 09:30:00\",\"2026-01-01 10:30:00\")).", "DETAIL:  Key (room, during)=([VALUE])."),
    ("DETAIL:  Failing row contains (42, ann, lee, null, 2011-02-03).", "DETAIL:  Failing row contains ([ROW])."),
    ("DETAIL:  Partition key of the failing row contains (school_id) = (7).", "DETAIL:  Partition key of the failing row contains ([ROW])."),
    ("CONTEXT:  COPY students, line 2, column dob: \"2011-02-30\"", "CONTEXT:  COPY students, line ?, column dob: [VALUE]"),
    ("CONTEXT:  SQL statement \"INSERT INTO t VALUES ('ann', 42)\" PL/pgSQL function f() line 3 at SQL statement", "CONTEXT:  SQL statement \"INSERT INTO t VALUES (?, ?)\" PL/pgSQL function f() line ? at SQL statement"),
    ("WHERE:  unnamed portal parameter $1 = 'ann'", "WHERE:  unnamed portal parameter $1 = ?"),
];

#[test]
fn log_and_error_lines() {
    let mut bad = Vec::new();
    for (line, want) in LINES {
        let got = scrub_log_line(line);
        if got != *want {
            bad.push(format!("{line:?}\n   got  {got:?}\n   want {want:?}"));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} lines differ:\n{}",
        bad.len(),
        LINES.len(),
        bad.join("\n")
    );
    // The free-text scrubber alone masks the DETAIL values too.
    let detail = LINES[19].0;
    let out = scrub_text(detail);
    assert!(!out.contains("peanut") && !out.contains("abc0"), "{out}");
}

#[test]
fn fingerprints_ignore_trailing_semicolons() {
    assert_eq!(fingerprint("SELECT 1"), fingerprint(" SELECT 2 ;\n"));
}
