//! The operation and the table (and the model named after it) of a sanitised statement, for
//! statistics, reports, spans and metrics.
//!
//! It reads the sanitiser's output (keywords upper case, literals already `?`, layout
//! normalised), so it needs no lexer of its own: a split on spaces and punctuation, each
//! token with its parenthesis depth.

use std::sync::Arc;

/// The operation and the first table of a sanitised statement: the main verb (through
/// `WITH`), and the first table after `FROM` / `INTO` / `UPDATE` as written, without its
/// schema (`vaccinations`): the spans' and metrics' `db.collection.name`; [`model_name`]
/// makes the statistics' model of it.
pub(crate) fn operation_and_table(sanitized: &str) -> (Arc<str>, Option<Arc<str>>) {
    let toks = tokens(sanitized);
    let first = toks.first().map_or("", |t| t.0);
    let verbs = ["SELECT", "INSERT", "UPDATE", "DELETE"];
    let (op_idx, op) = if first == "WITH" || first == "(" {
        match toks
            .iter()
            .enumerate()
            .filter(|(_, t)| verbs.contains(&t.0))
            .min_by_key(|(_, t)| t.1)
        {
            Some((i, t)) => (i, t.0),
            None => (0, first),
        }
    } else {
        (0, first)
    };
    let operation: Arc<str> = if op.is_empty() {
        Arc::from("UNKNOWN")
    } else {
        Arc::from(op)
    };
    let depth = toks.get(op_idx).map_or(0, |t| t.1);
    let after = match op {
        "SELECT" | "DELETE" => "FROM",
        "INSERT" => "INTO",
        "UPDATE" => "UPDATE",
        _ => return (operation, None),
    };
    let start = if op == "UPDATE" {
        Some(op_idx)
    } else {
        toks.iter()
            .enumerate()
            .skip(op_idx)
            .find(|(_, t)| t.0 == after && t.1 == depth)
            .map(|(i, _)| i)
    };
    let model = start.and_then(|i| {
        let mut j = i + 1;
        if toks.get(j).map(|t| t.0) == Some("ONLY") {
            j += 1;
        }
        let mut name = toks.get(j)?.0;
        // `schema.table`: the table is the last part.
        while toks.get(j + 1).map(|t| t.0) == Some(".") {
            j += 2;
            name = toks.get(j)?.0;
        }
        let name = name.trim_matches('"');
        let ok = name
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_');
        ok.then(|| Arc::from(name))
    });
    (operation, model)
}

/// Splits a sanitised statement into (token, paren depth).
fn tokens(s: &str) -> Vec<(&str, u32)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut depth = 0u32;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' => i += 1,
            b'(' | b')' | b',' | b'.' | b';' => {
                if c == b')' {
                    depth = depth.saturating_sub(1);
                }
                out.push((&s[i..i + 1], depth));
                if c == b'(' {
                    depth += 1;
                }
                i += 1;
            }
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += 1;
                }
                let end = (j + 1).min(b.len());
                out.push((&s[i..end], depth));
                i = end;
            }
            _ => {
                let mut j = i + 1;
                while j < b.len() && !matches!(b[j], b' ' | b'(' | b')' | b',' | b'.' | b';' | b'"')
                {
                    j += 1;
                }
                out.push((&s[i..j], depth));
                i = j;
            }
        }
    }
    out
}

/// `health_records` → `HealthRecord`, `allergies` → `Allergy`.
pub(crate) fn model_name(table: &str) -> String {
    let parts: Vec<&str> = table.split('_').filter(|p| !p.is_empty()).collect();
    let mut out = String::with_capacity(table.len());
    for (i, part) in parts.iter().enumerate() {
        let lower = part.to_lowercase();
        let word = if i + 1 == parts.len() {
            singular(&lower)
        } else {
            lower
        };
        let mut chars = word.chars();
        if let Some(c) = chars.next() {
            out.extend(c.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

fn singular(w: &str) -> String {
    if let Some(stem) = w.strip_suffix("ies") {
        if !stem.is_empty() {
            return format!("{stem}y");
        }
    }
    for suffix in ["sses", "shes", "ches", "xes", "zes", "uses"] {
        if w.ends_with(suffix) {
            return w[..w.len() - 2].to_string();
        }
    }
    if w.ends_with('s') && !w.ends_with("ss") && w.len() > 1 {
        return w[..w.len() - 1].to_string();
    }
    w.to_string()
}
