//! Streaming sources: CSV with a header row, NDJSON and a JSON array, read with bounded
//! memory (one record at a time) and physical line numbers.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::ImportError;

/// Largest NDJSON line or JSON array element accepted; a longer one is a rejection, so one
/// broken record cannot exhaust memory.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// The field that names a record's type in NDJSON, JSON and (optionally) CSV input.
pub const TYPE_FIELD: &str = "type";

/// An input format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// Comma-separated values with a header row (line 1).
    Csv,
    /// One JSON object per line.
    Ndjson,
    /// One JSON array of objects, streamed element by element.
    Json,
}

impl Format {
    /// The format a file's extension names: `.csv`, `.ndjson`/`.jsonl`, `.json`.
    #[must_use]
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "ndjson" | "jsonl" => Some(Format::Ndjson),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

impl FromStr for Format {
    type Err = ImportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "ndjson" | "jsonl" => Ok(Format::Ndjson),
            "json" => Ok(Format::Json),
            _ => Err(ImportError::Format(format!(
                "unknown format {s:?}; expected csv, ndjson or json"
            ))),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
            Format::Json => "json",
        })
    }
}

/// A field's value as read, before validation.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RawValue {
    /// Absent, `null` or an empty CSV field.
    Null,
    /// A string (every CSV field is one).
    Text(String),
    /// A JSON number.
    Number(serde_json::Number),
    /// A JSON boolean.
    Bool(bool),
    /// A JSON array or object, which no column accepts.
    Nested,
}

impl From<serde_json::Value> for RawValue {
    fn from(v: serde_json::Value) -> Self {
        match v {
            serde_json::Value::Null => RawValue::Null,
            serde_json::Value::String(s) => RawValue::Text(s),
            serde_json::Value::Number(n) => RawValue::Number(n),
            serde_json::Value::Bool(b) => RawValue::Bool(b),
            _ => RawValue::Nested,
        }
    }
}

/// One record as read: its line, its type name and its fields.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord {
    line: u64,
    type_name: Option<String>,
    fields: Vec<(Arc<str>, RawValue)>,
}

impl RawRecord {
    /// A record from parts (for custom sources and tests).
    #[must_use]
    pub fn new(line: u64, type_name: Option<String>, fields: Vec<(Arc<str>, RawValue)>) -> Self {
        Self {
            line,
            type_name,
            fields,
        }
    }

    /// The physical line the record starts on (1-based; a CSV header is line 1).
    #[must_use]
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The record's type name, if the record or the source gave one.
    #[must_use]
    pub fn type_name(&self) -> Option<&str> {
        self.type_name.as_deref()
    }

    /// The value of field `name` (`None` when the field is absent).
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&RawValue> {
        self.fields
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| v)
    }

    /// Takes the value of field `name` out of the record.
    pub(crate) fn take(&mut self, name: &str) -> Option<RawValue> {
        self.fields
            .iter_mut()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| std::mem::replace(v, RawValue::Null))
    }
}

/// What a source yields: a record, or a line that could not be parsed into one.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Item {
    /// A parsed record.
    Record(RawRecord),
    /// A record that could not be parsed; the reason never quotes the input.
    Malformed {
        /// Line where the record starts.
        line: u64,
        /// What is wrong.
        reason: String,
    },
}

struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

type BoxRead = Box<dyn Read + Send>;

enum Inner {
    Csv {
        reader: csv::Reader<CountingReader<BoxRead>>,
        headers: Vec<Arc<str>>,
        record: csv::StringRecord,
    },
    Ndjson {
        reader: BufReader<CountingReader<BoxRead>>,
        line: u64,
        buf: Vec<u8>,
    },
    Json(JsonArray<CountingReader<BoxRead>>),
}

/// A streaming source of records. `Send`, so the importer reads it on a blocking thread
/// while the database works on the previous chunk.
pub struct Source {
    inner: Inner,
    fixed_type: Option<String>,
    bytes_read: Arc<AtomicU64>,
    size: Option<u64>,
    what: String,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("what", &self.what)
            .field("fixed_type", &self.fixed_type)
            .finish_non_exhaustive()
    }
}

impl Source {
    /// Opens a file; the format comes from `format` or else from the extension.
    ///
    /// # Errors
    /// [`ImportError::Read`] when the file cannot be opened, [`ImportError::Format`] when
    /// the format is unknown or a CSV file has no header row.
    pub fn open(path: impl AsRef<Path>, format: Option<Format>) -> Result<Self, ImportError> {
        let path = path.as_ref();
        let what = path.display().to_string();
        let format = match format.or_else(|| Format::from_path(path)) {
            Some(f) => f,
            None => {
                return Err(ImportError::Format(format!(
                    "cannot tell the format of {what} from its extension; \
                     expected .csv, .ndjson, .jsonl or .json"
                )))
            }
        };
        let file = File::open(path).map_err(|source| ImportError::Read {
            what: what.clone(),
            source,
        })?;
        let size = file.metadata().ok().map(|m| m.len());
        let mut source = Self::build(Box::new(file), format, what)?;
        source.size = size;
        Ok(source)
    }

    /// Reads from any reader in the given format.
    ///
    /// # Errors
    /// [`ImportError::Format`] when a CSV input has no header row, [`ImportError::Read`] on
    /// an I/O error while reading it.
    pub fn from_reader(
        reader: impl Read + Send + 'static,
        format: Format,
    ) -> Result<Self, ImportError> {
        Self::build(Box::new(reader), format, "input".to_owned())
    }

    fn build(reader: BoxRead, format: Format, what: String) -> Result<Self, ImportError> {
        let bytes_read = Arc::new(AtomicU64::new(0));
        let counting = CountingReader {
            inner: reader,
            count: Arc::clone(&bytes_read),
        };
        let inner = match format {
            Format::Csv => {
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(true)
                    .flexible(false)
                    .from_reader(counting);
                let headers = match reader.headers() {
                    Ok(h) => h
                        .iter()
                        .map(|h| Arc::from(h.trim()))
                        .collect::<Vec<Arc<str>>>(),
                    Err(e) => return Err(csv_fatal(e, &what)),
                };
                if headers.iter().all(|h| h.is_empty()) {
                    return Err(ImportError::Format(format!("{what} has no CSV header row")));
                }
                Inner::Csv {
                    reader,
                    headers,
                    record: csv::StringRecord::new(),
                }
            }
            Format::Ndjson => Inner::Ndjson {
                reader: BufReader::with_capacity(64 * 1024, counting),
                line: 0,
                buf: Vec::new(),
            },
            Format::Json => Inner::Json(JsonArray::new(counting)),
        };
        Ok(Self {
            inner,
            fixed_type: None,
            bytes_read,
            size: None,
            what,
        })
    }

    /// Gives every record the type `name`; a record that names another type is rejected.
    #[must_use]
    pub fn with_type(mut self, name: impl Into<String>) -> Self {
        self.fixed_type = Some(name.into());
        self
    }

    /// The fixed type, if any.
    #[must_use]
    pub fn fixed_type(&self) -> Option<&str> {
        self.fixed_type.as_deref()
    }

    /// Bytes read so far (for progress).
    #[must_use]
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    /// A shared counter of the bytes read so far.
    #[must_use]
    pub fn bytes_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.bytes_read)
    }

    /// The size of the input file, when known.
    #[must_use]
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// The next record, `Ok(None)` at the end.
    ///
    /// # Errors
    /// [`ImportError::Read`] on an I/O error, [`ImportError::Format`] when a JSON input is
    /// not an array. A record that cannot be parsed is not an error: it is
    /// [`Item::Malformed`] and reading goes on.
    pub fn next_item(&mut self) -> Result<Option<Item>, ImportError> {
        let item = match &mut self.inner {
            Inner::Csv {
                reader,
                headers,
                record,
            } => match reader.read_record(record) {
                Ok(false) => return Ok(None),
                Ok(true) => {
                    let line = record.position().map_or(0, csv::Position::line);
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
                    let line = e.position().map_or(0, csv::Position::line);
                    match e.kind() {
                        csv::ErrorKind::UnequalLengths {
                            expected_len, len, ..
                        } => Item::Malformed {
                            line,
                            reason: format!("has {len} fields, the header has {expected_len}"),
                        },
                        csv::ErrorKind::Utf8 { .. } => Item::Malformed {
                            line,
                            reason: "not valid UTF-8".to_owned(),
                        },
                        _ => return Err(csv_fatal(e, &self.what)),
                    }
                }
            },
            Inner::Ndjson { reader, line, buf } => loop {
                buf.clear();
                let n = read_line_bounded(reader, buf).map_err(|source| ImportError::Read {
                    what: self.what.clone(),
                    source,
                })?;
                if n == 0 {
                    return Ok(None);
                }
                *line += 1;
                if buf.len() > MAX_RECORD_BYTES {
                    break Item::Malformed {
                        line: *line,
                        reason: format!("line longer than {MAX_RECORD_BYTES} bytes"),
                    };
                }
                if buf.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                break parse_object(buf, *line);
            },
            Inner::Json(array) => match array.next_element().map_err(|e| match e {
                JsonError::Io(source) => ImportError::Read {
                    what: self.what.clone(),
                    source,
                },
                JsonError::NotArray => {
                    ImportError::Format(format!("{} is not a JSON array", self.what))
                }
            })? {
                None => return Ok(None),
                Some(Element::Bytes { line, bytes }) => parse_object(bytes, line),
                Some(Element::TooLong { line }) => Item::Malformed {
                    line,
                    reason: format!("element longer than {MAX_RECORD_BYTES} bytes"),
                },
                Some(Element::Unterminated { line }) => Item::Malformed {
                    line,
                    reason: "unterminated JSON element".to_owned(),
                },
            },
        };
        Ok(Some(self.apply_fixed_type(item)))
    }

    fn apply_fixed_type(&self, item: Item) -> Item {
        let Some(fixed) = &self.fixed_type else {
            return item;
        };
        match item {
            Item::Record(mut rec) => match &rec.type_name {
                None => {
                    rec.type_name = Some(fixed.clone());
                    Item::Record(rec)
                }
                Some(t) if t == fixed => Item::Record(rec),
                Some(_) => Item::Malformed {
                    line: rec.line,
                    reason: format!("its type differs from the fixed type {fixed:?}"),
                },
            },
            malformed => malformed,
        }
    }
}

fn csv_fatal(e: csv::Error, what: &str) -> ImportError {
    match e.into_kind() {
        csv::ErrorKind::Io(source) => ImportError::Read {
            what: what.to_owned(),
            source,
        },
        _ => ImportError::Format(format!("{what} is not readable CSV")),
    }
}

/// Reads one line into `buf` (without the newline), keeping at most
/// `MAX_RECORD_BYTES + 1` bytes of it; returns the bytes consumed (0 at the end).
fn read_line_bounded(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut consumed = 0;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(consumed);
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], i + 1),
            None => (available, available.len()),
        };
        let room = (MAX_RECORD_BYTES + 1).saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let found_newline = done > chunk.len();
        reader.consume(done);
        consumed += done;
        if found_newline {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(consumed);
        }
    }
}

fn parse_object(bytes: &[u8], line: u64) -> Item {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(serde_json::Value::Object(map)) => {
            let mut type_name = None;
            let mut fields = Vec::with_capacity(map.len());
            for (k, v) in map {
                if k == TYPE_FIELD {
                    match v {
                        serde_json::Value::String(s) => type_name = Some(s),
                        serde_json::Value::Null => {}
                        _ => {
                            return Item::Malformed {
                                line,
                                reason: "its \"type\" is not a string".to_owned(),
                            }
                        }
                    }
                } else {
                    fields.push((Arc::from(k.as_str()), RawValue::from(v)));
                }
            }
            Item::Record(RawRecord {
                line,
                type_name,
                fields,
            })
        }
        Ok(_) => Item::Malformed {
            line,
            reason: "not a JSON object".to_owned(),
        },
        // serde_json's messages can quote the input; give the position only.
        Err(e) => Item::Malformed {
            line: line + e.line().saturating_sub(1) as u64,
            reason: format!("malformed JSON at column {}", e.column()),
        },
    }
}

enum JsonError {
    Io(io::Error),
    NotArray,
}

enum Element<'a> {
    Bytes { line: u64, bytes: &'a [u8] },
    TooLong { line: u64 },
    Unterminated { line: u64 },
}

/// Splits a JSON array into its top-level elements without parsing them, tracking strings
/// and nesting, so memory stays at one element however long the array is.
struct JsonArray<R> {
    reader: R,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    line: u64,
    state: ArrayState,
    element: Vec<u8>,
}

#[derive(PartialEq, Eq)]
enum ArrayState {
    Start,
    Elements,
    Done,
}

impl<R: Read> JsonArray<R> {
    fn new(reader: R) -> Self {
        Self {
            reader,
            buf: vec![0; 64 * 1024].into_boxed_slice(),
            pos: 0,
            len: 0,
            line: 1,
            state: ArrayState::Start,
            element: Vec::new(),
        }
    }

    fn byte(&mut self) -> io::Result<Option<u8>> {
        if self.pos == self.len {
            self.len = loop {
                match self.reader.read(&mut self.buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            self.pos = 0;
            if self.len == 0 {
                return Ok(None);
            }
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        if b == b'\n' {
            self.line += 1;
        }
        Ok(Some(b))
    }

    fn peek_non_ws(&mut self) -> io::Result<Option<u8>> {
        loop {
            match self.byte()? {
                Some(b) if b.is_ascii_whitespace() => continue,
                other => return Ok(other),
            }
        }
    }

    fn next_element(&mut self) -> Result<Option<Element<'_>>, JsonError> {
        if self.state == ArrayState::Start {
            match self.peek_non_ws().map_err(JsonError::Io)? {
                Some(b'[') => self.state = ArrayState::Elements,
                _ => return Err(JsonError::NotArray),
            }
            // An empty array.
            let first = self.peek_non_ws().map_err(JsonError::Io)?;
            match first {
                Some(b']') | None => {
                    self.state = ArrayState::Done;
                    return Ok(None);
                }
                Some(b) => {
                    self.element.clear();
                    return self.scan(b);
                }
            }
        }
        if self.state == ArrayState::Done {
            return Ok(None);
        }
        match self.peek_non_ws().map_err(JsonError::Io)? {
            None | Some(b']') => {
                self.state = ArrayState::Done;
                Ok(None)
            }
            Some(b) => {
                self.element.clear();
                self.scan(b)
            }
        }
    }

    /// Reads one element starting with byte `first` up to the `,` or `]` that ends it.
    fn scan(&mut self, first: u8) -> Result<Option<Element<'_>>, JsonError> {
        let line = self.line;
        let mut depth = 0usize;
        let mut in_string = false;
        let mut escaped = false;
        let mut b = first;
        loop {
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
            } else {
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' if depth > 0 => depth -= 1,
                    b']' => {
                        self.state = ArrayState::Done;
                        break;
                    }
                    b',' if depth == 0 => break,
                    _ => {}
                }
            }
            if self.element.len() <= MAX_RECORD_BYTES {
                self.element.push(b);
            }
            match self.byte().map_err(JsonError::Io)? {
                Some(next) => b = next,
                None => {
                    self.state = ArrayState::Done;
                    return Ok(Some(Element::Unterminated { line }));
                }
            }
        }
        if self.element.len() > MAX_RECORD_BYTES {
            return Ok(Some(Element::TooLong { line }));
        }
        // The line where the element starts: the scan began on its first byte.
        Ok(Some(Element::Bytes {
            line,
            bytes: &self.element,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(input: &str, format: Format) -> Vec<Item> {
        let mut s = Source::from_reader(io::Cursor::new(input.to_owned()), format).unwrap();
        let mut out = Vec::new();
        while let Some(i) = s.next_item().unwrap() {
            out.push(i);
        }
        out
    }

    fn lines(items: &[Item]) -> Vec<u64> {
        items
            .iter()
            .map(|i| match i {
                Item::Record(r) => r.line(),
                Item::Malformed { line, .. } => *line,
            })
            .collect()
    }

    #[test]
    fn csv_lines_count_the_header_and_multiline_fields() {
        let input = "a,b\n1,\"x\ny\"\n2,z\n3\n4,w\n";
        let got = items(input, Format::Csv);
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
        let e = Source::from_reader(io::Cursor::new(String::new()), Format::Csv).unwrap_err();
        assert!(e.to_string().contains("no CSV header"), "{e}");
    }

    #[test]
    fn ndjson_reports_bad_lines_and_skips_blank_ones() {
        let input = "{\"type\":\"a\",\"x\":1}\n\n{oops\n[1]\n{\"x\":\"y\"}";
        let got = items(input, Format::Ndjson);
        assert_eq!(lines(&got), vec![1, 3, 4, 5]);
        assert!(
            matches!(&got[1], Item::Malformed { reason, .. } if reason.starts_with("malformed JSON"))
        );
        assert!(matches!(&got[2], Item::Malformed { reason, .. } if reason == "not a JSON object"));
        match &got[0] {
            Item::Record(r) => assert_eq!(r.type_name(), Some("a")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn json_array_is_split_with_start_lines() {
        let input =
            "[\n {\"a\": \"x,]}\\\"\"},\n {\"b\": [1, {\"c\": 2}]}\n ,\n 3, {\"d\":\n null}\n]";
        let got = items(input, Format::Json);
        assert_eq!(lines(&got), vec![2, 3, 5, 5]);
        match &got[0] {
            Item::Record(r) => assert_eq!(r.get("a"), Some(&RawValue::Text("x,]}\"".into()))),
            other => panic!("{other:?}"),
        }
        assert!(matches!(&got[2], Item::Malformed { .. }));
        assert!(items("[]", Format::Json).is_empty());
        let mut s = Source::from_reader(io::Cursor::new("{}".to_owned()), Format::Json).unwrap();
        assert!(matches!(s.next_item(), Err(ImportError::Format(_))));
    }

    #[test]
    fn fixed_type_fills_and_checks() {
        let mut s = Source::from_reader(
            io::Cursor::new("{\"x\":1}\n{\"type\":\"b\"}\n".to_owned()),
            Format::Ndjson,
        )
        .unwrap()
        .with_type("a");
        match s.next_item().unwrap() {
            Some(Item::Record(r)) => assert_eq!(r.type_name(), Some("a")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            s.next_item().unwrap(),
            Some(Item::Malformed { line: 2, .. })
        ));
    }

    #[test]
    fn format_from_extension() {
        assert_eq!(Format::from_path(Path::new("a.CSV")), Some(Format::Csv));
        assert_eq!(
            Format::from_path(Path::new("a.jsonl")),
            Some(Format::Ndjson)
        );
        assert_eq!(Format::from_path(Path::new("a.json")), Some(Format::Json));
        assert_eq!(Format::from_path(Path::new("a.txt")), None);
        assert!("xml".parse::<Format>().is_err());
    }
}
