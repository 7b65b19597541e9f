//! The embedded SQLite store: one file in WAL mode. One writer thread owns the write connection
//! and commits whatever has queued as one transaction (group commit: one fsync for many
//! requests); reads run on a small pool of read-only connections.

mod migrations;
mod rows;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dora_core::metrics::DeploymentFact;
use dora_core::model::{Failure, ListQuery, StoredDeployment};
use dora_core::rollup::DayTally;
use dora_core::tier::Tier;
use dora_core::time::Nanos;
use dora_core::webhook::{Alias, Hook, Provider};
use rusqlite::{Connection, OpenFlags};

use crate::query_sql::{Dialect, SqlParam};
use crate::rows::Columns;
use crate::sql;
use crate::tallies;
use crate::write::{WriteJob, WriteOp, WRITE_QUEUE};
use crate::{
    DirtyStream, FactQuery, Outage, Store, StoreError, StoreOptions, StoreResult, StreamKey,
    TallyQuery, TokenRecord,
};
use crate::{KeptDelivery, NumberedCommit, StreamHead};
use rows::query_all;
use tokio::sync::{mpsc, oneshot};

/// Page cache of the writer connection, and of each reader (KiB). Not more for the writer:
/// SQLite trims the cache to the file's size at the end of every write transaction by a scan
/// that grows with the cache (at 256 MiB it took a fifth of the writer's time under
/// single-event intake at scale M); pages past it come from the memory map and the OS.
const WRITER_CACHE_KIB: i64 = 32 * 1024;
const READER_CACHE_KIB: i64 = 32 * 1024;
/// Reads through a memory map of the file's first bytes (shared by every connection through
/// the OS page cache) instead of copying pages.
const MMAP_BYTES: i64 = 256 * 1024 * 1024;
/// Read connections kept open for reuse.
const IDLE_READERS: usize = 8;

pub struct SqliteStore {
    /// The queue of the one writer thread.
    writes: mpsc::Sender<WriteJob>,
    readers: Arc<ReadPool>,
    health: crate::WriteHealth,
    file: Arc<FileIdentity>,
    batches: Arc<crate::BatchCounter>,
}

impl SqliteStore {
    /// Opens the database file, creating and migrating it if needed, and starts the writer.
    pub async fn open(path: String, options: &StoreOptions) -> StoreResult<Self> {
        let path = PathBuf::from(path);
        let writer_path = path.clone();
        let (migrate, busy) = (options.migrate, options.lock_timeout);
        let conn = tokio::task::spawn_blocking(move || -> StoreResult<Connection> {
            let mut conn = Connection::open(&writer_path)?;
            configure(&conn, busy)?;
            migrations::check_or_run(&mut conn, migrate)?;
            Ok(conn)
        })
        .await
        .map_err(|e| StoreError::Database(e.to_string()))??;
        let file = Arc::new(FileIdentity::of(&path)?);
        let (writes, queue) = mpsc::channel(WRITE_QUEUE);
        let writer_file = Arc::clone(&file);
        let batches = Arc::new(crate::BatchCounter::default());
        let writer_batches = Arc::clone(&batches);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer::run(conn, queue, &writer_file, &writer_batches))
            .map_err(|e| StoreError::Database(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            writes,
            readers: Arc::new(ReadPool {
                path,
                idle: Mutex::new(Vec::new()),
                busy,
                statement_timeout: options.statement_timeout,
            }),
            health: crate::WriteHealth::default(),
            file,
            batches,
        })
    }

    /// Runs `f` on a read connection, interrupted past the statement timeout or as soon as the
    /// caller goes away (this future dropped).
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let pool = Arc::clone(&self.readers);
        let abandoned = Arc::new(AtomicBool::new(false));
        let _abandon_on_drop = AbandonOnDrop(Arc::clone(&abandoned));
        tokio::task::spawn_blocking(move || pool.with(&abandoned, f))
            .await
            .map_err(|e| StoreError::Database(e.to_string()))?
    }
}

/// Copies the SQLite database at `source` into a new file `destination`, consistently, while
/// other processes (a running server) read and write it: `VACUUM INTO`, one read transaction, so
/// the copy holds exactly the writes committed before it began, and is compact.
pub async fn backup(source: PathBuf, destination: PathBuf) -> StoreResult<()> {
    tokio::task::spawn_blocking(move || -> StoreResult<()> {
        if destination.exists() {
            return Err(StoreError::Database(format!(
                "{} exists already; a backup never overwrites a file",
                destination.display()
            )));
        }
        let conn = Connection::open_with_flags(&source, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.busy_timeout(Duration::from_secs(30))?;
        let target = destination.to_string_lossy().into_owned();
        conn.execute("VACUUM INTO ?1", [target])?;
        Ok(())
    })
    .await
    .map_err(|e| StoreError::Database(e.to_string()))?
}

/// Sets its flag when dropped: the read it guards is no longer awaited.
struct AbandonOnDrop(Arc<AtomicBool>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Which file the store opened, so that a file deleted or replaced under the server is noticed
/// before a write is acknowledged into it (it would be gone at the next start).
pub(crate) struct FileIdentity {
    path: PathBuf,
    #[cfg(unix)]
    inode: (u64, u64),
}

impl FileIdentity {
    fn of(path: &std::path::Path) -> StoreResult<Self> {
        let metadata = std::fs::metadata(path).map_err(|e| {
            StoreError::unavailable(Outage::Unreachable, format!("{}: {e}", path.display()))
        })?;
        #[cfg(not(unix))]
        let _ = metadata;
        Ok(Self {
            path: path.to_path_buf(),
            #[cfg(unix)]
            inode: {
                use std::os::unix::fs::MetadataExt;
                (metadata.dev(), metadata.ino())
            },
        })
    }

    /// Still the file that was opened, under the same path.
    pub(crate) fn check(&self) -> StoreResult<()> {
        let replaced = |why: String| {
            Err(StoreError::unavailable(
                Outage::FileReplaced,
                format!("{}: {why}", self.path.display()),
            ))
        };
        match Self::of(&self.path) {
            Err(_) => replaced("the file is gone".into()),
            #[cfg(unix)]
            Ok(now) if now.inode != self.inode => replaced("another file has its name".into()),
            Ok(_) => Ok(()),
        }
    }
}

/// Settings every connection needs: WAL, fsync on every commit, patience with other writers.
fn configure(conn: &Connection, busy: Duration) -> StoreResult<()> {
    conn.busy_timeout(busy)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Every write touches several indexes at random places (ids, attributes): a page cache
    // far above SQLite's 2 MiB default keeps their inner pages in memory.
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
    Ok(())
}

/// How often (in virtual machine steps) a running read checks its deadline.
const PROGRESS_STEPS: i32 = 10_000;

struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// How long a read waits on a lock (another process migrating, say).
    busy: Duration,
    statement_timeout: Duration,
}

impl ReadPool {
    /// Runs `f` on an idle or new read connection; SQLite interrupts it (an error) once it runs
    /// past the statement timeout or `abandoned` is set.
    fn with<T>(
        &self,
        abandoned: &Arc<AtomicBool>,
        f: impl FnOnce(&Connection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let reused = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match reused {
            Some(conn) => conn,
            None => {
                let conn = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                conn.busy_timeout(self.busy)?;
                conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)?;
                conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
                conn
            }
        };
        let deadline = Instant::now() + self.statement_timeout;
        let abandoned = Arc::clone(abandoned);
        conn.progress_handler(
            PROGRESS_STEPS,
            Some(move || abandoned.load(Ordering::Relaxed) || Instant::now() >= deadline),
        );
        let result = f(&conn);
        conn.progress_handler(PROGRESS_STEPS, None::<fn() -> bool>);
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < IDLE_READERS {
                idle.push(conn);
            }
        }
        result
    }
}

pub(crate) fn to_sql_values(params: Vec<SqlParam>) -> Vec<rusqlite::types::Value> {
    params
        .into_iter()
        .map(|p| match p {
            SqlParam::Text(text) => rusqlite::types::Value::Text(text),
            SqlParam::Real(number) => rusqlite::types::Value::Real(number),
            SqlParam::Int(number) => rusqlite::types::Value::Integer(number),
        })
        .collect()
}

/// The first row a query found, if any.
fn first<T>(found: Vec<T>) -> Option<T> {
    found.into_iter().next()
}

#[async_trait]
impl Store for SqliteStore {
    /// Queues the write for the writer thread and waits for its commit.
    async fn write(&self, op: WriteOp) -> StoreResult<u64> {
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(WriteJob { op, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        let result = answer.await.map_err(|_| StoreError::Closed)?;
        self.health.record(&result);
        result
    }

    fn write_stats(&self) -> crate::WriteStats {
        let queued = self.writes.max_capacity() - self.writes.capacity();
        self.batches.stats(queued as u64)
    }

    async fn get_deployment(&self, id: &str) -> StoreResult<Option<StoredDeployment>> {
        let id = id.to_string();
        self.read(move |conn| {
            let sql = sql::get_event(&sql::DEPLOYMENTS);
            query_all(conn, &sql, [id], |row| crate::rows::deployment(row)).map(first)
        })
        .await
    }

    async fn get_failure(&self, id: &str) -> StoreResult<Option<Failure>> {
        let id = id.to_string();
        self.read(move |conn| {
            let sql = sql::get_event(&sql::FAILURES);
            query_all(conn, &sql, [id], |row| crate::rows::failure(row)).map(first)
        })
        .await
    }

    async fn list_deployments(&self, query: &ListQuery) -> StoreResult<Vec<StoredDeployment>> {
        let (sql, params) = sql::list(query, &sql::DEPLOYMENTS, Dialect::Sqlite);
        self.read(move |conn| {
            let params = rusqlite::params_from_iter(to_sql_values(params));
            query_all(conn, &sql, params, |row| crate::rows::deployment(row))
        })
        .await
    }

    async fn list_failures(&self, query: &ListQuery) -> StoreResult<Vec<Failure>> {
        let (sql, params) = sql::list(query, &sql::FAILURES, Dialect::Sqlite);
        self.read(move |conn| {
            let params = rusqlite::params_from_iter(to_sql_values(params));
            query_all(conn, &sql, params, |row| crate::rows::failure(row))
        })
        .await
    }

    async fn failures_naming(&self, service: &str, teams: &[String]) -> StoreResult<Vec<Failure>> {
        let sql = sql::failures_naming(teams.len());
        let mut params = vec![service.to_string()];
        params.extend(teams.iter().cloned());
        self.read(move |conn| {
            query_all(conn, &sql, rusqlite::params_from_iter(params), |row| {
                crate::rows::failure(row)
            })
        })
        .await
    }

    async fn failures_resolved(&self, from: Nanos, to: Nanos) -> StoreResult<Vec<Failure>> {
        self.read(move |conn| {
            query_all(conn, &sql::failures_resolved(), [from, to], |row| {
                crate::rows::failure(row)
            })
        })
        .await
    }

    async fn known_commits(
        &self,
        repository_id: &str,
        shas: &[String],
    ) -> StoreResult<Vec<String>> {
        let (repository_id, shas) = (repository_id.to_string(), shas.to_vec());
        self.read(move |conn| {
            let mut known = Vec::new();
            let mut statement =
                conn.prepare_cached("SELECT 1 FROM commits WHERE repository_id = ?1 AND sha = ?2")?;
            for sha in shas {
                if statement.exists(rusqlite::params![repository_id, sha])? {
                    known.push(sha);
                }
            }
            Ok(known)
        })
        .await
    }

    async fn commit_graph(&self, repository_id: &str) -> StoreResult<Vec<NumberedCommit>> {
        let repository_id = repository_id.to_string();
        self.read(move |conn| {
            query_all(conn, &sql::commits_of(), [repository_id], |row| {
                crate::rows::numbered_commit(row)
            })
        })
        .await
    }

    async fn commit_count(&self, repository_id: &str) -> StoreResult<i64> {
        let repository_id = repository_id.to_string();
        self.read(move |conn| {
            let count = query_all(conn, sql::REPOSITORY_COMMITS, [repository_id], |row| {
                row.required_int(0)
            })?;
            Ok(first(count).unwrap_or(0))
        })
        .await
    }

    async fn commits_named(
        &self,
        repository_id: &str,
        shas: &[String],
    ) -> StoreResult<Vec<NumberedCommit>> {
        let (repository_id, shas) = (repository_id.to_string(), shas.to_vec());
        self.read(move |conn| {
            let mut found = Vec::with_capacity(shas.len());
            for sha in &shas {
                let one = query_all(conn, &sql::commit_by_sha(), [&repository_id, sha], |row| {
                    crate::rows::numbered_commit(row)
                })?;
                found.extend(one);
            }
            Ok(found)
        })
        .await
    }

    async fn env_tiers(&self) -> StoreResult<Vec<(String, Tier)>> {
        self.read(|conn| query_all(conn, sql::ENV_TIERS, [], |row| crate::rows::env_tier(row)))
            .await
    }

    async fn project_sources(&self) -> StoreResult<Vec<(Option<String>, String)>> {
        self.read(|conn| {
            query_all(conn, sql::PROJECT_SOURCES, [], |row| {
                Ok((row.text(0)?, row.required_text(1)?))
            })
        })
        .await
    }

    async fn find_token(&self, id: &str) -> StoreResult<Option<TokenRecord>> {
        let id = id.to_string();
        self.read(move |conn| {
            query_all(conn, &sql::find_token(), [id], |row| {
                crate::rows::token(row)
            })
            .map(first)
        })
        .await
    }

    async fn list_tokens(&self) -> StoreResult<Vec<TokenRecord>> {
        self.read(|conn| query_all(conn, &sql::list_tokens(), [], |row| crate::rows::token(row)))
            .await
    }

    async fn count_tokens(&self) -> StoreResult<u64> {
        self.read(|conn| {
            let count: i64 = conn.query_row(sql::COUNT_TOKENS, [], |r| r.get(0))?;
            Ok(u64::try_from(count).unwrap_or(0))
        })
        .await
    }

    async fn dirty_streams(&self) -> StoreResult<Vec<DirtyStream>> {
        self.read(|conn| {
            query_all(conn, sql::DIRTY_STREAMS, [], |row| {
                crate::rows::dirty_stream(row)
            })
        })
        .await
    }

    async fn stream_head(&self, stream: &StreamKey) -> StoreResult<Option<StreamHead>> {
        let (service, env) = (stream.service.clone(), stream.env_text().to_string());
        self.read(move |conn| {
            query_all(conn, sql::STREAM_HEAD, [service, env], |row| {
                crate::rows::stream_head(row)
            })
            .map(first)
        })
        .await
    }

    async fn fact_setting(&self, name: &str) -> StoreResult<Option<i64>> {
        let name = name.to_string();
        self.read(move |conn| {
            query_all(conn, sql::FACT_SETTING, [name], |row| row.required_int(0)).map(first)
        })
        .await
    }

    async fn newest_mark(&self, stream: &StreamKey) -> StoreResult<Option<DirtyStream>> {
        let (service, env) = (stream.service.clone(), stream.env_text().to_string());
        self.read(move |conn| {
            query_all(conn, sql::STREAM_MARKS, [service, env], |row| {
                crate::rows::dirty_stream(row)
            })
            .map(first)
        })
        .await
    }

    async fn hooks(&self, provider: Option<Provider>) -> StoreResult<Vec<Hook>> {
        self.read(move |conn| match provider {
            Some(p) => query_all(conn, &sql::hooks_of_provider(), [p.as_str()], |row| {
                crate::rows::hook(row)
            }),
            None => query_all(conn, &sql::list_hooks(), [], |row| crate::rows::hook(row)),
        })
        .await
    }

    async fn delivery_seen(&self, provider: Provider, delivery_id: &str) -> StoreResult<bool> {
        let id = delivery_id.to_string();
        self.read(move |conn| {
            let seen = query_all(conn, sql::DELIVERY_SEEN, [provider.as_str(), &id], |row| {
                Ok(row.boolean(0)? == Some(true))
            })?;
            Ok(seen.first() == Some(&true))
        })
        .await
    }

    async fn deliveries(&self, before: Option<i64>, limit: u32) -> StoreResult<Vec<KeptDelivery>> {
        let before = before.unwrap_or(i64::MAX);
        self.read(move |conn| {
            query_all(
                conn,
                &sql::deliveries_before(),
                rusqlite::params![before, limit],
                |row| crate::rows::delivery(row),
            )
        })
        .await
    }

    async fn object_as_of(
        &self,
        provider: Provider,
        object_id: &str,
    ) -> StoreResult<Option<Nanos>> {
        let id = object_id.to_string();
        self.read(move |conn| {
            let found = query_all(conn, sql::OBJECT_AS_OF, [provider.as_str(), &id], |row| {
                row.required_int(0)
            })?;
            Ok(found.first().copied())
        })
        .await
    }

    async fn gitlab_projects(&self) -> StoreResult<Vec<(i64, String)>> {
        self.read(|conn| {
            query_all(conn, sql::GITLAB_PROJECTS, [], |row| {
                Ok((row.required_int(0)?, row.required_text(1)?))
            })
        })
        .await
    }

    async fn aliases(&self) -> StoreResult<Vec<Alias>> {
        self.read(|conn| query_all(conn, sql::LIST_ALIASES, [], |row| crate::rows::alias(row)))
            .await
    }

    async fn marked_failures(&self, dirty: &DirtyStream) -> StoreResult<Vec<String>> {
        let (service, env) = (
            dirty.stream.service.clone(),
            dirty.stream.env_text().to_string(),
        );
        let seq = dirty.seq;
        self.read(move |conn| {
            query_all(
                conn,
                sql::MARKED_FAILURES,
                rusqlite::params![service, env, seq],
                |row| row.required_text(0),
            )
        })
        .await
    }

    async fn blame_candidates(
        &self,
        stream: &StreamKey,
        sha: Option<&str>,
        version: Option<&str>,
        by: Nanos,
    ) -> StoreResult<Vec<StoredDeployment>> {
        let (service, env) = (stream.service.clone(), stream.env_text().to_string());
        let named = [("commit_sha", sha), ("version", version)]
            .into_iter()
            .filter_map(|(column, value)| Some((column, value?.to_string())))
            .collect::<Vec<_>>();
        self.read(move |conn| {
            let map = |row: &rusqlite::Row<'_>| crate::rows::deployment(row);
            let mut found = Vec::new();
            for (column, value) in named {
                let sql = sql::stream_deployments_where(column);
                found.extend(query_all(conn, &sql, [&service, &env, &value], map)?);
            }
            let latest = sql::stream_latest_by();
            found.extend(query_all(
                conn,
                &latest,
                rusqlite::params![service, env, by],
                map,
            )?);
            Ok(found)
        })
        .await
    }

    async fn stream_facts(&self, stream: &StreamKey) -> StoreResult<Vec<DeploymentFact>> {
        let (service, env) = (stream.service.clone(), stream.env_text().to_string());
        self.read(move |conn| {
            query_all(conn, &sql::stream_facts(), [service, env], |row| {
                crate::rows::deployment_fact(row)
            })
        })
        .await
    }

    async fn stream_deployments(&self, stream: &StreamKey) -> StoreResult<Vec<StoredDeployment>> {
        let stream = stream.clone();
        self.read(move |conn| {
            let sql = sql::stream_deployments(stream.env.is_some());
            let map = |row: &rusqlite::Row<'_>| crate::rows::deployment(row);
            match &stream.env {
                Some(env) => query_all(conn, &sql, [&stream.service, env], map),
                None => query_all(conn, &sql, [&stream.service], map),
            }
        })
        .await
    }

    async fn stream_repositories(&self) -> StoreResult<Vec<(StreamKey, String)>> {
        self.read(|conn| {
            query_all(conn, sql::STREAM_REPOSITORIES, [], |row| {
                Ok((crate::rows::stream_key(row, 0)?, row.required_text(2)?))
            })
        })
        .await
    }

    async fn read_facts(&self, query: &FactQuery) -> StoreResult<Vec<DeploymentFact>> {
        let (sql, params) = sql::facts_query(sql::FACT_COLUMNS, query, Dialect::Sqlite);
        let sql = format!("{sql} ORDER BY f.finished_at, f.id");
        self.read(move |conn| {
            let params = rusqlite::params_from_iter(to_sql_values(params));
            query_all(conn, &sql, params, |row| crate::rows::deployment_fact(row))
        })
        .await
    }

    async fn fact_streams(
        &self,
        query: &FactQuery,
    ) -> StoreResult<Vec<(StreamKey, Option<String>)>> {
        let (sql, params) = sql::facts_query(sql::FACT_STREAM_COLUMNS, query, Dialect::Sqlite);
        self.read(move |conn| {
            let params = rusqlite::params_from_iter(to_sql_values(params));
            query_all(conn, &sql, params, |row| crate::rows::stream_and_team(row))
        })
        .await
    }

    async fn read_day_tallies(&self, query: &TallyQuery) -> StoreResult<Vec<DayTally>> {
        let (sql, params) = tallies::tallies_query(query);
        self.read(move |conn| {
            let params = rusqlite::params_from_iter(to_sql_values(params));
            query_all(conn, &sql, params, |row| tallies::day_tally(row))
        })
        .await
    }

    async fn staleness(&self) -> StoreResult<crate::Staleness> {
        self.read(|conn| {
            let staleness = conn.query_row(sql::staleness(Dialect::Sqlite), [], |row| {
                Ok(crate::Staleness {
                    streams: row.get(0)?,
                    oldest_mark_age: row.get(1)?,
                    days: row.get(2)?,
                })
            })?;
            Ok(staleness)
        })
        .await
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.file.check()?;
        let version = self
            .read(|conn| {
                let version: Option<i64> =
                    conn.query_row(sql::SCHEMA_VERSION, [], |row| row.get(0))?;
                Ok(version)
            })
            .await
            .or_else(|error| match error {
                // No table at all: no schema.
                StoreError::Database(detail) if detail.contains("no such table") => Ok(None),
                other => Err(other),
            })?;
        crate::check_schema(version, migrations::LATEST)?;
        self.health.check()
    }
}

#[cfg(test)]
mod tests {
    use dora_core::model::Sort;

    use super::*;

    /// Never ends on its own.
    const ENDLESS: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
        SELECT count(*) FROM c";

    async fn store_in(dir: &tempfile::TempDir, options: &StoreOptions) -> SqliteStore {
        let path = dir.path().join("outage.db").display().to_string();
        SqliteStore::open(path, options).await.unwrap()
    }

    #[tokio::test]
    async fn a_read_past_its_deadline_is_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            statement_timeout: Duration::from_millis(50),
            ..StoreOptions::default()
        };
        let store = store_in(&dir, &options).await;
        let error = store
            .read(|conn| Ok(conn.query_row(ENDLESS, [], |row| row.get::<_, i64>(0))?))
            .await
            .unwrap_err();
        assert_eq!(error.outage(), Some(Outage::StatementTimeout), "{error}");
        // The connection serves the next read.
        assert!(store.ping().await.is_ok());
    }

    #[tokio::test]
    async fn a_read_whose_caller_went_away_is_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(store_in(&dir, &StoreOptions::default()).await);
        let (started, running) = std::sync::mpsc::channel();
        let (ended, finished) = std::sync::mpsc::channel();
        // Poll the read until it runs, then drop it (as a request whose client left).
        let read = tokio::spawn(async move {
            store
                .read(move |conn| {
                    let _ = started.send(());
                    let result = conn.query_row(ENDLESS, [], |row| row.get::<_, i64>(0));
                    let _ = ended.send(result.map_err(StoreError::from).map_err(|e| e.outage()));
                    Ok(())
                })
                .await
        });
        tokio::task::spawn_blocking(move || running.recv().unwrap())
            .await
            .unwrap();
        read.abort();
        let outcome = tokio::task::spawn_blocking(move || finished.recv().unwrap())
            .await
            .unwrap();
        assert_eq!(outcome, Err(Some(Outage::StatementTimeout)));
    }

    #[tokio::test]
    async fn a_file_deleted_under_the_store_refuses_writes_and_readiness() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(&dir, &StoreOptions::default()).await;
        store.set_env_tier("a", Some(Tier::Staging)).await.unwrap();
        assert!(store.ping().await.is_ok());
        let path = dir.path().join("outage.db");
        std::fs::remove_file(&path).unwrap();
        let error = store
            .set_env_tier("b", Some(Tier::Staging))
            .await
            .unwrap_err();
        assert_eq!(error.outage(), Some(Outage::FileReplaced), "{error}");
        assert_eq!(
            store.ping().await.unwrap_err().outage(),
            Some(Outage::FileReplaced)
        );
        // Another file under the name is not the one opened either.
        std::fs::write(&path, b"").unwrap();
        let error = store
            .set_env_tier("b", Some(Tier::Staging))
            .await
            .unwrap_err();
        assert_eq!(error.outage(), Some(Outage::FileReplaced), "{error}");
    }

    #[test]
    fn a_full_database_is_a_disk_full_outage() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x BLOB); PRAGMA max_page_count = 2;")
            .unwrap();
        let error = conn
            .execute("INSERT INTO t VALUES (zeroblob(100000))", [])
            .map_err(StoreError::from)
            .unwrap_err();
        assert_eq!(error.outage(), Some(Outage::DiskFull), "{error}");
        // Readiness reports it until a write succeeds again.
        let health = crate::WriteHealth::default();
        health.record::<()>(&Err(error));
        assert_eq!(health.check().unwrap_err().outage(), Some(Outage::DiskFull));
        health.record(&Ok(()));
        assert!(health.check().is_ok());
    }

    #[tokio::test]
    async fn a_missing_schema_is_not_ready() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(&dir, &StoreOptions::default()).await;
        let path = dir.path().join("outage.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("DELETE FROM schema_migrations WHERE version > 1")
            .unwrap();
        assert_eq!(
            store.ping().await.unwrap_err().outage(),
            Some(Outage::SchemaMissing)
        );
        conn.execute_batch("DROP TABLE schema_migrations").unwrap();
        assert_eq!(
            store.ping().await.unwrap_err().outage(),
            Some(Outage::SchemaMissing)
        );
    }

    fn plan(conn: &Connection, query: &str) -> String {
        let query = ListQuery {
            from: None,
            to: None,
            limit: 1000,
            filter: dora_core::query::parse(query).unwrap(),
            sort: Sort::parse("-finished_at").unwrap(),
        };
        let (sql, params) = sql::list(&query, &sql::DEPLOYMENTS, Dialect::Sqlite);
        plan_of(conn, &sql, params)
    }

    /// SQLite's plan of a statement, a line a step.
    fn plan_of(conn: &Connection, sql: &str, params: Vec<SqlParam>) -> String {
        let mut explain = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let lines: Vec<String> = explain
            .query_map(rusqlite::params_from_iter(to_sql_values(params)), |row| {
                row.get(3)
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        lines.join("\n")
    }

    /// Issue 6's team metrics: the team's deployments come from the team index and the
    /// partial index of tagged ones, not from a read of every deployment; facts are matched
    /// to them on the tier index alone.
    #[test]
    fn facts_of_a_team_read_the_team_indexes() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrations::check_or_run(&mut conn, true).unwrap();
        let query = FactQuery {
            from: Some(0),
            to: Some(1),
            tiers: vec![Tier::Production],
            project: None,
            group: None,
            filter: dora_core::query::parse("team:loyalty").unwrap(),
        };
        let (sql, params) = sql::facts_query(sql::FACT_COLUMNS, &query, Dialect::Sqlite);
        let plan = plan_of(&conn, &sql, params);
        assert!(
            plan.contains("SEARCH f USING INDEX deployment_facts_by_tier"),
            "{plan}"
        );
        assert!(
            plan.contains("SEARCH e USING INDEX deployments_by_team (team=?)"),
            "{plan}"
        );
        assert!(
            plan.contains("SEARCH e USING INDEX deployments_tagged_by_finished"),
            "{plan}"
        );
        assert!(!plan.contains("SCAN e"), "{plan}");
    }

    /// Issue 6's list: the deployments of two services in one env come from migration 0006's
    /// indexes alone, not from a walk of the whole range with attribute look-ups.
    #[test]
    fn a_list_by_service_and_env_reads_the_list_indexes() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrations::check_or_run(&mut conn, true).unwrap();
        let plan = plan(&conn, "service:(a OR b) env:production -team:x");
        assert!(
            plan.contains(
                "SEARCH e USING COVERING INDEX deployments_by_service_env (service=? AND env=?"
            ),
            "{plan}"
        );
        assert!(
            plan.contains("SEARCH e USING INDEX deployments_tagged_by_finished"),
            "{plan}"
        );
        assert!(
            plan.contains("SCAN t USING INDEX deployments_tagged_by_finished"),
            "{plan}"
        );
        assert!(!plan.contains("deployments_by_finished"), "{plan}");
    }
}
