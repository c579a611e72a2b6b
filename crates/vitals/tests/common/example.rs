//! The workspace's example binaries, for tests that run them as processes (`at_rest.rs`,
//! `hostile.rs`): `cargo test --test NAME` does not build examples, so the first call for
//! an example builds it with the cargo running the tests, in the same target directory and
//! profile, and later calls reuse the path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The path of example `name` of package `package`, built (once per test binary) if needed.
///
/// # Panics
/// If the build fails (its diagnostics are in the message) or names no executable.
pub fn example(package: &str, name: &str) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    // The lock is held through the build: two tests asking at once build once.
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    let id = format!("{package}/{name}");
    if let Some(path) = built.get(&id) {
        return path.clone();
    }
    let path = build(package, name);
    built.insert(id, path.clone());
    path
}

fn build(package: &str, name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root).args([
        "build",
        "--quiet",
        "-p",
        package,
        "--example",
        name,
        "--message-format=json-render-diagnostics",
    ]);
    // The profile the tests were built with: target/<profile>/deps/<test binary>.
    let profile = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.file_name()?.to_owned()));
    if profile.as_deref() == Some("release".as_ref()) {
        cmd.arg("--release");
    }
    let out = cmd.output().expect("run cargo build");
    assert!(
        out.status.success(),
        "cargo build -p {package} --example {name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo built no executable for example {name}"))
}
