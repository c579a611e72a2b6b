//! A PgBouncer of the test's own (Debian `pgbouncer`, `/usr/sbin/pgbouncer`) in front of the
//! main PostgreSQL server (`DATABASE_URL`, default 127.0.0.1:5432): on a free loopback port,
//! its configuration, user list, log and pid file in a temporary directory, killed by its pid
//! on drop.
//!
//! The pool's suites reach it through `common`; the facade's `pgbouncer` suite and the
//! `pgbouncer` bench include this file with `#[path = …]`, one harness for all of them. It
//! may use only `std`, `tempfile` and `sqlx`, which all of them have.
//!
//! PgBouncer refuses to run as root: as root it is started as the `postgres` user through
//! `setpriv` (which `exec`s, so the child's pid is PgBouncer's own). Authentication is
//! `trust` with the URL's user in the user list; nothing but loopback is listened on.
// Each suite uses part of it.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;

/// Where Debian installs PgBouncer.
pub const PGBOUNCER: &str = "/usr/sbin/pgbouncer";

/// `DATABASE_URL`, or the local server.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Whether PgBouncer is installed (`.ci/run` installs it; a bench skips without it).
pub fn installed() -> bool {
    Path::new(PGBOUNCER).exists()
}

/// PgBouncer's `pool_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A server connection per client connection, for the client's whole session.
    Session,
    /// A server connection per transaction (what vitals' `DB_PGBOUNCER=transaction` is for).
    Transaction,
}

/// A running PgBouncer; killed (by its pid) and reaped on drop, its directory removed.
pub struct TestPgBouncer {
    child: Child,
    port: u16,
    upstream: PgConnectOptions,
    dir: tempfile::TempDir,
}

impl TestPgBouncer {
    /// PgBouncer in `mode` in front of `DATABASE_URL`'s server, at most `server_connections`
    /// server connections per database and user (`default_pool_size`); answering within 10 s.
    ///
    /// # Panics
    /// When PgBouncer is missing, does not start, or does not listen within 10 s (its log is
    /// in the message).
    pub fn start(mode: Mode, server_connections: u32) -> Self {
        let upstream = PgConnectOptions::from_str(&database_url()).expect("DATABASE_URL parses");
        let dir = tempfile::tempdir().expect("a temporary directory");
        // PgBouncer runs as `postgres` and writes its log and pid file here.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod the temporary directory");
        let port = free_port();
        let d = dir.path().display();
        let mode_name = match mode {
            Mode::Session => "session",
            Mode::Transaction => "transaction",
        };
        let mut ini = String::new();
        let _ = write!(
            ini,
            "[databases]\n\
             * = host={host} port={upstream_port}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {d}/userlist.txt\n\
             admin_users = {user}\n\
             pool_mode = {mode_name}\n\
             default_pool_size = {server_connections}\n\
             max_client_conn = 200\n\
             server_reset_query =\n\
             logfile = {d}/pgbouncer.log\n\
             pidfile = {d}/pgbouncer.pid\n",
            host = upstream.get_host(),
            upstream_port = upstream.get_port(),
            user = upstream.get_username(),
        );
        std::fs::write(dir.path().join("pgbouncer.ini"), ini).expect("write pgbouncer.ini");
        std::fs::write(
            dir.path().join("userlist.txt"),
            format!("\"{}\" \"\"\n", upstream.get_username()),
        )
        .expect("write userlist.txt");
        let ini = dir.path().join("pgbouncer.ini");
        let mut command = if is_root() {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--clear-groups",
                "--",
                PGBOUNCER,
            ]);
            c
        } else {
            Command::new(PGBOUNCER)
        };
        let child = command
            .arg(&ini)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pgbouncer");
        let mut bouncer = Self {
            child,
            port,
            upstream,
            dir,
        };
        bouncer.wait_listening();
        bouncer
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            let exited = self.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() >= deadline {
                panic!(
                    "pgbouncer did not listen on 127.0.0.1:{} ({exited:?}); its log:\n{}",
                    self.port,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The loopback port PgBouncer listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The pid of the PgBouncer process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `DATABASE_URL` with PgBouncer's address in place of the server's.
    pub fn url(&self) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/{}",
            self.upstream.get_username(),
            self.port,
            self.upstream.get_database().unwrap_or("postgres")
        )
    }

    /// The connect options of [`url`](Self::url).
    pub fn options(&self) -> PgConnectOptions {
        PgConnectOptions::from_str(&self.url()).expect("the harness's own URL parses")
    }

    /// The URL of database `name` through PgBouncer (its `*` entry forwards every name).
    pub fn url_of(&self, name: &str) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/{name}",
            self.upstream.get_username(),
            self.port
        )
    }

    /// PgBouncer's admin console (`SHOW POOLS`, `SHOW SERVERS`: simple queries only).
    pub fn admin_url(&self) -> String {
        self.url_of("pgbouncer")
    }

    /// What PgBouncer wrote to its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for TestPgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill(); // SIGKILL to this pid only
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    // `id -u` rather than libc: the harness may use only std, tempfile and sqlx.
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// A free loopback port (nothing listens on it once this returns).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr()
        .expect("a bound listener has an address")
        .port()
}
