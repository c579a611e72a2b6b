//! Headless Chromium for a test: `--dump-dom` (the DOM after the page's scripts ran, within a
//! virtual-time budget) and `--screenshot`, each run a process of its own with a new empty
//! profile, killed on drop or after [`RUN_LIMIT`].

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// The longest one Chromium run may take.
pub const RUN_LIMIT: Duration = Duration::from_secs(60);

/// The flags of every run: no sandbox (tests run as root), no GPU, nothing fetched from the
/// network but the page (no QUIC, no background updates, no sync).
const FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// A Chromium binary.
pub struct Chromium {
    bin: PathBuf,
}

impl Chromium {
    /// `$CHROMIUM`, else `/usr/bin/chromium`, if it exists.
    pub fn find() -> Option<Self> {
        let bin = std::env::var_os("CHROMIUM")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
        bin.is_file().then_some(Self { bin })
    }

    /// The DOM of `url` once its scripts ran for `budget_ms` of virtual time (timers fire
    /// at once; fetches are waited for), serialised.
    pub async fn dump_dom(&self, url: &str, budget_ms: u32) -> String {
        let budget = format!("--virtual-time-budget={budget_ms}");
        self.run(&[&budget, "--dump-dom", url]).await
    }

    /// A PNG of `url` at `width`×`height` CSS pixels after `budget_ms` of virtual time.
    pub async fn screenshot(&self, url: &str, to: &Path, width: u32, height: u32, budget_ms: u32) {
        let shot = format!("--screenshot={}", to.display());
        let size = format!("--window-size={width},{height}");
        let budget = format!("--virtual-time-budget={budget_ms}");
        self.run(&[&shot, &size, "--hide-scrollbars", &budget, url])
            .await;
    }

    /// Runs Chromium with `args` and a new profile; its standard output.
    async fn run(&self, args: &[&str]) -> String {
        let profile = tempfile::tempdir().unwrap();
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args(FLAGS)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(args);
        let child = super::child::spawn(&mut cmd, Stdio::piped(), "chromium");
        let out = tokio::time::timeout(RUN_LIMIT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("chromium {args:?} did not finish in {RUN_LIMIT:?}"))
            .unwrap();
        assert!(
            out.status.success(),
            "chromium {args:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}
