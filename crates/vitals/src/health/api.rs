//! A small school-health API over [`Vitals`] (feature `http`): what the
//! `health_server` example serves and the tests load. It shows the cache on reads and the
//! invalidation layers on writes.
//!
//! | route | what |
//! |---|---|
//! | `GET /api/students/{student_id}/health-summary` | the summary, through the cache (404 if none) |
//! | `GET /api/students/{student_id}/vaccinations` | the vaccinations, through the cache |
//! | `POST /api/students/{student_id}/vaccinations` | adds one (JSON); drops the cached vaccinations and summary |
//! | `POST /api/import?type=TYPE&format=csv\|ndjson\|json` | imports the body; drops the cache of every student it wrote records of |
//!
//! plus every route of [`crate::http::router`].
//!
//! The body of `POST …/vaccinations` is a JSON object with the fields of a `vaccination`
//! import record but `student_id` (the path's): `vaccine_name`, `dose_number`,
//! `administered_on` (`YYYY-MM-DD`), and optionally `administered_by` and `lot_number`. It is
//! checked by the same rules as an import of that record
//! ([`check_fields`](super::records::check_fields) with the facade's registry): text of 1 to
//! 1 000 characters without a NUL, a dose of 1 to 20, a date in years 0001 to 9999 and not in
//! the future.
//!
//! Every refusal is `{"error": …}` naming the field and the rule, never the value
//! ([`InputRejection`]): 400 for a path segment or a query parameter that does not parse, 422
//! for a body field that breaks a rule.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tokio::sync::Semaphore;
use uuid::Uuid;
use vitals_import::{Format, Item, RawValue, Source, Value};

use super::cache::HealthData;
use super::invalidate::parse_student;
use super::model::Vaccination;
use super::records::{self, VACCINATION};
use crate::body_deadline::with_deadline;
use crate::http::{
    ErrorBody, InputBytes, InputJson, InputPath, InputQuery, InputRejection, InvalidateCacheLayer,
    StudentId,
};
use crate::{with_db, Vitals};

/// The largest import upload accepted, bytes.
pub const MAX_UPLOAD_BYTES: usize = 64 * 1024 * 1024;

/// Import uploads a router reads or imports at once: their bodies, each up to
/// [`MAX_UPLOAD_BYTES`], hold at most 256 MiB together, however many connections the server
/// takes. One more is answered 503 with `Retry-After` before its body is read. A body must
/// arrive within `VITALS_UPLOAD_READ_TIMEOUT_MS` ([`Config::upload_read_timeout`]), else it
/// is refused 408 and its place given back, so clients that stall cannot hold all four.
///
/// [`Config::upload_read_timeout`]: crate::Config::upload_read_timeout
pub const MAX_CONCURRENT_UPLOADS: usize = 4;

/// The school-health API and the health endpoints, ready to serve. With the school-health
/// domain off (`VITALS_HEALTH=false`), only the health endpoints.
pub fn router(vitals: Vitals) -> Router {
    if !vitals.config().health {
        return crate::http::router(vitals);
    }
    let health = vitals.health_cache().clone();
    let api = Router::new()
        .route("/api/students/{student_id}/health-summary", get(summary))
        .route(
            "/api/students/{student_id}/vaccinations",
            get(vaccinations).merge(post(add_vaccination).route_layer(InvalidateCacheLayer::new(
                health,
                StudentId::PathParam("student_id"),
                [HealthData::Vaccinations, HealthData::Summary],
            ))),
        )
        // `Vitals::import` drops the cache of the students it wrote records of itself.
        .route(
            "/api/import",
            post(import)
                .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
                .layer(middleware::from_fn_with_state(
                    Uploads {
                        places: Arc::new(Semaphore::new(MAX_CONCURRENT_UPLOADS)),
                        read_timeout: vitals.config().upload_read_timeout,
                    },
                    one_of_the_uploads,
                )),
        )
        .with_state(vitals.clone());
    api.merge(crate::http::router(vitals))
}

/// The import route's places and how long a body may take to arrive.
#[derive(Clone)]
struct Uploads {
    places: Arc<Semaphore>,
    read_timeout: Duration,
}

/// Lets an upload through if fewer than [`MAX_CONCURRENT_UPLOADS`] are being read or
/// imported; else a 503 with `Retry-After: 1`, its body unread. The place is held until the
/// import's answer (its body is in memory until then); a body not received in full within
/// `VITALS_UPLOAD_READ_TIMEOUT_MS` is refused 408, its place given back.
async fn one_of_the_uploads(
    State(uploads): State<Uploads>,
    request: Request,
    next: Next,
) -> Response {
    let Ok(_place) = uploads.places.try_acquire() else {
        let mut busy = error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("busy: {MAX_CONCURRENT_UPLOADS} imports are being uploaded; try again"),
        );
        busy.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return busy;
    };
    let request = request.map(|body| with_deadline(body, uploads.read_timeout));
    next.run(request).await
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(ErrorBody {
            error: message.into(),
        }),
    )
        .into_response()
}

/// The `{student_id}` of a route, a UUID; else a 400 `student_id: not a uuid` (the
/// importer's rule and reason for the field).
struct StudentPath(Uuid);

impl<S: Send + Sync> FromRequestParts<S> for StudentPath {
    type Rejection = InputRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let InputPath(raw) = InputPath::<String>::from_request_parts(parts, state).await?;
        parse_student(&raw)
            .map(Self)
            .ok_or_else(|| InputRejection::new(StatusCode::BAD_REQUEST, "student_id", "not a uuid"))
    }
}

async fn summary(State(vitals): State<Vitals>, StudentPath(student): StudentPath) -> Response {
    match vitals.health_cache().student_health_summary(student).await {
        Ok(Some(summary)) => Json(&*summary).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "no such student"),
        Err(e) => e.into_response(),
    }
}

async fn vaccinations(State(vitals): State<Vitals>, StudentPath(student): StudentPath) -> Response {
    match vitals.health_cache().vaccinations(student).await {
        Ok(list) => Json(&*list).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn add_vaccination(
    State(vitals): State<Vitals>,
    StudentPath(student): StudentPath,
    InputJson(body): InputJson<serde_json::Map<String, serde_json::Value>>,
) -> Response {
    let path = vec![("student_id", RawValue::Text(student.to_string()))];
    let values = match records::check_fields(vitals.importer().registry(), VACCINATION, body, path)
    {
        Ok(values) => values,
        Err(rejections) => return InputRejection::unprocessable(&rejections).into_response(),
    };
    let Some(row) = vaccination(student, values) else {
        // The spec's columns are those `vaccination` reads (records' tests check the order).
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the vaccination spec does not match its table",
        );
    };
    let insert = vitals.tables().sql(
        "INSERT INTO {s}vaccinations (id, student_id, vaccine_name, dose_number, administered_on, \
         administered_by, lot_number) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    );
    let result = with_db!(vitals.db(), |db| {
        sqlx::query(&insert)
            .bind(row.id)
            .bind(row.student_id)
            .bind(&row.vaccine_name)
            .bind(row.dose_number)
            .bind(row.administered_on)
            .bind(&row.administered_by)
            .bind(&row.lot_number)
            .execute(db)
            .await
            .map(|_| ())
    });
    match result {
        Ok(()) => (StatusCode::CREATED, Json(row)).into_response(),
        Err(e) => match e.as_database_error() {
            Some(db) if db.is_unique_violation() => {
                error(StatusCode::CONFLICT, "this dose is already recorded")
            }
            Some(db) if db.is_foreign_key_violation() => {
                error(StatusCode::NOT_FOUND, "no such student")
            }
            _ => crate::Error::database(&e).into_response(),
        },
    }
}

/// A new vaccination of `student` from the values the `vaccination` spec validated, in its
/// column order (`student_id, vaccine_name, dose_number, administered_on, administered_by,
/// lot_number`); `None` if they are not of that shape.
fn vaccination(student: Uuid, values: Vec<Value>) -> Option<Vaccination> {
    let values: [Value; 6] = values.try_into().ok()?;
    let [_, Value::Text(vaccine_name), Value::Int(dose), Value::Date(administered_on), by, lot] =
        values
    else {
        return None;
    };
    let optional = |v: Value| match v {
        Value::Text(s) => Some(Some(s)),
        Value::Null => Some(None),
        _ => None,
    };
    Some(Vaccination {
        id: Uuid::new_v4(),
        student_id: student,
        vaccine_name,
        dose_number: i32::try_from(dose).ok()?,
        administered_on,
        administered_by: optional(by)?,
        lot_number: optional(lot)?,
    })
}

/// The query of `POST /api/import`.
#[derive(Debug, Deserialize)]
pub struct ImportParams {
    /// The record type of every row, for files without a `type` field (CSV).
    #[serde(rename = "type")]
    pub record_type: Option<String>,
    /// `csv`, `ndjson` (or `jsonl`) or `json`, in any case, as [`Format`] parses them
    /// (default `csv`).
    pub format: Option<String>,
    /// Validate only.
    #[serde(default)]
    pub dry_run: bool,
}

async fn import(
    State(vitals): State<Vitals>,
    InputQuery(params): InputQuery<ImportParams>,
    InputBytes(body): InputBytes,
) -> Response {
    // Format's and the importer's own errors quote the value given; these name the parameter.
    let Ok(format) = params.format.as_deref().unwrap_or("csv").parse::<Format>() else {
        return InputRejection::new(
            StatusCode::BAD_REQUEST,
            "format",
            "expected csv, ndjson or json",
        )
        .into_response();
    };
    let registry = vitals.importer().registry();
    if let Some(t) = params.record_type.as_deref() {
        if registry.get(t).is_none() {
            let names: Vec<&str> = registry.specs().iter().map(|s| s.name()).collect();
            return InputRejection::new(
                StatusCode::BAD_REQUEST,
                "type",
                format!("expected one of {}", names.join(", ")),
            )
            .into_response();
        }
    }
    let source = match Source::from_reader(Cursor::new(body), format) {
        Ok(s) => match params.record_type {
            Some(t) => s.with_type(t),
            None => s,
        },
        // A fixed text: the importer's error may quote the header line, which in a file
        // sent without one is a row of data.
        Err(_) => {
            return InputRejection::new(
                StatusCode::BAD_REQUEST,
                "body",
                "not readable as CSV: no header row, or a header naming a column twice",
            )
            .into_response()
        }
    };
    let options = params
        .dry_run
        .then(|| vitals.config().import.clone().dry_run(true));
    match vitals.import(source, options).await {
        Ok(outcome) => Json(outcome).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Every student a file names: the `student_id` of each record, and the `id` of each
/// `student` record. A superset of the students whose data an import changed, for a host
/// that imports through [`Importer::run`](vitals_import::Importer::run) itself and
/// invalidates with [`TouchedStudents`](crate::http::TouchedStudents) (`Vitals::import`
/// needs none: it drops the students it wrote records of).
pub fn touched_students(mut source: Source) -> Vec<Uuid> {
    let fixed = source.fixed_type().map(str::to_owned);
    let mut ids = std::collections::BTreeSet::new();
    while let Ok(Some(item)) = source.next_item() {
        let Item::Record(record) = item else { continue };
        let is_student = record.type_name().or(fixed.as_deref()) == Some(super::records::STUDENT);
        let field = if is_student { "id" } else { "student_id" };
        if let Some(RawValue::Text(text)) = record.get(field) {
            if let Ok(id) = text.trim().parse() {
                ids.insert(id);
            }
        }
    }
    ids.into_iter().collect()
}
