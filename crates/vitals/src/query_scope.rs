//! N+1 detection per request (feature `http`): a tower layer that runs each request inside a
//! query-logger scope named after its route.
//!
//! The pool's observer records every statement with a plain `QueryLogger::record`, inline in
//! the task that awaits it; the logger counts it in the task's ambient scope
//! ([`vitals_querylog::Scope`]). This layer opens that scope, so the statements of one
//! request are counted together, whatever handler, extractor or helper runs them.

use std::task::{Context, Poll};

use axum::extract::MatchedPath;
use http::Request;
use tower::{Layer, Service};
use vitals_querylog::{QueryLogger, Scoped};

use crate::Vitals;

/// Name of the scope of a request that matched no route (its raw path may carry an id).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Runs every request inside an N+1 detection scope named `"{METHOD} {route}"`, the route
/// being the axum route template that matched (`GET /api/students/{student_id}/vaccinations`),
/// never the raw path, which can carry an id; a request that matched none is
/// `"{METHOD} unmatched"`.
///
/// Every statement run through `vitals.db()` while the request is handled is counted in its
/// scope, across `.await`s; a task the handler spawns counts there when its future is wrapped
/// with [`vitals::querylog::scoped`](vitals_querylog::scoped). When the request's future is
/// dropped (after the response is built), each statement fingerprint seen
/// `QUERYLOG_N_PLUS_ONE_THRESHOLD` times or more (default 5) is one finding: in the query
/// report, in `/metrics` (`vitals_query_n_plus_one_findings_total`) and as one `warn` event
/// naming the scope, the fingerprint and the sanitised statement, never a value.
///
/// Add it with [`Router::layer`](axum::Router::layer), after the routes it covers: axum sets
/// the matched route on each request before the route's layers run, so a layer wrapped around
/// the whole router from outside sees none and names every request `unmatched`.
///
/// Cloning is cheap (the logger is one `Arc`).
///
/// # Example
/// ```no_run
/// # async fn example(vitals: vitals::Vitals) -> Result<(), vitals::Error> {
/// use vitals::sqlx;
///
/// async fn student(
///     axum::extract::State(vitals): axum::extract::State<vitals::Vitals>,
///     axum::extract::Path(id): axum::extract::Path<uuid::Uuid>,
/// ) -> Result<String, vitals::Error> {
///     let pg = vitals.db().postgres()?;
///     let name: String = sqlx::query_scalar("SELECT first_name FROM students WHERE id = $1")
///         .bind(id)
///         .fetch_one(pg)
///         .await?;
///     Ok(name)
/// }
///
/// let app = axum::Router::new()
///     .route("/students/{id}", axum::routing::get(student))
///     .with_state(vitals.clone())
///     .layer(vitals.query_scope_layer());
/// # let _: axum::Router = app;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct QueryScopeLayer {
    logger: QueryLogger,
}

impl QueryScopeLayer {
    /// A layer whose scopes count the statements `logger` records (the facade's:
    /// `vitals.query_logger().clone()`, or [`Vitals::query_scope_layer`]).
    pub fn new(logger: QueryLogger) -> Self {
        Self { logger }
    }
}

impl<S> Layer<S> for QueryScopeLayer {
    type Service = QueryScope<S>;

    fn layer(&self, inner: S) -> QueryScope<S> {
        QueryScope {
            inner,
            logger: self.logger.clone(),
        }
    }
}

/// The service of [`QueryScopeLayer`]: `inner`, each call run inside a scope of its own.
#[derive(Debug, Clone)]
pub struct QueryScope<S> {
    inner: S,
    logger: QueryLogger,
}

impl<S, B> Service<Request<B>> for QueryScope<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Scoped<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let name = scope_name(&request);
        self.logger.in_scope(&name, self.inner.call(request))
    }
}

/// `"{METHOD} {route template}"`, or `"{METHOD} unmatched"`.
fn scope_name<B>(request: &Request<B>) -> String {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
    format!("{} {route}", request.method())
}

impl Vitals {
    /// A [`QueryScopeLayer`] on the facade's query logger: N+1 detection per request.
    pub fn query_scope_layer(&self) -> QueryScopeLayer {
        QueryScopeLayer::new(self.query_logger().clone())
    }
}
