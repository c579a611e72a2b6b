//! The free-text scrubber (for what is not SQL: database errors, DETAIL lines,
//! messages) and the log-line pass that runs a layout-preserving SQL literal
//! mask first and the free-text scrubber second.
//!
//! One file per pass: `held` keeps what is masked or structure out of the later passes,
//! `details` masks PostgreSQL's DETAIL values, `sql` and `prose` mask the two parts of a log
//! line, `structure` holds what is structure, `rules` applies the typed masks and `numbers`
//! masks the numbers left. This file composes them.

mod details;
mod held;
mod numbers;
mod prose;
mod rules;
mod sql;
mod structure;
#[cfg(test)]
mod tests;

use details::mask_details;
use held::{without_private_use, Held};
use numbers::mask_numbers;
use prose::mask_prose;
use rules::scrub_typed;
use sql::{mask_sql_region, sql_region};
use structure::protect_structure;

/// Scrubs free text (database errors, DETAIL lines, messages): each value it
/// recognises becomes a typed mask, and every other standalone number becomes `?`.
///
/// Masks, in order: the values of `Key (…)=(…)` (the column list may hold
/// parentheses: expression indexes) and `Failing row contains (…)` (`[VALUE]`,
/// `[ROW]`), quoted values (`'[VALUE]'`, and `"…"` after `: ` or `near `),
/// `[UUID]`, `[EMAIL]`, `[IPV4]`, `[DATE]`, `[SSN]` (with or without
/// separators, checked like Presidio's recogniser), `[CARD]` (Luhn), `[PHONE]`,
/// `[MRN]` (labelled record, member, policy and insurance ids, and
/// letter-prefixed digit ids), then any remaining standalone number (every
/// PostgreSQL form: `0x1EEE_FFFF`, `0b101`, `1_000.000_005`, `.5`). Words are
/// kept: a name in running text that is neither quoted nor in a DETAIL line is
/// not recognised.
///
/// Kept as structure, because they are: SQLSTATE codes (`SQLSTATE 23505`,
/// `ERROR:  23505:`), errno (`os error 111`), migration versions
/// (`migration 20261129000001`), a port after a masked host (`[IPV4]:5432`,
/// `localhost:5432`) and identifiers in double quotes after the object they
/// name (`relation "t_2024"`, `column "34567890"`; a typed value inside one,
/// such as an SSN, is still masked).
///
/// ```
/// use vitals_querylog::scrub_text;
///
/// let detail = "DETAIL:  Key (email)=(ann.lee@example.com) already exists.";
/// assert_eq!(scrub_text(detail), "DETAIL:  Key (email)=([VALUE]) already exists.");
/// assert_eq!(scrub_text("ssn 219099999, call 555-867-5309"), "ssn [SSN], call [PHONE]");
/// assert_eq!(
///     scrub_text("connect to 10.0.0.7:5432 failed (os error 111)"),
///     "connect to [IPV4]:5432 failed (os error 111)"
/// );
/// ```
#[must_use]
pub fn scrub_text(text: &str) -> String {
    let text = without_private_use(text);
    let mut held = Held::default();
    let text = mask_details(&text, &mut held);
    let text = protect_structure(&text, &mut held);
    held.restore(&scrub_free(&text))
}

/// The rules, then the number pass: the free-text scrubber without the
/// structure it keeps.
fn scrub_free(text: &str) -> String {
    mask_numbers(&scrub_typed(text))
}

/// Scrubs one log line (or any text that may hold SQL). The `Key (…)=(…)` and
/// `Failing row contains (…)` values go first; then where the text holds SQL
/// (from a SQL keyword: see below) that part is masked by the sanitiser's own
/// lexer, so it masks at least every literal [`crate::sanitize_sql`] masks
/// (layout kept, comments removed, quoted identifiers kept); the prose before
/// it has its quoted and dollar-quoted literals masked; then the free-text
/// pass of [`scrub_text`] runs over all of it. This is what the `scrub` example
/// runs on each line of its input, and what the logger stores for error text.
///
/// The SQL starts at a SQL keyword written upper case, or at one in any case
/// at the start of the text or after a `:` (`LOG:  statement: select …`); in
/// `SQL statement "…"` it ends at the line's last `"`.
///
/// ```
/// use vitals_querylog::scrub_log_line;
///
/// let line = "ERROR: duplicate key value; STATEMENT: INSERT INTO students(email, dob) VALUES ('ann@example.com', '2011-02-03')";
/// assert_eq!(
///     scrub_log_line(line),
///     "ERROR: duplicate key value; STATEMENT: INSERT INTO students(email, dob) VALUES (?, ?)"
/// );
/// assert_eq!(
///     scrub_log_line("STATEMENT:  SELECT 0b100101 AS \"34567890\" WHERE a LIKE'%secret%' -- ann"),
///     "STATEMENT:  SELECT ? AS \"34567890\" WHERE a LIKE ?"
/// );
/// ```
#[must_use]
pub fn scrub_log_line(line: &str) -> String {
    let text = without_private_use(line);
    let mut held = Held::default();
    let text = mask_details(&text, &mut held);
    let mut out = String::with_capacity(text.len() + 8);
    match sql_region(&text) {
        Some((start, end)) => {
            if mask_prose(&text[..start], &mut out) {
                mask_sql_region(&text[start..end], &mut out, &mut held);
                if end < text.len() {
                    mask_prose(&text[end..], &mut out);
                }
            }
        }
        None => {
            mask_prose(&text, &mut out);
        }
    }
    let text = protect_structure(&out, &mut held);
    held.restore(&scrub_free(&text))
}

/// Another name for [`scrub_log_line`]: sanitises text of any kind, SQL or not.
#[must_use]
pub fn sanitize_any(text: &str) -> String {
    scrub_log_line(text)
}
