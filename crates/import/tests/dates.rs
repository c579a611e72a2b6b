//! Date fields through a whole import (SQLite): years 0001 to 9999 only (year 0000, which
//! PostgreSQL would store as 1 BC, is a rejection by field), and a column marked
//! `not_in_future` refuses a date that has begun nowhere yet while one without the mark
//! accepts it. Reasons name the rule, never the value.
//!
//! Run with `cargo test -p vitals-import --test dates`.

mod common;

use chrono::{Duration, Utc};
use vitals_import::{
    validate, Column, ImportOptions, KeyPart, RawRecord, RawValue, RecordSpec, Registry,
};

/// People with a birth date that cannot be in the future and a review date that may be.
fn registry() -> Registry {
    Registry::new([RecordSpec::new("person", "people")
        .column(Column::text("id").required())
        .column(Column::date("born").required().not_in_future())
        .column(Column::date("review_on"))
        .natural_key([KeyPart::exact("id")])])
    .unwrap()
}

fn day(offset_days: i64) -> String {
    (Utc::now() + Duration::days(offset_days))
        .date_naive()
        .format("%Y-%m-%d")
        .to_string()
}

#[test]
fn the_bound_is_on_the_column_and_only_on_dates() {
    assert!(Column::date("born").not_in_future().is_not_in_future());
    assert!(!Column::date("born").is_not_in_future());
    assert!(!Column::text("name").not_in_future().is_not_in_future());
}

#[test]
fn validation_names_the_rule_and_not_the_value() {
    let record = |born: &str| {
        RawRecord::new(
            4,
            Some("person".into()),
            vec![
                ("id".into(), RawValue::Text("p".into())),
                ("born".into(), RawValue::Text(born.into())),
            ],
        )
    };
    let future = day(30);
    for (born, reason) in [
        ("0000-06-15", "year out of range 0001..=9999"),
        (future.as_str(), "in the future"),
        ("2015-02-30", "not a date (YYYY-MM-DD)"),
    ] {
        let problems = validate(&registry(), record(born)).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].field.as_deref(), Some("born"));
        assert_eq!(problems[0].reason, reason);
        assert!(!problems[0].reason.contains(born));
    }
    // The bounds: year 0001, and today (wherever "today" is: the bound is UTC+14's date).
    for born in ["0001-01-01", &day(0)] {
        assert!(validate(&registry(), record(born)).is_ok(), "{born}");
    }
}

#[tokio::test]
async fn an_import_rejects_year_0000_and_future_birth_dates_by_field() {
    let (_dir, pool) = common::sqlite_file(&[
        "CREATE TABLE people (id TEXT PRIMARY KEY, born TEXT NOT NULL, review_on TEXT)",
    ])
    .await;
    let future = day(30);
    let ndjson = format!(
        "{{\"type\":\"person\",\"id\":\"a\",\"born\":\"0000-06-15\"}}\n\
         {{\"type\":\"person\",\"id\":\"b\",\"born\":\"{future}\"}}\n\
         {{\"type\":\"person\",\"id\":\"c\",\"born\":\"0001-01-01\",\"review_on\":\"{future}\"}}\n\
         {{\"type\":\"person\",\"id\":\"d\",\"born\":\"{today}\"}}\n",
        today = day(0),
    );
    let source = common::ndjson(&ndjson);
    let report = common::import(registry(), &pool, source, ImportOptions::new()).await;
    assert_eq!((report.imported, report.rejected), (2, 2), "{report:#?}");
    assert_eq!(
        report.rejections,
        [
            common::rejected(1, "person", "born", "year out of range 0001..=9999"),
            common::rejected(2, "person", "born", "in the future"),
        ]
    );
    let json = serde_json::to_string(&report).unwrap();
    assert!(
        !json.contains("0000-06-15") && !json.contains(&future),
        "{json}"
    );
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM people ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(ids, ["c", "d"]);
}
