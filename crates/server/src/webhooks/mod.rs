//! Webhooks in: `POST /api/v1/webhooks/<provider>`. A delivery is verified as its provider
//! signs it (against each hook of that provider: the one whose secret verifies owns it),
//! recognised when it is a replay (the provider's own delivery id), translated into events —
//! exactly those a client could have posted by hand — stored, and recorded with its outcome.
//! The hooks, aliases and the record are under `/api/v1/admin/webhooks`.

pub mod admin;
mod argocd;
mod cdevents;
mod github;
mod gitlab;
mod opsgenie;
mod pagerduty;
pub mod verify;

use std::collections::HashMap;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use dora_core::model::{
    clipped_text, normalise_commit_sha, Commit, Deployment, DeploymentPatch, DeploymentSelector,
    Failure, MergeRequest, Remediation, RemediationKind, RemediationTarget,
};
use dora_core::time::{self, Nanos};
use dora_core::webhook::{Delivery, Hook, Outcome, Provider};
use dora_store::StreamKey;
use serde::Serialize;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::datadog::fields::Object;
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
    /// A deployment that started when its `running` delivery said, if one came (GitLab's
    /// success carries only its own time).
    FinishedDeployment(Deployment),
    /// A deployment started running at `at`: its start, whether its success came before or
    /// comes after.
    Running {
        deployment_id: String,
        at: Nanos,
    },
    /// A failure as its provider's object stood at `as_of`: stored unless a later state was.
    Failure {
        failure: Failure,
        as_of: Nanos,
    },
    /// A deployment that rolled back the one before it in its stream (which it remediates).
    Rollback(Deployment),
    /// An incident seen open: a failure from then on (a resolution that came first stays).
    IncidentDetected(Failure),
    /// An incident resolved at `finished_at`: the stored failure resolves then (when none is
    /// stored yet, this one, started then too, until its detection comes).
    IncidentResolved(Failure),
    /// GitLab's numeric id of the project at this path.
    GitlabProject {
        gitlab_id: i64,
        path: String,
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
    let provider = admin::provider_in_path(&provider)?;
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
    let payload: Value = match serde_json::from_slice(&body) {
        Ok(payload) => payload,
        Err(e) => {
            let problem = Problem::body(format!("The delivery is not JSON: {e}"));
            return Err(unreadable(&state, provider, hook, event, received_at, problem).await);
        }
    };
    let event = match event.is_empty() {
        true => payload_event(provider, &payload),
        false => event,
    };
    let delivery_id = delivery_id(provider, &headers, &payload);
    if let Some(id) = &delivery_id {
        if state.store.delivery_seen(provider, id).await? {
            let why = "a delivery with this id was taken already".to_string();
            return Ok(answer(StatusCode::OK, "replayed", hook, why));
        }
    }
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
        Provider::Github => github::translate(&event, &payload, &cx),
        Provider::Gitlab => gitlab::translate(&event, &payload, &cx),
        Provider::Pagerduty => pagerduty::translate(&payload, &cx),
        Provider::Opsgenie => opsgenie::translate(&payload, &cx),
        Provider::Cdevents => cdevents::translate(&payload, &cx),
        Provider::Argocd => argocd::translate(&payload, &cx),
        // No hook of it can be made yet (`HookRequest::into_hook`).
        Provider::Incidentio => {
            return Err(ApiError::NotFound(format!(
                "{} deliveries are not read yet",
                provider.as_str()
            )))
        }
    };
    let translated = match translated {
        Ok(translated) => translated,
        Err(problem) => {
            return Err(unreadable(&state, provider, hook, event, received_at, problem).await)
        }
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

/// A verified delivery that is not what its provider sends (not JSON, a field missing or
/// malformed): kept as refused, with why, and answered 400 naming the field.
async fn unreadable(
    state: &AppState,
    provider: Provider,
    hook: &Hook,
    event: String,
    received_at: Nanos,
    problem: Problem,
) -> ApiError {
    let detail = match &problem.pointer {
        Some(pointer) => format!("{pointer}: {}", problem.detail),
        None => problem.detail.clone(),
    };
    let refused = Delivery {
        provider,
        delivery_id: None,
        hook: Some(hook.name.clone()),
        event,
        received_at,
        outcome: Outcome::Refused,
        detail,
    };
    match state.store.record_delivery(refused).await {
        Ok(_) => ApiError::BadRequest(problem),
        Err(error) => error.into(),
    }
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

/// The event type of a provider that says it in the payload, not a header.
fn payload_event(provider: Provider, payload: &Value) -> String {
    let pointer = match provider {
        Provider::Pagerduty => "/event/event_type",
        Provider::Incidentio => "/event_type",
        Provider::Opsgenie => "/action",
        Provider::Cdevents => return cdevents::event_type(payload),
        _ => return String::new(),
    };
    payload
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// The provider's own id of the delivery, what a replay carries again.
fn delivery_id(provider: Provider, headers: &HeaderMap, payload: &Value) -> Option<String> {
    let text = |pointer: &str| {
        payload
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    match provider {
        Provider::Github => {
            let delivery = header(headers, "x-github-delivery")?;
            let hook = header(headers, "x-github-hook-id").unwrap_or("");
            Some(format!("{hook}:{delivery}"))
        }
        Provider::Gitlab => header(headers, "idempotency-key")
            .or_else(|| header(headers, "x-gitlab-event-uuid"))
            .map(str::to_string),
        Provider::Pagerduty => header(headers, "x-webhook-id")
            .map(str::to_string)
            .or_else(|| text("/event/id")),
        Provider::Incidentio => header(headers, "webhook-id").map(str::to_string),
        Provider::Cdevents => cdevents::delivery_id(headers, payload),
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

/// The sha GitHub and GitLab send for "no commit" (a branch created or deleted).
const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

/// A commit sha in `object`'s `key`, normalised.
fn sha_at(object: &Object<'_>, key: &str) -> Result<String, Problem> {
    normalise_commit_sha(&object.required_text(key)?)
        .map_err(|e| Problem::at(object.pointer_of(key), format!("{key} {e}")))
}

/// The commits a push lists (GitHub's and GitLab's shape: `id`, a time, `message`, `author`
/// with `name` and `email`), oldest first and without parents: the first's parent is taken to
/// be `before` (none when the branch was created), each next one's the one listed before it.
fn pushed_commits(
    root: &Object<'_>,
    repository_id: &str,
    time: impl Fn(&Object<'_>, &str) -> Result<Nanos, Problem>,
) -> Result<Vec<Commit>, Problem> {
    let before = root.text("before")?.filter(|sha| sha != ZERO_SHA);
    let mut parent = match before {
        Some(_) => Some(sha_at(root, "before")?),
        None => None,
    };
    let mut commits = Vec::new();
    for c in root.objects("commits")? {
        let sha = sha_at(&c, "id")?;
        let at = time(&c, "timestamp")?;
        let message = c.get("message").and_then(Value::as_str).unwrap_or("");
        let author = match c.object("author")? {
            Some(a) => match (a.text("name")?, a.text("email")?) {
                (Some(name), Some(email)) => clipped_text(&format!("{name} <{email}>")),
                (name, email) => name.or(email).and_then(|t| clipped_text(&t)),
            },
            None => None,
        };
        commits.push(Commit {
            repository_id: repository_id.to_string(),
            sha: sha.clone(),
            parents: parent.into_iter().collect(),
            authored_at: at,
            committed_at: at,
            author,
            subject: clipped_text(message.lines().next().unwrap_or("")),
            merge_request: None,
        });
        parent = Some(sha);
    }
    Ok(commits)
}

/// Where the time a deployment started running is kept.
fn running_key(deployment_id: &str) -> String {
    format!("{deployment_id}:running")
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
            Change::FinishedDeployment(mut d) => {
                let key = running_key(&d.id);
                if let Some(started) = store.object_as_of(provider, &key).await? {
                    d.started_at = started.min(d.finished_at);
                }
                stored.push(format!("deployment {}", d.id));
                store.put_deployment(d).await?;
            }
            Change::Running { deployment_id, at } => {
                store
                    .advance_object(provider, &running_key(&deployment_id), at)
                    .await?;
                // Its success came first: it started when this says.
                match store.get_deployment(&deployment_id).await? {
                    Some(found) if found.deployment.started_at != at => {
                        let mut d = found.deployment;
                        d.started_at = at.min(d.finished_at);
                        stored.push(format!("deployment {} started", d.id));
                        store.put_deployment(d).await?;
                    }
                    _ => stored.push(format!("the start of deployment {deployment_id}")),
                }
            }
            Change::GitlabProject { gitlab_id, path } => {
                store.put_gitlab_project(gitlab_id, &path).await?;
            }
            Change::Rollback(d) => {
                stored.push(format!("deployment {} (a rollback)", d.id));
                let (id, finished) = (d.id.clone(), d.finished_at);
                let stream = StreamKey {
                    service: d.service.clone(),
                    env: d.env.clone(),
                };
                store.put_deployment(d).await?;
                let replaced = store
                    .stream_deployments(&stream)
                    .await?
                    .into_iter()
                    .filter(|s| s.deployment.id != id && s.deployment.finished_at <= finished)
                    .max_by_key(|s| s.deployment.finished_at);
                if let Some(replaced) = replaced {
                    let patch = DeploymentPatch {
                        change_failure: None,
                        remediation: Some(Remediation {
                            kind: RemediationKind::Rollback,
                            target: RemediationTarget::Id(id),
                        }),
                    };
                    let selector = DeploymentSelector::Id(replaced.deployment.id.clone());
                    store.patch_deployment(selector, patch).await?;
                    stored.push(format!("remediates {}", replaced.deployment.id));
                }
            }
            Change::IncidentDetected(mut failure) => {
                // Its resolution came first: it stays resolved.
                if let Some(known) = store.get_failure(&failure.id).await? {
                    failure.finished_at = known
                        .finished_at
                        .filter(|finished| *finished >= failure.started_at);
                }
                stored.push(format!("failure {}", failure.id));
                store.put_failure(failure).await?;
            }
            Change::IncidentResolved(mut failure) => {
                if let Some(known) = store.get_failure(&failure.id).await? {
                    let resolved = failure.finished_at.map(|at| at.max(known.started_at));
                    failure = Failure {
                        finished_at: resolved,
                        ..known
                    };
                }
                stored.push(format!("failure {} resolved", failure.id));
                store.put_failure(failure).await?;
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
