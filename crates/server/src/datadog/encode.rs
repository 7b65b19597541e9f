//! Domain values to Datadog response documents. Absent optional fields are omitted, never
//! `null`, so that the typed models of the official clients accept every object.
//!
//! The documents serialize straight from the domain values (a list answers up to 1,000 of
//! them: building a `serde_json::Value` tree of each first cost more than the query). Fields
//! are in alphabetical order, as serde_json prints the keys of its maps elsewhere.

use dora_core::model::{Failure, StoredDeployment};
use dora_core::time::to_rfc3339;
use serde::Serialize;

pub const DEPLOYMENT_TYPE: &str = "dora_deployment";
pub const FAILURE_TYPE: &str = "dora_failure";

/// `{"data": …}`: the top level of every answer.
#[derive(Serialize)]
pub struct Data<T> {
    pub data: T,
}

/// One resource object: `{"attributes": …, "id": …, "type": …}`.
#[derive(Serialize)]
pub struct Resource<'a, A> {
    attributes: A,
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
pub struct DeploymentAttributes<'a> {
    custom_tags: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    env: Option<&'a str>,
    finished_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    git: Option<DeploymentGit<'a>>,
    service: &'a str,
    started_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    team: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
}

#[derive(Serialize)]
pub struct DeploymentGit<'a> {
    commit_sha: &'a str,
    repository_id: &'a str,
}

#[derive(Serialize)]
pub struct FailureAttributes<'a> {
    custom_tags: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    env: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    git: Option<FailureGit<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    services: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    severity: Option<&'a str>,
    started_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    team: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
}

#[derive(Serialize)]
pub struct FailureGit<'a> {
    commit_sha: &'a str,
    repository_url: &'a str,
}

pub fn deployment(stored: &StoredDeployment) -> Resource<'_, DeploymentAttributes<'_>> {
    let d = &stored.deployment;
    Resource {
        attributes: DeploymentAttributes {
            custom_tags: &d.custom_tags,
            env: d.env.as_deref(),
            finished_at: to_rfc3339(d.finished_at),
            git: d.git.as_ref().map(|git| DeploymentGit {
                commit_sha: &git.commit_sha,
                repository_id: &git.repository_id,
            }),
            service: &d.service,
            started_at: to_rfc3339(d.started_at),
            team: d.team.as_deref(),
            version: d.version.as_deref(),
        },
        id: &d.id,
        kind: DEPLOYMENT_TYPE,
    }
}

pub fn failure(f: &Failure) -> Resource<'_, FailureAttributes<'_>> {
    Resource {
        attributes: FailureAttributes {
            custom_tags: &f.custom_tags,
            env: f.env.as_deref(),
            finished_at: f.finished_at.map(to_rfc3339),
            git: f.git.as_ref().map(|git| FailureGit {
                commit_sha: &git.commit_sha,
                repository_url: &git.repository_url,
            }),
            name: f.name.as_deref(),
            services: &f.services,
            severity: f.severity.as_deref(),
            started_at: to_rfc3339(f.started_at),
            team: f.team.as_deref(),
            version: f.version.as_deref(),
        },
        id: &f.id,
        kind: FAILURE_TYPE,
    }
}

#[cfg(test)]
mod tests {
    use dora_core::model::{Deployment, Git};
    use serde_json::json;

    use super::*;

    fn text<T: Serialize>(document: T) -> String {
        serde_json::to_string(&document).unwrap()
    }

    #[test]
    fn deployments_omit_what_they_lack() {
        let mut stored = StoredDeployment {
            deployment: Deployment {
                id: "shop-0000000000000001".into(),
                service: "shop".into(),
                env: Some("prod".into()),
                team: Some("web".into()),
                version: Some("v1".into()),
                started_at: 1_735_689_600_000_000_000,
                finished_at: 1_735_689_660_000_000_000,
                git: Some(Git {
                    repository_url: "https://github.com/acme/shop".into(),
                    repository_id: "github.com/acme/shop".into(),
                    commit_sha: "66adc9350f2cc9b250b69abddab733dd55e1a588".into(),
                }),
                custom_tags: vec!["language:rust".into()],
                source: "api".into(),
            },
            change_failure: None,
            remediation: None,
        };
        let expected = json!({"data": {"id": "shop-0000000000000001", "type": "dora_deployment",
            "attributes": {"service": "shop", "env": "prod", "team": "web", "version": "v1",
                "started_at": "2025-01-01T00:00:00Z", "finished_at": "2025-01-01T00:01:00Z",
                "git": {"commit_sha": "66adc9350f2cc9b250b69abddab733dd55e1a588",
                    "repository_id": "github.com/acme/shop"},
                "custom_tags": ["language:rust"]}}});
        // The same text as the value's, whose keys serde_json sorts.
        assert_eq!(
            text(Data {
                data: deployment(&stored)
            }),
            expected.to_string()
        );
        let d = &mut stored.deployment;
        (d.env, d.team, d.version, d.git) = (None, None, None, None);
        d.custom_tags.clear();
        assert_eq!(
            text(deployment(&stored)),
            json!({"id": "shop-0000000000000001", "type": "dora_deployment",
                "attributes": {"service": "shop", "started_at": "2025-01-01T00:00:00Z",
                    "finished_at": "2025-01-01T00:01:00Z", "custom_tags": []}})
            .to_string()
        );
    }

    #[test]
    fn failures_omit_what_they_lack() {
        let mut f = Failure {
            id: "incident-1".into(),
            name: Some("Checkout down".into()),
            services: vec!["shop".into(), "cart".into()],
            team: Some("web".into()),
            env: Some("prod".into()),
            severity: Some("SEV-1".into()),
            started_at: 1_735_689_600_000_000_000,
            finished_at: Some(1_735_689_660_000_000_000),
            version: Some("v1".into()),
            git: Some(Git {
                repository_url: "https://github.com/acme/shop".into(),
                repository_id: "github.com/acme/shop".into(),
                commit_sha: "66adc9350f2cc9b250b69abddab733dd55e1a588".into(),
            }),
            custom_tags: vec!["region:eu".into()],
            source: "api".into(),
        };
        assert_eq!(
            text(failure(&f)),
            json!({"id": "incident-1", "type": "dora_failure", "attributes": {
                "name": "Checkout down", "services": ["shop", "cart"], "team": "web",
                "env": "prod", "severity": "SEV-1", "started_at": "2025-01-01T00:00:00Z",
                "finished_at": "2025-01-01T00:01:00Z", "version": "v1",
                "git": {"commit_sha": "66adc9350f2cc9b250b69abddab733dd55e1a588",
                    "repository_url": "https://github.com/acme/shop"},
                "custom_tags": ["region:eu"]}})
            .to_string()
        );
        (
            f.name,
            f.team,
            f.env,
            f.severity,
            f.finished_at,
            f.version,
            f.git,
        ) = (None, None, None, None, None, None, None);
        f.services.clear();
        assert_eq!(
            text(failure(&f)),
            json!({"id": "incident-1", "type": "dora_failure", "attributes": {
                "services": [], "started_at": "2025-01-01T00:00:00Z", "custom_tags": ["region:eu"]}})
            .to_string()
        );
    }
}
