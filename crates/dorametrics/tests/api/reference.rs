//! The reference test of the metrics: a year of seeded random history — commit graphs with
//! merges, deployments to production, a second production region, a canary tagged
//! production, staging and `nonprod`, rollbacks, redeploys, unknown shas, client PATCHes, and
//! failures (resolved or not, naming versions or shas, team-only, env-less) — loaded through the
//! HTTP APIs, then every metric of `GET /api/v1/metrics` for many selections, ranges and
//! intervals checked against a straightforward computation written here from DESIGN.md
//! "Metric definitions" alone: plain loops, its own rev-list walk, its own failure rules, its
//! own calendar, sort-and-pick quantiles.

use std::collections::{BTreeSet, HashMap, HashSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

/// 2024-01-01T00:00:00Z and 2025-01-01T00:00:00Z.
const START: i64 = 1_704_067_200;
const END: i64 = 1_735_689_600;
const MINUTE: i64 = 60;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;
/// The server's default failure window.
const WINDOW: i64 = DAY;

// ---------------------------------------------------------------------------------------------
// The history.

struct Repo {
    url: &'static str,
    /// The project path.
    project: &'static str,
}

const REPOS: [Repo; 2] = [
    Repo {
        url: "https://github.com/acme/shop",
        project: "acme/shop",
    },
    Repo {
        url: "https://github.com/acme/platform/api.git",
        project: "acme/platform/api",
    },
];

#[derive(Clone)]
struct Commit {
    sha: String,
    parents: Vec<String>,
    committed: i64,
    /// (number, created, merged) of its MR/PR.
    mr: Option<(i64, i64, i64)>,
}

struct Stream {
    service: &'static str,
    env: &'static str,
    team: &'static str,
    repo: Option<usize>,
    tags: &'static [&'static str],
    /// Days between deployments (min, max).
    gap: (i64, i64),
}

const STREAMS: [Stream; 10] = [
    Stream {
        service: "shop",
        env: "production",
        team: "backend",
        repo: Some(0),
        tags: &[],
        gap: (3, 9),
    },
    Stream {
        service: "shop",
        env: "prod-eu",
        team: "backend",
        repo: Some(0),
        tags: &["region:eu"],
        gap: (7, 18),
    },
    Stream {
        service: "shop",
        env: "staging",
        team: "backend",
        repo: Some(0),
        tags: &[],
        gap: (4, 11),
    },
    Stream {
        service: "worker",
        env: "production",
        team: "backend",
        repo: Some(0),
        tags: &[],
        gap: (8, 21),
    },
    Stream {
        service: "worker",
        env: "nonprod",
        team: "backend",
        repo: Some(0),
        tags: &[],
        gap: (7, 17),
    },
    Stream {
        service: "api",
        env: "production",
        team: "platform",
        repo: Some(1),
        tags: &[],
        gap: (3, 9),
    },
    Stream {
        service: "api",
        env: "canary",
        team: "platform",
        repo: Some(1),
        tags: &["deployment_tier:production"],
        gap: (10, 26),
    },
    Stream {
        service: "api",
        env: "staging",
        team: "platform",
        repo: Some(1),
        tags: &[],
        gap: (6, 14),
    },
    Stream {
        service: "billing",
        env: "production",
        team: "payments",
        repo: None,
        tags: &[],
        gap: (8, 24),
    },
    Stream {
        service: "billing",
        env: "staging",
        team: "payments",
        repo: None,
        tags: &[],
        gap: (8, 20),
    },
];

#[derive(Clone, Debug)]
struct Dep {
    id: String,
    stream: usize,
    service: &'static str,
    env: &'static str,
    team: &'static str,
    version: String,
    finished: i64,
    sha: Option<String>,
    change_failure: Option<bool>,
    /// (target id or version, by id?, kind)
    remediation: Option<(String, bool, &'static str)>,
}

#[derive(Clone, Debug)]
struct Fail {
    id: String,
    services: Vec<&'static str>,
    team: Option<&'static str>,
    env: Option<&'static str>,
    started: i64,
    finished: Option<i64>,
    version: Option<String>,
    /// (repository index, sha)
    sha: Option<(usize, String)>,
}

struct History {
    commits: Vec<Vec<Commit>>,
    deps: Vec<Dep>,
    fails: Vec<Fail>,
}

fn sha(repo: usize, n: u64) -> String {
    format!("{:08x}{:032x}", repo + 0xa1, n)
}

/// A first-parent history per repository with occasional merged side branches (MRs); returns
/// the commits and the mainline (time, sha) in order.
fn commit_graph(rng: &mut StdRng, repo: usize) -> (Vec<Commit>, Vec<(i64, String)>) {
    let mut commits: Vec<Commit> = Vec::new();
    let mut mainline: Vec<(i64, String)> = Vec::new();
    let mut t = START - 40 * DAY;
    let mut n = 0u64;
    let mut mr = 100;
    let next = |n: &mut u64| {
        *n += 1;
        sha(repo, *n)
    };
    while t < END {
        t += rng.random_range(4 * HOUR..44 * HOUR);
        let head = mainline.last().map(|(_, s)| s.clone());
        match head {
            Some(head) if rng.random_bool(0.2) => {
                // A side branch of 1–3 commits, merged by a merge commit.
                mr += 1;
                let created = t;
                let mut side = head.clone();
                let mut branch = Vec::new();
                for _ in 0..rng.random_range(1..=3) {
                    t += rng.random_range(10 * MINUTE..4 * HOUR);
                    let c = Commit {
                        sha: next(&mut n),
                        parents: vec![side.clone()],
                        committed: t,
                        mr: None,
                    };
                    side = c.sha.clone();
                    branch.push(c);
                }
                t += rng.random_range(10 * MINUTE..6 * HOUR);
                for mut c in branch {
                    c.mr = Some((mr, created, t));
                    commits.push(c);
                }
                let merge = Commit {
                    sha: next(&mut n),
                    parents: vec![head, side],
                    committed: t,
                    mr: None,
                };
                mainline.push((t, merge.sha.clone()));
                commits.push(merge);
            }
            head => {
                let squashed = rng.random_bool(0.3);
                if squashed {
                    mr += 1;
                }
                let c = Commit {
                    sha: next(&mut n),
                    parents: head.into_iter().collect(),
                    committed: t,
                    mr: squashed.then(|| (mr, t - rng.random_range(HOUR..3 * DAY), t)),
                };
                mainline.push((t, c.sha.clone()));
                commits.push(c);
            }
        }
    }
    (commits, mainline)
}

fn history(seed: u64) -> History {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut commits = Vec::new();
    let mut mainlines = Vec::new();
    for repo in 0..REPOS.len() {
        let (c, m) = commit_graph(&mut rng, repo);
        commits.push(c);
        mainlines.push(m);
    }
    let mut used: HashSet<i64> = HashSet::new();
    let mut deps: Vec<Dep> = Vec::new();
    for (s, stream) in STREAMS.iter().enumerate() {
        let mut mine: Vec<Dep> = Vec::new();
        let mut t = START + rng.random_range(0..3 * DAY);
        let mut release = 0;
        while t < END {
            // Finish times are unique, so every order is total.
            while !used.insert(t) {
                t += 1;
            }
            let last = mine.last();
            let roll = rng.random_range(0..100);
            let earlier: Vec<&Dep> = match last {
                // Back to one of the few before the previous deployment.
                Some(last) if mine.len() >= 3 => mine[mine.len().saturating_sub(5)..mine.len() - 2]
                    .iter()
                    .filter(|d| d.version != last.version)
                    .collect(),
                _ => Vec::new(),
            };
            let (version, sha) = if roll < 8 && !earlier.is_empty() {
                // Rollback to an older deployment's sha (or version).
                let target = earlier[rng.random_range(0..earlier.len())];
                (target.version.clone(), target.sha.clone())
            } else if roll < 13 && last.is_some() {
                // Redeploy.
                let last = last.map(|d| (d.version.clone(), d.sha.clone()));
                last.unwrap_or_default()
            } else {
                match stream.repo {
                    Some(_) if roll < 15 => {
                        let unknown = format!("{:040x}", rng.random::<u64>());
                        (format!("g{}", &unknown[32..]), Some(unknown))
                    }
                    Some(repo) => {
                        let lag = rng.random_range(0..8 * HOUR);
                        let head = mainlines[repo]
                            .iter()
                            .rev()
                            .find(|(at, _)| *at <= t - lag)
                            .map(|(_, sha)| sha.clone())
                            .unwrap_or_else(|| mainlines[repo][0].1.clone());
                        (format!("g{}", &head[32..]), Some(head))
                    }
                    None => {
                        release += 1;
                        (format!("1.{release}"), None)
                    }
                }
            };
            mine.push(Dep {
                id: format!("{}-{}-{:05}-deploy", stream.service, stream.env, mine.len()),
                stream: s,
                service: stream.service,
                env: stream.env,
                team: stream.team,
                version,
                finished: t,
                sha,
                change_failure: None,
                remediation: None,
            });
            t +=
                rng.random_range(stream.gap.0 * DAY..stream.gap.1 * DAY) + rng.random_range(0..DAY);
        }
        deps.extend(mine);
    }

    // What clients said afterwards.
    let mut patched = HashSet::new();
    for i in 0..12 {
        let at = rng.random_range(0..deps.len());
        if !patched.insert(at) {
            continue;
        }
        let later: Vec<usize> = (0..deps.len())
            .filter(|&k| deps[k].stream == deps[at].stream && deps[k].finished > deps[at].finished)
            .collect();
        match i % 4 {
            0 => deps[at].change_failure = Some(true),
            1 => deps[at].change_failure = Some(false),
            2 if !later.is_empty() => {
                let fix = later[rng.random_range(0..later.len().min(3))];
                deps[at].remediation = Some((deps[fix].id.clone(), true, "rollforward"));
            }
            3 if !later.is_empty() => {
                let fix = later[rng.random_range(0..later.len().min(3))];
                deps[at].change_failure = Some(true);
                deps[at].remediation = Some((deps[fix].version.clone(), false, "rollback"));
            }
            _ => {}
        }
    }

    let mut fails = Vec::new();
    for n in 0..50 {
        let s = rng.random_range(0..STREAMS.len());
        let stream = &STREAMS[s];
        let started = START + rng.random_range(0..(END - START));
        let resolved = rng.random_bool(0.75);
        let of_stream: Vec<&Dep> = deps.iter().filter(|d| d.stream == s).collect();
        let named = of_stream[rng.random_range(0..of_stream.len())];
        let kind = rng.random_range(0..100);
        let mut fail = Fail {
            id: format!("incident-{n:07}"),
            services: vec![stream.service],
            team: None,
            env: Some(stream.env),
            started,
            finished: resolved.then(|| started + rng.random_range(5 * MINUTE..2 * DAY)),
            version: None,
            sha: None,
        };
        match kind {
            0..15 => fail.version = Some(named.version.clone()),
            15..30 => match (stream.repo, &named.sha) {
                (Some(repo), Some(sha)) => fail.sha = Some((repo, sha.clone())),
                _ => fail.version = Some(named.version.clone()),
            },
            30..40 => {
                fail.services = vec!["shop", "worker"];
                fail.env = Some("production");
            }
            40..50 => {
                fail.services = Vec::new();
                fail.team = Some(stream.team);
            }
            50..60 => fail.env = None,
            _ => {}
        }
        fails.push(fail);
    }
    History {
        commits,
        deps,
        fails,
    }
}

// ---------------------------------------------------------------------------------------------
// Loading it through the HTTP APIs.

async fn load(app: &TestApp, h: &History) {
    for (repo, commits) in h.commits.iter().enumerate() {
        let body: Vec<Value> = commits
            .iter()
            .map(|c| {
                let mut commit = json!({
                    "repository_url": REPOS[repo].url, "sha": c.sha, "parents": c.parents,
                    "authored_at": c.committed - 300, "committed_at": c.committed,
                    "subject": format!("change {}", c.sha),
                });
                if let Some((number, created, merged)) = c.mr {
                    commit["merge_request"] =
                        json!({"number": number, "created_at": created, "merged_at": merged});
                }
                commit
            })
            .collect();
        let reply = app.post("/api/v1/commits", Value::Array(body)).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    }
    // Deployments in concurrent batches: the intake's group commit makes that quick.
    for batch in h.deps.chunks(16) {
        let mut posts = tokio::task::JoinSet::new();
        for d in batch {
            let stream = &STREAMS[d.stream];
            let mut attributes = json!({
                "id": d.id, "service": d.service, "env": d.env, "team": d.team,
                "version": d.version, "started_at": d.finished - 120, "finished_at": d.finished,
                "custom_tags": stream.tags,
            });
            if let (Some(repo), Some(sha)) = (stream.repo, &d.sha) {
                attributes["git"] = json!({"repository_url": REPOS[repo].url, "commit_sha": sha});
            }
            let request = app
                .client
                .post(format!("{}/api/v2/dora/deployment", app.base))
                .header("DD-API-KEY", &app.write)
                .json(&json!({"data": {"attributes": attributes}}));
            posts.spawn(async move { request.send().await.map(|r| r.status()) });
        }
        while let Some(posted) = posts.join_next().await {
            assert_eq!(posted.unwrap().unwrap(), StatusCode::ACCEPTED);
        }
    }
    for d in &h.deps {
        let mut attributes = json!({});
        if let Some(flag) = d.change_failure {
            attributes["change_failure"] = json!(flag);
        }
        match &d.remediation {
            Some((target, true, kind)) => {
                attributes["remediation"] = json!({"id": target, "type": kind});
            }
            Some((target, false, kind)) => {
                attributes["remediation"] = json!({"version": target, "type": kind});
            }
            None => {}
        }
        if attributes == json!({}) {
            continue;
        }
        let reply = app
            .call(
                Method::PATCH,
                &format!("/api/v2/dora/deployments/{}", d.id),
                Some(&app.write),
                Some(json!({"data": {"type": "dora_deployment_patch_request", "attributes": attributes}})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    }
    for f in &h.fails {
        let mut attributes = json!({
            "id": f.id, "name": format!("failure {}", f.id), "services": f.services,
            "started_at": f.started,
        });
        if let Some(team) = f.team {
            attributes["team"] = json!(team);
        }
        if let Some(env) = f.env {
            attributes["env"] = json!(env);
        }
        if let Some(finished) = f.finished {
            attributes["finished_at"] = json!(finished);
        }
        if let Some(version) = &f.version {
            attributes["version"] = json!(version);
        }
        if let Some((repo, sha)) = &f.sha {
            attributes["git"] = json!({"repository_url": REPOS[*repo].url, "commit_sha": sha});
        }
        app.fail(attributes).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The reference computation.

/// What the reference knows of each deployment once the rules have run.
#[derive(Clone, Debug, Default)]
struct Derived {
    failed: bool,
    rework: bool,
    lead: Vec<i64>,
    merge_lead: Vec<i64>,
    recovery: Option<i64>,
}

fn tier(d: &Dep) -> &'static str {
    if let Some(tag) = STREAMS[d.stream]
        .tags
        .iter()
        .find_map(|t| t.strip_prefix("deployment_tier:"))
    {
        return tag;
    }
    match d.env {
        "production" | "prod-eu" => "production",
        "staging" | "nonprod" => "staging",
        _ => "other",
    }
}

fn project(d: &Dep) -> String {
    match (STREAMS[d.stream].repo, &d.sha) {
        (Some(repo), Some(_)) => REPOS[repo].project.to_string(),
        _ => d.service.to_string(),
    }
}

/// Every commit reachable from `tip`, itself included (nothing when the graph lacks it).
fn reachable(graph: &HashMap<&str, &Commit>, tip: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    let mut todo = vec![tip.to_string()];
    while let Some(sha) = todo.pop() {
        let Some(commit) = graph.get(sha.as_str()) else {
            continue;
        };
        if seen.insert(sha) {
            todo.extend(commit.parents.iter().cloned());
        }
    }
    seen
}

fn concerns(f: &Fail, d: &Dep) -> bool {
    let who = if f.services.is_empty() {
        f.team == Some(d.team)
    } else {
        f.services.contains(&d.service)
    };
    who && f.env.is_none_or(|env| env == d.env)
}

/// The deployment a failure is blamed on, if any.
fn blamed(f: &Fail, deps: &[Dep]) -> Option<usize> {
    let relevant: Vec<usize> = (0..deps.len()).filter(|&i| concerns(f, &deps[i])).collect();
    let pick = |matching: Vec<usize>| -> Option<usize> {
        let before = matching
            .iter()
            .copied()
            .filter(|&i| deps[i].finished <= f.started)
            .max_by_key(|&i| deps[i].finished);
        before.or_else(|| matching.iter().copied().min_by_key(|&i| deps[i].finished))
    };
    if let Some((_, sha)) = &f.sha {
        let hit = pick(
            relevant
                .iter()
                .copied()
                .filter(|&i| deps[i].sha.as_ref() == Some(sha))
                .collect(),
        );
        if hit.is_some() {
            return hit;
        }
    }
    if let Some(version) = &f.version {
        let hit = pick(
            relevant
                .iter()
                .copied()
                .filter(|&i| &deps[i].version == version)
                .collect(),
        );
        if hit.is_some() {
            return hit;
        }
    }
    relevant
        .iter()
        .copied()
        .filter(|&i| deps[i].finished <= f.started)
        .max_by_key(|&i| deps[i].finished)
        .filter(|&i| f.started - deps[i].finished <= WINDOW)
}

fn derive(h: &History) -> Vec<Derived> {
    let deps = &h.deps;
    let mut out = vec![Derived::default(); deps.len()];
    let graphs: Vec<HashMap<&str, &Commit>> = h
        .commits
        .iter()
        .map(|commits| commits.iter().map(|c| (c.sha.as_str(), c)).collect())
        .collect();
    let mut blamed_on: HashSet<usize> = HashSet::new();
    for f in &h.fails {
        if let Some(i) = blamed(f, deps) {
            blamed_on.insert(i);
        }
    }
    for (s, definition) in STREAMS.iter().enumerate() {
        let mut stream: Vec<usize> = (0..deps.len()).filter(|&i| deps[i].stream == s).collect();
        stream.sort_by_key(|&i| deps[i].finished);

        // Change sets: rev-list this ^previous, minus what this stream already shipped.
        if let Some(repo) = definition.repo {
            let graph = &graphs[repo];
            let mut shipped: HashSet<String> = HashSet::new();
            let mut previous: Option<&str> = None;
            for &i in &stream {
                let Some(tip) = deps[i].sha.as_deref() else {
                    continue;
                };
                let hidden = previous.map(|p| reachable(graph, p)).unwrap_or_default();
                let new: Vec<String> = reachable(graph, tip)
                    .into_iter()
                    .filter(|sha| !hidden.contains(sha) && !shipped.contains(sha))
                    .filter(|sha| graph[sha.as_str()].parents.len() < 2)
                    .collect();
                if previous.is_some() {
                    for sha in &new {
                        let commit = graph[sha.as_str()];
                        out[i].lead.push(deps[i].finished - commit.committed);
                        if let Some((_, _, merged)) = commit.mr {
                            out[i].merge_lead.push(deps[i].finished - merged);
                        }
                    }
                }
                shipped.extend(new);
                previous = Some(tip);
            }
        }

        // Rollbacks: k ships what j (< k-1) shipped while k-1 shipped something else.
        let key = |i: usize| {
            deps[i]
                .sha
                .clone()
                .unwrap_or_else(|| deps[i].version.clone())
        };
        let mut rolled_back_by: HashMap<usize, usize> = HashMap::new();
        for k in 2..stream.len() {
            if key(stream[k - 1]) == key(stream[k]) {
                continue;
            }
            if let Some(j) = (0..k - 1).rev().find(|&j| key(stream[j]) == key(stream[k])) {
                for m in j + 1..k {
                    rolled_back_by.entry(m).or_insert(k);
                }
            }
        }
        // Remediations clients named, then rollbacks.
        let mut link: HashMap<usize, usize> = HashMap::new();
        let mut rework: HashSet<usize> = HashSet::new();
        for (p, &i) in stream.iter().enumerate() {
            let target = match &deps[i].remediation {
                Some((id, true, _)) => stream.iter().position(|&k| &deps[k].id == id),
                Some((version, false, _)) => {
                    (p + 1..stream.len()).find(|&q| &deps[stream[q]].version == version)
                }
                None => None,
            };
            if let Some(q) = target {
                link.insert(p, q);
                rework.insert(q);
            }
        }
        for p in 0..stream.len() {
            if let Some(&q) = rolled_back_by.get(&p) {
                if let std::collections::hash_map::Entry::Vacant(slot) = link.entry(p) {
                    slot.insert(q);
                    rework.insert(q);
                }
            }
        }
        for (p, &i) in stream.iter().enumerate() {
            let d = &deps[i];
            out[i].failed = match d.change_failure {
                Some(false) => false,
                Some(true) => true,
                None => {
                    d.remediation.is_some()
                        || rolled_back_by.contains_key(&p)
                        || blamed_on.contains(&i)
                }
            };
            out[i].rework = rework.contains(&p);
            out[i].recovery = link.get(&p).map(|&q| deps[stream[q]].finished - d.finished);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Its own calendar.

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

fn day(text: &str) -> i64 {
    let parts: Vec<i64> = text.split('-').map(|p| p.parse().unwrap()).collect();
    days_from_civil(parts[0], parts[1], parts[2])
}

fn date(days: i64) -> String {
    let (y, m, d) = civil(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// (label, first day, end day exclusive) of each bucket of the inclusive range.
fn buckets(first: i64, last: i64, interval: &str) -> Vec<(i64, i64, i64)> {
    let end = last + 1;
    let mut out = Vec::new();
    let mut start = first;
    while start < end {
        let weekday = (start + 3).rem_euclid(7); // 1970-01-01 was a Thursday; Monday is 0
        let (y, m, _) = civil(start);
        let first_of_month = days_from_civil(y, m, 1);
        let (label, natural_end) = match interval {
            "daily" => (start, start + 1),
            "weekly" => (start - weekday, start - weekday + 7),
            "monthly" => {
                let next = if m == 12 {
                    days_from_civil(y + 1, 1, 1)
                } else {
                    days_from_civil(y, m + 1, 1)
                };
                (first_of_month, next)
            }
            _ => (start, end),
        };
        let bucket_end = natural_end.min(end);
        out.push((label, start, bucket_end));
        start = bucket_end;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Expected values, in the endpoint's JSON shape.

/// percentile_cont: sort, then interpolate between the two nearest ranks.
fn quantile(sorted: &[f64], p: f64) -> Value {
    if sorted.is_empty() {
        return Value::Null;
    }
    let rank = p * (sorted.len() - 1) as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    json!(sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64))
}

fn distribution(mut seconds: Vec<i64>) -> Value {
    seconds.sort();
    let sorted: Vec<f64> = seconds.iter().map(|s| *s as f64).collect();
    json!({
        "count": sorted.len(),
        "median": quantile(&sorted, 0.5),
        "p75": quantile(&sorted, 0.75),
        "p90": quantile(&sorted, 0.9),
    })
}

fn ratio(part: usize, whole: usize) -> Value {
    if whole == 0 {
        Value::Null
    } else {
        json!(part as f64 / whole as f64)
    }
}

/// The keys of the deployments finished, and failures resolved, in `[start, end)` days.
fn expected(
    h: &History,
    derived: &[Derived],
    deployments: &[usize],
    failures: &[usize],
    start: i64,
    end: i64,
) -> Value {
    let (from, to) = (start * DAY, end * DAY);
    let inside: Vec<usize> = deployments
        .iter()
        .copied()
        .filter(|&i| (from..to).contains(&h.deps[i].finished))
        .collect();
    let failed = inside.iter().filter(|&&i| derived[i].failed).count();
    let rework = inside.iter().filter(|&&i| derived[i].rework).count();
    let lead = inside
        .iter()
        .flat_map(|&i| derived[i].lead.clone())
        .collect();
    let merge = inside
        .iter()
        .flat_map(|&i| derived[i].merge_lead.clone())
        .collect();
    let recovery = inside
        .iter()
        .filter(|&&i| derived[i].failed)
        .filter_map(|&i| derived[i].recovery)
        .collect();
    let restore = failures
        .iter()
        .filter_map(|&f| {
            let fail = &h.fails[f];
            let finished = fail.finished?;
            (from..to)
                .contains(&finished)
                .then_some(finished - fail.started)
        })
        .collect();
    json!({
        "deployments": inside.len(),
        "deployments_per_day": inside.len() as f64 / (end - start) as f64,
        "failed_deployments": failed,
        "change_failure_rate": ratio(failed, inside.len()),
        "rework_deployments": rework,
        "rework_rate": ratio(rework, inside.len()),
        "lead_time_seconds": distribution(lead),
        "merge_lead_time_seconds": distribution(merge),
        "time_to_restore_seconds": distribution(restore),
        "failed_deployment_recovery_time_seconds": distribution(recovery),
    })
}

/// The selected deployments (any time) and the failures that concern their streams.
fn selected(h: &History, admits: &dyn Fn(&Dep) -> bool) -> (Vec<usize>, Vec<usize>) {
    let deployments: Vec<usize> = (0..h.deps.len()).filter(|&i| admits(&h.deps[i])).collect();
    let streams: BTreeSet<usize> = deployments.iter().map(|&i| h.deps[i].stream).collect();
    let failures = (0..h.fails.len())
        .filter(|&f| {
            h.deps
                .iter()
                .any(|d| streams.contains(&d.stream) && concerns(&h.fails[f], d))
        })
        .collect();
    (deployments, failures)
}

/// The 2024 levels, from the report's bands as this test reads them.
fn levels_2024(totals: &Value) -> Value {
    let rank = |level: &str| {
        ["elite", "high", "medium", "low"]
            .iter()
            .position(|l| *l == level)
    };
    let per_day = totals["deployments_per_day"].as_f64().unwrap();
    let frequency = if per_day > 1.0 {
        "elite"
    } else if per_day >= 1.0 / 7.0 {
        "high"
    } else if per_day >= 1.0 / 30.0 {
        "medium"
    } else {
        "low"
    };
    let lead = totals["lead_time_seconds"]["median"].as_f64().map(|s| {
        if s < DAY as f64 {
            "elite"
        } else if s <= 7.0 * DAY as f64 {
            "high"
        } else if s <= 30.0 * DAY as f64 {
            "medium"
        } else {
            "low"
        }
    });
    let cfr = totals["change_failure_rate"].as_f64().map(|r| {
        if r <= 0.075 {
            "elite"
        } else if r < 0.15 {
            "medium"
        } else if r <= 0.30 {
            "high"
        } else {
            "low"
        }
    });
    let restore = totals["failed_deployment_recovery_time_seconds"]["median"]
        .as_f64()
        .or(totals["time_to_restore_seconds"]["median"].as_f64())
        .map(|s| {
            if s < HOUR as f64 {
                "elite"
            } else if s < DAY as f64 {
                "high"
            } else {
                "low"
            }
        });
    let overall = [Some(frequency), lead, cfr, restore]
        .into_iter()
        .flatten()
        .max_by_key(|l| rank(l));
    json!([frequency, lead, cfr, restore, overall])
}

fn levels_of(levels: &Value) -> Value {
    json!([
        levels["deployment_frequency"]["level"],
        levels["lead_time"]["level"],
        levels["change_failure_rate"]["level"],
        levels["restore"]["level"],
        levels["overall"],
    ])
}

/// JSON equality, numbers to within a few ulps: serde_json's default float parser (what the
/// client reads the response with) may be off by one ulp, which is transport, not arithmetic.
fn same(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => a == b || (a - b).abs() <= 1e-12 * a.abs().max(b.abs()),
            _ => a == b,
        },
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same(v, w)))
        }
        _ => left == right,
    }
}

fn assert_same(got: &Value, want: &Value, context: &str) {
    assert!(same(got, want), "{context}\n   got: {got}\n  want: {want}");
}

type Admits = Box<dyn Fn(&Dep) -> bool>;

fn key_of(by: &str, d: &Dep) -> Value {
    match by {
        "service" => json!(d.service),
        "team" => json!(d.team),
        "env" => json!(d.env),
        _ => json!(project(d)),
    }
}

async fn check(app: &TestApp, h: &History, derived: &[Derived], query: &str, admits: Admits) {
    let reply = app.get(&format!("/api/v1/metrics?{query}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{query}: {:?}", reply.body);
    let report = reply.body;
    let params: HashMap<&str, &str> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .collect();
    let (first, last) = (day(params["from"]), day(params["to"]));
    let interval = params["interval"];
    let (deployments, failures) = selected(h, &admits);

    let totals = expected(h, derived, &deployments, &failures, first, last + 1);
    assert_same(&report["totals"], &totals, &format!("{query}: totals"));
    assert_eq!(
        levels_of(&report["levels"]),
        levels_2024(&totals),
        "{query}: levels"
    );

    let series = report["series"].as_array().unwrap();
    let want = buckets(first, last, interval);
    assert_eq!(series.len(), want.len(), "{query}: buckets");
    for (bucket, (label, start, end)) in series.iter().zip(want) {
        let mut expected = expected(h, derived, &deployments, &failures, start, end);
        expected["date"] = json!(date(label));
        expected["from"] = json!(date(start));
        expected["to"] = json!(date(end - 1));
        expected["days"] = json!(end - start);
        assert_same(
            bucket,
            &expected,
            &format!("{query}: bucket {}", date(label)),
        );
    }

    if let Some(by) = params.get("breakdown") {
        let in_range: Vec<usize> = deployments
            .iter()
            .copied()
            .filter(|&i| (first * DAY..(last + 1) * DAY).contains(&h.deps[i].finished))
            .collect();
        let keys: BTreeSet<String> = in_range
            .iter()
            .map(|&i| key_of(by, &h.deps[i]).as_str().unwrap().to_string())
            .collect();
        let groups = report["breakdown"]["groups"].as_array().unwrap();
        let got: Vec<&str> = groups.iter().map(|g| g["key"].as_str().unwrap()).collect();
        assert_eq!(
            got,
            keys.iter().map(String::as_str).collect::<Vec<_>>(),
            "{query}"
        );
        for group in groups {
            let key = group["key"].clone();
            let narrowed = |d: &Dep| admits(d) && key_of(by, d) == key;
            let (deployments, failures) = selected(h, &narrowed);
            let totals = expected(h, derived, &deployments, &failures, first, last + 1);
            assert_same(&group["totals"], &totals, &format!("{query}: group {key}"));
            assert_eq!(
                levels_of(&group["levels"]),
                levels_2024(&totals),
                "{query}: {key}"
            );
        }
    }
}

/// Sanity of the generated history itself: the interesting cases all occur.
fn assert_rich(h: &History, derived: &[Derived]) {
    let merges = h
        .commits
        .iter()
        .flatten()
        .filter(|c| c.parents.len() > 1)
        .count();
    let failed = derived.iter().filter(|d| d.failed).count();
    let rework = derived.iter().filter(|d| d.rework).count();
    let recovered = derived
        .iter()
        .filter(|d| d.failed && d.recovery.is_some())
        .count();
    let leads = derived.iter().map(|d| d.lead.len()).sum::<usize>();
    let merge_leads = derived.iter().map(|d| d.merge_lead.len()).sum::<usize>();
    let resolved = h.fails.iter().filter(|f| f.finished.is_some()).count();
    let summary = (
        h.deps.len(),
        merges,
        failed,
        rework,
        recovered,
        leads,
        merge_leads,
        resolved,
    );
    assert!(
        merges > 10
            && failed > 20
            && rework > 5
            && recovered > 5
            && leads > 200
            && merge_leads > 50
            && resolved > 25,
        "{summary:?}"
    );
    assert!(h.deps.len() < 500, "{summary:?}");
}

async fn the_metrics_agree_with_a_reference_computation() {
    let h = history(20_240_101);
    let derived = derive(&h);
    assert_rich(&h, &derived);
    let app = spawn_app().await;
    load(&app, &h).await;

    let production = |d: &Dep| tier(d) == "production";
    let cases: Vec<(&str, Admits)> = vec![
        (
            "from=2024-01-01&to=2024-12-31&interval=monthly&breakdown=service",
            Box::new(production),
        ),
        (
            "from=2024-03-10&to=2024-06-20&interval=weekly&service=shop&breakdown=env",
            Box::new(move |d| production(d) && d.service == "shop"),
        ),
        (
            "from=2024-05-01&to=2024-05-31&interval=daily&team=backend",
            Box::new(move |d| production(d) && d.team == "backend"),
        ),
        (
            "from=2024-01-01&to=2024-12-31&interval=monthly&tiers=staging&breakdown=env",
            Box::new(|d| tier(d) == "staging"),
        ),
        (
            "from=2024-02-15&to=2024-11-14&interval=all&tiers=all&breakdown=team",
            Box::new(|_| true),
        ),
        (
            "from=2024-01-01&to=2024-12-31&interval=monthly&project=acme/shop",
            Box::new(move |d| production(d) && project(d) == "acme/shop"),
        ),
        (
            "from=2024-04-01&to=2024-09-30&interval=weekly&group=acme/platform",
            Box::new(move |d| production(d) && project(d).starts_with("acme/platform/")),
        ),
        (
            "from=2024-01-01&to=2024-12-31&interval=monthly&group=acme&breakdown=project",
            Box::new(move |d| production(d) && project(d).starts_with("acme/")),
        ),
        (
            "from=2024-06-01&to=2024-12-31&interval=weekly&query=region:eu",
            Box::new(move |d| production(d) && d.env == "prod-eu"),
        ),
        (
            "from=2024-01-01&to=2024-12-31&interval=monthly&env=production&env=canary",
            Box::new(move |d| production(d) && ["production", "canary"].contains(&d.env)),
        ),
        (
            "from=2024-07-01&to=2024-07-31&interval=daily&service=billing&tiers=all&breakdown=env",
            Box::new(|d| d.service == "billing"),
        ),
        // Whole groups and everything, without a breakdown: counted from the day tallies.
        (
            "from=2024-01-01&to=2024-12-31&interval=daily",
            Box::new(production),
        ),
        (
            "from=2024-01-10&to=2024-11-20&interval=weekly&tiers=all",
            Box::new(|_| true),
        ),
        (
            "from=2024-02-01&to=2024-12-31&interval=monthly&group=acme&tiers=production,staging",
            Box::new(|d| {
                ["production", "staging"].contains(&tier(d)) && project(d).starts_with("acme/")
            }),
        ),
        (
            "from=2024-03-03&to=2024-10-09&interval=all&group=acme/platform&tiers=all",
            Box::new(|d| project(d).starts_with("acme/platform/")),
        ),
    ];
    for (query, admits) in cases {
        check(&app, &h, &derived, query, admits).await;
    }
}

conformance!(the_metrics_agree_with_a_reference_computation);
