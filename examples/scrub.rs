//! Scrubs a log read from standard input: each line is written sanitised (the
//! SQL pass, then the free-text pass), one line out per line in; with
//! `--fingerprint`, each line's fingerprint (16 hex digits) instead.
//!
//! A statement is masked the same whether a line holds it alone or after a log
//! line's prefix (`crates/querylog/tests/token_forms.rs` checks every row of its
//! table both ways). Lines are read one at a time: a literal that spans lines is
//! masked to the end of its first line only (see docs/querylog.md, Limits).
//!
//! Run with `cargo run --release -q -p vitals-querylog --example scrub < app.log`
//! or `... --example scrub -- --fingerprint < statements.sql`.
use std::io::{self, BufRead, BufWriter, Write};
use std::process::ExitCode;

use clap::Parser;

/// Pipe a log through it to mask PHI.
#[derive(Parser)]
#[command(about = "Masks SQL literals and PHI in each line of standard input")]
struct Args {
    /// Print each line's statement fingerprint (16 hex digits) instead of the line.
    #[arg(long)]
    fingerprint: bool,
}

fn run(args: &Args) -> io::Result<()> {
    let stdin = io::stdin().lock();
    let mut out = BufWriter::new(io::stdout().lock());
    // Read bytes, not strings: a line that is not UTF-8 is still scrubbed
    // (lossily) rather than stopping the run.
    for line in stdin.split(b'\n') {
        let line = line?;
        let text = String::from_utf8_lossy(&line);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        if args.fingerprint {
            writeln!(out, "{}", vitals_querylog::fingerprint(text))?;
        } else {
            writeln!(out, "{}", vitals_querylog::scrub_log_line(text))?;
        }
    }
    out.flush()
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`| head`) is a normal end for a filter.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scrub: {e}");
            ExitCode::FAILURE
        }
    }
}
