//! GitHub deliveries: `deployment_status` (and opted-in `workflow_run`) → deployments, `push`
//! → commits, a merged `pull_request` → merge request facts, `issues` with the incident label
//! → failures.

use dora_core::model::{clipped_text, Deployment, Failure, Git, MergeRequest};
use dora_core::repo::parse_repository;
use serde_json::Value;

use super::{pushed_commits, sha_at, Change, Context, Translated};
use crate::datadog::fields::Object;
use crate::error::Problem;

/// What a delivery's `X-GitHub-Event` names, and its payload.
pub fn translate(event: &str, payload: &Value, cx: &Context<'_>) -> Result<Translated, Problem> {
    let root = Object::root(payload)?;
    match event {
        "ping" => Ok(Translated::Ignored("ping: the hook works".into())),
        "deployment_status" => deployment_status(&root, cx),
        "workflow_run" => workflow_run(&root, cx),
        "push" => push(&root),
        "pull_request" => pull_request(&root),
        "issues" => issues(&root, cx),
        other => Ok(Translated::Ignored(format!(
            "event {other} is not one dorametrics uses"
        ))),
    }
}

/// The repository a delivery is about.
struct Repository {
    /// GitHub's numeric id: stays when the repository is renamed, so event ids do too.
    github_id: String,
    name: String,
    full_name: String,
    url: String,
    id: String,
}

fn repository(root: &Object<'_>) -> Result<Repository, Problem> {
    let repo = root.required_object("repository")?;
    let html_url = repo.required_text("html_url")?;
    let parsed = parse_repository(&html_url)
        .map_err(|e| Problem::at(repo.pointer_of("html_url"), format!("html_url {e}")))?;
    Ok(Repository {
        github_id: repo.required_id_text("id")?,
        name: repo.required_text("name")?,
        full_name: repo.required_text("full_name")?,
        url: parsed.url,
        id: parsed.id,
    })
}

impl Repository {
    /// The service its events are of: an alias of its full name or its name, else its name.
    fn service(&self, cx: &Context<'_>) -> String {
        cx.alias(&self.full_name)
            .or_else(|| cx.alias(&self.name))
            .unwrap_or(&self.name)
            .to_string()
    }

    fn git(&self, sha: String) -> Git {
        Git {
            repository_url: self.url.clone(),
            repository_id: self.id.clone(),
            commit_sha: sha,
        }
    }

    /// An event id of this repository's: `github:<repository id>:<kind>:<object id>`.
    fn event_id(&self, kind: &str, object: &str) -> String {
        format!("github:{}:{kind}:{object}", self.github_id)
    }
}

/// The service a deployment names in its `payload` (an object, or JSON in a string).
fn payload_service(deployment: &Object<'_>) -> Option<String> {
    let parsed;
    let payload = match deployment.get("payload")? {
        Value::String(text) => {
            parsed = serde_json::from_str::<Value>(text).ok()?;
            &parsed
        }
        other => other,
    };
    let service = payload.get("service")?.as_str()?.trim();
    (!service.is_empty()).then(|| service.to_string())
}

fn deployment_status(root: &Object<'_>, cx: &Context<'_>) -> Result<Translated, Problem> {
    let status = root.required_object("deployment_status")?;
    let state = status.required_text("state")?;
    if state != "success" {
        return Ok(Translated::Ignored(format!(
            "deployment status {state}: only successful deployments count"
        )));
    }
    let deployment = root.required_object("deployment")?;
    let repo = repository(root)?;
    let service = payload_service(&deployment).unwrap_or_else(|| repo.service(cx));
    let started_at = deployment.required_timestamp("created_at")?;
    let finished_at = status.required_timestamp("created_at")?;
    let deployment = Deployment {
        id: repo.event_id("deployment", &deployment.required_id_text("id")?),
        service,
        env: Some(deployment.required_text("environment")?),
        team: None,
        version: None,
        started_at,
        finished_at: finished_at.max(started_at),
        git: Some(repo.git(sha_at(&deployment, "sha")?)),
        custom_tags: Vec::new(),
        source: "github".into(),
    };
    Ok(Translated::Changes(vec![Change::Deployment(deployment)]))
}

fn workflow_run(root: &Object<'_>, cx: &Context<'_>) -> Result<Translated, Problem> {
    let Some(wanted) = cx.hook.deploy_workflow.as_deref() else {
        return Ok(Translated::Ignored(
            "workflow runs count only for a hook made with --deploy-workflow".into(),
        ));
    };
    let run = root.required_object("workflow_run")?;
    let name = run.required_text("name")?;
    let path = run.text("path")?.unwrap_or_default();
    let file = path.rsplit('/').next().unwrap_or_default();
    if name != wanted && path != wanted && file != wanted {
        return Ok(Translated::Ignored(format!(
            "workflow {name:?} is not the deploy workflow {wanted:?}"
        )));
    }
    let action = root.text("action")?.unwrap_or_default();
    let conclusion = run.text("conclusion")?.unwrap_or_default();
    if action != "completed" || conclusion != "success" {
        return Ok(Translated::Ignored(format!(
            "workflow run {action} with conclusion {conclusion:?}: only successful runs count"
        )));
    }
    let repo = repository(root)?;
    let started_at = run
        .timestamp("run_started_at")?
        .map_or_else(|| run.required_timestamp("created_at"), Ok)?;
    let finished_at = run.required_timestamp("updated_at")?;
    let deployment = Deployment {
        id: repo.event_id("run", &run.required_id_text("id")?),
        service: repo.service(cx),
        env: Some(
            cx.hook
                .deploy_env
                .clone()
                .unwrap_or_else(|| "production".into()),
        ),
        team: None,
        version: None,
        started_at,
        finished_at: finished_at.max(started_at),
        git: Some(repo.git(sha_at(&run, "head_sha")?)),
        custom_tags: Vec::new(),
        source: "github".into(),
    };
    Ok(Translated::Changes(vec![Change::Deployment(deployment)]))
}

fn push(root: &Object<'_>) -> Result<Translated, Problem> {
    let reference = root.required_text("ref")?;
    if !reference.starts_with("refs/heads/") {
        return Ok(Translated::Ignored(format!(
            "push to {reference}: only branch pushes bring commits"
        )));
    }
    if root.bool("deleted")? == Some(true) {
        return Ok(Translated::Ignored(format!("{reference} was deleted")));
    }
    let repo = repository(root)?;
    let commits = pushed_commits(root, &repo.id, |c, key| c.required_timestamp(key))?;
    if commits.is_empty() {
        return Ok(Translated::Ignored(format!(
            "push to {reference} lists no commits"
        )));
    }
    Ok(Translated::Changes(vec![Change::PushedCommits(commits)]))
}

fn pull_request(root: &Object<'_>) -> Result<Translated, Problem> {
    let action = root.required_text("action")?;
    let pr = root.required_object("pull_request")?;
    if action != "closed" || pr.bool("merged")? != Some(true) {
        return Ok(Translated::Ignored(format!(
            "pull request {action}: only merged pull requests count"
        )));
    }
    let repo = repository(root)?;
    let number = pr
        .integer_in("number", 1, i64::MAX)?
        .ok_or_else(|| Problem::at(pr.pointer_of("number"), "number is required"))?;
    let change = Change::MergeRequest {
        repository_id: repo.id,
        sha: sha_at(&pr, "merge_commit_sha")?,
        merge_request: MergeRequest {
            number,
            created_at: pr.timestamp("created_at")?,
            merged_at: Some(pr.required_timestamp("merged_at")?),
        },
    };
    Ok(Translated::Changes(vec![change]))
}

fn issues(root: &Object<'_>, cx: &Context<'_>) -> Result<Translated, Problem> {
    let action = root.required_text("action")?;
    let issue = root.required_object("issue")?;
    let label = cx.hook.incident_label();
    let labelled = issue
        .objects("labels")?
        .iter()
        .any(|l| l.get("name").and_then(Value::as_str) == Some(label));
    let repo = repository(root)?;
    let number = issue.required_id_text("number")?;
    let id = repo.event_id("issue", &number);
    let as_of = issue.required_timestamp("updated_at")?;
    // Label removed, or the issue deleted: it is not an incident (any more).
    let removed = root
        .object("label")?
        .and_then(|l| l.get("name").and_then(Value::as_str).map(|n| n == label))
        == Some(true);
    if action == "deleted" || (action == "unlabeled" && removed && !labelled) {
        return Ok(Translated::Changes(vec![Change::DeleteFailure {
            id,
            as_of,
        }]));
    }
    if !labelled {
        return Ok(Translated::Ignored(format!(
            "issue #{number} is not labelled {label:?}"
        )));
    }
    let started_at = issue.required_timestamp("created_at")?;
    let closed = issue.text("state")?.as_deref() == Some("closed");
    let finished_at = match closed {
        true => Some(issue.required_timestamp("closed_at")?.max(started_at)),
        false => None,
    };
    let failure = Failure {
        id,
        name: issue
            .get("title")
            .and_then(Value::as_str)
            .and_then(clipped_text),
        services: vec![repo.service(cx)],
        team: None,
        env: None,
        severity: None,
        started_at,
        finished_at,
        version: None,
        git: None,
        custom_tags: Vec::new(),
        source: "github".into(),
    };
    Ok(Translated::Changes(vec![Change::Failure {
        failure,
        as_of,
    }]))
}
