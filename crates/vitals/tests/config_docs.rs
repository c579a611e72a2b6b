//! The configuration documents stay current: every variable the crates read is in
//! `.env.example` and `docs/configuration.md`, and nothing is documented that nobody reads.
//!
//! Run with `cargo test -p vitals --test config_docs`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every string literal in the crates' sources that names one of our variables.
fn variables_read() -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for piece in text.split('"').skip(1).step_by(2) {
                    let is_name = piece
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                    let ours = ["DB_", "REDIS_", "CACHE_", "VITALS_", "QUERYLOG_"]
                        .iter()
                        .any(|p| piece.starts_with(p))
                        || piece == "DATABASE_URL"
                        || piece == "DATABASE_REPLICA_URLS";
                    if is_name && ours && piece.len() > 4 {
                        out.insert(piece.to_string());
                    }
                }
            }
        }
    }
    let mut names = BTreeSet::new();
    for krate in ["pool", "querylog", "cache", "import", "vitals"] {
        walk(&root().join("crates").join(krate).join("src"), &mut names);
    }
    names
}

fn documented_in_env_example() -> BTreeSet<String> {
    std::fs::read_to_string(root().join(".env.example"))
        .unwrap()
        .lines()
        .filter_map(|l| l.trim_start_matches('#').trim().split_once('='))
        .map(|(name, _)| name.trim().to_string())
        .filter(|name| !name.is_empty() && !name.contains(' '))
        .collect()
}

fn documented_in_configuration_md() -> BTreeSet<String> {
    std::fs::read_to_string(root().join("docs/configuration.md"))
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`'))
        .map(|(name, _)| name.to_string())
        .collect()
}

#[test]
fn every_variable_read_is_documented_and_every_documented_one_is_read() {
    let read = variables_read();
    assert!(
        read.contains("DB_POOL_MAX") && read.contains("CACHE_L1_TTL"),
        "{read:?}"
    );
    for (file, documented) in [
        (".env.example", documented_in_env_example()),
        ("docs/configuration.md", documented_in_configuration_md()),
    ] {
        let missing: Vec<_> = read.difference(&documented).collect();
        let stale: Vec<_> = documented.difference(&read).collect();
        assert!(missing.is_empty(), "read but not in {file}: {missing:?}");
        assert!(stale.is_empty(), "in {file} but read by nothing: {stale:?}");
    }
}

#[test]
fn the_defaults_in_env_example_are_valid_configuration() {
    let text = std::fs::read_to_string(root().join(".env.example")).unwrap();
    let values: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.trim_start_matches('#').trim().split_once('='))
        .filter(|(name, value)| {
            !name.contains(' ') && !value.contains('<') && !name.is_empty()
                // Examples of optional settings, not defaults.
                && !["DATABASE_URL", "REDIS_URL", "REDIS_HOST", "REDIS_PASSWORD", "REDIS_TLS_CA_FILE", "VITALS_IMPORT_MAX_ERRORS"].contains(name)
        })
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    assert!(values.len() > 40, "{values:?}");
    let config = vitals::Config::from_env_with(|name| {
        values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap_or_else(|e| panic!(".env.example defaults do not parse: {e}"));
    assert_eq!(config.pool.max_connections(), 10);
}
