//! `dora-bench run`: one machine, one run. Loads a generated organisation into a fresh
//! dorametrics server (this binary running the product's command line, as a subprocess), into PostgreSQL and into DuckDB; checks
//! that all three answer the benchmark's questions with the same numbers; then times intake,
//! the list, the metric queries, memory, size on disk and a cold start, and prints the table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Args;
use reqwest::Method;
use serde_json::{json, Value};

use super::baseline::{self, DuckDb, Postgres, QueryResult, TABLES};
use super::check;
use super::client::{self, Api, Item};
use super::generate::{self, civil_date, Manifest};
use super::report::{self, IntakeRow, QueryRow, Rate, Resources, Results, Timing};
use super::scripts;
use super::server::{self, ServerProcess};
use super::{default_data_dir, Scale};

#[derive(Args)]
pub struct RunArgs {
    /// S, M or L.
    #[arg(long)]
    scale: Scale,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The data set (default target/bench/data/SCALE-SEED); generated there first when it has
    /// no manifest.json.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Scratch space for the databases, logs and results (default target/bench/run-SCALE;
    /// emptied first).
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Correctness only (CI): check that dorametrics and both baselines agree, with one run of
    /// each query; the figures printed are not measurements.
    #[arg(long)]
    smoke: bool,
    /// Timed runs of each query (default 5, or 1 with --smoke).
    #[arg(long)]
    repeat: Option<usize>,
    /// The PostgreSQL server of the baseline: a fresh database is created on it and dropped at
    /// the end.
    #[arg(
        long,
        env = "DORA_BENCH_POSTGRES",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres: String,
    /// dorametrics' own store: `sqlite` (a fresh file in the workdir) or `postgres` (a fresh
    /// database on the --postgres server).
    #[arg(long, default_value = "sqlite", value_parser = ["sqlite", "postgres"])]
    store: String,
    /// The Python 3 that creates the DuckDB venv (`venv` beside the workdir, shared by runs).
    #[arg(long, default_value = "python3")]
    python: String,
    /// Most rows each single-row INSERT phase of the PostgreSQL baseline sends (its rate
    /// needs no more).
    #[arg(long, default_value_t = 100_000)]
    insert_sample: usize,
    /// Reuse the SQLite store a previous run of this scale left in the workdir instead of
    /// loading a fresh one: re-times the questions after a change to the metric path without
    /// the load (at L, minutes); intake is then not measured.
    #[arg(long)]
    reuse_store: bool,
    /// Keep the baseline's PostgreSQL database (and dorametrics' own on PostgreSQL).
    #[arg(long)]
    keep: bool,
    /// A dorametrics answer taking longer than this many seconds is given up: the question is
    /// reported as timed out, neither checked nor timed.
    #[arg(long, default_value_t = 1800)]
    query_timeout: u64,
    /// Do not ask dorametrics this question (list, group_lead_time_daily,
    /// project_deployment_frequency_monthly, team_weekly; repeatable): it is reported as not
    /// run, and only the baselines are timed. For scales where an answer would take hours.
    #[arg(long, value_name = "NAME")]
    skip: Vec<String>,
    /// Timed runs of one question stop once they have taken this many seconds (at least one
    /// run is made).
    #[arg(long, default_value_t = 300)]
    time_budget: u64,
}

/// Seconds since the run started, for progress lines.
struct Progress(Instant);

impl Progress {
    fn say(&self, text: impl AsRef<str>) {
        eprintln!(
            "[{:7.1}s] {}",
            self.0.elapsed().as_secs_f64(),
            text.as_ref()
        );
    }
}

fn day_text(day: i64) -> String {
    let (y, m, d) = civil_date(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The benchmark's selections and ranges.
struct Plan {
    group: String,
    project: String,
    team: String,
    list_query: String,
    /// GitLab's ranges: 180 days, inclusive dates.
    gitlab_first: String,
    gitlab_last: String,
    /// The native query's range: one year.
    year_first: String,
    year_last: String,
    params: BTreeMap<String, String>,
}

impl Plan {
    fn new(manifest: &Manifest) -> Self {
        let last = generate::END / 86_400 - 1;
        let gitlab_first = last - 179;
        let year_first = last - 364;
        let midnight = |day: i64| format!("{} 00:00:00", day_text(day));
        let [a, b] = manifest.list_services.clone();
        let params = BTreeMap::from([
            ("from".to_string(), midnight(gitlab_first)),
            ("to".to_string(), midnight(last + 1)),
            ("year_from".to_string(), midnight(year_first)),
            ("year_to".to_string(), midnight(last + 1)),
            ("group_like".to_string(), format!("{}/%", manifest.group)),
            ("project".to_string(), manifest.project.clone()),
            ("team".to_string(), manifest.team.clone()),
            ("service_a".to_string(), a.clone()),
            ("service_b".to_string(), b.clone()),
            ("exclude_team".to_string(), manifest.list_team.clone()),
        ]);
        Self {
            group: manifest.group.clone(),
            project: manifest.project.clone(),
            team: manifest.team.clone(),
            list_query: format!(
                "service:({a} OR {b}) env:production -team:{}",
                manifest.list_team
            ),
            gitlab_first: day_text(gitlab_first),
            gitlab_last: day_text(last),
            year_first: day_text(year_first),
            year_last: day_text(last),
            params,
        }
    }

    /// The requests dorametrics answers, named as the SQL queries are.
    fn requests(&self) -> Vec<Request> {
        let encoded = self.project.replace('/', "%2F");
        vec![
            Request {
                name: "list",
                label: format!("list: `{}`, limit 1000, sort -finished_at", self.list_query),
                method: Method::POST,
                path: "/api/v2/dora/deployments".into(),
                body: Some(json!({"data": {"type": "dora_deployments_list_request",
                    "attributes": {"query": self.list_query, "limit": 1000,
                    "sort": "-finished_at"}}})),
            },
            Request {
                name: "group_lead_time_daily",
                label: format!("GitLab group `{}` lead time, daily, 180 days", self.group),
                method: Method::GET,
                path: format!(
                    "/api/v4/groups/{}/dora/metrics?metric=lead_time_for_changes&interval=daily\
                     &start_date={}&end_date={}",
                    self.group, self.gitlab_first, self.gitlab_last
                ),
                body: None,
            },
            Request {
                name: "project_deployment_frequency_monthly",
                label: format!(
                    "GitLab project `{}` deployment frequency, monthly, 180 days",
                    self.project
                ),
                method: Method::GET,
                path: format!(
                    "/api/v4/projects/{encoded}/dora/metrics?metric=deployment_frequency\
                     &interval=monthly&start_date={}&end_date={}",
                    self.gitlab_first, self.gitlab_last
                ),
                body: None,
            },
            Request {
                name: "team_weekly",
                label: format!(
                    "native `/api/v1/metrics` all keys, team `{}`, weekly, 1 year",
                    self.team
                ),
                method: Method::GET,
                path: format!(
                    "/api/v1/metrics?team={}&interval=weekly&from={}&to={}",
                    self.team, self.year_first, self.year_last
                ),
                body: None,
            },
        ]
    }
}

struct Request {
    name: &'static str,
    label: String,
    method: Method,
    path: String,
    body: Option<Value>,
}

/// Disagreements of one answer with one baseline's rows.
fn compare(name: &str, dora: &Value, base: &QueryResult) -> Vec<String> {
    match name {
        "list" => check::list(dora, base),
        "group_lead_time_daily" => check::gitlab_series(dora, base, "median_seconds", None),
        "project_deployment_frequency_monthly" => {
            check::gitlab_series(dora, base, "per_day", Some(0.0))
        }
        "team_weekly" => check::native_series(dora, base),
        _ => vec![format!("no comparison for {name}")],
    }
}

/// How many rows an answer has, for the table.
fn answer_rows(name: &str, dora: &Value) -> usize {
    match name {
        "list" => dora["data"].as_array().map_or(0, Vec::len),
        "team_weekly" => dora["series"].as_array().map_or(0, Vec::len),
        _ => dora.as_array().map_or(0, Vec::len),
    }
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Deployments sent one a request over 1, 16 and 64 connections: a tenth (at most 5,000), a
/// fifth (at most 20,000), and half the rest (at most 50,000); what remains goes in bulk.
fn phases(total: usize) -> [(usize, std::ops::Range<usize>); 3] {
    let one = (total / 10).clamp(1.min(total), 5_000);
    let sixteen = (total / 5).min(20_000).min(total - one);
    let sixty_four = ((total - one - sixteen) / 2).min(50_000);
    [
        (1, 0..one),
        (16, one..one + sixteen),
        (64, one + sixteen..one + sixteen + sixty_four),
    ]
}

/// Deployments a bulk request carries.
const BULK_DEPLOYMENTS: usize = 10_000;

/// Everything the run measured of dorametrics.
struct Measured {
    load_seconds: f64,
    /// `None` when the store was reused (--reuse-store): nothing was loaded.
    commits: Option<Rate>,
    bulk_deployments: Option<Rate>,
    deployments: Vec<Rate>,
    /// `None`: the answer took longer than --query-timeout.
    answers: BTreeMap<&'static str, Option<Value>>,
    /// How long each first (untimed) answer took.
    first_seconds: BTreeMap<&'static str, f64>,
}

pub async fn run(args: RunArgs) -> Result<()> {
    let progress = Progress(Instant::now());
    let data = args
        .data
        .clone()
        .unwrap_or_else(|| default_data_dir(args.scale, args.seed));
    let workdir = args
        .workdir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("target/bench/run-{}", args.scale.name())));
    let repeat = args.repeat.unwrap_or(if args.smoke { 1 } else { 5 }).max(1);
    let exe = std::env::current_exe().context("cannot find this executable")?;

    // The data set.
    let manifest_path = data.join("manifest.json");
    let current = std::fs::read_to_string(&manifest_path)
        .ok()
        .and_then(|text| serde_json::from_str::<Manifest>(&text).ok())
        .is_some_and(|m| m.generator == generate::GENERATOR);
    if !current {
        progress.say(format!(
            "generating scale {} (seed {}) into {}",
            args.scale.name(),
            args.seed,
            data.display()
        ));
        let (scale, seed, out) = (args.scale, args.seed, data.clone());
        tokio::task::spawn_blocking(move || generate::generate(scale, seed, &out)).await??;
    }
    let manifest: Manifest = serde_json::from_str(&std::fs::read_to_string(&manifest_path)?)
        .with_context(|| format!("cannot read {}", manifest_path.display()))?;
    if manifest.scale != args.scale.name() || manifest.seed != args.seed {
        bail!(
            "{} holds scale {} seed {}, not scale {} seed {}",
            data.display(),
            manifest.scale,
            manifest.seed,
            args.scale.name(),
            args.seed
        );
    }
    let plan = Plan::new(&manifest);
    if args.reuse_store {
        if args.store != "sqlite" || !workdir.join("dorametrics.db").exists() {
            bail!(
                "--reuse-store needs the SQLite store a previous run left in {}",
                workdir.display()
            );
        }
    } else if workdir.exists() {
        std::fs::remove_dir_all(&workdir)
            .with_context(|| format!("cannot empty {}", workdir.display()))?;
    }
    std::fs::create_dir_all(&workdir)?;
    let workdir = workdir.canonicalize()?;
    let data = data.canonicalize()?;
    let scripts = scripts::write(&workdir)?;

    progress.say("preparing the DuckDB venv");
    let venv_python = baseline::ensure_venv(
        &args.python,
        &workdir.parent().unwrap_or(&workdir).join("venv"),
        &scripts.requirements,
    )
    .await?;

    // dorametrics' store.
    let store_name = format!("dora_bench_store_{}", std::process::id());
    let database = if args.store == "postgres" {
        baseline::create_database(&args.postgres, &store_name).await?;
        Postgres::url(&args.postgres, &store_name)
    } else {
        format!("sqlite://{}", workdir.join("dorametrics.db").display())
    };
    let base_name = format!("dora_bench_baseline_{}", std::process::id());
    let mut postgres: Option<Postgres> = None;
    let measuring = measure_all(
        &args,
        &progress,
        &exe,
        &database,
        &data,
        &workdir,
        &manifest,
        &plan,
        repeat,
        &scripts,
        &venv_python,
        &base_name,
        &mut postgres,
    );
    // Interrupted, it still drops its databases (the server subprocesses die with it).
    let outcome = tokio::select! {
        outcome = measuring => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    if !args.keep {
        if let Some(pg) = postgres.take() {
            pg.drop().await?;
        }
        if args.store == "postgres" {
            baseline::drop_database(&args.postgres, &store_name).await?;
        }
    }
    let results = outcome?;
    let markdown = results.markdown();
    std::fs::write(workdir.join("results.md"), &markdown)?;
    std::fs::write(
        workdir.join("results.json"),
        serde_json::to_string_pretty(&results.figures())?,
    )?;
    println!("{markdown}");
    progress.say(format!(
        "done; results in {}",
        workdir.join("results.md").display()
    ));
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn measure_all(
    args: &RunArgs,
    progress: &Progress,
    exe: &Path,
    database: &str,
    data: &Path,
    workdir: &Path,
    manifest: &Manifest,
    plan: &Plan,
    repeat: usize,
    scripts: &scripts::Written,
    venv_python: &Path,
    base_name: &str,
    postgres: &mut Option<Postgres>,
) -> Result<Results> {
    // 1. dorametrics: load everything, then one answer to each question.
    progress.say(format!(
        "dorametrics: creating the store {}",
        dora_store::redact_url(database)
    ));
    let token = server::create_token(exe, database).await?;
    let (mut server, _) = ServerProcess::start(exe, database, &workdir.join("server.log")).await?;
    let mut api = Api {
        base: server.base.clone(),
        token,
    };
    let query_timeout = Duration::from_secs(args.query_timeout);
    let mut measured = if args.reuse_store {
        progress.say("dorametrics: reusing the loaded store (--reuse-store): intake not measured");
        Measured {
            load_seconds: 0.0,
            commits: None,
            bulk_deployments: None,
            deployments: Vec::new(),
            answers: BTreeMap::new(),
            first_seconds: BTreeMap::new(),
        }
    } else {
        load_dorametrics(progress, &api, data).await?
    };
    // The highest VmHWM of every server process of the run (one is replaced after a timeout).
    let mut peak_rss = None;
    let http = client::client(query_timeout)?;
    // The first metric read after the load waits for whatever derivation the background
    // refresh has left: timed on its own, so that no question's time includes it.
    let settle_path = format!(
        "/api/v4/projects/{}/dora/metrics?metric=deployment_frequency&interval=all\
         &start_date={}&end_date={}",
        plan.project.replace('/', "%2F"),
        plan.gitlab_first,
        plan.gitlab_last
    );
    let (_, settle) = client::fetch(&http, &api, Method::GET, &settle_path, None).await?;
    progress.say(format!(
        "dorametrics: first metric answer (the derivation left after the load) in {}",
        report::duration(settle.as_secs_f64())
    ));
    for request in plan.requests() {
        if args.skip.iter().any(|s| s == request.name) {
            progress.say(format!("dorametrics: {} skipped (--skip)", request.name));
            measured.answers.insert(request.name, None);
            continue;
        }
        let fetched = client::fetch(
            &http,
            &api,
            request.method.clone(),
            &request.path,
            request.body.as_ref(),
        )
        .await;
        let answer = match fetched {
            Ok((answer, elapsed)) => {
                progress.say(format!(
                    "dorametrics: {} answered in {}",
                    request.name,
                    report::duration(elapsed.as_secs_f64())
                ));
                measured
                    .first_seconds
                    .insert(request.name, elapsed.as_secs_f64());
                Some(answer)
            }
            Err(error) if client::is_timeout(&error) => {
                // The abandoned request may still be computing: a new server process stops it
                // from slowing down what is measured next.
                progress.say(format!(
                    "dorametrics: {} gave up after {}; restarting the server",
                    request.name,
                    report::duration(query_timeout.as_secs_f64())
                ));
                peak_rss = peak_rss.max(server.peak_rss());
                server.kill().await;
                let log = workdir.join(format!("server-after-{}.log", request.name));
                server = ServerProcess::start(exe, database, &log).await?.0;
                api.base = server.base.clone();
                None
            }
            Err(error) => {
                return Err(error.context(format!("dorametrics could not answer {}", request.name)))
            }
        };
        measured.answers.insert(request.name, answer);
    }

    // 2. PostgreSQL: load (COPY), answers.
    progress.say(format!("PostgreSQL: loading into {base_name}"));
    let pg = postgres.insert(Postgres::create(&args.postgres, base_name).await?);
    let schema = scripts::POSTGRES_SCHEMA;
    let (tables, indexes) = schema.split_once("-- INDEXES").unwrap_or((schema, ""));
    pg.execute(tables).await?;
    let mut pg_load = BTreeMap::new();
    for table in TABLES {
        let load = pg.copy(table, &data.join(format!("{table}.csv"))).await?;
        progress.say(format!(
            "PostgreSQL: COPY {table}: {} rows in {:.1}s",
            load.rows, load.seconds
        ));
        pg_load.insert(table, load);
    }
    let started = Instant::now();
    pg.execute(indexes).await?;
    progress.say(format!(
        "PostgreSQL: indexes and ANALYZE in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    let named: BTreeMap<String, String> = baseline::named_queries(scripts::QUERIES)
        .into_iter()
        .map(|(name, sql)| Ok((name, baseline::substitute(&sql, &plan.params)?)))
        .collect::<Result<_>>()?;
    let mut pg_answers: BTreeMap<&str, QueryResult> = BTreeMap::new();
    for request in plan.requests() {
        let sql = named
            .get(request.name)
            .with_context(|| format!("queries.sql has no query named {}", request.name))?;
        pg_answers.insert(request.name, pg.query(sql, 0).await?);
    }

    // 3. DuckDB: load, answers and timings (one process).
    progress.say("DuckDB: loading and querying");
    let duck: DuckDb = baseline::run_duckdb(
        venv_python,
        &scripts.duckdb_baseline,
        data,
        &workdir.join("baseline.duckdb"),
        &scripts.queries,
        &plan.params,
        repeat,
    )
    .await?;
    for (table, load) in &duck.load {
        progress.say(format!(
            "DuckDB: COPY {table}: {} rows in {:.1}s",
            load.rows, load.seconds
        ));
    }

    // 4. The check: the same numbers everywhere, or nothing is timed. The answers are kept in
    // the workdir to look at when they differ.
    let answers_dir = workdir.join("answers");
    std::fs::create_dir_all(&answers_dir)?;
    let mut disagreements = Vec::new();
    let mut notes = Vec::new();
    if args.reuse_store {
        notes.push(
            "dorametrics' store was reused from an earlier run (--reuse-store): its intake was \
             not measured in this one."
                .to_string(),
        );
    }
    for request in plan.requests() {
        let Some(answer) = &measured.answers[request.name] else {
            notes.push(if args.skip.iter().any(|s| s == request.name) {
                format!(
                    "dorametrics was not asked `{}` (--skip): not checked, not timed.",
                    request.name
                )
            } else {
                format!(
                    "dorametrics did not answer `{}` within --query-timeout {}: not checked, \
                     not timed.",
                    request.name,
                    report::duration(query_timeout.as_secs_f64())
                )
            });
            continue;
        };
        let duck_rows = duck
            .queries
            .get(request.name)
            .with_context(|| format!("DuckDB did not run {}", request.name))?;
        let rows_json = |r: &QueryResult| json!({"columns": r.columns, "rows": r.rows});
        for (engine, value) in [
            ("dorametrics", answer.clone()),
            ("postgres", rows_json(&pg_answers[request.name])),
            ("duckdb", rows_json(duck_rows)),
        ] {
            std::fs::write(
                answers_dir.join(format!("{}.{engine}.json", request.name)),
                serde_json::to_string_pretty(&value)?,
            )?;
        }
        for (engine, rows) in [
            ("PostgreSQL", &pg_answers[request.name]),
            ("DuckDB", duck_rows),
        ] {
            for problem in compare(request.name, answer, rows) {
                disagreements.push(format!("{} vs {engine}: {problem}", request.name));
            }
        }
    }
    if !disagreements.is_empty() {
        bail!(
            "dorametrics and the baselines disagree:\n  {}",
            disagreements.join("\n  ")
        );
    }
    progress.say("check passed: dorametrics, PostgreSQL and DuckDB return the same numbers");

    // 5. Timings of the questions.
    let http = client::client(query_timeout)?;
    let budget = Duration::from_secs(args.time_budget);
    let mut query_rows = Vec::new();
    for request in plan.requests() {
        let answered = measured.answers[request.name].as_ref();
        // An answer slower than the whole budget is its own sample: a warm-up run changes
        // nothing about a request that takes minutes.
        let first = measured.first_seconds.get(request.name).copied();
        let mut seconds: Vec<f64> = first
            .filter(|&s| s >= budget.as_secs_f64())
            .into_iter()
            .collect();
        let mut spent = Duration::from_secs_f64(seconds.iter().sum());
        while answered.is_some() && seconds.len() < repeat && (seconds.is_empty() || spent < budget)
        {
            let (_, elapsed) = client::fetch(
                &http,
                &api,
                request.method.clone(),
                &request.path,
                request.body.as_ref(),
            )
            .await?;
            spent += elapsed;
            seconds.push(elapsed.as_secs_f64());
        }
        let pg_timing = pg.query(&named[request.name], repeat).await?.seconds;
        let dora = Timing::of(&seconds);
        progress.say(format!(
            "{}: dorametrics {} median, PostgreSQL {}, DuckDB {}",
            request.name,
            dora.map_or("timed out".into(), |t| report::duration(t.median)),
            Timing::of(&pg_timing).map_or("-".into(), |t| report::duration(t.median)),
            duck.queries
                .get(request.name)
                .and_then(|q| Timing::of(&q.seconds))
                .map_or("-".into(), |t| report::duration(t.median)),
        ));
        query_rows.push(QueryRow {
            key: request.name,
            name: request.label.clone(),
            rows: answered.map_or(pg_answers[request.name].rows.len(), |a| {
                answer_rows(request.name, a)
            }),
            dorametrics: dora,
            timed_out: answered.is_none().then(|| {
                if args.skip.iter().any(|s| s == request.name) {
                    "not run (--skip)".to_string()
                } else {
                    format!(
                        "timed out (> {})",
                        report::duration(query_timeout.as_secs_f64())
                    )
                }
            }),
            duckdb: duck
                .queries
                .get(request.name)
                .and_then(|q| Timing::of(&q.seconds)),
            postgres: Timing::of(&pg_timing),
        });
    }

    // 6. Memory, size on disk and a cold start on the loaded database.
    let peak_rss = peak_rss.max(server.peak_rss());
    server.stop().await?;
    let database_bytes = if args.store == "postgres" {
        let name = database.rsplit('/').next().unwrap_or_default();
        baseline::database_size(&args.postgres, name).await?
    } else {
        let path = workdir.join("dorametrics.db");
        ["", "-wal", "-shm"]
            .iter()
            .map(|suffix| file_size(&PathBuf::from(format!("{}{suffix}", path.display()))))
            .sum()
    };
    let (server, cold_start) =
        ServerProcess::start(exe, database, &workdir.join("server-restart.log")).await?;
    progress.say(format!(
        "cold start on the loaded database: {}",
        report::duration(cold_start.as_secs_f64())
    ));
    server.stop().await?;

    // 7. PostgreSQL single-row intake, as many rows per phase as dorametrics took (capped).
    let rows = Arc::new(baseline::read_simple_csv(&data.join("deployments.csv"))?);
    let mut pg_inserts = Vec::new();
    for (connections, range) in phases(rows.len()) {
        let end = range.start + range.len().min(args.insert_sample);
        let intake = pg
            .insert_each(rows.clone(), range.start..end, connections)
            .await?;
        let rate = Rate::of(&intake);
        progress.say(format!(
            "PostgreSQL INSERT, {connections} connections: {}/s",
            report::thousands(rate.per_second)
        ));
        pg_inserts.push(rate);
    }
    let postgres_bytes = pg.size().await?;

    // 8. The table.
    let mut intake = Vec::new();
    for (i, ((connections, _), pg_rate)) in
        phases(rows.len()).into_iter().zip(&pg_inserts).enumerate()
    {
        let plural = if connections == 1 { "" } else { "s" };
        intake.push(IntakeRow {
            key: match connections {
                1 => "single_1",
                16 => "single_16",
                _ => "single_64",
            },
            name: format!(
                "single event: `POST /api/v2/dora/deployment`, {connections} keep-alive connection{plural}"
            ),
            dorametrics: measured.deployments.get(i).copied(),
            postgres_label: "INSERT … ON CONFLICT, one per transaction".into(),
            postgres: Some(*pg_rate),
            duckdb: None,
        });
    }
    let load = |map: &BTreeMap<&str, baseline::Load>, table: &str| {
        map.get(table).map(|l| Rate::of_load(l.rows, l.seconds))
    };
    let duck_load: BTreeMap<&str, baseline::Load> =
        duck.load.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    intake.push(IntakeRow {
        key: "bulk_commits",
        name: "bulk: commits, `POST /api/v1/commits` NDJSON (10,000 a request, 2 connections)"
            .into(),
        dorametrics: measured.commits,
        postgres_label: "COPY commits (primary key)".into(),
        postgres: load(&pg_load, "commits"),
        duckdb: load(&duck_load, "commits"),
    });
    intake.push(IntakeRow {
        key: "bulk_deployments",
        name: format!(
            "bulk: deployments, `POST /api/v1/deployments` NDJSON ({} a request, 2 connections)",
            report::thousands(BULK_DEPLOYMENTS as f64)
        ),
        dorametrics: measured.bulk_deployments,
        postgres_label: "COPY deployments (primary key)".into(),
        postgres: load(&pg_load, "deployments"),
        duckdb: load(&duck_load, "deployments"),
    });

    let version = match git_commit().await {
        Some(commit) => format!("{}, commit {commit}", env!("CARGO_PKG_VERSION")),
        None => env!("CARGO_PKG_VERSION").to_string(),
    };
    let profile = if cfg!(debug_assertions) {
        "debug build"
    } else {
        "release build"
    };
    let store = if args.store == "postgres" {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let command = format!(
        "cargo run --release -p dora-bench -- {}",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    );
    Ok(Results {
        scale: manifest.scale.clone(),
        store: args.store.clone(),
        title: format!(
            "dorametrics bench, scale {} (seed {}): {} services, {} teams, {} repositories, \
             {} deployments ({} to production), {} commits, {} failures, {} rollbacks, {} \
             rollforwards; {} shipped-commit rows",
            manifest.scale,
            manifest.seed,
            manifest.size.services,
            manifest.size.teams,
            manifest.repositories,
            report::thousands(manifest.deployments as f64),
            report::thousands(manifest.production_deployments as f64),
            report::thousands(manifest.commits as f64),
            report::thousands(manifest.failures as f64),
            report::thousands(manifest.rollbacks as f64),
            report::thousands(manifest.rollforwards as f64),
            report::thousands(manifest.changes as f64),
        ),
        machine: report::machine(),
        engines: format!(
            "dorametrics {version}, {profile}, {store} store; {}; {}",
            pg.version, duck.engine
        ),
        command,
        smoke: args.smoke,
        load_seconds: measured.load_seconds,
        intake,
        queries: query_rows,
        resources: Resources {
            peak_rss_bytes: peak_rss,
            database_bytes,
            cold_start_seconds: cold_start.as_secs_f64(),
            settle_seconds: settle.as_secs_f64(),
            postgres_bytes: Some(postgres_bytes),
            duckdb_bytes: Some(duck.size_bytes),
        },
        notes: notes
            .into_iter()
            .chain([
                "Every figure comes from the same run, after the check that dorametrics, \
             PostgreSQL and DuckDB return the same numbers for every question."
                    .into(),
                format!(
                    "Query timings are wall times of {repeat} run(s) after one untimed run: \
                 dorametrics over HTTP (keep-alive), PostgreSQL over TCP (simple protocol), \
                 DuckDB in-process from Python. dorametrics' timed runs of one question \
                 stop after --time-budget {}; a question slower than that is timed by its \
                 first answer alone (1 run).",
                    report::duration(budget.as_secs_f64())
                ),
                "The baselines aggregate precomputed tables (`changes.csv`: the commits each \
             production deployment first shipped; verdicts per deployment), as Four Keys and \
             DevLake do after their ETL; dorametrics derives change sets and failures from the \
             raw events and commits itself, keeping them per deployment as events arrive (the \
             first metric answer after the load, timed apart, waits for whatever is still to \
             derive)."
                    .into(),
                format!(
                    "Ratios: intake is dorametrics' rate ÷ PostgreSQL's (above 1: dorametrics is \
                 faster); queries are dorametrics' time ÷ the baseline's (below 1: dorametrics \
                 is faster). The PostgreSQL INSERT phases send at most {} rows each.",
                    report::thousands(args.insert_sample as f64)
                ),
            ])
            .collect(),
    })
}

/// Loads the data set into dorametrics through its HTTP API and takes its answers.
async fn load_dorametrics(progress: &Progress, api: &Api, data: &Path) -> Result<Measured> {
    let started = Instant::now();
    progress.say("dorametrics: bulk commits (POST /api/v1/commits)");
    let commits = client::post_ndjson_file(
        api,
        &data.join("commits.ndjson"),
        0,
        "/api/v1/commits",
        10_000,
        2,
    )
    .await?;
    let commits = Some(Rate::of(&commits));
    progress.say(format!(
        "dorametrics: {} commits at {}/s",
        commits.map_or(0, |c| c.events),
        report::thousands(commits.map_or(0.0, |c| c.per_second))
    ));

    let deployments = Arc::new(client::read_lines(
        &data.join("deployments.ndjson"),
        "/api/v2/dora/deployment",
    )?);
    let mut rates = Vec::new();
    for (connections, range) in phases(deployments.len()) {
        let intake =
            client::send_each(api, Method::POST, deployments.clone(), range, connections).await?;
        let rate = Rate::of(&intake);
        progress.say(format!(
            "dorametrics: {} deployments over {connections} connections at {}/s (p50 {}, p99 {})",
            rate.events,
            report::thousands(rate.per_second),
            rate.p50.map_or("-".into(), report::duration),
            rate.p99.map_or("-".into(), report::duration),
        ));
        rates.push(rate);
    }
    let sent = phases(deployments.len())[2].1.end;
    drop(deployments);
    progress.say("dorametrics: bulk deployments (POST /api/v1/deployments)");
    let bulk = client::post_ndjson_file(
        api,
        &data.join("deployments.ndjson"),
        sent,
        "/api/v1/deployments",
        BULK_DEPLOYMENTS,
        2,
    )
    .await?;
    let bulk_deployments = (bulk.events > 0).then(|| Rate::of(&bulk));
    progress.say(format!(
        "dorametrics: {} deployments in bulk at {}/s",
        bulk.events,
        report::thousands(bulk_deployments.map_or(0.0, |r| r.per_second))
    ));

    let failures = Arc::new(client::read_lines(
        &data.join("failures.ndjson"),
        "/api/v2/dora/failure",
    )?);
    let count = failures.len();
    client::send_each(api, Method::POST, failures, 0..count, 16).await?;
    let patches = Arc::new(read_patches(&data.join("patches.ndjson"))?);
    let count_patches = patches.len();
    client::send_each(api, Method::PATCH, patches, 0..count_patches, 16).await?;
    let load_seconds = started.elapsed().as_secs_f64();
    progress.say(format!(
        "dorametrics: {count} failures and {count_patches} rollforward patches; loaded in {:.1}s",
        load_seconds
    ));

    Ok(Measured {
        load_seconds,
        commits,
        bulk_deployments,
        deployments: rates,
        answers: BTreeMap::new(),
        first_seconds: BTreeMap::new(),
    })
}

/// The commit of the work tree the benchmark runs in (`-dirty` with local changes), to say what
/// was measured.
async fn git_commit() -> Option<String> {
    let output = tokio::process::Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=10"])
        .stderr(std::process::Stdio::null())
        .output()
        .await
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

/// `{"id": …, "body": …}` lines into PATCH requests.
fn read_patches(path: &Path) -> Result<Vec<Item>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let value: Value = serde_json::from_str(line)?;
            let id = value["id"].as_str().context("a patch without id")?;
            Ok(Item {
                path: Arc::from(format!("/api/v2/dora/deployments/{id}").as_str()),
                body: Bytes::from(serde_json::to_vec(&value["body"])?),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_consecutive_and_leave_the_rest_to_bulk() {
        for total in [1, 10, 2_000, 100_000, 1_000_000] {
            let p = phases(total);
            assert_eq!(p[0].1.start, 0);
            assert_eq!(p[0].1.end, p[1].1.start);
            assert_eq!(p[1].1.end, p[2].1.start);
            assert!(p[2].1.end <= total);
        }
        assert_eq!(phases(1_000_000)[0].1.len(), 5_000);
        assert_eq!(phases(1_000_000)[1].1.len(), 20_000);
        assert_eq!(phases(1_000_000)[2].1.len(), 50_000);
        // Scale S (2,000): 200, 400, then 700 one by one and 700 in bulk.
        assert_eq!(phases(2_000)[2].1, 600..1_300);
    }
}
