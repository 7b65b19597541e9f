//! Argo CD deliveries: the body of the notification template the README gives (sent by the
//! `on-deployed` trigger) → a deployment of the synced revision.

use dora_core::model::{normalise_commit_sha, Deployment, Git};
use dora_core::repo::parse_repository;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Change, Context, Translated};
use crate::datadog::fields::Object;
use crate::error::Problem;

/// `{"app", "revision", "repo_url", "environment"?, "service"?, "started_at"?, "finished_at"}`.
pub fn translate(payload: &Value, cx: &Context<'_>) -> Result<Translated, Problem> {
    let root = Object::root(payload)?;
    let app = root.required_text("app")?;
    let revision = root.required_text("revision")?;
    let sha = normalise_commit_sha(&revision)
        .map_err(|e| Problem::at(root.pointer_of("revision"), format!("revision {e}")))?;
    let repo_url = root.required_text("repo_url")?;
    let repository = parse_repository(&repo_url)
        .map_err(|e| Problem::at(root.pointer_of("repo_url"), format!("repo_url {e}")))?;
    let finished_at = root.required_timestamp("finished_at")?;
    let started_at = root
        .timestamp("started_at")?
        .unwrap_or(finished_at)
        .min(finished_at);
    let named = root.text("service")?.unwrap_or_else(|| app.clone());
    let service = cx.alias(&named).unwrap_or(&named).to_string();
    // One sync of one revision: a later sync of the same revision (a rollback to it) is another
    // deployment.
    let digest = Sha256::digest(format!("{app}\n{sha}\n{finished_at}").as_bytes());
    let deployment = Deployment {
        id: format!("argocd:{}", hex::encode(&digest[..16])),
        service,
        env: root.text("environment")?,
        team: None,
        version: None,
        started_at,
        finished_at,
        git: Some(Git {
            repository_url: repository.url,
            repository_id: repository.id,
            commit_sha: sha,
        }),
        custom_tags: Vec::new(),
        source: "argocd".into(),
    };
    Ok(Translated::Changes(vec![Change::Deployment(deployment)]))
}
