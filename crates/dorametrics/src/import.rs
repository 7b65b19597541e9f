//! `dorametrics import git`: a local repository's commit graph into the store, directly
//! (`--database`) or through a running server (`--url`), importing only what is new.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use dora_core::model::Commit;
use dora_core::repo::parse_repository;
use dora_core::time::{self, Nanos};
use dora_git::{BoxError, Repository, WalkOptions};
use dora_store::Store;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use tokio::runtime::Handle;

use crate::DatabaseArg;

/// Commits written per store transaction or HTTP request.
const WRITE_BATCH: usize = 5000;

#[derive(Subcommand)]
pub enum ImportCommand {
    /// Import the commit graph of a local git repository: everything reachable from HEAD, local
    /// and remote-tracking branches and tags. Re-running imports only what is new.
    Git(GitArgs),
}

#[derive(Args)]
pub struct GitArgs {
    /// The repository: its work tree (or any directory inside it) or a bare repository.
    path: PathBuf,
    /// The repository the commits belong to, as deployments name it (e.g. github.com/acme/shop or
    /// its URL). Default: the repository the `origin` remote points at.
    #[arg(long)]
    repository_id: Option<String>,
    /// Only commits committed on or after this date (YYYY-MM-DD, UTC, or an RFC 3339 date-time).
    #[arg(long, value_parser = parse_since)]
    since: Option<Nanos>,
    /// Walk the whole history instead of stopping at commits already imported: fills the gaps
    /// left when only some commits arrived before (e.g. pushed by CI through the API).
    #[arg(long)]
    full: bool,
    #[command(flatten)]
    db: DatabaseArg,
    /// Import through the dorametrics server at this URL (http://127.0.0.1:8080, or https) instead of
    /// writing to a database (it takes precedence over --database and DORA_DATABASE); the token
    /// (dora_metrics_write scope) is read from DORA_TOKEN.
    #[arg(long)]
    url: Option<String>,
    #[command(flatten)]
    ca: crate::remote::CaCertArg,
}

fn parse_since(text: &str) -> Result<Nanos, String> {
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_string()
    };
    time::from_rfc3339(&full)
        .map_err(|_| format!("{text:?} is not a date: use YYYY-MM-DD or an RFC 3339 date-time"))
}

pub async fn run(command: ImportCommand) -> Result<()> {
    match command {
        ImportCommand::Git(args) => git(args).await,
    }
}

/// Where imported commits go.
enum Target {
    Store(Arc<dyn Store>),
    Server(Server),
}

/// A dorametrics server and the token to write to it.
struct Server {
    client: reqwest::Client,
    base: String,
    token: String,
}

async fn git(args: GitArgs) -> Result<()> {
    let started = Instant::now();
    let handle = Handle::current();
    // gix is synchronous (and its repository handle stays on one thread): the import runs on a
    // blocking thread and reaches the async store or server through the runtime's handle.
    let imported = tokio::task::spawn_blocking(move || import(&args, &handle)).await??;
    println!(
        "imported {} new commits ({} seen) into {} in {:.1} s",
        imported.new,
        imported.seen,
        imported.repository_id,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

struct Imported {
    repository_id: String,
    new: u64,
    seen: u64,
}

fn import(args: &GitArgs, handle: &Handle) -> Result<Imported> {
    // The repository first: a wrong path must not leave a new database behind.
    let repo = Repository::open(&args.path)?;
    let repository_id = match &args.repository_id {
        Some(raw) => {
            parse_repository(raw)
                .with_context(|| format!("--repository-id {raw:?}"))?
                .id
        }
        None => repo
            .origin_repository_id()
            .context("cannot tell the repository id; pass --repository-id")?,
    };
    let target = match &args.url {
        Some(url) => Target::Server(Server {
            client: crate::remote::client(args.ca.ca_cert.as_deref())?,
            base: url.trim_end_matches('/').to_string(),
            token: std::env::var("DORA_TOKEN")
                .context("--url needs a token with the dora_metrics_write scope in DORA_TOKEN")?,
        }),
        None => Target::Store(
            handle.block_on(crate::open_store(&args.db.database, crate::Access::Create))?,
        ),
    };
    let options = WalkOptions {
        since: args.since,
        ..WalkOptions::default()
    };
    let bar = progress_bar();
    let walk = repo.new_commits(
        &options,
        |shas| {
            if args.full {
                return Ok(Vec::new());
            }
            handle
                .block_on(target.known(&repository_id, shas))
                .map_err(BoxError::from)
        },
        |progress| {
            bar.set_message(format!(
                "{} commits examined, {} new",
                progress.examined, progress.new
            ))
        },
    )?;
    if let Ok(style) = ProgressStyle::with_template("{wide_bar} {pos}/{len} commits imported") {
        bar.set_style(style);
    }
    bar.set_length(walk.ids.len() as u64);
    let mut new = 0;
    for ids in walk.ids.chunks(WRITE_BATCH) {
        let commits = repo.read_commits(&repository_id, ids)?;
        new += handle.block_on(target.put(commits))?;
        bar.inc(ids.len() as u64);
    }
    bar.finish_and_clear();
    Ok(Imported {
        repository_id,
        new,
        seen: walk.examined,
    })
}

/// A spinner, then a bar, on stderr when it is a terminal; nothing otherwise (CI logs).
fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_message("reading history");
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

impl Target {
    /// Which of `shas` the repository already has.
    async fn known(&self, repository_id: &str, shas: &[String]) -> Result<Vec<String>> {
        match self {
            Target::Store(store) => Ok(store.known_commits(repository_id, shas).await?),
            Target::Server(server) => {
                let body = json!({ "repository_id": repository_id, "shas": shas });
                let reply = server
                    .post(
                        "/api/v1/commits/known",
                        "application/json",
                        body.to_string(),
                    )
                    .await?;
                serde_json::from_value(reply["known"].clone())
                    .context("the server's answer has no list of known commits")
            }
        }
    }

    /// Writes `commits`; returns how many were new.
    async fn put(&self, commits: Vec<Commit>) -> Result<u64> {
        match self {
            Target::Store(store) => Ok(store.put_commits(commits).await?),
            Target::Server(server) => {
                let mut body = String::new();
                for commit in &commits {
                    body.push_str(&commit_json(commit).to_string());
                    body.push('\n');
                }
                let reply = server
                    .post("/api/v1/commits", "application/x-ndjson", body)
                    .await?;
                reply["new"]
                    .as_u64()
                    .context("the server's answer does not say how many commits were new")
            }
        }
    }
}

impl Server {
    async fn post(&self, path: &str, content_type: &str, body: String) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let response = self
            .client
            .post(&url)
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{url} answered {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("{url} answered with no JSON"))
    }
}

/// A commit as `POST /api/v1/commits` takes it. Times go as RFC 3339: integers would be read as
/// seconds, milliseconds or nanoseconds by their size, which misreads commits near 1970.
fn commit_json(commit: &Commit) -> Value {
    let mut value = json!({
        "repository_id": commit.repository_id,
        "sha": commit.sha,
        "parents": commit.parents,
        "authored_at": time::to_rfc3339(commit.authored_at),
        "committed_at": time::to_rfc3339(commit.committed_at),
        "author": commit.author,
        "subject": commit.subject,
    });
    if let Some(mr) = &commit.merge_request {
        value["merge_request"] = json!({
            "number": mr.number,
            "created_at": mr.created_at.map(time::to_rfc3339),
            "merged_at": mr.merged_at.map(time::to_rfc3339),
        });
    }
    value
}
