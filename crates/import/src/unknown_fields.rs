//! Fields of JSON and NDJSON records that no column of their type has: their values are
//! ignored, which the report says (a CSV header's unknown columns are warned from the header,
//! `Importer::unknown_columns`; a JSON record's keys are its own, so they are watched record
//! by record here).
//!
//! One warning per type and field name, at the first line it appears on; a key is named only
//! when [`shown_name`] shows it (a lowercase identifier), since a client chooses the keys and
//! one may be a value (`{"123-45-6789": …}`); the others are one warning per type, unnamed.
//! At most [`MAX_LISTED`] are listed, then one more says where the others begin: memory stays
//! bounded whatever the input.

use crate::report::Warning;
use crate::source::RawRecord;
use crate::spec::{shown_name, Registry};

/// Distinct unknown fields listed; those after are said in one warning.
pub(crate) const MAX_LISTED: usize = 32;

/// What was seen so far.
#[derive(Debug, Default)]
pub(crate) struct UnknownFields {
    /// (type index, the key when shown) already warned of: at most [`MAX_LISTED`], so a
    /// scan finds one without a key allocated for each field of each record.
    seen: Vec<(usize, Option<Box<str>>)>,
    warnings: Vec<Warning>,
    /// The line of the first field not listed (past [`MAX_LISTED`]).
    unlisted: Option<u64>,
}

impl UnknownFields {
    /// Notes the fields of `record` that its type (when registered) has no column for.
    pub(crate) fn note(&mut self, registry: &Registry, record: &RawRecord) {
        let Some(si) = record.type_name().and_then(|t| registry.index(t)) else {
            return; // an unknown type is rejected, its fields with it
        };
        let spec = &registry.specs()[si];
        for name in record.field_names() {
            if spec.column_index(name).is_some() {
                continue;
            }
            let shown = shown_name(name);
            if self
                .seen
                .iter()
                .any(|(s, n)| *s == si && n.as_deref() == shown)
            {
                continue;
            }
            if self.seen.len() >= MAX_LISTED {
                self.unlisted.get_or_insert(record.line());
                continue;
            }
            self.warnings.push(Warning {
                line: record.line(),
                field: shown.map(str::to_owned),
                reason: match shown {
                    Some(_) => format!("unknown field of {}: its values are ignored", spec.name()),
                    None => format!(
                        "a field of {} that is no column (its name is not shown): its values \
                         are ignored",
                        spec.name()
                    ),
                },
            });
            self.seen.push((si, shown.map(Box::from)));
        }
    }

    /// The warnings, in the order found.
    pub(crate) fn into_warnings(mut self) -> Vec<Warning> {
        if let Some(line) = self.unlisted {
            self.warnings.push(Warning {
                line,
                field: None,
                reason: format!(
                    "more unknown fields from this line on, not listed (past {MAX_LISTED}): \
                     their values are ignored"
                ),
            });
        }
        self.warnings
    }
}
