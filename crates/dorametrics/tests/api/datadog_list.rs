use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{deployment, spawn_app, TestApp};

/// Five deployments, one a minute from 2025-01-01T00:00Z, with distinct services, envs and teams.
async fn seeded() -> (TestApp, Vec<String>) {
    let app = spawn_app().await;
    let rows = [
        ("shopist", "production", "backend", "v1", 0),
        ("api-service", "production", "platform", "v2", 1),
        ("shopist", "staging", "backend", "beta", 2),
        ("payments", "production", "backend", "v3", 3),
        ("api-service", "staging", "frontend", "v4", 4),
    ];
    let mut ids = Vec::new();
    for (service, env, team, version, minute) in rows {
        let mut attributes = deployment(service, env, minute);
        attributes["team"] = json!(team);
        attributes["version"] = json!(version);
        attributes["custom_tags"] = json!([format!("minute:{minute}"), "region:us-east-1"]);
        ids.push(app.deploy(attributes).await);
    }
    (app, ids)
}

async fn default_sort_is_newest_finished_first_and_limit_defaults_to_10() {
    let (app, ids) = seeded().await;
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(app.list_ids("deployments", json!({})).await, expected);
    for i in 0..8 {
        app.deploy(deployment("bulk", "production", 100 + i)).await;
    }
    assert_eq!(app.list_ids("deployments", json!({})).await.len(), 10);
    assert_eq!(
        app.list_ids("deployments", json!({"limit": 1000}))
            .await
            .len(),
        13
    );
    assert_eq!(
        app.list_ids("deployments", json!({"limit": 3})).await.len(),
        3
    );
}

async fn sort_ascending_and_by_started_at() {
    let (app, ids) = seeded().await;
    assert_eq!(
        app.list_ids("deployments", json!({"sort": "finished_at"}))
            .await,
        ids
    );
    assert_eq!(
        app.list_ids("deployments", json!({"sort": "started_at"}))
            .await,
        ids
    );
    let mut reversed = ids.clone();
    reversed.reverse();
    assert_eq!(
        app.list_ids("deployments", json!({"sort": "-started_at"}))
            .await,
        reversed
    );
}

async fn from_and_to_bound_finished_at_inclusively() {
    let (app, ids) = seeded().await;
    let found = app
        .list_ids("deployments", json!({"from": "2025-01-01T00:01:00Z", "to": "2025-01-01T00:03:00Z", "sort": "finished_at"}))
        .await;
    assert_eq!(found, ids[1..4].to_vec());
    // Offsets other than Z are understood.
    let found = app
        .list_ids(
            "deployments",
            json!({"from": "2025-01-01T01:02:00+01:00", "sort": "finished_at"}),
        )
        .await;
    assert_eq!(found, ids[2..].to_vec());
}

async fn the_query_language_filters_in_the_store() {
    let (app, ids) = seeded().await;
    let q = |query: &str| {
        let app = &app;
        let query = query.to_string();
        async move {
            let mut found = app
                .list_ids(
                    "deployments",
                    json!({"query": query, "sort": "finished_at", "limit": 1000}),
                )
                .await;
            found.sort();
            found
        }
    };
    let pick = |indexes: &[usize]| {
        let mut picked: Vec<String> = indexes.iter().map(|&i| ids[i].clone()).collect();
        picked.sort();
        picked
    };
    assert_eq!(q("service:shopist").await, pick(&[0, 2]));
    assert_eq!(
        q("service:(shopist OR api-service) env:production").await,
        pick(&[0, 1])
    );
    assert_eq!(q("service:(shopist OR api-service OR payments) env:(production OR staging) team:(backend OR platform)").await, pick(&[0, 1, 2, 3]));
    assert_eq!(q("-version:beta team:backend").await, pick(&[0, 3]));
    assert_eq!(q("NOT env:production").await, pick(&[2, 4]));
    assert_eq!(q("service:api*").await, pick(&[1, 4]));
    assert_eq!(q("minute:[1 TO 3]").await, pick(&[1, 2, 3]));
    assert_eq!(q("minute:>2").await, pick(&[3, 4]));
    assert_eq!(q("region:us-east-1 version:v?").await, pick(&[0, 1, 3, 4]));
    assert_eq!(q("team:*").await, pick(&[0, 1, 2, 3, 4]));
    assert_eq!(q("-team:*").await, pick(&[]));
    assert_eq!(q("payments").await, pick(&[3]));
    assert_eq!(
        q("service:shopist OR team:frontend").await,
        pick(&[0, 2, 4])
    );
    // Query, range and limit together.
    let found = app
        .list_ids("deployments", json!({"query": "env:production", "from": "2025-01-01T00:01:00Z", "limit": 1, "sort": "-finished_at"}))
        .await;
    assert_eq!(found, vec![ids[3].clone()]);
}

async fn failures_list_by_started_at_and_match_any_service() {
    let app = spawn_app().await;
    let base = 1_735_689_600;
    let a = app.fail(json!({"services": ["shop", "cart"], "env": "prod", "severity": "high", "name": "Checkout down", "started_at": base})).await;
    let b = app.fail(json!({"services": ["search"], "env": "prod", "started_at": base + 60, "finished_at": base + 120})).await;
    let c = app
        .fail(json!({"team": "core", "started_at": base + 120}))
        .await;
    assert_eq!(
        app.list_ids("failures", json!({})).await,
        vec![c.clone(), b.clone(), a.clone()]
    );
    assert_eq!(
        app.list_ids("failures", json!({"query": "service:cart"}))
            .await,
        vec![a.clone()]
    );
    assert_eq!(
        app.list_ids("failures", json!({"query": "-service:cart"}))
            .await,
        vec![c.clone(), b.clone()]
    );
    assert_eq!(
        app.list_ids("failures", json!({"query": "severity:high"}))
            .await,
        vec![a.clone()]
    );
    assert_eq!(
        app.list_ids("failures", json!({"query": "checkout"})).await,
        vec![a.clone()]
    );
    assert_eq!(
        app.list_ids(
            "failures",
            json!({"from": "2025-01-01T00:01:00Z", "sort": "started_at"})
        )
        .await,
        vec![b, c]
    );
    let reply = app.list("failures", json!({"limit": 1})).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type, "application/vnd.api+json");
    assert_eq!(reply.body["data"][0]["type"], "dora_failure");
    assert_eq!(reply.body["data"][0]["attributes"]["team"], "core");
}

conformance!(
    default_sort_is_newest_finished_first_and_limit_defaults_to_10,
    sort_ascending_and_by_started_at,
    from_and_to_bound_finished_at_inclusively,
    the_query_language_filters_in_the_store,
    failures_list_by_started_at_and_match_any_service,
);
