//! `GET /api/v1/metrics`: every key of a selection over a range at once — totals, a series with
//! every bucket, a breakdown and performance levels. The report itself is built by
//! [`dora_engine::report`], shared with `dorametrics report`.

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use dora_core::model::Scope;

use crate::auth::{form_pairs, Caller};
use crate::error::{json_api, ApiError};
use crate::report::{self, ReportError};
use crate::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// A 400 naming the query parameter (JSON:API `source.parameter`), or the store's and lookup
/// errors in the shape the rest of the API uses.
fn refusal(error: ReportError) -> Response {
    match error {
        ReportError::BadParameter { parameter, detail } => {
            ApiError::BadParameter { parameter, detail }.into_response()
        }
        ReportError::NotFound(what) => ApiError::NotFound(what).into_response(),
        ReportError::Store(error) => ApiError::Store(error).into_response(),
    }
}

#[utoipa::path(get, path = "/api/v1/metrics", tag = "native", operation_id = "metrics_report",
    description = "Every DORA key of a selection over a range: totals, a series, a breakdown, levels (read scope).",
    params(
        ("from" = Option<String>, Query, description = "First day, YYYY-MM-DD"),
        ("to" = Option<String>, Query, description = "Last day, YYYY-MM-DD"),
        ("interval" = Option<String>, Query, description = "daily, weekly, monthly or all"),
        ("service" = Option<String>, Query), ("team" = Option<String>, Query), ("env" = Option<String>, Query),
        ("tiers" = Option<String>, Query, description = "production, staging, testing, development, other or all"),
        ("project" = Option<String>, Query), ("group" = Option<String>, Query),
        ("query" = Option<String>, Query, description = "Datadog search syntax"),
        ("year" = Option<String>, Query, description = "2019, 2021, 2023 or 2024"),
        ("breakdown" = Option<String>, Query, description = "service, team, env or project"),
    ),
    responses((status = 200, body = report::Report, content_type = "application/vnd.api+json"), crate::openapi::ApiErrors))]
async fn metrics(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let pairs = query.as_deref().map(form_pairs).unwrap_or_default();
    let today = chrono::Utc::now().date_naive();
    let request = match report::parse(&pairs, today) {
        Ok(request) => request,
        Err(error) => return Ok(refusal(error)),
    };
    let (store, window) = (state.store.as_ref(), state.failure_window);
    match report::run(store, &request, window, &state.refresher).await {
        Ok(body) => Ok(json_api(body)),
        Err(error) => Ok(refusal(error)),
    }
}
