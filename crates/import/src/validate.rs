//! Field validation: a raw record becomes a typed row or a list of problems.

use uuid::Uuid;

use crate::date;
use crate::report::Rejection;
use crate::source::{RawRecord, RawValue};
use crate::spec::{Column, Kind, Registry, Value};

/// A row that passed field validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Line where the row starts.
    pub line: u64,
    /// Index of its type in [`Registry::specs`].
    pub spec: usize,
    /// One value per column of the spec, in column order.
    pub values: Vec<Value>,
}

/// Validates one record: its type must be registered and every column must hold a value of
/// its kind. All bad fields are reported, not only the first.
///
/// # Errors
/// The rejections of the record (at least one).
pub fn validate(registry: &Registry, mut record: RawRecord) -> Result<Row, Vec<Rejection>> {
    let line = record.line();
    let Some(type_name) = record.type_name().map(str::to_owned) else {
        return Err(vec![Rejection {
            line,
            type_name: None,
            field: Some("type".into()),
            reason: "no record type".into(),
        }]);
    };
    let Some(spec_index) = registry.index(&type_name) else {
        return Err(vec![Rejection {
            line,
            type_name: None,
            field: Some("type".into()),
            reason: "unknown record type".into(),
        }]);
    };
    let spec = &registry.specs()[spec_index];
    let mut values = Vec::with_capacity(spec.columns().len());
    let mut problems = Vec::new();
    for column in spec.columns() {
        let raw = record.take(column.name()).unwrap_or(RawValue::Null);
        match check(column, raw) {
            Ok(v) => values.push(v),
            Err(reason) => problems.push(Rejection {
                line,
                type_name: Some(type_name.clone()),
                field: Some(column.name().to_owned()),
                reason,
            }),
        }
    }
    if problems.is_empty() {
        Ok(Row {
            line,
            spec: spec_index,
            values,
        })
    } else {
        Err(problems)
    }
}

fn check(column: &Column, raw: RawValue) -> Result<Value, String> {
    let blank = match &raw {
        RawValue::Null => true,
        RawValue::Text(s) => s.trim().is_empty(),
        _ => false,
    };
    if blank {
        return if column.is_required() {
            Err("required".into())
        } else {
            Ok(Value::Null)
        };
    }
    match column.kind() {
        Kind::Text { max_chars } => {
            let s = match raw {
                RawValue::Text(s) => s,
                RawValue::Number(n) => n.to_string(),
                _ => return Err("not text".into()),
            };
            // PostgreSQL refuses U+0000 in text and would fail the whole chunk.
            if s.contains('\0') {
                return Err("contains a NUL character".into());
            }
            // Cheap byte-length test first: a string of at most max_chars bytes is short enough.
            if s.len() > *max_chars && s.chars().count() > *max_chars {
                return Err(format!("longer than {max_chars} characters"));
            }
            Ok(Value::Text(s))
        }
        Kind::Int { min, max } => {
            let n = match &raw {
                RawValue::Number(n) => n.as_i64(),
                RawValue::Text(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            };
            match n {
                None => Err("not a whole number".into()),
                Some(n) if n < *min || n > *max => Err(format!("out of range {min}..={max}")),
                Some(n) => Ok(Value::Int(n)),
            }
        }
        Kind::Date => match &raw {
            RawValue::Text(s) => date::check(column, s.trim()).map(Value::Date),
            _ => Err(date::NOT_A_DATE.into()),
        },
        Kind::Uuid => match &raw {
            RawValue::Text(s) => Uuid::parse_str(s.trim())
                .map(Value::Uuid)
                .map_err(|_| "not a uuid".to_owned()),
            _ => Err("not a uuid".into()),
        },
        Kind::Enum(allowed) => {
            let found = match &raw {
                RawValue::Text(s) => {
                    let s = s.trim();
                    allowed.iter().find(|a| a.eq_ignore_ascii_case(s))
                }
                _ => None,
            };
            match found {
                Some(a) => Ok(Value::Text((*a).to_owned())),
                None => Err(format!("not one of {}", allowed.join(", "))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::NaiveDate;

    use super::*;
    use crate::spec::{KeyPart, RecordSpec};

    fn registry() -> Registry {
        Registry::new([RecordSpec::new("thing", "things")
            .column(Column::uuid("id").required())
            .column(Column::text("name").required().max_chars(5))
            .column(Column::int("n").range(1, 9))
            .column(Column::date("on"))
            .column(Column::one_of("level", &["LOW", "HIGH"]))
            .natural_key([KeyPart::exact("id")])])
        .unwrap()
    }

    fn record(fields: &[(&str, RawValue)]) -> RawRecord {
        RawRecord::new(
            7,
            Some("thing".into()),
            fields
                .iter()
                .map(|(k, v)| (Arc::from(*k), v.clone()))
                .collect(),
        )
    }

    fn text(s: &str) -> RawValue {
        RawValue::Text(s.into())
    }

    #[test]
    fn valid_row_is_typed() {
        let id = Uuid::new_v4();
        let row = validate(
            &registry(),
            record(&[
                ("id", text(&id.to_string())),
                ("name", text(" O'Hé")),
                ("n", RawValue::Number(3.into())),
                ("on", text("2024-02-29")),
                ("level", text("high")),
            ]),
        )
        .unwrap();
        assert_eq!(row.line, 7);
        assert_eq!(
            row.values,
            vec![
                Value::Uuid(id),
                Value::Text(" O'Hé".into()),
                Value::Int(3),
                Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()),
                Value::Text("HIGH".into()),
            ]
        );
    }

    #[test]
    fn every_bad_field_is_reported_without_its_value() {
        let problems = validate(
            &registry(),
            record(&[
                ("id", text("nope")),
                ("name", text("secret-name")),
                ("n", text("12")),
                ("on", text("2023-02-30")),
                ("level", text("MEDIUM")),
            ]),
        )
        .unwrap_err();
        let got: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.field.as_deref().unwrap(), p.reason.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("id", "not a uuid"),
                ("name", "longer than 5 characters"),
                ("n", "out of range 1..=9"),
                ("on", "not a date (YYYY-MM-DD)"),
                ("level", "not one of LOW, HIGH"),
            ]
        );
        assert!(problems
            .iter()
            .all(|p| p.line == 7 && !p.reason.contains("secret")));
    }

    #[test]
    fn missing_required_and_unknown_type() {
        let p = validate(&registry(), record(&[("name", text("  "))])).unwrap_err();
        assert_eq!(p.len(), 2);
        assert!(p.iter().all(|r| r.reason == "required"));
        let unknown = RawRecord::new(3, Some("nurse".into()), vec![]);
        let p = validate(&registry(), unknown).unwrap_err();
        assert_eq!(p[0].reason, "unknown record type");
        assert_eq!(p[0].line, 3);
    }

    #[test]
    fn a_nul_character_is_a_rejection_of_its_field() {
        let id = Uuid::new_v4().to_string();
        let problems = validate(
            &registry(),
            record(&[("id", text(&id)), ("name", text("a\0b"))]),
        )
        .unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].field.as_deref(), Some("name"));
        assert_eq!(problems[0].reason, "contains a NUL character");
    }
}
