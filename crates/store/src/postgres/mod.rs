//! The PostgreSQL store, for many stateless server processes on one database. Every write is
//! one transaction on a pooled connection, answered after its commit; PostgreSQL's own group
//! commit batches the fsyncs. Nothing is cached in the process: any node sees every other's
//! writes at once.

mod migrations;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use dora_core::derive::{FailureScope, Named};
use dora_core::metrics::DeploymentFact;
use dora_core::model::{
    deployment_attributes, failure_attributes, Commit, Deployment, DeploymentPatch,
    DeploymentSelector, Failure, ListQuery, StoredDeployment,
};
use dora_core::query::numeric_value;
use dora_core::rollup::{self, DayTally};
use dora_core::tier::Tier;
use dora_core::time::Nanos;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::query_sql::{Dialect, SqlParam};
use crate::rows::{encode_nanos, json_list_text, to_json_list, Columns};
use crate::sql::{self, for_postgres, EventTable};
use crate::tallies;
use crate::{
    DirtyStream, FactQuery, Outage, Store, StoreError, StoreOptions, StoreResult, StreamKey,
    TallyQuery, TokenRecord,
};

/// An arbitrary constant naming the lock that makes the first admin token unique.
const FIRST_TOKEN_LOCK: i64 = 0x0064_6f72_6174_6f6b;

/// An arbitrary constant naming the lock that lets one node at a time tally days.
const DAY_TALLY_LOCK: i64 = 0x0064_6f72_6164_6179;

/// Connections per server process.
const POOL_SIZE: usize = 16;

pub struct PostgresStore {
    pool: Pool,
    health: crate::WriteHealth,
    /// Every write is a commit of its own: batches of one.
    batches: crate::BatchCounter,
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
        "55P03" => Some(Outage::LockWait),
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
        Ok(Self {
            pool,
            health: crate::WriteHealth::default(),
            batches: crate::BatchCounter::default(),
        })
    }

    /// A pooled connection, and a guard that cancels its running statement if the caller goes
    /// away (its request future dropped) before [`CancelGuard::done`].
    async fn connection(&self) -> StoreResult<(deadpool_postgres::Object, CancelGuard)> {
        let client = self.pool.get().await?;
        let guard = CancelGuard(Some(client.cancel_token()));
        Ok((client, guard))
    }

    /// Runs one write in its own transaction.
    async fn write<T>(
        &self,
        op: impl AsyncFnOnce(&deadpool_postgres::Transaction<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let result = async {
            let (mut client, guard) = self.connection().await?;
            let tx = client.transaction().await?;
            let result = op(&tx).await?;
            tx.commit().await?;
            guard.done();
            Ok(result)
        }
        .await;
        self.health.record(&result);
        if result.is_ok() {
            self.batches.record(1);
        }
        result
    }

    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Vec<Row>> {
        let (client, guard) = self.connection().await?;
        let statement = client.prepare_cached(&for_postgres(sql)).await?;
        let rows = client.query(&statement, params).await?;
        guard.done();
        Ok(rows)
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

async fn execute(
    tx: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<u64> {
    let statement = tx.prepare_cached(&for_postgres(sql)).await?;
    Ok(tx.execute(&statement, params).await?)
}

async fn query(
    tx: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<Vec<Row>> {
    let statement = tx.prepare_cached(&for_postgres(sql)).await?;
    Ok(tx.query(&statement, params).await?)
}

async fn query_opt(
    tx: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<Option<Row>> {
    let statement = tx.prepare_cached(&for_postgres(sql)).await?;
    Ok(tx.query_opt(&statement, params).await?)
}

/// Replaces the searchable attributes of one event.
async fn put_attrs(
    tx: &impl GenericClient,
    table: &EventTable,
    owner: i64,
    attrs: &[(String, String)],
) -> StoreResult<()> {
    execute(tx, &sql::delete_attrs(table), &[&owner]).await?;
    let insert = tx
        .prepare_cached(&for_postgres(&sql::insert_attr(table)))
        .await?;
    for (key, value) in attrs {
        tx.execute(&insert, &[&owner, key, value, &numeric_value(value)])
            .await?;
    }
    Ok(())
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

    /// Runs generated SQL (already in PostgreSQL's dialect) with its parameters.
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
        let statement = client.prepare(sql).await?;
        let rows = client.query(&statement, &refs).await?;
        guard.done();
        rows.iter().map(map).collect()
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn put_deployment(&self, d: Deployment) -> StoreResult<()> {
        self.write(async |tx| put_deployment(tx, &d).await).await
    }

    async fn put_deployments(&self, deployments: Vec<Deployment>) -> StoreResult<()> {
        self.write(async |tx| {
            for d in &deployments {
                put_deployment(tx, d).await?;
            }
            Ok(())
        })
        .await
    }

    async fn put_failure(&self, f: Failure) -> StoreResult<()> {
        self.write(async |tx| {
            // What the failure concerned before a replacement, and what it concerns now.
            mark_streams_of_failure(tx, &f.id).await?;
            mark_failure_scope(tx, FailureScope::of(&f)).await?;
            let git = f.git.as_ref();
            let row = query_opt(
                tx,
                sql::PUT_FAILURE,
                &[
                    &f.id,
                    &f.name,
                    &to_json_list(&f.services),
                    &f.team,
                    &f.env,
                    &f.severity,
                    &f.started_at,
                    &f.finished_at,
                    &f.version,
                    &git.map(|g| &g.repository_url),
                    &git.map(|g| &g.repository_id),
                    &git.map(|g| &g.commit_sha),
                    &to_json_list(&f.custom_tags),
                    &f.source,
                    &dora_core::time::now(),
                ],
            )
            .await?
            .ok_or_else(|| StoreError::Database("upsert returned no row".into()))?;
            let pk: i64 = row.try_get(0)?;
            put_attrs(tx, &sql::FAILURES, pk, &failure_attributes(&f)).await
        })
        .await
    }

    async fn patch_deployment(
        &self,
        selector: DeploymentSelector,
        patch: DeploymentPatch,
    ) -> StoreResult<bool> {
        self.write(async |tx| {
            let row = match &selector {
                DeploymentSelector::Id(id) => {
                    query_opt(tx, sql::DEPLOYMENT_PK_BY_ID, &[id]).await?
                }
                DeploymentSelector::Version {
                    service,
                    env,
                    version,
                } => query_opt(tx, sql::DEPLOYMENT_PK_BY_VERSION, &[service, env, version]).await?,
            };
            let Some(row) = row else { return Ok(false) };
            let pk: i64 = row.try_get(0)?;
            if let Some(stream) = query_opt(tx, sql::DEPLOYMENT_STREAM_BY_PK, &[&pk]).await? {
                let (service, env): (String, Option<String>) =
                    (stream.try_get(0)?, stream.try_get(1)?);
                execute(tx, sql::MARK_STREAM, &[&service, &env]).await?;
            }
            if let Some(change_failure) = patch.change_failure {
                execute(tx, sql::SET_CHANGE_FAILURE, &[&change_failure, &pk]).await?;
            }
            if let Some(remediation) = &patch.remediation {
                let (id, version) = remediation.target.id_and_version();
                execute(
                    tx,
                    sql::SET_REMEDIATION,
                    &[&remediation.kind.as_str(), &id, &version, &pk],
                )
                .await?;
            }
            Ok(true)
        })
        .await
    }

    async fn delete_deployment(&self, id: &str) -> StoreResult<bool> {
        self.write(async |tx| {
            mark_stream_of_deployment(tx, id).await?;
            delete(tx, &sql::DEPLOYMENTS, id).await
        })
        .await
    }

    async fn delete_failure(&self, id: &str) -> StoreResult<bool> {
        self.write(async |tx| {
            mark_streams_of_failure(tx, id).await?;
            delete(tx, &sql::FAILURES, id).await
        })
        .await
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
        let sql = for_postgres(&sql::failures_naming(teams.len()));
        self.query_with(&sql, &params, crate::rows::failure).await
    }

    async fn failures_resolved(&self, from: Nanos, to: Nanos) -> StoreResult<Vec<Failure>> {
        let rows = self.query(&sql::failures_resolved(), &[&from, &to]).await?;
        rows.iter().map(crate::rows::failure).collect()
    }

    async fn put_commits(&self, commits: Vec<Commit>) -> StoreResult<u64> {
        self.write(async |tx| {
            let insert = tx.prepare_cached(&for_postgres(sql::INSERT_COMMIT)).await?;
            let update = tx
                .prepare_cached(&for_postgres(sql::SET_COMMIT_MERGE_REQUEST))
                .await?;
            let mut new = 0;
            for c in &commits {
                let mr = c.merge_request.as_ref();
                let (number, created, merged) = (
                    mr.map(|m| m.number),
                    mr.and_then(|m| m.created_at),
                    mr.and_then(|m| m.merged_at),
                );
                let inserted = tx
                    .execute(
                        &insert,
                        &[
                            &c.repository_id,
                            &c.sha,
                            &c.parents.join(" "),
                            &c.authored_at,
                            &c.committed_at,
                            &c.author,
                            &c.subject,
                            &number,
                            &created,
                            &merged,
                        ],
                    )
                    .await?;
                if inserted > 0 {
                    new += 1;
                } else if mr.is_some() {
                    tx.execute(
                        &update,
                        &[&c.repository_id, &c.sha, &number, &created, &merged],
                    )
                    .await?;
                }
            }
            for repository in sql::distinct_repositories(&commits) {
                execute(tx, &sql::mark_streams_of_repository(), &[&repository]).await?;
            }
            Ok(new)
        })
        .await
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

    async fn commits_of(&self, repository_id: &str) -> StoreResult<Vec<Commit>> {
        let rows = self.query(sql::COMMITS_OF, &[&repository_id]).await?;
        rows.iter().map(crate::rows::commit).collect()
    }

    async fn env_tiers(&self) -> StoreResult<Vec<(String, Tier)>> {
        let rows = self.query(sql::ENV_TIERS, &[]).await?;
        rows.iter().map(crate::rows::env_tier).collect()
    }

    async fn set_env_tier(&self, env: &str, tier: Option<Tier>) -> StoreResult<bool> {
        self.write(async |tx| {
            let changed = match tier {
                Some(tier) => execute(tx, sql::SET_ENV_TIER, &[&env, &tier.as_str()]).await?,
                None => execute(tx, sql::DELETE_ENV_TIER, &[&env]).await?,
            };
            execute(tx, &sql::mark_streams_of_env(), &[&env]).await?;
            Ok(changed > 0)
        })
        .await
    }

    async fn project_sources(&self) -> StoreResult<Vec<(Option<String>, String)>> {
        let rows = self.query(sql::PROJECT_SOURCES, &[]).await?;
        rows.iter()
            .map(|row| Ok((row.text(0)?, row.required_text(1)?)))
            .collect()
    }

    async fn create_token(&self, token: TokenRecord) -> StoreResult<()> {
        self.write(async |tx| {
            execute(
                tx,
                sql::INSERT_TOKEN,
                &[
                    &token.id,
                    &token.name,
                    &token.hash,
                    &token.scopes_text(),
                    &token.created_at,
                    &token.restrictions_text(),
                    &token.expires_at,
                ],
            )
            .await
            .map(drop)
        })
        .await
    }

    async fn create_first_token(&self, token: TokenRecord) -> StoreResult<bool> {
        self.write(async |tx| {
            // Without the lock two nodes starting together would both see no token.
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&FIRST_TOKEN_LOCK])
                .await?;
            let inserted = execute(
                tx,
                sql::INSERT_FIRST_TOKEN,
                &[
                    &token.id,
                    &token.name,
                    &token.hash,
                    &token.scopes_text(),
                    &token.created_at,
                    &token.restrictions_text(),
                    &token.expires_at,
                ],
            )
            .await?;
            Ok(inserted > 0)
        })
        .await
    }

    async fn find_token(&self, id: &str) -> StoreResult<Option<TokenRecord>> {
        let rows = self.query(&sql::find_token(), &[&id]).await?;
        rows.first().map(crate::rows::token).transpose()
    }

    async fn list_tokens(&self) -> StoreResult<Vec<TokenRecord>> {
        let rows = self.query(&sql::list_tokens(), &[]).await?;
        rows.iter().map(crate::rows::token).collect()
    }

    async fn revoke_token(&self, id: &str, at: Nanos) -> StoreResult<bool> {
        self.write(async |tx| Ok(execute(tx, sql::REVOKE_TOKEN, &[&id, &at]).await? > 0))
            .await
    }

    async fn touch_token(&self, id: &str, at: Nanos) -> StoreResult<()> {
        let recent = at - crate::TOKEN_USE_GRAIN;
        self.write(async |tx| {
            execute(tx, sql::TOUCH_TOKEN, &[&id, &at, &recent])
                .await
                .map(drop)
        })
        .await
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
        rows.iter()
            .map(|row| {
                Ok(DirtyStream {
                    stream: crate::rows::stream_key(row, 0)?,
                    seq: row.required_int(2)?,
                })
            })
            .collect()
    }

    async fn newest_mark(&self, stream: &StreamKey) -> StoreResult<Option<i64>> {
        let rows = self
            .query(sql::NEWEST_MARK, &[&stream.service, &stream.env_text()])
            .await?;
        match rows.first() {
            Some(row) => Ok(row.try_get(0)?),
            None => Ok(None),
        }
    }

    async fn mark_streams_dirty(&self, streams: Vec<StreamKey>) -> StoreResult<()> {
        self.write(async |tx| {
            for stream in &streams {
                execute(tx, sql::MARK_STREAM, &[&stream.service, &stream.env]).await?;
            }
            Ok(())
        })
        .await
    }

    async fn replace_stream_facts(
        &self,
        dirty: DirtyStream,
        facts: Vec<DeploymentFact>,
    ) -> StoreResult<bool> {
        self.write(async |tx| {
            let (service, env) = (&dirty.stream.service, dirty.stream.env_text());
            let since = query_opt(tx, sql::MARKED_SINCE, &[service, &env, &dirty.seq]).await?;
            if since.map(|row| row.try_get::<_, bool>(0)).transpose()? == Some(true) {
                return Ok(false);
            }
            if execute(tx, sql::CLAIM_STREAM, &[service, &env, &dirty.seq]).await? == 0 {
                return Ok(false);
            }
            let stored_rows = query(tx, &sql::stream_facts(), &[service, &env]).await?;
            let stored = stored_rows
                .iter()
                .map(crate::rows::deployment_fact)
                .collect::<StoreResult<Vec<_>>>()?;
            let changes = tallies::fact_changes(stored, &facts);
            for id in &changes.delete {
                execute(tx, tallies::DELETE_FACT, &[id, service, &env]).await?;
            }
            let put = tx.prepare_cached(&for_postgres(sql::PUT_FACT)).await?;
            for f in changes.put {
                tx.execute(
                    &put,
                    &[
                        &f.id,
                        &f.finished_at,
                        &f.service,
                        &f.team,
                        &f.env.as_deref().unwrap_or(""),
                        &f.tier.as_str(),
                        &f.project,
                        &f.failed,
                        &f.rework,
                        &f.recovery_time,
                        &encode_nanos(&f.lead_times),
                        &encode_nanos(&f.merge_lead_times),
                    ],
                )
                .await?;
            }
            for day in changes.days {
                execute(tx, tallies::MARK_DAY, &[&day]).await?;
            }
            Ok(true)
        })
        .await
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

    async fn refresh_day_tallies(&self, days: usize) -> StoreResult<usize> {
        self.write(async |tx| {
            // One tallier at a time across nodes: each claims its days' marks before reading
            // their facts, so a fact written meanwhile leaves a mark for the next one, and no
            // tallier stores an older tally over a newer one.
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&DAY_TALLY_LOCK])
                .await?;
            let limit = i64::try_from(days).unwrap_or(i64::MAX);
            let days = query(tx, tallies::DIRTY_DAYS, &[&limit]).await?;
            let days = days
                .iter()
                .map(|row| row.required_int(0))
                .collect::<StoreResult<Vec<i64>>>()?;
            for &day in &days {
                execute(tx, tallies::CLAIM_DAY, &[&day]).await?;
                let (from, to) = tallies::day_range(day);
                let rows = query(tx, &tallies::facts_between(), &[&from, &to]).await?;
                let facts = rows
                    .iter()
                    .map(crate::rows::deployment_fact)
                    .collect::<StoreResult<Vec<_>>>()?;
                execute(tx, tallies::DELETE_DAY, &[&day]).await?;
                let put = tx.prepare_cached(&for_postgres(tallies::PUT_TALLY)).await?;
                for t in rollup::tally(&facts) {
                    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
                    tx.execute(
                        &put,
                        &[
                            &t.group,
                            &t.tier.as_str(),
                            &t.day,
                            &count(t.deployments),
                            &count(t.failed),
                            &count(t.rework),
                            &encode_nanos(&t.lead_times),
                            &encode_nanos(&t.merge_lead_times),
                            &encode_nanos(&t.recovery_times),
                        ],
                    )
                    .await?;
                }
            }
            Ok(days.len())
        })
        .await
    }

    async fn read_day_tallies(&self, query: &TallyQuery) -> StoreResult<Vec<DayTally>> {
        let (sql, params) = tallies::tallies_query(query);
        self.query_with(&for_postgres(&sql), &params, tallies::day_tally)
            .await
    }

    async fn settle_fact_setting(&self, name: &str, value: i64) -> StoreResult<bool> {
        self.write(async |tx| {
            let stored = query_opt(tx, sql::FACT_SETTING, &[&name]).await?;
            if let Some(row) = stored {
                if row.try_get::<_, i64>(0)? == value {
                    return Ok(false);
                }
            }
            execute(tx, sql::SET_FACT_SETTING, &[&name, &value]).await?;
            execute(tx, &sql::mark_all_streams(), &[]).await?;
            Ok(true)
        })
        .await
    }

    fn write_stats(&self) -> crate::WriteStats {
        self.batches.stats(self.pool.status().waiting as u64)
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

async fn delete(tx: &impl GenericClient, table: &EventTable, id: &str) -> StoreResult<bool> {
    let Some(row) = query_opt(tx, &sql::delete_event(table), &[&id]).await? else {
        return Ok(false);
    };
    let pk: i64 = row.try_get(0)?;
    execute(tx, &sql::delete_attrs(table), &[&pk]).await?;
    Ok(true)
}

/// Marks the stream a stored deployment is in, if it exists.
async fn mark_stream_of_deployment(tx: &impl GenericClient, id: &str) -> StoreResult<()> {
    if let Some(row) = query_opt(tx, sql::DEPLOYMENT_STREAM_BY_ID, &[&id]).await? {
        let (service, env): (String, Option<String>) = (row.try_get(0)?, row.try_get(1)?);
        execute(tx, sql::MARK_STREAM, &[&service, &env]).await?;
    }
    Ok(())
}

/// Marks the streams a stored failure concerns, if it exists.
async fn mark_streams_of_failure(tx: &impl GenericClient, id: &str) -> StoreResult<()> {
    if let Some(row) = query_opt(tx, sql::FAILURE_SCOPE_BY_ID, &[&id]).await? {
        let services = json_list_text(&row.try_get::<_, String>(0)?)?;
        let (team, env): (Option<String>, Option<String>) = (row.try_get(1)?, row.try_get(2)?);
        let scope = FailureScope::new(&services, team.as_deref(), env.as_deref());
        mark_failure_scope(tx, scope).await?;
    }
    Ok(())
}

/// Marks the streams a failure with this scope concerns.
async fn mark_failure_scope(tx: &impl GenericClient, scope: FailureScope<'_>) -> StoreResult<()> {
    let env = scope.env;
    match scope.named {
        Named::Services(services) => {
            for service in sql::sorted_unique(services.iter().map(String::as_str)) {
                execute(tx, &sql::mark_streams_of_service(), &[&service, &env]).await?;
            }
        }
        Named::Team(team) => {
            execute(tx, &sql::mark_streams_of_team(), &[&team, &env]).await?;
        }
        Named::Nobody => {}
    }
    Ok(())
}

/// Inserts or replaces one deployment inside a transaction.
async fn put_deployment(tx: &impl GenericClient, d: &Deployment) -> StoreResult<()> {
    // A replacement may move the deployment to another stream: both change.
    mark_stream_of_deployment(tx, &d.id).await?;
    execute(tx, sql::MARK_STREAM, &[&d.service, &d.env]).await?;
    let git = d.git.as_ref();
    let row = query_opt(
        tx,
        sql::PUT_DEPLOYMENT,
        &[
            &d.id,
            &d.service,
            &d.env,
            &d.team,
            &d.version,
            &d.started_at,
            &d.finished_at,
            &git.map(|g| &g.repository_url),
            &git.map(|g| &g.repository_id),
            &git.map(|g| &g.commit_sha),
            &to_json_list(&d.custom_tags),
            &d.source,
            &dora_core::time::now(),
        ],
    )
    .await?
    .ok_or_else(|| StoreError::Database("upsert returned no row".into()))?;
    let pk: i64 = row.try_get(0)?;
    execute(
        tx,
        sql::PUT_PROJECT_SOURCE,
        &[&git.map(|g| &g.repository_id), &d.service],
    )
    .await?;
    put_attrs(tx, &sql::DEPLOYMENTS, pk, &deployment_attributes(d)).await
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
