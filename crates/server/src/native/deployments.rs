//! `POST /api/v1/deployments`: deployments in bulk (a history backfilled, an export from another
//! tool), as NDJSON or a JSON array whose elements are what `POST /api/v2/dora/deployment` takes
//! as `data.attributes` — or its whole request documents, so recorded requests can be replayed —
//! validated the same way; all stored in one transaction, or none.

use axum::extract::{Request, State};
use axum::Json;
use dora_core::model::{Deployment, Scope};
use serde_json::{json, Value};

use super::bulk;
use crate::auth::Caller;
use crate::datadog::decode::deployment_fields;
use crate::datadog::fields::Object;
use crate::datadog::new_deployment_id;
use crate::error::{ApiError, Problem};
use crate::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The same limit as commit pushes: well over 100 000 deployments.
pub const MAX_DEPLOYMENTS_BODY_BYTES: usize = super::commits::MAX_COMMITS_BODY_BYTES;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(put_deployments))
}

#[utoipa::path(post, path = "/api/v1/deployments", tag = "native",
    description = "Deployments in bulk, as NDJSON or a JSON array of what POST /api/v2/dora/deployment takes as `data.attributes`, all or none (write scope): `{\"received\", \"ids\"}`.",
    request_body(content = Vec<crate::openapi::DeploymentRequestAttributes>, content_type = "application/json"),
    responses((status = 200, body = serde_json::Value), crate::openapi::ApiErrors))]
async fn put_deployments(
    State(state): State<AppState>,
    caller: Caller,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::Write)?;
    let deployments =
        bulk::decode(request, MAX_DEPLOYMENTS_BODY_BYTES, "deployment", with_id).await?;
    let ids: Vec<String> = deployments.iter().map(|d| d.id.clone()).collect();
    state.store.put_deployments(deployments).await?;
    Ok(Json(json!({ "received": ids.len(), "ids": ids })))
}

/// One deployment, with an id generated when it has none (as the single-event endpoint does).
fn with_id(element: &Object<'_>) -> Result<Deployment, Problem> {
    let (id, mut deployment) = match element.object("data")? {
        Some(data) => {
            data.expect_type("dora_deployment", false)?;
            deployment_fields(&data.required_object("attributes")?)?
        }
        None => deployment_fields(element)?,
    };
    deployment.id = id.unwrap_or_else(new_deployment_id);
    Ok(deployment)
}
