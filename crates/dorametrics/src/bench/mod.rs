//! `dorametrics bench`: generate a realistic organisation, then measure dorametrics on it against
//! the engines users would otherwise run (DuckDB and PostgreSQL with the SQL of GitLab, DevLake
//! and Four Keys), after checking that all of them return the same numbers.

mod baseline;
mod check;
mod client;
mod generate;
mod report;
mod rng;
mod run;
mod server;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Write a generated organisation (deployments, commits, failures as NDJSON request bodies;
    /// the same plus the expected change sets as CSV tables) that the benchmark and the
    /// baselines load.
    Generate(GenerateArgs),
    /// Load a generated organisation into a fresh dorametrics server and into the baselines,
    /// check they agree, time them and print the table.
    Run(run::RunArgs),
}

/// How big an organisation: S for CI, M about a tenth of L, L the scale (500 services,
/// 1,000,000 deployments, 10,000,000 commits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scale {
    #[value(name = "S", alias = "s")]
    S,
    #[value(name = "M", alias = "m")]
    M,
    #[value(name = "L", alias = "l")]
    L,
}

impl Scale {
    pub fn name(self) -> &'static str {
        match self {
            Scale::S => "S",
            Scale::M => "M",
            Scale::L => "L",
        }
    }
}

#[derive(Args)]
pub struct GenerateArgs {
    #[arg(long, value_enum)]
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

pub async fn run(command: BenchCommand) -> Result<()> {
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
