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

/// Lists filter service, env, team and version on the deployments' columns, but a custom tag may
/// repeat those keys (`env:production` on a staging deployment): the deployment then has both
/// values, and the list must find it by either, exactly as the query language's attributes say.
async fn custom_tags_repeating_column_keys_count_as_values_of_those_keys() {
    let app = spawn_app().await;
    type Row = (
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        &'static [&'static str],
    );
    let rows: [Row; 7] = [
        ("shop", Some("production"), Some("web"), Some("v1"), &[]),
        ("shop", Some("staging"), None, None, &["env:production"]),
        (
            "cart",
            None,
            Some("web"),
            Some("v2"),
            &["service:shop", "team:core"],
        ),
        (
            "cart",
            Some("production"),
            Some("core"),
            None,
            &["version:v1", "language:rust"],
        ),
        // A quote in a value: the JSON of the tags holds `"env:` without an env tag.
        (
            "search",
            Some("production"),
            None,
            Some("v3"),
            &["note:say \"env:x"],
        ),
        (
            "search",
            Some("dev"),
            Some("web"),
            Some("v1"),
            &["region:eu"],
        ),
        ("search", None, None, None, &[]),
    ];
    let mut events = Vec::new();
    for (minute, (service, env, team, version, tags)) in rows.iter().enumerate() {
        let mut attributes = deployment(service, "unused", minute as i64);
        let object = attributes.as_object_mut().unwrap();
        object.remove("env");
        for (key, value) in [("env", env), ("team", team), ("version", version)] {
            if let Some(value) = value {
                object.insert(key.into(), json!(value));
            }
        }
        object.insert("custom_tags".into(), json!(tags));
        let id = app.deploy(attributes).await;
        // The attributes the query language matches (`deployment_attributes`).
        let mut attrs = vec![("service".to_string(), service.to_string())];
        for (key, value) in [("env", env), ("team", team), ("version", version)] {
            attrs.extend(value.map(|v| (key.to_string(), v.to_string())));
        }
        for tag in tags.iter() {
            let (key, value) = tag.split_once(':').unwrap();
            attrs.push((key.to_string(), value.to_string()));
        }
        events.push((id, attrs));
    }
    let queries = [
        "env:production",
        "-env:production",
        "service:shop",
        "-service:shop",
        "service:(shop OR search)",
        "service:(shop OR search) env:production -team:web",
        "service:(shop OR cart) env:(production OR staging) team:(core OR web)",
        "team:core",
        "-team:*",
        "team:*",
        "env:*",
        "-env:*",
        "version:v1",
        "version:(v1 OR v3) -service:cart",
        "env:prod*",
        "env:[a TO q]",
        "env:x",
        "service:cart env:production",
        "service:shop OR env:dev",
        "-(service:shop env:production)",
    ];
    for query in queries {
        let parsed = dora_core::query::parse(query).unwrap();
        let mut expected: Vec<String> = events
            .iter()
            .filter(|(_, attrs)| {
                let pairs: Vec<(&str, &str)> = attrs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                parsed.matches(&pairs)
            })
            .map(|(id, _)| id.clone())
            .collect();
        expected.sort();
        let mut found = app
            .list_ids(
                "deployments",
                json!({"query": query, "sort": "finished_at", "limit": 1000}),
            )
            .await;
        found.sort();
        assert_eq!(found, expected, "{query}");
    }
    // Sorted and limited across deployments with and without such tags (1 has one, and so has
    // 4 in the eyes of the list, through its quote).
    let query = "env:production -service:shop OR service:shop env:staging";
    let ids = |indexes: &[usize]| -> Vec<String> {
        indexes.iter().map(|&i| events[i].0.clone()).collect()
    };
    assert_eq!(
        app.list_ids("deployments", json!({"query": query, "limit": 2}))
            .await,
        ids(&[4, 3])
    );
    assert_eq!(
        app.list_ids(
            "deployments",
            json!({"query": query, "limit": 2, "sort": "finished_at"})
        )
        .await,
        ids(&[1, 3])
    );
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
    custom_tags_repeating_column_keys_count_as_values_of_those_keys,
    failures_list_by_started_at_and_match_any_service,
);
