//! Loads what the pure derivations of `dora_core::derive` need for one deployment — its stream
//! (same service and env), its repository's commits, the failures that may concern it — and
//! runs them. Derived on read, so the answer never depends on the order events arrived in.

use std::collections::{HashMap, HashSet};

use dora_core::derive::{
    attribute_failure, change_sets, concerns, stream_verdicts, ChangeSet, CommitGraph, FailureRule,
    Verdict,
};
use dora_core::metrics::{DeploymentFact, FailureFact};
use dora_core::model::{
    deployment_attributes, Failure, ListQuery, Sort, SortField, StoredDeployment,
};
use dora_core::project;
use dora_core::query::Query;
use dora_core::tier::{self, EnvTiers, Tier};
use dora_core::time::Nanos;
use dora_store::{Store, StoreResult};

/// Every event a selection matches, oldest first.
fn everything(filter: Query, field: SortField) -> ListQuery {
    ListQuery {
        from: None,
        to: None,
        limit: u32::MAX,
        filter,
        sort: Sort {
            field,
            descending: false,
        },
    }
}

fn env_filter(env: &Option<String>) -> Query {
    match env {
        Some(env) => Query::field("env", env),
        None => Query::missing("env"),
    }
}

/// The deployments of one service to one env, in finish order.
pub async fn stream_of(
    store: &dyn Store,
    d: &StoredDeployment,
) -> StoreResult<Vec<StoredDeployment>> {
    let filter = Query::And(vec![
        Query::field("service", &d.deployment.service),
        env_filter(&d.deployment.env),
    ]);
    store
        .list_deployments(&everything(filter, SortField::FinishedAt))
        .await
}

/// The change set of one deployment.
pub async fn change_set(store: &dyn Store, d: &StoredDeployment) -> StoreResult<ChangeSet> {
    let stream = stream_of(store, d).await?;
    let commits = match &d.deployment.git {
        Some(git) => store.commits_of(&git.repository_id).await?,
        None => Vec::new(),
    };
    let graph = CommitGraph::new(commits);
    Ok(change_sets(&stream, &graph)
        .into_iter()
        .find(|set| set.deployment_id == d.deployment.id)
        .unwrap_or_else(|| ChangeSet {
            deployment_id: d.deployment.id.clone(),
            baseline_id: None,
            no_baseline: true,
            tip_missing: false,
            commits: Vec::new(),
        }))
}

/// Whether one deployment failed, why, and what remediated it; with the failure events that
/// are evidence.
pub async fn verdict(
    store: &dyn Store,
    d: &StoredDeployment,
    window: Nanos,
) -> StoreResult<(Verdict, Vec<Failure>)> {
    let stream = stream_of(store, d).await?;
    let (verdicts, failures) = verdicts_of(store, &stream, window).await?;
    let verdict = verdicts
        .into_iter()
        .find(|v| v.deployment_id == d.deployment.id)
        .unwrap_or_default();
    let evidence = failures
        .into_iter()
        .filter(|f| verdict.failure_ids.contains(&f.id))
        .collect();
    Ok((verdict, evidence))
}

/// Verdicts of a whole stream, and the failures that concern it.
async fn verdicts_of(
    store: &dyn Store,
    stream: &[StoredDeployment],
    window: Nanos,
) -> StoreResult<(Vec<Verdict>, Vec<Failure>)> {
    let Some(first) = stream.first() else {
        return Ok((Vec::new(), Vec::new()));
    };
    // Failures naming this service or its teams; each is then attributed among all the
    // deployments it could concern, so that it is blamed on one deployment only.
    let mut about = vec![Query::field("service", &first.deployment.service)];
    let mut teams: Vec<&String> = stream
        .iter()
        .filter_map(|d| d.deployment.team.as_ref())
        .collect();
    teams.sort();
    teams.dedup();
    about.extend(teams.into_iter().map(|team| Query::field("team", team)));
    let failures: Vec<Failure> = store
        .list_failures(&everything(Query::Or(about), SortField::StartedAt))
        .await?
        .into_iter()
        .filter(|f| stream.iter().any(|s| concerns(f, s)))
        .collect();
    let mut attributed: HashMap<String, Vec<(String, FailureRule)>> = HashMap::new();
    for failure in &failures {
        let candidates = candidates_for(store, failure).await?;
        let candidates: Vec<&StoredDeployment> = candidates.iter().collect();
        if let Some(attribution) = attribute_failure(failure, &candidates, window) {
            attributed
                .entry(attribution.deployment_id)
                .or_default()
                .push((failure.id.clone(), attribution.rule));
        }
    }
    Ok((stream_verdicts(stream, &attributed), failures))
}

/// Which deployments and failures a metric looks at.
#[derive(Debug, Clone)]
pub struct Selection {
    /// Over deployment attributes (service, env, team, version, custom tags, …).
    pub filter: Query,
    /// Empty: every tier.
    pub tiers: Vec<Tier>,
    /// Only deployments of this project path.
    pub project: Option<String>,
    /// Only deployments of projects inside this group path.
    pub group: Option<String>,
}

impl Selection {
    fn admits(&self, d: &StoredDeployment, env_tiers: &EnvTiers) -> bool {
        let deployment = &d.deployment;
        let tier = tier::of_deployment(
            deployment.env.as_deref(),
            &deployment.custom_tags,
            env_tiers,
        );
        let path = project_path(d);
        (self.tiers.is_empty() || self.tiers.contains(&tier))
            && self.project.as_ref().is_none_or(|p| *p == path)
            && self
                .group
                .as_ref()
                .is_none_or(|g| project::in_group(&path, g))
    }
}

/// The project path a deployment belongs to.
pub fn project_path(d: &StoredDeployment) -> String {
    project::path_of(
        d.deployment.git.as_ref().map(|g| g.repository_id.as_str()),
        &d.deployment.service,
    )
}

/// The facts the metric engine needs for a selection, over deployments finished and failures
/// resolved in `[from, to)`. Change sets and verdicts are derived from each selected stream's
/// whole history, so baselines and rollbacks before the range count. Everything is read in
/// bulk (one query for deployments, one for failures, one per repository for commits) and
/// derived in memory.
pub async fn facts(
    store: &dyn Store,
    selection: &Selection,
    from: Nanos,
    to: Nanos,
    window: Nanos,
) -> StoreResult<(Vec<DeploymentFact>, Vec<FailureFact>)> {
    let all = store
        .list_deployments(&everything(Query::All, SortField::FinishedAt))
        .await?;
    let env_tiers: EnvTiers = store.env_tiers().await?.into_iter().collect();
    let selected: HashSet<String> = all
        .iter()
        .filter(|d| selection.admits(d, &env_tiers) && matches(&selection.filter, d))
        .map(|d| d.deployment.id.clone())
        .collect();
    // Streams (service, env) in finish order; only those holding a selected deployment matter.
    let mut streams: HashMap<(String, Option<String>), Vec<StoredDeployment>> = HashMap::new();
    for d in all {
        let key = (d.deployment.service.clone(), d.deployment.env.clone());
        streams.entry(key).or_default().push(d);
    }
    let relevant =
        |stream: &Vec<StoredDeployment>| stream.iter().any(|d| selected.contains(&d.deployment.id));

    // Failures are blamed among every deployment they could concern, in any stream.
    let failures = store
        .list_failures(&everything(Query::All, SortField::StartedAt))
        .await?;
    // Which failures concern a relevant stream, by look-ups rather than a scan per failure.
    let mut relevant_envs: HashMap<&str, HashSet<Option<&str>>> = HashMap::new();
    let mut relevant_team_envs: HashMap<&str, HashSet<Option<&str>>> = HashMap::new();
    for ((service, env), stream) in &streams {
        if !relevant(stream) {
            continue;
        }
        relevant_envs
            .entry(service.as_str())
            .or_default()
            .insert(env.as_deref());
        for d in stream {
            if let Some(team) = &d.deployment.team {
                relevant_team_envs
                    .entry(team.as_str())
                    .or_default()
                    .insert(env.as_deref());
            }
        }
    }
    let env_matches = |envs: Option<&HashSet<Option<&str>>>, f: &Failure| {
        envs.is_some_and(|envs| match &f.env {
            None => true,
            Some(env) => envs.contains(&Some(env.as_str())),
        })
    };
    let failures: Vec<Failure> = failures
        .into_iter()
        .filter(|f| {
            if f.services.is_empty() {
                f.team
                    .as_deref()
                    .is_some_and(|team| env_matches(relevant_team_envs.get(team), f))
            } else {
                f.services
                    .iter()
                    .any(|s| env_matches(relevant_envs.get(s.as_str()), f))
            }
        })
        .collect();
    let mut by_service: HashMap<&str, Vec<&StoredDeployment>> = HashMap::new();
    for d in streams.values().flatten() {
        by_service
            .entry(d.deployment.service.as_str())
            .or_default()
            .push(d);
    }
    let mut attributed: HashMap<String, Vec<(String, FailureRule)>> = HashMap::new();
    for failure in &failures {
        // Deployments of other streams can be candidates too (a failure naming two services);
        // `attribute_failure` keeps only those the failure concerns.
        let candidates: Vec<&StoredDeployment> = if failure.services.is_empty() {
            streams.values().flatten().collect()
        } else {
            failure
                .services
                .iter()
                .filter_map(|s| by_service.get(s.as_str()))
                .flatten()
                .copied()
                .collect()
        };
        if let Some(attribution) = attribute_failure(failure, &candidates, window) {
            attributed
                .entry(attribution.deployment_id)
                .or_default()
                .push((failure.id.clone(), attribution.rule));
        }
    }

    let mut graphs: HashMap<String, CommitGraph> = HashMap::new();
    let mut deployments = Vec::new();
    for stream in streams.values().filter(|stream| relevant(stream)) {
        let repository = stream
            .iter()
            .find_map(|d| d.deployment.git.as_ref().map(|g| g.repository_id.clone()));
        if let Some(repository) = &repository {
            if !graphs.contains_key(repository) {
                let commits = store.commits_of(repository).await?;
                graphs.insert(repository.clone(), CommitGraph::new(commits));
            }
        }
        let empty = CommitGraph::new(Vec::new());
        let graph = repository
            .as_ref()
            .and_then(|r| graphs.get(r))
            .unwrap_or(&empty);
        let sets = change_sets(stream, graph);
        let verdicts = stream_verdicts(stream, &attributed);
        for ((stored, set), verdict) in stream.iter().zip(sets).zip(verdicts) {
            let d = &stored.deployment;
            if !selected.contains(&d.id) || !(from..to).contains(&d.finished_at) {
                continue;
            }
            let counted = if set.no_baseline {
                &[][..]
            } else {
                &set.commits[..]
            };
            deployments.push(DeploymentFact {
                id: d.id.clone(),
                finished_at: d.finished_at,
                service: d.service.clone(),
                team: d.team.clone(),
                env: d.env.clone(),
                tier: tier::of_deployment(d.env.as_deref(), &d.custom_tags, &env_tiers),
                project: project_path(stored),
                failed: verdict.failed,
                rework: verdict.is_rework(),
                lead_times: counted.iter().map(|c| c.lead_time).collect(),
                merge_lead_times: counted.iter().filter_map(|c| c.merge_lead_time).collect(),
                recovery_time: verdict.remediation.as_ref().map(|r| r.recovery_time),
            });
        }
    }
    deployments.sort_by(|a, b| a.finished_at.cmp(&b.finished_at).then(a.id.cmp(&b.id)));
    let failures = failures
        .into_iter()
        .filter(|f| f.finished_at.is_some_and(|at| (from..to).contains(&at)))
        .map(|f| FailureFact {
            id: f.id,
            started_at: f.started_at,
            finished_at: f.finished_at,
        })
        .collect();
    Ok((deployments, failures))
}

/// Whether a deployment matches a query, evaluated in memory over its attributes.
fn matches(filter: &Query, d: &StoredDeployment) -> bool {
    if *filter == Query::All {
        return true;
    }
    let attributes = deployment_attributes(&d.deployment);
    let pairs: Vec<(&str, &str)> = attributes
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    filter.matches(&pairs)
}

/// Deployments a failure could be about: of the services it names (or of its team), in its env.
async fn candidates_for(
    store: &dyn Store,
    failure: &Failure,
) -> StoreResult<Vec<StoredDeployment>> {
    let mut filter = Vec::new();
    if failure.services.is_empty() {
        match &failure.team {
            Some(team) => filter.push(Query::field("team", team)),
            None => return Ok(Vec::new()),
        }
    } else {
        filter.push(Query::Or(
            failure
                .services
                .iter()
                .map(|s| Query::field("service", s))
                .collect(),
        ));
    }
    if let Some(env) = &failure.env {
        filter.push(Query::field("env", env));
    }
    store
        .list_deployments(&everything(Query::And(filter), SortField::FinishedAt))
        .await
}
