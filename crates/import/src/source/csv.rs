//! CSV with a header row: one record per row, numbered by the physical line it starts on.

use std::sync::Arc;

use super::item::{Item, RawRecord, RawValue, TYPE_FIELD};
use crate::error::ImportError;

/// A CSV input being read.
pub(super) struct Csv<R> {
    reader: ::csv::Reader<R>,
    headers: Vec<Arc<str>>,
    record: ::csv::StringRecord,
}

impl<R: std::io::Read> Csv<R> {
    /// Reads the header row of `input` (`what` names it in errors).
    pub(super) fn new(input: R, what: &str) -> Result<Self, ImportError> {
        let mut reader = ::csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(input);
        let headers = match reader.headers() {
            Ok(h) => h
                .iter()
                .map(|h| Arc::from(h.trim()))
                .collect::<Vec<Arc<str>>>(),
            Err(e) => return Err(fatal(e, what)),
        };
        if headers.iter().all(|h| h.is_empty()) {
            return Err(ImportError::Format(format!("{what} has no CSV header row")));
        }
        Ok(Self {
            reader,
            headers,
            record: ::csv::StringRecord::new(),
        })
    }

    /// The next row, `Ok(None)` at the end. A row of the wrong width or not UTF-8 is
    /// [`Item::Malformed`].
    pub(super) fn next_item(&mut self, what: &str) -> Result<Option<Item>, ImportError> {
        let Self {
            reader,
            headers,
            record,
        } = self;
        Ok(Some(match reader.read_record(record) {
            Ok(false) => return Ok(None),
            Ok(true) => {
                let line = record.position().map_or(0, ::csv::Position::line);
                let mut fields = Vec::with_capacity(headers.len());
                let mut type_name = None;
                for (h, v) in headers.iter().zip(record.iter()) {
                    if &**h == TYPE_FIELD {
                        type_name = (!v.is_empty()).then(|| v.to_owned());
                    } else {
                        let value = if v.is_empty() {
                            RawValue::Null
                        } else {
                            RawValue::Text(v.to_owned())
                        };
                        fields.push((Arc::clone(h), value));
                    }
                }
                Item::Record(RawRecord {
                    line,
                    type_name,
                    fields,
                })
            }
            Err(e) => {
                let line = e.position().map_or(0, ::csv::Position::line);
                match e.kind() {
                    ::csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => Item::Malformed {
                        line,
                        reason: format!("has {len} fields, the header has {expected_len}"),
                    },
                    ::csv::ErrorKind::Utf8 { .. } => Item::Malformed {
                        line,
                        reason: "not valid UTF-8".to_owned(),
                    },
                    _ => return Err(fatal(e, what)),
                }
            }
        }))
    }
}

/// An error that ends the reading: I/O, or input that is not CSV at all.
fn fatal(e: ::csv::Error, what: &str) -> ImportError {
    match e.into_kind() {
        ::csv::ErrorKind::Io(source) => ImportError::Read {
            what: what.to_owned(),
            source,
        },
        _ => ImportError::Format(format!("{what} is not readable CSV")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(input: &str) -> Vec<Item> {
        let mut csv = Csv::new(input.as_bytes(), "input").unwrap();
        std::iter::from_fn(|| csv.next_item("input").unwrap()).collect()
    }

    #[test]
    fn csv_lines_count_the_header_and_multiline_fields() {
        let got = items("a,b\n1,\"x\ny\"\n2,z\n3\n4,w\n");
        assert_eq!(
            got.iter().map(Item::line).collect::<Vec<_>>(),
            vec![2, 4, 5, 6]
        );
        match &got[0] {
            Item::Record(r) => {
                assert_eq!(r.get("b"), Some(&RawValue::Text("x\ny".into())));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&got[2], Item::Malformed { reason, .. } if reason.contains("1 fields")));
    }

    #[test]
    fn csv_without_header_is_an_error() {
        let e = Csv::new(&b""[..], "input").err().unwrap();
        assert!(e.to_string().contains("no CSV header"), "{e}");
    }
}
