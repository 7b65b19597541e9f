//! The `dorametrics` command: the server and the tools around it. A library so that the
//! benchmark (`dora-bench`) can run this very command line as its server under test; the
//! binary is `main.rs`, one call to [`run`].
#![forbid(unsafe_code)]

mod import;
mod remote;
mod report;
mod table;
mod token;
mod webhook;

use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use dora_core::model::Scope;
use dora_server::auth::issue_token;
use dora_server::ratelimit::{RateLimit, RateLimits};
use dora_store::{redact_url, Store};
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(
    name = "dorametrics",
    version,
    about = "A self-hosted DORA metrics server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve(ServeArgs),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Webhooks in: the hooks providers deliver to, their deliveries, and aliases.
    #[command(subcommand)]
    Webhook(webhook::WebhookCommand),
    /// Create the database if needed and bring its schema up to date, then exit.
    Migrate(DatabaseArg),
    /// Import commits: `import git PATH` reads a local repository's history.
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// The DORA keys and their performance levels for a selection, as a table, JSON or CSV.
    Report(Box<report::ReportArgs>),
    /// Copy a SQLite database into a new file, consistently, even while a server runs on it
    /// (for PostgreSQL use pg_dump).
    Backup {
        #[command(flatten)]
        db: DatabaseArg,
        /// The file to write; it must not exist.
        file: std::path::PathBuf,
    },
}

#[derive(Args)]
struct DatabaseArg {
    /// Database URL: sqlite://PATH (the embedded default) or postgres://USER:PASSWORD@HOST/DB.
    /// The password never appears in logs.
    #[arg(
        long,
        env = "DORA_DATABASE",
        default_value = "sqlite://dorametrics.db",
        hide_env_values = true
    )]
    database: String,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "DORA_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Also serve `GET /metrics` here, without a token (for a Prometheus that only this
    /// address is open to); on the main address it needs a read token.
    #[arg(long, env = "DORA_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<String>,
    /// The trailing window of the DORA keys `/metrics` reports, in days.
    #[arg(long, env = "DORA_METRICS_WINDOW_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    metrics_window_days: u32,
    /// Serve https with this PEM certificate chain (leaf first); needs --tls-key.
    #[arg(long, env = "DORA_TLS_CERT", value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "DORA_TLS_KEY", value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    #[command(flatten)]
    db: DatabaseArg,
    /// A failure starting this long after a deployment of its service and env (with no
    /// deployment in between) counts that deployment as a change failure.
    #[arg(long, env = "DORA_FAILURE_WINDOW", default_value = "24h", value_parser = humantime::parse_duration)]
    failure_window: std::time::Duration,
    /// Refuse to start on a database whose schema is behind, instead of migrating it
    /// (for deployments that run `dorametrics migrate` as a separate step).
    #[arg(long)]
    no_migrate: bool,
    /// Longest one database statement may run before it is cancelled (503).
    #[arg(long, env = "DORA_STATEMENT_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    statement_timeout: std::time::Duration,
    /// Longest a statement waits for a lock held by another session (503).
    #[arg(long, env = "DORA_LOCK_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    lock_timeout: std::time::Duration,
    /// Longest a request waits for a free PostgreSQL connection, a write for a writer (503).
    #[arg(long, env = "DORA_POOL_WAIT", default_value = "5s", value_parser = humantime::parse_duration)]
    pool_wait: std::time::Duration,
    /// Connections served at once; past it new ones wait. Default: the file-descriptor limit
    /// (raised to its hard limit at start) less 128, at most 16384.
    #[arg(long, env = "DORA_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// A request's head must arrive within this; an idle keep-alive connection is closed after
    /// it too.
    #[arg(long, env = "DORA_HEADER_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    header_timeout: std::time::Duration,
    /// A request's body must arrive within this, once its head has (408).
    #[arg(long, env = "DORA_BODY_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    body_timeout: std::time::Duration,
    /// Requests per token, as COUNT/PERIOD (a burst of COUNT, then spread evenly), or off (429
    /// past it).
    #[arg(long, env = "DORA_RATE_LIMIT_PER_TOKEN", default_value = "30000/1m", value_parser = rate_limit)]
    rate_limit_per_token: Limit,
    /// Requests with refused credentials per client address, as COUNT/PERIOD, or off (429 past
    /// it).
    #[arg(long, env = "DORA_RATE_LIMIT_FAILED_AUTH", default_value = "30/1m", value_parser = rate_limit)]
    rate_limit_failed_auth: Limit,
}

/// A rate limit as given, `off` being `None` (a wrapper: clap reads a bare `Option` as "may be
/// left out").
#[derive(Clone, Copy)]
struct Limit(Option<RateLimit>);

fn rate_limit(text: &str) -> Result<Limit, String> {
    RateLimit::parse(text).map(Limit)
}

/// Descriptors kept for everything but client connections: the database, its WAL, pooled
/// PostgreSQL connections, logs.
const RESERVED_DESCRIPTORS: u64 = 128;

/// The connection cap: as given, else what the file-descriptor limit (raised to its hard limit
/// where allowed) leaves. A cap at or above the limit is lowered to fit under it.
fn connection_cap(given: Option<usize>) -> usize {
    let descriptors = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "cannot read or raise the file-descriptor limit");
            1024
        }
    };
    let fits = usize::try_from(descriptors.saturating_sub(RESERVED_DESCRIPTORS).max(16))
        .unwrap_or(usize::MAX);
    match given {
        Some(cap) if cap <= fits => cap,
        Some(cap) => {
            tracing::warn!(
                requested = cap,
                descriptors,
                cap = fits,
                "--max-connections is above the file-descriptor limit; lowered"
            );
            fits
        }
        None => fits.min(16_384),
    }
}

/// Runs the command line `args` (the program's name first, as `std::env::args_os` gives it).
pub fn run<I, T>(args: I) -> Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(execute(cli))
}

async fn execute(cli: Cli) -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DORA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Migrate(db) => {
            let url = &db.database;
            if dora_store::is_postgres_url(url)
                && dora_store::postgres::create_database(url).await?
            {
                eprintln!("created the database {}", redact_url(url));
            }
            open_store(url, Access::Create).await?;
            eprintln!("{} is up to date", redact_url(url));
            Ok(())
        }
        Command::Import(command) => import::run(command).await,
        Command::Report(args) => report::run(*args).await,
        Command::Token(command) => token::run(command).await,
        Command::Webhook(command) => webhook::run(command).await,
        Command::Backup { db, file } => backup(&db.database, file).await,
    }
}

async fn backup(url: &str, file: std::path::PathBuf) -> Result<()> {
    let Some(path) = dora_store::sqlite_path(url) else {
        anyhow::bail!(
            "backup copies SQLite databases; for PostgreSQL use pg_dump (e.g. pg_dump -Fc -f \
             dora.dump {})",
            redact_url(url)
        );
    };
    anyhow::ensure!(
        std::path::Path::new(path).exists(),
        "there is no database at {path}"
    );
    dora_store::sqlite::backup(path.into(), file.clone())
        .await
        .with_context(|| format!("cannot back {path} up into {}", file.display()))?;
    let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    eprintln!("backed {path} up into {} ({size} bytes)", file.display());
    Ok(())
}

/// How a command uses its database.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    /// It may create the SQLite file and bring the schema up to date.
    Create,
    /// It only works on a database that exists and is up to date: a missing SQLite file is an
    /// error, not a new empty database next to the user.
    Existing,
}

async fn open_store(url: &str, access: Access) -> Result<Arc<dyn Store>> {
    open_store_with(url, access, dora_store::StoreOptions::default()).await
}

async fn open_store_with(
    url: &str,
    access: Access,
    mut options: dora_store::StoreOptions,
) -> Result<Arc<dyn Store>> {
    if access == Access::Existing {
        if let Some(path) = dora_store::sqlite_path(url) {
            if !std::path::Path::new(path).exists() {
                anyhow::bail!(
                    "there is no database at {path}: give --database the server's, or create \
                     one with dorametrics migrate --database {url}"
                );
            }
        }
        options.migrate = false;
    }
    dora_store::open_with(url, &options)
        .await
        .with_context(|| format!("cannot open the database {}", redact_url(url)))
}

async fn serve(args: ServeArgs) -> Result<()> {
    // The certificate first: a bad one should stop the start before anything else happens.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(dora_server::tls::acceptor(cert, key)?),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let options = dora_store::StoreOptions {
        migrate: !args.no_migrate,
        statement_timeout: args.statement_timeout,
        lock_timeout: args.lock_timeout,
        pool_wait: args.pool_wait,
    };
    let store = open_store_with(&args.db.database, Access::Create, options).await?;
    // Bound before the first token is made: a busy port must not use up the one print of it.
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    let metrics_listener = match &args.metrics_listen {
        Some(metrics) => Some(
            TcpListener::bind(metrics)
                .await
                .with_context(|| format!("cannot listen on {metrics} (--metrics-listen)"))?,
        ),
        None => None,
    };
    let first = issue_token("initial admin".into(), vec![Scope::Admin], Vec::new(), None);
    let created = store
        .create_first_token(first.record)
        .await
        .context("cannot create the first admin token")?;
    if created {
        eprintln!(
            "Created the first admin token (shown only now, keep it safe):\n  {token}\n\
             Send it as a header, e.g.: curl -H 'DD-API-KEY: {token}' {scheme}://{address}/api/v2/dora/deployments ...",
            token = first.token
        );
    }
    let max_connections = connection_cap(args.max_connections);
    tracing::info!(
        %address,
        scheme,
        database = %redact_url(&args.db.database),
        max_connections,
        "dorametrics listening"
    );
    let mut state = dora_server::AppState::new(store).with_rate_limits(RateLimits {
        per_token: args.rate_limit_per_token.0,
        failed_auth: args.rate_limit_failed_auth.0,
    });
    state.limits = dora_server::connections::Limits {
        max_connections,
        header_timeout: args.header_timeout,
        body_timeout: args.body_timeout,
    };
    state.tls = tls;
    state.telemetry = Arc::new(dora_server::telemetry::Telemetry::new(
        args.metrics_window_days,
    ));
    state.failure_window =
        i64::try_from(args.failure_window.as_nanos()).context("--failure-window is too long")?;
    // One signal stops both listeners.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let stopped = |mut stopping: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    let metrics = metrics_listener.map(|listener| {
        if let Ok(at) = listener.local_addr() {
            tracing::info!(address = %at, "/metrics listening, without a token");
        }
        tokio::spawn(dora_server::serve_metrics(
            listener,
            state.clone(),
            stopped(stopping.clone()),
        ))
    });
    dora_server::serve_with(listener, state, stopped(stopping)).await?;
    if let Some(metrics) = metrics {
        metrics.await??;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => return interrupt.await.unwrap_or(()),
            };
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
