//! The `Store` contract itself, exercised through `app.store` (and read back over HTTP): what
//! the HTTP tests cannot reach, such as truly concurrent writes of one id.

use std::sync::Arc;

use dora_core::model::{
    Deployment, DeploymentPatch, DeploymentSelector, Failure, Git, Scope, StoredDeployment,
};
use dora_server::auth::issue_token;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{spawn_app, TestApp};

const WRITERS: usize = 20;
const ROUNDS: usize = 5;
/// 2025-01-01T00:00:00Z in nanoseconds.
const EPOCH_2025: i64 = 1_735_689_600_000_000_000;
const SECOND: i64 = 1_000_000_000;

fn git(n: usize) -> Option<Git> {
    Some(Git {
        repository_url: "https://github.com/acme/race".into(),
        repository_id: "github.com/acme/race".into(),
        commit_sha: format!("{n:040x}"),
    })
}

/// Writer `writer`'s version of deployment `id`: every searchable attribute differs per writer.
fn racing_deployment(id: &str, round: usize, writer: usize) -> Deployment {
    let finished = EPOCH_2025 + (round * 100 + writer) as i64 * SECOND;
    Deployment {
        id: id.into(),
        service: format!("race-{round}"),
        env: Some(format!("env-{writer}")),
        team: Some(format!("team-{writer}")),
        version: Some(format!("v{round}.{writer}")),
        started_at: finished - 30 * SECOND,
        finished_at: finished,
        git: git(round * 100 + writer),
        custom_tags: vec![format!("writer:{writer}"), format!("round:{round}")],
        source: "api".into(),
    }
}

fn racing_failure(id: &str, round: usize, writer: usize) -> Failure {
    let started = EPOCH_2025 + (round * 100 + writer) as i64 * SECOND;
    Failure {
        id: id.into(),
        name: Some(format!("outage {writer}")),
        services: vec![format!("race-{round}"), format!("svc-{writer}")],
        team: Some(format!("team-{writer}")),
        env: Some(format!("env-{writer}")),
        severity: Some(format!("SEV-{writer}")),
        started_at: started,
        finished_at: (writer < WRITERS / 2).then_some(started + 60 * SECOND),
        version: Some(format!("v{round}.{writer}")),
        git: git(round * 100 + writer),
        custom_tags: vec![format!("writer:{writer}"), format!("round:{round}")],
        source: "api".into(),
    }
}

/// `key:(v1 OR v2 …)` over every writer but `winner`.
fn losers(key: &str, winner: usize, value: impl Fn(usize) -> String) -> String {
    let values: Vec<String> = (0..WRITERS)
        .filter(|&writer| writer != winner)
        .map(value)
        .collect();
    format!("{key}:({})", values.join(" OR "))
}

/// After a race on round `round`, the list `kind` holds `id` once, searchable by exactly the
/// attributes of `winner`'s version and by none of the losers'.
async fn assert_only_the_winner_is_searchable(
    app: &TestApp,
    kind: &str,
    id: &str,
    round: usize,
    winner: usize,
) {
    let all = app
        .list_ids(
            kind,
            json!({"query": format!("round:{round}"), "limit": 1000}),
        )
        .await;
    assert_eq!(all, [id], "round {round}: one event per id");
    for query in [
        format!("version:v{round}.{winner}"),
        format!("team:team-{winner} env:env-{winner} writer:{winner} round:{round}"),
        format!("commit_sha:{:040x}", round * 100 + winner),
        format!("service:race-{round}"),
    ] {
        assert_eq!(
            app.list_ids(kind, json!({"query": query, "limit": 1000}))
                .await,
            [id],
            "{kind}: {query} (winner {winner})"
        );
    }
    let stale = [
        losers("version", winner, |w| format!("v{round}.{w}")),
        losers("team", winner, |w| format!("team-{w}")),
        losers("env", winner, |w| format!("env-{w}")),
        losers("writer", winner, |w| w.to_string()),
        losers("commit_sha", winner, |w| {
            format!("{:040x}", round * 100 + w)
        }),
    ]
    .join(" OR ");
    assert_eq!(
        app.list_ids(
            kind,
            json!({"query": format!("round:{round} ({stale})"), "limit": 1000})
        )
        .await,
        Vec::<String>::new(),
        "{kind}: attributes of a losing writer are still searchable (winner {winner})"
    );
}

async fn concurrent_puts_of_one_deployment_id_leave_one_consistent_event() {
    let app = spawn_app().await;
    for round in 0..ROUNDS {
        let id = format!("race-deployment-{round:04}");
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let (store, deployment) = (
                    Arc::clone(&app.store),
                    racing_deployment(&id, round, writer),
                );
                tokio::spawn(async move { store.put_deployment(deployment).await })
            })
            .collect();
        for writer in writers {
            writer
                .await
                .unwrap()
                .expect("every concurrent put succeeds");
        }
        let stored = app.store.get_deployment(&id).await.unwrap().unwrap();
        let version = stored.deployment.version.clone().unwrap();
        let winner: usize = version.rsplit('.').next().unwrap().parse().unwrap();
        // Whole: every field from one writer, none mixed in from another.
        assert_eq!(
            stored,
            StoredDeployment {
                deployment: racing_deployment(&id, round, winner),
                change_failure: None,
                remediation: None,
            }
        );
        assert_only_the_winner_is_searchable(&app, "deployments", &id, round, winner).await;
    }
}

async fn concurrent_puts_of_one_failure_id_leave_one_consistent_event() {
    let app = spawn_app().await;
    for round in 0..ROUNDS {
        let id = format!("race-failure-0000{round:04}");
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let (store, failure) = (Arc::clone(&app.store), racing_failure(&id, round, writer));
                tokio::spawn(async move { store.put_failure(failure).await })
            })
            .collect();
        for writer in writers {
            writer
                .await
                .unwrap()
                .expect("every concurrent put succeeds");
        }
        let stored = app.store.get_failure(&id).await.unwrap().unwrap();
        let version = stored.version.clone().unwrap();
        let winner: usize = version.rsplit('.').next().unwrap().parse().unwrap();
        assert_eq!(stored, racing_failure(&id, round, winner));
        assert_only_the_winner_is_searchable(&app, "failures", &id, round, winner).await;
        // A failure matches any of its services: the losers' services are gone too.
        assert!(app
            .list_ids(
                "failures",
                json!({"query": format!(
                    "round:{round} {}",
                    losers("service", winner, |w| format!("svc-{w}"))
                )})
            )
            .await
            .is_empty());
    }
}

/// Puts and deletes of one id racing: whatever is left is either nothing at all (no stray
/// searchable attributes) or one whole event.
async fn concurrent_puts_and_deletes_of_one_id_leave_no_orphans() {
    let app = spawn_app().await;
    for round in 0..ROUNDS {
        let id = format!("race-delete-0000{round:04}");
        let tasks: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let (store, deployment) = (
                    Arc::clone(&app.store),
                    racing_deployment(&id, round, writer),
                );
                tokio::spawn(async move {
                    if writer % 3 == 2 {
                        store.delete_deployment(&deployment.id).await.map(|_| ())
                    } else {
                        store.put_deployment(deployment).await
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await
                .unwrap()
                .expect("every concurrent put and delete succeeds");
        }
        match app.store.get_deployment(&id).await.unwrap() {
            Some(stored) => {
                let version = stored.deployment.version.clone().unwrap();
                let winner: usize = version.rsplit('.').next().unwrap().parse().unwrap();
                assert_eq!(stored.deployment, racing_deployment(&id, round, winner));
                assert_only_the_winner_is_searchable(&app, "deployments", &id, round, winner).await;
            }
            None => {
                for query in [format!("round:{round}"), format!("service:race-{round}")] {
                    assert!(
                        app.list_ids("deployments", json!({"query": query}))
                            .await
                            .is_empty(),
                        "{query}: a deleted deployment is still listed"
                    );
                }
            }
        }
    }
}

async fn a_token_created_through_the_store_is_accepted_over_http() {
    let app = spawn_app().await;
    let before = app.store.count_tokens().await.unwrap();
    let issued = issue_token(
        "conformance".into(),
        vec![Scope::Read, Scope::Write],
        Vec::new(),
        None,
    );
    let (secret, record) = (issued.token, issued.record);
    app.store.create_token(record.clone()).await.unwrap();
    assert_eq!(app.store.count_tokens().await.unwrap(), before + 1);
    assert_eq!(
        app.store.find_token(&record.id).await.unwrap(),
        Some(record.clone())
    );
    let other = issue_token("other".into(), vec![Scope::Read], Vec::new(), None);
    assert_eq!(app.store.find_token(&other.record.id).await.unwrap(), None);
    assert!(app.store.list_tokens().await.unwrap().contains(&record));

    let list = json!({"data": {"type": "dora_deployments_list_request", "attributes": {}}});
    let reply = app
        .call(
            Method::POST,
            "/api/v2/dora/deployments",
            Some(&secret),
            Some(list.clone()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let create = json!({"data": {"attributes": crate::helpers::deployment("svc", "prod", 0)}});
    let reply = app
        .call(
            Method::POST,
            "/api/v2/dora/deployment",
            Some(&secret),
            Some(create),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);

    // Read-only: listing yes, writing no.
    let reader = crate::helpers::token(app.store.as_ref(), vec![Scope::Read]).await;
    let reply = app
        .call(
            Method::POST,
            "/api/v2/dora/deployments",
            Some(&reader),
            Some(list),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = app
        .call(
            Method::DELETE,
            "/api/v2/dora/deployment/no-such-deployment-0",
            Some(&reader),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}

fn numbered(n: usize, version: &str) -> Deployment {
    let mut deployment = racing_deployment(&format!("churn-deployment-{n:02}"), 9, n);
    deployment.service = "churn".into();
    deployment.version = Some(version.into());
    deployment
}

async fn deletes_and_re_puts_keep_the_list_consistent() {
    let app = spawn_app().await;
    let store = &app.store;
    let ids: Vec<String> = (0..5).map(|n| numbered(n, "v1").id).collect();
    for n in 0..5 {
        store.put_deployment(numbered(n, "v1")).await.unwrap();
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    let listed = |query: &str| app.list_ids("deployments", json!({"query": query, "limit": 100}));
    assert_eq!(listed("service:churn").await, newest_first);

    // PATCH data goes with the deployment when it is deleted.
    assert!(store
        .patch_deployment(
            DeploymentSelector::Id(ids[2].clone()),
            DeploymentPatch {
                change_failure: Some(true),
                remediation: None,
            },
        )
        .await
        .unwrap());
    assert!(store.delete_deployment(&ids[2]).await.unwrap());
    assert!(!store.delete_deployment(&ids[2]).await.unwrap());
    assert_eq!(store.get_deployment(&ids[2]).await.unwrap(), None);
    let without_2: Vec<String> = newest_first
        .iter()
        .filter(|id| **id != ids[2])
        .cloned()
        .collect();
    assert_eq!(listed("service:churn").await, without_2);
    assert_eq!(listed("version:v1").await, without_2);
    assert!(listed("writer:2").await.is_empty());
    assert_eq!(
        app.get(&format!("/api/v2/dora/deployments/{}", ids[2]))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Back under the same id, with a new version and no PATCH data.
    store.put_deployment(numbered(2, "v2")).await.unwrap();
    let back = store.get_deployment(&ids[2]).await.unwrap().unwrap();
    assert_eq!(back.deployment, numbered(2, "v2"));
    assert_eq!(back.change_failure, None);
    assert_eq!(listed("service:churn").await, newest_first);
    assert_eq!(listed("version:v2").await, [ids[2].clone()]);
    assert_eq!(listed("version:v1").await, without_2);
    assert_eq!(listed("writer:2").await, [ids[2].clone()]);

    // Everything deleted: nothing listed, whatever the query.
    for id in &ids {
        assert!(store.delete_deployment(id).await.unwrap());
    }
    for query in ["service:churn", "version:*", "writer:*", "round:9"] {
        assert!(listed(query).await.is_empty(), "{query}");
    }

    // Failures the same way.
    let failure = racing_failure("churn-failure-0000001", 9, 1);
    store.put_failure(failure.clone()).await.unwrap();
    assert!(store.delete_failure(&failure.id).await.unwrap());
    assert!(!store.delete_failure(&failure.id).await.unwrap());
    assert_eq!(store.get_failure(&failure.id).await.unwrap(), None);
    let failures = |query: &str| app.list_ids("failures", json!({"query": query, "limit": 100}));
    assert!(failures("round:9").await.is_empty());
    assert!(failures("service:svc-1").await.is_empty());
    let mut again = racing_failure("churn-failure-0000001", 9, 2);
    again.services = vec!["svc-2".into()];
    store.put_failure(again.clone()).await.unwrap();
    assert_eq!(store.get_failure(&again.id).await.unwrap(), Some(again));
    assert_eq!(failures("round:9").await, ["churn-failure-0000001"]);
    assert!(failures("service:svc-1").await.is_empty());
}

/// Revocation, expiry and last use, as the store keeps them.
async fn the_store_keeps_a_tokens_lifecycle() {
    let app = spawn_app().await;
    let issued = issue_token(
        "lifecycle".into(),
        vec![Scope::Read],
        Vec::new(),
        Some(EPOCH_2025),
    );
    let id = issued.record.id.clone();
    app.store.create_token(issued.record.clone()).await.unwrap();
    let stored = app.store.find_token(&id).await.unwrap().unwrap();
    assert_eq!(stored.expires_at, Some(EPOCH_2025));
    assert_eq!(stored.last_used_at, None);

    // Last use is kept to the minute: a use within a minute of the last one writes nothing.
    let now = dora_core::time::now();
    app.store.touch_token(&id, now).await.unwrap();
    app.store.touch_token(&id, now + SECOND).await.unwrap();
    let touched = app.store.find_token(&id).await.unwrap().unwrap();
    assert_eq!(touched.last_used_at, Some(now));
    app.store
        .touch_token(&id, now + dora_store::TOKEN_USE_GRAIN + 1)
        .await
        .unwrap();
    let touched = app.store.find_token(&id).await.unwrap().unwrap();
    assert_eq!(
        touched.last_used_at,
        Some(now + dora_store::TOKEN_USE_GRAIN + 1)
    );

    assert!(app.store.revoke_token(&id, now).await.unwrap());
    assert!(!app.store.revoke_token(&id, now + 1).await.unwrap());
    assert!(!app.store.revoke_token("no-such-token", now).await.unwrap());
    let revoked = app.store.find_token(&id).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(now));
    assert!(!revoked.is_live(now));
}

conformance!(
    the_store_keeps_a_tokens_lifecycle,
    concurrent_puts_of_one_deployment_id_leave_one_consistent_event,
    concurrent_puts_of_one_failure_id_leave_one_consistent_event,
    concurrent_puts_and_deletes_of_one_id_leave_no_orphans,
    a_token_created_through_the_store_is_accepted_over_http,
    deletes_and_re_puts_keep_the_list_consistent,
);
