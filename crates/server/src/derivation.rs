//! Loads what the pure derivations of `dora_core::derive` need for one deployment — its stream
//! (same service and env), its repository's commits, the failures that may concern it — and
//! runs them. Derived on read, so the answer never depends on the order events arrived in.

use std::collections::HashMap;

use dora_core::derive::{
    attribute_failure, change_sets, concerns, stream_verdicts, ChangeSet, CommitGraph, Verdict,
};
use dora_core::model::{Failure, ListQuery, Sort, SortField, StoredDeployment};
use dora_core::query::Query;
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
    // Failures naming this service or its team; each is then attributed among all the
    // deployments it could concern, so that it is blamed on one deployment only.
    let mut about = vec![Query::field("service", &d.deployment.service)];
    if let Some(team) = &d.deployment.team {
        about.push(Query::field("team", team));
    }
    let failures = store
        .list_failures(&everything(Query::Or(about), SortField::StartedAt))
        .await?;
    let mut attributed: HashMap<String, Vec<(String, dora_core::derive::FailureRule)>> =
        HashMap::new();
    for failure in failures
        .iter()
        .filter(|f| stream.iter().any(|s| concerns(f, s)))
    {
        let candidates = candidates_for(store, failure).await?;
        if let Some(attribution) = attribute_failure(failure, &candidates, window) {
            attributed
                .entry(attribution.deployment_id)
                .or_default()
                .push((failure.id.clone(), attribution.rule));
        }
    }
    let verdict = stream_verdicts(&stream, &attributed)
        .into_iter()
        .find(|v| v.deployment_id == d.deployment.id)
        .unwrap_or_default();
    let evidence = failures
        .into_iter()
        .filter(|f| verdict.failure_ids.contains(&f.id))
        .collect();
    Ok((verdict, evidence))
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
