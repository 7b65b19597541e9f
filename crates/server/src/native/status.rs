//! `GET /api/v1/status`: what the engine still has to derive, so that an operator sees a bulk
//! load being taken in (and `/readyz` stays what a load balancer needs).

use axum::extract::State;
use axum::response::Response;
use dora_core::model::Scope;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{json_api, ApiError};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(status))
}

/// What is still to derive, and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// The store: `sqlite` or `postgres`.
    pub store: String,
    /// Streams (one service to one env) whose change sets and verdicts are stale: a metric
    /// read derives them first.
    pub stale_streams: u64,
    /// Seconds since the oldest write still to derive was acknowledged; `null` when none is.
    pub oldest_stale_write_age_s: Option<f64>,
    /// Days whose tallies are stale.
    pub stale_days: u64,
}

#[utoipa::path(get, path = "/api/v1/status", tag = "native",
    description = "What is still to derive (read scope): stale streams, the age of the oldest write they wait on, stale days, and the store.",
    responses((status = 200, body = Status, content_type = "application/vnd.api+json"), crate::openapi::ApiErrors))]
async fn status(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let staleness = state.store.staleness().await?;
    Ok(json_api(Status {
        store: state.store.kind().to_string(),
        stale_streams: staleness.streams,
        // Clocks can disagree by a little: an age is never negative.
        oldest_stale_write_age_s: staleness.oldest_mark_age.map(|age| age.max(0) as f64 / 1e9),
        stale_days: staleness.days,
    }))
}
