//! A realistic organisation, generated deterministically from a scale and a seed, as files every
//! engine loads (what `dora-bench generate` writes): the request bodies dorametrics ingests
//! (NDJSON) and the tables the SQL baselines load (CSV).
//!
//! Each service belongs to a repository (several may share one). A repository's history is a
//! first-parent main line of direct commits and merge commits, each merge bringing a feature
//! branch forked from the main line of its day. Every (service, env) stream deploys the main
//! line as it was some lag ago (development minutes, staging hours, production a day), so
//! environments trail each other; some deployments roll back to the previous sha (rule b),
//! some are redeploys of an unchanged sha, and failures either name the deployment's version or
//! sha (rule c), start within 24 h after it (rule d), or start later and are blamed on nothing.
//!
//! Alongside the events the generator writes what the product's definitions make of them
//! (DESIGN.md "Metric definitions"), computed here independently of the product's code:
//! `changes.csv`, the commits each production deployment ships first (the rev-list ranges, which
//! SQL cannot walk, as Four Keys and DevLake precompute them), and per deployment whether it
//! failed, is rework and its recovery time. The baselines aggregate those with SQL; dorametrics
//! derives them from the raw events, and the benchmark checks both give the same numbers.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use rng::Rng;

pub mod rng;

/// Why a data set could not be written.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("cannot create {path}: {source}")]
    Create {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the data set: {0}")]
    Write(#[from] std::io::Error),
    #[error("cannot write the manifest: {0}")]
    Manifest(#[from] serde_json::Error),
}

pub type Result<T> = std::result::Result<T, GenerateError>;

/// How big an organisation: S for CI, M about a tenth of L, L the benchmark's scale (500
/// services, 1,000,000 deployments, 10,000,000 commits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    S,
    M,
    L,
}

impl Scale {
    pub const ALL: [Scale; 3] = [Scale::S, Scale::M, Scale::L];

    pub fn name(self) -> &'static str {
        match self {
            Scale::S => "S",
            Scale::M => "M",
            Scale::L => "L",
        }
    }
}

impl std::str::FromStr for Scale {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|scale| scale.name().eq_ignore_ascii_case(text))
            .ok_or_else(|| format!("{text:?} is not a scale: S, M or L"))
    }
}

/// The generated history: 730 days ending the day before END.
pub const START: i64 = 1_688_169_600; // 2023-07-01T00:00:00Z
pub const DAYS: i64 = 730;
pub const END: i64 = START + DAYS * DAY; // 2025-06-30T00:00:00Z, exclusive
const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;
/// The product's default failure window (rule d).
const FAILURE_WINDOW: i64 = DAY;
/// Bumped whenever the generated data changes, so stale data sets are regenerated.
pub const GENERATOR: u32 = 1;
/// The organisation's top-level group (GitLab's namespace): every project lies inside it.
pub const GROUP: &str = "acme";

/// What a scale generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Size {
    pub services: usize,
    pub teams: usize,
    pub deployments: usize,
    pub commits: usize,
    pub failures: usize,
}

impl Scale {
    pub fn size(self) -> Size {
        match self {
            Scale::S => Size {
                services: 10,
                teams: 3,
                deployments: 2_000,
                commits: 20_000,
                failures: 100,
            },
            Scale::M => Size {
                services: 50,
                teams: 5,
                deployments: 100_000,
                commits: 1_000_000,
                failures: 5_000,
            },
            Scale::L => Size {
                services: 500,
                teams: 50,
                deployments: 1_000_000,
                commits: 10_000_000,
                failures: 50_000,
            },
        }
    }
}

/// One environment every service deploys to.
struct EnvSpec {
    name: &'static str,
    tier: &'static str,
    /// Share of all deployments.
    share: f64,
    /// How far behind the main line this env deploys.
    lag: i64,
    /// Probability that a deployment shipping something new is rolled back by the next one.
    rollback: f64,
    /// Share of all failures.
    failures: f64,
}

const ENVS: [EnvSpec; 3] = [
    EnvSpec {
        name: "production",
        tier: "production",
        share: 0.25,
        lag: 20 * HOUR,
        rollback: 0.02,
        failures: 0.9,
    },
    EnvSpec {
        name: "staging",
        tier: "staging",
        share: 0.30,
        lag: 3 * HOUR,
        rollback: 0.01,
        failures: 0.1,
    },
    EnvSpec {
        name: "development",
        tier: "development",
        share: 0.45,
        lag: 15 * 60,
        rollback: 0.0,
        failures: 0.0,
    },
];
const PRODUCTION: usize = 0;

const DOMAINS: [&str; 25] = [
    "checkout",
    "payments",
    "search",
    "identity",
    "catalog",
    "shipping",
    "billing",
    "growth",
    "platform",
    "data",
    "mobile",
    "web",
    "infra",
    "ads",
    "messaging",
    "reviews",
    "pricing",
    "inventory",
    "fraud",
    "support",
    "analytics",
    "media",
    "maps",
    "loyalty",
    "partners",
];
const KINDS: [&str; 8] = [
    "api", "web", "worker", "gateway", "jobs", "core", "app", "stream",
];
const DIVISIONS: [&str; 5] = ["commerce", "payments", "platform", "data", "mobile"];
const LANGUAGES: [&str; 6] = ["go", "java", "python", "rust", "typescript", "kotlin"];
const VERBS: [&str; 8] = [
    "Fix", "Add", "Update", "Remove", "Refactor", "Improve", "Bump", "Document",
];
const NOUNS: [&str; 10] = [
    "cart totals",
    "retry logic",
    "feature flag",
    "metrics",
    "login flow",
    "cache keys",
    "schema",
    "timeouts",
    "error pages",
    "dependencies",
];
const SYMPTOMS: [&str; 5] = [
    "elevated 5xx",
    "latency spike",
    "failed checkouts",
    "queue backlog",
    "data inconsistency",
];

pub struct Team {
    pub name: String,
}

pub struct Repo {
    /// Normalised id, e.g. github.com/acme/commerce/checkout-api.
    pub id: String,
    pub url: String,
    /// GitLab project path: the id without its host.
    pub project: String,
    pub services: Vec<usize>,
    weight: f64,
}

pub struct Service {
    pub name: String,
    pub team: usize,
    pub repo: usize,
    language: &'static str,
    weight: f64,
}

/// Teams, repositories and services of a size and seed.
pub struct Org {
    pub teams: Vec<Team>,
    pub repos: Vec<Repo>,
    pub services: Vec<Service>,
}

fn numbered(base: String, index: usize, every: usize) -> String {
    match index / every {
        0 => base,
        n => format!("{base}-{}", n + 1),
    }
}

impl Org {
    pub fn new(size: Size, seed: u64) -> Self {
        let mut rng = Rng::derive(seed, &[1]);
        let teams: Vec<Team> = (0..size.teams)
            .map(|i| Team {
                name: numbered(
                    format!("team-{}", DOMAINS[i % DOMAINS.len()]),
                    i,
                    DOMAINS.len(),
                ),
            })
            .collect();
        // About 0.7 repositories per service: the rest of the services share one (monorepos).
        let repo_count = (size.services * 7).div_ceil(10).max(1);
        let block = DOMAINS.len() * KINDS.len();
        let mut services: Vec<Service> = (0..size.services)
            .map(|i| Service {
                name: numbered(
                    format!(
                        "{}-{}",
                        DOMAINS[i % DOMAINS.len()],
                        KINDS[(i / DOMAINS.len()) % KINDS.len()]
                    ),
                    i,
                    block,
                ),
                team: i % size.teams.max(1),
                repo: 0,
                language: LANGUAGES[rng.below(LANGUAGES.len() as u64) as usize],
                weight: rng.lognormal(1.0, 0.7),
            })
            .collect();
        let mut repos: Vec<Repo> = (0..repo_count)
            .map(|i| {
                let division = DIVISIONS[i % DIVISIONS.len()];
                let name = services[i].name.clone();
                let project = format!("{GROUP}/{division}/{name}");
                Repo {
                    id: format!("github.com/{project}"),
                    url: format!("https://github.com/{project}"),
                    project,
                    services: Vec::new(),
                    weight: 0.0,
                }
            })
            .collect();
        for (i, service) in services.iter_mut().enumerate() {
            service.repo = if i < repo_count {
                i
            } else {
                rng.below(repo_count as u64) as usize
            };
            repos[service.repo].services.push(i);
            repos[service.repo].weight += service.weight;
        }
        Self {
            teams,
            repos,
            services,
        }
    }
}

/// Splits `total` over `weights` in whole numbers that add up exactly (largest remainder).
fn apportion(total: usize, weights: &[f64]) -> Vec<usize> {
    let sum: f64 = weights.iter().sum();
    if sum <= 0.0 || weights.is_empty() {
        return vec![0; weights.len()];
    }
    let exact: Vec<f64> = weights.iter().map(|w| w / sum * total as f64).collect();
    let mut counts: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (exact[a] - exact[a].floor(), exact[b] - exact[b].floor());
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    let missing = total - counts.iter().sum::<usize>();
    for &i in order.iter().take(missing) {
        counts[i] += 1;
    }
    counts
}

/// One commit of a generated history.
struct Commit {
    sha: [u8; 20],
    parents: [u32; 2],
    parent_count: u8,
    authored: i64,
    committed: i64,
    /// Merge request number, created and merged times (0: none).
    mr: u32,
    mr_created: i64,
    mr_merged: i64,
    subject: u8,
}

/// A first-parent main-line entry: a direct commit, or a merge commit and the branch it brings.
struct MainEntry {
    commit: u32,
    branch: std::ops::Range<u32>,
}

/// A repository's history.
struct History {
    commits: Vec<Commit>,
    main: Vec<MainEntry>,
    main_times: Vec<i64>,
}

impl History {
    fn generate(budget: usize, rng: &mut Rng) -> Self {
        // The changes first (a direct commit, or a branch and its merge), then their times.
        let mut sizes = Vec::new();
        let mut left = budget;
        while left > 0 {
            let size = if sizes.is_empty() || left < 2 || !rng.chance(0.7) {
                1
            } else {
                let branch = (1 + rng.exp(1.8) as usize).min(12).min(left - 1);
                branch + 1
            };
            sizes.push(size);
            left -= size;
        }
        let mut times: Vec<i64> = (0..sizes.len())
            .map(|_| START + (rng.unit() * (END - START - HOUR) as f64) as i64)
            .collect();
        times.sort_unstable();
        for i in 1..times.len() {
            if times[i] <= times[i - 1] {
                times[i] = times[i - 1] + 1;
            }
        }
        let mut history = History {
            commits: Vec::with_capacity(budget),
            main: Vec::with_capacity(sizes.len()),
            main_times: times.clone(),
        };
        let mut mr_number = 0u32;
        for (position, (&size, &at)) in sizes.iter().zip(&times).enumerate() {
            let previous = history.main.last().map(|m| m.commit);
            if size == 1 {
                let squashed = rng.chance(0.3);
                if squashed {
                    mr_number += 1;
                }
                let index = history.commits.len() as u32;
                history.commits.push(Commit {
                    sha: rng.sha(),
                    parents: [previous.unwrap_or(0), 0],
                    parent_count: u8::from(previous.is_some()),
                    authored: at - rng.exp(2.0 * HOUR as f64) as i64,
                    committed: at,
                    mr: if squashed { mr_number } else { 0 },
                    mr_created: at - 60 - rng.exp(DAY as f64) as i64,
                    mr_merged: at,
                    subject: rng.below(80) as u8,
                });
                history.main.push(MainEntry {
                    commit: index,
                    branch: index..index,
                });
                continue;
            }
            // A branch forked from the main line as it was when the work started.
            let branch_len = (size - 1) as i64;
            // Never before the first commit: a branch needs something to fork from.
            let opened = (at - 60 - rng.exp(1.5 * DAY as f64) as i64).max(history.main_times[0]);
            let fork = history.main_times[..position].partition_point(|&t| t <= opened);
            let fork_commit = history.main[fork.saturating_sub(1)].commit;
            mr_number += 1;
            let first = history.commits.len() as u32;
            for step in 1..=branch_len {
                let committed = opened + (at - opened) * step / (branch_len + 1);
                let parent = if step == 1 {
                    fork_commit
                } else {
                    history.commits.len() as u32 - 1
                };
                history.commits.push(Commit {
                    sha: rng.sha(),
                    parents: [parent, 0],
                    parent_count: 1,
                    authored: committed - rng.exp(HOUR as f64) as i64,
                    committed,
                    mr: mr_number,
                    mr_created: opened,
                    mr_merged: at,
                    subject: rng.below(80) as u8,
                });
            }
            let branch_end = history.commits.len() as u32;
            history.commits.push(Commit {
                sha: rng.sha(),
                parents: [previous.unwrap_or(0), branch_end - 1],
                parent_count: 2,
                authored: at,
                committed: at,
                mr: 0,
                mr_created: 0,
                mr_merged: 0,
                subject: 255,
            });
            history.main.push(MainEntry {
                commit: branch_end,
                branch: first..branch_end,
            });
        }
        history
    }

    /// The main-line position a deployment at `at` ships: the newest main commit by then.
    fn position_at(&self, at: i64) -> u32 {
        self.main_times
            .partition_point(|&t| t <= at)
            .saturating_sub(1) as u32
    }

    fn sha_at(&self, position: u32) -> [u8; 20] {
        self.commits[self.main[position as usize].commit as usize].sha
    }

    /// Non-merge commits the main line gains after `low` up to and including `high`.
    fn shipped(&self, low: u32, high: u32) -> impl Iterator<Item = &Commit> {
        self.main[low as usize + 1..=high as usize]
            .iter()
            .flat_map(move |entry| {
                let main = &self.commits[entry.commit as usize];
                let direct = (main.parent_count < 2).then_some(main);
                self.commits[entry.branch.start as usize..entry.branch.end as usize]
                    .iter()
                    .chain(direct)
            })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DeployKind {
    Forward,
    Redeploy,
    Rollback,
}

/// One generated deployment; its id is `service.env.seq`.
struct Deployment {
    service: u32,
    env: u8,
    seq: u32,
    position: u32,
    sha: [u8; 20],
    started: i64,
    finished: i64,
    kind: DeployKind,
    failed: bool,
    rework: bool,
    recovery: Option<i64>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FailureKind {
    NamesVersion,
    NamesSha,
    Window,
    Unattributed,
}

struct Failure {
    service: u32,
    env: u8,
    started: i64,
    finished: Option<i64>,
    kind: FailureKind,
    /// The deployment it names or follows (index into the stream's deployments).
    deployment_seq: u32,
    position: u32,
    sha: [u8; 20],
    attributed: bool,
    severity: u8,
    symptom: u8,
}

/// A rollforward: `failed` was remediated by `by` (PATCH … remediation).
struct Patch {
    service: u32,
    env: u8,
    failed: u32,
    by: u32,
}

/// What a run of the generator wrote, and the selections the benchmark asks about.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// [`GENERATOR`] of the code that wrote it: a data set from another version is rewritten.
    #[serde(default)]
    pub generator: u32,
    pub scale: String,
    pub seed: u64,
    pub size: Size,
    pub repositories: usize,
    pub deployments: usize,
    pub production_deployments: usize,
    pub commits: usize,
    pub changes: usize,
    pub failures: usize,
    pub resolved_failures: usize,
    pub rollbacks: usize,
    pub rollforwards: usize,
    /// First and last day of the data (inclusive, YYYY-MM-DD).
    pub first_day: String,
    pub last_day: String,
    pub group: String,
    /// The project with the most production deployments.
    pub project: String,
    /// The team with the most production deployments.
    pub team: String,
    /// `service:(a OR b) env:production -team:x`: the two busiest services of different teams,
    /// and the team of the first.
    pub list_services: [String; 2],
    pub list_team: String,
    pub generate_seconds: f64,
}

pub fn hex(sha: &[u8; 20]) -> String {
    let mut text = String::with_capacity(40);
    for byte in sha {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

/// `YYYY-MM-DD` of a day number since the Unix epoch (Howard Hinnant's civil_from_days).
pub fn civil_date(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

pub fn date_text(seconds: i64) -> String {
    let (y, m, d) = civil_date(seconds.div_euclid(DAY));
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DD HH:MM:SS` (UTC): how the CSV files spell times, which both SQL engines read as
/// `TIMESTAMP`.
fn timestamp(out: &mut String, seconds: i64) {
    let (y, m, d) = civil_date(seconds.div_euclid(DAY));
    let s = seconds.rem_euclid(DAY);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    );
}

fn subject(code: u8, mr: u32) -> String {
    if code == 255 {
        return format!("Merge branch 'feature-{mr}' into 'main'");
    }
    let verb = VERBS[code as usize % VERBS.len()];
    let noun = NOUNS[code as usize / VERBS.len() % NOUNS.len()];
    format!("{verb} {noun}")
}

/// Buffered writers of every output file.
struct Outputs {
    commits_ndjson: BufWriter<File>,
    commits_csv: BufWriter<File>,
    changes_csv: BufWriter<File>,
}

fn create(dir: &Path, name: &str) -> Result<BufWriter<File>> {
    let path = dir.join(name);
    let file = File::create(&path).map_err(|source| GenerateError::Create {
        path: path.clone(),
        source,
    })?;
    Ok(BufWriter::with_capacity(1 << 20, file))
}

/// Generates the organisation of `scale` and `seed` into `out` (created; existing files are
/// replaced). `manifest.json` is written last, so its presence means the data set is whole.
pub fn generate(scale: Scale, seed: u64, out: &Path) -> Result<Manifest> {
    let started = Instant::now();
    let size = scale.size();
    fs::create_dir_all(out).map_err(|source| GenerateError::Create {
        path: out.to_path_buf(),
        source,
    })?;
    let _ = fs::remove_file(out.join("manifest.json"));
    let org = Org::new(size, seed);
    let mut outputs = Outputs {
        commits_ndjson: create(out, "commits.ndjson")?,
        commits_csv: create(out, "commits.csv")?,
        changes_csv: create(out, "changes.csv")?,
    };
    writeln!(
        outputs.commits_csv,
        "repository_id,sha,parents,authored_at,committed_at,subject,mr_number,mr_created_at,mr_merged_at"
    )?;
    writeln!(
        outputs.changes_csv,
        "deployment_id,sha,committed_at,merged_at"
    )?;

    let stream_weights: Vec<f64> = org
        .services
        .iter()
        .flat_map(|s| ENVS.iter().map(move |e| s.weight * e.share))
        .collect();
    let stream_sizes = apportion(size.deployments, &stream_weights);
    let repo_weights: Vec<f64> = org.repos.iter().map(|r| r.weight).collect();
    let repo_budgets = apportion(size.commits, &repo_weights);

    let mut deployments: Vec<Deployment> = Vec::with_capacity(size.deployments);
    let mut failures: Vec<Failure> = Vec::new();
    let mut patches: Vec<Patch> = Vec::new();
    let mut changes = 0usize;
    for (r, repo) in org.repos.iter().enumerate() {
        let mut rng = Rng::derive(seed, &[2, r as u64]);
        let history = History::generate(repo_budgets[r], &mut rng);
        write_commits(&mut outputs, repo, &history)?;
        for &s in &repo.services {
            for (e, env) in ENVS.iter().enumerate() {
                let count = stream_sizes[s * ENVS.len() + e];
                let mut rng = Rng::derive(seed, &[3, s as u64, e as u64]);
                let mut stream = deploy_stream(&history, s, e, count, &mut rng);
                let per_deployment = if env.share > 0.0 {
                    size.failures as f64 * env.failures / (size.deployments as f64 * env.share)
                } else {
                    0.0
                };
                let (stream_failures, stream_patches) =
                    fail_stream(&stream, per_deployment, &mut rng);
                judge_stream(&mut stream, &stream_failures, &stream_patches);
                if e == PRODUCTION {
                    changes += write_changes(&mut outputs, &org, &history, &stream)?;
                }
                failures.extend(stream_failures);
                patches.extend(stream_patches);
                deployments.extend(stream);
            }
        }
    }
    outputs.commits_ndjson.flush()?;
    outputs.commits_csv.flush()?;
    outputs.changes_csv.flush()?;

    deployments.sort_by_key(|d| (d.finished, d.service, d.env, d.seq));
    write_deployments(out, &org, &deployments)?;
    failures.sort_by_key(|f| (f.started, f.service, f.env, f.deployment_seq));
    write_failures(out, &org, &failures)?;
    write_patches(out, &org, &patches)?;

    let manifest = manifest(
        scale,
        seed,
        &org,
        &deployments,
        &failures,
        &patches,
        changes,
    );
    let manifest = Manifest {
        generate_seconds: started.elapsed().as_secs_f64(),
        ..manifest
    };
    fs::write(
        out.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    Ok(manifest)
}

fn write_commits(outputs: &mut Outputs, repo: &Repo, history: &History) -> Result<()> {
    let mut line = String::with_capacity(512);
    let mut csv = String::with_capacity(512);
    for commit in &history.commits {
        line.clear();
        csv.clear();
        let sha = hex(&commit.sha);
        let parents: Vec<String> = commit.parents[..commit.parent_count as usize]
            .iter()
            .map(|&p| hex(&history.commits[p as usize].sha))
            .collect();
        let subject = subject(commit.subject, commit.mr);
        let author = (commit.committed as u64 % 97) + (commit.sha[0] as u64 % 3) * 97;
        let parents_json = if parents.is_empty() {
            "[]".to_string()
        } else {
            format!(r#"["{}"]"#, parents.join(r#"",""#))
        };
        let _ = write!(
            line,
            r#"{{"repository_url":"{}","sha":"{sha}","parents":{parents_json},"authored_at":{},"committed_at":{},"author":"dev{author} <dev{author}@acme.example>","subject":"{subject}""#,
            repo.url, commit.authored, commit.committed,
        );
        if commit.mr > 0 {
            let _ = write!(
                line,
                r#","merge_request":{{"number":{},"created_at":{},"merged_at":{}}}"#,
                commit.mr, commit.mr_created, commit.mr_merged
            );
        }
        line.push_str("}\n");
        outputs.commits_ndjson.write_all(line.as_bytes())?;

        let _ = write!(csv, "{},{sha},{},", repo.id, parents.join(" "));
        timestamp(&mut csv, commit.authored);
        csv.push(',');
        timestamp(&mut csv, commit.committed);
        let _ = write!(csv, ",\"{subject}\",");
        if commit.mr > 0 {
            let _ = write!(csv, "{},", commit.mr);
            timestamp(&mut csv, commit.mr_created);
            csv.push(',');
            timestamp(&mut csv, commit.mr_merged);
        } else {
            csv.push_str(",,");
        }
        csv.push('\n');
        outputs.commits_csv.write_all(csv.as_bytes())?;
    }
    Ok(())
}

/// The deployments of one service to one env, in finish order.
fn deploy_stream(
    history: &History,
    service: usize,
    env: usize,
    count: usize,
    rng: &mut Rng,
) -> Vec<Deployment> {
    let spec = &ENVS[env];
    let first = START + 3 * DAY;
    let mut times: Vec<i64> = (0..count)
        .map(|_| first + (rng.unit() * (END - first - 60) as f64) as i64)
        .collect();
    times.sort_unstable();
    for i in 1..times.len() {
        if times[i] <= times[i - 1] {
            times[i] = times[i - 1] + 1;
        }
    }
    let mut stream: Vec<Deployment> = Vec::with_capacity(count);
    let mut highest: Option<u32> = None;
    for (seq, &finished) in times.iter().enumerate() {
        let previous = stream.last();
        // Roll back a deployment that shipped something new, to the sha before it.
        let rollback_target = previous
            .filter(|p| p.kind == DeployKind::Forward && Some(p.position) == highest)
            .and_then(|p| {
                stream
                    .iter()
                    .rev()
                    .find(|d| d.position != p.position)
                    .map(|d| d.position)
            })
            .filter(|_| rng.chance(spec.rollback));
        let (position, kind) = match (rollback_target, previous) {
            (Some(target), _) => (target, DeployKind::Rollback),
            (None, None) => (
                history.position_at(finished - spec.lag - rng.exp(HOUR as f64) as i64),
                DeployKind::Forward,
            ),
            (None, Some(previous)) => {
                let wanted = history.position_at(finished - spec.lag - rng.exp(HOUR as f64) as i64);
                // Nothing newer than what is (or was, before a rollback) out there: redeploy.
                if wanted <= highest.unwrap_or(0) {
                    (previous.position, DeployKind::Redeploy)
                } else {
                    (wanted, DeployKind::Forward)
                }
            }
        };
        highest = Some(highest.map_or(position, |h| h.max(position)));
        stream.push(Deployment {
            service: service as u32,
            env: env as u8,
            seq: seq as u32,
            position,
            sha: history.sha_at(position),
            started: finished - 120 - rng.exp(600.0) as i64,
            finished,
            kind,
            failed: false,
            rework: false,
            recovery: None,
        });
    }
    stream
}

/// Failures of one stream, each placed so the product's rules blame exactly the deployment
/// chosen here (or none), and rollforwards of some failed deployments.
fn fail_stream(
    stream: &[Deployment],
    per_deployment: f64,
    rng: &mut Rng,
) -> (Vec<Failure>, Vec<Patch>) {
    let mut failures = Vec::new();
    let mut patches = Vec::new();
    let mut patched = vec![false; stream.len()];
    for (i, d) in stream.iter().enumerate() {
        if !rng.chance(per_deployment) {
            continue;
        }
        // Until the next deployment of the stream (or the end of the data).
        let gap = stream
            .get(i + 1)
            .map_or(END - d.finished, |n| n.finished - d.finished);
        if gap < 2 {
            continue;
        }
        let roll = rng.unit();
        let mut kind = if roll < 0.35 {
            FailureKind::NamesVersion
        } else if roll < 0.55 {
            FailureKind::NamesSha
        } else if roll < 0.85 {
            FailureKind::Window
        } else {
            FailureKind::Unattributed
        };
        if kind == FailureKind::Unattributed && gap <= FAILURE_WINDOW + 2 {
            kind = FailureKind::Window;
        }
        let after = match kind {
            FailureKind::Unattributed => {
                FAILURE_WINDOW + 1 + rng.below((gap - FAILURE_WINDOW - 2) as u64) as i64
            }
            _ => 1 + rng.below((gap - 1).min(FAILURE_WINDOW) as u64) as i64,
        };
        let started = d.finished + after;
        let finished = rng
            .chance(0.95)
            .then(|| started + 60 + rng.lognormal(45.0 * 60.0, 1.2) as i64);
        failures.push(Failure {
            service: d.service,
            env: d.env,
            started,
            finished,
            kind,
            deployment_seq: d.seq,
            position: d.position,
            sha: d.sha,
            attributed: kind != FailureKind::Unattributed,
            severity: rng.below(4) as u8 + 1,
            symptom: rng.below(SYMPTOMS.len() as u64) as u8,
        });
        // Some attributed failures are fixed forward, and the client says so.
        let next = stream.get(i + 1);
        if kind != FailureKind::Unattributed
            && !patched[i]
            && next.is_some_and(|n| n.kind == DeployKind::Forward)
            && rng.chance(0.3)
        {
            patched[i] = true;
            patches.push(Patch {
                service: d.service,
                env: d.env,
                failed: d.seq,
                by: d.seq + 1,
            });
        }
    }
    (failures, patches)
}

/// Which deployments failed, which are rework and their recovery times, by the definitions in
/// DESIGN.md (rules a, b, c, d; remediation by rollback or a named rollforward).
fn judge_stream(stream: &mut [Deployment], failures: &[Failure], patches: &[Patch]) {
    let n = stream.len();
    let mut remediated_by: Vec<Option<usize>> = vec![None; n];
    for patch in patches {
        remediated_by[patch.failed as usize] = Some(patch.by as usize);
    }
    let mut failed: Vec<bool> = remediated_by.iter().map(Option::is_some).collect();
    // (b) k ships what j < k-1 shipped and k-1 shipped something else: j+1..k-1 failed.
    let mut rolled_back_by: Vec<Option<usize>> = vec![None; n];
    for k in 2..n {
        if stream[k].position == stream[k - 1].position {
            continue;
        }
        if let Some(j) = (0..k - 1)
            .rev()
            .find(|&j| stream[j].position == stream[k].position)
        {
            for slot in &mut rolled_back_by[j + 1..k] {
                slot.get_or_insert(k);
            }
        }
    }
    for i in 0..n {
        if let Some(k) = rolled_back_by[i] {
            failed[i] = true;
            remediated_by[i].get_or_insert(k);
        }
    }
    for failure in failures.iter().filter(|f| f.attributed) {
        failed[failure.deployment_seq as usize] = true;
    }
    for i in 0..n {
        stream[i].failed = failed[i];
        if let Some(k) = remediated_by[i] {
            stream[i].recovery = Some(stream[k].finished - stream[i].finished);
            stream[k].rework = true;
        }
    }
}

fn deployment_id(org: &Org, service: u32, env: u8, seq: u32) -> String {
    format!(
        "{}.{}.{seq:06}",
        org.services[service as usize].name, ENVS[env as usize].name
    )
}

/// The commits each production deployment ships first, except the first deployment of the
/// stream (no baseline: excluded from lead time). Returns the rows written.
fn write_changes(
    outputs: &mut Outputs,
    org: &Org,
    history: &History,
    stream: &[Deployment],
) -> Result<usize> {
    let mut rows = 0;
    let mut line = String::with_capacity(256);
    let mut highest: Option<u32> = None;
    for d in stream {
        let Some(high) = highest else {
            highest = Some(d.position);
            continue;
        };
        if d.position <= high {
            continue;
        }
        let id = deployment_id(org, d.service, d.env, d.seq);
        for commit in history.shipped(high, d.position) {
            line.clear();
            let _ = write!(line, "{id},{},", hex(&commit.sha));
            timestamp(&mut line, commit.committed);
            line.push(',');
            if commit.mr > 0 {
                timestamp(&mut line, commit.mr_merged);
            }
            line.push('\n');
            outputs.changes_csv.write_all(line.as_bytes())?;
            rows += 1;
        }
        highest = Some(d.position);
    }
    Ok(rows)
}

fn version(position: u32) -> String {
    format!("1.{position}.0")
}

fn write_deployments(out: &Path, org: &Org, deployments: &[Deployment]) -> Result<()> {
    let mut ndjson = create(out, "deployments.ndjson")?;
    let mut csv = create(out, "deployments.csv")?;
    writeln!(
        csv,
        "id,service,team,env,tier,project,repository_id,version,sha,started_at,finished_at,failed,rework,recovery_s"
    )?;
    let mut line = String::with_capacity(1024);
    for d in deployments {
        let service = &org.services[d.service as usize];
        let repo = &org.repos[service.repo];
        let team = &org.teams[service.team].name;
        let env = &ENVS[d.env as usize];
        let id = deployment_id(org, d.service, d.env, d.seq);
        let sha = hex(&d.sha);
        let version = version(d.position);
        line.clear();
        let _ = write!(
            line,
            r#"{{"data":{{"attributes":{{"id":"{id}","service":"{}","env":"{}","team":"{team}","version":"{version}","started_at":{},"finished_at":{},"git":{{"repository_url":"{}","commit_sha":"{sha}"}},"custom_tags":["language:{}","deployed_by:argocd"]}}}}}}"#,
            service.name, env.name, d.started, d.finished, repo.url, service.language
        );
        line.push('\n');
        ndjson.write_all(line.as_bytes())?;
        line.clear();
        let _ = write!(
            line,
            "{id},{},{team},{},{},{},{},{version},{sha},",
            service.name, env.name, env.tier, repo.project, repo.id
        );
        timestamp(&mut line, d.started);
        line.push(',');
        timestamp(&mut line, d.finished);
        let _ = write!(line, ",{},{},", d.failed, d.rework);
        if let Some(recovery) = d.recovery {
            let _ = write!(line, "{recovery}");
        }
        line.push('\n');
        csv.write_all(line.as_bytes())?;
    }
    ndjson.flush()?;
    csv.flush()?;
    Ok(())
}

fn write_failures(out: &Path, org: &Org, failures: &[Failure]) -> Result<()> {
    let mut ndjson = create(out, "failures.ndjson")?;
    let mut csv = create(out, "failures.csv")?;
    writeln!(
        csv,
        "id,service,team,env,started_at,finished_at,version,sha,deployment_id,rule"
    )?;
    let mut line = String::with_capacity(1024);
    for (n, f) in failures.iter().enumerate() {
        let service = &org.services[f.service as usize];
        let repo = &org.repos[service.repo];
        let team = &org.teams[service.team].name;
        let env = ENVS[f.env as usize].name;
        let id = format!("incident-{:08}", n + 1);
        let symptom = SYMPTOMS[f.symptom as usize];
        line.clear();
        let _ = write!(
            line,
            r#"{{"data":{{"attributes":{{"id":"{id}","name":"{} {symptom}","services":["{}"],"team":"{team}","env":"{env}","severity":"SEV-{}","started_at":{}"#,
            service.name, service.name, f.severity, f.started
        );
        if let Some(finished) = f.finished {
            let _ = write!(line, r#","finished_at":{finished}"#);
        }
        let (version, sha) = match f.kind {
            FailureKind::NamesVersion => (version(f.position), String::new()),
            FailureKind::NamesSha => (String::new(), hex(&f.sha)),
            _ => (String::new(), String::new()),
        };
        if !version.is_empty() {
            let _ = write!(line, r#","version":"{version}""#);
        }
        if !sha.is_empty() {
            let _ = write!(
                line,
                r#","git":{{"repository_url":"{}","commit_sha":"{sha}"}}"#,
                repo.url
            );
        }
        line.push_str("}}}\n");
        ndjson.write_all(line.as_bytes())?;
        line.clear();
        let _ = write!(line, "{id},{},{team},{env},", service.name);
        timestamp(&mut line, f.started);
        line.push(',');
        if let Some(finished) = f.finished {
            timestamp(&mut line, finished);
        }
        let rule = match f.kind {
            FailureKind::NamesVersion => "failure_names_version",
            FailureKind::NamesSha => "failure_names_sha",
            FailureKind::Window => "failure_window",
            FailureKind::Unattributed => "",
        };
        let blamed = if f.attributed {
            deployment_id(org, f.service, f.env, f.deployment_seq)
        } else {
            String::new()
        };
        let _ = writeln!(line, ",{version},{sha},{blamed},{rule}");
        csv.write_all(line.as_bytes())?;
    }
    ndjson.flush()?;
    csv.flush()?;
    Ok(())
}

fn write_patches(out: &Path, org: &Org, patches: &[Patch]) -> Result<()> {
    let mut ndjson = create(out, "patches.ndjson")?;
    for patch in patches {
        let failed = deployment_id(org, patch.service, patch.env, patch.failed);
        let by = deployment_id(org, patch.service, patch.env, patch.by);
        writeln!(
            ndjson,
            r#"{{"id":"{failed}","body":{{"data":{{"type":"dora_deployment_patch_request","attributes":{{"change_failure":true,"remediation":{{"id":"{by}","type":"rollforward"}}}}}}}}}}"#
        )?;
    }
    ndjson.flush()?;
    Ok(())
}

fn busiest<K: Clone + Ord + std::hash::Hash>(counts: &HashMap<K, usize>) -> Vec<K> {
    let mut keys: Vec<(&K, &usize)> = counts.iter().collect();
    keys.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    keys.into_iter().map(|(k, _)| k.clone()).collect()
}

fn manifest(
    scale: Scale,
    seed: u64,
    org: &Org,
    deployments: &[Deployment],
    failures: &[Failure],
    patches: &[Patch],
    changes: usize,
) -> Manifest {
    let production: Vec<&Deployment> = deployments
        .iter()
        .filter(|d| d.env as usize == PRODUCTION)
        .collect();
    let mut by_service: HashMap<usize, usize> = HashMap::new();
    let mut by_team: HashMap<usize, usize> = HashMap::new();
    let mut by_project: HashMap<&str, usize> = HashMap::new();
    for d in &production {
        let service = &org.services[d.service as usize];
        *by_service.entry(d.service as usize).or_default() += 1;
        *by_team.entry(service.team).or_default() += 1;
        *by_project
            .entry(org.repos[service.repo].project.as_str())
            .or_default() += 1;
    }
    let services = busiest(&by_service);
    let first = services.first().copied().unwrap_or(0);
    let second = services
        .iter()
        .copied()
        .find(|&s| org.services[s].team != org.services[first].team)
        .or_else(|| services.get(1).copied())
        .unwrap_or(first);
    Manifest {
        generator: GENERATOR,
        scale: scale.name().to_string(),
        seed,
        size: scale.size(),
        repositories: org.repos.len(),
        deployments: deployments.len(),
        production_deployments: production.len(),
        commits: scale.size().commits,
        changes,
        failures: failures.len(),
        resolved_failures: failures.iter().filter(|f| f.finished.is_some()).count(),
        rollbacks: deployments
            .iter()
            .filter(|d| d.kind == DeployKind::Rollback)
            .count(),
        rollforwards: patches.len(),
        first_day: date_text(START),
        last_day: date_text(END - 1),
        group: GROUP.to_string(),
        project: busiest(&by_project)
            .first()
            .map_or_else(String::new, |p| p.to_string()),
        team: busiest(&by_team)
            .first()
            .map_or_else(String::new, |&t| org.teams[t].name.clone()),
        list_services: [
            org.services[first].name.clone(),
            org.services[second].name.clone(),
        ],
        list_team: org.teams[org.services[first].team].name.clone(),
        generate_seconds: 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_parse_by_name_in_either_case() {
        for scale in Scale::ALL {
            assert_eq!(scale.name().parse::<Scale>(), Ok(scale));
            assert_eq!(scale.name().to_lowercase().parse::<Scale>(), Ok(scale));
        }
        assert!("XL".parse::<Scale>().unwrap_err().contains("S, M or L"));
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(date_text(START), "2023-07-01");
        assert_eq!(date_text(END - 1), "2025-06-29");
        assert_eq!(date_text(0), "1970-01-01");
        let mut text = String::new();
        timestamp(&mut text, 1_738_310_400 + 3_723);
        assert_eq!(text, "2025-01-31 09:02:03");
    }

    #[test]
    fn apportion_adds_up() {
        let counts = apportion(10, &[1.0, 1.0, 1.0]);
        assert_eq!(counts.iter().sum::<usize>(), 10);
        assert_eq!(counts, [4, 3, 3]);
    }

    #[test]
    fn histories_keep_their_budget_and_ship_each_commit_once() {
        let mut rng = Rng::new(3);
        let history = History::generate(500, &mut rng);
        assert_eq!(history.commits.len(), 500);
        let last = history.main.len() as u32 - 1;
        let shipped = history.shipped(0, last).count();
        let merges = history
            .commits
            .iter()
            .filter(|c| c.parent_count == 2)
            .count();
        let root_direct =
            usize::from(history.commits[history.main[0].commit as usize].parent_count < 2);
        assert_eq!(shipped + merges + root_direct, 500);
        for commit in &history.commits {
            for &p in &commit.parents[..commit.parent_count as usize] {
                assert!(history.commits[p as usize].committed <= commit.committed);
            }
        }
    }

    #[test]
    fn rollbacks_fail_what_they_roll_back() {
        let mut rng = Rng::new(5);
        let history = History::generate(2_000, &mut rng);
        let mut stream = deploy_stream(&history, 0, PRODUCTION, 600, &mut Rng::new(9));
        judge_stream(&mut stream, &[], &[]);
        let rollbacks: Vec<usize> = (0..stream.len())
            .filter(|&i| stream[i].kind == DeployKind::Rollback)
            .collect();
        assert!(!rollbacks.is_empty());
        for k in rollbacks {
            assert!(
                stream[k - 1].failed,
                "the deployment before a rollback failed"
            );
            assert!(stream[k].rework);
        }
    }
}
