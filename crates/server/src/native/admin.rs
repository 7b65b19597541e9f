//! Admin settings: env → tier overrides for envs whose names the tier guess gets wrong.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dora_core::model::Scope;
use dora_core::tier::Tier;
use serde_json::{json, Map, Value};

use crate::auth::Caller;
use crate::body::JsonBody;
use crate::error::{json_api, ApiError, Problem};
use crate::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(one, set, remove))
}

#[utoipa::path(get, path = "/api/v1/admin/env-tiers", tag = "admin", operation_id = "list_env_tiers",
    description = "Every env whose tier an admin set: `{\"env_tiers\": {env: tier}}`.",
    responses((status = 200, body = serde_json::Value, content_type = "application/vnd.api+json"), crate::openapi::ApiErrors))]
async fn list(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Scope::Admin)?;
    let tiers: Map<String, Value> = state
        .store
        .env_tiers()
        .await?
        .into_iter()
        .map(|(env, tier)| (env, Value::from(tier.as_str())))
        .collect();
    Ok(json_api(json!({ "env_tiers": tiers })))
}

#[utoipa::path(get, path = "/api/v1/admin/env-tiers/{env}", tag = "admin", operation_id = "get_env_tier",
    params(("env" = String, Path)),
    responses((status = 200, body = serde_json::Value, content_type = "application/vnd.api+json"), crate::openapi::ApiErrors))]
async fn one(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Admin)?;
    let tiers = state.store.env_tiers().await?;
    let (env, tier) = tiers
        .into_iter()
        .find(|(name, _)| *name == env)
        .ok_or_else(|| ApiError::NotFound(format!("No tier is set for env {env:?}")))?;
    Ok(json_api(json!({ "env": env, "tier": tier.as_str() })))
}

#[utoipa::path(put, path = "/api/v1/admin/env-tiers/{env}", tag = "admin", operation_id = "set_env_tier",
    description = "Set the tier of an env, for all history.",
    params(("env" = String, Path)), request_body = crate::openapi::EnvTierRequest,
    responses((status = 200, body = serde_json::Value, content_type = "application/vnd.api+json"), crate::openapi::ApiErrors))]
async fn set(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
    JsonBody(document): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(Scope::Admin)?;
    let tier = document
        .get("tier")
        .and_then(Value::as_str)
        .and_then(Tier::parse)
        .ok_or_else(|| {
            Problem::at(
                "/tier",
                "tier is required and must be production, staging, testing, development or other",
            )
        })?;
    state.store.set_env_tier(&env, Some(tier)).await?;
    Ok(json_api(json!({ "env": env, "tier": tier.as_str() })))
}

#[utoipa::path(delete, path = "/api/v1/admin/env-tiers/{env}", tag = "admin", operation_id = "remove_env_tier",
    params(("env" = String, Path)),
    responses((status = 204, description = "Removed: the tier is guessed from the name again"), crate::openapi::ApiErrors))]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Admin)?;
    if !state.store.set_env_tier(&env, None).await? {
        return Err(ApiError::NotFound(format!(
            "No tier is set for env {env:?}"
        )));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
