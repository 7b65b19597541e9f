//! Rows to domain types, in one place for every query that reads them.

use dora_core::model::{
    Deployment, Failure, Git, Remediation, RemediationKind, RemediationTarget, Scope,
    StoredDeployment,
};
use rusqlite::Row;

use crate::TokenRecord;

pub const DEPLOYMENT_COLUMNS: &str = "e.id, e.service, e.env, e.team, e.version, e.started_at, \
    e.finished_at, e.repository_url, e.repository_id, e.commit_sha, e.custom_tags, e.source, \
    e.change_failure, e.remediation_type, e.remediation_id, e.remediation_version";

pub const FAILURE_COLUMNS: &str = "e.id, e.name, e.services, e.team, e.env, e.severity, \
    e.started_at, e.finished_at, e.version, e.repository_url, e.repository_id, e.commit_sha, \
    e.custom_tags, e.source";

pub fn deployment(row: &Row<'_>) -> rusqlite::Result<StoredDeployment> {
    let remediation_kind: Option<String> = row.get(13)?;
    let remediation_id: Option<String> = row.get(14)?;
    let remediation_version: Option<String> = row.get(15)?;
    let remediation = remediation_kind
        .as_deref()
        .and_then(RemediationKind::parse)
        .and_then(|kind| {
            let target = match (remediation_id, remediation_version) {
                (Some(id), _) => RemediationTarget::Id(id),
                (None, Some(version)) => RemediationTarget::Version(version),
                (None, None) => return None,
            };
            Some(Remediation { kind, target })
        });
    Ok(StoredDeployment {
        deployment: Deployment {
            id: row.get(0)?,
            service: row.get(1)?,
            env: row.get(2)?,
            team: row.get(3)?,
            version: row.get(4)?,
            started_at: row.get(5)?,
            finished_at: row.get(6)?,
            git: git(row, 7)?,
            custom_tags: json_list(row, 10)?,
            source: row.get(11)?,
        },
        change_failure: row.get(12)?,
        remediation,
    })
}

pub fn failure(row: &Row<'_>) -> rusqlite::Result<Failure> {
    Ok(Failure {
        id: row.get(0)?,
        name: row.get(1)?,
        services: json_list(row, 2)?,
        team: row.get(3)?,
        env: row.get(4)?,
        severity: row.get(5)?,
        started_at: row.get(6)?,
        finished_at: row.get(7)?,
        version: row.get(8)?,
        git: git(row, 9)?,
        custom_tags: json_list(row, 12)?,
        source: row.get(13)?,
    })
}

pub fn token(row: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    let scopes: String = row.get(2)?;
    Ok(TokenRecord {
        name: row.get(0)?,
        hash: row.get(1)?,
        scopes: scopes.split_whitespace().filter_map(Scope::parse).collect(),
    })
}

/// Three columns from `first`: repository_url, repository_id, commit_sha.
fn git(row: &Row<'_>, first: usize) -> rusqlite::Result<Option<Git>> {
    let url: Option<String> = row.get(first)?;
    let id: Option<String> = row.get(first + 1)?;
    let sha: Option<String> = row.get(first + 2)?;
    Ok(match (url, id, sha) {
        (Some(repository_url), Some(repository_id), Some(commit_sha)) => Some(Git {
            repository_url,
            repository_id,
            commit_sha,
        }),
        _ => None,
    })
}

pub fn to_json_list(items: &[String]) -> String {
    serde_json::Value::from(items.to_vec()).to_string()
}

fn json_list(row: &Row<'_>, index: usize) -> rusqlite::Result<Vec<String>> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(e))
    })
}
