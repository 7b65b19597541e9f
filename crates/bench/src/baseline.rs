//! The baselines: PostgreSQL (driven from here: COPY, single-row INSERT intake, the metric SQL)
//! and DuckDB (its Python package in a venv, run by `scripts/duckdb_baseline.py`). Both run the
//! same `scripts/queries.sql`.

use std::collections::BTreeMap;
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures_util::SinkExt;
use serde::Deserialize;
use serde_json::Value;
use tokio::process::Command;
use tokio_postgres::{Client, Config, NoTls, SimpleQueryMessage};

use super::client::Intake;

/// The tables every baseline loads, in load order.
pub const TABLES: [&str; 4] = ["deployments", "changes", "failures", "commits"];

/// The `-- name: x` blocks of a SQL file, comment lines dropped.
pub fn named_queries(text: &str) -> Vec<(String, String)> {
    let mut queries: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(name) = trimmed.strip_prefix("-- name:") {
            queries.push((name.trim().to_string(), String::new()));
        } else if let Some((_, sql)) = queries.last_mut() {
            if !trimmed.starts_with("--") {
                sql.push_str(line);
                sql.push('\n');
            }
        }
    }
    for (_, sql) in &mut queries {
        *sql = sql.trim().trim_end_matches(';').to_string();
    }
    queries
}

/// Replaces each `{param}` with a quoted SQL literal.
pub fn substitute(sql: &str, params: &BTreeMap<String, String>) -> Result<String> {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..]
            .find('}')
            .map(|c| open + c)
            .context("unclosed { in a query")?;
        let key = &rest[open + 1..close];
        let value = params
            .get(key)
            .with_context(|| format!("no value for {{{key}}}"))?;
        out.push('\'');
        out.push_str(&value.replace('\'', "''"));
        out.push('\'');
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A query's answer and the wall time of each timed run.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    pub seconds: Vec<f64>,
}

impl QueryResult {
    /// The rows as maps from column name to value.
    pub fn records(&self) -> Vec<BTreeMap<&str, &Value>> {
        self.rows
            .iter()
            .map(|row| {
                self.columns
                    .iter()
                    .map(String::as_str)
                    .zip(row.iter())
                    .collect()
            })
            .collect()
    }
}

/// What loading one table took.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Load {
    pub rows: u64,
    pub seconds: f64,
}

/// A fresh PostgreSQL database of its own on the given server, dropped by [`Postgres::drop`].
pub struct Postgres {
    server: Config,
    config: Config,
    pub name: String,
    client: Client,
    pub version: String,
}

async fn connect(config: &Config) -> Result<Client> {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .context("cannot connect to PostgreSQL")?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// A text cell as JSON: integers and floats become numbers (PostgreSQL prints floats with all
/// the digits they need), everything else stays text.
fn cell(text: Option<&str>) -> Value {
    let Some(text) = text else {
        return Value::Null;
    };
    if let Ok(integer) = text.parse::<i64>() {
        return Value::from(integer);
    }
    match text.parse::<f64>() {
        Ok(float) if float.is_finite() && !text.contains(':') => Value::from(float),
        _ => match text {
            "t" => Value::Bool(true),
            "f" => Value::Bool(false),
            _ => Value::from(text),
        },
    }
}

impl Postgres {
    /// Creates database `name` on the server `server_url` points at.
    pub async fn create(server_url: &str, name: &str) -> Result<Self> {
        let server: Config = server_url
            .parse()
            .context("--postgres is not a PostgreSQL URL")?;
        let admin = connect(&server).await?;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("cannot create the database {name}"))?;
        let mut config = server.clone();
        config.dbname(name);
        let client = connect(&config).await?;
        let version = client
            .query_one("SHOW server_version", &[])
            .await?
            .get::<_, String>(0);
        let version = format!(
            "PostgreSQL {}",
            version.split_whitespace().next().unwrap_or("")
        );
        Ok(Self {
            server,
            config,
            name: name.to_string(),
            client,
            version,
        })
    }

    /// The URL of the database, for a dorametrics server to use.
    pub fn url(server_url: &str, name: &str) -> String {
        match server_url.rfind('/') {
            Some(slash) if slash > server_url.find("://").map_or(0, |p| p + 2) => {
                let query = server_url[slash..]
                    .find('?')
                    .map_or("", |q| &server_url[slash + q..]);
                format!("{}/{name}{query}", &server_url[..slash])
            }
            _ => format!("{server_url}/{name}"),
        }
    }

    pub async fn execute(&self, sql: &str) -> Result<()> {
        self.client.batch_execute(sql).await?;
        Ok(())
    }

    /// COPY a CSV file (with a header line) into `table`.
    pub async fn copy(&self, table: &str, path: &Path) -> Result<Load> {
        let started = Instant::now();
        let mut file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let sink = self
            .client
            .copy_in(&format!(
                "COPY {table} FROM STDIN (FORMAT csv, HEADER true)"
            ))
            .await?;
        let mut sink = std::pin::pin!(sink);
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            sink.send(Bytes::copy_from_slice(&buffer[..read])).await?;
        }
        let rows = sink.as_mut().finish().await?;
        Ok(Load {
            rows,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Runs `sql` once for its answer, then `repeat` more times for the timings.
    pub async fn query(&self, sql: &str, repeat: usize) -> Result<QueryResult> {
        let mut result = QueryResult::default();
        for run in 0..=repeat {
            let started = Instant::now();
            let messages = self
                .client
                .simple_query(sql)
                .await
                .with_context(|| format!("PostgreSQL refused:\n{sql}"))?;
            let seconds = started.elapsed().as_secs_f64();
            if run > 0 {
                result.seconds.push(seconds);
                continue;
            }
            for message in messages {
                if let SimpleQueryMessage::Row(row) = message {
                    if result.columns.is_empty() {
                        result.columns = row.columns().iter().map(|c| c.name().into()).collect();
                    }
                    result
                        .rows
                        .push((0..row.len()).map(|i| cell(row.get(i))).collect());
                }
            }
        }
        Ok(result)
    }

    /// Single-event intake: each row its own `INSERT … ON CONFLICT DO UPDATE` transaction (what
    /// an upsert API on PostgreSQL does), over exactly `connections` connections.
    pub async fn insert_each(
        &self,
        rows: Arc<Vec<Vec<String>>>,
        range: Range<usize>,
        connections: usize,
    ) -> Result<Intake> {
        const INSERT: &str = "INSERT INTO deployments_intake (id, service, team, env, tier, \
            project, repository_id, version, sha, started_at, finished_at, failed, rework, \
            recovery_s) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::timestamp, \
            $11::text::timestamp, $12::text::boolean, $13::text::boolean, \
            NULLIF($14::text, '')::bigint) ON CONFLICT (id) DO UPDATE SET \
            service = EXCLUDED.service, team = EXCLUDED.team, env = EXCLUDED.env, \
            tier = EXCLUDED.tier, project = EXCLUDED.project, \
            repository_id = EXCLUDED.repository_id, version = EXCLUDED.version, \
            sha = EXCLUDED.sha, started_at = EXCLUDED.started_at, \
            finished_at = EXCLUDED.finished_at, failed = EXCLUDED.failed, \
            rework = EXCLUDED.rework, recovery_s = EXCLUDED.recovery_s";
        let next = Arc::new(AtomicUsize::new(range.start));
        let mut clients = Vec::new();
        for _ in 0..connections.max(1) {
            clients.push(connect(&self.config).await?);
        }
        let started = Instant::now();
        let mut tasks = Vec::new();
        for client in clients {
            let (rows, next) = (rows.clone(), next.clone());
            let end = range.end;
            tasks.push(tokio::spawn(async move {
                let statement = client.prepare(INSERT).await?;
                let mut latencies = Vec::new();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= end {
                        return Ok::<_, anyhow::Error>(latencies);
                    }
                    let row = &rows[index];
                    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = row
                        .iter()
                        .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
                        .collect();
                    let sent = Instant::now();
                    client.execute(&statement, &params).await?;
                    latencies.push(sent.elapsed().as_micros() as u64);
                }
            }));
        }
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await??);
        }
        Ok(Intake {
            events: range.len(),
            elapsed: started.elapsed(),
            latencies,
        })
    }

    pub async fn size(&self) -> Result<u64> {
        let size: i64 = self
            .client
            .query_one("SELECT pg_database_size(current_database())", &[])
            .await?
            .get(0);
        Ok(size as u64)
    }

    pub async fn drop(self) -> Result<()> {
        drop(self.client);
        let admin = connect(&self.server).await?;
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await?;
        Ok(())
    }
}

/// Drops a database on the server (for the dorametrics store on PostgreSQL).
pub async fn drop_database(server_url: &str, name: &str) -> Result<()> {
    let server: Config = server_url.parse()?;
    connect(&server)
        .await?
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    Ok(())
}

/// The size on disk of a database on the server.
pub async fn database_size(server_url: &str, name: &str) -> Result<u64> {
    let server: Config = server_url.parse()?;
    let size: i64 = connect(&server)
        .await?
        .query_one("SELECT pg_database_size($1)", &[&name])
        .await?
        .get(0);
    Ok(size as u64)
}

/// Creates an empty database on the server.
pub async fn create_database(server_url: &str, name: &str) -> Result<()> {
    let server: Config = server_url.parse()?;
    let admin = connect(&server).await?;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    Ok(())
}

/// The rows of a CSV file whose fields hold no commas or quotes (deployments.csv).
pub fn read_simple_csv(path: &Path) -> Result<Vec<Vec<String>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect())
}

/// What the DuckDB script reported.
#[derive(Debug, Deserialize)]
pub struct DuckDb {
    pub engine: String,
    pub load: BTreeMap<String, Load>,
    pub queries: BTreeMap<String, QueryResult>,
    pub size_bytes: u64,
}

/// A venv under `venv` with `requirements` installed; reinstalled when the requirements change.
/// Returns its python.
pub async fn ensure_venv(python: &str, venv: &Path, requirements: &Path) -> Result<PathBuf> {
    let wanted = std::fs::read_to_string(requirements)
        .with_context(|| format!("cannot read {}", requirements.display()))?;
    let marker = venv.join("installed-requirements.txt");
    let venv_python = venv.join("bin").join("python");
    if venv_python.exists() && std::fs::read_to_string(&marker).ok().as_ref() == Some(&wanted) {
        return Ok(venv_python);
    }
    eprintln!(
        "bench: installing {} into {}",
        requirements.display(),
        venv.display()
    );
    let status = Command::new(python)
        .args(["-m", "venv"])
        .arg(venv)
        .status()
        .await
        .with_context(|| format!("cannot run {python} -m venv"))?;
    if !status.success() {
        bail!("{python} -m venv {} failed", venv.display());
    }
    let status = Command::new(&venv_python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(requirements)
        .status()
        .await?;
    if !status.success() {
        bail!("pip install -r {} failed", requirements.display());
    }
    std::fs::write(&marker, wanted)?;
    Ok(venv_python)
}

/// Runs the DuckDB baseline script: load, then every query once for its answer and `repeat`
/// times for the timings.
pub async fn run_duckdb(
    python: &Path,
    script: &Path,
    data: &Path,
    db: &Path,
    queries: &Path,
    params: &BTreeMap<String, String>,
    repeat: usize,
) -> Result<DuckDb> {
    let output = Command::new(python)
        .arg(script)
        .arg("--data")
        .arg(data)
        .arg("--db")
        .arg(db)
        .arg("--queries")
        .arg(queries)
        .arg("--params")
        .arg(serde_json::to_string(params)?)
        .arg("--repeat")
        .arg(repeat.to_string())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "the DuckDB baseline failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout).context("the DuckDB baseline printed no JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_split_and_filled() {
        let text =
            "-- intro\n-- name: a\n-- about a\nSELECT {x}\nFROM t;\n\n-- name: b\nSELECT 1;\n";
        let queries = named_queries(text);
        assert_eq!(
            queries,
            [
                ("a".to_string(), "SELECT {x}\nFROM t".to_string()),
                ("b".to_string(), "SELECT 1".to_string())
            ]
        );
        let params = BTreeMap::from([("x".to_string(), "it's".to_string())]);
        assert_eq!(
            substitute(&queries[0].1, &params).unwrap(),
            "SELECT 'it''s'\nFROM t"
        );
        assert!(substitute("{y}", &params).is_err());
    }

    #[test]
    fn cells_keep_their_kind() {
        assert_eq!(cell(None), Value::Null);
        assert_eq!(cell(Some("42")), Value::from(42));
        assert_eq!(cell(Some("2.5")), Value::from(2.5));
        assert_eq!(cell(Some("2025-01-01")), Value::from("2025-01-01"));
        assert_eq!(cell(Some("1.2.0")), Value::from("1.2.0"));
    }

    #[test]
    fn database_urls() {
        assert_eq!(
            Postgres::url("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            Postgres::url("postgres://u@h:5432", "x"),
            "postgres://u@h:5432/x"
        );
    }
}
