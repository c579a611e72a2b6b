//! JSON input: NDJSON (one object per line) and a JSON array streamed element by element,
//! each record numbered by the physical line it starts on.

use std::io::{self, BufRead, BufReader, Read};
use std::sync::Arc;

use super::item::{Item, RawRecord, RawValue, MAX_RECORD_BYTES, TYPE_FIELD};
use crate::error::ImportError;
use crate::report::Warning;

/// An NDJSON input being read.
pub(super) struct Ndjson<R> {
    reader: BufReader<R>,
    line: u64,
    buf: Vec<u8>,
}

impl<R: Read> Ndjson<R> {
    pub(super) fn new(input: R) -> Self {
        Self {
            reader: BufReader::with_capacity(64 * 1024, input),
            line: 0,
            buf: Vec::new(),
        }
    }

    /// The next object, `Ok(None)` at the end; blank lines are skipped. A line that is not
    /// an object, or too long, is [`Item::Malformed`].
    pub(super) fn next_item(&mut self, what: &str) -> Result<Option<Item>, ImportError> {
        loop {
            self.buf.clear();
            let n = read_line_bounded(&mut self.reader, &mut self.buf).map_err(|source| {
                ImportError::Read {
                    what: what.to_owned(),
                    source,
                }
            })?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            if self.buf.len() > MAX_RECORD_BYTES {
                return Ok(Some(Item::Malformed {
                    line: self.line,
                    reason: format!("line longer than {MAX_RECORD_BYTES} bytes"),
                }));
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some(parse_object(&self.buf, self.line)));
        }
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
pub(super) struct JsonArray<R> {
    reader: R,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    line: u64,
    state: ArrayState,
    element: Vec<u8>,
    /// A missing `]` or data after it.
    pub(super) warnings: Vec<Warning>,
}

#[derive(PartialEq, Eq)]
enum ArrayState {
    Start,
    Elements,
    Done,
}

impl<R: Read> JsonArray<R> {
    pub(super) fn new(reader: R) -> Self {
        Self {
            reader,
            buf: vec![0; 64 * 1024].into_boxed_slice(),
            pos: 0,
            len: 0,
            line: 1,
            state: ArrayState::Start,
            element: Vec::new(),
            warnings: Vec::new(),
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
                Some(b']') => {
                    self.end_of_array().map_err(JsonError::Io)?;
                    return Ok(None);
                }
                None => {
                    self.unclosed();
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
            // `[…, ]`: a trailing comma, tolerated as before.
            Some(b']') => {
                self.end_of_array().map_err(JsonError::Io)?;
                Ok(None)
            }
            None => {
                self.unclosed();
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
                        self.end_of_array().map_err(JsonError::Io)?;
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

impl<R: Read> JsonArray<R> {
    /// After the array's `]`: anything but white space after it is a warning at the line
    /// where it starts (read no further: it may be large).
    fn end_of_array(&mut self) -> io::Result<()> {
        self.state = ArrayState::Done;
        if self.peek_non_ws()?.is_some() {
            self.warnings.push(Warning {
                line: self.line,
                field: None,
                reason: "data after the end of the JSON array is ignored".to_owned(),
            });
        }
        Ok(())
    }

    /// The input ended where an element or the array's `]` was expected.
    fn unclosed(&mut self) {
        self.state = ArrayState::Done;
        self.warnings.push(Warning {
            line: self.line,
            field: None,
            reason: "the JSON array ends without ']': the input may be truncated".to_owned(),
        });
    }

    /// The next element as a record, `Ok(None)` at the end of the array.
    pub(super) fn next_item(&mut self, what: &str) -> Result<Option<Item>, ImportError> {
        let element = self.next_element().map_err(|e| match e {
            JsonError::Io(source) => ImportError::Read {
                what: what.to_owned(),
                source,
            },
            JsonError::NotArray => ImportError::Format(format!("{what} is not a JSON array")),
        })?;
        Ok(element.map(|element| match element {
            Element::Bytes { line, bytes } => parse_object(bytes, line),
            Element::TooLong { line } => Item::Malformed {
                line,
                reason: format!("element longer than {MAX_RECORD_BYTES} bytes"),
            },
            Element::Unterminated { line } => Item::Malformed {
                line,
                reason: "unterminated JSON element".to_owned(),
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::item::lines;
    use super::*;

    fn ndjson(input: &str) -> Vec<Item> {
        let mut reader = Ndjson::new(input.as_bytes());
        std::iter::from_fn(|| reader.next_item("input").unwrap()).collect()
    }

    fn array(input: &str) -> Vec<Item> {
        let mut reader = JsonArray::new(input.as_bytes());
        std::iter::from_fn(|| reader.next_item("input").unwrap()).collect()
    }

    #[test]
    fn ndjson_reports_bad_lines_and_skips_blank_ones() {
        let input = "{\"type\":\"a\",\"x\":1}\n\n{oops\n[1]\n{\"x\":\"y\"}";
        let got = ndjson(input);
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

    fn warnings(input: &str) -> (usize, Vec<(u64, String)>) {
        let mut reader = JsonArray::new(input.as_bytes());
        let n = std::iter::from_fn(|| reader.next_item("input").unwrap()).count();
        let w = reader
            .warnings
            .iter()
            .map(|w| (w.line, w.reason.clone()))
            .collect();
        (n, w)
    }

    #[test]
    fn a_truncated_array_and_data_after_it_are_warned_with_the_line() {
        let (n, w) = warnings("[\n{\"a\":1},\n{\"a\":2},\n");
        assert_eq!(n, 2);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].0, 4);
        assert!(w[0].1.contains("ends without ']'"), "{w:?}");
        let (n, w) = warnings("[{\"a\":1}]\n\n  [{\"secret\":2}]");
        assert_eq!(n, 1);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].0, 3);
        assert!(w[0].1.contains("after the end"), "{w:?}");
        assert!(!w[0].1.contains("secret"));
        assert_eq!(warnings("[").1.len(), 1);
        assert_eq!(warnings(" [ {\"a\":1} , ] \n").1.len(), 0);
    }

    #[test]
    fn json_array_is_split_with_start_lines() {
        let input =
            "[\n {\"a\": \"x,]}\\\"\"},\n {\"b\": [1, {\"c\": 2}]}\n ,\n 3, {\"d\":\n null}\n]";
        let got = array(input);
        assert_eq!(lines(&got), vec![2, 3, 5, 5]);
        match &got[0] {
            Item::Record(r) => assert_eq!(r.get("a"), Some(&RawValue::Text("x,]}\"".into()))),
            other => panic!("{other:?}"),
        }
        assert!(matches!(&got[2], Item::Malformed { .. }));
        assert!(array("[]").is_empty());
        let mut s = JsonArray::new(&b"[]"[..]);
        assert!(s.next_item("input").unwrap().is_none());
        assert!(s.warnings.is_empty());
        let mut s = JsonArray::new(&b"{}"[..]);
        assert!(matches!(s.next_item("input"), Err(ImportError::Format(_))));
    }
}
