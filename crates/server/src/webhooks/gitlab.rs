//! GitLab deliveries (`X-Gitlab-Event`): `Deployment Hook` → deployments, `Push Hook` →
//! commits, a merged `Merge Request Hook` → merge request facts, an `Issue Hook` of an incident
//! → a failure.

use dora_core::model::{
    clipped_text, normalise_commit_sha, Deployment, Failure, Git, MergeRequest,
};
use dora_core::repo::parse_repository;
use dora_core::time::{self, Nanos};
use serde_json::Value;

use super::{pushed_commits, Change, Context, Translated, ZERO_SHA};
use crate::datadog::fields::Object;
use crate::error::Problem;

pub fn translate(event: &str, payload: &Value, cx: &Context<'_>) -> Result<Translated, Problem> {
    let root = Object::root(payload)?;
    match event {
        "Deployment Hook" => deployment(&root, cx),
        "Push Hook" => push(&root),
        "Merge Request Hook" => merge_request(&root),
        "Issue Hook" | "Work Item Hook" => issue(&root, cx),
        other => Ok(Translated::Ignored(format!(
            "event {other:?} is not one dorametrics uses"
        ))),
    }
}

/// A time as GitLab writes it (three ways), required.
fn gitlab_time(object: &Object<'_>, key: &str) -> Result<Nanos, Problem> {
    let text = object.required_text(key)?;
    time::from_gitlab_time(&text)
        .map_err(|e| Problem::at(object.pointer_of(key), format!("{key} {e}")))
}

fn optional_time(object: &Object<'_>, key: &str) -> Result<Option<Nanos>, Problem> {
    match object.get(key) {
        None => Ok(None),
        Some(_) => gitlab_time(object, key).map(Some),
    }
}

/// The project a delivery is about.
struct Project {
    /// GitLab's numeric id: it stays when the project moves.
    gitlab_id: String,
    name: String,
    path: String,
    url: String,
    id: String,
}

fn project(root: &Object<'_>) -> Result<Project, Problem> {
    let project = root.required_object("project")?;
    let web_url = project.required_text("web_url")?;
    let parsed = parse_repository(&web_url)
        .map_err(|e| Problem::at(project.pointer_of("web_url"), format!("web_url {e}")))?;
    Ok(Project {
        gitlab_id: project.required_id_text("id")?,
        name: project.required_text("name")?,
        path: project.required_text("path_with_namespace")?,
        url: parsed.url,
        id: parsed.id,
    })
}

impl Project {
    fn service(&self, cx: &Context<'_>) -> String {
        cx.alias(&self.path)
            .or_else(|| cx.alias(&self.name))
            .unwrap_or(&self.name)
            .to_string()
    }

    fn event_id(&self, kind: &str, object: &str) -> String {
        format!("gitlab:{}:{kind}:{object}", self.gitlab_id)
    }

    /// Its numeric id, which GitLab gives as a number.
    fn gitlab_number(&self, root: &Object<'_>) -> Result<i64, Problem> {
        self.gitlab_id.parse().map_err(|_| {
            Problem::at(
                format!("{}/id", root.pointer_of("project")),
                "id must be a whole number",
            )
        })
    }
}

fn sha_text(object: &Object<'_>, key: &str, text: &str) -> Result<String, Problem> {
    normalise_commit_sha(text)
        .map_err(|e| Problem::at(object.pointer_of(key), format!("{key} {e}")))
}

fn deployment(root: &Object<'_>, cx: &Context<'_>) -> Result<Translated, Problem> {
    let status = root.required_text("status")?;
    let project = project(root)?;
    let id = project.event_id("deployment", &root.required_id_text("deployment_id")?);
    let at = gitlab_time(root, "status_changed_at")?;
    match status.as_str() {
        "running" => {
            return Ok(Translated::Changes(vec![Change::Running {
                deployment_id: id,
                at,
            }]))
        }
        "success" => {}
        other => {
            return Ok(Translated::Ignored(format!(
                "deployment {other}: only successful deployments count"
            )))
        }
    }
    // `commit_url` ends in the sha: …/-/commit/<sha>.
    let commit_url = root.required_text("commit_url")?;
    let sha = commit_url.rsplit('/').next().unwrap_or_default();
    let sha = sha_text(root, "commit_url", sha)?;
    // GitLab's own tier wins over the guess from the name.
    let custom_tags = root
        .text("environment_tier")?
        .map(|tier| vec![format!("deployment_tier:{tier}")])
        .unwrap_or_default();
    let deployment = Deployment {
        id,
        service: project.service(cx),
        env: Some(root.required_text("environment")?),
        team: None,
        version: None,
        started_at: at,
        finished_at: at,
        git: Some(Git {
            repository_url: project.url.clone(),
            repository_id: project.id.clone(),
            commit_sha: sha,
        }),
        custom_tags,
        source: "gitlab".into(),
    };
    // The project answers to GitLab's own id on the GitLab API too.
    let known = Change::GitlabProject {
        gitlab_id: project.gitlab_number(root)?,
        path: dora_core::repo::project_path(&project.id).to_string(),
    };
    Ok(Translated::Changes(vec![
        known,
        Change::FinishedDeployment(deployment),
    ]))
}

fn push(root: &Object<'_>) -> Result<Translated, Problem> {
    let reference = root.required_text("ref")?;
    if !reference.starts_with("refs/heads/") {
        return Ok(Translated::Ignored(format!(
            "push to {reference}: only branch pushes bring commits"
        )));
    }
    if root.text("after")?.as_deref() == Some(ZERO_SHA) {
        return Ok(Translated::Ignored(format!("{reference} was deleted")));
    }
    let listed = root.objects("commits")?;
    let total = root
        .integer_in("total_commits_count", 0, i64::MAX)?
        .unwrap_or(listed.len() as i64);
    if total > listed.len() as i64 {
        // The oldest listed commit's parent is unknown: its deployments show commits_missing
        // until the history is imported.
        return Ok(Translated::Ignored(format!(
            "push to {reference} lists {} of its {total} commits; import the history \
             (dorametrics import git, or POST /api/v1/commits) for them",
            listed.len()
        )));
    }
    let project = project(root)?;
    let commits = pushed_commits(root, &project.id, gitlab_time)?;
    if commits.is_empty() {
        return Ok(Translated::Ignored(format!(
            "push to {reference} lists no commits"
        )));
    }
    Ok(Translated::Changes(vec![Change::PushedCommits(commits)]))
}

fn merge_request(root: &Object<'_>) -> Result<Translated, Problem> {
    let attributes = root.required_object("object_attributes")?;
    let action = attributes.text("action")?.unwrap_or_default();
    if action != "merge" {
        return Ok(Translated::Ignored(format!(
            "merge request {action:?}: only merges count"
        )));
    }
    let project = project(root)?;
    let key = match attributes.get("merge_commit_sha") {
        Some(_) => "merge_commit_sha",
        None => "squash_commit_sha",
    };
    let sha = sha_text(&attributes, key, &attributes.required_text(key)?)?;
    let number = attributes
        .integer_in("iid", 1, i64::MAX)?
        .ok_or_else(|| Problem::at(attributes.pointer_of("iid"), "iid is required"))?;
    let merged_at = match optional_time(&attributes, "merged_at")? {
        Some(at) => at,
        None => gitlab_time(&attributes, "updated_at")?,
    };
    let change = Change::MergeRequest {
        repository_id: project.id,
        sha,
        merge_request: MergeRequest {
            number,
            created_at: optional_time(&attributes, "created_at")?,
            merged_at: Some(merged_at),
        },
    };
    Ok(Translated::Changes(vec![change]))
}

fn issue(root: &Object<'_>, cx: &Context<'_>) -> Result<Translated, Problem> {
    let attributes = root.required_object("object_attributes")?;
    let kind = attributes
        .text("type")?
        .or(attributes.text("issue_type")?)
        .unwrap_or_default();
    let project = project(root)?;
    let iid = attributes.required_id_text("iid")?;
    if !kind.eq_ignore_ascii_case("incident") {
        return Ok(Translated::Ignored(format!(
            "issue #{iid} is of type {kind:?}, not an incident"
        )));
    }
    let started_at = gitlab_time(&attributes, "created_at")?;
    let closed = attributes.text("state")?.as_deref() == Some("closed");
    let finished_at = match closed {
        true => Some(
            optional_time(&attributes, "closed_at")?
                .map_or_else(|| gitlab_time(&attributes, "updated_at"), Ok)?
                .max(started_at),
        ),
        false => None,
    };
    let failure = Failure {
        id: project.event_id("issue", &iid),
        name: attributes
            .get("title")
            .and_then(Value::as_str)
            .and_then(clipped_text),
        services: vec![project.service(cx)],
        team: None,
        env: None,
        severity: attributes.text("severity")?,
        started_at,
        finished_at,
        version: None,
        git: None,
        custom_tags: Vec::new(),
        source: "gitlab".into(),
    };
    let as_of = gitlab_time(&attributes, "updated_at")?;
    Ok(Translated::Changes(vec![Change::Failure {
        failure,
        as_of,
    }]))
}
