//! A connection's clock: which phase of its request cycle it is in and which deadline runs,
//! moved by its socket's reads ([`Tracked`]) and its requests ([`InFlight`]).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use super::options::ServeOptions;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio::time::Instant;

/// Where a connection is in its request cycle, and so which deadline applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
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
pub(super) struct Clock {
    header_read_timeout: Duration,
    idle_timeout: Duration,
    state: Mutex<Timing>,
    /// Told whenever the deadline moves, so the task sleeps until the new one.
    pub(super) changed: Notify,
}

pub(super) struct Timing {
    phase: Phase,
    deadline: Option<Instant>,
    in_flight: usize,
}

impl Clock {
    pub(super) fn new(options: &ServeOptions) -> Self {
        Self {
            header_read_timeout: options.header_read_timeout(),
            idle_timeout: options.idle_timeout(),
            state: Mutex::new(Timing {
                phase: Phase::Fresh,
                deadline: Some(Instant::now() + options.header_read_timeout()),
                in_flight: 0,
            }),
            changed: Notify::new(),
        }
    }

    fn timing(&self) -> std::sync::MutexGuard<'_, Timing> {
        // Plain data, consistent after every statement: a panic elsewhere cannot break it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
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
    pub(super) fn request_started(self: &Arc<Self>) -> InFlight {
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
    pub(super) fn expired(&self) -> Option<Closed> {
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
    pub(super) fn is_waiting(&self) -> bool {
        matches!(self.timing().phase, Phase::Fresh | Phase::Idle)
    }
}

/// A request in flight on its connection, until dropped with the response's body.
pub(super) struct InFlight(Arc<Clock>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// The accepted socket, telling its connection's clock when bytes arrive, and holding its
/// place under the connection bound until it is closed.
pub(super) struct Tracked {
    pub(super) stream: TcpStream,
    pub(super) clock: Arc<Clock>,
    pub(super) _permit: OwnedSemaphorePermit,
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

/// How a connection ended, for the summary.
#[derive(Debug, Clone, Copy)]
pub(super) enum Closed {
    Done,
    HeaderTimeout,
    IdleTimeout,
}
