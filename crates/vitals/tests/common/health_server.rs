//! The `health_server` example as a process for a test: started on `127.0.0.1:0` with only
//! the variables a test gives, its standard error kept, plain HTTP/1.1 requests to it, and a
//! Ctrl-C stop. Killed on drop (a failing test leaves no server behind).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};

/// Long enough for migrations and a small school on a loaded 2-core machine.
pub const START_LIMIT: Duration = Duration::from_secs(120);

/// One HTTP reply: status, head (lower-cased) and body.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The status line and headers, lower-cased.
    pub head: String,
    /// The body.
    pub body: String,
}

impl Reply {
    /// The value of header `name` (lower-case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            (n.trim() == name).then(|| v.trim())
        })
    }
}

/// A running `health_server`.
pub struct HealthServer {
    child: tokio::process::Child,
    /// Where it listens.
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl HealthServer {
    /// Starts the example in `dir` with `args` and only the variables in `vars` (nothing of
    /// this process's environment), and waits for its `serving on http://…` line.
    ///
    /// # Panics
    /// If it exits or does not serve within [`START_LIMIT`].
    pub async fn start(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Self {
        let bin = super::example::example("vitals", "health_server");
        let mut cmd = tokio::process::Command::new(bin);
        cmd.args(["--addr", "127.0.0.1:0"])
            .args(args)
            .current_dir(dir)
            .env_clear()
            .env("RUST_LOG", "info,sqlx::query=off")
            .env("NO_COLOR", "1")
            .envs(vars.iter().copied());
        let mut child = super::child::spawn(&mut cmd, Stdio::null(), "health_server");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sink = log.clone();
        // Reads until the server closes its stderr (it exits), so the pipe never fills.
        tokio::spawn(async move {
            let mut tx = Some(tx);
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                {
                    let mut log = sink.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
                if let Some(rest) = line.strip_prefix("serving on http://") {
                    let addr = rest.split(' ').next().and_then(|a| a.parse().ok());
                    if let (Some(tx), Some(addr)) = (tx.take(), addr) {
                        let _ = tx.send(addr);
                    }
                }
            }
        });
        let addr: SocketAddr = match tokio::time::timeout(START_LIMIT, rx).await {
            Ok(Ok(addr)) => addr,
            Ok(Err(_)) => panic!(
                "health_server exited before serving ({:?}): {}",
                child.wait().await,
                log.lock().unwrap()
            ),
            Err(_) => panic!(
                "health_server not serving after {START_LIMIT:?}: {}",
                log.lock().unwrap()
            ),
        };
        Self { child, addr, log }
    }

    /// Everything it wrote to standard error so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The student ids it printed at start (`try: curl …/api/students/ID/health-summary`).
    pub fn sample_students(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|l| l.split("/api/students/").nth(1)?.split('/').next())
            .map(str::to_owned)
            .collect()
    }

    /// `method path` with `headers` and `body` on a connection of its own.
    ///
    /// # Panics
    /// Without a reply within 30 s, or on a malformed one.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let addr = self.addr;
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        let exchange = async {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(request.as_bytes()).await.unwrap();
            let mut reply = Vec::new();
            s.read_to_end(&mut reply).await.unwrap();
            reply
        };
        let reply = tokio::time::timeout(Duration::from_secs(30), exchange)
            .await
            .unwrap_or_else(|_| panic!("no reply to {method} {path} in 30 s"));
        let reply = String::from_utf8(reply).unwrap();
        let (head, body) = reply.split_once("\r\n\r\n").unwrap();
        // Every route answers a whole body (JSON, text, the page) with a content-length.
        assert!(
            !head.to_ascii_lowercase().contains("transfer-encoding"),
            "{head}"
        );
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        Reply {
            status,
            head: head.to_ascii_lowercase(),
            body: body.to_owned(),
        }
    }

    /// `GET path` with `headers`.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.request("GET", path, headers, "").await
    }

    /// `GET path`, 200, parsed as JSON.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path, &[]).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        serde_json::from_str(&r.body).unwrap()
    }

    /// Ctrl-C (SIGINT, to this child's pid), then waits for a clean exit; returns the log.
    ///
    /// # Panics
    /// If it does not exit cleanly within 60 s.
    pub async fn stop(mut self) -> String {
        let pid = self.child.id().expect("still running").to_string();
        let sent = tokio::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .await
            .unwrap();
        assert!(sent.success());
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("health_server stops within 60 s of Ctrl-C")
            .unwrap();
        assert!(status.success(), "{status}: {}", self.log());
        self.log()
    }
}
