//! `GET /api/v1/metrics`: every key of a selection over a range at once — totals, a series with
//! every bucket, a breakdown and performance levels. The report itself is built by
//! [`crate::report`], shared with `dorametrics report`.

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use dora_core::model::Scope;

use crate::auth::{form_pairs, Caller};
use crate::error::{json_api, ApiError};
use crate::report::{self, ReportError};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/metrics", get(metrics))
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
    match report::run(state.store.as_ref(), &request, state.failure_window).await {
        Ok(body) => Ok(json_api(body)),
        Err(error) => Ok(refusal(error)),
    }
}
