//! The reading thread: parses and validates records and hashes their keys (the `parse`
//! stage), and sends them to the database loop a chunk at a time, at most two chunks ahead.

use tokio::sync::mpsc;

use crate::error::ImportError;
use crate::keys::Hash128;
use crate::report::{Rejection, Warning};
use crate::row::PreparedRow;
use crate::source::{Item, Source};
use crate::spec::Registry;
use crate::unknown_fields::UnknownFields;
use crate::validate::validate;

/// What the reading thread sends.
pub(crate) enum Msg {
    /// The next rows of the input.
    Chunk(Chunk),
    /// More than `max_errors` rows were rejected; nothing follows.
    Stopped,
    /// The input could not be read further; nothing follows.
    Failed(ImportError),
}

/// Most rows a new chunk reserves room for; it grows past that as rows come.
const RESERVED_ROWS: usize = 1024;

/// Consecutive records of the input, parsed: the valid rows and the refused ones.
pub(crate) struct Chunk {
    /// The line of the chunk's first record.
    pub(crate) first_line: u64,
    /// The rows that passed field validation, in line order.
    pub(crate) rows: Vec<PreparedRow>,
    /// The records that did not, in line order.
    pub(crate) invalid: Vec<Invalid>,
}

impl Chunk {
    /// A chunk with room for `n` rows, or for [`RESERVED_ROWS`] when `n` is larger: a
    /// chunk of a small input then costs no more than its rows.
    fn with_capacity(n: usize) -> Self {
        Self {
            first_line: 0,
            rows: Vec::with_capacity(n.min(RESERVED_ROWS)),
            invalid: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.rows.len() + self.invalid.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A record that could not be parsed or failed field validation.
pub(crate) struct Invalid {
    /// Index of its type in the registry, when it names a registered one.
    pub(crate) spec: Option<usize>,
    /// Why (at least one).
    pub(crate) problems: Vec<Rejection>,
}

/// The `parse` stage: one item of the source becomes a [`PreparedRow`] (fields typed, keys
/// hashed) or the reasons it cannot be one.
pub(crate) fn parse(
    registry: &Registry,
    hasher: &Hash128,
    item: Item,
) -> Result<PreparedRow, Invalid> {
    match item {
        Item::Record(record) => {
            let spec = record.type_name().and_then(|t| registry.index(t));
            match validate(registry, record) {
                Ok(row) => Ok(PreparedRow::new(registry, hasher, row)),
                Err(problems) => Err(Invalid { spec, problems }),
            }
        }
        Item::Malformed { line, reason } => Err(Invalid {
            spec: None,
            problems: vec![Rejection {
                line,
                type_name: None,
                field: None,
                reason,
            }],
        }),
    }
}

/// What the reading thread is given.
pub(crate) struct ReadTask {
    pub(crate) source: Source,
    pub(crate) hasher: Hash128,
    pub(crate) chunk_size: usize,
    pub(crate) max_errors: Option<u64>,
}

/// The reading thread: parse, send chunks, stop when the receiver is gone. Returns what the
/// source noticed without refusing a row, however it ended: at the end of the input, stopped
/// past `max_errors`, failed, or with the receiver gone (the database loop stopped first), so
/// a report of an import that stopped early still lists the warnings of what was read.
pub(crate) fn read(
    mut task: ReadTask,
    registry: &Registry,
    tx: &mpsc::Sender<Msg>,
) -> Vec<Warning> {
    // A CSV input's unknown columns are warned from its header; a JSON record's are its own.
    let mut unknown = task.source.headers().is_none().then(UnknownFields::default);
    send_chunks(&mut task, &mut unknown, registry, tx);
    let mut warnings = task.source.take_warnings();
    warnings.extend(
        unknown
            .map(UnknownFields::into_warnings)
            .unwrap_or_default(),
    );
    warnings
}

/// [`read`]'s loop: every item of the task's source parsed, in chunks of its `chunk_size`,
/// until the input's end, a failure, more than `max_errors` rejections, or the receiver gone.
fn send_chunks(
    task: &mut ReadTask,
    unknown: &mut Option<UnknownFields>,
    registry: &Registry,
    tx: &mpsc::Sender<Msg>,
) {
    let (chunk_size, max_errors) = (task.chunk_size, task.max_errors);
    let (source, hasher) = (&mut task.source, &task.hasher);
    let mut chunk = Chunk::with_capacity(chunk_size);
    let mut rejected = 0u64;
    loop {
        let item = match source.next_item() {
            Ok(Some(item)) => item,
            Ok(None) => break,
            Err(e) => {
                if !chunk.is_empty()
                    && tx
                        .blocking_send(Msg::Chunk(std::mem::replace(
                            &mut chunk,
                            Chunk::with_capacity(0),
                        )))
                        .is_err()
                {
                    return;
                }
                let _ = tx.blocking_send(Msg::Failed(e));
                return;
            }
        };
        if chunk.is_empty() {
            chunk.first_line = item.line();
        }
        if let (Some(unknown), Item::Record(record)) = (&mut *unknown, &item) {
            unknown.note(registry, record);
        }
        match parse(registry, hasher, item) {
            Ok(row) => chunk.rows.push(row),
            Err(invalid) => {
                rejected += 1;
                chunk.invalid.push(invalid);
            }
        }
        let over = max_errors.is_some_and(|m| rejected > m);
        if chunk.len() >= chunk_size || over {
            let full = std::mem::replace(&mut chunk, Chunk::with_capacity(chunk_size));
            if tx.blocking_send(Msg::Chunk(full)).is_err() {
                return;
            }
            if over {
                let _ = tx.blocking_send(Msg::Stopped);
                return;
            }
        }
    }
    if !chunk.is_empty() {
        let _ = tx.blocking_send(Msg::Chunk(chunk));
    }
}
