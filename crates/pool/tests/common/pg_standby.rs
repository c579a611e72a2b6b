//! The harness of the replica tests: a PostgreSQL primary of the test's own (`initdb`,
//! `wal_level=replica`) and a streaming standby of it (`pg_basebackup -R`), each on a free
//! loopback port with its data and socket in a temporary directory, stopped by the pid in its
//! `postmaster.pid` when dropped (also on a panic), and a standby that a test stops, starts
//! again and slows with `recovery_min_apply_delay`.
//!
//! The servers run as the `postgres` user (`initdb` and `postgres` refuse root) through
//! `runuser` when the test runs as root. Startup is kept short: `fsync=off`, 16 MB of shared
//! buffers, no sync after `initdb` or the base backup. It uses only `std` and `tempfile`, so
//! the facade's suites can include it with `#[path]`.
// Each suite uses part of it.
#![allow(dead_code)]

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Where Debian puts PostgreSQL 15's server binaries.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A free loopback port (nothing listens on it once this returns).
pub fn pg_free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr()
        .expect("a bound socket has an address")
        .port()
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

/// `PG_BIN/program args…`, as the `postgres` user when the test runs as root.
fn pg(program: &str, args: &[&str]) -> io::Result<Output> {
    let binary = format!("{PG_BIN}/{program}");
    let mut command = if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", &binary]);
        c
    } else {
        Command::new(&binary)
    };
    let out = command.args(args).stdin(Stdio::null()).output()?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(io::Error::other(format!(
            "{program} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

/// A temporary directory the `postgres` user can write into.
fn shared_tempdir(prefix: &str) -> io::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new().prefix(prefix).tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))?;
    Ok(dir)
}

/// One PostgreSQL server process over a data directory; stopped (immediate shutdown, by the
/// postmaster's pid) on drop.
pub struct PgServer {
    /// The loopback port it listens on.
    pub port: u16,
    data: PathBuf,
    log: PathBuf,
    pid: Option<u32>,
}

impl PgServer {
    /// `postgres://postgres@127.0.0.1:{port}/postgres`.
    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// The URL of database `db` on this server.
    pub fn url_of(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// A server over the cluster in `data` (inside `dir`, which also holds its socket and
    /// log) on a free loopback port with the shared [`settings`], started.
    fn launch(dir: &tempfile::TempDir, data: PathBuf) -> io::Result<Self> {
        let port = pg_free_port();
        append(&data.join("postgresql.conf"), &settings(port, dir.path()))?;
        let mut server = PgServer {
            port,
            log: dir.path().join("server.log"),
            data,
            pid: None,
        };
        server.start()?;
        Ok(server)
    }

    /// Starts the server and waits until it accepts connections (`pg_ctl -w`).
    pub fn start(&mut self) -> io::Result<()> {
        if self.pid.is_some() {
            return Ok(());
        }
        let (data, log) = (path(&self.data), path(&self.log));
        pg(
            "pg_ctl",
            &["-D", &data, "-l", &log, "-w", "-t", "30", "start"],
        )
        .map_err(|e| {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            io::Error::other(format!("{e}\nserver log:\n{log}"))
        })?;
        let pid_file = std::fs::read_to_string(self.data.join("postmaster.pid"))?;
        let pid = pid_file
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| io::Error::other("no pid in postmaster.pid"))?;
        self.pid = Some(pid);
        Ok(())
    }

    /// Stops the server at once (SIGQUIT to the postmaster: immediate shutdown, the way a
    /// crash looks to its clients) and waits until the process is gone.
    pub fn stop(&mut self) {
        let Some(pid) = self.pid.take() else { return };
        let _ = Command::new("kill")
            .args(["-QUIT", &pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }

    /// Whether the server was started and not stopped.
    pub fn is_running(&self) -> bool {
        self.pid.is_some()
    }

    /// Runs one SQL command on database `postgres` with `psql` and returns its unaligned,
    /// tuples-only output, trimmed.
    pub fn psql(&self, sql: &str) -> io::Result<String> {
        let port = self.port.to_string();
        let out = Command::new(format!("{PG_BIN}/psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-c", sql])
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "psql failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// The cluster's system identifier (`pg_control_system()`).
    pub fn system_identifier(&self) -> io::Result<String> {
        self.psql("SELECT system_identifier FROM pg_control_system()")
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// The settings both servers share, appended to `postgresql.conf`.
fn settings(port: u16, socket_dir: &Path) -> String {
    format!(
        "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
         wal_level = replica\nmax_wal_senders = 5\nhot_standby = on\nfsync = off\n\
         synchronous_commit = on\nfull_page_writes = off\nshared_buffers = 16MB\n\
         max_connections = 40\nwal_receiver_status_interval = 1s\nlogging_collector = off\n",
        socket_dir.display()
    )
}

/// A primary of the test's own: `initdb` (trust authentication, replication allowed from
/// loopback), `wal_level=replica`, on a free port. Dropping it stops it and removes its files.
pub struct PgPrimary {
    /// The running server.
    pub server: PgServer,
    // Dropped after the server (fields drop in order): the files outlive the process.
    _dir: tempfile::TempDir,
}

impl PgPrimary {
    /// Creates and starts a new cluster.
    ///
    /// # Errors
    /// When `initdb` or the start fails (the server log is in the message).
    pub fn start() -> io::Result<Self> {
        let dir = shared_tempdir("vitals-pg-primary-")?;
        let data = dir.path().join("data");
        pg(
            "initdb",
            &[
                "-D",
                &path(&data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
        )?;
        append(
            &data.join("pg_hba.conf"),
            "\nhost replication all 127.0.0.1/32 trust\n",
        )?;
        let server = PgServer::launch(&dir, data)?;
        Ok(Self { server, _dir: dir })
    }

    /// `postgres://postgres@127.0.0.1:{port}/postgres`.
    pub fn url(&self) -> String {
        self.server.url()
    }
}

/// A streaming standby of a [`PgPrimary`] (`pg_basebackup -R -X stream`), on a port of its own.
pub struct PgStandby {
    /// The standby server.
    pub server: PgServer,
    _dir: tempfile::TempDir,
}

impl PgStandby {
    /// Takes a base backup of `primary` and starts it as a hot standby streaming from it.
    ///
    /// # Errors
    /// When the backup or the start fails.
    pub fn of(primary: &PgPrimary) -> io::Result<Self> {
        let dir = shared_tempdir("vitals-pg-standby-")?;
        let data = dir.path().join("data");
        let primary_port = primary.server.port.to_string();
        pg(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &primary_port,
                "-U",
                "postgres",
                "-D",
                &path(&data),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
            ],
        )?;
        let _ = std::fs::remove_file(data.join("postmaster.pid"));
        // The copied postgresql.conf has the primary's port and socket; `launch` appends this
        // server's, and later lines win.
        let server = PgServer::launch(&dir, data)?;
        Ok(Self { server, _dir: dir })
    }

    /// `postgres://postgres@127.0.0.1:{port}/postgres`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Stops the standby at once (immediate shutdown).
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Starts the stopped standby again on the same port; it resumes streaming.
    ///
    /// # Errors
    /// When it does not start.
    pub fn start(&mut self) -> io::Result<()> {
        self.server.start()
    }

    /// Delays the standby's replay of every commit by `delay` (`recovery_min_apply_delay`,
    /// `ALTER SYSTEM` and a reload); zero removes the delay. Returns once a new session of
    /// the standby sees the new value: the postmaster has then reloaded its configuration
    /// and signalled its children, the replaying process among them. `pg_reload_conf()`
    /// alone only sends the signal, and a commit made right after it was seen replayed at
    /// once, before the delay took effect (a CI run failed so).
    ///
    /// # Errors
    /// When `psql` fails, or the value is not seen within 10 s.
    pub fn set_apply_delay(&self, delay: Duration) -> io::Result<()> {
        let ms = delay.as_millis();
        self.server.psql(&format!(
            "ALTER SYSTEM SET recovery_min_apply_delay = '{ms}ms'"
        ))?;
        self.server.psql("SELECT pg_reload_conf()")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let expected = ms.to_string();
        loop {
            // `setting` is in the parameter's unit, milliseconds.
            let seen = self
                .server
                .psql("SELECT setting FROM pg_settings WHERE name = 'recovery_min_apply_delay'")?;
            if seen == expected {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "recovery_min_apply_delay still {seen} ms, not {expected}, 10 s after the reload"
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn append(file: &Path, text: &str) -> io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(file)?;
    f.write_all(text.as_bytes())
}
