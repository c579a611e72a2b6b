//! The HTTP answer to an error (feature `http`): a status a client can act on, a
//! `Retry-After` when running the request again may succeed, and a JSON body `{"error": …}`
//! that names what is wrong but never a value the client or the database sent.
//!
//! A facade [`Error`] answers by its kind:
//!
//! | error | status |
//! |---|---|
//! | unique violation | 409 Conflict |
//! | foreign key, not null, check violation; SQLSTATE class 22 (data exception); a file an import cannot read | 422 Unprocessable Entity |
//! | serialization failure, deadlock, timeout, lost connection (an import's too) | 503 Service Unavailable, `Retry-After: 1` |
//! | anything else | 500 Internal Server Error |
//!
//! A request refused for its input is an [`InputRejection`]: the extractors [`InputPath`],
//! [`InputQuery`], [`InputJson`] and [`InputBytes`] stand in for axum's `Path`, `Query`,
//! `Json` and `Bytes`, whose own rejections put the request's values in a plain-text body
//! (`Cannot parse `student_id` with value `123-45-6789` …`, serde's `invalid type: string
//! "…"`) and in a `TRACE` event of target `axum::rejection`. Theirs name the field (the path
//! segment, the query parameter, the JSON field and its line and column) and the problem:
//!
//! | input | status | `error` |
//! |---|---|---|
//! | a path segment that does not parse | 400 | `student_id: not valid` |
//! | a query parameter that does not parse | 400 | `limit: not valid` |
//! | a body that is not JSON | 400 | `body: not valid JSON (line 1, column 17)` |
//! | JSON of the wrong shape | 422 | `dose_number: not the expected type or value (line 1, column 40)` |
//! | no `Content-Type: application/json` | 415 | `body: expected Content-Type: application/json` |
//! | a body above the route's limit | 413 | `body: larger than this route accepts` |
//! | an import upload not received in full in `VITALS_UPLOAD_READ_TIMEOUT_MS` | 408 | `body: not received in time` |
//!
//! axum's own rejection is never turned into a response, so its `TRACE` event (which holds
//! the value) is never emitted; the refusal is logged once at `DEBUG` (target
//! `vitals::http`) with the status and the same text as the body.

use std::error::Error as StdError;

use axum::body::Bytes;
use axum::extract::path::ErrorKind as PathErrorKind;
use axum::extract::rejection::{
    BytesRejection, FailedToBufferBody, JsonRejection, PathRejection, QueryRejection,
};
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::body_deadline::BodyTooSlow;
use crate::error::{DbErrorKind, Error};

/// Seconds a client waits before trying a retryable failure again: a serialization
/// conflict, a deadlock or a timeout clears at once, and the pool reconnects within that.
const RETRY_AFTER_SECS: u64 = 1;

/// `{"error": "...", "code": "23505", "constraint": "..."}`; `code` and `constraint` are
/// left out when the error has none.
#[derive(Debug, Serialize)]
struct Body<'a> {
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    constraint: Option<&'a str>,
}

/// The status of an error, by its database kind first.
fn status(err: &Error) -> StatusCode {
    match err.kind() {
        Some(DbErrorKind::UniqueViolation) => StatusCode::CONFLICT,
        Some(
            DbErrorKind::ForeignKeyViolation
            | DbErrorKind::NotNullViolation
            | DbErrorKind::CheckViolation,
        ) => StatusCode::UNPROCESSABLE_ENTITY,
        Some(kind) if kind.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
        _ if err.code().is_some_and(is_data_exception) => StatusCode::UNPROCESSABLE_ENTITY,
        _ => match err {
            // The file: unreadable, not the format, a record type not known.
            Error::Import(e) if e.is_input_error() => StatusCode::UNPROCESSABLE_ENTITY,
            // A row's value the database refused (class 22, a cast); any other failure of
            // the database, or of the import's own tasks or options, is the server's.
            Error::Import(vitals_import::ImportError::Database { source, .. })
                if source
                    .as_database_error()
                    .and_then(|db| db.code())
                    .is_some_and(|c| is_data_exception(&c)) =>
            {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        },
    }
}

/// SQLSTATE class 22 (`22P02` invalid text representation, `22003` out of range, ...): the
/// client's input. Only a SQLSTATE has five characters; SQLite's codes are numbers.
fn is_data_exception(code: &str) -> bool {
    code.len() == 5 && code.starts_with("22")
}

/// Turns a facade error into a response: the status above, `Retry-After` on a 503, and the
/// (already scrubbed) message with the code and the constraint.
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = status(&self);
        // Every variant's text is already scrubbed (`Error`'s Display).
        let error = self.to_string();
        let body = Body {
            error,
            code: self.code(),
            constraint: self.constraint(),
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}

/// A request refused for its input: a status (400, 413, 415 or 422) and, for each field at
/// fault, what is wrong with it. The answer is
/// `{"error": "lot_number: longer than 1000 characters", "fields": [{"field": "lot_number",
/// "reason": "longer than 1000 characters"}]}`; `error` joins every field's with `; `.
///
/// A field is a name from the program (a path segment's, a query parameter's, a JSON
/// field's, a spec's column) or `path`, `query` or `body` when none is known; a reason is
/// the rule broken. Neither ever holds a value the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRejection {
    status: StatusCode,
    fields: Vec<FieldProblem>,
}

/// One field of an [`InputRejection`] and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    /// The field.
    pub field: String,
    /// The rule it breaks, e.g. `longer than 1000 characters`.
    pub reason: String,
}

impl InputRejection {
    /// A refusal of `field` for `reason`. Neither may hold a value from the request: name
    /// the field as the program does and say what rule the value breaks.
    #[must_use]
    pub fn new(status: StatusCode, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            status,
            fields: vec![FieldProblem {
                field: field.into(),
                reason: reason.into(),
            }],
        }
    }

    /// A 422 for the rejections an import spec gave a record (`vitals_import::validate`,
    /// [`check_fields`](crate::health::records::check_fields)), whose reasons already name
    /// the rule, never the value.
    #[must_use]
    pub fn unprocessable(rejections: &[vitals_import::Rejection]) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            fields: rejections
                .iter()
                .map(|r| FieldProblem {
                    field: r.field.clone().unwrap_or_else(|| "body".to_owned()),
                    reason: r.reason.clone(),
                })
                .collect(),
        }
    }

    /// The status of the answer.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The fields at fault, in the order found.
    #[must_use]
    pub fn fields(&self) -> &[FieldProblem] {
        &self.fields
    }

    /// The `error` text: `field: reason`, joined with `; `.
    fn message(&self) -> String {
        let parts: Vec<String> = self
            .fields
            .iter()
            .map(|p| format!("{}: {}", p.field, p.reason))
            .collect();
        parts.join("; ")
    }
}

impl std::fmt::Display for InputRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl StdError for InputRejection {}

#[derive(Serialize)]
struct InputBody<'a> {
    error: String,
    fields: &'a [FieldProblem],
}

impl IntoResponse for InputRejection {
    fn into_response(self) -> Response {
        let error = self.message();
        tracing::debug!(
            target: "vitals::http",
            status = self.status.as_u16(),
            error = %error,
            "request input refused"
        );
        let body = InputBody {
            error,
            fields: &self.fields,
        };
        (self.status, Json(body)).into_response()
    }
}

/// axum's `Path<T>`, refused with an [`InputRejection`] naming the segment (400), never its
/// value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputPath<T>(pub T);

impl<T, S> FromRequestParts<S> for InputPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = InputRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(e) => {
                // A one-value `Path<T>`'s error has no key: the route's only parameter is it.
                let params = RawPathParams::from_request_parts(parts, state).await;
                let only = params
                    .ok()
                    .and_then(|p| match p.iter().collect::<Vec<_>>()[..] {
                        [(key, _)] => Some(key.to_owned()),
                        _ => None,
                    });
                Err(path_rejection(e, only))
            }
        }
    }
}

/// The refusal of a path; `only` is the route's one parameter, if it has only one.
fn path_rejection(rejection: PathRejection, only: Option<String>) -> InputRejection {
    let bad =
        |field: String, reason: String| InputRejection::new(StatusCode::BAD_REQUEST, field, reason);
    let wiring = || {
        InputRejection::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "path",
            "the route's parameters do not match its handler",
        )
    };
    match rejection {
        PathRejection::FailedToDeserializePathParams(e) => match e.into_kind() {
            // Keys are the route's own (`{student_id}`); the expected type is the program's.
            PathErrorKind::ParseErrorAtKey {
                key, expected_type, ..
            } => bad(key, format!("not a valid {}", short_type(expected_type))),
            PathErrorKind::DeserializeError { key, .. } => bad(key, "not valid".into()),
            PathErrorKind::InvalidUtf8InPathParam { key } => bad(key, "not valid UTF-8".into()),
            PathErrorKind::ParseErrorAtIndex {
                index,
                expected_type,
                ..
            } => bad(
                format!("path segment {}", index + 1),
                format!("not a valid {}", short_type(expected_type)),
            ),
            PathErrorKind::ParseError { expected_type, .. } => bad(
                only.unwrap_or_else(|| "path".into()),
                format!("not a valid {}", short_type(expected_type)),
            ),
            PathErrorKind::WrongNumberOfParameters { .. }
            | PathErrorKind::UnsupportedType { .. } => wiring(),
            _ => bad("path".into(), "not valid".into()),
        },
        PathRejection::MissingPathParams(_) => wiring(),
        other => InputRejection::new(other.status(), "path", "not valid"),
    }
}

/// `uuid::Uuid` → `uuid`, `u32` → `u32`, `alloc::string::String` → `string`.
fn short_type(name: &str) -> String {
    let base = name.split('<').next().unwrap_or(name);
    base.rsplit("::")
        .next()
        .unwrap_or(base)
        .to_ascii_lowercase()
}

/// axum's `Query<T>`, refused with an [`InputRejection`] naming the parameter (400), never
/// its value. As with [`InputJson`], a `T` that is a map of parameter names the client
/// chooses would have such a name in the refusal when it is spelt like an identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for InputQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = InputRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(e) => Err(query_rejection(&e)),
        }
    }
}

fn query_rejection(rejection: &QueryRejection) -> InputRejection {
    type UrlError = serde_path_to_error::Error<serde::de::value::Error>;
    match find::<UrlError>(rejection).and_then(|e| field_path(e.path())) {
        Some(field) => InputRejection::new(rejection.status(), field, "not valid"),
        None => InputRejection::new(
            rejection.status(),
            "query",
            "a parameter is missing or not valid",
        ),
    }
}

/// axum's `Json<T>`: the same `Content-Type` check and body limit, refused with an
/// [`InputRejection`] naming the JSON field and the line and column (400 for a body that is
/// not JSON, 422 for one of the wrong shape, 415, 413), never a value.
///
/// The field is named from the body's keys, and only when each is spelt like a declared
/// identifier (ASCII letters, digits, `_`, at most 128 characters); serde cannot tell a
/// struct's field from a map's key. So a `T` holding a map whose keys the client chooses
/// (`HashMap<String, _>`, keyed by something that may be PHI) would have such a key named in
/// the refusal: take that body with [`InputBytes`] and parse it yourself. The facade's own
/// routes use struct bodies only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputJson<T>(pub T);

impl<T, S> FromRequest<S> for InputJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = InputRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(e) => Err(json_rejection(&e)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> InputRejection {
    type PathError = serde_path_to_error::Error<serde_json::Error>;
    let status = rejection.status();
    let located = |what: &str| {
        // The data error carries the path it failed at; trailing characters a bare error.
        let path = find::<PathError>(rejection);
        let json = path
            .map(serde_path_to_error::Error::inner)
            .or_else(|| find::<serde_json::Error>(rejection));
        let field = path
            .and_then(|e| field_path(e.path()))
            .unwrap_or_else(|| "body".to_owned());
        let reason = match json {
            Some(e) => format!("{what} (line {}, column {})", e.line(), e.column()),
            None => what.to_owned(),
        };
        InputRejection::new(status, field, reason)
    };
    match rejection {
        JsonRejection::JsonDataError(_) => located("not the expected type or value"),
        JsonRejection::JsonSyntaxError(_) => {
            let eof = find::<PathError>(rejection)
                .map(serde_path_to_error::Error::inner)
                .or_else(|| find::<serde_json::Error>(rejection))
                .is_some_and(serde_json::Error::is_eof);
            let mut refusal = located(if eof {
                "JSON ends early"
            } else {
                "not valid JSON"
            });
            // A syntax error has no field worth naming: the whole body is unreadable.
            refusal.fields[0].field = "body".to_owned();
            refusal
        }
        JsonRejection::MissingJsonContentType(_) => {
            InputRejection::new(status, "body", "expected Content-Type: application/json")
        }
        JsonRejection::BytesRejection(e) => bytes_rejection(e),
        _ => InputRejection::new(status, "body", "not accepted"),
    }
}

/// axum's `Bytes`, with the route's body limit (`DefaultBodyLimit`), refused with an
/// [`InputRejection`] (413 above the limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputBytes(pub Bytes);

impl<S> FromRequest<S> for InputBytes
where
    S: Send + Sync,
{
    type Rejection = InputRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(Self)
            .map_err(|e| bytes_rejection(&e))
    }
}

fn bytes_rejection(rejection: &BytesRejection) -> InputRejection {
    if find::<BodyTooSlow>(rejection).is_some() {
        return InputRejection::new(StatusCode::REQUEST_TIMEOUT, "body", "not received in time");
    }
    let status = rejection.status();
    let reason = match rejection {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
            "larger than this route accepts"
        }
        _ => "could not be read",
    };
    InputRejection::new(status, "body", reason)
}

/// The first error of type `E` in `error`'s chain of sources (axum wraps serde's twice).
fn find<'a, E: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut next = Some(error);
    // A chain is a few links long; 16 bounds a cyclic `source()`.
    for _ in 0..16 {
        let current = next?;
        if let Some(found) = current.downcast_ref::<E>() {
            return Some(found);
        }
        next = current.source();
    }
    None
}

/// A serde path (`dose_number`, `items[2].name`) as a field name, when every name in it is
/// spelt like an identifier a program declares and it is short; `None` for the root, and for
/// a path through a key that is no such name (a map's keys are the client's:
/// `{"123-45-6789": …}`).
fn field_path(path: &serde_path_to_error::Path) -> Option<String> {
    use serde_path_to_error::Segment;
    /// Longer names are not ours.
    const MAX_FIELD: usize = 128;
    let identifier = |s: &str| {
        let mut chars = s.chars();
        s.len() <= MAX_FIELD
            && matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let mut text = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => text.push_str(&format!("[{index}]")),
            Segment::Map { key } if identifier(key) => {
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(key);
            }
            Segment::Enum { variant } if identifier(variant) => {
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(variant);
            }
            _ => return None,
        }
        if text.len() > MAX_FIELD {
            return None;
        }
    }
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use axum::routing::{get, post};
    use axum::Router;
    use serde::Deserialize;
    use tower::ServiceExt as _;

    use super::*;

    const SSN: &str = "123-45-6789";

    /// An import the database failed is answered by the failure: a lost connection 503 with
    /// `Retry-After` (running it again brings in the rest), a failed writer task 500; a file
    /// that cannot be read is the client's, 422 (every import error was a 422).
    #[test]
    fn an_import_error_is_answered_by_its_cause() {
        use vitals_import::ImportError;
        let lost = Error::Import(ImportError::Database {
            line: 201,
            source: sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into()),
        });
        assert!(lost.is_retryable());
        let answer = lost.into_response();
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(answer.headers().contains_key(header::RETRY_AFTER));
        let writer = Error::Import(ImportError::Writer("the writer task panicked".into()));
        assert_eq!(
            writer.into_response().status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let pool_gone = Error::Import(ImportError::Database {
            line: 1,
            source: sqlx::Error::PoolClosed,
        });
        assert_eq!(
            pool_gone.into_response().status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let unreadable = Error::Import(ImportError::Format("input has no CSV header row".into()));
        assert_eq!(
            unreadable.into_response().status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }

    #[derive(Deserialize)]
    struct Dose {
        #[allow(dead_code)]
        dose: i32,
        #[allow(dead_code)]
        items: Vec<Item>,
    }

    #[derive(Deserialize)]
    struct Item {
        #[allow(dead_code)]
        name: String,
    }

    #[derive(Deserialize)]
    struct Limit {
        #[allow(dead_code)]
        limit: Option<usize>,
    }

    fn app() -> Router {
        Router::new()
            .route("/n/{n}", get(|InputPath(_): InputPath<u32>| async {}))
            .route("/q", get(|InputQuery(_): InputQuery<Limit>| async {}))
            .route("/j", post(|InputJson(_): InputJson<Dose>| async {}))
            .route(
                "/m",
                post(|InputJson(_): InputJson<HashMap<String, i32>>| async {}),
            )
    }

    async fn send(uri: &str, json: Option<String>) -> (StatusCode, serde_json::Value) {
        let mut request = axum::http::Request::builder().uri(uri);
        let body = match json {
            Some(text) => {
                request = request
                    .method("POST")
                    .header("content-type", "application/json");
                axum::body::Body::from(text)
            }
            None => axum::body::Body::empty(),
        };
        let response = app().oneshot(request.body(body).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(!text.contains(SSN), "{text}");
        (status, serde_json::from_str(&text).unwrap())
    }

    #[tokio::test]
    async fn every_extractor_names_the_field_and_never_the_value() {
        let (status, body) = send(&format!("/n/{SSN}"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "n: not a valid u32", "{body}");
        let (status, body) = send(&format!("/q?limit={SSN}"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "limit: not valid");
        let wrong = format!(r#"{{"dose": 1, "items": [{{"name": "a"}}, {{"name": ["{SSN}"]}}]}}"#);
        let (status, body) = send("/j", Some(wrong)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            body["error"],
            "items[1].name: not the expected type or value (line 1, column 46)"
        );
        assert_eq!(body["fields"][0]["field"], "items[1].name");
        // A map's keys are the client's: the field is not named.
        let keyed = format!(r#"{{"{SSN}": "{SSN}"}}"#);
        let (status, body) = send("/m", Some(keyed)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .starts_with("body: not the expected type or value"),
            "{body}"
        );
    }

    #[test]
    fn short_type_names_drop_the_module_path() {
        assert_eq!(short_type("uuid::Uuid"), "uuid");
        assert_eq!(short_type("u32"), "u32");
        assert_eq!(short_type("alloc::vec::Vec<u8>"), "vec");
    }
}
