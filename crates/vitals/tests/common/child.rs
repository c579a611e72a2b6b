//! A process a test starts and owns (Chromium, the `health_server` example).

use std::process::Stdio;

use tokio::process::{Child, Command};

/// Starts `cmd` with no standard input, `stdout` as its standard output and its standard
/// error piped, killed when the [`Child`] is dropped (a failing test leaves nothing running).
///
/// # Panics
/// If it cannot be started (`what` names it).
pub fn spawn(cmd: &mut Command, stdout: Stdio, what: &str) -> Child {
    cmd.stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"))
}
