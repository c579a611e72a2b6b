//! The cache-invalidation layers for write routes (feature `http`): after a write succeeds (a
//! 2xx response), the students it touched lose their cached data. A failed write invalidates
//! nothing.
//!
//! [`InvalidateCacheLayer`] is the report's `@InvalidateCache({studentIdPath,
//! invalidateTypes})`: one student, found in the request. [`BulkInvalidateLayer`] is its
//! `BulkCacheInvalidationInterceptor`: every student the response names. Both are one service,
//! [`Invalidate`], that asks its layer what to look for before the write and what to drop after.
//! Reached as `vitals::http::*`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::response::Response;
use tower::{Layer, Service};
use uuid::Uuid;

use super::{HealthData, HealthDataCache};

/// Where a write route's student id is (the report's `studentIdPath`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StudentId {
    /// A path parameter, such as `student_id` in `/students/{student_id}/vaccinations`
    /// (the report's `params.studentId`).
    PathParam(&'static str),
    /// A header, such as `x-student-id`.
    Header(&'static str),
}

/// A student id as a request spells it (a path segment, a header): a UUID, white space
/// around it ignored. The one parser of the routes and of the invalidation layers, so that a
/// write a route accepts is the write whose student the layer invalidates.
pub(crate) fn parse_student(raw: &str) -> Option<Uuid> {
    Uuid::parse_str(raw.trim()).ok()
}

impl StudentId {
    async fn find(&self, parts: &mut Parts) -> Option<Uuid> {
        match self {
            StudentId::PathParam(name) => {
                let params = RawPathParams::from_request_parts(parts, &()).await.ok()?;
                params
                    .iter()
                    .find(|(k, _)| k == name)
                    .and_then(|(_, v)| parse_student(v))
            }
            StudentId::Header(name) => parts
                .headers
                .get(*name)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_student),
        }
    }
}

mod sealed {
    use super::*;

    /// What an invalidation layer reads from the request before the write, and drops from the
    /// cache once the write has succeeded. Sealed: the two layers of this module are its only
    /// implementations.
    pub trait Invalidation: Clone + Send + Sync + 'static {
        /// What `before` found, carried across the inner service's call.
        type Found: Send;
        /// Looks at the request before the inner service takes it.
        fn before(&self, parts: &mut Parts) -> impl Future<Output = Self::Found> + Send;
        /// Invalidates after a 2xx response.
        fn after(
            &self,
            found: Self::Found,
            response: &mut Response,
        ) -> impl Future<Output = ()> + Send;
    }
}
use sealed::Invalidation;

/// Drops a student's cached data after a write route succeeds (a 2xx response): the
/// report's `@InvalidateCache({studentIdPath, invalidateTypes})`. A failed write invalidates
/// nothing. Apply it with `route_layer` so that path parameters are known.
#[derive(Debug, Clone)]
pub struct InvalidateCacheLayer {
    cache: HealthDataCache,
    student: StudentId,
    /// Never empty: `new` turns "no kinds" into every kind.
    kinds: Arc<[HealthData]>,
}

impl InvalidateCacheLayer {
    /// Invalidates `kinds` of the student found at `student` (all of the student's data when
    /// `kinds` is empty).
    pub fn new(
        cache: HealthDataCache,
        student: StudentId,
        kinds: impl IntoIterator<Item = HealthData>,
    ) -> Self {
        let mut kinds: Arc<[HealthData]> = kinds.into_iter().collect();
        if kinds.is_empty() {
            kinds = Arc::new(HealthData::ALL);
        }
        InvalidateCacheLayer {
            cache,
            student,
            kinds,
        }
    }
}

impl Invalidation for InvalidateCacheLayer {
    type Found = Option<Uuid>;

    async fn before(&self, parts: &mut Parts) -> Option<Uuid> {
        self.student.find(parts).await
    }

    async fn after(&self, student: Option<Uuid>, _response: &mut Response) {
        if let Some(id) = student {
            self.cache.invalidate(id, &self.kinds).await;
        }
    }
}

/// The students a bulk write touched; a handler puts it in its response's extensions for
/// [`BulkInvalidateLayer`].
#[derive(Debug, Clone, Default)]
pub struct TouchedStudents(pub Vec<Uuid>);

/// After a successful bulk write (an import), drops the cached data of every student the
/// response names in its [`TouchedStudents`] extension: the report's
/// `BulkCacheInvalidationInterceptor`.
#[derive(Debug, Clone)]
pub struct BulkInvalidateLayer {
    cache: HealthDataCache,
}

impl BulkInvalidateLayer {
    /// A layer invalidating through `cache`.
    pub fn new(cache: HealthDataCache) -> Self {
        BulkInvalidateLayer { cache }
    }
}

impl Invalidation for BulkInvalidateLayer {
    type Found = ();

    async fn before(&self, _parts: &mut Parts) {}

    async fn after(&self, (): (), response: &mut Response) {
        if let Some(TouchedStudents(ids)) = response.extensions_mut().remove() {
            self.cache.invalidate_students(&ids).await;
        }
    }
}

macro_rules! layer_of {
    ($($layer:ident),*) => {$(
        impl<S> Layer<S> for $layer {
            type Service = Invalidate<S, $layer>;

            fn layer(&self, inner: S) -> Self::Service {
                Invalidate {
                    inner,
                    layer: self.clone(),
                }
            }
        }
    )*};
}
layer_of!(InvalidateCacheLayer, BulkInvalidateLayer);

/// The service of both invalidation layers: runs the inner service, then, on a 2xx response,
/// the layer's invalidation.
#[derive(Debug, Clone)]
pub struct Invalidate<S, L> {
    inner: S,
    layer: L,
}

/// The service of [`InvalidateCacheLayer`].
pub type InvalidateCache<S> = Invalidate<S, InvalidateCacheLayer>;

/// The service of [`BulkInvalidateLayer`].
pub type BulkInvalidate<S> = Invalidate<S, BulkInvalidateLayer>;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The service that was polled ready, taken out for a call that outlives `&mut self`; a fresh
/// clone stays behind for the next `poll_ready` (tower's rule for services that await their
/// inner service).
fn take_ready<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    std::mem::replace(inner, clone)
}

impl<S, L> Service<Request> for Invalidate<S, L>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    L: Invalidation,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let mut inner = take_ready(&mut self.inner);
        let layer = self.layer.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let found = layer.before(&mut parts).await;
            let mut response = inner.call(Request::from_parts(parts, body)).await?;
            if response.status().is_success() {
                layer.after(found, &mut response).await;
            }
            Ok(response)
        })
    }
}
