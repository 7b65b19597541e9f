use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{deployment, spawn_app, TestApp};

conformance!(an_admin_mapping_puts_an_env_in_another_tier);

/// Deployments of 2025-01-01 in the GitLab project `svc` (no git: the project is the service).
async fn deployment_frequency(app: &TestApp, tiers: &str) -> Value {
    let reply = app
        .get(&format!(
            "/api/v4/projects/svc/dora/metrics?metric=deployment_frequency&start_date=2025-01-01&end_date=2025-01-02&environment_tiers={tiers}"
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body[0]["value"].clone()
}

async fn an_admin_mapping_puts_an_env_in_another_tier() {
    let app = spawn_app().await;
    app.deploy(deployment("svc", "sandbox-eu", 10)).await;
    app.deploy(deployment("svc", "production", 20)).await;
    // "sandbox" is no tier's word: the guess says other.
    assert_eq!(deployment_frequency(&app, "production").await, json!(1));
    assert_eq!(deployment_frequency(&app, "other").await, json!(1));

    let path = "/api/v1/admin/env-tiers/sandbox-eu";
    let body = json!({"tier": "production"});
    let read_only = app
        .call(Method::PUT, path, Some(&app.read), Some(body.clone()))
        .await;
    assert_eq!(read_only.status, StatusCode::FORBIDDEN);
    let bad = app
        .call(
            Method::PUT,
            path,
            Some(&app.admin),
            Some(json!({"tier": "prod"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.problem().0, "/tier");
    let set = app
        .call(Method::PUT, path, Some(&app.admin), Some(body))
        .await;
    assert_eq!(set.status, StatusCode::OK, "{:?}", set.body);
    assert_eq!(deployment_frequency(&app, "production").await, json!(2));
    assert_eq!(deployment_frequency(&app, "other").await, json!(0));
    let listed = app.get("/api/v1/admin/env-tiers").await;
    assert_eq!(
        listed.body,
        json!({"env_tiers": {"sandbox-eu": "production"}})
    );
    // A deployment_tier tag still wins over the mapping.
    let mut tagged = deployment("svc", "sandbox-eu", 30);
    tagged["custom_tags"] = json!(["deployment_tier:testing"]);
    app.deploy(tagged).await;
    assert_eq!(deployment_frequency(&app, "production").await, json!(2));
    assert_eq!(deployment_frequency(&app, "testing").await, json!(1));

    let removed = app.call(Method::DELETE, path, Some(&app.admin), None).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    assert_eq!(deployment_frequency(&app, "production").await, json!(1));
    let again = app.call(Method::DELETE, path, Some(&app.admin), None).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}
