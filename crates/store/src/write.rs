//! Every write, once for both stores. A write is a [`WriteOp`], [`commit`]ted in a transaction
//! on a store's [`Tx`] — SQLite's writer connection, which commits the writes queued meanwhile
//! together, or a pooled PostgreSQL connection — and answered only after the commit, so every
//! acknowledged write is durable.
//!
//! Writes seldom fail (requests are validated before they queue), so a batch is first applied
//! as it is; only when a write fails is it applied again with each write in a savepoint, so
//! that a failing write is undone alone. (A savepoint journals every page its write changes.)

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;

use dora_core::derive::{FailureScope, Named};
use dora_core::metrics::DeploymentFact;
use dora_core::model::{
    failure_attributes, Commit, Deployment, DeploymentPatch, DeploymentSelector, Failure,
    MergeRequest,
};
use dora_core::query::numeric_value;
use dora_core::rollup;
use dora_core::tier::Tier;
use dora_core::time::Nanos;
use dora_core::webhook::{Alias, Delivery, Hook, Provider};
use tokio::sync::oneshot;

use crate::rows::{encode_nanos, json_list_text, to_json_list, Columns};
use crate::sql::{self, EventTable};
use crate::tallies;
use crate::{DirtyStream, StoreError, StoreResult, StreamHead, StreamKey, TokenRecord};

/// At most this many writes share one commit.
pub const MAX_BATCH: usize = 1024;

/// How many queued writes may wait for SQLite's writer before request handlers wait to enqueue.
pub const WRITE_QUEUE: usize = 8192;

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
    /// Commits a push listed, their parents implied by the order it lists them in.
    PutPushedCommits(Vec<Commit>),
    /// A merged merge request's facts, for its merge commit (`repository_id`, `sha`), stored or
    /// not yet.
    PutMergeRequest {
        repository_id: String,
        sha: String,
        merge_request: MergeRequest,
    },
    PutHook(Hook),
    DeleteHook(String),
    /// 0 when a delivery with its id was kept already.
    RecordDelivery(Delivery),
    PutAlias(Alias),
    DeleteAlias(Provider, String),
    /// GitLab's numeric id of a project, and the project path it stands for.
    PutGitlabProject(i64, String),
    /// 0 when a newer state of the object was applied already.
    AdvanceObject {
        provider: Provider,
        object_id: String,
        as_of: Nanos,
    },
    SetEnvTier(String, Option<Tier>),
    MarkDirty(Vec<StreamKey>),
    ReplaceFacts(DirtyStream, Vec<DeploymentFact>, Option<StreamHead>),
    /// The failures a stream's marks named were blamed on these of its deployments (ids).
    Blame(DirtyStream, Vec<String>),
    /// Tallies again up to this many stale days.
    TallyDays(usize),
    SettleFactSetting(String, i64),
}

pub struct WriteJob {
    pub op: WriteOp,
    /// How many rows the write applied to: 0 when its target did not exist.
    pub reply: oneshot::Sender<StoreResult<u64>>,
}

/// A statement parameter, borrowed from the write.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Param<'a> {
    Null,
    Int(i64),
    Real(f64),
    Bool(bool),
    Text(&'a str),
    Blob(&'a [u8]),
}

impl From<i64> for Param<'_> {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<bool> for Param<'_> {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

impl From<f64> for Param<'_> {
    fn from(value: f64) -> Self {
        Self::Real(value)
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(value: &'a str) -> Self {
        Self::Text(value)
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(value: &'a String) -> Self {
        Self::Text(value)
    }
}

impl<'a> From<&'a Vec<u8>> for Param<'a> {
    fn from(value: &'a Vec<u8>) -> Self {
        Self::Blob(value)
    }
}

impl<'a, T: Into<Param<'a>>> From<Option<T>> for Param<'a> {
    fn from(value: Option<T>) -> Self {
        value.map_or(Self::Null, Into::into)
    }
}

/// The parameters of one statement.
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        &[$($crate::write::Param::from($value)),*][..]
    };
}

/// What only PostgreSQL must lock: SQLite's single writer already serialises every write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock<'a> {
    /// A repository's commits: a commit that fills a hole must see the hole another batch
    /// records for it, or no stream would learn of it.
    Repository(&'a str),
    /// One failure id: a put reads what the failure concerned before it.
    Failure(&'a str),
    /// Two nodes starting together must not both see no token.
    FirstToken,
    /// One tallier at a time across nodes: each claims its days' marks before reading their
    /// facts, so a fact written meanwhile leaves a mark for the next one, and no tallier
    /// stores an older tally over a newer one.
    DayTally,
}

/// One database connection a writer runs its transactions on. The SQL is the shared `?N`
/// dialect of [`crate::sql`].
pub trait Tx {
    type Row: Columns;
    fn execute(&self, sql: &str, params: &[Param<'_>]) -> impl Future<Output = StoreResult<u64>>;
    fn query(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = StoreResult<Vec<Self::Row>>>;
    /// Takes `lock` until the transaction ends (a no-op where writes are serialised anyway).
    fn lock(&self, lock: Lock<'_>) -> impl Future<Output = StoreResult<()>>;
    /// Starts a write transaction.
    fn begin(&self) -> impl Future<Output = StoreResult<()>>;
    /// Runs a statement that controls the transaction (`COMMIT`, `SAVEPOINT …`).
    fn control(&self, sql: &'static str) -> impl Future<Output = StoreResult<()>>;
}

/// Commits a batch in one transaction, answering each write; `Err` when the transaction
/// itself could not be committed (then no write of the batch was).
pub async fn commit(tx: &impl Tx, batch: &[&WriteOp]) -> StoreResult<Vec<StoreResult<u64>>> {
    match commit_together(tx, batch).await? {
        Ok(applied) => Ok(applied.into_iter().map(Ok).collect()),
        // A write alone failed, or the database did (a lock not had): every write is told so.
        Err(error) if batch.len() == 1 || error.outage().is_some() => {
            Ok(batch.iter().map(|_| Err(error.clone())).collect())
        }
        Err(_) => commit_isolated(tx, batch).await,
    }
}

/// Takes the locks of every repository the batch's commits are in, in one order, so that two
/// batches committing at once (PostgreSQL) never wait for each other's in a cycle.
async fn lock_repositories(tx: &impl Tx, batch: &[&WriteOp]) -> StoreResult<()> {
    let repositories = sql::sorted_unique(batch.iter().flat_map(|op| match op {
        WriteOp::PutCommits(commits) | WriteOp::PutPushedCommits(commits) => {
            sql::distinct_repositories(commits)
        }
        WriteOp::PutMergeRequest { repository_id, .. } => vec![repository_id.as_str()],
        _ => Vec::new(),
    }));
    for repository in repositories {
        tx.lock(Lock::Repository(repository)).await?;
    }
    Ok(())
}

/// Runs `body` in a transaction: committed when it returns `Ok(Ok)`, rolled back otherwise.
async fn in_transaction<T>(
    tx: &impl Tx,
    body: impl AsyncFnOnce() -> StoreResult<StoreResult<T>>,
) -> StoreResult<StoreResult<T>> {
    tx.begin().await?;
    let outcome = body().await;
    let end = match &outcome {
        Ok(Ok(_)) => "COMMIT",
        _ => "ROLLBACK",
    };
    match tx.control(end).await {
        Ok(()) => outcome,
        Err(error) => {
            if end == "COMMIT" {
                // A commit that failed (a full disk) leaves the transaction to roll back.
                let _ = tx.control("ROLLBACK").await;
            }
            Err(error)
        }
    }
}

/// The whole batch or nothing: the error of the first write that failed (nothing written).
async fn commit_together(tx: &impl Tx, batch: &[&WriteOp]) -> StoreResult<StoreResult<Vec<u64>>> {
    in_transaction(tx, async || {
        if let Err(error) = lock_repositories(tx, batch).await {
            return Ok(Err(error));
        }
        let mut applied = Vec::with_capacity(batch.len());
        let mut rest = batch;
        while let Some(op) = rest.first() {
            // Deployments posted one by one by concurrent requests are stored together.
            let deployments: Vec<&Deployment> = rest
                .iter()
                .map_while(|op| match op {
                    WriteOp::PutDeployment(d) => Some(d),
                    _ => None,
                })
                .collect();
            let done = match deployments.len() {
                0 | 1 => apply(tx, op).await.map(|rows| vec![rows]),
                n => put_deployments(tx, &deployments).await.map(|()| vec![1; n]),
            };
            match done {
                Ok(rows) => {
                    rest = &rest[rows.len()..];
                    applied.extend(rows);
                }
                Err(error) => return Ok(Err(error)),
            }
        }
        Ok(Ok(applied))
    })
    .await
}

/// Each write in its own savepoint: a failing one is undone alone.
async fn commit_isolated(tx: &impl Tx, batch: &[&WriteOp]) -> StoreResult<Vec<StoreResult<u64>>> {
    let results = in_transaction(tx, async || {
        lock_repositories(tx, batch).await?;
        let mut results = Vec::with_capacity(batch.len());
        for op in batch {
            tx.control("SAVEPOINT one_write").await?;
            let result = apply(tx, op).await;
            if result.is_err() {
                tx.control("ROLLBACK TO SAVEPOINT one_write").await?;
            }
            tx.control("RELEASE SAVEPOINT one_write").await?;
            results.push(result);
        }
        Ok(Ok(results))
    })
    .await?;
    results
}

async fn apply(tx: &impl Tx, op: &WriteOp) -> StoreResult<u64> {
    match op {
        WriteOp::PutDeployment(d) => put_deployments(tx, &[d]).await.map(|()| 1),
        WriteOp::PutDeployments(deployments) => {
            let deployments: Vec<&Deployment> = deployments.iter().collect();
            put_deployments(tx, &deployments).await?;
            Ok(deployments.len() as u64)
        }
        WriteOp::PutFailure(f) => put_failure(tx, f).await.map(|()| 1),
        WriteOp::PutCommits(commits) => put_commits(tx, commits, false).await,
        WriteOp::PutPushedCommits(commits) => put_commits(tx, commits, true).await,
        WriteOp::PutMergeRequest {
            repository_id,
            sha,
            merge_request: mr,
        } => {
            let key = args![repository_id, sha];
            let stored = !tx.query(sql::COMMIT_EXISTS, key).await?.is_empty();
            let set = args![repository_id, sha, mr.number, mr.created_at, mr.merged_at];
            if !stored {
                return tx.execute(sql::PUT_PENDING_MERGE_REQUEST, set).await;
            }
            let changed = tx.execute(sql::SET_COMMIT_MERGE_REQUEST, set).await?;
            if changed > 0 {
                tx.execute(&sql::mark_streams_of_repository(), args![repository_id])
                    .await?;
            }
            Ok(1)
        }
        WriteOp::PutHook(hook) => {
            let h = hook;
            let values = args![
                &h.name,
                h.provider.as_str(),
                &h.secret,
                h.deploy_workflow.as_ref(),
                h.deploy_env.as_ref(),
                h.incident_label.as_ref(),
                h.created_at
            ];
            tx.execute(sql::INSERT_HOOK, values).await
        }
        WriteOp::DeleteHook(name) => tx.execute(sql::DELETE_HOOK, args![name]).await,
        WriteOp::RecordDelivery(d) => {
            let values = args![
                d.provider.as_str(),
                d.delivery_id.as_ref(),
                d.hook.as_ref(),
                &d.event,
                d.received_at,
                d.outcome.as_str(),
                &d.detail
            ];
            tx.execute(sql::INSERT_DELIVERY, values).await
        }
        WriteOp::PutGitlabProject(id, path) => {
            tx.execute(sql::PUT_GITLAB_PROJECT, args![*id, path]).await
        }
        WriteOp::AdvanceObject {
            provider,
            object_id,
            as_of,
        } => {
            let values = args![provider.as_str(), object_id, *as_of];
            tx.execute(sql::ADVANCE_OBJECT, values).await
        }
        WriteOp::PutAlias(a) => {
            let values = args![a.provider.as_str(), &a.name, &a.service];
            tx.execute(sql::PUT_ALIAS, values).await
        }
        WriteOp::DeleteAlias(provider, name) => {
            tx.execute(sql::DELETE_ALIAS, args![provider.as_str(), name])
                .await
        }
        WriteOp::SetEnvTier(env, tier) => {
            let changed = match tier {
                Some(tier) => {
                    tx.execute(sql::SET_ENV_TIER, args![env, tier.as_str()])
                        .await?
                }
                None => tx.execute(sql::DELETE_ENV_TIER, args![env]).await?,
            };
            tx.execute(&sql::mark_streams_of_env(), args![env]).await?;
            Ok(changed)
        }
        WriteOp::Patch(selector, patch) => patch_deployment(tx, selector, patch).await,
        WriteOp::DeleteDeployment(id) => {
            mark_stream_of_deployment(tx, id).await?;
            delete(tx, &sql::DEPLOYMENTS, id).await
        }
        WriteOp::DeleteFailure(id) => {
            mark_streams_of_failure(tx, id).await?;
            delete(tx, &sql::FAILURES, id).await
        }
        WriteOp::MarkDirty(streams) => {
            // Verdicts that depend on another stream's: no change set changes.
            for stream in streams {
                let (service, env) = (&stream.service, stream.env.as_ref());
                tx.execute(sql::MARK_STREAM, args![service, env, false])
                    .await?;
            }
            Ok(streams.len() as u64)
        }
        WriteOp::ReplaceFacts(dirty, facts, head) => {
            replace_facts(tx, dirty, facts, head.as_ref()).await
        }
        WriteOp::Blame(dirty, failed) => blame(tx, dirty, failed).await,
        WriteOp::TallyDays(limit) => tally_days(tx, *limit).await,
        WriteOp::SettleFactSetting(name, value) => {
            let stored = first(tx.query(sql::FACT_SETTING, args![name]).await?);
            if let Some(row) = stored {
                if row.required_int(0)? == *value {
                    return Ok(0);
                }
            }
            tx.execute(sql::SET_FACT_SETTING, args![name, *value])
                .await?;
            tx.execute(&sql::mark_all_streams(), &[]).await?;
            Ok(1)
        }
        WriteOp::CreateToken { token, only_first } => {
            let sql = if *only_first {
                tx.lock(Lock::FirstToken).await?;
                sql::INSERT_FIRST_TOKEN
            } else {
                sql::INSERT_TOKEN
            };
            let (scopes, restrictions) = (token.scopes_text(), token.restrictions_text());
            tx.execute(
                sql,
                args![
                    &token.id,
                    &token.name,
                    &token.hash,
                    &scopes,
                    token.created_at,
                    &restrictions,
                    token.expires_at,
                ],
            )
            .await
        }
        WriteOp::RevokeToken { id, at } => tx.execute(sql::REVOKE_TOKEN, args![id, *at]).await,
        WriteOp::TouchToken { id, at } => {
            let recent = at - crate::TOKEN_USE_GRAIN;
            tx.execute(sql::TOUCH_TOKEN, args![id, *at, recent]).await
        }
    }
}

/// The first row a query found, if any.
fn first<T>(found: Vec<T>) -> Option<T> {
    found.into_iter().next()
}

/// Inserts the new commits, each numbered in its repository. Change sets already derived change
/// only when a commit fills a hole (a parent or a deployment's commit that was missing) or
/// brings a changed merge request: then every stream of its repository is derived again.
/// The batch holds the locks of its repositories already ([`lock_repositories`]), so what it
/// finds stored stays so; it reads and writes many rows a statement.
///
/// `inferred`: the commits' parents were implied (a push lists commits oldest first, without
/// parents); the true ones replace them when they arrive.
async fn put_commits(tx: &impl Tx, commits: &[Commit], inferred: bool) -> StoreResult<u64> {
    let repositories = sql::distinct_repositories(commits);
    let mut next_ordinal: HashMap<&str, i64> = HashMap::new();
    for repository in &repositories {
        let stored = first(
            tx.query(sql::REPOSITORY_COMMITS, args![*repository])
                .await?,
        );
        let next = stored.map(|row| row.required_int(0)).transpose()?;
        next_ordinal.insert(repository, next.unwrap_or(0));
    }
    let stored = stored_commits(
        tx,
        commits
            .iter()
            .map(|c| (c.repository_id.as_str(), c.sha.as_str())),
    )
    .await?;
    // New commits in the order they came (a sha twice: the first), numbered; the others can
    // only bring merge request facts, looked at once the new ones are in.
    let mut new: Vec<(&Commit, i64)> = Vec::new();
    let mut known: Vec<&Commit> = Vec::new();
    let mut taken: HashSet<(&str, &str)> = HashSet::new();
    for c in commits {
        let key = (c.repository_id.as_str(), c.sha.as_str());
        if stored.contains(&key) || !taken.insert(key) {
            known.push(c);
            continue;
        }
        let ordinal = next_ordinal.entry(key.0).or_insert(0);
        new.push((c, *ordinal));
        *ordinal += 1;
    }
    insert_commits(tx, &new, inferred).await?;
    let mut changed: BTreeSet<&str> = BTreeSet::new();
    // Commits a push implied the parents of get their true ones: the graph changed.
    let mut reparented: Vec<&Commit> = Vec::new();
    if !inferred {
        for c in &known {
            let parents = c.parents.join(" ");
            let set = args![&c.repository_id, &c.sha, &parents];
            if tx.execute(sql::SET_TRUE_PARENTS, set).await? > 0 {
                changed.insert(c.repository_id.as_str());
                reparented.push(c);
            }
        }
    }
    // Merge-request facts that came before their commit.
    for repository in &repositories {
        let found = tx
            .query(sql::HAS_PENDING_MERGE_REQUESTS, args![*repository])
            .await?;
        if first(found)
            .map(|row| row.boolean(0))
            .transpose()?
            .flatten()
            != Some(true)
        {
            continue;
        }
        for (c, _) in new.iter().filter(|(c, _)| c.repository_id == *repository) {
            let pending = tx
                .query(sql::PENDING_MERGE_REQUEST, args![*repository, &c.sha])
                .await?;
            if let Some(mr) = first(pending) {
                let (number, created, merged) = (mr.required_int(0)?, mr.int(1)?, mr.int(2)?);
                let set = args![*repository, &c.sha, number, created, merged];
                tx.execute(sql::SET_COMMIT_MERGE_REQUEST, set).await?;
            }
        }
    }
    // Most batches fill no hole: a repository without any is not asked about each commit.
    for repository in &repositories {
        let found = tx.query(sql::HAS_HOLES, args![*repository]).await?;
        let has_holes = first(found).map(|row| row.boolean(0)).transpose()?;
        if has_holes.flatten() != Some(true) {
            continue;
        }
        let fills: Vec<_> = new
            .iter()
            .filter(|(c, _)| c.repository_id == *repository)
            .map(|(c, _)| [Param::Text(repository), Param::Text(&c.sha)])
            .collect();
        let filled = at_once(&fills, |params| tx.execute(sql::FILL_HOLE, params)).await?;
        if filled.into_iter().any(|rows| rows > 0) {
            changed.insert(repository);
        }
    }
    for c in known {
        let Some(mr) = &c.merge_request else { continue };
        let repository = c.repository_id.as_str();
        let set = args![repository, &c.sha, mr.number, mr.created_at, mr.merged_at];
        if tx.execute(sql::SET_COMMIT_MERGE_REQUEST, set).await? > 0 {
            changed.insert(repository);
        }
    }
    // Parents that neither the batch nor the store holds are holes now (a batch is mostly a
    // stretch of history: its own commits need no look-up).
    let batch: HashSet<(&str, &str)> = commits
        .iter()
        .map(|c| (c.repository_id.as_str(), c.sha.as_str()))
        .collect();
    let mut outside: Vec<(&str, &str)> = new
        .iter()
        .map(|(c, _)| c)
        .chain(&reparented)
        .flat_map(|c| {
            let repository = c.repository_id.as_str();
            c.parents.iter().map(move |p| (repository, p.as_str()))
        })
        .filter(|key| !batch.contains(key))
        .collect();
    outside.sort_unstable();
    outside.dedup();
    let stored_parents = stored_commits(tx, outside.iter().copied()).await?;
    let holes: Vec<(&str, &str)> = outside
        .into_iter()
        .filter(|key| !stored_parents.contains(key))
        .collect();
    put_holes(tx, &holes).await?;
    for (repository, next) in next_ordinal {
        tx.execute(sql::SET_REPOSITORY_COMMITS, args![repository, next])
            .await?;
    }
    for repository in changed {
        tx.execute(&sql::mark_streams_of_repository(), args![repository])
            .await?;
    }
    Ok(new.len() as u64)
}

/// Rows one multi-row statement carries (well within both databases' parameter limits), and
/// statements sent at once.
const ROWS_PER_STATEMENT: usize = 500;

/// Which of `keys` (repository, sha) are stored commits: one look-up by primary key each,
/// many at once.
async fn stored_commits<'a>(
    tx: &impl Tx,
    keys: impl Iterator<Item = (&'a str, &'a str)>,
) -> StoreResult<HashSet<(&'a str, &'a str)>> {
    let keys: Vec<(&str, &str)> = keys.collect();
    let params: Vec<[Param; 2]> = keys
        .iter()
        .map(|(repository, sha)| [Param::Text(repository), Param::Text(sha)])
        .collect();
    let found = at_once(&params, |params| tx.query(sql::COMMIT_EXISTS, params)).await?;
    Ok(keys
        .into_iter()
        .zip(found)
        .filter(|(_, rows)| !rows.is_empty())
        .map(|(key, _)| key)
        .collect())
}

/// Records (repository, sha) as holes: shas stored events name that their repositories lack.
async fn put_holes(tx: &impl Tx, holes: &[(&str, &str)]) -> StoreResult<()> {
    for chunk in holes.chunks(ROWS_PER_STATEMENT) {
        let params: Vec<Param> = chunk
            .iter()
            .flat_map(|(repository, sha)| [Param::Text(repository), Param::Text(sha)])
            .collect();
        tx.execute(&sql::put_holes(chunk.len()), &params).await?;
    }
    Ok(())
}

/// Runs `statement` once per parameter set, [`ROWS_PER_STATEMENT`] sent at a time: PostgreSQL
/// pipelines them on the connection (one round trip, not one a statement; each planned as the
/// single-row statement it is), SQLite runs them one after the other.
async fn at_once<'p, const N: usize, T, F>(
    params: &'p [[Param<'p>; N]],
    statement: impl Fn(&'p [Param<'p>]) -> F,
) -> StoreResult<Vec<T>>
where
    F: Future<Output = StoreResult<T>>,
{
    let mut results = Vec::with_capacity(params.len());
    for chunk in params.chunks(ROWS_PER_STATEMENT) {
        let sent = chunk.iter().map(|params| statement(&params[..]));
        results.extend(futures_util::future::try_join_all(sent).await?);
    }
    Ok(results)
}

/// Inserts commits none of which is stored, with their ordinals.
async fn insert_commits(tx: &impl Tx, new: &[(&Commit, i64)], inferred: bool) -> StoreResult<()> {
    for chunk in new.chunks(ROWS_PER_STATEMENT) {
        let parents: Vec<String> = chunk.iter().map(|(c, _)| c.parents.join(" ")).collect();
        let mut params: Vec<Param> = Vec::with_capacity(chunk.len() * sql::COMMIT_COLUMN_COUNT);
        for ((c, ordinal), parents) in chunk.iter().zip(&parents) {
            let mr = c.merge_request.as_ref();
            params.extend([
                Param::Text(&c.repository_id),
                Param::Text(&c.sha),
                Param::Text(parents),
                Param::Int(c.authored_at),
                Param::Int(c.committed_at),
                c.author.as_ref().into(),
                c.subject.as_ref().into(),
                mr.map(|m| m.number).into(),
                mr.and_then(|m| m.created_at).into(),
                mr.and_then(|m| m.merged_at).into(),
                Param::Int(*ordinal),
                Param::Bool(inferred),
            ]);
        }
        tx.execute(&sql::insert_commits(chunk.len()), &params)
            .await?;
    }
    Ok(())
}

/// Stores deployments as one after the other would be, the statements of all of them sent
/// many at once ([`at_once`]; multi-row where a statement takes several). A batch naming an
/// id twice is stored one deployment at a time.
async fn put_deployments(tx: &impl Tx, deployments: &[&Deployment]) -> StoreResult<()> {
    let ids: HashSet<&str> = deployments.iter().map(|d| d.id.as_str()).collect();
    if ids.len() < deployments.len() {
        for d in deployments {
            Box::pin(put_deployments(tx, &[*d])).await?;
        }
        return Ok(());
    }
    // A replacement may move the deployment to another stream: both change, from their start.
    // A new one finishing after what its stream's change sets cover is appended: those stay.
    let by_id: Vec<[Param; 1]> = deployments.iter().map(|d| [Param::Text(&d.id)]).collect();
    let before = at_once(&by_id, |p| tx.query(sql::DEPLOYMENT_STREAM_BY_ID, p)).await?;
    let past: Vec<[Param; 3]> = deployments
        .iter()
        .map(|d| {
            let env = d.env.as_deref().unwrap_or("");
            [
                Param::Text(&d.service),
                Param::Text(env),
                Param::Int(d.finished_at),
            ]
        })
        .collect();
    let past = at_once(&past, |p| tx.query(sql::DERIVED_PAST, p)).await?;
    // One mark a stream: its history changed if any write changed it.
    let mut marks: BTreeMap<(String, Option<String>), bool> = BTreeMap::new();
    for ((d, before), past) in deployments.iter().zip(before).zip(past) {
        let replaced = match first(before) {
            Some(row) => {
                marks.insert((row.required_text(0)?, row.text(1)?), true);
                true
            }
            None => false,
        };
        let past = first(past).map(|row| row.boolean(0)).transpose()?;
        let history = replaced || past.flatten().unwrap_or(true);
        *marks.entry((d.service.clone(), d.env.clone())).or_default() |= history;
    }
    let marks: Vec<[Param; 3]> = marks
        .iter()
        .map(|((service, env), history)| [service.into(), env.as_ref().into(), (*history).into()])
        .collect();
    at_once(&marks, |p| tx.execute(sql::MARK_STREAM, p)).await?;
    // Commits the deployments name that their repositories lack are holes.
    let mut tips: Vec<(&str, &str)> = deployments
        .iter()
        .filter_map(|d| d.git.as_ref())
        .map(|g| (g.repository_id.as_str(), g.commit_sha.as_str()))
        .collect();
    tips.sort_unstable();
    tips.dedup();
    let stored = stored_commits(tx, tips.iter().copied()).await?;
    tips.retain(|tip| !stored.contains(tip));
    put_holes(tx, &tips).await?;
    let (tags, now): (Vec<String>, _) = (
        deployments
            .iter()
            .map(|d| to_json_list(&d.custom_tags))
            .collect(),
        dora_core::time::now(),
    );
    let rows: Vec<[Param; 13]> = deployments
        .iter()
        .zip(&tags)
        .map(|(d, tags)| {
            let git = d.git.as_ref();
            [
                Param::Text(&d.id),
                Param::Text(&d.service),
                d.env.as_ref().into(),
                d.team.as_ref().into(),
                d.version.as_ref().into(),
                Param::Int(d.started_at),
                Param::Int(d.finished_at),
                git.map(|g| &g.repository_url).into(),
                git.map(|g| &g.repository_id).into(),
                git.map(|g| &g.commit_sha).into(),
                Param::Text(tags),
                Param::Text(&d.source),
                Param::Int(now),
            ]
        })
        .collect();
    let upserted = at_once(&rows, |p| tx.query(sql::PUT_DEPLOYMENT, p)).await?;
    let pks: Vec<i64> = upserted
        .into_iter()
        .map(|found| {
            let row = first(found)
                .ok_or_else(|| StoreError::Database("upsert returned no row".into()))?;
            row.required_int(0)
        })
        .collect::<StoreResult<_>>()?;
    let mut sources: Vec<(Option<&str>, &str)> = deployments
        .iter()
        .map(|d| {
            let repository = d.git.as_ref().map(|g| g.repository_id.as_str());
            (repository, d.service.as_str())
        })
        .collect();
    sources.sort_unstable();
    sources.dedup();
    let sources: Vec<[Param; 2]> = sources
        .into_iter()
        .map(|(repository, service)| [repository.into(), Param::Text(service)])
        .collect();
    at_once(&sources, |p| tx.execute(sql::PUT_PROJECT_SOURCE, p)).await?;
    // Also when no row was seen before: a concurrent put of the same id may have stored one.
    let owners: Vec<[Param; 1]> = pks.iter().map(|pk| [Param::Int(*pk)]).collect();
    let delete = sql::delete_attrs(&sql::DEPLOYMENTS);
    at_once(&owners, |p| tx.execute(&delete, p)).await?;
    let attrs: Vec<(i64, (String, String))> = deployments
        .iter()
        .zip(&pks)
        .flat_map(|(d, pk)| {
            sql::stored_deployment_attributes(d)
                .into_iter()
                .map(move |attr| (*pk, attr))
        })
        .collect();
    insert_attrs(tx, &sql::DEPLOYMENTS, &attrs).await
}

async fn put_failure(tx: &impl Tx, f: &Failure) -> StoreResult<()> {
    // Two puts of one id in turn: the second must see the first's scope to mark it.
    tx.lock(Lock::Failure(&f.id)).await?;
    // What the failure concerned before a replacement (re-derived: it may have been blamed
    // there), and what it concerns now (marked with its id: a refresh blames it by look-ups).
    mark_streams_of_failure(tx, &f.id).await?;
    mark_failure_scope(tx, FailureScope::of(f), Some(&f.id)).await?;
    let git = f.git.as_ref();
    let (services, tags) = (to_json_list(&f.services), to_json_list(&f.custom_tags));
    let now = dora_core::time::now();
    let row = first(
        tx.query(
            sql::PUT_FAILURE,
            args![
                &f.id,
                f.name.as_ref(),
                &services,
                f.team.as_ref(),
                f.env.as_ref(),
                f.severity.as_ref(),
                f.started_at,
                f.finished_at,
                f.version.as_ref(),
                git.map(|g| &g.repository_url),
                git.map(|g| &g.repository_id),
                git.map(|g| &g.commit_sha),
                &tags,
                &f.source,
                now,
            ],
        )
        .await?,
    )
    .ok_or_else(|| StoreError::Database("upsert returned no row".into()))?;
    let pk = row.required_int(0)?;
    tx.execute(&sql::delete_attrs(&sql::FAILURES), args![pk])
        .await?;
    let attrs: Vec<(i64, (String, String))> = failure_attributes(f)
        .into_iter()
        .map(|attr| (pk, attr))
        .collect();
    insert_attrs(tx, &sql::FAILURES, &attrs).await
}

/// Stores searchable attributes (owner, (key, value)) of events that have none.
async fn insert_attrs(
    tx: &impl Tx,
    table: &EventTable,
    attrs: &[(i64, (String, String))],
) -> StoreResult<()> {
    for chunk in attrs.chunks(ROWS_PER_STATEMENT) {
        let nums: Vec<Option<f64>> = chunk.iter().map(|(_, (_, v))| numeric_value(v)).collect();
        let params: Vec<Param> = chunk
            .iter()
            .zip(&nums)
            .flat_map(|((owner, (key, value)), num)| {
                [Param::Int(*owner), key.into(), value.into(), (*num).into()]
            })
            .collect();
        tx.execute(&sql::insert_attrs(table, chunk.len()), &params)
            .await?;
    }
    Ok(())
}

async fn patch_deployment(
    tx: &impl Tx,
    selector: &DeploymentSelector,
    patch: &DeploymentPatch,
) -> StoreResult<u64> {
    let found = match selector {
        DeploymentSelector::Id(id) => tx.query(sql::DEPLOYMENT_PK_BY_ID, args![id]).await?,
        DeploymentSelector::Version {
            service,
            env,
            version,
        } => {
            tx.query(sql::DEPLOYMENT_PK_BY_VERSION, args![service, env, version])
                .await?
        }
    };
    let Some(row) = first(found) else {
        return Ok(0);
    };
    let pk = row.required_int(0)?;
    if let Some(stream) = first(tx.query(sql::DEPLOYMENT_STREAM_BY_PK, args![pk]).await?) {
        // A mark or a remediation: verdicts only.
        let (service, env) = (stream.required_text(0)?, stream.text(1)?);
        tx.execute(sql::MARK_STREAM, args![&service, env.as_ref(), false])
            .await?;
    }
    if let Some(change_failure) = patch.change_failure {
        tx.execute(sql::SET_CHANGE_FAILURE, args![change_failure, pk])
            .await?;
    }
    if let Some(remediation) = &patch.remediation {
        let (id, version) = remediation.target.id_and_version();
        tx.execute(
            sql::SET_REMEDIATION,
            args![remediation.kind.as_str(), id, version, pk],
        )
        .await?;
    }
    Ok(1)
}

async fn delete(tx: &impl Tx, table: &EventTable, id: &str) -> StoreResult<u64> {
    let Some(row) = first(tx.query(&sql::delete_event(table), args![id]).await?) else {
        return Ok(0);
    };
    let pk = row.required_int(0)?;
    tx.execute(&sql::delete_attrs(table), args![pk]).await?;
    Ok(1)
}

/// Marks the stream a stored deployment is in, from its start (the deployment is replaced or
/// deleted); `false` when there is no such deployment.
async fn mark_stream_of_deployment(tx: &impl Tx, id: &str) -> StoreResult<bool> {
    let Some(row) = first(tx.query(sql::DEPLOYMENT_STREAM_BY_ID, args![id]).await?) else {
        return Ok(false);
    };
    let (service, env) = (row.required_text(0)?, row.text(1)?);
    tx.execute(sql::MARK_STREAM, args![&service, env.as_ref(), true])
        .await?;
    Ok(true)
}

/// Marks the streams a stored failure concerns, if it exists.
async fn mark_streams_of_failure(tx: &impl Tx, id: &str) -> StoreResult<()> {
    if let Some(row) = first(tx.query(sql::FAILURE_SCOPE_BY_ID, args![id]).await?) {
        let services = json_list_text(&row.required_text(0)?)?;
        let (team, env) = (row.text(1)?, row.text(2)?);
        let scope = FailureScope::new(&services, team.as_deref(), env.as_deref());
        mark_failure_scope(tx, scope, None).await?;
    }
    Ok(())
}

/// Marks the streams a failure with this scope concerns; naming the failure when it is put
/// (its marks then ask only for it to be blamed).
async fn mark_failure_scope(
    tx: &impl Tx,
    scope: FailureScope<'_>,
    put: Option<&str>,
) -> StoreResult<()> {
    let env = scope.env;
    match scope.named {
        Named::Services(services) => {
            let mark = sql::mark_streams_of_service();
            for service in sql::sorted_unique(services.iter().map(String::as_str)) {
                tx.execute(&mark, args![service, env, put]).await?;
            }
        }
        Named::Team(team) => {
            tx.execute(&sql::mark_streams_of_team(), args![team, env, put])
                .await?;
        }
        Named::Nobody => {}
    }
    Ok(())
}

/// Claims the marks a derivation of a stream saw, if no write has staled it since `dirty` was
/// read (`resumable`: no write changed its past since; the later marks stay) and no other
/// derivation stored a newer answer; `false` when the derivation is out of date.
async fn claim(tx: &impl Tx, dirty: &DirtyStream, resumable: bool) -> StoreResult<bool> {
    let (service, env) = (&dirty.stream.service, dirty.stream.env_text());
    let overtaken = match resumable {
        true => sql::MARKED_PAST_SINCE,
        false => sql::MARKED_SINCE,
    };
    let since = first(tx.query(overtaken, args![service, env, dirty.seq]).await?);
    if since.map(|row| row.boolean(0)).transpose()?.flatten() == Some(true) {
        return Ok(false);
    }
    let seen = first(
        tx.query(sql::MARKS_UP_TO, args![service, env, dirty.seq])
            .await?,
    );
    if seen.map(|row| row.required_int(0)).transpose()? != Some(dirty.marks) {
        return Ok(false); // a write it did not see committed with an older seq
    }
    let claimed = tx
        .execute(sql::CLAIM_STREAM, args![service, env, dirty.seq])
        .await?;
    Ok(claimed > 0)
}

/// Fails the deployments new failures were blamed on (unless the facts say so already), if
/// the marks that named the failures are still the stream's: 1 if stored. Blaming a failure
/// changes no other fact: its deployment fails, whatever else blamed it.
async fn blame(tx: &impl Tx, dirty: &DirtyStream, failed: &[String]) -> StoreResult<u64> {
    if !claim(tx, dirty, true).await? {
        return Ok(0);
    }
    for id in failed {
        let Some(fact) = first(tx.query(sql::FACT_FAILED, args![id]).await?) else {
            continue; // deleted since: its stream's mark re-derives it
        };
        if fact.boolean(0)? != Some(true) {
            tx.execute(sql::SET_FACT_FAILED, args![id]).await?;
            let day = rollup::day_number(fact.required_int(1)?);
            tx.execute(tallies::MARK_DAY, args![day]).await?;
        }
    }
    Ok(1)
}

/// Replaces a stream's facts if no write has staled it since `dirty` was read (with a head: no
/// write changed its past since) and no other re-derivation stored a newer answer: 1 if
/// replaced.
async fn replace_facts(
    tx: &impl Tx,
    dirty: &DirtyStream,
    facts: &[DeploymentFact],
    head: Option<&StreamHead>,
) -> StoreResult<u64> {
    let (service, env) = (&dirty.stream.service, dirty.stream.env_text());
    if !claim(tx, dirty, head.is_some()).await? {
        return Ok(0);
    }
    let stored = tx
        .query(&sql::stream_facts(), args![service, env])
        .await?
        .iter()
        .map(crate::rows::deployment_fact)
        .collect::<StoreResult<Vec<_>>>()?;
    let changes = tallies::fact_changes(stored, facts);
    for id in &changes.delete {
        tx.execute(tallies::DELETE_FACT, args![id, service, env])
            .await?;
    }
    for f in changes.put {
        let (lead_times, merge_lead_times) = (
            encode_nanos(&f.lead_times),
            encode_nanos(&f.merge_lead_times),
        );
        tx.execute(
            sql::PUT_FACT,
            args![
                &f.id,
                f.finished_at,
                &f.service,
                f.team.as_ref(),
                f.env.as_deref().unwrap_or(""),
                f.tier.as_str(),
                &f.project,
                f.failed,
                f.rework,
                f.recovery_time,
                &lead_times,
                &merge_lead_times,
            ],
        )
        .await?;
    }
    for day in changes.days {
        tx.execute(tallies::MARK_DAY, args![day]).await?;
    }
    match head {
        Some(h) => {
            let repository = h.repository_id.as_ref();
            let last = (&h.last_id, h.last_finished_at);
            tx.execute(
                sql::PUT_STREAM_HEAD,
                args![service, env, last.0, last.1, repository, &h.shipped],
            )
            .await?
        }
        None => {
            tx.execute(sql::DELETE_STREAM_HEAD, args![service, env])
                .await?
        }
    };
    Ok(1)
}

/// Tallies up to `limit` stale days again from their facts; how many it did.
async fn tally_days(tx: &impl Tx, limit: usize) -> StoreResult<u64> {
    tx.lock(Lock::DayTally).await?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let days = tx
        .query(tallies::DIRTY_DAYS, args![limit])
        .await?
        .iter()
        .map(|row| row.required_int(0))
        .collect::<StoreResult<Vec<i64>>>()?;
    for &day in &days {
        tx.execute(tallies::CLAIM_DAY, args![day]).await?;
        let (from, to) = tallies::day_range(day);
        let facts = tx
            .query(&tallies::facts_between(), args![from, to])
            .await?
            .iter()
            .map(crate::rows::deployment_fact)
            .collect::<StoreResult<Vec<_>>>()?;
        tx.execute(tallies::DELETE_DAY, args![day]).await?;
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        for t in rollup::tally(&facts) {
            let (lead_times, merge_lead_times, recovery_times) = (
                encode_nanos(&t.lead_times),
                encode_nanos(&t.merge_lead_times),
                encode_nanos(&t.recovery_times),
            );
            tx.execute(
                tallies::PUT_TALLY,
                args![
                    &t.group,
                    t.tier.as_str(),
                    t.day,
                    count(t.deployments),
                    count(t.failed),
                    count(t.rework),
                    &lead_times,
                    &merge_lead_times,
                    &recovery_times,
                ],
            )
            .await?;
        }
    }
    Ok(days.len() as u64)
}
