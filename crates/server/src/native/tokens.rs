//! `/api/v1/admin/tokens`: listing, creating and revoking API tokens (admin scope), as
//! `dorametrics token` does on a database.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use dora_core::model::Scope;
use dora_store::Restriction;
use serde::Serialize;

use crate::auth::{self, Caller, TokenList, TokenView};
use crate::body::JsonBody;
use crate::datadog::fields::Object;
use crate::error::{ApiError, Problem};
use crate::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(one, revoke))
}

/// A token just created: what is listed of it, and the token itself, shown only this once.
#[derive(Serialize, utoipa::ToSchema)]
struct CreatedToken {
    token: String,
    #[serde(flatten)]
    view: TokenView,
}

#[utoipa::path(get, path = "/api/v1/admin/tokens", tag = "admin", operation_id = "list_tokens",
    description = "Every token, never a secret.",
    responses((status = 200, body = TokenList), crate::openapi::ApiErrors))]
async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<TokenList>, ApiError> {
    caller.require(Scope::Admin)?;
    let now = dora_core::time::now();
    let tokens = state.store.list_tokens().await?;
    Ok(Json(TokenList {
        tokens: tokens.iter().map(|t| TokenView::of(t, now)).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/admin/tokens/{id}", tag = "admin", operation_id = "get_token",
    params(("id" = String, Path)),
    responses((status = 200, body = TokenView), crate::openapi::ApiErrors))]
async fn one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TokenView>, ApiError> {
    caller.require(Scope::Admin)?;
    let token = state
        .store
        .find_token(&id)
        .await?
        .ok_or_else(|| no_such_token(&id))?;
    Ok(Json(TokenView::of(&token, dora_core::time::now())))
}

fn no_such_token(id: &str) -> ApiError {
    ApiError::NotFound(format!("No token has the id {id:?}"))
}

/// `{"name", "scopes": [...], "projects": [...], "groups": [...], "expires_in": "90d"}`.
#[utoipa::path(post, path = "/api/v1/admin/tokens", tag = "admin", operation_id = "create_token",
    description = "Create a token; the answer is the only place it is shown.",
    request_body = crate::openapi::TokenRequest,
    responses((status = 201, body = CreatedToken), crate::openapi::ApiErrors))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(document): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(Scope::Admin)?;
    let root = Object::root(&document)?;
    let name = root.required_text("name")?;
    root.required("scopes")?;
    let scopes = root
        .text_list("scopes")?
        .iter()
        .enumerate()
        .map(|(i, text)| {
            Scope::parse(text).ok_or_else(|| {
                Problem::at(
                    format!("/scopes/{i}"),
                    format!(
                        "scopes[{i}] is {text:?}; use dora_metrics_read, dora_metrics_write or admin"
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if scopes.is_empty() {
        return Err(Problem::at("/scopes", "scopes must name at least one scope").into());
    }
    let mut restrictions = restrictions_of(&root, "projects", "project")?;
    restrictions.extend(restrictions_of(&root, "groups", "group")?);
    let expires_at = match root.text("expires_in")? {
        None => None,
        Some(text) => Some(
            auth::expiry_after(dora_core::time::now(), &text)
                .map_err(|why| Problem::at("/expires_in", format!("expires_in {why}")))?,
        ),
    };
    let issued = auth::issue_token(name, scopes, restrictions, expires_at);
    state.store.create_token(issued.record.clone()).await?;
    tracing::info!(token = %issued.record.id, name = %issued.record.name, "token created");
    let created = CreatedToken {
        view: TokenView::of(&issued.record, dora_core::time::now()),
        token: issued.token,
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// `projects` or `groups`: paths such as `acme/shop`, without leading or trailing `/`.
fn restrictions_of(root: &Object<'_>, key: &str, kind: &str) -> Result<Vec<Restriction>, ApiError> {
    root.text_list(key)?
        .iter()
        .enumerate()
        .map(|(i, path)| {
            Restriction::parse(&format!("{kind}:{path}")).ok_or_else(|| {
                Problem::at(
                    format!("/{key}/{i}"),
                    format!("{key}[{i}] {path:?} is not a {kind} path like acme/shop"),
                )
                .into()
            })
        })
        .collect()
}

#[utoipa::path(delete, path = "/api/v1/admin/tokens/{id}", tag = "admin", operation_id = "revoke_token",
    description = "Revoke a token: every node refuses it at once.", params(("id" = String, Path)),
    responses((status = 204, description = "Revoked"), crate::openapi::ApiErrors))]
async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Admin)?;
    let now = dora_core::time::now();
    // Revoking a revoked token changes nothing and is no error.
    if state.store.revoke_token(&id, now).await? {
        tracing::info!(token = %id, "token revoked");
    } else if state.store.find_token(&id).await?.is_none() {
        return Err(no_such_token(&id));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
