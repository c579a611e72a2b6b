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
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

mod clock;
mod options;

use clock::{Clock, Closed, Tracked};
pub use options::{ServeOptions, ServeOptionsBuilder};

/// How long to wait before accepting again after an error that is not one connection's
/// (out of file descriptors, say): nothing to await tells when one is free again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_secs(1);

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
///   A pipelined head whose first bytes arrive while the previous request is still in flight
///   cannot be told from that request's body at the socket, so it is timed as idle from the
///   response on: bounded still, by the idle timeout plus the header-read timeout (hyper's
///   own timer, set to that sum).
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
    let permits = Arc::new(Semaphore::new(options.max_connections()));
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
    let deadline = Instant::now() + options.shutdown_timeout();
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
        .header_read_timeout(options.header_read_timeout() + options.idle_timeout());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_and_its_summary_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ServeSummary>();
        assert_send_sync::<Serve<std::future::Pending<()>>>();
    }
}
