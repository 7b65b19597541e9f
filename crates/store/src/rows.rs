//! Rows to domain types, once for both drivers: each driver's row type implements [`Columns`].

use dora_core::model::{
    Commit, Deployment, Failure, Git, MergeRequest, Remediation, RemediationKind,
    RemediationTarget, Scope, StoredDeployment,
};

use dora_core::metrics::DeploymentFact;
use dora_core::tier::Tier;
use dora_core::webhook::{Alias, Delivery, Hook, Outcome, Provider};

use crate::{
    NumberedCommit, Restriction, StoreError, StoreResult, StreamHead, StreamKey, TokenRecord,
};

/// Typed access to the columns of a result row.
pub trait Columns {
    fn text(&self, index: usize) -> StoreResult<Option<String>>;
    fn int(&self, index: usize) -> StoreResult<Option<i64>>;
    fn boolean(&self, index: usize) -> StoreResult<Option<bool>>;
    fn bytes(&self, index: usize) -> StoreResult<Option<Vec<u8>>>;

    fn required_text(&self, index: usize) -> StoreResult<String> {
        self.text(index)?.ok_or_else(|| null_column(index))
    }

    fn required_int(&self, index: usize) -> StoreResult<i64> {
        self.int(index)?.ok_or_else(|| null_column(index))
    }
}

fn null_column(index: usize) -> StoreError {
    StoreError::Database(format!("unexpected NULL in column {index}"))
}

/// Reads [`crate::sql::DEPLOYMENTS`]`.columns`.
pub fn deployment(row: &impl Columns) -> StoreResult<StoredDeployment> {
    let remediation = match (row.text(13)?, row.text(14)?, row.text(15)?) {
        (Some(kind), id, version) => {
            let kind = RemediationKind::parse(&kind)
                .ok_or_else(|| StoreError::Database(format!("bad remediation type {kind:?}")))?;
            let target = match (id, version) {
                (Some(id), _) => Some(RemediationTarget::Id(id)),
                (None, Some(version)) => Some(RemediationTarget::Version(version)),
                (None, None) => None,
            };
            target.map(|target| Remediation { kind, target })
        }
        (None, _, _) => None,
    };
    Ok(StoredDeployment {
        deployment: Deployment {
            id: row.required_text(0)?,
            service: row.required_text(1)?,
            env: row.text(2)?,
            team: row.text(3)?,
            version: row.text(4)?,
            started_at: row.required_int(5)?,
            finished_at: row.required_int(6)?,
            git: git(row, 7)?,
            custom_tags: json_list(row, 10)?,
            source: row.required_text(11)?,
        },
        change_failure: row.boolean(12)?,
        remediation,
    })
}

/// Reads [`crate::sql::FAILURES`]`.columns`.
pub fn failure(row: &impl Columns) -> StoreResult<Failure> {
    Ok(Failure {
        id: row.required_text(0)?,
        name: row.text(1)?,
        services: json_list(row, 2)?,
        team: row.text(3)?,
        env: row.text(4)?,
        severity: row.text(5)?,
        started_at: row.required_int(6)?,
        finished_at: row.int(7)?,
        version: row.text(8)?,
        git: git(row, 9)?,
        custom_tags: json_list(row, 12)?,
        source: row.required_text(13)?,
    })
}

/// Reads the columns of [`crate::sql::commits_of`].
pub fn commit(row: &impl Columns) -> StoreResult<Commit> {
    let merge_request = row.int(7)?.map(|number| -> StoreResult<MergeRequest> {
        Ok(MergeRequest {
            number,
            created_at: row.int(8)?,
            merged_at: row.int(9)?,
        })
    });
    Ok(Commit {
        repository_id: row.required_text(0)?,
        sha: row.required_text(1)?,
        parents: row
            .required_text(2)?
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        authored_at: row.required_int(3)?,
        committed_at: row.required_int(4)?,
        author: row.text(5)?,
        subject: row.text(6)?,
        merge_request: merge_request.transpose()?,
    })
}

/// Reads the token columns of [`crate::sql::find_token`].
pub fn token(row: &impl Columns) -> StoreResult<TokenRecord> {
    // An unreadable restriction is an error, never dropped: dropping it would widen the token.
    let restrictions = json_list(row, 4)?
        .iter()
        .map(|text| {
            Restriction::parse(text)
                .ok_or_else(|| StoreError::Database(format!("bad token restriction {text:?}")))
        })
        .collect::<StoreResult<_>>()?;
    Ok(TokenRecord {
        id: row.required_text(0)?,
        name: row.required_text(1)?,
        hash: row.required_text(2)?,
        scopes: row
            .required_text(3)?
            .split_whitespace()
            .filter_map(Scope::parse)
            .collect(),
        restrictions,
        created_at: row.required_int(5)?,
        expires_at: row.int(6)?,
        last_used_at: row.int(7)?,
        revoked_at: row.int(8)?,
    })
}

/// Three columns from `first`: repository_url, repository_id, commit_sha.
fn git(row: &impl Columns, first: usize) -> StoreResult<Option<Git>> {
    Ok(
        match (row.text(first)?, row.text(first + 1)?, row.text(first + 2)?) {
            (Some(repository_url), Some(repository_id), Some(commit_sha)) => Some(Git {
                repository_url,
                repository_id,
                commit_sha,
            }),
            _ => None,
        },
    )
}

/// How lists (tags, services) are kept in one column.
pub fn to_json_list(items: &[String]) -> String {
    serde_json::Value::from(items.to_vec()).to_string()
}

fn json_list(row: &impl Columns, index: usize) -> StoreResult<Vec<String>> {
    json_list_text(&row.required_text(index)?)
}

/// A JSON list of strings as stored (custom tags, a failure's services).
pub fn json_list_text(text: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Database(format!("not a JSON list of strings: {e}")))
}

/// Reads `env, tier` of the env_tiers table.
pub fn env_tier(row: &impl Columns) -> StoreResult<(String, dora_core::tier::Tier)> {
    let tier = row.required_text(1)?;
    let tier = dora_core::tier::Tier::parse(&tier)
        .ok_or_else(|| StoreError::Database(format!("unknown tier {tier:?} in env_tiers")))?;
    Ok((row.required_text(0)?, tier))
}

/// Durations as the fact tables keep them: little-endian `i64`s, 8 bytes each.
pub fn encode_nanos(values: &[i64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn decode_nanos(bytes: &[u8]) -> StoreResult<Vec<i64>> {
    if !bytes.len().is_multiple_of(8) {
        return Err(StoreError::Database(format!(
            "a duration list of {} bytes is not a whole number of i64s",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|chunk| {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            i64::from_le_bytes(word)
        })
        .collect())
}

/// Reads [`crate::sql::FACT_COLUMNS`].
pub fn deployment_fact(row: &impl Columns) -> StoreResult<DeploymentFact> {
    let tier = row.required_text(5)?;
    let env = row.required_text(4)?;
    Ok(DeploymentFact {
        id: row.required_text(0)?,
        finished_at: row.required_int(1)?,
        service: row.required_text(2)?,
        team: row.text(3)?,
        env: (!env.is_empty()).then_some(env),
        tier: Tier::parse(&tier)
            .ok_or_else(|| StoreError::Database(format!("bad tier {tier:?}")))?,
        project: row.required_text(6)?,
        failed: row.boolean(7)?.unwrap_or(false),
        rework: row.boolean(8)?.unwrap_or(false),
        recovery_time: row.int(9)?,
        lead_times: decode_nanos(&row.bytes(10)?.unwrap_or_default())?,
        merge_lead_times: decode_nanos(&row.bytes(11)?.unwrap_or_default())?,
    })
}

/// `(service, env)` columns as a stream.
pub fn stream_key(row: &impl Columns, first: usize) -> StoreResult<StreamKey> {
    Ok(StreamKey::from_columns(
        row.required_text(first)?,
        row.required_text(first + 1)?,
    ))
}

/// Reads [`crate::sql::FACT_STREAM_COLUMNS`].
pub fn stream_and_team(row: &impl Columns) -> StoreResult<(StreamKey, Option<String>)> {
    Ok((stream_key(row, 0)?, row.text(2)?))
}

/// Reads the columns of [`crate::sql::commits_of`]: the commit, then its ordinal.
pub fn numbered_commit(row: &impl Columns) -> StoreResult<NumberedCommit> {
    let ordinal = row.required_int(10)?;
    let ordinal = u32::try_from(ordinal)
        .map_err(|_| StoreError::Database(format!("commit ordinal {ordinal} out of range")))?;
    Ok((commit(row)?, ordinal))
}

/// Reads [`crate::sql::DIRTY_STREAMS`].
pub fn dirty_stream(row: &impl Columns) -> StoreResult<crate::DirtyStream> {
    Ok(crate::DirtyStream {
        stream: stream_key(row, 0)?,
        seq: row.required_int(2)?,
        history: row.required_int(3)? != 0,
        marks: row.required_int(4)?,
        only_failures: row.required_int(5)? != 0,
    })
}

/// Reads [`crate::sql::STREAM_HEAD`].
pub fn stream_head(row: &impl Columns) -> StoreResult<StreamHead> {
    Ok(StreamHead {
        last_id: row.required_text(0)?,
        last_finished_at: row.required_int(1)?,
        repository_id: row.text(2)?,
        shipped: row.bytes(3)?.unwrap_or_default(),
    })
}

/// Reads the columns of [`crate::sql::list_hooks`].
pub fn hook(row: &impl Columns) -> StoreResult<Hook> {
    Ok(Hook {
        name: row.required_text(0)?,
        provider: provider(&row.required_text(1)?)?,
        secret: row.required_text(2)?,
        deploy_workflow: row.text(3)?,
        deploy_env: row.text(4)?,
        incident_label: row.text(5)?,
        created_at: row.required_int(6)?,
    })
}

fn provider(text: &str) -> StoreResult<Provider> {
    Provider::parse(text).ok_or_else(|| StoreError::Database(format!("bad provider {text:?}")))
}

/// Reads the columns of [`crate::sql::deliveries_before`].
pub fn delivery(row: &impl Columns) -> StoreResult<crate::KeptDelivery> {
    let outcome = row.required_text(6)?;
    Ok(crate::KeptDelivery {
        seq: row.required_int(0)?,
        delivery: Delivery {
            provider: provider(&row.required_text(1)?)?,
            delivery_id: row.text(2)?,
            hook: row.text(3)?,
            event: row.required_text(4)?,
            received_at: row.required_int(5)?,
            outcome: Outcome::parse(&outcome)
                .ok_or_else(|| StoreError::Database(format!("bad outcome {outcome:?}")))?,
            detail: row.required_text(7)?,
        },
    })
}

/// Reads the columns of [`crate::sql::LIST_ALIASES`].
pub fn alias(row: &impl Columns) -> StoreResult<Alias> {
    Ok(Alias {
        provider: provider(&row.required_text(0)?)?,
        name: row.required_text(1)?,
        service: row.required_text(2)?,
    })
}

#[cfg(test)]
mod nanos_tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        let values = [0, -1, 1, i64::MAX, i64::MIN, 86_400_000_000_000];
        assert_eq!(decode_nanos(&encode_nanos(&values)).unwrap(), values);
        assert!(decode_nanos(&[1, 2, 3]).is_err());
    }
}
