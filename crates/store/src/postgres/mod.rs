//! The PostgreSQL store, for many stateless server processes on one database. Writes queue for
//! a few writer tasks; each commits the writes queued meanwhile in one transaction on a pooled
//! connection (the statements shared with SQLite, `write.rs`), as the SQLite writer does, and
//! answers them after the commit. Nothing is cached in the process: any node sees every
//! other's writes at once.

mod migrations;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use dora_core::metrics::DeploymentFact;
use dora_core::model::{Failure, ListQuery, StoredDeployment};
use dora_core::rollup::DayTally;
use dora_core::tier::Tier;
use dora_core::time::Nanos;
use dora_core::webhook::{Alias, Hook, Provider};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::{IsNull, ToSql, Type};
use tokio_postgres::{NoTls, Row};

use crate::query_sql::{Dialect, SqlParam};
use crate::rows::Columns;
use crate::sql::{self, for_postgres, EventTable};
use crate::tallies;
use crate::write::{self, Lock, Param, Tx, WriteJob, WriteOp, MAX_BATCH};
use crate::{
    DirtyStream, FactQuery, Outage, Store, StoreError, StoreOptions, StoreResult, StreamKey,
    TallyQuery, TokenRecord,
};
use crate::{KeptDelivery, NumberedCommit, StreamHead};

/// An arbitrary constant naming the lock that makes the first admin token unique.
const FIRST_TOKEN_LOCK: i64 = 0x0064_6f72_6174_6f6b;

/// An arbitrary constant naming the lock that lets one node at a time tally days.
const DAY_TALLY_LOCK: i64 = 0x0064_6f72_6164_6179;

/// Connections per server process.
const POOL_SIZE: usize = 16;

/// Writer tasks per server process, each committing on a connection of its own while it does:
/// several, so that one transaction's round trips overlap another's commit; few, so that reads
/// keep connections of their own.
pub const WRITERS: usize = 4;

/// Writes queued beyond this wait to be queued (and are refused after the pool-wait).
const QUEUE: usize = 16 * MAX_BATCH;

pub struct PostgresStore {
    pool: Pool,
    queue: mpsc::Sender<QueuedWrite>,
    /// How long a write waits for a writer to take it before it is refused as busy.
    pool_wait: std::time::Duration,
    health: Arc<crate::WriteHealth>,
    batches: Arc<crate::BatchCounter>,
}

/// A write waiting for a writer. `claimed` is set once, by the writer taking it or by its
/// requester giving up: a write is either committed and answered or refused, never both.
struct QueuedWrite {
    job: WriteJob,
    claimed: Arc<AtomicBool>,
}

/// What the writer tasks share: the one queue, taken by one writer at a time.
struct Writers {
    pool: Pool,
    queue: tokio::sync::Mutex<mpsc::Receiver<QueuedWrite>>,
    health: Arc<crate::WriteHealth>,
    batches: Arc<crate::BatchCounter>,
}

impl Writers {
    /// Takes what is queued, commits it in one transaction and answers each write; ends when
    /// the store is dropped.
    async fn run(self: Arc<Self>) {
        let mut taken = Vec::with_capacity(MAX_BATCH);
        loop {
            {
                let mut queue = self.queue.lock().await;
                let Some(first) = queue.recv().await else {
                    return;
                };
                taken.push(first);
                while taken.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(queued) => taken.push(queued),
                        Err(_) => break,
                    }
                }
            }
            // A write whose requester gave up waiting is not written.
            let batch: Vec<WriteJob> = taken
                .drain(..)
                .filter(|queued| !queued.claimed.swap(true, Ordering::SeqCst))
                .map(|queued| queued.job)
                .collect();
            if batch.is_empty() {
                continue;
            }
            let results = self.commit(&batch).await;
            self.batches.record(batch.len());
            for (job, result) in batch.into_iter().zip(results) {
                self.health.record(&result);
                // The requester may have gone away; its write is committed all the same.
                let _ = job.reply.send(result);
            }
        }
    }

    /// Commits a batch on a pooled connection, answering each write (all with the error when
    /// the transaction could not be committed).
    async fn commit(&self, batch: &[WriteJob]) -> Vec<StoreResult<u64>> {
        let ops: Vec<&WriteOp> = batch.iter().map(|job| &job.op).collect();
        let committed = async {
            let writing = Writing(Some(self.pool.get().await?));
            let results = match &writing.0 {
                Some(client) => write::commit(&PgTx(client), &ops).await,
                None => Err(StoreError::Closed),
            };
            writing.done();
            results
        }
        .await;
        committed.unwrap_or_else(|error| {
            tracing::error!(%error, writes = batch.len(), "commit failed");
            batch.iter().map(|_| Err(error.clone())).collect()
        })
    }
}

/// A pooled connection as the shared writes use it.
struct PgTx<'a>(&'a deadpool_postgres::Object);

impl PgTx<'_> {
    fn refs<'p>(params: &'p [Param<'p>]) -> Vec<&'p (dyn ToSql + Sync)> {
        params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
    }
}

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            Param::Null => Ok(IsNull::Yes),
            Param::Int(n) => n.to_sql(ty, out),
            Param::Real(x) => x.to_sql(ty, out),
            Param::Bool(b) => b.to_sql(ty, out),
            Param::Text(text) => text.to_sql(ty, out),
            Param::Blob(bytes) => bytes.to_sql(ty, out),
        }
    }

    /// The shared SQL gives each parameter its column's type; the value's own `to_sql`
    /// checks it.
    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

impl Tx for PgTx<'_> {
    type Row = Row;

    async fn execute(&self, sql: &str, params: &[Param<'_>]) -> StoreResult<u64> {
        let statement = self.0.prepare_cached(&for_postgres(sql)).await?;
        Ok(self.0.execute(&statement, &Self::refs(params)).await?)
    }

    async fn query(&self, sql: &str, params: &[Param<'_>]) -> StoreResult<Vec<Row>> {
        let statement = self.0.prepare_cached(&for_postgres(sql)).await?;
        Ok(self.0.query(&statement, &Self::refs(params)).await?)
    }

    async fn lock(&self, lock: Lock<'_>) -> StoreResult<()> {
        let key = match lock {
            Lock::FirstToken => FIRST_TOKEN_LOCK,
            Lock::DayTally => DAY_TALLY_LOCK,
            // hashtext is 32 bits: no repository collides with the two above.
            Lock::Repository(repository) => {
                let sql = "SELECT pg_advisory_xact_lock(hashtext(?1))";
                return self
                    .execute(sql, &[Param::Text(repository)])
                    .await
                    .map(drop);
            }
            // The two-key form: a key space of its own.
            Lock::Failure(id) => {
                let sql = "SELECT pg_advisory_xact_lock(1, hashtext(?1))";
                return self.execute(sql, &[Param::Text(id)]).await.map(drop);
            }
        };
        self.execute("SELECT pg_advisory_xact_lock(?1)", &[Param::Int(key)])
            .await
            .map(drop)
    }

    async fn begin(&self) -> StoreResult<()> {
        self.control("BEGIN").await
    }

    async fn control(&self, sql: &'static str) -> StoreResult<()> {
        Ok(self.0.batch_execute(sql).await?)
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        // The Display of a server error is only "db error"; the detail is in its source.
        let Some(db) = error.as_db_error() else {
            // No answer from the server: the connection failed or broke.
            return Self::unavailable(Outage::Unreachable, error_chain(&error));
        };
        let detail = format!("{}: {}", db.code().code(), db.message());
        let kind = outage_of(db.code().code());
        match kind {
            Some(kind) => Self::unavailable(kind, detail),
            None => Self::Database(detail),
        }
    }
}

/// The outage a PostgreSQL error code (SQLSTATE) reports, if it is one.
fn outage_of(code: &str) -> Option<Outage> {
    match code {
        "53100" => Some(Outage::DiskFull),
        "28P01" | "28000" => Some(Outage::AuthenticationRefused),
        "3D000" => Some(Outage::NoDatabase),
        // lock_not_available; deadlock_detected and serialization_failure, which a retry can
        // get past as well.
        "55P03" | "40P01" | "40001" => Some(Outage::LockWait),
        // query_canceled: the statement timeout (or a cancel for a client gone away).
        "57014" => Some(Outage::StatementTimeout),
        // undefined_table: the schema is gone.
        "42P01" => Some(Outage::SchemaMissing),
        "53300" | "57P01" | "57P02" | "57P03" => Some(Outage::Unreachable),
        _ if code.starts_with("08") => Some(Outage::Unreachable),
        _ => None,
    }
}

/// An error and its causes, `: `-separated (tokio-postgres says only "error connecting to
/// server" at the top).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        text.push_str(": ");
        text.push_str(&error.to_string());
        cause = error.source();
    }
    text
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        use deadpool_postgres::PoolError;
        match error {
            PoolError::Backend(error) => error.into(),
            PoolError::Timeout(_) => Self::unavailable(
                Outage::PoolExhausted,
                "no connection of the pool became free within the pool-wait timeout",
            ),
            other => Self::unavailable(Outage::Unreachable, error_chain(&other)),
        }
    }
}

/// Creates the database a URL names on its server, unless it exists; `true` when it was created.
/// Connects to the server's `postgres` database to do so, as the URL's user.
pub async fn create_database(url: &str) -> StoreResult<bool> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| StoreError::Database(format!("invalid PostgreSQL URL: {e}")))?;
    let name = config
        .get_dbname()
        .or(config.get_user())
        .ok_or_else(|| StoreError::Database("the URL names no database".into()))?
        .to_string();
    config.dbname("postgres");
    let (client, connection) = config.connect(NoTls).await?;
    let connection = tokio::spawn(connection);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        client
            .batch_execute(&format!("CREATE DATABASE {quoted}"))
            .await?;
    }
    drop(client);
    let _ = connection.await;
    Ok(!exists)
}

impl Columns for Row {
    fn text(&self, index: usize) -> StoreResult<Option<String>> {
        Ok(self.try_get(index)?)
    }

    fn int(&self, index: usize) -> StoreResult<Option<i64>> {
        Ok(self.try_get(index)?)
    }

    fn boolean(&self, index: usize) -> StoreResult<Option<bool>> {
        Ok(self.try_get(index)?)
    }

    fn bytes(&self, index: usize) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.try_get(index)?)
    }
}

impl PostgresStore {
    /// Connects (checking the database answers) and, when `migrate`, brings the schema up to
    /// date. Every connection runs with the statement and lock timeouts of `options`.
    pub async fn open(url: &str, options: &StoreOptions) -> StoreResult<Self> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Database(format!("invalid PostgreSQL URL: {e}")))?;
        let limits = format!(
            "-c statement_timeout={} -c lock_timeout={}",
            options.statement_timeout.as_millis().max(1),
            options.lock_timeout.as_millis().max(1)
        );
        let combined = match config.get_options() {
            Some(given) if !given.trim().is_empty() => format!("{given} {limits}"),
            _ => limits,
        };
        config.options(&combined);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.pool_wait);
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(options.pool_wait))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Database(e.to_string()))?;
        let mut client = pool.get().await?;
        migrations::check_or_run(&mut client, options.migrate).await?;
        drop(client);
        let (queue, queued) = mpsc::channel(QUEUE);
        let writers = Arc::new(Writers {
            pool: pool.clone(),
            queue: tokio::sync::Mutex::new(queued),
            health: Arc::default(),
            batches: Arc::default(),
        });
        for _ in 0..WRITERS {
            tokio::spawn(Arc::clone(&writers).run());
        }
        Ok(Self {
            pool,
            queue,
            pool_wait: options.pool_wait,
            health: Arc::clone(&writers.health),
            batches: Arc::clone(&writers.batches),
        })
    }

    /// A pooled connection, and a guard that cancels its running statement if the caller goes
    /// away (its request future dropped) before [`CancelGuard::done`].
    async fn connection(&self) -> StoreResult<(deadpool_postgres::Object, CancelGuard)> {
        let client = self.pool.get().await?;
        let guard = CancelGuard(Some(client.cancel_token()));
        Ok((client, guard))
    }

    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Vec<Row>> {
        let (client, guard) = self.connection().await?;
        let statement = client.prepare_cached(&for_postgres(sql)).await?;
        let rows = client.query(&statement, params).await?;
        guard.done();
        Ok(rows)
    }
}

/// A pooled connection in the middle of a write. Dropped before [`Writing::done`] (its request
/// went away), it leaves the pool and closes, so that PostgreSQL rolls its transaction back and
/// releases its locks rather than the next write finding it open.
struct Writing(Option<deadpool_postgres::Object>);

impl Writing {
    /// The write ended (committed or rolled back): the connection goes back to the pool.
    fn done(mut self) {
        drop(self.0.take());
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

/// Cancels the statement of a connection when dropped before [`CancelGuard::done`]: a request
/// whose client went away stops using the database.
struct CancelGuard(Option<tokio_postgres::CancelToken>);

impl CancelGuard {
    fn done(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        let (Some(token), Ok(runtime)) = (self.0.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        runtime.spawn(async move {
            if let Err(error) = token.cancel_query(NoTls).await {
                tracing::warn!(%error, "cannot cancel the statement of a request gone away");
            }
        });
    }
}

fn boxed(params: &[SqlParam]) -> Vec<Box<dyn ToSql + Sync + Send>> {
    params
        .iter()
        .map(|p| -> Box<dyn ToSql + Sync + Send> {
            match p {
                SqlParam::Text(text) => Box::new(text.clone()),
                SqlParam::Real(number) => Box::new(*number),
                SqlParam::Int(number) => Box::new(*number),
            }
        })
        .collect()
}

impl PostgresStore {
    async fn list<T>(
        &self,
        query: &ListQuery,
        table: &EventTable,
        map: impl Fn(&Row) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        let (sql, params) = sql::list(query, table, Dialect::Postgres);
        self.query_with(&sql, &params, map).await
    }

    /// Runs generated SQL with its parameters.
    async fn query_with<T>(
        &self,
        sql: &str,
        params: &[SqlParam],
        map: impl Fn(&Row) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        let params = boxed(params);
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let (client, guard) = self.connection().await?;
        let statement = client.prepare(&for_postgres(sql)).await?;
        let rows = client.query(&statement, &refs).await?;
        guard.done();
        rows.iter().map(map).collect()
    }
}

#[async_trait]
impl Store for PostgresStore {
    /// Queues the write for the writers and waits for its commit; refused as busy when no
    /// writer took it within the pool-wait timeout.
    async fn write(&self, op: WriteOp) -> StoreResult<u64> {
        let (reply, mut answer) = oneshot::channel();
        let claimed = Arc::new(AtomicBool::new(false));
        let queued = QueuedWrite {
            job: WriteJob { op, reply },
            claimed: Arc::clone(&claimed),
        };
        let waited = tokio::time::timeout(self.pool_wait, async {
            self.queue
                .send(queued)
                .await
                .map_err(|_| StoreError::Closed)?;
            (&mut answer).await.map_err(|_| StoreError::Closed)?
        })
        .await;
        match waited {
            Ok(result) => result,
            // Taken meanwhile: it is being committed, and answered.
            Err(_) if claimed.swap(true, Ordering::SeqCst) => {
                answer.await.map_err(|_| StoreError::Closed)?
            }
            Err(_) => Err(StoreError::unavailable(
                Outage::PoolExhausted,
                format!(
                    "no writer took the write within the pool-wait timeout ({:?})",
                    self.pool_wait
                ),
            )),
        }
    }

    fn write_stats(&self) -> crate::WriteStats {
        let queued = self.queue.max_capacity() - self.queue.capacity();
        self.batches.stats(queued as u64)
    }

    async fn get_deployment(&self, id: &str) -> StoreResult<Option<StoredDeployment>> {
        let rows = self
            .query(&sql::get_event(&sql::DEPLOYMENTS), &[&id])
            .await?;
        rows.first().map(crate::rows::deployment).transpose()
    }

    async fn get_failure(&self, id: &str) -> StoreResult<Option<Failure>> {
        let rows = self.query(&sql::get_event(&sql::FAILURES), &[&id]).await?;
        rows.first().map(crate::rows::failure).transpose()
    }

    async fn list_deployments(&self, query: &ListQuery) -> StoreResult<Vec<StoredDeployment>> {
        self.list(query, &sql::DEPLOYMENTS, crate::rows::deployment)
            .await
    }

    async fn list_failures(&self, query: &ListQuery) -> StoreResult<Vec<Failure>> {
        self.list(query, &sql::FAILURES, crate::rows::failure).await
    }

    async fn failures_naming(&self, service: &str, teams: &[String]) -> StoreResult<Vec<Failure>> {
        let mut params = vec![SqlParam::Text(service.to_string())];
        params.extend(teams.iter().map(|t| SqlParam::Text(t.clone())));
        let sql = sql::failures_naming(teams.len());
        self.query_with(&sql, &params, crate::rows::failure).await
    }

    async fn failures_resolved(&self, from: Nanos, to: Nanos) -> StoreResult<Vec<Failure>> {
        let rows = self.query(&sql::failures_resolved(), &[&from, &to]).await?;
        rows.iter().map(crate::rows::failure).collect()
    }

    async fn known_commits(
        &self,
        repository_id: &str,
        shas: &[String],
    ) -> StoreResult<Vec<String>> {
        let rows = self
            .query(
                "SELECT sha FROM commits WHERE repository_id = ?1 AND sha = ANY(?2)",
                &[&repository_id, &shas],
            )
            .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<_, String>(0)?))
            .collect()
    }

    async fn commit_graph(&self, repository_id: &str) -> StoreResult<Vec<NumberedCommit>> {
        let rows = self.query(&sql::commits_of(), &[&repository_id]).await?;
        rows.iter().map(crate::rows::numbered_commit).collect()
    }

    async fn commit_count(&self, repository_id: &str) -> StoreResult<i64> {
        let rows = self
            .query(sql::REPOSITORY_COMMITS, &[&repository_id])
            .await?;
        rows.first()
            .map(|row| row.required_int(0))
            .transpose()
            .map(|count| count.unwrap_or(0))
    }

    async fn commits_named(
        &self,
        repository_id: &str,
        shas: &[String],
    ) -> StoreResult<Vec<NumberedCommit>> {
        let rows = self
            .query(&sql::commits_by_sha_array(), &[&repository_id, &shas])
            .await?;
        rows.iter().map(crate::rows::numbered_commit).collect()
    }

    async fn env_tiers(&self) -> StoreResult<Vec<(String, Tier)>> {
        let rows = self.query(sql::ENV_TIERS, &[]).await?;
        rows.iter().map(crate::rows::env_tier).collect()
    }

    async fn project_sources(&self) -> StoreResult<Vec<(Option<String>, String)>> {
        let rows = self.query(sql::PROJECT_SOURCES, &[]).await?;
        rows.iter()
            .map(|row| Ok((row.text(0)?, row.required_text(1)?)))
            .collect()
    }

    async fn find_token(&self, id: &str) -> StoreResult<Option<TokenRecord>> {
        let rows = self.query(&sql::find_token(), &[&id]).await?;
        rows.first().map(crate::rows::token).transpose()
    }

    async fn list_tokens(&self) -> StoreResult<Vec<TokenRecord>> {
        let rows = self.query(&sql::list_tokens(), &[]).await?;
        rows.iter().map(crate::rows::token).collect()
    }

    async fn count_tokens(&self) -> StoreResult<u64> {
        let rows = self.query(sql::COUNT_TOKENS, &[]).await?;
        let count: i64 = rows
            .first()
            .ok_or_else(|| StoreError::Database("COUNT returned no row".into()))?
            .try_get(0)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn dirty_streams(&self) -> StoreResult<Vec<DirtyStream>> {
        let rows = self.query(sql::DIRTY_STREAMS, &[]).await?;
        rows.iter().map(crate::rows::dirty_stream).collect()
    }

    async fn stream_head(&self, stream: &StreamKey) -> StoreResult<Option<StreamHead>> {
        let rows = self
            .query(sql::STREAM_HEAD, &[&stream.service, &stream.env_text()])
            .await?;
        rows.first().map(crate::rows::stream_head).transpose()
    }

    async fn fact_setting(&self, name: &str) -> StoreResult<Option<i64>> {
        let rows = self.query(sql::FACT_SETTING, &[&name]).await?;
        rows.first().map(|row| row.required_int(0)).transpose()
    }

    async fn newest_mark(&self, stream: &StreamKey) -> StoreResult<Option<DirtyStream>> {
        let rows = self
            .query(sql::STREAM_MARKS, &[&stream.service, &stream.env_text()])
            .await?;
        rows.first().map(crate::rows::dirty_stream).transpose()
    }

    async fn hooks(&self, provider: Option<Provider>) -> StoreResult<Vec<Hook>> {
        let rows = match provider {
            Some(p) => {
                self.query(&sql::hooks_of_provider(), &[&p.as_str()])
                    .await?
            }
            None => self.query(&sql::list_hooks(), &[]).await?,
        };
        rows.iter().map(crate::rows::hook).collect()
    }

    async fn delivery_seen(&self, provider: Provider, delivery_id: &str) -> StoreResult<bool> {
        let rows = self
            .query(sql::DELIVERY_SEEN, &[&provider.as_str(), &delivery_id])
            .await?;
        Ok(rows
            .first()
            .map(|row| row.boolean(0))
            .transpose()?
            .flatten()
            == Some(true))
    }

    async fn deliveries(&self, before: Option<i64>, limit: u32) -> StoreResult<Vec<KeptDelivery>> {
        let (before, limit) = (before.unwrap_or(i64::MAX), i64::from(limit));
        let rows = self
            .query(&sql::deliveries_before(), &[&before, &limit])
            .await?;
        rows.iter().map(crate::rows::delivery).collect()
    }

    async fn object_as_of(
        &self,
        provider: Provider,
        object_id: &str,
    ) -> StoreResult<Option<Nanos>> {
        let rows = self
            .query(sql::OBJECT_AS_OF, &[&provider.as_str(), &object_id])
            .await?;
        rows.first().map(|row| row.required_int(0)).transpose()
    }

    async fn gitlab_projects(&self) -> StoreResult<Vec<(i64, String)>> {
        let rows = self.query(sql::GITLAB_PROJECTS, &[]).await?;
        rows.iter()
            .map(|row| Ok((row.required_int(0)?, row.required_text(1)?)))
            .collect()
    }

    async fn aliases(&self) -> StoreResult<Vec<Alias>> {
        let rows = self.query(sql::LIST_ALIASES, &[]).await?;
        rows.iter().map(crate::rows::alias).collect()
    }

    async fn marked_failures(&self, dirty: &DirtyStream) -> StoreResult<Vec<String>> {
        let (service, env) = (&dirty.stream.service, dirty.stream.env_text());
        let rows = self
            .query(sql::MARKED_FAILURES, &[service, &env, &dirty.seq])
            .await?;
        rows.iter().map(|row| row.required_text(0)).collect()
    }

    async fn blame_candidates(
        &self,
        stream: &StreamKey,
        sha: Option<&str>,
        version: Option<&str>,
        by: Nanos,
    ) -> StoreResult<Vec<StoredDeployment>> {
        let (service, env) = (&stream.service, stream.env_text());
        let mut rows = Vec::new();
        for (column, value) in [("commit_sha", sha), ("version", version)] {
            if let Some(value) = value {
                let sql = sql::stream_deployments_where(column);
                rows.extend(self.query(&sql, &[service, &env, &value]).await?);
            }
        }
        rows.extend(
            self.query(&sql::stream_latest_by(), &[service, &env, &by])
                .await?,
        );
        rows.iter().map(crate::rows::deployment).collect()
    }

    async fn stream_facts(&self, stream: &StreamKey) -> StoreResult<Vec<DeploymentFact>> {
        let rows = self
            .query(&sql::stream_facts(), &[&stream.service, &stream.env_text()])
            .await?;
        rows.iter().map(crate::rows::deployment_fact).collect()
    }

    async fn stream_deployments(&self, stream: &StreamKey) -> StoreResult<Vec<StoredDeployment>> {
        let sql = sql::stream_deployments(stream.env.is_some());
        let rows = match &stream.env {
            Some(env) => self.query(&sql, &[&stream.service, env]).await?,
            None => self.query(&sql, &[&stream.service]).await?,
        };
        rows.iter().map(crate::rows::deployment).collect()
    }

    async fn stream_repositories(&self) -> StoreResult<Vec<(StreamKey, String)>> {
        let rows = self.query(sql::STREAM_REPOSITORIES, &[]).await?;
        rows.iter()
            .map(|row| Ok((crate::rows::stream_key(row, 0)?, row.required_text(2)?)))
            .collect()
    }

    async fn read_facts(&self, query: &FactQuery) -> StoreResult<Vec<DeploymentFact>> {
        let (sql, params) = sql::facts_query(sql::FACT_COLUMNS, query, Dialect::Postgres);
        let sql = format!("{sql} ORDER BY f.finished_at, f.id");
        self.query_with(&sql, &params, crate::rows::deployment_fact)
            .await
    }

    async fn fact_streams(
        &self,
        query: &FactQuery,
    ) -> StoreResult<Vec<(StreamKey, Option<String>)>> {
        let (sql, params) = sql::facts_query(sql::FACT_STREAM_COLUMNS, query, Dialect::Postgres);
        self.query_with(&sql, &params, crate::rows::stream_and_team)
            .await
    }

    async fn read_day_tallies(&self, query: &TallyQuery) -> StoreResult<Vec<DayTally>> {
        let (sql, params) = tallies::tallies_query(query);
        self.query_with(&sql, &params, tallies::day_tally).await
    }

    async fn staleness(&self) -> StoreResult<crate::Staleness> {
        let rows = self.query(sql::staleness(Dialect::Postgres), &[]).await?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::Database("no staleness row".into()))?;
        Ok(crate::Staleness {
            streams: u64::try_from(row.try_get::<_, i64>(0)?).unwrap_or(0),
            oldest_mark_age: row.try_get(1)?,
            days: u64::try_from(row.try_get::<_, i64>(2)?).unwrap_or(0),
        })
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> StoreResult<()> {
        let rows = self.query(sql::SCHEMA_VERSION, &[]).await?;
        let version: Option<i64> = rows
            .first()
            .map(|row| row.try_get(0))
            .transpose()?
            .flatten();
        crate::check_schema(version, migrations::LATEST)?;
        self.health.check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_name_their_outage() {
        for (code, outage) in [
            ("53100", Some(Outage::DiskFull)),
            ("28P01", Some(Outage::AuthenticationRefused)),
            ("28000", Some(Outage::AuthenticationRefused)),
            ("3D000", Some(Outage::NoDatabase)),
            ("55P03", Some(Outage::LockWait)),
            ("40P01", Some(Outage::LockWait)),
            ("57014", Some(Outage::StatementTimeout)),
            ("42P01", Some(Outage::SchemaMissing)),
            ("08006", Some(Outage::Unreachable)),
            ("57P01", Some(Outage::Unreachable)),
            ("23505", None),
        ] {
            assert_eq!(outage_of(code), outage, "{code}");
        }
    }
}
