//! Why the numbers are what they are: the change set of a deployment with its lead times, and
//! whether (and by which rule) it counts as a change failure.

use axum::extract::{Path, State};
use axum::response::Response;
use dora_core::model::{Scope, StoredDeployment};
use dora_core::time::{to_rfc3339, Nanos};
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::derivation;
use crate::error::{json_api, ApiError};
use crate::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(changes))
        .routes(routes!(failure))
}

/// Durations are reported in seconds (fractional when needed).
fn seconds(nanos: Nanos) -> Value {
    json!(nanos as f64 / 1e9)
}

async fn deployment(state: &AppState, id: &str) -> Result<StoredDeployment, ApiError> {
    state
        .store
        .get_deployment(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("Deployment {id:?} not found")))
}

#[utoipa::path(get, path = "/api/v1/deployments/{id}/changes", tag = "native",
    description = "The commits a deployment ships, with their lead times, and its baseline (read scope).",
    params(("id" = String, Path)),
    responses((status = 200, body = serde_json::Value, content_type = "application/vnd.api+json"), crate::openapi::ApiErrors))]
async fn changes(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let d = deployment(&state, &id).await?;
    let set = derivation::change_set(state.store.as_ref(), &d).await?;
    let baseline = match &set.baseline_id {
        Some(baseline_id) => state.store.get_deployment(baseline_id).await?.map(|b| {
            json!({
                "id": b.deployment.id,
                "commit_sha": b.deployment.git.map(|g| g.commit_sha),
                "version": b.deployment.version,
                "finished_at": to_rfc3339(b.deployment.finished_at),
            })
        }),
        None => None,
    };
    let commits: Vec<Value> = set
        .commits
        .iter()
        .map(|c| {
            json!({
                "sha": c.sha,
                "subject": c.subject,
                "committed_at": to_rfc3339(c.committed_at),
                "lead_time_seconds": seconds(c.lead_time),
                "merge_request": c.merge_request,
                "merge_lead_time_seconds": c.merge_lead_time.map(seconds),
            })
        })
        .collect();
    Ok(json_api(json!({
        "deployment_id": d.deployment.id,
        "service": d.deployment.service,
        "env": d.deployment.env,
        "repository_id": d.deployment.git.as_ref().map(|g| &g.repository_id),
        "commit_sha": d.deployment.git.as_ref().map(|g| &g.commit_sha),
        "finished_at": to_rfc3339(d.deployment.finished_at),
        "baseline": baseline,
        "no_baseline": set.no_baseline,
        "commits_missing": set.tip_missing,
        "commit_count": commits.len(),
        "commits": commits,
    })))
}

#[utoipa::path(get, path = "/api/v1/deployments/{id}/failure", tag = "native", operation_id = "explain_failure",
    description = "Whether a deployment counts as a change failure, by which rule, with the evidence (read scope).",
    params(("id" = String, Path)),
    responses((status = 200, body = serde_json::Value, content_type = "application/vnd.api+json"), crate::openapi::ApiErrors))]
async fn failure(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let d = deployment(&state, &id).await?;
    let (verdict, failures) =
        derivation::verdict(state.store.as_ref(), &d, state.failure_window).await?;
    let failures: Vec<Value> = failures
        .iter()
        .map(|f| {
            json!({
                "id": f.id,
                "name": f.name,
                "started_at": to_rfc3339(f.started_at),
                "finished_at": f.finished_at.map(to_rfc3339),
            })
        })
        .collect();
    let remediation = verdict.remediation.as_ref().map(|r| {
        json!({
            "deployment_id": r.deployment_id,
            "type": r.kind.as_str(),
            "recovery_time_seconds": seconds(r.recovery_time),
        })
    });
    Ok(json_api(json!({
        "deployment_id": d.deployment.id,
        "failed": verdict.failed,
        "rule": verdict.rule.map(|r| r.as_str()),
        "marked_stable": verdict.marked_stable,
        "evidence": {
            "change_failure": d.change_failure,
            "failures": failures,
            "rolled_back_by": verdict.rolled_back_by,
        },
        "remediation": remediation,
        "rework": verdict.is_rework(),
        "remediates": verdict.remediates,
        "failure_window_seconds": seconds(state.failure_window),
    })))
}
