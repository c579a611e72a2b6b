//! Date fields: the strict `YYYY-MM-DD` form, years 0001 to 9999, and the bound a column
//! may add ([`Column::not_in_future`]). Every path into the database that validates by a
//! [`RecordSpec`](crate::RecordSpec) (an import, the facade's HTTP API) reads dates here.

use chrono::{Datelike, Duration, NaiveDate, Utc};

use crate::spec::Column;

/// The earliest year a date field accepts. PostgreSQL reads year `0000` as 1 BC, which no
/// record of ours means.
pub(crate) const MIN_YEAR: i32 = 1;
/// The latest year a date field accepts (four digits).
pub(crate) const MAX_YEAR: i32 = 9999;

/// The reason given for a field that is not a date of the strict form.
pub(crate) const NOT_A_DATE: &str = "not a date (YYYY-MM-DD)";

/// The offset of the easternmost time zone (UTC+14, Kiribati): a date is in the future only
/// once it has begun nowhere on Earth, so a sender's local "today" is never refused.
const EASTERNMOST_OFFSET_HOURS: i64 = 14;

/// The latest date not in the future anywhere: today in UTC+14.
#[must_use]
pub(crate) fn latest_not_in_future() -> NaiveDate {
    (Utc::now() + Duration::hours(EASTERNMOST_OFFSET_HOURS)).date_naive()
}

/// Checks a date field (already trimmed) against the rules of `column`.
pub(crate) fn check(column: &Column, s: &str) -> Result<NaiveDate, String> {
    let date = parse_date(s).ok_or_else(|| NOT_A_DATE.to_owned())?;
    if !(MIN_YEAR..=MAX_YEAR).contains(&date.year()) {
        return Err(format!("year out of range {MIN_YEAR:04}..={MAX_YEAR}"));
    }
    if column.is_not_in_future() && date > latest_not_in_future() {
        return Err("in the future".into());
    }
    Ok(date)
}

/// Parses a strict `YYYY-MM-DD` date that exists in the calendar (any four-digit year: the
/// year's range is [`check`]'s, so that its reason can say so).
fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_strict() {
        assert!(parse_date("2024-1-05").is_none());
        assert!(parse_date("05/01/2024").is_none());
        assert!(parse_date("2024-13-01").is_none());
        assert!(parse_date("+2024-12-31").is_none());
        assert!(parse_date("2024-12-31").is_some());
    }

    #[test]
    fn year_0000_is_out_of_range_and_0001_is_not() {
        let c = Column::date("on");
        assert_eq!(
            check(&c, "0000-01-01").unwrap_err(),
            "year out of range 0001..=9999"
        );
        assert!(check(&c, "0001-01-01").is_ok());
        assert!(check(&c, "9999-12-31").is_ok());
    }

    #[test]
    fn the_future_is_refused_only_where_the_column_says_so() {
        let tomorrow_everywhere = latest_not_in_future() + Duration::days(1);
        let s = tomorrow_everywhere.format("%Y-%m-%d").to_string();
        assert!(check(&Column::date("on"), &s).is_ok());
        let past = Column::date("on").not_in_future();
        assert_eq!(check(&past, &s).unwrap_err(), "in the future");
        let today_utc = Utc::now().date_naive().format("%Y-%m-%d").to_string();
        assert!(check(&past, &today_utc).is_ok(), "today is not the future");
    }
}
