//! Datadog request documents to domain values, with Datadog's validation rules.

use dora_core::model::{
    check_event_id, normalise_commit_sha, Deployment, DeploymentPatch, DeploymentSelector, Failure,
    Git, ListQuery, Remediation, RemediationKind, RemediationTarget, Sort, SortField,
    DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT,
};
use dora_core::query;
use dora_core::repo::parse_repository;
use serde_json::Value;

use super::fields::Object;
use crate::error::Problem;

/// Events that arrive through the Datadog API say so in their `source` attribute.
const SOURCE: &str = "api";

/// Longer queries are refused: each term costs SQL parameters, and SQLite has a limit on those.
const MAX_QUERY_LEN: usize = 4096;

/// `data.attributes` of a request document.
fn attributes(document: &Value) -> Result<(Object<'_>, Object<'_>), Problem> {
    let root = Object::root(document)?;
    let data = root.required_object("data")?;
    let attributes = data.required_object("attributes")?;
    Ok((data, attributes))
}

fn event_id(attributes: &Object<'_>) -> Result<Option<String>, Problem> {
    let Some(id) = attributes.text("id")? else {
        return Ok(None);
    };
    check_event_id(&id).map_err(|e| Problem::at(attributes.pointer_of("id"), format!("id {e}")))?;
    Ok(Some(id))
}

fn git(attributes: &Object<'_>) -> Result<Option<Git>, Problem> {
    let Some(git) = attributes.object("git")? else {
        return Ok(None);
    };
    let url = git.required_text("repository_url")?;
    let repository = parse_repository(&url).map_err(|e| {
        Problem::at(
            git.pointer_of("repository_url"),
            format!("repository_url {e}"),
        )
    })?;
    let sha = git.required_text("commit_sha")?;
    let commit_sha = normalise_commit_sha(&sha)
        .map_err(|e| Problem::at(git.pointer_of("commit_sha"), format!("commit_sha {e}")))?;
    Ok(Some(Git {
        repository_url: repository.url,
        repository_id: repository.id,
        commit_sha,
    }))
}

fn check_order(
    attributes: &Object<'_>,
    started_at: i64,
    finished_at: Option<i64>,
) -> Result<(), Problem> {
    match finished_at {
        Some(finished_at) if finished_at < started_at => Err(Problem::at(
            attributes.pointer_of("finished_at"),
            "finished_at must not be before started_at",
        )),
        _ => Ok(()),
    }
}

/// `POST /api/v2/dora/deployment`. The id is `None` when the client gave none.
pub fn deployment(document: &Value) -> Result<(Option<String>, Deployment), Problem> {
    let (data, attributes) = attributes(document)?;
    data.expect_type("dora_deployment", false)?;
    deployment_fields(&attributes)
}

/// The attributes of a deployment (also one element of a bulk import).
pub(crate) fn deployment_fields(
    attributes: &Object<'_>,
) -> Result<(Option<String>, Deployment), Problem> {
    let id = event_id(attributes)?;
    let service = attributes.required_text("service")?;
    let started_at = attributes.required_timestamp("started_at")?;
    let finished_at = attributes.required_timestamp("finished_at")?;
    check_order(attributes, started_at, Some(finished_at))?;
    let deployment = Deployment {
        id: id.clone().unwrap_or_default(),
        service,
        env: attributes.text("env")?,
        team: attributes.text("team")?,
        version: attributes.text("version")?,
        started_at,
        finished_at,
        git: git(attributes)?,
        custom_tags: attributes.custom_tags()?,
        source: SOURCE.to_string(),
    };
    Ok((id, deployment))
}

/// `POST /api/v2/dora/failure` (and the deprecated `/incident`).
pub fn failure(document: &Value) -> Result<(Option<String>, Failure), Problem> {
    let (data, attributes) = attributes(document)?;
    data.expect_type("dora_failure", false)?;
    let id = event_id(&attributes)?;
    let services = attributes.text_list("services")?;
    let team = attributes.text("team")?;
    if services.is_empty() && team.is_none() {
        return Err(Problem::at(
            attributes.pointer_of("services"),
            "services or team is required: name the impacted services, the owning team, or both",
        ));
    }
    let started_at = attributes.required_timestamp("started_at")?;
    let finished_at = attributes.timestamp("finished_at")?;
    check_order(&attributes, started_at, finished_at)?;
    let failure = Failure {
        id: id.clone().unwrap_or_default(),
        name: attributes.text("name")?,
        services,
        team,
        env: attributes.text("env")?,
        severity: attributes.text("severity")?,
        started_at,
        finished_at,
        version: attributes.text("version")?,
        git: git(&attributes)?,
        custom_tags: attributes.custom_tags()?,
        source: SOURCE.to_string(),
    };
    Ok((id, failure))
}

/// Which event list a list request is for.
#[derive(Clone, Copy)]
pub enum ListKind {
    Deployments,
    Failures,
}

/// `POST /api/v2/dora/deployments` and `/failures`.
pub fn list(document: &Value, kind: ListKind) -> Result<ListQuery, Problem> {
    let (data, attributes) = attributes(document)?;
    let (request_type, time_field) = match kind {
        ListKind::Deployments => ("dora_deployments_list_request", SortField::FinishedAt),
        ListKind::Failures => ("dora_failures_list_request", SortField::StartedAt),
    };
    data.expect_type(request_type, true)?;
    let from = attributes.rfc3339("from")?;
    let to = attributes.rfc3339("to")?;
    if let (Some(from), Some(to)) = (from, to) {
        if from > to {
            return Err(Problem::at(
                attributes.pointer_of("from"),
                "from must not be after to",
            ));
        }
    }
    let limit = attributes
        .integer_in("limit", 1, i64::from(MAX_LIST_LIMIT))?
        .map_or(DEFAULT_LIST_LIMIT, |l| {
            u32::try_from(l).unwrap_or(MAX_LIST_LIMIT)
        });
    let sort = match attributes.text("sort")? {
        None => Sort {
            field: time_field,
            descending: true,
        },
        Some(text) => Sort::parse(&text).ok_or_else(|| {
            Problem::at(
                attributes.pointer_of("sort"),
                format!(
                    "sort must be started_at or finished_at, optionally prefixed with '-', got {text:?}"
                ),
            )
        })?,
    };
    let filter = match attributes.get("query") {
        None => query::Query::All,
        Some(Value::String(text)) if text.len() > MAX_QUERY_LEN => {
            return Err(Problem::at(
                attributes.pointer_of("query"),
                format!("query is longer than {MAX_QUERY_LEN} bytes"),
            ))
        }
        Some(Value::String(text)) => query::parse(text)
            .map_err(|e| Problem::at(attributes.pointer_of("query"), e.to_string()))?,
        Some(_) => {
            return Err(Problem::at(
                attributes.pointer_of("query"),
                "query must be a string",
            ))
        }
    };
    Ok(ListQuery {
        from,
        to,
        limit,
        filter,
        sort,
    })
}

fn remediation(attributes: &Object<'_>) -> Result<Option<Remediation>, Problem> {
    let Some(remediation) = attributes.object("remediation")? else {
        return Ok(None);
    };
    let kind_text = remediation.required_text("type")?;
    let kind = RemediationKind::parse(&kind_text).ok_or_else(|| {
        Problem::at(
            remediation.pointer_of("type"),
            format!("type must be \"rollback\" or \"rollforward\", got {kind_text:?}"),
        )
    })?;
    let target = match (remediation.text("id")?, remediation.text("version")?) {
        (Some(id), None) => RemediationTarget::Id(id),
        (None, Some(version)) => RemediationTarget::Version(version),
        (Some(_), Some(_)) => {
            return Err(Problem::at(
                remediation.pointer_of("id"),
                "give either id or version of the remediation deployment, not both",
            ))
        }
        (None, None) => {
            return Err(Problem::at(
                remediation.pointer_of("id"),
                "id or version of the remediation deployment is required",
            ))
        }
    };
    Ok(Some(Remediation { kind, target }))
}

fn patch_of(attributes: &Object<'_>) -> Result<DeploymentPatch, Problem> {
    Ok(DeploymentPatch {
        change_failure: attributes.bool("change_failure")?,
        remediation: remediation(attributes)?,
    })
}

/// `PATCH /api/v2/dora/deployments/{id}`.
pub fn patch_by_id(
    document: &Value,
    path_id: &str,
) -> Result<(DeploymentSelector, DeploymentPatch), Problem> {
    let (data, attributes) = attributes(document)?;
    data.expect_type("dora_deployment_patch_request", true)?;
    if let Some(body_id) = data.text("id")? {
        if body_id != path_id {
            return Err(Problem::at(
                data.pointer_of("id"),
                format!("id {body_id:?} does not match the deployment id in the path {path_id:?}"),
            ));
        }
    }
    let patch = patch_of(&attributes)?;
    if patch.change_failure.is_none() && patch.remediation.is_none() {
        return Err(Problem::at(
            attributes.pointer_of("change_failure"),
            "nothing to patch: give change_failure, remediation, or both",
        ));
    }
    if let Some(Remediation {
        target: RemediationTarget::Id(id),
        ..
    }) = &patch.remediation
    {
        if id == path_id {
            return Err(Problem::at(
                "/data/attributes/remediation/id",
                "a deployment cannot remediate itself",
            ));
        }
    }
    Ok((DeploymentSelector::Id(path_id.to_string()), patch))
}

/// `PATCH /api/v2/dora/deployments`: the most recently finished deployment of service+env+version.
pub fn patch_by_version(
    document: &Value,
) -> Result<(DeploymentSelector, DeploymentPatch), Problem> {
    let (data, attributes) = attributes(document)?;
    data.expect_type("dora_deployment_patch_request", true)?;
    let service = attributes.required_text("service")?;
    let env = attributes.required_text("env")?;
    let version = attributes.required_text("version")?;
    attributes.required("change_failure")?;
    let patch = patch_of(&attributes)?;
    Ok((
        DeploymentSelector::Version {
            service,
            env,
            version,
        },
        patch,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problem(result: Result<impl std::fmt::Debug, Problem>) -> (String, String) {
        let problem = result.unwrap_err();
        (problem.pointer.unwrap_or_default(), problem.detail)
    }

    fn deployment_doc(attributes: Value) -> Value {
        json!({ "data": { "attributes": attributes } })
    }

    #[test]
    fn a_full_deployment_decodes() {
        let (id, d) = deployment(&deployment_doc(json!({
            "id": "4242fcdd31586083",
            "service": "shopist",
            "env": "production",
            "team": "backend",
            "version": "v1.12.07",
            "started_at": 1693491974,
            "finished_at": 1693491984000_i64,
            "git": {"repository_url": "https://tok:en@github.com/org/shop.git", "commit_sha": "66ADC9350F2CC9B250B69ABDDAB733DD55E1A588"},
            "custom_tags": ["language:java"]
        })))
        .unwrap();
        assert_eq!(id.as_deref(), Some("4242fcdd31586083"));
        assert_eq!(d.started_at, 1_693_491_974_000_000_000);
        assert_eq!(d.finished_at, 1_693_491_984_000_000_000);
        let git = d.git.unwrap();
        assert_eq!(git.repository_url, "https://github.com/org/shop.git");
        assert_eq!(git.repository_id, "github.com/org/shop");
        assert_eq!(git.commit_sha, "66adc9350f2cc9b250b69abddab733dd55e1a588");
    }

    #[test]
    fn every_violation_names_its_pointer() {
        let cases = [
            (
                json!({"started_at": 1, "finished_at": 2}),
                "/data/attributes/service",
                "service is required",
            ),
            (
                json!({"service": 5, "started_at": 1, "finished_at": 2}),
                "/data/attributes/service",
                "service must be a string, got a number",
            ),
            (
                json!({"service": "s", "finished_at": 2}),
                "/data/attributes/started_at",
                "started_at is required",
            ),
            (
                json!({"service": "s", "started_at": 10, "finished_at": 5}),
                "/data/attributes/finished_at",
                "finished_at must not be before started_at",
            ),
            (
                json!({"service": "s", "started_at": 1.5, "finished_at": 2}),
                "/data/attributes/started_at",
                "started_at must be an integer Unix timestamp, got 1.5",
            ),
            (
                json!({"service": "s", "started_at": "soon", "finished_at": 2}),
                "/data/attributes/started_at",
                "started_at is not a valid RFC 3339 date-time (e.g. 2025-01-31T23:59:59Z)",
            ),
            (
                json!({"id": "short", "service": "s", "started_at": 1, "finished_at": 2}),
                "/data/attributes/id",
                "id must be 16 to 128 characters long, got 5",
            ),
            (
                json!({"service": "s", "started_at": 1, "finished_at": 2, "custom_tags": ["ok:1", "bad"]}),
                "/data/attributes/custom_tags/1",
                "custom_tags[1] \"bad\" does not follow the key:value pattern",
            ),
            (
                json!({"service": "s", "started_at": 1, "finished_at": 2, "git": {"repository_url": "https://github.com/a/b", "commit_sha": "abc"}}),
                "/data/attributes/git/commit_sha",
                "commit_sha must be at least 40 hex digits, got 3 characters",
            ),
            (
                json!({"service": "s", "started_at": 1, "finished_at": 2, "git": {"commit_sha": "a"}}),
                "/data/attributes/git/repository_url",
                "repository_url is required",
            ),
        ];
        for (attributes, pointer, detail) in cases {
            assert_eq!(
                problem(deployment(&deployment_doc(attributes.clone()))),
                (pointer.to_string(), detail.to_string()),
                "{attributes}"
            );
        }
        let tags: Vec<String> = (0..101).map(|i| format!("k:{i}")).collect();
        assert_eq!(
            problem(deployment(&deployment_doc(
                json!({"service": "s", "started_at": 1, "finished_at": 2, "custom_tags": tags})
            )))
            .0,
            "/data/attributes/custom_tags"
        );
        assert_eq!(
            problem(deployment(
                &json!({"data": {"type": "nope", "attributes": {}}})
            )),
            (
                "/data/type".to_string(),
                "type must be \"dora_deployment\", got \"nope\"".to_string()
            )
        );
        assert_eq!(problem(deployment(&json!([]))).0, "");
        assert_eq!(problem(deployment(&json!({}))).0, "/data");
    }

    #[test]
    fn failures_need_services_or_team() {
        let doc = json!({"data": {"attributes": {"started_at": 1}}});
        assert_eq!(problem(failure(&doc)).0, "/data/attributes/services");
        let doc = json!({"data": {"attributes": {"team": "t", "started_at": 1}}});
        let (id, f) = failure(&doc).unwrap();
        assert_eq!((id, f.finished_at), (None, None));
    }

    #[test]
    fn list_requests_are_checked() {
        let ok = json!({"data": {"type": "dora_deployments_list_request", "attributes": {
            "from": "2025-01-01T00:00:00Z", "to": "2025-01-31T23:59:59Z", "limit": 500,
            "sort": "-started_at", "query": "service:shopist"}}});
        let q = list(&ok, ListKind::Deployments).unwrap();
        assert_eq!(q.limit, 500);
        assert_eq!(
            q.sort,
            Sort {
                field: SortField::StartedAt,
                descending: true
            }
        );
        let defaults = json!({"data": {"type": "dora_failures_list_request", "attributes": {}}});
        let q = list(&defaults, ListKind::Failures).unwrap();
        assert_eq!(
            (q.limit, q.sort.field, q.from),
            (10, SortField::StartedAt, None)
        );

        let bad = |attributes: Value, kind| {
            problem(list(
                &json!({"data": {"type": "dora_deployments_list_request", "attributes": attributes}}),
                kind,
            ))
        };
        assert_eq!(
            bad(json!({"limit": 0}), ListKind::Deployments).0,
            "/data/attributes/limit"
        );
        assert_eq!(
            bad(json!({"limit": 1001}), ListKind::Deployments).0,
            "/data/attributes/limit"
        );
        assert_eq!(
            bad(json!({"limit": "5"}), ListKind::Deployments).0,
            "/data/attributes/limit"
        );
        assert_eq!(
            bad(json!({"sort": "service"}), ListKind::Deployments).0,
            "/data/attributes/sort"
        );
        assert_eq!(
            bad(json!({"from": "yesterday"}), ListKind::Deployments).0,
            "/data/attributes/from"
        );
        assert_eq!(
            bad(json!({"query": "service:(a OR"}), ListKind::Deployments).0,
            "/data/attributes/query"
        );
        // The type of the other list is not this list's type.
        assert_eq!(bad(json!({}), ListKind::Failures).0, "/data/type");
        assert_eq!(
            problem(list(
                &json!({"data": {"attributes": {}}}),
                ListKind::Deployments
            )),
            (
                "/data/type".to_string(),
                "type is required and must be \"dora_deployments_list_request\"".to_string()
            )
        );
    }

    #[test]
    fn patches_are_checked() {
        let doc = json!({"data": {"id": "aaaaaaaaaaaaaaaa", "type": "dora_deployment_patch_request",
            "attributes": {"change_failure": true, "remediation": {"id": "bbbbbbbbbbbbbbbb", "type": "rollback"}}}});
        let (selector, patch) = patch_by_id(&doc, "aaaaaaaaaaaaaaaa").unwrap();
        assert_eq!(selector, DeploymentSelector::Id("aaaaaaaaaaaaaaaa".into()));
        assert_eq!(patch.change_failure, Some(true));
        assert_eq!(problem(patch_by_id(&doc, "cccccccccccccccc")).0, "/data/id");
        let both = json!({"data": {"type": "dora_deployment_patch_request",
            "attributes": {"remediation": {"id": "x", "version": "y", "type": "rollback"}}}});
        assert_eq!(
            problem(patch_by_id(&both, "a")).0,
            "/data/attributes/remediation/id"
        );
        let bad_type = json!({"data": {"type": "dora_deployment_patch_request",
            "attributes": {"remediation": {"id": "x", "type": "revert"}}}});
        assert_eq!(
            problem(patch_by_id(&bad_type, "a")).0,
            "/data/attributes/remediation/type"
        );
        let empty = json!({"data": {"type": "dora_deployment_patch_request", "attributes": {}}});
        assert!(patch_by_id(&empty, "a").is_err());
        let by_version = json!({"data": {"type": "dora_deployment_patch_request",
            "attributes": {"service": "s", "env": "prod", "version": "v1", "change_failure": false}}});
        assert!(patch_by_version(&by_version).is_ok());
        let missing = json!({"data": {"type": "dora_deployment_patch_request",
            "attributes": {"service": "s", "env": "prod", "version": "v1"}}});
        assert_eq!(
            problem(patch_by_version(&missing)).0,
            "/data/attributes/change_failure"
        );
    }
}
