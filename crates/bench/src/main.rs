//! `dora-bench`: generate a realistic organisation, then measure dorametrics on it against the
//! engines users would otherwise run (DuckDB and PostgreSQL with the SQL of GitLab, DevLake and
//! Four Keys), after checking that all of them return the same numbers. Its SQL and Python
//! scripts are compiled in (`scripts`), so it runs from any directory; the server under test is
//! this same binary running the product's command line (`dora-bench dorametrics serve …`).
#![forbid(unsafe_code)]

mod baseline;
mod check;
mod client;
mod report;
mod run;
mod scripts;
mod server;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use dora_generate::{self as generate, Scale};

#[derive(Parser)]
#[command(name = "dora-bench", version, about = "The dorametrics benchmark")]
struct Cli {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Write a generated organisation (deployments, commits, failures as NDJSON request bodies;
    /// the same plus the expected change sets as CSV tables) that the benchmark and the
    /// baselines load.
    Generate(GenerateArgs),
    /// Load a generated organisation into a fresh dorametrics server and into the baselines,
    /// check they agree, time them and print the table.
    Run(run::RunArgs),
}

#[derive(Args)]
pub struct GenerateArgs {
    /// S, M or L.
    #[arg(long)]
    scale: Scale,
    /// The same seed always generates the same organisation.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where to write the files (default: target/bench/data/SCALE-SEED).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Where a scale and seed's data set lives unless told otherwise.
fn default_data_dir(scale: Scale, seed: u64) -> PathBuf {
    PathBuf::from(format!("target/bench/data/{}-{seed}", scale.name()))
}

/// The product's command line, run as this benchmark's server under test.
const PRODUCT: &str = "dorametrics";

fn main() -> Result<()> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `dora-bench dorametrics ARGS…` is `dorametrics ARGS…`: the same code as the product
    // binary, so what is measured is what ships.
    if args.get(1).is_some_and(|arg| arg == PRODUCT) {
        return dorametrics::run(args.into_iter().skip(1));
    }
    let cli = Cli::parse_from(args);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(execute(cli.command))
}

async fn execute(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Generate(args) => {
            let out = args
                .out
                .unwrap_or_else(|| default_data_dir(args.scale, args.seed));
            let manifest = tokio::task::spawn_blocking(move || {
                generate::generate(args.scale, args.seed, &out).map(|m| (m, out))
            })
            .await??;
            let (manifest, out) = manifest;
            eprintln!(
                "generated scale {} (seed {}) in {:.1}s into {}: {} deployments, {} commits, \
                 {} failures, {} shipped-commit rows",
                manifest.scale,
                manifest.seed,
                manifest.generate_seconds,
                out.display(),
                manifest.deployments,
                manifest.commits,
                manifest.failures,
                manifest.changes
            );
            Ok(())
        }
        BenchCommand::Run(args) => run::run(args).await,
    }
}
