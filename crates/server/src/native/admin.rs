//! Admin settings: env → tier overrides for envs whose names the tier guess gets wrong.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use dora_core::model::Scope;
use dora_core::tier::Tier;
use serde_json::{json, Map, Value};

use crate::auth::Caller;
use crate::body::JsonBody;
use crate::error::{json_api, ApiError, Problem};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/env-tiers", get(list))
        .route(
            "/api/v1/admin/env-tiers/{env}",
            get(one).put(set).delete(remove),
        )
}

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
