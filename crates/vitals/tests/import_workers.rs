//! The healthcare import with parallel writers on PostgreSQL (`#[sqlx::test]`): the same
//! report and rows as one connection, a failed chunk's window, a row another writer brings
//! meanwhile, cancellation, and two workers on a pool of one connection.
//!
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo test -p vitals --test import_workers`.

mod common;

use common::import::*;
use sqlx::PgPool;
use uuid::Uuid;
use vitals::health::records;
use vitals::import::{DuplicateOf, DuplicateRow, ImportOptions, Importer, PgSink, Source};

/// 1 000 vaccination rows for two students, with in-file duplicates (every 7th row repeats
/// the row before it), rows already in the database (the first 30) and rows of an unknown
/// student (every 50th).
fn many_vaccinations() -> String {
    let mut csv = String::from(VACCINATION_HEADER);
    let mut last = String::new();
    for i in 0..1000 {
        let line = if i % 7 == 6 {
            last.clone()
        } else if i % 50 == 49 {
            format!("{},Vaccine {i},1,2020-01-01,Nurse,L{i}\n", Uuid::nil())
        } else {
            let student = if i % 2 == 0 { STUDENT_A } else { STUDENT_B };
            format!("{student},Vaccine {i},1,2020-01-01,Nurse,L{i}\n")
        };
        csv.push_str(&line);
        last = line;
    }
    csv
}

/// Runs `body` (PL/pgSQL, ending in `RETURN NEW`) before every insert of a vaccination row.
async fn before_vaccination_insert(pool: &PgPool, body: &str) {
    sqlx::raw_sql(&format!(
        "CREATE FUNCTION test_trigger() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} END $$; \
         CREATE TRIGGER test_trigger BEFORE INSERT ON vaccinations \
           FOR EACH ROW EXECUTE FUNCTION test_trigger();"
    ))
    .execute(pool)
    .await
    .unwrap();
}

/// A CSV file of `n` vaccinations of `student`, lots `L0`, `L1`, …
fn vaccinations_csv(student: &str, n: usize) -> tempfile::NamedTempFile {
    let mut csv = String::from(VACCINATION_HEADER);
    for i in 0..n {
        csv.push_str(&format!("{student},Vaccine {i},1,2020-01-01,Nurse,L{i}\n"));
    }
    file(".csv", &csv)
}

/// An import of [`vaccinations_csv`] of student A (`n` rows), in chunks of 10 over `workers`
/// writers; the file comes first (keep it while the import reads it).
fn vaccinations_import(n: usize, workers: usize) -> (tempfile::NamedTempFile, Importer, Source) {
    let f = vaccinations_csv(STUDENT_A, n);
    let options = ImportOptions::new().chunk_size(10).workers(workers);
    let (importer, source) = importer_of(&f, Some(records::VACCINATION), options);
    (f, importer, source)
}

async fn truncate_vaccinations(pool: &PgPool) {
    sqlx::query("TRUNCATE vaccinations")
        .execute(pool)
        .await
        .unwrap();
}

/// Polls the count `sql` every 10 ms until it is `want` (the database offers no event to wait
/// on); fails the test at `deadline`.
async fn until_count(pool: &PgPool, sql: &str, want: i64, deadline: std::time::Instant) {
    loop {
        let n: i64 = sqlx::query_scalar(sql).fetch_one(pool).await.unwrap();
        if n == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the database did not reach the state in 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

async fn lots(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT lot_number FROM vaccinations ORDER BY lot_number")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn parallel_writes_report_and_store_exactly_what_one_connection_does(pool: PgPool) {
    with_students(&pool).await;
    let csv = many_vaccinations();
    let head: String = csv.lines().take(31).map(|l| format!("{l}\n")).collect();
    let existing = file(".csv", &head);
    let f = file(".csv", &csv);
    let mut outcomes = Vec::new();
    for workers in [1, 4] {
        truncate_vaccinations(&pool).await;
        let options = || ImportOptions::new().chunk_size(50).workers(workers);
        import_pg(&pool, &existing, Some(records::VACCINATION), options()).await;
        let r = import_pg(&pool, &f, Some(records::VACCINATION), options()).await;
        outcomes.push((r, lots(&pool).await));
    }
    let (one, four) = (&outcomes[0], &outcomes[1]);
    assert!(one.0.imported > 800 && one.0.duplicates > 100 && one.0.rejected == 20);
    let (a, b) = (&one.0, &four.0);
    assert_eq!(
        (a.total, a.imported, a.duplicates, a.rejected),
        (b.total, b.imported, b.duplicates, b.rejected)
    );
    assert_eq!(a.duplicate_rows, b.duplicate_rows);
    assert_eq!(a.rejections.len(), b.rejections.len());
    assert!(a
        .rejections
        .iter()
        .zip(&b.rejections)
        .all(|(x, y)| (x.line, &x.field) == (y.line, &y.field)));
    assert_eq!(a.by_type, b.by_type);
    assert_eq!(one.1, four.1, "the same rows are stored");
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn a_failed_chunk_is_rolled_back_the_ones_before_stay_and_nothing_after_the_window_is_written(
    pool: PgPool,
) {
    with_students(&pool).await;
    // Refuses one lot, slowly: the two chunks after it (three workers) are already being
    // written when its failure is known; nothing after them may be.
    before_vaccination_insert(
        &pool,
        "IF NEW.lot_number = 'L25' THEN PERFORM pg_sleep(0.3); \
           RAISE EXCEPTION 'lot refused by the test'; END IF; RETURN NEW;",
    )
    .await;
    let (_f, importer, source) = vaccinations_import(100, 3);
    let err = importer
        .run(source, &mut PgSink::new(pool.clone()))
        .await
        .unwrap_err();
    // Row 25 is on line 27, in the chunk of lines 22..=31.
    assert!(
        matches!(err, vitals::import::ImportError::Database { line: 22, .. }),
        "{err}"
    );
    let stored = lots(&pool).await;
    let mut expected: Vec<String> = (0..20).chain(30..50).map(|i| format!("L{i}")).collect();
    expected.sort();
    assert_eq!(
        stored, expected,
        "the chunks before the failure and the two beside it stay; the failed one and all later are not written"
    );
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn a_row_another_writer_brings_meanwhile_is_a_duplicate_on_one_connection_or_two(
    pool: PgPool,
) {
    with_students(&pool).await;
    // Another writer, made deterministic: inserting lot RACE first inserts a row with the
    // same natural key (after the importer's lookup found none), so ON CONFLICT skips it.
    before_vaccination_insert(
        &pool,
        "IF NEW.lot_number = 'RACE' THEN \
           INSERT INTO vaccinations (student_id, vaccine_name, dose_number, administered_on, \
             administered_by, lot_number) VALUES (NEW.student_id, NEW.vaccine_name, \
             NEW.dose_number, NEW.administered_on, 'another writer', 'RACE-OTHER'); \
         END IF; RETURN NEW;",
    )
    .await;
    let mut csv = String::from(VACCINATION_HEADER);
    for i in 0..20 {
        let lot = if i == 13 {
            "RACE".to_owned()
        } else {
            format!("L{i}")
        };
        csv.push_str(&format!(
            "{STUDENT_B},Vaccine {i},1,2020-01-01,Nurse,{lot}\n"
        ));
    }
    let f = file(".csv", &csv);
    for workers in [1, 2] {
        truncate_vaccinations(&pool).await;
        let options = ImportOptions::new().chunk_size(10).workers(workers);
        let r = import_pg(&pool, &f, Some(records::VACCINATION), options).await;
        assert_eq!(
            (r.imported, r.duplicates),
            (19, 1),
            "workers {workers}: {r:#?}"
        );
        assert_eq!(
            r.duplicate_rows,
            vec![DuplicateRow {
                line: 15,
                of: DuplicateOf::Existing
            }],
            "workers {workers}"
        );
        let stored = lots(&pool).await;
        assert_eq!(stored.len(), 20, "workers {workers}: {stored:?}");
        assert!(stored.contains(&"RACE-OTHER".to_owned()));
        assert!(!stored.contains(&"RACE".to_owned()));
    }
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn a_cancelled_import_commits_none_of_the_chunks_it_was_writing(pool: PgPool) {
    with_students(&pool).await;
    // Every chunk's insert takes half a second, so both chunks (two workers) are being
    // written when the import is cancelled.
    before_vaccination_insert(
        &pool,
        "IF NEW.lot_number LIKE 'L%5' THEN PERFORM pg_sleep(0.5); END IF; RETURN NEW;",
    )
    .await;
    let (_f, importer, source) = vaccinations_import(20, 2);
    let mut sink = PgSink::new(pool.clone());
    let mut run = Box::pin(importer.run(source, &mut sink));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    // Cancel once both inserts are running: two backends sleeping in the trigger.
    let both_writing = until_count(
        &pool,
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event = 'PgSleep'",
        2,
        deadline,
    );
    tokio::select! {
        r = &mut run => panic!("the import ended before it was cancelled: {r:?}"),
        () = both_writing => {}
    }
    drop(run); // the import's future, and with it its pending writes
               // Wait until the database has finished with both transactions, then look.
    until_count(
        &pool,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND pid <> pg_backend_pid() AND (state = 'active' OR state LIKE 'idle in transaction%')",
        0,
        deadline,
    )
    .await;
    assert_eq!(count(&pool, "vaccinations").await, 0);
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn two_workers_on_a_pool_of_one_connection_take_turns(pool: PgPool) {
    with_students(&pool).await;
    let one = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(30))
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap();
    let f = vaccinations_csv(STUDENT_B, 100);
    let r = import_pg(
        &one,
        &f,
        Some(records::VACCINATION),
        ImportOptions::new().chunk_size(10).workers(2),
    )
    .await;
    assert_eq!(r.imported, 100, "{r:#?}");
    assert_eq!(count(&pool, "vaccinations").await, 100);
}
