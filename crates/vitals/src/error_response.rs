//! The HTTP answer to a facade error (feature `http`): a status a client can act on, a
//! `Retry-After` when running the request again may succeed, and a JSON body that names the
//! SQLSTATE and the constraint but never a value.
//!
//! | error | status |
//! |---|---|
//! | unique violation | 409 Conflict |
//! | foreign key, not null, check violation; SQLSTATE class 22 (data exception); an import | 422 Unprocessable Entity |
//! | serialization failure, deadlock, timeout, lost connection | 503 Service Unavailable, `Retry-After: 1` |
//! | anything else | 500 Internal Server Error |

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

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
            Error::Import(_) => StatusCode::UNPROCESSABLE_ENTITY,
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
