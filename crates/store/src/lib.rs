//! Where dorametrics keeps its data: one [`Store`] trait, implemented on SQLite (the embedded
//! default) and PostgreSQL (for many stateless nodes). Every write that returns `Ok` is durable.
#![forbid(unsafe_code)]

pub mod postgres;
pub mod query_sql;
mod rows;
mod sql;
pub mod sqlite;
mod tallies;
mod write;

pub use tallies::TallyQuery;
pub use write::WriteOp;

use std::sync::Arc;

use async_trait::async_trait;
use dora_core::metrics::DeploymentFact;
use dora_core::model::{
    Commit, Deployment, DeploymentPatch, DeploymentSelector, Failure, ListQuery, MergeRequest,
    Scope, StoredDeployment,
};
use dora_core::query::Query;
use dora_core::rollup::DayTally;
use dora_core::tier::Tier;
use dora_core::time::Nanos;
use dora_core::webhook::{Alias, Delivery, Hook, Provider};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Anything not known to be one of the [`Outage`]s.
    #[error("database error: {0}")]
    Database(String),
    /// The store cannot serve, for a reason a client and an operator can act on.
    #[error("{}: {detail}", .kind.message())]
    Unavailable { kind: Outage, detail: String },
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("the store is shutting down")]
    Closed,
}

/// Why the store cannot serve: each its own message, and whether retrying soon can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// The disk holding the database is full.
    DiskFull,
    /// The database server cannot be reached (refused, reset, shutting down, too many clients).
    Unreachable,
    /// The database server refused the configured credentials.
    AuthenticationRefused,
    /// The named database does not exist.
    NoDatabase,
    /// The schema is missing or older than this build.
    SchemaMissing,
    /// A lock held by another session was not released within the lock timeout.
    LockWait,
    /// A statement ran past the statement timeout.
    StatementTimeout,
    /// Every pooled connection (PostgreSQL: every writer) stayed busy for the pool-wait timeout.
    PoolExhausted,
    /// The SQLite file was deleted or replaced while the server had it open.
    FileReplaced,
}

impl Outage {
    /// What a client is told.
    pub fn message(self) -> &'static str {
        match self {
            Self::DiskFull => "The database's disk is full; writes fail until space is freed",
            Self::Unreachable => "The database cannot be reached; retry later",
            Self::AuthenticationRefused => "The database refused the server's credentials",
            Self::NoDatabase => "The database does not exist; create it with dorametrics migrate",
            Self::SchemaMissing => {
                "The database schema is missing or out of date; run dorametrics migrate"
            }
            Self::LockWait => "The database waited too long for a lock; retry later",
            Self::StatementTimeout => "The database statement ran past its time limit",
            Self::PoolExhausted => "Every database connection is busy; retry later",
            Self::FileReplaced => {
                "The database file was deleted or replaced while the server ran; restart the server"
            }
        }
    }

    /// Seconds after which a retry may succeed, when one can without an operator.
    pub fn retry_after(self) -> Option<u64> {
        match self {
            Self::Unreachable => Some(5),
            Self::LockWait | Self::StatementTimeout | Self::PoolExhausted => Some(1),
            Self::DiskFull
            | Self::AuthenticationRefused
            | Self::NoDatabase
            | Self::SchemaMissing
            | Self::FileReplaced => None,
        }
    }

    /// A short name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DiskFull => "disk_full",
            Self::Unreachable => "unreachable",
            Self::AuthenticationRefused => "authentication_refused",
            Self::NoDatabase => "no_database",
            Self::SchemaMissing => "schema_missing",
            Self::LockWait => "lock_wait",
            Self::StatementTimeout => "statement_timeout",
            Self::PoolExhausted => "pool_exhausted",
            Self::FileReplaced => "file_replaced",
        }
    }
}

impl StoreError {
    pub fn unavailable(kind: Outage, detail: impl Into<String>) -> Self {
        Self::Unavailable {
            kind,
            detail: detail.into(),
        }
    }

    /// The outage this error is, if it is one.
    pub fn outage(&self) -> Option<Outage> {
        match self {
            Self::Unavailable { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        let kind = match error.sqlite_error() {
            Some(failure) => match failure.code {
                ErrorCode::DiskFull => Some(Outage::DiskFull),
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => Some(Outage::LockWait),
                ErrorCode::OperationInterrupted => Some(Outage::StatementTimeout),
                ErrorCode::CannotOpen => Some(Outage::Unreachable),
                // SQLITE_READONLY_DBMOVED: the file was renamed or unlinked under the connection.
                ErrorCode::ReadOnly if failure.extended_code == 1032 => Some(Outage::FileReplaced),
                _ => None,
            },
            None => None,
        };
        match kind {
            Some(kind) => Self::unavailable(kind, error.to_string()),
            None => Self::Database(error.to_string()),
        }
    }
}

/// The outcome of the latest write, for readiness: a disk that filled stays reported until a
/// write succeeds again.
#[derive(Default)]
pub(crate) struct WriteHealth {
    /// Whether `full` holds something: a successful write, the usual case, then costs one
    /// atomic load and no lock.
    failing: std::sync::atomic::AtomicBool,
    /// The detail of the disk-full failure.
    full: std::sync::Mutex<Option<String>>,
}

impl WriteHealth {
    pub(crate) fn record<T>(&self, result: &StoreResult<T>) {
        use std::sync::atomic::Ordering;
        let failed = match result {
            Err(StoreError::Unavailable {
                kind: Outage::DiskFull,
                detail,
            }) => Some(detail.clone()),
            Err(_) => return, // other failures say nothing of the next write
            Ok(_) if !self.failing.load(Ordering::Acquire) => return,
            Ok(_) => None,
        };
        if let Ok(mut full) = self.full.lock() {
            self.failing.store(failed.is_some(), Ordering::Release);
            *full = failed;
        }
    }

    pub(crate) fn check(&self) -> StoreResult<()> {
        match self.full.lock().ok().as_deref().and_then(Option::as_ref) {
            Some(detail) => Err(StoreError::unavailable(Outage::DiskFull, detail.clone())),
            None => Ok(()),
        }
    }
}

/// A schema at `found` (`None`: no migration applied) serves only when it is `latest`.
pub(crate) fn check_schema(found: Option<i64>, latest: i64) -> StoreResult<()> {
    match found {
        Some(version) if version >= latest => Ok(()),
        found => Err(StoreError::unavailable(
            Outage::SchemaMissing,
            format!(
                "the schema is at version {}, this build needs {latest}",
                found.map_or("none".to_string(), |v| v.to_string())
            ),
        )),
    }
}

/// Upper bounds of the write-batch-size histogram of [`WriteStats`].
pub const BATCH_SIZE_BOUNDS: [u64; 11] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/// Figures of a store's write path, for monitoring.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Writes waiting to be applied (queued for the writer, or PostgreSQL's writer tasks).
    pub queued: u64,
    /// Writes committed together, one count per commit: `batch_sizes[i]` commits held at most
    /// [`BATCH_SIZE_BOUNDS`]`[i]` writes (and more than the bound before it); `batch_sizes`
    /// has one more entry, for larger ones.
    pub batch_sizes: Vec<u64>,
    /// The writes of all those commits.
    pub batched_writes: u64,
}

/// Write-batch sizes, counted as they commit (lock-free: the writer is hot).
#[derive(Debug, Default)]
pub(crate) struct BatchCounter {
    buckets: [std::sync::atomic::AtomicU64; BATCH_SIZE_BOUNDS.len() + 1],
    writes: std::sync::atomic::AtomicU64,
}

impl BatchCounter {
    pub(crate) fn record(&self, size: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        let size = size as u64;
        let bucket = BATCH_SIZE_BOUNDS
            .iter()
            .position(|bound| size <= *bound)
            .unwrap_or(BATCH_SIZE_BOUNDS.len());
        self.buckets[bucket].fetch_add(1, Relaxed);
        self.writes.fetch_add(size, Relaxed);
    }

    pub(crate) fn stats(&self, queued: u64) -> WriteStats {
        use std::sync::atomic::Ordering::Relaxed;
        WriteStats {
            queued,
            batch_sizes: self.buckets.iter().map(|b| b.load(Relaxed)).collect(),
            batched_writes: self.writes.load(Relaxed),
        }
    }
}

/// How a store is opened: whether to migrate, and the limits that turn a stuck database into
/// fast, clear errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Bring the schema up to date (else refuse one that is behind).
    pub migrate: bool,
    /// Longest a statement may run (PostgreSQL `statement_timeout`; SQLite interrupts reads).
    pub statement_timeout: std::time::Duration,
    /// Longest a statement waits for a lock (PostgreSQL `lock_timeout`; SQLite's busy timeout).
    pub lock_timeout: std::time::Duration,
    /// Longest a request waits for a pooled PostgreSQL connection (a write: for a writer).
    pub pool_wait: std::time::Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            migrate: true,
            statement_timeout: std::time::Duration::from_secs(30),
            lock_timeout: std::time::Duration::from_secs(5),
            pool_wait: std::time::Duration::from_secs(5),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// How precisely a token's last use is kept: one minute.
pub const TOKEN_USE_GRAIN: Nanos = 60_000_000_000;

/// A token as stored: never the secret, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Not secret: what a token is looked up, listed and revoked by.
    pub id: String,
    pub name: String,
    /// Lowercase hex SHA-256 of the whole token.
    pub hash: String,
    pub scopes: Vec<Scope>,
    /// The projects and groups it is limited to (GitLab's membership); empty: all of them.
    pub restrictions: Vec<Restriction>,
    pub created_at: Nanos,
    /// From then on the token is refused; `None`: never.
    pub expires_at: Option<Nanos>,
    /// Kept to the minute ([`Store::touch_token`]).
    pub last_used_at: Option<Nanos>,
    /// From then on the token is refused.
    pub revoked_at: Option<Nanos>,
}

impl TokenRecord {
    /// Whether the token may be used at `now`: neither revoked nor expired.
    pub fn is_live(&self, now: Nanos) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|expiry| now < expiry)
    }

    /// Scopes as stored: space-separated names.
    pub fn scopes_text(&self) -> String {
        let names: Vec<&str> = self.scopes.iter().map(|s| s.as_str()).collect();
        names.join(" ")
    }

    /// Restrictions as stored: a JSON list (paths may hold any character).
    pub fn restrictions_text(&self) -> String {
        let items: Vec<String> = self.restrictions.iter().map(|r| r.to_string()).collect();
        rows::to_json_list(&items)
    }
}

/// One project or group (with its subgroups and projects) a token may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restriction {
    Project(String),
    Group(String),
}

impl Restriction {
    /// `project:PATH` or `group:PATH`, the path without leading or trailing `/`.
    pub fn parse(text: &str) -> Option<Self> {
        let (kind, path) = text.split_once(':')?;
        if path.is_empty() || path.starts_with('/') || path.ends_with('/') {
            return None;
        }
        match kind {
            "project" => Some(Self::Project(path.to_string())),
            "group" => Some(Self::Group(path.to_string())),
            _ => None,
        }
    }
}

impl std::fmt::Display for Restriction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Project(path) => write!(f, "project:{path}"),
            Self::Group(path) => write!(f, "group:{path}"),
        }
    }
}

/// One service's deployments to one env: the unit in which facts are derived and kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    pub service: String,
    pub env: Option<String>,
}

impl StreamKey {
    /// The env as the fact tables hold it: `''` for none (an env is never empty).
    pub fn env_text(&self) -> &str {
        self.env.as_deref().unwrap_or("")
    }

    pub fn from_columns(service: String, env: String) -> Self {
        Self {
            service,
            env: (!env.is_empty()).then_some(env),
        }
    }
}

/// A stream whose facts are stale, as of its newest mark `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirtyStream {
    pub stream: StreamKey,
    pub seq: i64,
    /// A write since the last derivation can change change sets already derived (a deployment
    /// inside the stream's past, a delete, a commit filling a hole): derive it from its start.
    /// Otherwise only its verdicts and the deployments appended after its [`StreamHead`].
    pub history: bool,
    /// How many marks up to `seq` it had.
    pub marks: i64,
    /// Every mark was made by a failure's put: its facts are current but for those failures
    /// ([`Store::marked_failures`]), which a refresh blames by look-ups.
    pub only_failures: bool,
}

/// A kept delivery, with its place in the record (what the list pages by).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptDelivery {
    pub seq: i64,
    pub delivery: Delivery,
}

/// What a stream's change sets were derived up to: the last deployment then, the repository
/// its change sets walk, and every commit its deployments shipped (their ordinals in the
/// repository, a serialized roaring bitmap). A deployment appended after it ships what its walk
/// reaches before any of those.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHead {
    pub last_id: String,
    pub last_finished_at: Nanos,
    pub repository_id: Option<String>,
    pub shipped: Vec<u8>,
}

/// A stored commit and its ordinal in its repository (0, 1, 2, … as they arrived).
pub type NumberedCommit = (Commit, u32);

/// What is still to derive (`GET /api/v1/status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Staleness {
    /// Streams whose facts are stale.
    pub streams: u64,
    /// How long the oldest stale mark has waited, by the database's clock; `None`: no mark.
    pub oldest_mark_age: Option<Nanos>,
    /// Days whose tallies are stale.
    pub days: u64,
}

/// Which stored deployment facts to read.
#[derive(Debug, Clone, PartialEq)]
pub struct FactQuery {
    /// Finished in `[from, to)`; `None`: unbounded.
    pub from: Option<Nanos>,
    pub to: Option<Nanos>,
    /// Empty: every tier.
    pub tiers: Vec<Tier>,
    pub project: Option<String>,
    /// Projects inside this group, at any depth.
    pub group: Option<String>,
    /// Over the deployments' attributes.
    pub filter: Query,
}

/// What a store holds. The writes are the same for every store: each is a [`WriteOp`] that the
/// store commits with the statements both stores share (`write.rs`); a store implements how it
/// commits them, and the reads.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Commits one write, answered once it is durable: how many rows it applied to (0 when
    /// its target did not exist).
    async fn write(&self, op: WriteOp) -> StoreResult<u64>;

    /// Inserts the deployment, or replaces the one with the same id (keeping PATCH data).
    async fn put_deployment(&self, deployment: Deployment) -> StoreResult<()> {
        self.write(WriteOp::PutDeployment(deployment))
            .await
            .map(drop)
    }
    /// [`Store::put_deployment`] for each, in order, in one transaction: all or none.
    async fn put_deployments(&self, deployments: Vec<Deployment>) -> StoreResult<()> {
        self.write(WriteOp::PutDeployments(deployments))
            .await
            .map(drop)
    }
    /// Inserts the failure, or replaces the one with the same id (that is how one gets resolved).
    async fn put_failure(&self, failure: Failure) -> StoreResult<()> {
        self.write(WriteOp::PutFailure(failure)).await.map(drop)
    }
    /// Applies a PATCH; `false` when no deployment matches the selector.
    async fn patch_deployment(
        &self,
        selector: DeploymentSelector,
        patch: DeploymentPatch,
    ) -> StoreResult<bool> {
        let patched = self.write(WriteOp::Patch(selector, patch)).await?;
        Ok(patched > 0)
    }
    /// `false` when there was no such deployment.
    async fn delete_deployment(&self, id: &str) -> StoreResult<bool> {
        let op = WriteOp::DeleteDeployment(id.to_string());
        Ok(self.write(op).await? > 0)
    }
    async fn delete_failure(&self, id: &str) -> StoreResult<bool> {
        let op = WriteOp::DeleteFailure(id.to_string());
        Ok(self.write(op).await? > 0)
    }

    async fn get_deployment(&self, id: &str) -> StoreResult<Option<StoredDeployment>>;
    async fn get_failure(&self, id: &str) -> StoreResult<Option<Failure>>;
    async fn list_deployments(&self, query: &ListQuery) -> StoreResult<Vec<StoredDeployment>>;
    async fn list_failures(&self, query: &ListQuery) -> StoreResult<Vec<Failure>>;
    /// Failures naming this service or (naming no service, or among others) one of these
    /// teams, in start order.
    async fn failures_naming(&self, service: &str, teams: &[String]) -> StoreResult<Vec<Failure>>;
    /// Failures resolved (finished) in `[from, to)`, in resolution order.
    async fn failures_resolved(&self, from: Nanos, to: Nanos) -> StoreResult<Vec<Failure>>;

    /// Inserts commits, ignoring those already stored (same repository and sha); returns how
    /// many were new. All or nothing.
    async fn put_commits(&self, commits: Vec<Commit>) -> StoreResult<u64> {
        self.write(WriteOp::PutCommits(commits)).await
    }
    /// Inserts the commits a push listed, their parents implied by its order (marked so; the
    /// true ones replace them when [`Store::put_commits`] brings them); as `put_commits`.
    async fn put_pushed_commits(&self, commits: Vec<Commit>) -> StoreResult<u64> {
        self.write(WriteOp::PutPushedCommits(commits)).await
    }
    /// The facts of a merged merge request, for its merge commit, which may not be stored yet
    /// (then they wait for it).
    async fn put_merge_request(
        &self,
        repository_id: &str,
        sha: &str,
        merge_request: MergeRequest,
    ) -> StoreResult<()> {
        let op = WriteOp::PutMergeRequest {
            repository_id: repository_id.to_string(),
            sha: sha.to_string(),
            merge_request,
        };
        self.write(op).await.map(drop)
    }
    /// Which of these shas the repository already has.
    async fn known_commits(&self, repository_id: &str, shas: &[String])
        -> StoreResult<Vec<String>>;
    /// Every stored commit of a repository (its graph).
    async fn commits_of(&self, repository_id: &str) -> StoreResult<Vec<Commit>> {
        let graph = self.commit_graph(repository_id).await?;
        Ok(graph.into_iter().map(|(commit, _)| commit).collect())
    }
    /// Every stored commit of a repository, numbered.
    async fn commit_graph(&self, repository_id: &str) -> StoreResult<Vec<NumberedCommit>>;
    /// How many commits a repository holds (the next ordinal): a graph loaded when it held
    /// as many is still whole.
    async fn commit_count(&self, repository_id: &str) -> StoreResult<i64>;
    /// The stored commits of a repository among these shas, numbered.
    async fn commits_named(
        &self,
        repository_id: &str,
        shas: &[String],
    ) -> StoreResult<Vec<NumberedCommit>>;

    /// Admin overrides of env tiers (env name → tier).
    async fn env_tiers(&self) -> StoreResult<Vec<(String, Tier)>>;
    /// Sets (or with `None` removes) the tier of an env; `false` when removing one not set.
    async fn set_env_tier(&self, env: &str, tier: Option<Tier>) -> StoreResult<bool> {
        let op = WriteOp::SetEnvTier(env.to_string(), tier);
        Ok(self.write(op).await? > 0)
    }

    /// Every distinct (repository id, service) deployments name: what projects are made of.
    async fn project_sources(&self) -> StoreResult<Vec<(Option<String>, String)>>;

    async fn create_token(&self, token: TokenRecord) -> StoreResult<()> {
        let only_first = false;
        let op = WriteOp::CreateToken { token, only_first };
        self.write(op).await.map(drop)
    }
    /// Creates the token only if there is none at all, atomically even across processes
    /// starting together; `false` when some token already existed.
    async fn create_first_token(&self, token: TokenRecord) -> StoreResult<bool> {
        let only_first = true;
        let op = WriteOp::CreateToken { token, only_first };
        Ok(self.write(op).await? > 0)
    }
    /// The token with this id (revoked and expired ones included).
    async fn find_token(&self, id: &str) -> StoreResult<Option<TokenRecord>>;
    /// Every token, oldest first.
    async fn list_tokens(&self) -> StoreResult<Vec<TokenRecord>>;
    /// Revokes a token at `at`; `false` when there is no such token or it was revoked already.
    async fn revoke_token(&self, id: &str, at: Nanos) -> StoreResult<bool> {
        let op = WriteOp::RevokeToken {
            id: id.to_string(),
            at,
        };
        Ok(self.write(op).await? > 0)
    }
    /// Records that the token was used at `at`, unless it was recorded since `at − TOKEN_USE_GRAIN`
    /// (so a busy token costs one write a minute, not one a request).
    async fn touch_token(&self, id: &str, at: Nanos) -> StoreResult<()> {
        let op = WriteOp::TouchToken {
            id: id.to_string(),
            at,
        };
        self.write(op).await.map(drop)
    }
    async fn count_tokens(&self) -> StoreResult<u64>;

    // Webhooks in.

    /// Stores a new hook; `false` when its name is taken.
    async fn create_hook(&self, hook: Hook) -> StoreResult<bool> {
        Ok(self.write(WriteOp::PutHook(hook)).await? > 0)
    }
    /// `false` when there is no such hook.
    async fn delete_hook(&self, name: &str) -> StoreResult<bool> {
        Ok(self.write(WriteOp::DeleteHook(name.to_string())).await? > 0)
    }
    /// Every hook, by name; or only those of one provider.
    async fn hooks(&self, provider: Option<Provider>) -> StoreResult<Vec<Hook>>;
    /// Keeps a delivery; `false` when one with its id was kept already (a replay).
    async fn record_delivery(&self, delivery: Delivery) -> StoreResult<bool> {
        Ok(self.write(WriteOp::RecordDelivery(delivery)).await? > 0)
    }
    /// Whether a delivery with this id was kept (and not refused).
    async fn delivery_seen(&self, provider: Provider, delivery_id: &str) -> StoreResult<bool>;
    /// The newest `limit` deliveries kept before `before` (a [`KeptDelivery::seq`]), newest
    /// first.
    async fn deliveries(&self, before: Option<i64>, limit: u32) -> StoreResult<Vec<KeptDelivery>>;
    /// Sets (or replaces) what a provider's name stands for.
    async fn put_alias(&self, alias: Alias) -> StoreResult<()> {
        self.write(WriteOp::PutAlias(alias)).await.map(drop)
    }
    /// `false` when there is no such alias.
    async fn delete_alias(&self, provider: Provider, name: &str) -> StoreResult<bool> {
        let op = WriteOp::DeleteAlias(provider, name.to_string());
        Ok(self.write(op).await? > 0)
    }
    /// Every alias, by provider and name.
    async fn aliases(&self) -> StoreResult<Vec<Alias>>;
    /// Keeps GitLab's numeric id of a project (its webhooks name it), and the path it is.
    async fn put_gitlab_project(&self, gitlab_id: i64, path: &str) -> StoreResult<()> {
        let op = WriteOp::PutGitlabProject(gitlab_id, path.to_string());
        self.write(op).await.map(drop)
    }
    /// GitLab's numeric ids of projects and the paths they stand for.
    async fn gitlab_projects(&self) -> StoreResult<Vec<(i64, String)>>;
    /// When the newest state of a provider's object that was recorded stood.
    async fn object_as_of(&self, provider: Provider, object_id: &str)
        -> StoreResult<Option<Nanos>>;
    /// Records that a provider's object reached the state of `as_of`; `false` when a newer
    /// state was recorded (a late delivery of an older one is then not applied).
    async fn advance_object(
        &self,
        provider: Provider,
        object_id: &str,
        as_of: Nanos,
    ) -> StoreResult<bool> {
        let op = WriteOp::AdvanceObject {
            provider,
            object_id: object_id.to_string(),
            as_of,
        };
        Ok(self.write(op).await? > 0)
    }

    // Derived facts, kept per stream. Every write above marks the streams it can change as
    // dirty in its own transaction; the engine (`dora_engine::derivation::refresh`) recomputes them.

    /// The streams whose facts are stale.
    async fn dirty_streams(&self) -> StoreResult<Vec<DirtyStream>>;
    /// The marks of one stream, as [`Store::dirty_streams`] says them; `None` when it is clean.
    async fn newest_mark(&self, stream: &StreamKey) -> StoreResult<Option<DirtyStream>>;
    /// Marks streams stale (a recomputation found it changed what other streams depend on).
    async fn mark_streams_dirty(&self, streams: Vec<StreamKey>) -> StoreResult<()> {
        self.write(WriteOp::MarkDirty(streams)).await.map(drop)
    }
    /// Replaces the facts of a stream — only if its newest mark is still `dirty.seq` (no write
    /// since, no other re-derivation stored since), which then makes it clean; `false`
    /// (nothing written) otherwise. Only facts that changed are written, and their days marked
    /// for [`Store::refresh_day_tallies`].
    async fn replace_stream_facts(
        &self,
        dirty: DirtyStream,
        facts: Vec<DeploymentFact>,
    ) -> StoreResult<bool> {
        self.store_derivation(dirty, facts, None).await
    }
    /// [`Store::replace_stream_facts`], keeping `head` as what the change sets were derived up
    /// to (`None`: the next derivation starts from scratch). With a head it is stored also when
    /// writes since only appended to the stream or changed verdicts: their marks stay, and the
    /// next derivation resumes from this one.
    async fn store_derivation(
        &self,
        dirty: DirtyStream,
        facts: Vec<DeploymentFact>,
        head: Option<StreamHead>,
    ) -> StoreResult<bool> {
        let op = WriteOp::ReplaceFacts(dirty, facts, head);
        Ok(self.write(op).await? > 0)
    }
    /// Fails the deployments (ids, of `dirty`'s stream) that the failures its marks named were
    /// blamed on — only if those marks are still the stream's, which are then claimed (later
    /// marks stay); `false` (nothing written) otherwise.
    async fn store_blames(&self, dirty: DirtyStream, failed: Vec<String>) -> StoreResult<bool> {
        Ok(self.write(WriteOp::Blame(dirty, failed)).await? > 0)
    }
    /// The failures whose puts made the marks of a stream up to `dirty.seq`.
    async fn marked_failures(&self, dirty: &DirtyStream) -> StoreResult<Vec<String>>;
    /// What a failure can be blamed on in one stream (with an env), by index look-ups: its
    /// deployments of `sha`, those of `version`, and those that finished last by `by`.
    async fn blame_candidates(
        &self,
        stream: &StreamKey,
        sha: Option<&str>,
        version: Option<&str>,
        by: Nanos,
    ) -> StoreResult<Vec<StoredDeployment>>;
    /// What a stream's change sets were last derived up to.
    async fn stream_head(&self, stream: &StreamKey) -> StoreResult<Option<StreamHead>>;
    /// The stored facts of one stream, in finish order.
    async fn stream_facts(&self, stream: &StreamKey) -> StoreResult<Vec<DeploymentFact>>;
    /// The deployments of one stream, in finish order.
    async fn stream_deployments(&self, stream: &StreamKey) -> StoreResult<Vec<StoredDeployment>>;
    /// Which repository each stream deploys from (streams without git are absent).
    async fn stream_repositories(&self) -> StoreResult<Vec<(StreamKey, String)>>;
    /// Stored facts matching a query, in finish order (then id).
    async fn read_facts(&self, query: &FactQuery) -> StoreResult<Vec<DeploymentFact>>;
    /// The streams holding a fact that matches a query, with each team deploying in them.
    async fn fact_streams(
        &self,
        query: &FactQuery,
    ) -> StoreResult<Vec<(StreamKey, Option<String>)>>;
    /// Tallies again up to `days` of the days whose facts changed (oldest first), each from
    /// all the facts of the day; returns how many it tallied (0: none was stale).
    async fn refresh_day_tallies(&self, days: usize) -> StoreResult<usize> {
        let tallied = self.write(WriteOp::TallyDays(days)).await?;
        Ok(usize::try_from(tallied).unwrap_or(usize::MAX))
    }
    /// The stored day tallies a query asks for, in day order (then tier).
    async fn read_day_tallies(&self, query: &TallyQuery) -> StoreResult<Vec<DayTally>>;
    /// Records a setting the facts are derived with; when it differs from the stored one,
    /// marks every stream dirty (in the same transaction) and returns `true`.
    async fn settle_fact_setting(&self, name: &str, value: i64) -> StoreResult<bool> {
        let op = WriteOp::SettleFactSetting(name.to_string(), value);
        Ok(self.write(op).await? > 0)
    }

    /// A setting the stored facts were derived with, if one was recorded.
    async fn fact_setting(&self, name: &str) -> StoreResult<Option<i64>>;

    /// What is still to derive: stale streams and days.
    async fn staleness(&self) -> StoreResult<Staleness>;

    /// Answers when the database does (`/readyz`).
    async fn ping(&self) -> StoreResult<()>;

    /// Which database this is: `sqlite` or `postgres`.
    fn kind(&self) -> &'static str;

    /// Figures of the write path (`/metrics`).
    fn write_stats(&self) -> WriteStats;
}

/// Opens (creating and migrating if needed) the store a URL names: `postgres://…` or
/// `postgresql://…` for PostgreSQL; `sqlite://PATH`, `sqlite:PATH` or a bare file path for SQLite.
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    open_with(url, &StoreOptions::default()).await
}

/// Like [`open`], with explicit options.
pub async fn open_with(url: &str, options: &StoreOptions) -> StoreResult<Arc<dyn Store>> {
    if is_postgres_url(url) {
        return Ok(Arc::new(postgres::PostgresStore::open(url, options).await?));
    }
    let path = sqlite_path(url).ok_or_else(|| StoreError::UnsupportedUrl(redact_url(url)))?;
    let store = sqlite::SqliteStore::open(path.to_string(), options).await?;
    Ok(Arc::new(store))
}

/// Whether a database URL names PostgreSQL (`postgres://…` or `postgresql://…`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The file a SQLite URL names (`sqlite://PATH`, `sqlite:PATH` or a bare path); `None` for any
/// other URL.
pub fn sqlite_path(url: &str) -> Option<&str> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        Some(path)
    } else if let Some(path) = url.strip_prefix("sqlite:") {
        Some(path)
    } else if url.contains("://") {
        None
    } else {
        Some(url)
    }
}

/// A database URL fit for logs: the password, if any, replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            format!("{scheme}://{masked}@{host}{path}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://dora:s3cret@db:5432/dora"),
            "postgres://dora:***@db:5432/dora"
        );
        assert_eq!(
            redact_url("postgres://dora@db/dora"),
            "postgres://dora@db/dora"
        );
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
