//! The single writer: takes every queued write and commits them together
//! ([`crate::write::commit`]) on the writer connection, answering each only after the commit.

use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::Connection;
use tokio::sync::mpsc;

use super::FileIdentity;
use crate::write::{self, Lock, Param, Tx, WriteJob, WriteOp, MAX_BATCH};
use crate::{StoreError, StoreResult};

pub fn run(
    conn: Connection,
    mut queue: mpsc::Receiver<WriteJob>,
    file: &FileIdentity,
    batches: &crate::BatchCounter,
) {
    // The shared writes are async; on SQLite every statement completes at once, so a
    // single-threaded runtime only drives them.
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the writer's runtime; refusing writes");
            return;
        }
    };
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
            Ok(()) => runtime.block_on(commit(&conn, &batch)),
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

/// Commits a batch, answering each write (all with the error when the commit failed).
async fn commit(conn: &Connection, batch: &[WriteJob]) -> Vec<StoreResult<u64>> {
    let ops: Vec<&WriteOp> = batch.iter().map(|job| &job.op).collect();
    write::commit(&WriterTx(conn), &ops)
        .await
        .unwrap_or_else(|error| {
            tracing::error!(%error, writes = batch.len(), "commit failed");
            batch.iter().map(|_| Err(error.clone())).collect()
        })
}

/// The writer connection as the shared writes use it.
struct WriterTx<'a>(&'a Connection);

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Param::Null => ValueRef::Null,
            Param::Int(n) => ValueRef::Integer(n),
            Param::Real(x) => ValueRef::Real(x),
            Param::Bool(b) => ValueRef::Integer(i64::from(b)),
            Param::Text(text) => ValueRef::Text(text.as_bytes()),
            Param::Blob(bytes) => ValueRef::Blob(bytes),
        }))
    }
}

impl Tx for WriterTx<'_> {
    type Row = super::rows::OwnedRow;

    async fn execute(&self, sql: &str, params: &[Param<'_>]) -> StoreResult<u64> {
        let mut statement = self.0.prepare_cached(sql)?;
        Ok(statement.execute(rusqlite::params_from_iter(params))? as u64)
    }

    async fn query(&self, sql: &str, params: &[Param<'_>]) -> StoreResult<Vec<Self::Row>> {
        let mut statement = self.0.prepare_cached(sql)?;
        let columns = statement.column_count();
        let mut rows = statement.query(rusqlite::params_from_iter(params))?;
        let mut found = Vec::new();
        while let Some(row) = rows.next()? {
            let values = (0..columns)
                .map(|i| row.get::<_, Value>(i))
                .collect::<rusqlite::Result<Vec<Value>>>()?;
            found.push(super::rows::OwnedRow(values));
        }
        Ok(found)
    }

    async fn lock(&self, _lock: Lock<'_>) -> StoreResult<()> {
        Ok(()) // the one writer serialises every write
    }

    async fn begin(&self) -> StoreResult<()> {
        self.control("BEGIN IMMEDIATE").await
    }

    async fn control(&self, sql: &'static str) -> StoreResult<()> {
        Ok(self.0.execute_batch(sql)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TokenRecord;

    fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

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
            reply: tokio::sync::oneshot::channel().0,
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
        let results = block_on(commit(&conn, &batch));
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
        let results = block_on(commit(&conn, &[job(token("e", "4"))]));
        assert_eq!(results.len(), 1);
        assert!(results[0].is_ok());
    }
}
