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

use std::io::Cursor;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::NaiveDate;
use serde::Deserialize;
use uuid::Uuid;
use vitals_import::{Format, Item, RawValue, Source, DEFAULT_MAX_TEXT};

use super::cache::HealthData;
use super::model::Vaccination;
use super::records::MAX_DOSE;
use crate::http::{ErrorBody, InvalidateCacheLayer, StudentId};
use crate::{with_db, Vitals};

/// The largest import upload accepted, bytes.
pub const MAX_UPLOAD_BYTES: usize = 64 * 1024 * 1024;

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
            post(import).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .with_state(vitals.clone());
    api.merge(crate::http::router(vitals))
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

async fn summary(State(vitals): State<Vitals>, Path(student): Path<Uuid>) -> Response {
    match vitals.health_cache().student_health_summary(student).await {
        Ok(Some(summary)) => Json(summary).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "no such student"),
        Err(e) => e.into_response(),
    }
}

async fn vaccinations(State(vitals): State<Vitals>, Path(student): Path<Uuid>) -> Response {
    match vitals.health_cache().vaccinations(student).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The body of `POST /api/students/{student_id}/vaccinations`.
#[derive(Debug, Clone, Deserialize)]
pub struct NewVaccination {
    /// Vaccine, 1 to [`DEFAULT_MAX_TEXT`] (1 000) characters.
    pub vaccine_name: String,
    /// Dose number, 1 to [`MAX_DOSE`] (20).
    pub dose_number: i32,
    /// Day given, `YYYY-MM-DD`.
    pub administered_on: NaiveDate,
    /// Who gave it.
    pub administered_by: Option<String>,
    /// The vaccine's lot.
    pub lot_number: Option<String>,
}

async fn add_vaccination(
    State(vitals): State<Vitals>,
    Path(student): Path<Uuid>,
    Json(new): Json<NewVaccination>,
) -> Response {
    let name = new.vaccine_name.trim();
    if name.is_empty() || name.chars().count() > DEFAULT_MAX_TEXT {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("vaccine_name: expected 1 to {DEFAULT_MAX_TEXT} characters"),
        );
    }
    if !(1..=MAX_DOSE).contains(&i64::from(new.dose_number)) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("dose_number: expected 1 to {MAX_DOSE}"),
        );
    }
    let row = Vaccination {
        id: Uuid::new_v4(),
        student_id: student,
        vaccine_name: new.vaccine_name,
        dose_number: new.dose_number,
        administered_on: new.administered_on,
        administered_by: new.administered_by,
        lot_number: new.lot_number,
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
    Query(params): Query<ImportParams>,
    body: Bytes,
) -> Response {
    let format = match params.format.as_deref().unwrap_or("csv").parse::<Format>() {
        Ok(format) => format,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let source = match Source::from_reader(Cursor::new(body), format) {
        Ok(s) => match params.record_type {
            Some(t) => s.with_type(t),
            None => s,
        },
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
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
