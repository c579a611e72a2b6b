//! The importer on SQLite, as a host uses it: a registry of its own (authors and their
//! books, a book pointing at its author), a database file in a temporary directory, and
//! sources read from text.
//!
//! Run with `cargo test -p vitals-import --test sqlite`.

mod common;

use common::{count, csv, ndjson};
use sqlx::sqlite::SqlitePool;
use vitals_import::{
    Column, DuplicateOf, DuplicateRow, ImportOptions, ImportReport, KeyPart, RecordSpec, Registry,
    Source,
};

const AUTHOR_A: &str = "5a1c0e3e-0000-4000-8000-00000000000a";
const AUTHOR_B: &str = "5a1c0e3e-0000-4000-8000-00000000000b";
const NOBODY: &str = "5a1c0e3e-0000-4000-8000-0000000000ff";

/// Authors, and books that point at their author; a book's natural key is its author and
/// its title, compared trimmed and without regard to case.
fn registry() -> Registry {
    Registry::new([
        RecordSpec::new("book", "books")
            .column(Column::uuid("author_id").required())
            .column(Column::text("title").required().max_chars(200))
            .column(Column::int("year").range(1400, 2100))
            .natural_key([KeyPart::exact("author_id"), KeyPart::lower_trim("title")])
            .foreign_key("author_id", "authors", "id"),
        RecordSpec::new("author", "authors")
            .column(Column::uuid("id").required())
            .column(Column::text("name").required())
            .natural_key([KeyPart::exact("id")]),
    ])
    .unwrap()
}

/// A fresh database file with the two tables; the directory goes when the test ends.
async fn database() -> (tempfile::TempDir, SqlitePool) {
    common::sqlite_file(&[
        "CREATE TABLE authors (id BLOB PRIMARY KEY, name TEXT NOT NULL)",
        "CREATE TABLE books (author_id BLOB NOT NULL REFERENCES authors (id), \
         title TEXT NOT NULL, year INTEGER)",
        "CREATE UNIQUE INDEX books_key ON books (author_id, lower(trim(title)))",
    ])
    .await
}

async fn import(pool: &SqlitePool, source: Source, options: ImportOptions) -> ImportReport {
    common::import(registry(), pool, source, options).await
}

/// Two authors, then three books (one without a year, one with its year as text).
fn library() -> String {
    format!(
        r#"{{"type":"author","id":"{AUTHOR_A}","name":"Ann Oak"}}
{{"type":"author","id":"{AUTHOR_B}","name":"Bo Elm"}}
{{"type":"book","author_id":"{AUTHOR_A}","title":"First Light","year":1999}}
{{"type":"book","author_id":"{AUTHOR_A}","title":"Second Wind"}}
{{"type":"book","author_id":"{AUTHOR_B}","title":"Third Act","year":"2004"}}
"#
    )
}

/// [`library`], then a book of an author nobody imported.
fn library_and_an_orphan() -> String {
    format!(
        "{}{}\n",
        library(),
        format_args!(r#"{{"type":"book","author_id":"{NOBODY}","title":"Orphan"}}"#)
    )
}

#[tokio::test]
async fn a_clean_import_counts_every_row_and_stores_them() {
    let (_dir, pool) = database().await;
    let r = import(&pool, ndjson(&library()), ImportOptions::new()).await;
    assert_eq!(
        (r.total, r.imported, r.duplicates, r.rejected),
        (5, 5, 0, 0)
    );
    assert_eq!(r.by_type["author"].imported, 2, "{r:#?}");
    assert_eq!(r.by_type["book"].imported, 3, "{r:#?}");
    assert!(r.rejections.is_empty() && r.duplicate_rows.is_empty());
    assert!(!r.dry_run && !r.rolled_back && !r.stopped_early);
    assert!(r.queries > 0);
    assert_eq!(count(&pool, "authors").await, 2);
    assert_eq!(count(&pool, "books").await, 3);
}

#[tokio::test]
async fn a_bad_value_is_rejected_by_line_and_field_without_the_value() {
    let (_dir, pool) = database().await;
    let input = format!(
        r#"{{"type":"author","id":"{AUTHOR_A}","name":"Ann Oak"}}
{{"type":"book","author_id":"{AUTHOR_A}","title":"Kept","year":1999}}
{{"type":"book","author_id":"{AUTHOR_A}","title":"Refused","year":"year-SECRET-42"}}
"#
    );
    let r = import(&pool, ndjson(&input), ImportOptions::new()).await;
    assert_eq!((r.imported, r.rejected), (2, 1), "{r:#?}");
    assert_eq!(
        r.rejections,
        [common::rejected(3, "book", "year", "not a whole number")]
    );
    let json = serde_json::to_string(&r).unwrap();
    assert!(!json.contains("SECRET"), "{json}");
    assert_eq!(count(&pool, "books").await, 1);
}

#[tokio::test]
async fn a_book_of_an_unknown_author_is_rejected() {
    let (_dir, pool) = database().await;
    import(&pool, ndjson(&library()), ImportOptions::new()).await;
    let input = format!("author_id,title\n{AUTHOR_B},Fourth Wall\n{NOBODY},Nobody's Book\n");
    let r = import(&pool, csv(&input).with_type("book"), ImportOptions::new()).await;
    assert_eq!((r.imported, r.rejected), (1, 1), "{r:#?}");
    assert_eq!(
        r.rejections,
        [common::rejected(
            3,
            "book",
            "author_id",
            "unknown author_id"
        )]
    );
    assert_eq!(count(&pool, "books").await, 4);
}

#[tokio::test]
async fn duplicates_in_the_file_and_in_the_database_are_skipped() {
    let (_dir, pool) = database().await;
    let input = format!(
        "{}{}\n",
        library(),
        format_args!(
            r#"{{"type":"book","author_id":"{AUTHOR_A}","title":"  first LIGHT ","year":2001}}"#
        )
    );
    let r = import(&pool, ndjson(&input), ImportOptions::new()).await;
    assert_eq!((r.imported, r.duplicates), (5, 1), "{r:#?}");
    assert_eq!(
        r.duplicate_rows,
        [DuplicateRow {
            line: 6,
            of: DuplicateOf::Line(3),
        }]
    );

    let again = import(&pool, ndjson(&input), ImportOptions::new()).await;
    assert_eq!((again.imported, again.duplicates), (0, 6), "{again:#?}");
    assert_eq!(again.duplicate_rows[0].of, DuplicateOf::Existing);
    assert_eq!(again.duplicate_rows[5].of, DuplicateOf::Line(3));
    assert_eq!(count(&pool, "books").await, 3);
}

#[tokio::test]
async fn all_or_nothing_rolls_everything_back_on_one_rejection() {
    let (_dir, pool) = database().await;
    let input = library_and_an_orphan();
    // Chunks of two: the rejection comes in the last chunk, after two chunks went into the
    // import's one transaction.
    let options = ImportOptions::new().all_or_nothing(true).chunk_size(2);
    let r = import(&pool, ndjson(&input), options).await;
    assert!(r.rolled_back, "{r:#?}");
    assert_eq!((r.imported, r.rejected), (0, 6));
    assert_eq!(r.rejections.len(), 1);
    assert_eq!(count(&pool, "authors").await, 0);
    assert_eq!(count(&pool, "books").await, 0);
}

#[tokio::test]
async fn a_dry_run_checks_everything_and_writes_nothing() {
    let (_dir, pool) = database().await;
    let input = library_and_an_orphan();
    let r = import(&pool, ndjson(&input), ImportOptions::new().dry_run(true)).await;
    assert!(r.dry_run && !r.rolled_back, "{r:#?}");
    assert_eq!((r.imported, r.rejected), (5, 1));
    assert_eq!(r.rejections[0].field.as_deref(), Some("author_id"));
    assert_eq!(count(&pool, "authors").await, 0);
    assert_eq!(count(&pool, "books").await, 0);
}

#[tokio::test]
async fn csv_and_ndjson_give_the_same_report() {
    let rows = [
        ("author", AUTHOR_A, "Ann Oak", ""),
        ("book", AUTHOR_A, "First Light", "1999"),
        ("book", AUTHOR_A, "FIRST LIGHT", "2000"),
        ("book", NOBODY, "Lost", ""),
        ("book", AUTHOR_A, "Too Late", "1066"),
    ];
    let mut as_csv = String::from("type,id,author_id,name,title,year\n");
    let mut as_ndjson = String::new();
    for (ty, uuid, text, year) in rows {
        let year_json = if year.is_empty() { "null" } else { year };
        if ty == "author" {
            as_csv.push_str(&format!("author,{uuid},,{text},,\n"));
            as_ndjson.push_str(&format!(
                "{{\"type\":\"author\",\"id\":\"{uuid}\",\"name\":\"{text}\"}}\n"
            ));
        } else {
            as_csv.push_str(&format!("book,,{uuid},,{text},{year}\n"));
            as_ndjson.push_str(&format!(
                "{{\"type\":\"book\",\"author_id\":\"{uuid}\",\"title\":\"{text}\",\"year\":{year_json}}}\n"
            ));
        }
    }
    let (_a, csv_pool) = database().await;
    let (_b, ndjson_pool) = database().await;
    let mut from_csv = import(&csv_pool, csv(&as_csv), ImportOptions::new()).await;
    let mut from_ndjson = import(&ndjson_pool, ndjson(&as_ndjson), ImportOptions::new()).await;

    // CSV counts its header as line 1.
    for r in &mut from_csv.rejections {
        r.line -= 1;
    }
    for d in &mut from_csv.duplicate_rows {
        d.line -= 1;
        if let DuplicateOf::Line(l) = &mut d.of {
            *l -= 1;
        }
    }
    from_csv.elapsed_ms = 0;
    from_ndjson.elapsed_ms = 0;
    assert_eq!(from_csv, from_ndjson);
    assert_eq!(
        (
            from_ndjson.imported,
            from_ndjson.duplicates,
            from_ndjson.rejected
        ),
        (2, 1, 2),
        "{from_ndjson:#?}"
    );
}

/// The same rows, each line ended by `end`, with blank lines between them: an author, a
/// book, a book with a bad year (line 6) and a book repeating line 4 (line 7).
fn rows_with_blank_lines(end: &str) -> String {
    [
        "type,id,author_id,name,title,year",
        "",
        &format!("author,{AUTHOR_A},,Ann Oak,,"),
        &format!("book,,{AUTHOR_A},,First Light,1999"),
        "",
        &format!("book,,{AUTHOR_A},,Bad Year,year-x"),
        &format!("book,,{AUTHOR_A},,FIRST LIGHT,2000"),
    ]
    .iter()
    .map(|l| format!("{l}{end}"))
    .collect()
}

#[tokio::test]
async fn csv_rows_are_reported_at_their_own_line_with_lf_crlf_and_blank_lines() {
    for end in ["\n", "\r\n"] {
        let (_dir, pool) = database().await;
        let r = import(
            &pool,
            csv(&rows_with_blank_lines(end)),
            ImportOptions::new(),
        )
        .await;
        assert_eq!(
            (r.total, r.imported, r.duplicates, r.rejected),
            (4, 2, 1, 1),
            "{end:?}: {r:#?}"
        );
        assert_eq!(
            r.rejections,
            [common::rejected(6, "book", "year", "not a whole number")],
            "{end:?}"
        );
        assert_eq!(
            r.duplicate_rows,
            [DuplicateRow {
                line: 7,
                of: DuplicateOf::Line(4),
            }],
            "{end:?}"
        );
    }
}

#[tokio::test]
async fn an_unterminated_quote_in_csv_is_rejected_at_its_line_and_no_row_is_lost_silently() {
    let (_dir, pool) = database().await;
    let mut input = format!(
        "type,id,author_id,name,title,year\nauthor,{AUTHOR_A},,Ann Oak,,\n\
         book,,{AUTHOR_A},,\"A12,1999\n"
    );
    for i in 4..=33 {
        input.push_str(&format!("book,,{AUTHOR_A},,Title {i},2000\n"));
    }
    let r = import(&pool, csv(&input), ImportOptions::new()).await;
    assert_eq!(
        (r.total, r.imported, r.duplicates, r.rejected),
        (2, 1, 0, 1),
        "{r:#?}"
    );
    assert_eq!(r.total, r.imported + r.duplicates + r.rejected);
    assert_eq!(r.rejections.len(), 1, "{r:#?}");
    assert_eq!(r.rejections[0].line, 3);
    assert_eq!(
        r.rejections[0].reason,
        "unterminated quoted field: its value runs to the end of the input, so lines 3 to 33 \
         were not read as rows"
    );
    let json = serde_json::to_string(&r).unwrap();
    assert!(!json.contains("A12") && !json.contains("Title"), "{json}");
    assert_eq!(count(&pool, "books").await, 0);
}

/// A row skipped as a duplicate that brings no value (NULL) for a column other rows may point
/// at makes no row whose reference to it is NULL (which points nowhere) an orphan. (The NULL
/// was looked up, not found, and every NULL reference of the chunk rejected as unknown.)
#[tokio::test]
async fn a_null_brought_by_a_skipped_row_orphans_no_null_reference() {
    let registry = || {
        Registry::new([
            RecordSpec::new("author", "authors")
                .column(Column::uuid("id").required())
                .column(Column::text("name").required())
                .column(Column::text("code"))
                .natural_key([KeyPart::exact("name")]),
            RecordSpec::new("book", "books")
                .column(Column::uuid("author_id").required())
                .column(Column::text("author_code"))
                .column(Column::text("title").required())
                .natural_key([KeyPart::exact("title")])
                .foreign_key("author_id", "authors", "id")
                .foreign_key("author_code", "authors", "code"),
        ])
        .unwrap()
    };
    let (_dir, pool) = common::sqlite_file(&[
        "CREATE TABLE authors (id BLOB PRIMARY KEY, name TEXT NOT NULL UNIQUE, code TEXT UNIQUE)",
        "CREATE TABLE books (author_id BLOB NOT NULL REFERENCES authors (id), \
         author_code TEXT REFERENCES authors (code), title TEXT NOT NULL UNIQUE)",
    ])
    .await;
    let author = format!(r#"{{"type":"author","id":"{AUTHOR_A}","name":"Ann Oak"}}"#);
    let first = ndjson(&format!("{author}\n"));
    let first = common::import(registry(), &pool, first, ImportOptions::new()).await;
    assert_eq!(first.imported, 1, "{first:#?}");
    let book = format!(r#"{{"type":"book","author_id":"{AUTHOR_A}","title":"No Code"}}"#);
    let again = ndjson(&format!("{author}\n{book}\n"));
    let r = common::import(registry(), &pool, again, ImportOptions::new()).await;
    assert_eq!((r.imported, r.duplicates, r.rejected), (1, 1, 0), "{r:#?}");
    assert_eq!(count(&pool, "books").await, 1);
}
