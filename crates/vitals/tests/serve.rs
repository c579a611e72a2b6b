//! `vitals::http::serve` over real TCP on loopback: a slow header and an idle keep-alive
//! connection are closed after their timeouts, the connection bound makes new connections wait
//! until one closes, and a graceful shutdown finishes an in-flight request and closes a stuck
//! one at its deadline. No database: the router is the test's own.
//!
//! Timeouts are short (set through the builder); every wait for the server's move is a read
//! that ends when the server acts, bounded by `tokio::time::timeout`.
//!
//! Run with `cargo test -p vitals --test serve`.
#![cfg(feature = "http")]

use std::future::IntoFuture as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use vitals::http::{serve, ServeOptions, ServeSummary};

/// The longest any single event is waited for: far beyond every timeout set here, so a test
/// fails by this bound only when the server never acts.
const BOUND: Duration = Duration::from_secs(10);

struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<ServeSummary>,
}

impl Server {
    async fn start(options: ServeOptions, router: Router) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(
            serve(listener, router, options)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .into_future(),
        );
        Self { addr, stop, task }
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }

    /// Starts the graceful shutdown and waits (bounded) for the summary.
    async fn stop(self) -> ServeSummary {
        let _ = self.stop.send(());
        tokio::time::timeout(BOUND, self.task)
            .await
            .expect("the server did not stop")
            .unwrap()
    }
}

fn ok_router() -> Router {
    Router::new().route("/ok", get(|| async { "ok" }))
}

fn options(header_ms: u64, idle_ms: u64) -> vitals::http::ServeOptionsBuilder {
    ServeOptions::builder()
        .header_read_timeout(Duration::from_millis(header_ms))
        .idle_timeout(Duration::from_millis(idle_ms))
}

/// A server on `options` answering `GET /ok`.
async fn ok_server(options: vitals::http::ServeOptionsBuilder) -> Server {
    Server::start(options.build().unwrap(), ok_router()).await
}

/// A response read off the socket: the status line's code, the head, the body.
#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: String,
}

async fn send(stream: &mut TcpStream, path: &str) {
    let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
}

/// Reads one response (its head and a `content-length` body).
async fn read_reply(stream: &mut TcpStream) -> Reply {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "closed before a whole response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .expect("a content-length");
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed inside the body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let status = head[9..12].parse().unwrap();
    let body = String::from_utf8(buf[head_end..head_end + length].to_vec()).unwrap();
    Reply { status, head, body }
}

/// The reply read off `stream` within `BOUND`; `what` says what did not come.
async fn reply_within(stream: &mut TcpStream, what: &str) -> Reply {
    tokio::time::timeout(BOUND, read_reply(stream))
        .await
        .expect(what)
}

async fn get_ok(stream: &mut TcpStream) {
    send(stream, "/ok").await;
    let reply = reply_within(stream, "no reply").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "ok"),
        "{reply:?}"
    );
}

/// Waits for the server to close `stream` (end of file or a reset), bounded by [`BOUND`];
/// returns the bytes it sent before closing.
async fn closed_by_server(stream: &mut TcpStream) -> Vec<u8> {
    let mut sent = Vec::new();
    let read_to_close = async {
        let mut chunk = [0u8; 1024];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => sent.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(BOUND, read_to_close)
        .await
        .expect("the server kept the connection open");
    sent
}

#[tokio::test]
async fn a_client_that_sends_half_a_header_is_closed_after_the_header_timeout() {
    let header = Duration::from_millis(300);
    let server = ok_server(options(300, 30_000)).await;
    let mut slow = server.connect().await;
    let started = Instant::now();
    slow.write_all(b"GET /ok HTTP/1.1\r\nhost: te")
        .await
        .unwrap();
    let sent = closed_by_server(&mut slow).await;
    let after = started.elapsed();
    assert!(
        after >= header,
        "closed after {after:?}, before the header timeout"
    );
    assert!(
        after < Duration::from_secs(5),
        "closed after {after:?}: not by the header timeout"
    );
    assert!(
        sent.is_empty(),
        "no response to half a request: {:?}",
        String::from_utf8_lossy(&sent)
    );
    // A client that connects and sends nothing is closed by the same timeout.
    let mut silent = server.connect().await;
    let started = Instant::now();
    closed_by_server(&mut silent).await;
    assert!(started.elapsed() >= header, "{:?}", started.elapsed());
    // Ordinary requests are still served.
    get_ok(&mut server.connect().await).await;
    let summary = server.stop().await;
    assert_eq!(summary.header_timeouts, 2, "{summary:?}");
}

#[tokio::test]
async fn the_next_request_on_a_keep_alive_connection_gets_the_header_timeout_from_its_first_byte() {
    // Idle 30 s, header 300 ms: a second request sent half must be closed by the header
    // timeout, not left the idle one.
    let server = ok_server(options(300, 30_000)).await;
    let mut client = server.connect().await;
    get_ok(&mut client).await;
    let started = Instant::now();
    client.write_all(b"GET /ok HTTP/1.1\r\nho").await.unwrap();
    closed_by_server(&mut client).await;
    let after = started.elapsed();
    assert!(after >= Duration::from_millis(300), "{after:?}");
    assert!(after < Duration::from_secs(5), "{after:?}");
    let summary = server.stop().await;
    assert_eq!(summary.header_timeouts, 1, "{summary:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout_not_the_header_one() {
    // hyper's own header_read_timeout starts when a connection goes idle, so it alone would
    // close this connection after 200 ms; the idle timeout is 1 s.
    let idle = Duration::from_millis(1000);
    let server = ok_server(options(200, 1000)).await;
    let mut client = server.connect().await;
    get_ok(&mut client).await;
    let started = Instant::now();
    closed_by_server(&mut client).await;
    let after = started.elapsed();
    assert!(
        after >= idle.mul_f64(0.9),
        "closed after {after:?}, before the idle timeout"
    );
    assert!(after < idle + Duration::from_secs(5), "{after:?}");
    let summary = server.stop().await;
    assert_eq!(summary.idle_timeouts, 1, "{summary:?}");
}

#[tokio::test]
async fn past_max_connections_a_new_connection_waits_until_one_closes() {
    let server = ok_server(options(30_000, 30_000).max_connections(2)).await;
    let mut first = server.connect().await;
    let mut second = server.connect().await;
    // Both accepted and served: the bound is reached.
    get_ok(&mut first).await;
    get_ok(&mut second).await;
    // The third's handshake completes (the kernel's backlog), but it is not served...
    let mut third = server.connect().await;
    send(&mut third, "/ok").await;
    let early = tokio::time::timeout(Duration::from_millis(500), read_reply(&mut third)).await;
    assert!(
        early.is_err(),
        "served past the bound of 2 connections: {early:?}"
    );
    // ...while the established ones still are.
    get_ok(&mut first).await;
    // Once one closes, the third is accepted and answered.
    drop(second);
    let reply = reply_within(&mut third, "not served after a connection closed").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let summary = server.stop().await;
    assert_eq!(summary.accepted, 3, "{summary:?}");
}

#[tokio::test]
async fn slow_and_idle_connections_past_the_bound_are_reaped_and_ordinary_requests_then_succeed() {
    // The 50 slow + 1 000 idle, at a bound of 8: 4 slow-header and 8 idle connections
    // hold more than every place; 6 ordinary clients queue behind them and are all answered
    // once the timeouts reap them.
    let server = ok_server(options(300, 400).max_connections(8)).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut slow = server.connect().await;
        slow.write_all(b"GET /ok HTTP/1.1\r\nx-slow: ")
            .await
            .unwrap();
        held.push(slow);
    }
    for _ in 0..8 {
        // Each served once, then left idle; past the bound some wait to be accepted.
        let mut idle = server.connect().await;
        send(&mut idle, "/ok").await;
        held.push(idle);
    }
    let mut ordinary = Vec::new();
    for _ in 0..6 {
        let mut client = server.connect().await;
        send(&mut client, "/ok").await;
        ordinary.push(client);
    }
    let started = Instant::now();
    for client in &mut ordinary {
        let reply = reply_within(client, "an ordinary request was never answered").await;
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    assert!(started.elapsed() < BOUND);
    for conn in &mut held {
        closed_by_server(conn).await;
    }
    let summary = server.stop().await;
    assert_eq!(summary.header_timeouts, 4, "{summary:?}");
    assert!(summary.idle_timeouts >= 8, "{summary:?}");
}

#[tokio::test]
async fn shutdown_with_a_stuck_client_ends_at_the_deadline_and_an_in_flight_request_completes() {
    let release = Arc::new(Notify::new());
    let (entered_tx, mut entered) = mpsc::unbounded_channel::<&'static str>();
    let router = {
        let release = release.clone();
        let slow_entered = entered_tx.clone();
        let stuck_entered = entered_tx;
        Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route(
                "/slow",
                get(move || async move {
                    slow_entered.send("slow").unwrap();
                    release.notified().await;
                    "done"
                }),
            )
            .route(
                "/stuck",
                get(move || async move {
                    stuck_entered.send("stuck").unwrap();
                    std::future::pending::<()>().await;
                    "never"
                }),
            )
    };
    let deadline = Duration::from_millis(1500);
    let options = options(30_000, 30_000)
        .shutdown_timeout(deadline)
        .build()
        .unwrap();
    let server = Server::start(options, router).await;
    let addr = server.addr;
    let mut in_flight = server.connect().await;
    let mut stuck = server.connect().await;
    let mut idle = server.connect().await;
    get_ok(&mut idle).await;
    send(&mut in_flight, "/slow").await;
    send(&mut stuck, "/stuck").await;
    let mut seen = [entered.recv().await.unwrap(), entered.recv().await.unwrap()];
    seen.sort_unstable();
    assert_eq!(seen, ["slow", "stuck"]);

    let Server { stop, task, .. } = server;
    let started = Instant::now();
    stop.send(()).unwrap();
    // The idle connection is closed at once, not at the deadline...
    closed_by_server(&mut idle).await;
    assert!(started.elapsed() < deadline, "{:?}", started.elapsed());
    // ...after the listener: new connections are refused.
    let refused = TcpStream::connect(addr).await;
    assert!(refused.is_err(), "accepted during shutdown");
    // The in-flight request completes, told that the connection closes.
    release.notify_one();
    let reply = reply_within(&mut in_flight, "the in-flight request did not complete").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "done"),
        "{reply:?}"
    );
    assert!(
        reply
            .head
            .to_ascii_lowercase()
            .contains("connection: close"),
        "{reply:?}"
    );
    closed_by_server(&mut in_flight).await;
    // The stuck one holds the shutdown until the deadline, no longer.
    let summary = tokio::time::timeout(BOUND, task)
        .await
        .expect("the shutdown waited past its deadline")
        .unwrap();
    let took = started.elapsed();
    assert!(
        took >= deadline,
        "ended after {took:?}, before the deadline"
    );
    assert!(took < deadline + Duration::from_secs(3), "{took:?}");
    assert_eq!(summary.closed_at_deadline, 1, "{summary:?}");
    let sent = closed_by_server(&mut stuck).await;
    assert!(sent.is_empty(), "{:?}", String::from_utf8_lossy(&sent));
}

#[test]
fn the_env_example_gives_the_defaults_and_a_bad_value_names_its_variable() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join(".env.example")).unwrap();
    let values: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.trim_start_matches('#').trim().split_once('='))
        .filter(|(name, _)| name.starts_with("VITALS_HTTP_"))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    assert_eq!(values.len(), 4, "{values:?}");
    let lookup = |name: &str| {
        values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        ServeOptions::from_env_with(lookup).unwrap(),
        ServeOptions::default()
    );
    let err = ServeOptions::from_env_with(|name| {
        (name == "VITALS_HTTP_MAX_CONNECTIONS").then(|| "many".to_string())
    })
    .unwrap_err();
    assert_eq!(err.problems().len(), 1, "{err}");
    assert_eq!(err.problems()[0].variable, "VITALS_HTTP_MAX_CONNECTIONS");
}
