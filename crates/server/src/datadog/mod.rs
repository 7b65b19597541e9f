//! The Datadog-compatible DORA API (`/api/v2/dora/*`): what the official Datadog clients and
//! `datadog-ci` speak.

pub(crate) mod decode;
mod encode;
/// Shared with the native API, whose intake reports problems the same way.
pub(crate) mod fields;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use dora_core::model::{DeploymentSelector, Scope};
use serde_json::json;

use crate::auth::Caller;
use crate::body::JsonBody;
use crate::error::{json_api, ApiError};
use crate::AppState;
use decode::ListKind;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v2/dora/deployment", post(create_deployment))
        .route("/api/v2/dora/deployment/{id}", delete(delete_deployment))
        .route("/api/v2/dora/failure", post(create_failure))
        .route("/api/v2/dora/incident", post(create_failure))
        .route("/api/v2/dora/failure/{id}", delete(delete_failure))
        .route(
            "/api/v2/dora/deployments",
            post(list_deployments).patch(patch_deployment_by_version),
        )
        .route(
            "/api/v2/dora/deployments/{id}",
            get(get_deployment).patch(patch_deployment),
        )
        .route("/api/v2/dora/failures", post(list_failures))
        .route("/api/v2/dora/failures/{id}", get(get_failure))
}

fn accepted(kind: &str, id: &str) -> Response {
    let mut response = json_api(json!({ "data": { "id": id, "type": kind } }));
    *response.status_mut() = StatusCode::ACCEPTED;
    response
}

pub(crate) fn new_deployment_id() -> String {
    hex::encode(rand::random::<[u8; 8]>())
}

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
