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

use dora_core::derive::{FailureScope, Named};
use dora_core::metrics::DeploymentFact;
use dora_core::rollup;

use super::rows::query_all;
use crate::rows::Columns;
use crate::tallies;

use super::FileIdentity;
use crate::rows::{encode_nanos, json_list_text, to_json_list};
use crate::sql::{self, EventTable};
use crate::{DirtyStream, StoreError, StoreResult, StreamKey, TokenRecord};

/// At most this many writes share one commit.
const MAX_BATCH: usize = 1024;

pub enum WriteOp {
    PutDeployment(Deployment),
    PutDeployments(Vec<Deployment>),
    PutFailure(Failure),
    Patch(DeploymentSelector, DeploymentPatch),
    DeleteDeployment(String),
    DeleteFailure(String),
    CreateToken {
        token: TokenRecord,
        /// Only when the table is empty (the first admin token).
        only_first: bool,
    },
    RevokeToken {
        id: String,
        at: i64,
    },
    TouchToken {
        id: String,
        at: i64,
    },
    PutCommits(Vec<Commit>),
    SetEnvTier(String, Option<dora_core::tier::Tier>),
    MarkDirty(Vec<StreamKey>),
    ReplaceFacts(DirtyStream, Vec<DeploymentFact>),
    /// Tallies again up to this many stale days.
    TallyDays(usize),
    SettleFactSetting(String, i64),
}

pub struct WriteJob {
    pub op: WriteOp,
    /// How many rows the write applied to: 0 when its target did not exist.
    pub reply: oneshot::Sender<StoreResult<u64>>,
}

pub fn run(
    mut conn: Connection,
    mut queue: mpsc::Receiver<WriteJob>,
    file: &FileIdentity,
    batches: &crate::BatchCounter,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // A file deleted or replaced under the server would take every write with it.
        let results = match file.check() {
            Ok(()) => commit(&mut conn, &batch),
            Err(error) => {
                tracing::error!(%error, "the database file is not the one opened; refusing writes");
                batch.iter().map(|_| Err(replaced(&error))).collect()
            }
        };
        batches.record(batch.len());
        for (job, result) in batch.drain(..).zip(results) {
            // The requester may have gone away; its write is committed all the same.
            let _ = job.reply.send(result);
        }
    }
}

fn replaced(error: &StoreError) -> StoreError {
    StoreError::unavailable(crate::Outage::FileReplaced, error.to_string())
}

/// Commits a batch in one transaction, answering each write. Writes seldom fail (requests
/// are validated before they queue), so the batch is first applied as it is; only when a
/// write fails is it applied again with each write in a savepoint, so that a failing write is
/// undone alone. (A savepoint journals every page its write changes: a fifth of the writer's
/// time on bulk loads.)
fn commit(conn: &mut Connection, batch: &[WriteJob]) -> Vec<StoreResult<u64>> {
    let committed = match commit_together(conn, batch) {
        Ok(Some(applied)) => Ok(applied.into_iter().map(Ok).collect()),
        Ok(None) => commit_isolated(conn, batch),
        Err(error) => Err(error),
    };
    committed.unwrap_or_else(|error| {
        tracing::error!(%error, writes = batch.len(), "commit failed");
        let message = error.to_string();
        batch
            .iter()
            .map(|_| Err(StoreError::Database(message.clone())))
            .collect()
    })
}

/// The whole batch or nothing: `None` (nothing written) when a write fails.
fn commit_together(conn: &mut Connection, batch: &[WriteJob]) -> StoreResult<Option<Vec<u64>>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut applied = Vec::with_capacity(batch.len());
    for job in batch {
        match apply(&tx, &job.op) {
            Ok(rows) => applied.push(rows),
            Err(_) => return Ok(None), // dropping the transaction rolls it back
        }
    }
    tx.commit()?;
    Ok(Some(applied))
}

/// Each write in its own savepoint: a failing one is undone alone.
fn commit_isolated(
    conn: &mut Connection,
    batch: &[WriteJob],
) -> StoreResult<Vec<StoreResult<u64>>> {
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

fn apply(tx: &Connection, op: &WriteOp) -> StoreResult<u64> {
    match op {
        WriteOp::PutDeployment(d) => put_deployment(tx, d).map(|()| 1),
        WriteOp::PutDeployments(deployments) => {
            for d in deployments {
                put_deployment(tx, d)?;
            }
            Ok(deployments.len() as u64)
        }
        WriteOp::PutFailure(f) => put_failure(tx, f).map(|()| 1),
        WriteOp::PutCommits(commits) => put_commits(tx, commits),
        WriteOp::SetEnvTier(env, tier) => {
            let changed = match tier {
                Some(tier) => tx
                    .prepare_cached(sql::SET_ENV_TIER)?
                    .execute(params![env, tier.as_str()])?,
                None => tx.prepare_cached(sql::DELETE_ENV_TIER)?.execute([env])?,
            };
            tx.prepare_cached(&sql::mark_streams_of_env())?
                .execute([env])?;
            Ok(changed as u64)
        }
        WriteOp::Patch(selector, patch) => patch_deployment(tx, selector, patch),
        WriteOp::DeleteDeployment(id) => {
            mark_stream_of_deployment(tx, id)?;
            delete(tx, &sql::DEPLOYMENTS, id)
        }
        WriteOp::DeleteFailure(id) => {
            mark_streams_of_failure(tx, id)?;
            delete(tx, &sql::FAILURES, id)
        }
        WriteOp::MarkDirty(streams) => {
            let mut mark = tx.prepare_cached(sql::MARK_STREAM)?;
            for stream in streams {
                mark.execute(params![stream.service, stream.env])?;
            }
            Ok(streams.len() as u64)
        }
        WriteOp::ReplaceFacts(dirty, facts) => replace_facts(tx, dirty, facts),
        WriteOp::TallyDays(limit) => tally_days(tx, *limit),
        WriteOp::SettleFactSetting(name, value) => {
            let stored: Option<i64> = tx
                .prepare_cached(sql::FACT_SETTING)?
                .query_row([name], |row| row.get(0))
                .optional()?;
            if stored == Some(*value) {
                return Ok(0);
            }
            tx.prepare_cached(sql::SET_FACT_SETTING)?
                .execute(params![name, value])?;
            tx.prepare_cached(&sql::mark_all_streams())?.execute([])?;
            Ok(1)
        }
        WriteOp::CreateToken { token, only_first } => {
            let sql = if *only_first {
                sql::INSERT_FIRST_TOKEN
            } else {
                sql::INSERT_TOKEN
            };
            let inserted = tx.prepare_cached(sql)?.execute(params![
                token.id,
                token.name,
                token.hash,
                token.scopes_text(),
                token.created_at,
                token.restrictions_text(),
                token.expires_at,
            ])?;
            Ok(inserted as u64)
        }
        WriteOp::RevokeToken { id, at } => Ok(tx
            .prepare_cached(sql::REVOKE_TOKEN)?
            .execute(params![id, at])? as u64),
        WriteOp::TouchToken { id, at } => Ok(tx
            .prepare_cached(sql::TOUCH_TOKEN)?
            .execute(params![id, at, at - crate::TOKEN_USE_GRAIN])?
            as u64),
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
    let mut mark = tx.prepare_cached(&sql::mark_streams_of_repository())?;
    for repository in sql::distinct_repositories(commits) {
        mark.execute([repository])?;
    }
    Ok(new)
}

fn put_deployment(tx: &Connection, d: &Deployment) -> StoreResult<()> {
    // A replacement may move the deployment to another stream: both change.
    mark_stream_of_deployment(tx, &d.id)?;
    tx.prepare_cached(sql::MARK_STREAM)?
        .execute(params![d.service, d.env])?;
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
    tx.prepare_cached(sql::PUT_PROJECT_SOURCE)?
        .execute(params![git.map(|g| &g.repository_id), d.service])?;
    put_attrs(tx, &sql::DEPLOYMENTS, pk, &deployment_attributes(d))
}

fn put_failure(tx: &Connection, f: &Failure) -> StoreResult<()> {
    // What the failure concerned before a replacement, and what it concerns now.
    mark_streams_of_failure(tx, &f.id)?;
    mark_failure_scope(tx, FailureScope::of(f))?;
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
    let stream: (String, Option<String>) = tx
        .prepare_cached(sql::DEPLOYMENT_STREAM_BY_PK)?
        .query_row([pk], |row| Ok((row.get(0)?, row.get(1)?)))?;
    tx.prepare_cached(sql::MARK_STREAM)?
        .execute(params![stream.0, stream.1])?;
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

/// Marks the stream a stored deployment is in, if it exists.
fn mark_stream_of_deployment(tx: &Connection, id: &str) -> StoreResult<()> {
    let stream: Option<(String, Option<String>)> = tx
        .prepare_cached(sql::DEPLOYMENT_STREAM_BY_ID)?
        .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    if let Some((service, env)) = stream {
        tx.prepare_cached(sql::MARK_STREAM)?
            .execute(params![service, env])?;
    }
    Ok(())
}

/// Marks the streams a stored failure concerns, if it exists.
fn mark_streams_of_failure(tx: &Connection, id: &str) -> StoreResult<()> {
    let scope: Option<(String, Option<String>, Option<String>)> = tx
        .prepare_cached(sql::FAILURE_SCOPE_BY_ID)?
        .query_row([id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()?;
    if let Some((services, team, env)) = scope {
        let services = json_list_text(&services)?;
        mark_failure_scope(
            tx,
            FailureScope::new(&services, team.as_deref(), env.as_deref()),
        )?;
    }
    Ok(())
}

/// Marks the streams a failure with this scope concerns.
fn mark_failure_scope(tx: &Connection, scope: FailureScope<'_>) -> StoreResult<()> {
    let env = scope.env;
    match scope.named {
        Named::Services(services) => {
            let mut mark = tx.prepare_cached(&sql::mark_streams_of_service())?;
            for service in sql::sorted_unique(services.iter().map(String::as_str)) {
                mark.execute(params![service, env])?;
            }
        }
        Named::Team(team) => {
            tx.prepare_cached(&sql::mark_streams_of_team())?
                .execute(params![team, env])?;
        }
        Named::Nobody => {}
    }
    Ok(())
}

/// Replaces a stream's facts if no write has staled it since `dirty` was read and no other
/// re-derivation stored a newer answer: 1 if replaced.
fn replace_facts(
    tx: &Connection,
    dirty: &DirtyStream,
    facts: &[DeploymentFact],
) -> StoreResult<u64> {
    let (service, env) = (&dirty.stream.service, dirty.stream.env_text());
    let marked_since: bool = tx
        .prepare_cached(sql::MARKED_SINCE)?
        .query_row(params![service, env, dirty.seq], |row| row.get(0))?;
    if marked_since {
        return Ok(0);
    }
    let claimed = tx
        .prepare_cached(sql::CLAIM_STREAM)?
        .execute(params![service, env, dirty.seq])?;
    if claimed == 0 {
        return Ok(0);
    }
    let stored = query_all(tx, &sql::stream_facts(), params![service, env], |row| {
        crate::rows::deployment_fact(row)
    })?;
    let changes = tallies::fact_changes(stored, facts);
    let mut delete = tx.prepare_cached(tallies::DELETE_FACT)?;
    for id in &changes.delete {
        delete.execute(params![id, service, env])?;
    }
    let mut put = tx.prepare_cached(sql::PUT_FACT)?;
    for f in changes.put {
        put.execute(params![
            f.id,
            f.finished_at,
            f.service,
            f.team,
            f.env.as_deref().unwrap_or(""),
            f.tier.as_str(),
            f.project,
            f.failed,
            f.rework,
            f.recovery_time,
            encode_nanos(&f.lead_times),
            encode_nanos(&f.merge_lead_times),
        ])?;
    }
    let mut mark = tx.prepare_cached(tallies::MARK_DAY)?;
    for day in changes.days {
        mark.execute([day])?;
    }
    Ok(1)
}

/// Tallies up to `limit` stale days again from their facts; how many it did.
fn tally_days(tx: &Connection, limit: usize) -> StoreResult<u64> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let days = query_all(tx, tallies::DIRTY_DAYS, [limit], |row| row.required_int(0))?;
    for &day in &days {
        tx.prepare_cached(tallies::CLAIM_DAY)?.execute([day])?;
        let (from, to) = tallies::day_range(day);
        let facts = query_all(tx, &tallies::facts_between(), [from, to], |row| {
            crate::rows::deployment_fact(row)
        })?;
        tx.prepare_cached(tallies::DELETE_DAY)?.execute([day])?;
        let mut put = tx.prepare_cached(tallies::PUT_TALLY)?;
        for t in rollup::tally(&facts) {
            put.execute(params![
                t.group,
                t.tier.as_str(),
                t.day,
                t.deployments,
                t.failed,
                t.rework,
                encode_nanos(&t.lead_times),
                encode_nanos(&t.merge_lead_times),
                encode_nanos(&t.recovery_times),
            ])?;
        }
    }
    Ok(days.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str, hash: &str) -> WriteOp {
        WriteOp::CreateToken {
            token: TokenRecord {
                id: name.into(),
                name: name.into(),
                hash: hash.into(),
                scopes: Vec::new(),
                restrictions: Vec::new(),
                created_at: 1,
                expires_at: None,
                last_used_at: None,
                revoked_at: None,
            },
            only_first: false,
        }
    }

    fn job(op: WriteOp) -> WriteJob {
        WriteJob {
            op,
            reply: oneshot::channel().0,
        }
    }

    /// A write that fails (here a second token with the same hash) is undone alone: the
    /// others of its batch are committed, before and after it.
    #[test]
    fn a_failing_write_does_not_undo_its_batch() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrations::check_or_run(&mut conn, true).unwrap();
        let batch = [
            job(token("a", "1")),
            job(token("b", "2")),
            job(token("c", "1")),
            job(token("d", "3")),
        ];
        let results = commit(&mut conn, &batch);
        let ok: Vec<bool> = results.iter().map(Result::is_ok).collect();
        assert_eq!(ok, [true, true, false, true]);
        let names: Vec<String> = conn
            .prepare("SELECT name FROM tokens ORDER BY name")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(names, ["a", "b", "d"]);
        // A batch that succeeds is committed whole, without savepoints.
        let results = commit(&mut conn, &[job(token("e", "4"))]);
        assert_eq!(results.len(), 1);
        assert!(results[0].is_ok());
    }
}
