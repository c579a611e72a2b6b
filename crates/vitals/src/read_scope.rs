//! Read-your-writes per request (feature `http`): a tower layer that runs each request inside
//! a [`read_your_writes`](vitals_pool::read_your_writes) scope.
//!
//! A statement through [`Vitals::db`] (the primary, the replica router's write handle) marks
//! the request's scope; the reads of [`Vitals::reads`], the health cache's loads and the
//! dashboard in the same request then go only to a replica that replayed it, or to the
//! primary. Without replicas the scope costs one task-local per request and changes nothing.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Request;
use tower::{Layer, Service};

use crate::Vitals;

/// Runs every request in a read-your-writes scope of its own.
///
/// # Example
/// ```no_run
/// # async fn example(vitals: vitals::Vitals) {
/// let app: axum::Router = axum::Router::new()
///     .merge(vitals::http::router(vitals.clone()))
///     .layer(vitals::http::ReadYourWritesLayer::new());
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadYourWritesLayer;

impl ReadYourWritesLayer {
    /// The layer.
    pub fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for ReadYourWritesLayer {
    type Service = ReadYourWrites<S>;

    fn layer(&self, inner: S) -> ReadYourWrites<S> {
        ReadYourWrites { inner }
    }
}

/// The service of [`ReadYourWritesLayer`].
#[derive(Debug, Clone)]
pub struct ReadYourWrites<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for ReadYourWrites<S>
where
    S: Service<Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        Box::pin(vitals_pool::read_your_writes(self.inner.call(request)))
    }
}

impl Vitals {
    /// A [`ReadYourWritesLayer`]: each request's reads see its own writes.
    pub fn read_your_writes_layer(&self) -> ReadYourWritesLayer {
        ReadYourWritesLayer
    }
}
