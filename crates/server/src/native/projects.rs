//! `GET /api/v1/projects` and `GET /api/v1/groups`: what the deployments define, with the
//! numeric ids the GitLab-compatible API and the metrics `project`/`group` parameters accept.

use axum::extract::State;
use axum::response::Response;
use dora_core::model::Scope;
use dora_core::project::numeric_id;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::{json_api, ApiError};
use crate::report::catalog::Catalog;
use crate::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(projects))
        .routes(routes!(groups))
}

#[utoipa::path(get, path = "/api/v1/projects", tag = "native",
    description = "Every project the deployments define (read scope): `{\"projects\": [...]}`.",
    responses((status = 200, body = serde_json::Value, content_type = "application/vnd.api+json"), crate::openapi::ApiErrors))]
async fn projects(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let catalog = Catalog::load(state.store.as_ref()).await?;
    let projects: Vec<Value> = catalog
        .projects
        .iter()
        .map(|p| {
            let group_ids: Vec<i64> = p
                .group_paths
                .iter()
                .map(|g| numeric_id("group", g))
                .collect();
            json!({
                "id": p.id,
                "path": p.path,
                "name": p.name,
                "group_ids": group_ids,
                "group_paths": p.group_paths,
                "repository_ids": p.repository_ids,
                "services": p.services,
            })
        })
        .collect();
    Ok(json_api(json!({ "projects": projects })))
}

#[utoipa::path(get, path = "/api/v1/groups", tag = "native",
    description = "Every group (read scope): `{\"groups\": [...]}`.",
    responses((status = 200, body = serde_json::Value, content_type = "application/vnd.api+json"), crate::openapi::ApiErrors))]
async fn groups(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let catalog = Catalog::load(state.store.as_ref()).await?;
    let groups: Vec<Value> = catalog
        .groups
        .iter()
        .map(|g| {
            json!({
                "id": g.id,
                "path": g.path,
                "name": g.name,
                "parent_id": g.parent_path.as_deref().map(|p| numeric_id("group", p)),
                "parent_path": g.parent_path,
            })
        })
        .collect();
    Ok(json_api(json!({ "groups": groups })))
}
