//! The CSV, NDJSON and JSON readers and the field validation never panic on any input, and
//! every item read is a record or a malformed row with a line number.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vitals::health::records;
use vitals_import::{validate, Format, Item, Registry, Source};

fn registry() -> &'static Registry {
    static R: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    R.get_or_init(records::registry)
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let format = [Format::Csv, Format::Ndjson, Format::Json][usize::from(selector % 3)];
    let Ok(mut source) = Source::from_reader(std::io::Cursor::new(body.to_vec()), format) else {
        return; // an input error (a CSV without header): reported, not a panic
    };
    if selector & 0x80 != 0 {
        source = source.with_type(records::VACCINATION);
    }
    // Bounded: an input of n bytes has at most n + 1 records.
    for _ in 0..=body.len() {
        match source.next_item() {
            Ok(Some(Item::Record(record))) => {
                let _ = validate(registry(), record);
            }
            Ok(Some(Item::Malformed { reason, .. })) => assert!(!reason.is_empty()),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return,
        }
    }
});
