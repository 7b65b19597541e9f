//! Webhooks in: `POST /api/v1/webhooks/<provider>`. A delivery is verified as its provider
//! signs it (against each hook of that provider: the one whose secret verifies owns it),
//! recognised when it is a replay (the provider's own delivery id), translated into events —
//! exactly those a client could have posted by hand — stored, and recorded with its outcome.
//! The hooks, aliases and the record are under `/api/v1/admin/webhooks`.

pub mod admin;
mod github;
pub mod verify;

use std::collections::HashMap;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use dora_core::model::{Commit, Deployment, Failure, MergeRequest};
use dora_core::time::{self, Nanos};
use dora_core::webhook::{Delivery, Hook, Outcome, Provider};
use serde::Serialize;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{json_api, ApiError, Problem};
use crate::ratelimit::Peer;
use crate::AppState;
use verify::Unverified;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(receive))
        .merge(admin::routes())
}

/// What a delivery asks of the store: the events a client could have posted by hand.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Deployment(Deployment),
    /// A failure as its provider's object stood at `as_of`: stored unless a later state was.
    Failure {
        failure: Failure,
        as_of: Nanos,
    },
    /// The object stopped being a failure at `as_of` (an incident label removed).
    DeleteFailure {
        id: String,
        as_of: Nanos,
    },
    /// Commits a push listed, oldest first, their parents implied by that order.
    PushedCommits(Vec<Commit>),
    MergeRequest {
        repository_id: String,
        sha: String,
        merge_request: MergeRequest,
    },
}

/// What a verified delivery comes to.
#[derive(Debug, Clone, PartialEq)]
pub enum Translated {
    Changes(Vec<Change>),
    /// Nothing in it counts; why.
    Ignored(String),
}

/// What a translation may look at besides the payload.
pub struct Context<'a> {
    pub hook: &'a Hook,
    /// The provider's names that stand for a dorametrics service.
    aliases: HashMap<String, String>,
}

impl Context<'_> {
    /// The service a provider's name stands for, when an admin said.
    pub fn alias(&self, name: &str) -> Option<&str> {
        self.aliases.get(name).map(String::as_str)
    }
}

/// The answer to a delivery.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryAnswer {
    /// `stored`, `ignored` or `replayed` (a delivery with its id was taken already).
    pub outcome: String,
    pub hook: String,
    /// What was stored (event ids), or why nothing was.
    pub detail: String,
}

/// The most a delivery may carry (GitHub caps its payloads at 25 MB; a push lists at most
/// 2,048 commits).
const MAX_DELIVERY_BYTES: usize = 8 * 1024 * 1024;

#[utoipa::path(post, path = "/api/v1/webhooks/{provider}", tag = "webhooks", operation_id = "receive_webhook",
    description = "A provider's delivery, verified as the provider signs it against the secrets of its hooks (no dorametrics token). A replay (the provider's own delivery id again) answers 200 and changes nothing; an event dorametrics does not use answers 202.",
    params(("provider" = String, Path, description = "github, gitlab, pagerduty, opsgenie, incidentio, cdevents or argocd")),
    responses((status = 200, body = DeliveryAnswer), (status = 202, body = DeliveryAnswer), crate::openapi::ApiErrors))]
async fn receive(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    peer: Option<Extension<Peer>>,
    request: Request,
) -> Result<Response, ApiError> {
    let headers = request.headers().clone();
    let provider = Provider::parse(&provider).ok_or_else(|| {
        ApiError::NotFound(format!(
            "No webhook provider {provider:?}; the providers are {}",
            Provider::names()
        ))
    })?;
    let body = crate::body::read_limited(request, MAX_DELIVERY_BYTES).await?;
    let received_at = time::now();
    let event = event_name(provider, &headers);
    let hooks = state.store.hooks(Some(provider)).await?;
    if hooks.is_empty() {
        return Err(ApiError::NotFound(format!(
            "No {provider} hook is set up; make one with `dorametrics webhook create --provider {provider} --name NAME`",
            provider = provider.as_str()
        )));
    }
    let Some(hook) = verified_hook(provider, &hooks, &headers, &body, received_at) else {
        let why = refusal(provider, &hooks, &headers, &body, received_at);
        if let Some(Extension(Peer(address))) = peer {
            state
                .limiters
                .failed_auth(address)
                .map_err(ApiError::RateLimited)?;
        }
        let refused = Delivery {
            provider,
            delivery_id: None,
            hook: None,
            event,
            received_at,
            outcome: Outcome::Refused,
            detail: why.to_string(),
        };
        state.store.record_delivery(refused).await?;
        tracing::warn!(provider = provider.as_str(), %why, "webhook delivery refused");
        return Err(ApiError::WebhookRefused(why.to_string()));
    };
    let delivery_id = delivery_id(provider, &headers);
    if let Some(id) = &delivery_id {
        if state.store.delivery_seen(provider, id).await? {
            return Ok(answer(
                StatusCode::OK,
                "replayed",
                hook,
                "a delivery with this id was taken already".into(),
            ));
        }
    }
    let payload: Value = serde_json::from_slice(&body)
        .map_err(|e| Problem::body(format!("The delivery is not JSON: {e}")))?;
    let aliases = state
        .store
        .aliases()
        .await?
        .into_iter()
        .filter(|a| a.provider == provider)
        .map(|a| (a.name, a.service))
        .collect();
    let cx = Context { hook, aliases };
    let translated = match provider {
        Provider::Github => github::translate(&event, &payload, &cx)?,
        other => Translated::Ignored(format!("{} deliveries are not read yet", other.as_str())),
    };
    let (status, outcome, detail) = match translated {
        Translated::Ignored(why) => (StatusCode::ACCEPTED, Outcome::Ignored, why),
        Translated::Changes(changes) => {
            let stored = apply(&state, provider, changes).await?;
            (StatusCode::OK, Outcome::Stored, stored)
        }
    };
    let kept = Delivery {
        provider,
        delivery_id,
        hook: Some(hook.name.clone()),
        event: event.clone(),
        received_at,
        outcome,
        detail: detail.clone(),
    };
    // A replay that raced this one was kept first: it changed nothing that this did not.
    state.store.record_delivery(kept).await?;
    tracing::info!(provider = provider.as_str(), hook = %hook.name, %event, outcome = outcome.as_str(), %detail, "webhook delivery");
    Ok(answer(status, outcome.as_str(), hook, detail))
}

fn answer(status: StatusCode, outcome: &str, hook: &Hook, detail: String) -> Response {
    let body = DeliveryAnswer {
        outcome: outcome.to_string(),
        hook: hook.name.clone(),
        detail,
    };
    (status, json_api(body)).into_response()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The event type the delivery says it is, where the provider says it in a header.
fn event_name(provider: Provider, headers: &HeaderMap) -> String {
    let name = match provider {
        Provider::Github => header(headers, "x-github-event"),
        Provider::Gitlab => header(headers, "x-gitlab-event"),
        Provider::Cdevents => header(headers, "ce-type"),
        _ => None,
    };
    name.unwrap_or("").to_string()
}

/// The provider's own id of the delivery, what a replay carries again.
fn delivery_id(provider: Provider, headers: &HeaderMap) -> Option<String> {
    match provider {
        Provider::Github => {
            let delivery = header(headers, "x-github-delivery")?;
            let hook = header(headers, "x-github-hook-id").unwrap_or("");
            Some(format!("{hook}:{delivery}"))
        }
        Provider::Gitlab => header(headers, "idempotency-key")
            .or_else(|| header(headers, "x-gitlab-event-uuid"))
            .map(str::to_string),
        Provider::Pagerduty => header(headers, "x-webhook-id").map(str::to_string),
        Provider::Incidentio => header(headers, "webhook-id").map(str::to_string),
        _ => None,
    }
}

/// Whether a delivery verifies with one hook's secret.
fn verify(
    provider: Provider,
    hook: &Hook,
    headers: &HeaderMap,
    body: &[u8],
    now: Nanos,
) -> Result<(), Unverified> {
    let secret = hook.secret.as_str();
    match provider {
        Provider::Github => verify::github(headers, body, secret),
        Provider::Gitlab => match headers.contains_key("webhook-signature") {
            true => verify::standard(headers, body, secret, now / 1_000_000_000),
            false => verify::gitlab_token(headers, secret),
        },
        Provider::Pagerduty => verify::pagerduty(headers, body, secret),
        Provider::Incidentio => verify::standard(headers, body, secret, now / 1_000_000_000),
        Provider::Opsgenie | Provider::Cdevents | Provider::Argocd => {
            verify::bearer(headers, secret)
        }
    }
}

/// The hook whose secret the delivery verifies with. Every hook is tried, so that how long
/// this takes says nothing of which one matched.
fn verified_hook<'a>(
    provider: Provider,
    hooks: &'a [Hook],
    headers: &HeaderMap,
    body: &[u8],
    now: Nanos,
) -> Option<&'a Hook> {
    let mut found = None;
    for hook in hooks {
        if verify(provider, hook, headers, body, now).is_ok() && found.is_none() {
            found = Some(hook);
        }
    }
    found
}

/// Why no hook verified the delivery: what the first hook said (a missing or malformed header
/// is the same for every hook; a mismatch is).
fn refusal(
    provider: Provider,
    hooks: &[Hook],
    headers: &HeaderMap,
    body: &[u8],
    now: Nanos,
) -> Unverified {
    hooks
        .first()
        .and_then(|hook| verify(provider, hook, headers, body, now).err())
        .unwrap_or(Unverified::Missing("signature"))
}

/// Stores what a delivery brought; says what was stored.
async fn apply(
    state: &AppState,
    provider: Provider,
    changes: Vec<Change>,
) -> Result<String, ApiError> {
    let store = &state.store;
    let mut stored = Vec::new();
    for change in changes {
        match change {
            Change::Deployment(d) => {
                stored.push(format!("deployment {}", d.id));
                store.put_deployment(d).await?;
            }
            Change::Failure { failure, as_of } => {
                if !store.advance_object(provider, &failure.id, as_of).await? {
                    stored.push(format!("nothing: failure {} has a newer state", failure.id));
                    continue;
                }
                stored.push(format!("failure {}", failure.id));
                store.put_failure(failure).await?;
            }
            Change::DeleteFailure { id, as_of } => {
                if !store.advance_object(provider, &id, as_of).await? {
                    stored.push(format!("nothing: failure {id} has a newer state"));
                    continue;
                }
                let removed = store.delete_failure(&id).await?;
                stored.push(match removed {
                    true => format!("failure {id} removed"),
                    false => format!("nothing: failure {id} was not stored"),
                });
            }
            Change::PushedCommits(commits) => {
                let count = commits.len();
                let new = store.put_pushed_commits(commits).await?;
                stored.push(format!("{count} commits ({new} new)"));
            }
            Change::MergeRequest {
                repository_id,
                sha,
                merge_request,
            } => {
                stored.push(format!("merge request !{} of {sha}", merge_request.number));
                store
                    .put_merge_request(&repository_id, &sha, merge_request)
                    .await?;
            }
        }
    }
    Ok(stored.join("; "))
}
