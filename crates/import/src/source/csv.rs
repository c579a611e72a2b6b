//! CSV with a header row: one record per row, numbered by the physical line it starts on.
//!
//! Records are read with `csv-core` into a buffer of at most [`MAX_RECORD_BYTES`] of field
//! data: a longer record is read to its end without being kept and becomes
//! [`Item::Malformed`], so one huge field cannot exhaust memory and reading goes on with the
//! next record (the parser keeps its quoting state, so it never loses its place).

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::Arc;

use csv_core::ReadRecordResult;

use super::item::{Item, RawRecord, RawValue, MAX_RECORD_BYTES, TYPE_FIELD};
use crate::error::ImportError;
use crate::spec::shown_name;

/// Most columns a header may have (its field ends are kept in memory).
const MAX_COLUMNS: usize = 1 << 16;

/// Input read from the source at a time.
const INPUT_BUFFER: usize = 64 * 1024;

/// A CSV input being read.
pub(super) struct Csv<R> {
    input: R,
    // Boxed: its DFA tables make it large.
    core: Box<csv_core::Reader>,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    eof: bool,
    /// The field data of the current record; grows up to `MAX_RECORD_BYTES + 1`.
    out: Vec<u8>,
    /// Where each field of the current record ends in `out`.
    ends: Vec<usize>,
    headers: Vec<Arc<str>>,
    /// The line of the next byte to read (1 + the `\n` bytes consumed so far).
    line: u64,
}

/// One physical record, as `csv-core` split it.
struct Raw {
    /// The line it starts on.
    line: u64,
    /// Its fields, counted even when not kept.
    fields: u64,
    /// Whether its fields are in `out[..bytes]` and `ends[..fields]`; false when it was too
    /// long or too wide to keep.
    kept: bool,
    /// Bytes of field data kept.
    bytes: usize,
    /// Whether its field data is longer than [`MAX_RECORD_BYTES`].
    too_long: bool,
    /// Whether the input ended inside one of its quoted fields: everything from that
    /// field's opening quote to the end of the input was read as its value.
    unterminated: bool,
    /// The line of its last byte.
    last_line: u64,
}

/// Where a record's bytes leave the parser, with `csv-core`'s defaults (`,`, `"` quotes
/// doubled inside a quoted field, no escape character, CR and LF terminators): enough to
/// tell whether the input ended inside a quoted field, which `csv-core` reports as a normal
/// record end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Quoting {
    /// At the start of a field.
    #[default]
    FieldStart,
    /// In a field that did not start with a quote (a quote in it is data).
    Unquoted,
    /// In a quoted field.
    Quoted,
    /// Just after a quote in a quoted field: its end, or the first of a doubled quote.
    QuoteInQuoted,
}

impl Quoting {
    fn step(self, b: u8) -> Self {
        match (self, b) {
            (Quoting::Quoted, b'"') => Quoting::QuoteInQuoted,
            (Quoting::Quoted, _) => Quoting::Quoted,
            (Quoting::QuoteInQuoted | Quoting::FieldStart, b'"') => Quoting::Quoted,
            (_, b',' | b'\r' | b'\n') => Quoting::FieldStart,
            _ => Quoting::Unquoted,
        }
    }
}

impl<R: Read> Csv<R> {
    /// Reads the header row of `input` (`what` names it in errors).
    pub(super) fn new(input: R, what: &str) -> Result<Self, ImportError> {
        let mut csv = Self {
            input,
            core: Box::new(csv_core::Reader::new()),
            buf: vec![0; INPUT_BUFFER].into_boxed_slice(),
            pos: 0,
            len: 0,
            eof: false,
            out: vec![0; 1024],
            ends: vec![0; 16],
            headers: Vec::new(),
            line: 1,
        };
        let read = |e| ImportError::Read {
            what: what.to_owned(),
            source: e,
        };
        let Some(raw) = csv.read_raw(MAX_COLUMNS).map_err(read)? else {
            return Err(ImportError::Format(format!("{what} has no CSV header row")));
        };
        if raw.unterminated {
            return Err(ImportError::Format(format!(
                "{what}: the CSV header row has a quoted field that is never closed"
            )));
        }
        if raw.too_long {
            return Err(ImportError::Format(format!(
                "{what}: the CSV header row is longer than {MAX_RECORD_BYTES} bytes"
            )));
        }
        if !raw.kept {
            return Err(ImportError::Format(format!(
                "{what}: the CSV header row has more than {MAX_COLUMNS} columns"
            )));
        }
        let Ok(text) = std::str::from_utf8(&csv.out[..raw.bytes]) else {
            return Err(ImportError::Format(format!("{what} is not readable CSV")));
        };
        let headers: Vec<Arc<str>> = fields(text, &csv.ends[..raw.fields_kept()])
            .map(|h| Arc::from(h.trim()))
            .collect();
        if headers.iter().all(|h| h.is_empty()) {
            return Err(ImportError::Format(format!("{what} has no CSV header row")));
        }
        if let Some(e) = repeated_column(what, &headers) {
            return Err(e);
        }
        csv.headers = headers;
        Ok(csv)
    }

    /// The column names of the header row, trimmed.
    pub(super) fn headers(&self) -> &[Arc<str>] {
        &self.headers
    }

    /// The next row, `Ok(None)` at the end. A row of the wrong width, not UTF-8 or longer
    /// than [`MAX_RECORD_BYTES`] is [`Item::Malformed`].
    pub(super) fn next_item(&mut self, what: &str) -> Result<Option<Item>, ImportError> {
        let width = self.headers.len();
        let raw = match self.read_raw(width) {
            Ok(Some(raw)) => raw,
            Ok(None) => return Ok(None),
            Err(source) => {
                return Err(ImportError::Read {
                    what: what.to_owned(),
                    source,
                })
            }
        };
        let line = raw.line;
        if raw.unterminated {
            // Every byte after the opening quote went into that field: say which lines were
            // not read as rows, so none is lost without a word.
            let reason = if raw.last_line > line {
                format!(
                    "unterminated quoted field: its value runs to the end of the input, so \
                     lines {line} to {} were not read as rows",
                    raw.last_line
                )
            } else {
                "unterminated quoted field".to_owned()
            };
            return Ok(Some(Item::Malformed { line, reason }));
        }
        // The width first, as the csv crate did: a short row is reported as short.
        if raw.fields != width as u64 {
            return Ok(Some(Item::Malformed {
                line,
                reason: format!("has {} fields, the header has {width}", raw.fields),
            }));
        }
        if raw.too_long {
            return Ok(Some(Item::Malformed {
                line,
                reason: format!("record longer than {MAX_RECORD_BYTES} bytes"),
            }));
        }
        let Ok(text) = std::str::from_utf8(&self.out[..raw.bytes]) else {
            return Ok(Some(Item::Malformed {
                line,
                reason: "not valid UTF-8".to_owned(),
            }));
        };
        let mut fields_out = Vec::with_capacity(width);
        let mut type_name = None;
        for (h, v) in self
            .headers
            .iter()
            .zip(fields(text, &self.ends[..raw.fields_kept()]))
        {
            if &**h == TYPE_FIELD {
                type_name = (!v.is_empty()).then(|| v.to_owned());
            } else {
                let value = if v.is_empty() {
                    RawValue::Null
                } else {
                    RawValue::Text(v.to_owned())
                };
                fields_out.push((Arc::clone(h), value));
            }
        }
        Ok(Some(Item::Record(RawRecord {
            line,
            type_name,
            fields: fields_out,
        })))
    }

    /// Reads the next physical record, keeping its fields when it has at most `max_fields`
    /// of them and at most [`MAX_RECORD_BYTES`] of data; `None` at the end of the input.
    fn read_raw(&mut self, max_fields: usize) -> io::Result<Option<Raw>> {
        // csv-core skips the line ends before a record (blank lines, and the `\n` of a CRLF
        // it ended the previous record on); skip them here, so that the record's line is the
        // line of its first byte. csv-core, between records, would discard them the same way.
        loop {
            if self.pos == self.len {
                if self.eof {
                    break;
                }
                self.fill()?;
                continue;
            }
            match self.buf[self.pos] {
                b'\n' => self.line += 1,
                b'\r' => {}
                _ => break,
            }
            self.pos += 1;
        }
        let line = self.line;
        let mut quoting = Quoting::default();
        let mut last = 0u8;
        let (mut bytes, mut kept_fields, mut fields) = (0usize, 0usize, 0u64);
        let (mut too_long, mut too_wide) = (false, false);
        loop {
            if self.pos == self.len && !self.eof {
                self.fill()?;
            }
            // An empty input tells csv-core the input has ended.
            let input = &self.buf[self.pos..self.len];
            let (res, nin, nout, nend) =
                self.core
                    .read_record(input, &mut self.out[bytes..], &mut self.ends[kept_fields..]);
            let consumed = &input[..nin];
            for &b in consumed {
                quoting = quoting.step(b);
                self.line += u64::from(b == b'\n');
            }
            if let Some(&b) = consumed.last() {
                last = b;
            }
            self.pos += nin;
            bytes += nout;
            kept_fields += nend;
            match res {
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull => {
                    if too_long || self.out.len() > MAX_RECORD_BYTES {
                        // Too long to keep: read on to its end into the same buffer.
                        too_long = true;
                        bytes = 0;
                    } else {
                        let grown = (self.out.len() * 2).min(MAX_RECORD_BYTES + 1);
                        self.out.resize(grown, 0);
                    }
                }
                ReadRecordResult::OutputEndsFull => {
                    if too_wide || self.ends.len() > max_fields {
                        // Too wide to keep: count the fields only.
                        too_wide = true;
                        fields += kept_fields as u64;
                        kept_fields = 0;
                    } else {
                        let grown = (self.ends.len() * 2).min(max_fields + 1);
                        self.ends.resize(grown, 0);
                    }
                }
                ReadRecordResult::Record => {
                    fields += kept_fields as u64;
                    too_long |= bytes > MAX_RECORD_BYTES;
                    return Ok(Some(Raw {
                        line,
                        fields,
                        kept: !too_long && !too_wide,
                        bytes,
                        too_long,
                        // A terminator inside a quoted field is data: a record that ends
                        // there ended with the input.
                        unterminated: quoting == Quoting::Quoted,
                        last_line: self.line - u64::from(last == b'\n'),
                    }));
                }
                ReadRecordResult::End => return Ok(None),
            }
        }
    }

    /// Refills the input buffer; at the end of the input, sets `eof`.
    fn fill(&mut self) -> io::Result<()> {
        let n = loop {
            match self.input.read(&mut self.buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        self.pos = 0;
        self.len = n;
        self.eof = n == 0;
        Ok(())
    }
}

impl Raw {
    /// The fields whose ends are kept (0 when the record was not kept).
    fn fields_kept(&self) -> usize {
        if self.kept {
            // Kept records have at most `max_fields + 1` fields, which fit a usize.
            usize::try_from(self.fields).unwrap_or(0)
        } else {
            0
        }
    }
}

/// The fields of a record: `text` split at `ends`.
fn fields<'a>(text: &'a str, ends: &'a [usize]) -> impl Iterator<Item = &'a str> + 'a {
    let mut start = 0;
    ends.iter().map(move |&end| {
        // csv-core splits between bytes it copied whole; a field boundary inside a UTF-8
        // sequence would be a csv-core bug, and gives an empty field rather than a panic.
        let field = text.get(start..end).unwrap_or("");
        start = end;
        field
    })
}

/// The error for the first header cell that repeats an earlier one, naming both positions
/// (from 1) and the name only when [`shown_name`] shows it: in a file without a header row
/// the cells are data.
fn repeated_column(what: &str, headers: &[Arc<str>]) -> Option<ImportError> {
    let mut first = HashMap::new();
    for (j, h) in headers.iter().enumerate() {
        if h.is_empty() {
            continue;
        }
        if let Some(&i) = first.get(h) {
            let (i, j) = (i + 1, j + 1);
            return Some(ImportError::Format(match shown_name(h) {
                Some(name) => format!(
                    "{what}: column {name:?} appears more than once in the CSV header \
                     (columns {i} and {j})"
                ),
                None => format!("{what}: columns {i} and {j} of the CSV header have the same name"),
            }));
        }
        first.insert(Arc::clone(h), j);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::item::lines;
    use super::*;

    fn items(input: &str) -> Vec<Item> {
        let mut csv = Csv::new(input.as_bytes(), "input").unwrap();
        std::iter::from_fn(|| csv.next_item("input").unwrap()).collect()
    }

    #[test]
    fn csv_lines_count_the_header_and_multiline_fields() {
        let got = items("a,b\n1,\"x\ny\"\n2,z\n3\n4,w\n");
        assert_eq!(lines(&got), vec![2, 4, 5, 6]);
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

    #[test]
    fn a_repeated_cell_that_is_no_column_name_is_given_by_position_only() {
        let e = Csv::new(&b"Lee,Lee,x\n1,2,3\n"[..], "input")
            .err()
            .unwrap()
            .to_string();
        assert!(!e.contains("Lee"), "{e}");
        assert!(
            e.contains("columns 1 and 2 of the CSV header have the same name"),
            "{e}"
        );
        let e = Csv::new(&b"id,id\n1,2\n"[..], "input")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("column \"id\" appears more than once in the CSV header (columns 1 and 2)"),
            "{e}"
        );
    }

    #[test]
    fn a_duplicate_column_is_named() {
        let e = Csv::new(&b"id,name,id\n1,a,2\n"[..], "input")
            .err()
            .unwrap();
        assert!(
            e.to_string()
                .contains("column \"id\" appears more than once"),
            "{e}"
        );
    }

    #[test]
    fn a_record_over_the_cap_is_skipped_and_the_buffer_stays_bounded() {
        let huge = "y".repeat(5 << 20);
        let input = format!("a,b\n1,2\n3,\"{huge}\nmore\"\n4,5\n6,{huge}\n7,8\n");
        let mut csv = Csv::new(input.as_bytes(), "input").unwrap();
        let got: Vec<Item> = std::iter::from_fn(|| csv.next_item("input").unwrap()).collect();
        assert_eq!(lines(&got), vec![2, 3, 5, 6, 7]);
        for i in [1, 3] {
            assert!(
                matches!(&got[i], Item::Malformed { reason, .. } if reason == "record longer than 1048576 bytes"),
                "{:?}",
                got[i].line()
            );
        }
        assert!(
            matches!(&got[4], Item::Record(r) if r.get("b") == Some(&RawValue::Text("8".into())))
        );
        assert!(csv.out.len() <= MAX_RECORD_BYTES + 1, "{}", csv.out.len());
    }

    #[test]
    fn an_unterminated_quote_is_a_rejection_naming_the_lines_it_swallowed() {
        let mut input = String::from("a,b\n1,ok\n2,\"A12\n");
        for i in 4..=33 {
            input.push_str(&format!("{i},v{i}\n"));
        }
        let got = items(&input);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(matches!(&got[0], Item::Record(r) if r.line == 2));
        match &got[1] {
            Item::Malformed { line, reason } => {
                assert_eq!(*line, 3);
                assert_eq!(
                    reason,
                    "unterminated quoted field: its value runs to the end of the input, so \
                     lines 3 to 33 were not read as rows"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unterminated_quote_on_the_last_line_is_a_rejection() {
        let got = items("a,b\n1,2\n3,\"A12");
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(
            matches!(&got[1], Item::Malformed { line: 3, reason } if reason == "unterminated quoted field"),
            "{got:?}"
        );
        let e = Csv::new(&b"a,\"b\n1,2\n"[..], "input").err().unwrap();
        assert!(e.to_string().contains("never closed"), "{e}");
    }

    #[test]
    fn quotes_inside_unquoted_and_doubled_inside_quoted_fields_are_no_rejection() {
        let got = items("a,b\n1,x\"y\n2,\"p\"\"q\"\n3,\"\"\n");
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got.iter().all(|i| matches!(i, Item::Record(_))), "{got:?}");
        assert!(
            matches!(&got[1], Item::Record(r) if r.get("b") == Some(&RawValue::Text("p\"q".into())))
        );
    }

    #[test]
    fn crlf_rows_are_numbered_by_the_line_they_start_on() {
        let got = items("a,b\r\n1,2\r\n3\r\n4,\"x\r\ny\"\r\n5,6\r\n");
        assert_eq!(lines(&got), vec![2, 3, 4, 6]);
        assert!(matches!(&got[1], Item::Malformed { .. }));
    }

    #[test]
    fn rows_after_blank_lines_are_numbered_by_their_own_line() {
        let got = items("a,b\n\n1,2\n\n\n3\n4,5\r\n\r\n6,\"x\r\ny\"\r\n7,8");
        assert_eq!(lines(&got), vec![3, 6, 7, 9, 11]);
        assert!(matches!(&got[1], Item::Malformed { .. }));
    }

    #[test]
    fn a_row_too_wide_to_keep_still_counts_its_fields() {
        let input = format!("a,b\n{}\n1,2\n", vec!["x"; 100].join(","));
        let got = items(&input);
        assert!(
            matches!(&got[0], Item::Malformed { reason, .. } if reason == "has 100 fields, the header has 2"),
            "{got:?}"
        );
        assert!(matches!(&got[1], Item::Record(_)));
    }
}
