//! The single writer: takes every queued write, applies them in one transaction (each inside a
//! savepoint, so one bad write cannot undo the others) and answers only after the commit — so
//! every acknowledged write is on disk.

use dora_core::model::{
    deployment_attributes, failure_attributes, Commit, Deployment, DeploymentPatch,
    DeploymentSelector, Failure,
};
use dora_core::query::numeric_value;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use crate::rows::to_json_list;
use crate::sql::{self, EventTable};
use crate::{StoreError, StoreResult, TokenRecord};

/// At most this many writes share one commit.
const MAX_BATCH: usize = 1024;

pub enum WriteOp {
    PutDeployment(Deployment),
    PutFailure(Failure),
    Patch(DeploymentSelector, DeploymentPatch),
    DeleteDeployment(String),
    DeleteFailure(String),
    CreateToken {
        token: TokenRecord,
        /// Only when the table is empty (the first admin token).
        only_first: bool,
    },
    PutCommits(Vec<Commit>),
    SetEnvTier(String, Option<dora_core::tier::Tier>),
}

pub struct WriteJob {
    pub op: WriteOp,
    /// How many rows the write applied to: 0 when its target did not exist.
    pub reply: oneshot::Sender<StoreResult<u64>>,
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

fn try_commit(conn: &mut Connection, batch: &[WriteJob]) -> StoreResult<Vec<StoreResult<u64>>> {
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

fn commit(conn: &mut Connection, batch: &[WriteJob]) -> Vec<StoreResult<u64>> {
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

fn apply(tx: &Connection, op: &WriteOp) -> StoreResult<u64> {
    match op {
        WriteOp::PutDeployment(d) => put_deployment(tx, d).map(|()| 1),
        WriteOp::PutFailure(f) => put_failure(tx, f).map(|()| 1),
        WriteOp::PutCommits(commits) => put_commits(tx, commits),
        WriteOp::SetEnvTier(env, Some(tier)) => Ok(tx
            .prepare_cached(sql::SET_ENV_TIER)?
            .execute(params![env, tier.as_str()])?
            as u64),
        WriteOp::SetEnvTier(env, None) => {
            Ok(tx.prepare_cached(sql::DELETE_ENV_TIER)?.execute([env])? as u64)
        }
        WriteOp::Patch(selector, patch) => patch_deployment(tx, selector, patch),
        WriteOp::DeleteDeployment(id) => delete(tx, &sql::DEPLOYMENTS, id),
        WriteOp::DeleteFailure(id) => delete(tx, &sql::FAILURES, id),
        WriteOp::CreateToken { token, only_first } => {
            let sql = if *only_first {
                sql::INSERT_FIRST_TOKEN
            } else {
                sql::INSERT_TOKEN
            };
            let inserted = tx.prepare_cached(sql)?.execute(params![
                token.name,
                token.hash,
                token.scopes_text(),
                dora_core::time::now(),
                token.restrictions_text()
            ])?;
            Ok(inserted as u64)
        }
    }
}

fn put_commits(tx: &Connection, commits: &[Commit]) -> StoreResult<u64> {
    let mut insert = tx.prepare_cached(sql::INSERT_COMMIT)?;
    let mut update = tx.prepare_cached(sql::SET_COMMIT_MERGE_REQUEST)?;
    let mut new = 0;
    for c in commits {
        let mr = c.merge_request.as_ref();
        let (number, created, merged) = (
            mr.map(|m| m.number),
            mr.and_then(|m| m.created_at),
            mr.and_then(|m| m.merged_at),
        );
        let inserted = insert.execute(params![
            c.repository_id,
            c.sha,
            c.parents.join(" "),
            c.authored_at,
            c.committed_at,
            c.author,
            c.subject,
            number,
            created,
            merged
        ])?;
        if inserted > 0 {
            new += 1;
        } else if mr.is_some() {
            update.execute(params![c.repository_id, c.sha, number, created, merged])?;
        }
    }
    Ok(new)
}

fn put_deployment(tx: &Connection, d: &Deployment) -> StoreResult<()> {
    let git = d.git.as_ref();
    let pk: i64 = tx.prepare_cached(sql::PUT_DEPLOYMENT)?.query_row(
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
    put_attrs(tx, &sql::DEPLOYMENTS, pk, &deployment_attributes(d))
}

fn put_failure(tx: &Connection, f: &Failure) -> StoreResult<()> {
    let git = f.git.as_ref();
    let pk: i64 = tx.prepare_cached(sql::PUT_FAILURE)?.query_row(
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
    put_attrs(tx, &sql::FAILURES, pk, &failure_attributes(f))
}

/// Replaces the searchable attributes of one event.
fn put_attrs(
    tx: &Connection,
    table: &EventTable,
    owner: i64,
    attrs: &[(String, String)],
) -> StoreResult<()> {
    tx.prepare_cached(&sql::delete_attrs(table))?
        .execute([owner])?;
    let mut insert = tx.prepare_cached(&sql::insert_attr(table))?;
    for (key, value) in attrs {
        insert.execute(params![owner, key, value, numeric_value(value)])?;
    }
    Ok(())
}

fn patch_deployment(
    tx: &Connection,
    selector: &DeploymentSelector,
    patch: &DeploymentPatch,
) -> StoreResult<u64> {
    let pk: Option<i64> = match selector {
        DeploymentSelector::Id(id) => tx
            .prepare_cached(sql::DEPLOYMENT_PK_BY_ID)?
            .query_row([id], |row| row.get(0))
            .optional()?,
        DeploymentSelector::Version {
            service,
            env,
            version,
        } => tx
            .prepare_cached(sql::DEPLOYMENT_PK_BY_VERSION)?
            .query_row([service, env, version], |row| row.get(0))
            .optional()?,
    };
    let Some(pk) = pk else { return Ok(0) };
    if let Some(change_failure) = patch.change_failure {
        tx.prepare_cached(sql::SET_CHANGE_FAILURE)?
            .execute(params![change_failure, pk])?;
    }
    if let Some(remediation) = &patch.remediation {
        let (id, version) = remediation.target.id_and_version();
        tx.prepare_cached(sql::SET_REMEDIATION)?.execute(params![
            remediation.kind.as_str(),
            id,
            version,
            pk
        ])?;
    }
    Ok(1)
}

fn delete(tx: &Connection, table: &EventTable, id: &str) -> StoreResult<u64> {
    let pk: Option<i64> = tx
        .prepare_cached(&sql::delete_event(table))?
        .query_row([id], |row| row.get(0))
        .optional()?;
    let Some(pk) = pk else { return Ok(0) };
    tx.prepare_cached(&sql::delete_attrs(table))?
        .execute([pk])?;
    Ok(1)
}
