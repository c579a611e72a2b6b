//! [`serve`]: a router over TCP with every connection bounded in time and in number, in place
//! of `axum::serve`, which holds a slow or idle client's connection (and its file descriptor)
//! for as long as the client likes and waits on it forever at shutdown.
//!
//! What each connection gets is said on [`serve`], the public face of this file.
//!
//! Why the phases are timed here rather than by hyper alone: hyper's `header_read_timeout`
//! (hyper 1.12, `proto/h1/conn.rs`) starts when the connection becomes idle after a response,
//! not at the first byte of the next request, so one timer covers both the idle wait and the
//! header read; with it alone an idle budget longer than the header budget is not possible.
//! It stays set, to the sum of the two, as a backstop that never fires first.

use std::convert::Infallible;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::io;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;
use vitals_env::{ConfigError, Env, Problem};

/// The component named in this module's configuration problems.
const COMPONENT: &str = "http";
const HEADER_TIMEOUT_VAR: &str = "VITALS_HTTP_HEADER_TIMEOUT_MS";
const IDLE_TIMEOUT_VAR: &str = "VITALS_HTTP_IDLE_TIMEOUT_MS";
const MAX_CONNECTIONS_VAR: &str = "VITALS_HTTP_MAX_CONNECTIONS";
const SHUTDOWN_TIMEOUT_VAR: &str = "VITALS_HTTP_SHUTDOWN_TIMEOUT_MS";

/// The longest timeout accepted: a day. Far beyond any sensible value, and short enough that
/// `now + timeout` can never overflow an `Instant`.
const MAX_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;
/// Past this tokio's semaphore cannot count.
const MAX_CONNECTIONS_LIMIT: usize = Semaphore::MAX_PERMITS;
/// How long to wait before accepting again after an error that is not one connection's
/// (out of file descriptors, say): nothing to await tells when one is free again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// How [`serve`] bounds connections: timeouts, the number open at once, the shutdown deadline.
///
/// `ServeOptions::default()` are the production values; [`ServeOptions::from_env`] reads the
/// `VITALS_HTTP_*` variables over them, [`ServeOptions::builder`] sets them in code. Plain data:
/// clone it freely.
///
/// # Example
/// ```
/// # fn example() -> Result<(), vitals::ConfigError> {
/// use std::time::Duration;
/// use vitals::http::ServeOptions;
///
/// let options = ServeOptions::builder()
///     .header_read_timeout(Duration::from_secs(5))
///     .max_connections(256)
///     .build()?;
/// assert_eq!(options.idle_timeout(), Duration::from_secs(60));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    header_read_timeout: Duration,
    idle_timeout: Duration,
    max_connections: usize,
    shutdown_timeout: Duration,
}

impl Default for ServeOptions {
    /// Header read 10 s, idle 60 s, 1 024 connections, shutdown deadline 30 s.
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

impl ServeOptions {
    /// A builder over the defaults.
    pub fn builder() -> ServeOptionsBuilder {
        ServeOptionsBuilder::default()
    }

    /// Reads the options from the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] listing every variable with a bad value.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(vitals_env::process_env)
    }

    /// Reads the options through `lookup` (a variable name to its value), so tests need not
    /// touch the process environment.
    ///
    /// Variables: `VITALS_HTTP_HEADER_TIMEOUT_MS` and `VITALS_HTTP_IDLE_TIMEOUT_MS` (1 ms to a
    /// day), `VITALS_HTTP_MAX_CONNECTIONS` (at least 1), `VITALS_HTTP_SHUTDOWN_TIMEOUT_MS`
    /// (0 to a day; 0 closes whatever is open at once). Unset or empty variables keep their
    /// default.
    ///
    /// # Errors
    /// [`ConfigError`] (component `http`) listing every variable with a bad value.
    pub fn from_env_with<F>(lookup: F) -> Result<Self, ConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let mut env = Env::new(COMPONENT, &lookup);
        let mut builder = Self::builder();
        if let Some(ms) = env.whole(HEADER_TIMEOUT_VAR, 1..=MAX_TIMEOUT_MS) {
            builder = builder.header_read_timeout(Duration::from_millis(ms));
        }
        if let Some(ms) = env.whole(IDLE_TIMEOUT_VAR, 1..=MAX_TIMEOUT_MS) {
            builder = builder.idle_timeout(Duration::from_millis(ms));
        }
        if let Some(n) = env.whole(MAX_CONNECTIONS_VAR, 1..=MAX_CONNECTIONS_LIMIT) {
            builder = builder.max_connections(n);
        }
        if let Some(ms) = env.whole(SHUTDOWN_TIMEOUT_VAR, 0..=MAX_TIMEOUT_MS) {
            builder = builder.shutdown_timeout(Duration::from_millis(ms));
        }
        match builder.build() {
            Ok(options) => env.finish(options),
            Err(e) => {
                env.absorb(e);
                env.finish(Self::default())
            }
        }
    }

    /// How long a request's head may take: from the accept for a connection's first request,
    /// from the head's first byte for the next ones.
    #[must_use]
    pub fn header_read_timeout(&self) -> Duration {
        self.header_read_timeout
    }

    /// How long a keep-alive connection may wait, after a response, for the next request's
    /// first byte.
    #[must_use]
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// How many connections may be open at once; past it new ones wait in the accept backlog.
    #[must_use]
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// How long a graceful shutdown waits for in-flight requests before closing what is open.
    #[must_use]
    pub fn shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout
    }
}

/// Builder of [`ServeOptions`]; unset fields keep the defaults. `build` validates.
#[must_use]
#[derive(Debug, Clone, Default)]
pub struct ServeOptionsBuilder {
    header_read_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    max_connections: Option<usize>,
    shutdown_timeout: Option<Duration>,
}

impl ServeOptionsBuilder {
    /// `VITALS_HTTP_HEADER_TIMEOUT_MS`: more than 0, at most a day.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = Some(timeout);
        self
    }

    /// `VITALS_HTTP_IDLE_TIMEOUT_MS`: more than 0, at most a day.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// `VITALS_HTTP_MAX_CONNECTIONS`: at least 1.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = Some(max);
        self
    }

    /// `VITALS_HTTP_SHUTDOWN_TIMEOUT_MS`: at most a day (0: close everything at once).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = Some(timeout);
        self
    }

    /// The options, once every value is checked.
    ///
    /// # Errors
    /// [`ConfigError`] naming, by the variable each setter stands for, every value out of
    /// range.
    pub fn build(self) -> Result<ServeOptions, ConfigError> {
        let d = ServeOptions::default();
        let options = ServeOptions {
            header_read_timeout: self.header_read_timeout.unwrap_or(d.header_read_timeout),
            idle_timeout: self.idle_timeout.unwrap_or(d.idle_timeout),
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            shutdown_timeout: self.shutdown_timeout.unwrap_or(d.shutdown_timeout),
        };
        let max = Duration::from_millis(MAX_TIMEOUT_MS);
        let mut problems = Vec::new();
        for (variable, timeout, zero_allowed) in [
            (HEADER_TIMEOUT_VAR, options.header_read_timeout, false),
            (IDLE_TIMEOUT_VAR, options.idle_timeout, false),
            (SHUTDOWN_TIMEOUT_VAR, options.shutdown_timeout, true),
        ] {
            if (timeout.is_zero() && !zero_allowed) || timeout > max {
                let from = if zero_allowed { 0 } else { 1 };
                problems.push(Problem::new(
                    COMPONENT,
                    variable,
                    Some(timeout.as_millis().to_string()),
                    format!("milliseconds from {from} to {MAX_TIMEOUT_MS} (a day)"),
                ));
            }
        }
        if !(1..=MAX_CONNECTIONS_LIMIT).contains(&options.max_connections) {
            problems.push(Problem::new(
                COMPONENT,
                MAX_CONNECTIONS_VAR,
                Some(options.max_connections.to_string()),
                format!("a whole number from 1 to {MAX_CONNECTIONS_LIMIT}"),
            ));
        }
        ConfigError::check(problems, options)
    }
}

/// What a [`serve`] run did, returned when it ends (after a graceful shutdown).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeSummary {
    /// Connections accepted.
    pub accepted: u64,
    /// Closed because a request's head was not complete within the header-read timeout
    /// (including connections that sent nothing).
    pub header_timeouts: u64,
    /// Keep-alive connections closed after the idle timeout.
    pub idle_timeouts: u64,
    /// Connections still open at the shutdown deadline, closed then.
    pub closed_at_deadline: usize,
}

/// Serves `router` on `listener` with the bounds of `options`; await it, after
/// [`Serve::with_graceful_shutdown`] to be able to stop it.
///
/// What each connection gets ([`ServeOptions`], from `VITALS_HTTP_*` or a builder):
///
/// - **Header-read timeout** (`VITALS_HTTP_HEADER_TIMEOUT_MS`, 10 s): a request's head must be
///   complete this long after the connection was accepted (first request) or after the first
///   byte of the head arrived (later requests); else the connection is closed (slowloris).
/// - **Idle timeout** (`VITALS_HTTP_IDLE_TIMEOUT_MS`, 60 s): a keep-alive connection with no
///   request in flight is closed when no byte of a next request arrives this long after the
///   last response.
/// - **Connection bound** (`VITALS_HTTP_MAX_CONNECTIONS`, 1 024): at most this many sockets
///   open at once. Past it the server stops calling `accept`: new connections wait in the
///   kernel's accept backlog (their handshake done, no file descriptor of ours) until one
///   closes; established ones go on being served. When the backlog (tokio's `TcpListener::bind`
///   asks for 1 024) is full too, Linux drops further SYNs and clients see a slow connect.
/// - **Graceful shutdown with a deadline** (`VITALS_HTTP_SHUTDOWN_TIMEOUT_MS`, 30 s): when the
///   signal given to [`Serve::with_graceful_shutdown`] fires, the listener is closed (new
///   connections are refused), idle and fresh connections are closed, in-flight requests finish
///   (their responses say `connection: close`), and whatever is still open at the deadline is
///   closed.
///
/// A request's body and its handler are not timed here: bound them per route (a handler's
/// own timeout, or tower's).
///
/// The drop-in for `axum::serve(listener, router)` (HTTP/1.1, upgrades allowed); an upgraded
/// connection (a WebSocket) counts against the connection bound while open, but its timing
/// is its handler's.
///
/// # Example
/// ```no_run
/// # async fn example(app: axum::Router) -> Result<(), Box<dyn std::error::Error>> {
/// use vitals::http::{serve, ServeOptions};
///
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// let summary = serve(listener, app, ServeOptions::from_env()?)
///     .with_graceful_shutdown(async {
///         let _ = tokio::signal::ctrl_c().await;
///     })
///     .await;
/// println!("{} connections closed at the shutdown deadline", summary.closed_at_deadline);
/// # Ok(()) }
/// ```
pub fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
) -> Serve<std::future::Pending<()>> {
    Serve {
        listener,
        router,
        options,
        signal: std::future::pending(),
    }
}

/// A server not yet started: [`serve`]'s result. Await it (it is [`IntoFuture`]); it runs
/// until its shutdown signal fires and the shutdown ends, then gives a [`ServeSummary`].
#[must_use = "a Serve does nothing until it is awaited"]
pub struct Serve<S> {
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    signal: S,
}

impl<S> fmt::Debug for Serve<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serve")
            .field("listener", &self.listener)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<S> Serve<S> {
    /// Starts the graceful shutdown when `signal` completes: the listener closes, idle
    /// connections close, in-flight requests get until the shutdown deadline to finish.
    pub fn with_graceful_shutdown<G>(self, signal: G) -> Serve<G>
    where
        G: Future<Output = ()> + Send + 'static,
    {
        Serve {
            listener: self.listener,
            router: self.router,
            options: self.options,
            signal,
        }
    }
}

impl<S> IntoFuture for Serve<S>
where
    S: Future<Output = ()> + Send + 'static,
{
    type Output = ServeSummary;
    type IntoFuture = Pin<Box<dyn Future<Output = ServeSummary> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(run(self.listener, self.router, self.options, self.signal))
    }
}

/// The accept loop, then the shutdown.
async fn run(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    signal: impl Future<Output = ()>,
) -> ServeSummary {
    let mut signal = pin!(signal);
    let permits = Arc::new(Semaphore::new(options.max_connections));
    let draining = CancellationToken::new();
    let mut connections: JoinSet<Closed> = JoinSet::new();
    let mut summary = ServeSummary::default();
    loop {
        // The set keeps only open connections.
        while let Some(done) = connections.try_join_next() {
            summary.count(done);
        }
        // No permit, no accept: past the bound, connections wait in the kernel's backlog.
        let permit = tokio::select! {
            () = &mut signal => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                // The semaphore is never closed.
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = &mut signal => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                // One client's connection failed before it was accepted: nothing to wait for.
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "http: accept failed; retrying in 1 s");
                    tokio::select! {
                        () = &mut signal => break,
                        () = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => continue,
                    }
                }
            },
        };
        summary.accepted += 1;
        connections.spawn(connection(
            stream,
            permit,
            router.clone(),
            options.clone(),
            draining.child_token(),
        ));
    }
    // Stop accepting first: connections in the backlog are reset, new ones refused.
    drop(listener);
    draining.cancel();
    let deadline = Instant::now() + options.shutdown_timeout;
    loop {
        match tokio::time::timeout_at(deadline, connections.join_next()).await {
            Ok(Some(done)) => summary.count(done),
            Ok(None) => break,
            Err(_elapsed) => {
                summary.closed_at_deadline = connections.len();
                tracing::info!(
                    open = summary.closed_at_deadline,
                    "http: shutdown deadline passed; closing the connections still open"
                );
                // Aborting a connection's task drops its socket.
                connections.shutdown().await;
                break;
            }
        }
    }
    summary
}

/// Errors of one client's connection, not of the listener (hyper's and axum's list).
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// How a connection ended, for the summary.
#[derive(Debug, Clone, Copy)]
enum Closed {
    Done,
    HeaderTimeout,
    IdleTimeout,
}

impl ServeSummary {
    fn count(&mut self, done: Result<Closed, tokio::task::JoinError>) {
        match done {
            Ok(Closed::HeaderTimeout) => self.header_timeouts += 1,
            Ok(Closed::IdleTimeout) => self.idle_timeouts += 1,
            // A handler that panicked ends its connection: nothing more to count.
            Ok(Closed::Done) | Err(_) => {}
        }
    }
}

/// Serves one connection until it ends, its deadline passes, or the shutdown closes it.
async fn connection(
    stream: TcpStream,
    permit: OwnedSemaphorePermit,
    router: Router,
    options: ServeOptions,
    draining: CancellationToken,
) -> Closed {
    let clock = Arc::new(Clock::new(&options));
    let io = TokioIo::new(Tracked {
        stream,
        clock: clock.clone(),
        _permit: permit,
    });
    let service = {
        let clock = clock.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            // Called once the head is parsed: the header-read phase is over.
            let in_flight = clock.request_started();
            let router = router.clone();
            async move {
                let response = match router.oneshot(request.map(Body::new)).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                // The request is in flight until hyper drops the response's body, written.
                Ok::<_, Infallible>(response.map(|body| {
                    Body::new(body.map_frame(move |frame| {
                        let _in_flight = &in_flight;
                        frame
                    }))
                }))
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout + options.idle_timeout);
    let mut conn = pin!(builder.serve_connection(io, service).with_upgrades());
    let mut shutting_down = false;
    loop {
        let deadline = clock.deadline();
        let expiry = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    // hyper's errors name what went wrong, never what the client sent.
                    tracing::debug!(error = %e, "http: connection ended with an error");
                }
                return Closed::Done;
            }
            () = clock.changed.notified() => {}
            () = expiry => {
                // The phase may have moved on while the timer fired; only a deadline still
                // set and passed closes the connection.
                if let Some(closed) = clock.expired() {
                    tracing::debug!(reason = ?closed, "http: closing connection");
                    return closed;
                }
            }
            () = draining.cancelled(), if !shutting_down => {
                shutting_down = true;
                // hyper closes an idle connection on graceful_shutdown, but waits for the
                // first request of a fresh one: nothing is lost by closing it now.
                if clock.is_waiting() {
                    return Closed::Done;
                }
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Where a connection is in its request cycle, and so which deadline applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepted, nothing read: the header timeout runs from the accept.
    Fresh,
    /// Bytes of a head read, the head not complete: the header timeout runs.
    Head,
    /// A request is in flight (body, handler, response): no deadline here.
    Busy,
    /// The last response is written, no byte of the next request yet: the idle timeout runs.
    Idle,
}

/// A connection's phase and deadline, moved by its socket's reads and its requests, and
/// watched by its task. Shared by the socket, the service and the task of one connection.
struct Clock {
    header_read_timeout: Duration,
    idle_timeout: Duration,
    state: Mutex<Timing>,
    /// Told whenever the deadline moves, so the task sleeps until the new one.
    changed: Notify,
}

struct Timing {
    phase: Phase,
    deadline: Option<Instant>,
    in_flight: usize,
}

impl Clock {
    fn new(options: &ServeOptions) -> Self {
        Self {
            header_read_timeout: options.header_read_timeout,
            idle_timeout: options.idle_timeout,
            state: Mutex::new(Timing {
                phase: Phase::Fresh,
                deadline: Some(Instant::now() + options.header_read_timeout),
                in_flight: 0,
            }),
            changed: Notify::new(),
        }
    }

    fn timing(&self) -> std::sync::MutexGuard<'_, Timing> {
        // Plain data, consistent after every statement: a panic elsewhere cannot break it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn deadline(&self) -> Option<Instant> {
        self.timing().deadline
    }

    /// The socket read bytes.
    fn bytes_read(&self) {
        let mut t = self.timing();
        match t.phase {
            // The first head's timeout runs from the accept already.
            Phase::Fresh => t.phase = Phase::Head,
            Phase::Idle => {
                t.phase = Phase::Head;
                t.deadline = Some(Instant::now() + self.header_read_timeout);
                drop(t);
                self.changed.notify_one();
            }
            Phase::Head | Phase::Busy => {}
        }
    }

    /// A head is complete and handed to the router; the guard ends the request when dropped.
    fn request_started(self: &Arc<Self>) -> InFlight {
        let mut t = self.timing();
        t.in_flight += 1;
        t.phase = Phase::Busy;
        t.deadline = None;
        drop(t);
        self.changed.notify_one();
        InFlight(self.clone())
    }

    fn request_ended(&self) {
        let mut t = self.timing();
        t.in_flight = t.in_flight.saturating_sub(1);
        if t.in_flight == 0 {
            t.phase = Phase::Idle;
            t.deadline = Some(Instant::now() + self.idle_timeout);
            drop(t);
            self.changed.notify_one();
        }
    }

    /// Why the connection must close now, if its deadline has passed.
    fn expired(&self) -> Option<Closed> {
        let t = self.timing();
        match t.deadline {
            Some(at) if at <= Instant::now() => Some(match t.phase {
                Phase::Idle => Closed::IdleTimeout,
                Phase::Fresh | Phase::Head | Phase::Busy => Closed::HeaderTimeout,
            }),
            _ => None,
        }
    }

    /// Whether the connection waits for a request of which nothing has arrived.
    fn is_waiting(&self) -> bool {
        matches!(self.timing().phase, Phase::Fresh | Phase::Idle)
    }
}

/// A request in flight on its connection, until dropped with the response's body.
struct InFlight(Arc<Clock>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// The accepted socket, telling its connection's clock when bytes arrive, and holding its
/// place under the connection bound until it is closed.
struct Tracked {
    stream: TcpStream,
    clock: Arc<Clock>,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.clock.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_string())
        }
    }

    #[test]
    fn unset_variables_give_the_defaults() {
        assert_eq!(
            ServeOptions::from_env_with(env(&[])).unwrap(),
            ServeOptions::default()
        );
    }

    #[test]
    fn variables_set_every_option() {
        let o = ServeOptions::from_env_with(env(&[
            (HEADER_TIMEOUT_VAR, "250"),
            (IDLE_TIMEOUT_VAR, "1500"),
            (MAX_CONNECTIONS_VAR, "8"),
            (SHUTDOWN_TIMEOUT_VAR, "0"),
        ]))
        .unwrap();
        assert_eq!(o.header_read_timeout(), Duration::from_millis(250));
        assert_eq!(o.idle_timeout(), Duration::from_millis(1500));
        assert_eq!(o.max_connections(), 8);
        assert_eq!(o.shutdown_timeout(), Duration::ZERO);
    }

    #[test]
    fn every_bad_variable_is_a_problem_naming_it() {
        let err = ServeOptions::from_env_with(env(&[
            (HEADER_TIMEOUT_VAR, "0"),
            (IDLE_TIMEOUT_VAR, "soon"),
            (MAX_CONNECTIONS_VAR, "0"),
            (SHUTDOWN_TIMEOUT_VAR, "86400001"),
        ]))
        .unwrap_err();
        let named: Vec<&str> = err.problems().iter().map(|p| p.variable.as_str()).collect();
        assert_eq!(
            named,
            [
                HEADER_TIMEOUT_VAR,
                IDLE_TIMEOUT_VAR,
                MAX_CONNECTIONS_VAR,
                SHUTDOWN_TIMEOUT_VAR
            ],
            "{err}"
        );
        assert!(err.problems().iter().all(|p| p.component == "http"));
    }

    #[test]
    fn the_builder_refuses_zero_timeouts_and_no_connections() {
        let err = ServeOptions::builder()
            .header_read_timeout(Duration::ZERO)
            .idle_timeout(Duration::from_secs(2 * 24 * 3600))
            .max_connections(0)
            .build()
            .unwrap_err();
        assert_eq!(err.problems().len(), 3, "{err}");
        assert!(ServeOptions::builder()
            .shutdown_timeout(Duration::ZERO)
            .build()
            .is_ok());
    }

    #[test]
    fn options_and_summary_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ServeOptions>();
        assert_send_sync::<ServeSummary>();
        assert_send_sync::<Serve<std::future::Pending<()>>>();
    }
}
