//! The single writer: takes every queued write, applies them in one transaction (each inside a
//! savepoint, so one bad write cannot undo the others) and answers only after the commit — so
//! every acknowledged write is on disk.

use dora_core::model::{
    Deployment, DeploymentPatch, DeploymentSelector, Failure, RemediationTarget,
};
use dora_core::query::numeric_value;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::rows::to_json_list;
use crate::{StoreError, StoreResult, TokenRecord};

/// At most this many writes share one commit.
const MAX_BATCH: usize = 1024;

pub enum WriteOp {
    PutDeployment(Deployment),
    PutFailure(Failure),
    Patch(DeploymentSelector, DeploymentPatch),
    DeleteDeployment(String),
    DeleteFailure(String),
    CreateToken(TokenRecord),
}

pub struct WriteJob {
    pub op: WriteOp,
    /// `Ok(true)` when applied, `Ok(false)` when its target did not exist.
    pub reply: oneshot::Sender<StoreResult<bool>>,
}

pub fn run(mut conn: Connection, mut queue: mpsc::Receiver<WriteJob>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let results = commit(&mut conn, &batch);
        for (job, result) in batch.drain(..).zip(results) {
            // The requester may have gone away; its write is committed all the same.
            let _ = job.reply.send(result);
        }
    }
}

fn try_commit(conn: &mut Connection, batch: &[WriteJob]) -> StoreResult<Vec<StoreResult<bool>>> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        let savepoint = tx.savepoint()?;
        let result = apply(&savepoint, &job.op);
        if result.is_ok() {
            savepoint.commit()?;
        } // else: dropping the savepoint rolls it back
        results.push(result);
    }
    tx.commit()?;
    Ok(results)
}

fn commit(conn: &mut Connection, batch: &[WriteJob]) -> Vec<StoreResult<bool>> {
    match try_commit(conn, batch) {
        Ok(results) => results,
        Err(error) => {
            tracing::error!(%error, writes = batch.len(), "commit failed");
            let message = error.to_string();
            batch
                .iter()
                .map(|_| Err(StoreError::Database(message.clone())))
                .collect()
        }
    }
}

fn apply(tx: &Connection, op: &WriteOp) -> StoreResult<bool> {
    match op {
        WriteOp::PutDeployment(d) => put_deployment(tx, d).map(|()| true),
        WriteOp::PutFailure(f) => put_failure(tx, f).map(|()| true),
        WriteOp::Patch(selector, patch) => patch_deployment(tx, selector, patch),
        WriteOp::DeleteDeployment(id) => delete(tx, "deployments", "deployment_attrs", id),
        WriteOp::DeleteFailure(id) => delete(tx, "failures", "failure_attrs", id),
        WriteOp::CreateToken(token) => {
            let scopes: Vec<&str> = token.scopes.iter().map(|s| s.as_str()).collect();
            tx.prepare_cached(
                "INSERT INTO tokens (name, hash, scopes, created_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                token.name,
                token.hash,
                scopes.join(" "),
                dora_core::time::now()
            ])?;
            Ok(true)
        }
    }
}

fn put_deployment(tx: &Connection, d: &Deployment) -> StoreResult<()> {
    let git = d.git.as_ref();
    let pk: i64 = tx
        .prepare_cached(
            "INSERT INTO deployments (id, service, env, team, version, started_at, finished_at, \
                 repository_url, repository_id, commit_sha, custom_tags, source, received_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
             ON CONFLICT (id) DO UPDATE SET service = excluded.service, env = excluded.env, \
                 team = excluded.team, version = excluded.version, \
                 started_at = excluded.started_at, finished_at = excluded.finished_at, \
                 repository_url = excluded.repository_url, repository_id = excluded.repository_id, \
                 commit_sha = excluded.commit_sha, custom_tags = excluded.custom_tags, \
                 source = excluded.source, received_at = excluded.received_at \
             RETURNING pk",
        )?
        .query_row(
            params![
                d.id,
                d.service,
                d.env,
                d.team,
                d.version,
                d.started_at,
                d.finished_at,
                git.map(|g| &g.repository_url),
                git.map(|g| &g.repository_id),
                git.map(|g| &g.commit_sha),
                to_json_list(&d.custom_tags),
                d.source,
                dora_core::time::now(),
            ],
            |row| row.get(0),
        )?;
    put_attrs(
        tx,
        "deployment_attrs",
        pk,
        &dora_core::model::deployment_attributes(d),
    )
}

fn put_failure(tx: &Connection, f: &Failure) -> StoreResult<()> {
    let git = f.git.as_ref();
    let pk: i64 = tx
        .prepare_cached(
            "INSERT INTO failures (id, name, services, team, env, severity, started_at, \
                 finished_at, version, repository_url, repository_id, commit_sha, custom_tags, \
                 source, received_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, services = excluded.services, \
                 team = excluded.team, env = excluded.env, severity = excluded.severity, \
                 started_at = excluded.started_at, finished_at = excluded.finished_at, \
                 version = excluded.version, repository_url = excluded.repository_url, \
                 repository_id = excluded.repository_id, commit_sha = excluded.commit_sha, \
                 custom_tags = excluded.custom_tags, source = excluded.source, \
                 received_at = excluded.received_at \
             RETURNING pk",
        )?
        .query_row(
            params![
                f.id,
                f.name,
                to_json_list(&f.services),
                f.team,
                f.env,
                f.severity,
                f.started_at,
                f.finished_at,
                f.version,
                git.map(|g| &g.repository_url),
                git.map(|g| &g.repository_id),
                git.map(|g| &g.commit_sha),
                to_json_list(&f.custom_tags),
                f.source,
                dora_core::time::now(),
            ],
            |row| row.get(0),
        )?;
    put_attrs(
        tx,
        "failure_attrs",
        pk,
        &dora_core::model::failure_attributes(f),
    )
}

/// Replaces the searchable attributes of one event.
fn put_attrs(
    tx: &Connection,
    table: &str,
    owner: i64,
    attrs: &[(String, String)],
) -> StoreResult<()> {
    tx.prepare_cached(&format!("DELETE FROM {table} WHERE owner_pk = ?1"))?
        .execute([owner])?;
    let mut insert = tx.prepare_cached(&format!(
        "INSERT INTO {table} (owner_pk, key, value, num) VALUES (?1, ?2, ?3, ?4)"
    ))?;
    for (key, value) in attrs {
        insert.execute(params![owner, key, value, numeric_value(value)])?;
    }
    Ok(())
}

fn patch_deployment(
    tx: &Connection,
    selector: &DeploymentSelector,
    patch: &DeploymentPatch,
) -> StoreResult<bool> {
    let pk: Option<i64> = match selector {
        DeploymentSelector::Id(id) => tx
            .prepare_cached("SELECT pk FROM deployments WHERE id = ?1")?
            .query_row([id], |row| row.get(0))
            .optional()?,
        DeploymentSelector::Version {
            service,
            env,
            version,
        } => tx
            .prepare_cached(
                "SELECT pk FROM deployments WHERE service = ?1 AND env = ?2 AND version = ?3 \
                 ORDER BY finished_at DESC, pk DESC LIMIT 1",
            )?
            .query_row([service, env, version], |row| row.get(0))
            .optional()?,
    };
    let Some(pk) = pk else { return Ok(false) };
    if let Some(change_failure) = patch.change_failure {
        tx.prepare_cached("UPDATE deployments SET change_failure = ?1 WHERE pk = ?2")?
            .execute(params![change_failure, pk])?;
    }
    if let Some(remediation) = &patch.remediation {
        let (id, version) = match &remediation.target {
            RemediationTarget::Id(id) => (Some(id), None),
            RemediationTarget::Version(version) => (None, Some(version)),
        };
        tx.prepare_cached(
            "UPDATE deployments SET remediation_type = ?1, remediation_id = ?2, \
             remediation_version = ?3 WHERE pk = ?4",
        )?
        .execute(params![remediation.kind.as_str(), id, version, pk])?;
    }
    Ok(true)
}

fn delete(tx: &Connection, table: &str, attrs_table: &str, id: &str) -> StoreResult<bool> {
    let pk: Option<i64> = tx
        .prepare_cached(&format!("DELETE FROM {table} WHERE id = ?1 RETURNING pk"))?
        .query_row([id], |row| row.get(0))
        .optional()?;
    let Some(pk) = pk else { return Ok(false) };
    tx.prepare_cached(&format!("DELETE FROM {attrs_table} WHERE owner_pk = ?1"))?
        .execute([pk])?;
    Ok(true)
}
