//! `/api/v1/admin/webhooks` (hooks), `/api/v1/admin/webhook-aliases` (names → services) and
//! `/api/v1/webhooks/deliveries` (the record), admin scope; `dorametrics webhook` does the same
//! on a database or through a server.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use dora_core::model::Scope;
use dora_core::time::{now, to_rfc3339};
use dora_core::webhook::{Alias, Hook, Provider};
use dora_store::KeptDelivery;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{form_pairs, Caller};
use crate::body::JsonBody;
use crate::datadog::fields::Object;
use crate::error::{ApiError, Problem};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(remove))
        .routes(routes!(deliveries))
        .routes(routes!(aliases))
        .routes(routes!(set_alias, remove_alias))
}

/// What is shown of a hook (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HookView {
    pub name: String,
    pub provider: String,
    /// Where its provider delivers: `/api/v1/webhooks/<provider>` on this server.
    pub path: String,
    pub deploy_workflow: Option<String>,
    pub deploy_env: Option<String>,
    pub incident_label: Option<String>,
    pub created_at: String,
}

impl HookView {
    pub fn of(hook: &Hook) -> Self {
        Self {
            name: hook.name.clone(),
            provider: hook.provider.as_str().to_string(),
            path: format!("/api/v1/webhooks/{}", hook.provider.as_str()),
            deploy_workflow: hook.deploy_workflow.clone(),
            deploy_env: hook.deploy_env.clone(),
            incident_label: hook.incident_label.clone(),
            created_at: to_rfc3339(hook.created_at),
        }
    }
}

/// `GET /api/v1/admin/webhooks` and `webhook list --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HookList {
    pub webhooks: Vec<HookView>,
}

/// A hook just made, with its secret (shown only in this answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedHook {
    pub secret: String,
    #[serde(flatten)]
    pub view: HookView,
}

/// What a new hook is made of, from the API or the CLI.
#[derive(Debug, Clone, Default)]
pub struct HookRequest {
    pub name: String,
    pub provider: String,
    pub secret: Option<String>,
    pub deploy_workflow: Option<String>,
    pub deploy_env: Option<String>,
    pub incident_label: Option<String>,
}

/// Why a hook cannot be made: the field (a JSON pointer / CLI flag) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {why}")]
pub struct BadHook {
    pub field: &'static str,
    pub why: String,
}

/// A secret generated when none is given: 32 random bytes, hex.
fn generated_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

impl HookRequest {
    /// The hook, checked: a name of letters, digits, `-`, `_`, `.` (at most 64), a known
    /// provider, a secret of at least 16 characters; options only where they mean something.
    pub fn into_hook(self) -> Result<Hook, BadHook> {
        let bad = |field, why: &str| BadHook {
            field,
            why: why.to_string(),
        };
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            return Err(bad(
                "name",
                "must be 1 to 64 letters, digits, '-', '_' or '.'",
            ));
        }
        let provider = Provider::parse(&self.provider).ok_or_else(|| BadHook {
            field: "provider",
            why: format!(
                "{:?} is not a provider; use one of {}",
                self.provider,
                Provider::names()
            ),
        })?;
        if provider == Provider::Incidentio {
            return Err(BadHook {
                field: "provider",
                why: format!("{} deliveries are not read yet", provider.as_str()),
            });
        }
        let secret = self.secret.unwrap_or_else(generated_secret);
        if secret.chars().count() < 16 || secret.trim() != secret {
            return Err(bad(
                "secret",
                "must be at least 16 characters, without surrounding spaces",
            ));
        }
        let github_only = [
            ("deploy_workflow", &self.deploy_workflow),
            ("deploy_env", &self.deploy_env),
            ("incident_label", &self.incident_label),
        ];
        for (field, value) in github_only {
            if value.is_some() && provider != Provider::Github {
                return Err(bad(field, "applies only to a github hook"));
            }
        }
        if self.deploy_env.is_some() && self.deploy_workflow.is_none() {
            return Err(bad("deploy_env", "applies only with deploy_workflow"));
        }
        Ok(Hook {
            name: self.name,
            provider,
            secret,
            deploy_workflow: self.deploy_workflow,
            deploy_env: self.deploy_env,
            incident_label: self.incident_label,
            created_at: now(),
        })
    }
}

#[utoipa::path(get, path = "/api/v1/admin/webhooks", tag = "admin", operation_id = "list_webhooks",
    description = "Every hook, never a secret.",
    responses((status = 200, body = HookList), crate::openapi::ApiErrors))]
async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<HookList>, ApiError> {
    caller.require(Scope::Admin)?;
    let hooks = state.store.hooks(None).await?;
    Ok(Json(HookList {
        webhooks: hooks.iter().map(HookView::of).collect(),
    }))
}

/// `{"name", "provider", "secret"?, "deploy_workflow"?, "deploy_env"?, "incident_label"?}`.
#[utoipa::path(post, path = "/api/v1/admin/webhooks", tag = "admin", operation_id = "create_webhook",
    description = "Make a hook; its secret (generated when none is given) is shown only in this answer.",
    request_body = serde_json::Value,
    responses((status = 201, body = CreatedHook), crate::openapi::ApiErrors))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(document): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(Scope::Admin)?;
    let root = Object::root(&document)?;
    let request = HookRequest {
        name: root.required_text("name")?,
        provider: root.required_text("provider")?,
        secret: root.text("secret")?,
        deploy_workflow: root.text("deploy_workflow")?,
        deploy_env: root.text("deploy_env")?,
        incident_label: root.text("incident_label")?,
    };
    let hook = request
        .into_hook()
        .map_err(|bad| Problem::at(format!("/{}", bad.field), bad.to_string()))?;
    if !state.store.create_hook(hook.clone()).await? {
        return Err(Problem::at(
            "/name",
            format!("name: a hook named {:?} exists already", hook.name),
        )
        .into());
    }
    tracing::info!(hook = %hook.name, provider = hook.provider.as_str(), "webhook created");
    let created = CreatedHook {
        view: HookView::of(&hook),
        secret: hook.secret,
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[utoipa::path(delete, path = "/api/v1/admin/webhooks/{name}", tag = "admin", operation_id = "delete_webhook",
    description = "Remove a hook: its deliveries are refused from then on.", params(("name" = String, Path)),
    responses((status = 204, description = "Removed"), crate::openapi::ApiErrors))]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Admin)?;
    if !state.store.delete_hook(&name).await? {
        return Err(ApiError::NotFound(format!("No hook is named {name:?}")));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// One kept delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryView {
    /// Its place in the record: `before` pages by it.
    pub seq: i64,
    pub provider: String,
    pub delivery_id: Option<String>,
    pub hook: Option<String>,
    pub event: String,
    pub received_at: String,
    /// `stored`, `ignored` or `refused`.
    pub outcome: String,
    pub detail: String,
}

impl DeliveryView {
    pub fn of(kept: &KeptDelivery) -> Self {
        let d = &kept.delivery;
        Self {
            seq: kept.seq,
            provider: d.provider.as_str().to_string(),
            delivery_id: d.delivery_id.clone(),
            hook: d.hook.clone(),
            event: d.event.clone(),
            received_at: to_rfc3339(d.received_at),
            outcome: d.outcome.as_str().to_string(),
            detail: d.detail.clone(),
        }
    }
}

/// `GET /api/v1/webhooks/deliveries` and `webhook deliveries --json`, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryView>,
}

fn bad_parameter(parameter: &str, detail: String) -> ApiError {
    ApiError::BadParameter {
        parameter: parameter.into(),
        detail,
    }
}

#[utoipa::path(get, path = "/api/v1/webhooks/deliveries", tag = "admin", operation_id = "list_webhook_deliveries",
    description = "The deliveries kept, newest first: provider, event, when, and what became of each.",
    params(
        ("limit" = Option<u32>, Query, description = "At most this many (1 to 1000, default 100)"),
        ("before" = Option<i64>, Query, description = "Only those kept before this `seq` (the next page after the last one shown)")),
    responses((status = 200, body = DeliveryList), crate::openapi::ApiErrors))]
async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<DeliveryList>, ApiError> {
    caller.require(Scope::Admin)?;
    let (mut limit, mut before) = (100_u32, None);
    for (key, value) in form_pairs(query.as_deref().unwrap_or("")) {
        match key.as_str() {
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| {
                        bad_parameter("limit", format!("limit must be 1 to 1000, got {value:?}"))
                    })?
            }
            "before" => {
                before = Some(value.parse().map_err(|_| {
                    bad_parameter("before", format!("before must be a seq, got {value:?}"))
                })?)
            }
            _ => {}
        }
    }
    let kept = state.store.deliveries(before, limit).await?;
    Ok(Json(DeliveryList {
        deliveries: kept.iter().map(DeliveryView::of).collect(),
    }))
}

/// A provider's name and the service it stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AliasView {
    pub provider: String,
    pub name: String,
    pub service: String,
}

/// `GET /api/v1/admin/webhook-aliases`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AliasList {
    pub aliases: Vec<AliasView>,
}

#[utoipa::path(get, path = "/api/v1/admin/webhook-aliases", tag = "admin", operation_id = "list_webhook_aliases",
    description = "The names providers use (repositories, PagerDuty services, …) that stand for another dorametrics service.",
    responses((status = 200, body = AliasList), crate::openapi::ApiErrors))]
async fn aliases(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<AliasList>, ApiError> {
    caller.require(Scope::Admin)?;
    let aliases = state.store.aliases().await?;
    let aliases = aliases
        .into_iter()
        .map(|a| AliasView {
            provider: a.provider.as_str().to_string(),
            name: a.name,
            service: a.service,
        })
        .collect();
    Ok(Json(AliasList { aliases }))
}

/// The provider a path names; 404 listing the providers when none.
pub(super) fn provider_in_path(text: &str) -> Result<Provider, ApiError> {
    Provider::parse(text).ok_or_else(|| {
        ApiError::NotFound(format!(
            "No webhook provider {text:?}; the providers are {}",
            Provider::names()
        ))
    })
}

/// `{"service": "…"}`.
#[utoipa::path(put, path = "/api/v1/admin/webhook-aliases/{provider}/{name}", tag = "admin", operation_id = "set_webhook_alias",
    description = "Deliveries of this provider naming `name` are of `service` (from the next delivery on).",
    params(("provider" = String, Path), ("name" = String, Path)), request_body = serde_json::Value,
    responses((status = 200, body = AliasView), crate::openapi::ApiErrors))]
async fn set_alias(
    State(state): State<AppState>,
    caller: Caller,
    Path((provider, name)): Path<(String, String)>,
    JsonBody(document): JsonBody,
) -> Result<Json<AliasView>, ApiError> {
    caller.require(Scope::Admin)?;
    let provider = provider_in_path(&provider)?;
    let service = Object::root(&document)?.required_text("service")?;
    let alias = Alias {
        provider,
        name: name.clone(),
        service: service.clone(),
    };
    state.store.put_alias(alias).await?;
    Ok(Json(AliasView {
        provider: provider.as_str().to_string(),
        name,
        service,
    }))
}

#[utoipa::path(delete, path = "/api/v1/admin/webhook-aliases/{provider}/{name}", tag = "admin", operation_id = "delete_webhook_alias",
    params(("provider" = String, Path), ("name" = String, Path)),
    responses((status = 204, description = "Removed"), crate::openapi::ApiErrors))]
async fn remove_alias(
    State(state): State<AppState>,
    caller: Caller,
    Path((provider, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Admin)?;
    let provider = provider_in_path(&provider)?;
    if !state.store.delete_alias(provider, &name).await? {
        return Err(ApiError::NotFound(format!(
            "No {} alias is named {name:?}",
            provider.as_str()
        )));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
