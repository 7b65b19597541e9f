//! The derivation kept current write by write ends where a derivation from scratch over the
//! final events does. Random organisations — a repository with merges, streams with redeploys
//! and rollbacks, failures by service, team, sha and version, PATCHes, deletes, replacements,
//! late commits, tier changes — are applied as events in a random order, one by one and in
//! bulk, with refreshes in between (so that streams are derived from their heads); a fresh
//! store given only the final events and refreshed once must hold exactly the same facts and
//! day tallies.

use std::sync::Arc;

use dora_core::derive::DEFAULT_FAILURE_WINDOW;
use dora_core::metrics::DeploymentFact;
use dora_core::model::{
    Commit, Deployment, DeploymentPatch, DeploymentSelector, Failure, Git, MergeRequest,
};
use dora_core::query::Query;
use dora_core::rollup::DayTally;
use dora_core::tier::Tier;
use dora_engine::derivation::{self, Refresher};
use dora_store::{FactQuery, Store, TallyQuery};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::helpers::spawn_store;

const HOUR: i64 = 3600 * 1_000_000_000;
/// 2025-01-01T00:00:00Z.
const START: i64 = 1_735_689_600 * 1_000_000_000;
const REPO: &str = "github.com/acme/shop";

fn sha(n: usize) -> String {
    format!("{n:040x}")
}

/// One write, as a client would send it.
#[derive(Debug, Clone)]
enum Event {
    Commits(Vec<Commit>),
    Deployment(Deployment),
    Deployments(Vec<Deployment>),
    Failure(Failure),
    Patch(String, bool),
    Delete(String),
    Tier(String, Option<Tier>),
}

/// What the events that arrived so far leave: every commit, the last version of each
/// deployment not deleted since, every failure, a PATCH when its deployment existed then, the
/// last tier setting.
#[derive(Default)]
struct State {
    commits: Vec<Commit>,
    deployments: std::collections::BTreeMap<String, Deployment>,
    failures: std::collections::BTreeMap<String, Failure>,
    patches: Vec<(String, bool)>,
    tiers: std::collections::BTreeMap<String, Tier>,
}

impl State {
    fn apply(&mut self, event: &Event) {
        match event {
            Event::Commits(commits) => self.commits.extend(commits.iter().cloned()),
            Event::Deployment(d) => {
                self.deployments.insert(d.id.clone(), d.clone());
            }
            Event::Deployments(ds) => {
                for d in ds {
                    self.deployments.insert(d.id.clone(), d.clone());
                }
            }
            Event::Failure(f) => {
                self.failures.insert(f.id.clone(), f.clone());
            }
            Event::Delete(id) => {
                self.deployments.remove(id);
                self.patches.retain(|(patched, _)| patched != id);
            }
            Event::Patch(id, marked) => {
                if self.deployments.contains_key(id) {
                    self.patches.push((id.clone(), *marked));
                }
            }
            Event::Tier(env, Some(tier)) => {
                self.tiers.insert(env.clone(), *tier);
            }
            Event::Tier(env, None) => {
                self.tiers.remove(env);
            }
        }
    }

    /// A fresh store given only this state, derived once from scratch.
    async fn derived_from_scratch(&self) -> (Vec<DeploymentFact>, Vec<DayTally>) {
        let (scratch, _data): (Arc<dyn Store>, _) = spawn_store().await;
        scratch.put_commits(self.commits.clone()).await.unwrap();
        let deployments = self.deployments.values().cloned().collect();
        scratch.put_deployments(deployments).await.unwrap();
        for f in self.failures.values() {
            scratch.put_failure(f.clone()).await.unwrap();
        }
        for (id, marked) in &self.patches {
            assert!(patch(scratch.as_ref(), id, *marked).await, "{id}");
        }
        for (env, tier) in &self.tiers {
            scratch.set_env_tier(env, Some(*tier)).await.unwrap();
        }
        let refresher = Refresher::default();
        refresh(scratch.as_ref(), &refresher).await;
        derived(scratch.as_ref()).await
    }
}

fn commit(n: usize, parents: &[usize], at: i64, mr: Option<i64>) -> Commit {
    Commit {
        repository_id: REPO.into(),
        sha: sha(n),
        parents: parents.iter().map(|&p| sha(p)).collect(),
        authored_at: at,
        committed_at: at,
        author: None,
        subject: Some(format!("commit {n}")),
        merge_request: mr.map(|number| MergeRequest {
            number,
            created_at: Some(at - HOUR),
            merged_at: Some(at),
        }),
    }
}

/// An organisation's events in the order they arrive.
fn org(seed: u64) -> Vec<Event> {
    let mut rng = StdRng::seed_from_u64(seed);
    // A main line; every few commits a merge of a short branch forked a little earlier.
    let mut commits = Vec::new();
    let mut main: Vec<usize> = Vec::new();
    let mut at = START;
    for n in 0..140 {
        at += HOUR;
        let parents: Vec<usize> = main.last().copied().into_iter().collect();
        if n > 10 && rng.random_bool(0.2) {
            let fork = main[main.len() - rng.random_range(1..6)];
            let branch = 1000 + n;
            commits.push(commit(branch, &[fork], at - HOUR / 2, None));
            let mut merge_parents = parents.clone();
            merge_parents.push(branch);
            commits.push(commit(n, &merge_parents, at, Some(n as i64)));
        } else {
            commits.push(commit(n, &parents, at, None));
        }
        main.push(n);
    }
    let streams = [
        ("shop", Some("prod"), Some("web")),
        ("shop", Some("staging"), Some("web")),
        ("cart", Some("prod"), Some("checkout")),
        ("cart", None, None),
    ];
    let mut deployments = Vec::new();
    for (s, (service, env, team)) in streams.iter().enumerate() {
        let mut at = START + HOUR * rng.random_range(2..10);
        let mut tip = rng.random_range(0..5);
        let mut tips: Vec<usize> = Vec::new();
        for k in 0..18 {
            at += HOUR * rng.random_range(1..12);
            let shipped = if tips.len() >= 2 && rng.random_bool(0.15) {
                tips[tips.len() - 2] // a rollback
            } else {
                if !rng.random_bool(0.1) {
                    tip = (tip + rng.random_range(1..8)).min(main.len() - 1);
                }
                main[tip]
            };
            tips.push(shipped);
            let git = (!rng.random_bool(0.05)).then(|| Git {
                repository_url: format!("https://{REPO}"),
                repository_id: REPO.into(),
                commit_sha: sha(shipped),
            });
            deployments.push(Deployment {
                id: format!("d-{s}-{k:02}-{seed:016x}"),
                service: service.to_string(),
                env: env.map(str::to_string),
                team: team.filter(|_| !rng.random_bool(0.1)).map(str::to_string),
                version: Some(format!("v{shipped}")),
                started_at: at - HOUR / 4,
                finished_at: at,
                git,
                custom_tags: Vec::new(),
                source: "api".into(),
            });
        }
    }
    let mut failures = Vec::new();
    for f in 0..16 {
        let near = &deployments[rng.random_range(0..deployments.len())];
        let started_at = near.finished_at + HOUR * rng.random_range(0..30);
        let (services, team) = match rng.random_range(0..6) {
            0 => (Vec::new(), Some("checkout".to_string())),
            1 => (vec!["shop".to_string(), "cart".to_string()], None),
            _ => (vec![near.service.clone()], None),
        };
        failures.push(Failure {
            id: format!("f-{f:02}-{seed:016x}"),
            name: None,
            services,
            team,
            env: if rng.random_bool(0.8) {
                near.env.clone()
            } else {
                None
            },
            severity: None,
            started_at,
            finished_at: rng
                .random_bool(0.7)
                .then(|| started_at + HOUR * rng.random_range(1..5)),
            version: rng.random_bool(0.2).then(|| near.version.clone()).flatten(),
            git: rng.random_bool(0.2).then(|| near.git.clone()).flatten(),
            custom_tags: Vec::new(),
            source: "api".into(),
        });
    }
    arrive(&mut rng, commits, deployments, failures)
}

/// The events of an organisation in a random arrival order, mostly as they happened.
fn arrive(
    rng: &mut StdRng,
    commits: Vec<Commit>,
    deployments: Vec<Deployment>,
    failures: Vec<Failure>,
) -> Vec<Event> {
    // When each event arrives: about when it happened, some late or early.
    let mut timed: Vec<(i64, Event)> = Vec::new();
    let jitter = |rng: &mut StdRng| match rng.random_range(0..10) {
        0 => HOUR * rng.random_range(-48..-1),
        1 => HOUR * rng.random_range(1..96),
        _ => 0,
    };
    let (late, on_time): (Vec<Commit>, Vec<Commit>) =
        commits.iter().cloned().partition(|_| rng.random_bool(0.08));
    for chunk in on_time.chunks(rng.random_range(3..20)) {
        let at = chunk.iter().map(|c| c.committed_at).max().unwrap_or(START);
        timed.push((at + jitter(rng), Event::Commits(chunk.to_vec())));
    }
    let mut batch = Vec::new();
    for d in &deployments {
        let at = d.finished_at + jitter(rng);
        match rng.random_range(0..20) {
            0 => {
                // Deleted later.
                timed.push((at, Event::Deployment(d.clone())));
                timed.push((at + HOUR * 3, Event::Delete(d.id.clone())));
            }
            1 => {
                // Sent first with another finish time, then replaced.
                let mut first = d.clone();
                first.finished_at -= HOUR / 2;
                timed.push((at - HOUR, Event::Deployment(first)));
                timed.push((at + HOUR, Event::Deployment(d.clone())));
            }
            2 | 3 => {
                batch.push(d.clone());
                if batch.len() > 2 {
                    timed.push((at, Event::Deployments(std::mem::take(&mut batch))));
                }
            }
            _ => {
                timed.push((at, Event::Deployment(d.clone())));
            }
        }
        if rng.random_bool(0.08) {
            let marked = rng.random_bool(0.5);
            timed.push((at + HOUR * 2, Event::Patch(d.id.clone(), marked)));
        }
    }
    if !batch.is_empty() {
        timed.push((START + HOUR * 400, Event::Deployments(batch)));
    }
    for f in &failures {
        timed.push((f.started_at + jitter(rng), Event::Failure(f.clone())));
    }
    timed.push((
        START + HOUR * 100,
        Event::Tier("staging".into(), Some(Tier::Production)),
    ));
    if rng.random_bool(0.5) {
        timed.push((START + HOUR * 300, Event::Tier("staging".into(), None)));
    }
    timed.sort_by_key(|(at, _)| *at);
    let mut events: Vec<Event> = timed.into_iter().map(|(_, e)| e).collect();
    // A few swapped at random.
    for _ in 0..5 {
        let (a, b) = (
            rng.random_range(0..events.len()),
            rng.random_range(0..events.len()),
        );
        events.swap(a, b);
    }
    let mut late = late;
    late.shuffle(rng);
    events.push(Event::Commits(late));
    drop((commits, deployments));
    events
}

async fn apply(store: &dyn Store, event: Event) {
    match event {
        Event::Commits(commits) => drop(store.put_commits(commits).await.unwrap()),
        Event::Deployment(d) => store.put_deployment(d).await.unwrap(),
        Event::Deployments(ds) => store.put_deployments(ds).await.unwrap(),
        Event::Failure(f) => store.put_failure(f).await.unwrap(),
        Event::Patch(id, marked) => drop(patch(store, &id, marked).await),
        Event::Delete(id) => drop(store.delete_deployment(&id).await.unwrap()),
        Event::Tier(env, tier) => drop(store.set_env_tier(&env, tier).await.unwrap()),
    }
}

async fn patch(store: &dyn Store, id: &str, marked: bool) -> bool {
    let patch = DeploymentPatch {
        change_failure: Some(marked),
        remediation: None,
    };
    let selector = DeploymentSelector::Id(id.to_string());
    store.patch_deployment(selector, patch).await.unwrap()
}

/// Every stored fact and day tally, in a comparable order.
async fn derived(store: &dyn Store) -> (Vec<DeploymentFact>, Vec<DayTally>) {
    let mut facts = store
        .read_facts(&FactQuery {
            from: None,
            to: None,
            tiers: Vec::new(),
            project: None,
            group: None,
            filter: Query::All,
        })
        .await
        .unwrap();
    facts.sort_by(|a, b| a.id.cmp(&b.id));
    let tallies = store
        .read_day_tallies(&TallyQuery {
            group: dora_core::rollup::EVERYTHING.into(),
            tiers: Vec::new(),
            from_day: 0,
            to_day: 100_000,
        })
        .await
        .unwrap();
    (facts, tallies)
}

async fn refresh(store: &dyn Store, refresher: &Refresher) {
    derivation::refresh(store, DEFAULT_FAILURE_WINDOW, refresher)
        .await
        .unwrap();
}

async fn events_in_any_order_end_as_a_derivation_from_scratch() {
    let (mut from_head, mut blamed) = (0, 0);
    for seed in 1..=6 {
        let events = org(seed);
        let mut rng = StdRng::seed_from_u64(seed ^ 0xd1ff);
        let (kept, _kept_data) = spawn_store().await;
        let refresher = Refresher::default();
        let mut state = State::default();
        // Compared twice on the way (before the late commits fill their holes and derive
        // everything from scratch again) and once at the end.
        let checkpoints = [events.len() / 2, events.len() - 2, events.len()];
        for (i, event) in events.into_iter().enumerate() {
            state.apply(&event);
            apply(kept.as_ref(), event).await;
            if rng.random_bool(0.35) {
                refresh(kept.as_ref(), &refresher).await;
            }
            if !checkpoints.contains(&(i + 1)) {
                continue;
            }
            refresh(kept.as_ref(), &refresher).await;
            let (facts, tallies) = derived(kept.as_ref()).await;
            let (expected_facts, expected_tallies) = state.derived_from_scratch().await;
            let at = format!("seed {seed}, after {} events", i + 1);
            assert_eq!(facts.len(), state.deployments.len(), "{at}");
            for (got, expected) in facts.iter().zip(&expected_facts) {
                assert_eq!(got, expected, "{at}");
            }
            assert_eq!(facts, expected_facts, "{at}");
            assert_eq!(tallies, expected_tallies, "{at}");
            assert!(
                facts.iter().any(|f| !f.lead_times.is_empty()) && facts.iter().any(|f| f.failed),
                "{at}: the organisation ships commits and fails"
            );
        }
        from_head += refresher.derivations().0;
        blamed += refresher.blamed();
    }
    // The point of the test: many derivations were of streams only appended to, and many new
    // failures were blamed by look-ups alone.
    assert!(from_head > 20, "only {from_head} derivations from a head");
    assert!(blamed > 10, "only {blamed} streams blamed by look-ups");
    eprintln!("{from_head} derivations from a head, {blamed} streams blamed by look-ups");
}

/// The same with the refresh running all along beside the writes, as the server's background
/// refresh does: derivations overtaken by writes (stored or not) leave the same end.
async fn events_written_while_refreshing_end_as_a_derivation_from_scratch() {
    for seed in 11..=13 {
        let events = org(seed);
        let (kept, _kept_data) = spawn_store().await;
        let refresher = Arc::new(Refresher::default());
        let mut state = State::default();
        let writing = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let background = {
            let (store, refresher, writing) = (
                Arc::clone(&kept),
                Arc::clone(&refresher),
                Arc::clone(&writing),
            );
            tokio::spawn(async move {
                let mut rounds = 0;
                while writing.load(std::sync::atomic::Ordering::SeqCst) || rounds == 0 {
                    refresh(store.as_ref(), &refresher).await;
                    rounds += 1;
                    tokio::task::yield_now().await;
                }
                rounds
            })
        };
        for event in events {
            state.apply(&event);
            apply(kept.as_ref(), event).await;
        }
        writing.store(false, std::sync::atomic::Ordering::SeqCst);
        assert!(background.await.unwrap() > 0);
        refresh(kept.as_ref(), &refresher).await;
        let at = format!("seed {seed}");
        let (facts, tallies) = derived(kept.as_ref()).await;
        let (expected_facts, expected_tallies) = state.derived_from_scratch().await;
        for (got, expected) in facts.iter().zip(&expected_facts) {
            assert_eq!(got, expected, "{at}");
        }
        assert_eq!(facts, expected_facts, "{at}");
        assert_eq!(tallies, expected_tallies, "{at}");
    }
}

conformance!(
    events_in_any_order_end_as_a_derivation_from_scratch,
    events_written_while_refreshing_end_as_a_derivation_from_scratch,
);
