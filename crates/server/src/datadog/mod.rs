//! The Datadog-compatible DORA API (`/api/v2/dora/*`): what the official Datadog clients and
//! `datadog-ci` speak.

pub(crate) mod decode;
mod encode;
/// Shared with the native API, whose intake reports problems the same way.
pub(crate) mod fields;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dora_core::model::{DeploymentSelector, Scope};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::body::JsonBody;
use crate::error::{json_api, ApiError};
use crate::openapi::{
    Accepted, ApiErrors, DeploymentRequest, FailureRequest, ListRequest, PatchRequest,
};
use crate::AppState;
use decode::ListKind;

#[allow(deprecated)] // the incident alias is routed, and described as deprecated
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_deployment))
        .routes(routes!(delete_deployment))
        .routes(routes!(create_failure))
        .routes(routes!(create_incident))
        .routes(routes!(delete_failure))
        .routes(routes!(list_deployments, patch_deployment_by_version))
        .routes(routes!(get_deployment, patch_deployment))
        .routes(routes!(list_failures))
        .routes(routes!(get_failure))
}

fn accepted(kind: &str, id: &str) -> Response {
    let mut response = json_api(json!({ "data": { "id": id, "type": kind } }));
    *response.status_mut() = StatusCode::ACCEPTED;
    response
}

pub(crate) fn new_deployment_id() -> String {
    hex::encode(rand::random::<[u8; 8]>())
}

#[utoipa::path(post, path = "/api/v2/dora/deployment", tag = "datadog",
    description = "Create a deployment, or replace the one with the same id (write scope).",
    request_body = DeploymentRequest,
    responses((status = 202, body = Accepted, content_type = "application/vnd.api+json"), ApiErrors))]
async fn create_deployment(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(document): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(Scope::Write)?;
    let (id, mut deployment) = decode::deployment(&document)?;
    deployment.id = id.unwrap_or_else(new_deployment_id);
    let id = deployment.id.clone();
    state.store.put_deployment(deployment).await?;
    Ok(accepted(encode::DEPLOYMENT_TYPE, &id))
}

/// `POST /api/v2/dora/incident`: the deprecated name of `POST /api/v2/dora/failure`.
#[utoipa::path(post, path = "/api/v2/dora/incident", tag = "datadog", operation_id = "create_incident",
    description = "Deprecated: the same as POST /api/v2/dora/failure.",
    request_body = FailureRequest,
    responses((status = 202, body = Accepted, content_type = "application/vnd.api+json"), ApiErrors))]
#[deprecated]
async fn create_incident(
    state: State<AppState>,
    caller: Caller,
    body: JsonBody,
) -> Result<Response, ApiError> {
    create_failure(state, caller, body).await
}

#[utoipa::path(post, path = "/api/v2/dora/failure", tag = "datadog",
    description = "Create a failure, or replace (resolve) the one with the same id (write scope).",
    request_body = FailureRequest,
    responses((status = 202, body = Accepted, content_type = "application/vnd.api+json"), ApiErrors))]
async fn create_failure(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(document): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(Scope::Write)?;
    let (id, mut failure) = decode::failure(&document)?;
    failure.id = id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let id = failure.id.clone();
    state.store.put_failure(failure).await?;
    Ok(accepted(encode::FAILURE_TYPE, &id))
}

#[utoipa::path(post, path = "/api/v2/dora/deployments", tag = "datadog",
    description = "List deployments: `from`/`to` on finished_at, `query`, `sort`, `limit` (read scope).",
    request_body = ListRequest,
    responses((status = 200, body = serde_json::Value, content_type = "application/vnd.api+json",
        description = "`{\"data\": [deployment, …]}`"), ApiErrors))]
async fn list_deployments(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(document): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let query = decode::list(&document, ListKind::Deployments)?;
    let found = state.store.list_deployments(&query).await?;
    let data: Vec<_> = found.iter().map(encode::deployment).collect();
    Ok(json_api(encode::Data { data }))
}

#[utoipa::path(post, path = "/api/v2/dora/failures", tag = "datadog",
    description = "List failures: `from`/`to` on started_at, `query`, `sort`, `limit` (read scope).",
    request_body = ListRequest,
    responses((status = 200, body = serde_json::Value, content_type = "application/vnd.api+json",
        description = "`{\"data\": [failure, …]}`"), ApiErrors))]
async fn list_failures(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(document): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let query = decode::list(&document, ListKind::Failures)?;
    let found = state.store.list_failures(&query).await?;
    let data: Vec<_> = found.iter().map(encode::failure).collect();
    Ok(json_api(encode::Data { data }))
}

fn not_found(kind: &str, id: &str) -> ApiError {
    ApiError::NotFound(format!("{kind} {id:?} not found"))
}

#[utoipa::path(get, path = "/api/v2/dora/deployments/{id}", tag = "datadog",
    description = "One deployment (read scope).", params(("id" = String, Path)),
    responses((status = 200, body = serde_json::Value, content_type = "application/vnd.api+json",
        description = "`{\"data\": deployment}`"), ApiErrors))]
async fn get_deployment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let found = state.store.get_deployment(&id).await?;
    let found = found.ok_or_else(|| not_found("Deployment", &id))?;
    Ok(json_api(encode::Data {
        data: encode::deployment(&found),
    }))
}

#[utoipa::path(get, path = "/api/v2/dora/failures/{id}", tag = "datadog",
    description = "One failure (read scope).", params(("id" = String, Path)),
    responses((status = 200, body = serde_json::Value, content_type = "application/vnd.api+json",
        description = "`{\"data\": failure}`"), ApiErrors))]
async fn get_failure(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let found = state.store.get_failure(&id).await?;
    let found = found.ok_or_else(|| not_found("Failure", &id))?;
    Ok(json_api(encode::Data {
        data: encode::failure(&found),
    }))
}

#[utoipa::path(patch, path = "/api/v2/dora/deployments/{id}", tag = "datadog",
    description = "Mark a deployment as a change failure, or name its remediation (write scope).",
    params(("id" = String, Path)), request_body = PatchRequest,
    responses((status = 202, description = "Patched"), ApiErrors))]
async fn patch_deployment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(document): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(Scope::Write)?;
    let (selector, patch) = decode::patch_by_id(&document, &id)?;
    if !state.store.patch_deployment(selector, patch).await? {
        return Err(not_found("Deployment", &id));
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

#[utoipa::path(patch, path = "/api/v2/dora/deployments", tag = "datadog",
    description = "The same, addressed by service, env and version: the latest match (write scope).",
    request_body = PatchRequest,
    responses((status = 202, description = "Patched"), ApiErrors))]
async fn patch_deployment_by_version(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(document): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(Scope::Write)?;
    let (selector, patch) = decode::patch_by_version(&document)?;
    let description = match &selector {
        DeploymentSelector::Version {
            service,
            env,
            version,
        } => {
            format!("No deployment of service {service:?} to env {env:?} with version {version:?}")
        }
        DeploymentSelector::Id(id) => format!("Deployment {id:?} not found"),
    };
    if !state.store.patch_deployment(selector, patch).await? {
        return Err(ApiError::NotFound(description));
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

#[utoipa::path(delete, path = "/api/v2/dora/deployment/{id}", tag = "datadog",
    description = "Delete a deployment (write scope).", params(("id" = String, Path)),
    responses((status = 202, description = "Deleted"), ApiErrors))]
async fn delete_deployment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Write)?;
    if !state.store.delete_deployment(&id).await? {
        return Err(not_found("Deployment", &id));
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

#[utoipa::path(delete, path = "/api/v2/dora/failure/{id}", tag = "datadog",
    description = "Delete a failure (write scope).", params(("id" = String, Path)),
    responses((status = 202, description = "Deleted"), ApiErrors))]
async fn delete_failure(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Write)?;
    if !state.store.delete_failure(&id).await? {
        return Err(not_found("Failure", &id));
    }
    Ok(StatusCode::ACCEPTED.into_response())
}
