//! The hostile-input table's rows and their runner: each row's example run under GNU time,
//! its exit code, output, time and peak memory checked.

use std::time::Duration;

use crate::common;

/// GNU time: `%M` is the child's peak resident set in KiB (from `wait4`).
const GNU_TIME: &str = "/usr/bin/time";

/// Where a row's input goes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Entry {
    /// The `import` example: the input is its file (`input.{ext}`), the row's arguments
    /// before it, a fresh SQLite database.
    Import,
    /// The `scrub` example (vitals-querylog): the input is its standard input.
    Scrub,
    /// The `health_server` example: the input is its whole environment, `NAME=VALUE` lines.
    Config,
}

/// One hostile input and what must come of it.
pub(crate) struct Row {
    pub(crate) what: &'static str,
    /// Arguments before the input file (imports only).
    pub(crate) args: &'static [&'static str],
    /// The input's file extension (imports only).
    pub(crate) ext: &'static str,
    pub(crate) input: fn() -> Vec<u8>,
    pub(crate) code: i32,
    /// Parts the output holds.
    pub(crate) says: &'static [&'static str],
    /// What the output must not hold.
    pub(crate) secret: Option<&'static str>,
    pub(crate) within: Duration,
    pub(crate) rss_mib: u64,
}

/// The bounds most rows share: 30 s (a debug build on a loaded 2-core machine; each takes
/// well under 1 s alone) and 64 MiB resident (each stays under 25 MiB).
pub(crate) const WITHIN: Duration = Duration::from_secs(30);
pub(crate) const RSS_MIB: u64 = 64;

pub(crate) fn row(
    what: &'static str,
    args: &'static [&'static str],
    ext: &'static str,
    input: fn() -> Vec<u8>,
    code: i32,
    says: &'static [&'static str],
    secret: Option<&'static str>,
) -> Row {
    Row {
        what,
        args,
        ext,
        input,
        code,
        says,
        secret,
        within: WITHIN,
        rss_mib: RSS_MIB,
    }
}

/// What a run gave.
pub(crate) struct Outcome {
    code: Option<i32>,
    output: String,
    rss_kib: u64,
    elapsed: Duration,
    timed_out: bool,
}

/// Runs `program` under GNU time in a process group of its own (killed, by that group's id,
/// if it outlives `limit`), in `dir`, with only `env` for environment and `stdin` on its
/// standard input.
pub(crate) fn run_measured(
    program: &std::path::Path,
    args: &[String],
    env: &[(String, String)],
    stdin: Vec<u8>,
    dir: &std::path::Path,
    limit: Duration,
) -> Outcome {
    use std::io::{Read as _, Write as _};
    use std::os::unix::process::CommandExt as _;
    use std::process::{Command, Stdio};

    assert!(
        std::path::Path::new(GNU_TIME).exists(),
        "GNU time at {GNU_TIME} measures the rows' memory (Debian package `time`)"
    );
    let rss_file = dir.join("rss");
    let start = std::time::Instant::now();
    let mut child = Command::new(GNU_TIME)
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss_file)
        .arg(program)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(dir)
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example under GNU time");
    let group = child.id();
    let mut input = child.stdin.take().unwrap();
    // A program that stops reading (or never reads) must not block the writer for ever:
    // a broken pipe ends it.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let read = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let (status, timed_out) = match rx.recv_timeout(limit) {
        Ok(status) => (status, false),
        Err(_) => {
            // Our own group: GNU time and the example under it.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{group}")])
                .status();
            (rx.recv().expect("the waiter reports"), true)
        }
    };
    let elapsed = start.elapsed();
    let _ = writer.join();
    let mut output = String::from_utf8_lossy(&stdout.join().unwrap()).into_owned();
    output.push_str(&String::from_utf8_lossy(&stderr.join().unwrap()));
    // GNU time writes "Command exited with non-zero status N" first when it is not 0.
    let rss_kib = std::fs::read_to_string(&rss_file)
        .ok()
        .and_then(|t| t.lines().last().and_then(|l| l.trim().parse().ok()))
        .unwrap_or(0);
    Outcome {
        code: status.expect("wait for the example").code(),
        output,
        rss_kib,
        elapsed,
        timed_out,
    }
}

/// Runs every row of `rows` at `entry` and checks it; reports every failing row at once and
/// prints each row's figures.
pub(crate) fn run_table(entry: Entry, rows: Vec<Row>) {
    let program = match entry {
        Entry::Import => common::example::example("vitals", "import"),
        Entry::Scrub => common::example::example("vitals-querylog", "scrub"),
        Entry::Config => common::example::example("vitals", "health_server"),
    };
    let mut failures = Vec::new();
    for r in rows {
        let dir = tempfile::tempdir().unwrap();
        let input = (r.input)();
        let (args, env, stdin) = match entry {
            Entry::Import => {
                let file = dir.path().join(format!("input.{}", r.ext));
                std::fs::write(&file, &input).unwrap();
                let mut args = vec![
                    "--database-url".to_owned(),
                    format!(
                        "sqlite://{}?mode=rwc",
                        dir.path().join("db.sqlite").display()
                    ),
                ];
                args.extend(r.args.iter().map(|a| (*a).to_owned()));
                args.push(file.display().to_string());
                (args, Vec::new(), Vec::new())
            }
            Entry::Scrub => (Vec::new(), Vec::new(), input),
            Entry::Config => {
                let env = String::from_utf8(input)
                    .unwrap()
                    .lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                let args = ["--addr", "127.0.0.1:0", "--demo-students", "0"];
                (args.map(String::from).to_vec(), env, Vec::new())
            }
        };
        let out = run_measured(&program, &args, &env, stdin, dir.path(), r.within);
        let mut wrong = Vec::new();
        if out.timed_out || out.elapsed > r.within {
            wrong.push(format!("took {:?}, bound {:?}", out.elapsed, r.within));
        }
        if out.code != Some(r.code) {
            wrong.push(format!("exit {:?}, expected {}", out.code, r.code));
        }
        for part in r.says {
            if !out.output.contains(part) {
                wrong.push(format!("does not say {part:?}"));
            }
        }
        if let Some(secret) = r.secret {
            if out.output.contains(secret) {
                wrong.push(format!("echoes {secret:?}"));
            }
        }
        if out.rss_kib == 0 || out.rss_kib > r.rss_mib * 1024 {
            wrong.push(format!(
                "peak resident {} KiB, bound {} MiB",
                out.rss_kib, r.rss_mib
            ));
        }
        eprintln!(
            "{entry:?}: {:<60} exit {:?}  {:>6.2} s  {:>6} KiB",
            r.what,
            out.code,
            out.elapsed.as_secs_f64(),
            out.rss_kib
        );
        if !wrong.is_empty() {
            let mut shown: String = out.output.chars().take(2_000).collect();
            if let Some(secret) = r.secret {
                shown = shown.replace(secret, "<secret>");
            }
            failures.push(format!("{}: {}\n{shown}", r.what, wrong.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} row(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
