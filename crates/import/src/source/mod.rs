//! Streaming sources: CSV with a header row, NDJSON and a JSON array, read with bounded
//! memory (one record at a time) and physical line numbers. One file per format
//! (`csv.rs`, `json.rs`); what they yield is in `item.rs`.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::ImportError;
use crate::report::Warning;

mod csv;
mod item;
mod json;

pub use item::{Item, RawRecord, RawValue, MAX_RECORD_BYTES, TYPE_FIELD};

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

/// Counts the bytes read through it, for progress.
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
    Csv(csv::Csv<CountingReader<BoxRead>>),
    Ndjson(json::Ndjson<CountingReader<BoxRead>>),
    Json(json::JsonArray<CountingReader<BoxRead>>),
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
    /// the format is unknown, the file is empty (whatever its format: an empty NDJSON file
    /// is refused like an empty CSV or JSON file), or a CSV file's header row is missing or
    /// names a column twice.
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
        if size == Some(0) {
            return Err(ImportError::Format(format!("{what} is empty")));
        }
        let mut source = Self::build(Box::new(file), format, what)?;
        source.size = size;
        Ok(source)
    }

    /// Reads from any reader in the given format.
    ///
    /// # Errors
    /// [`ImportError::Format`] when a CSV input has no header row or its header names a
    /// column twice, [`ImportError::Read`] on an I/O error while reading it.
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
            Format::Csv => Inner::Csv(csv::Csv::new(counting, &what)?),
            Format::Ndjson => Inner::Ndjson(json::Ndjson::new(counting)),
            Format::Json => Inner::Json(json::JsonArray::new(counting)),
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

    /// The column names of a CSV input's header row (`None` for JSON inputs).
    pub(crate) fn headers(&self) -> Option<&[Arc<str>]> {
        match &self.inner {
            Inner::Csv(csv) => Some(csv.headers()),
            Inner::Ndjson(_) | Inner::Json(_) => None,
        }
    }

    /// What the reading noticed without refusing a row (a JSON array cut short or followed
    /// by more data), taken out of the source.
    pub(crate) fn take_warnings(&mut self) -> Vec<Warning> {
        match &mut self.inner {
            Inner::Json(array) => std::mem::take(&mut array.warnings),
            Inner::Csv(_) | Inner::Ndjson(_) => Vec::new(),
        }
    }

    /// The next record, `Ok(None)` at the end.
    ///
    /// # Errors
    /// [`ImportError::Read`] on an I/O error, [`ImportError::Format`] when a JSON input is
    /// not an array. A record that cannot be parsed is not an error: it is
    /// [`Item::Malformed`] and reading goes on.
    pub fn next_item(&mut self) -> Result<Option<Item>, ImportError> {
        let what = &self.what;
        let item = match &mut self.inner {
            Inner::Csv(csv) => csv.next_item(what)?,
            Inner::Ndjson(ndjson) => ndjson.next_item(what)?,
            Inner::Json(array) => array.next_item(what)?,
        };
        Ok(item.map(|item| self.apply_fixed_type(item)))
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

#[cfg(test)]
mod tests {
    use super::*;

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
