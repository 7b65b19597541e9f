use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{deployment, spawn_app, SHA_A};

async fn a_deployment_reads_back_as_sent() {
    let app = spawn_app().await;
    let id = app
        .deploy(json!({
            "id": "4242fcdd31586083",
            "service": "shopist",
            "env": "production",
            "team": "backend",
            "version": "v1.12.07",
            "started_at": 1693491974000000000_i64,
            "finished_at": 1693491984000_i64,
            "git": {"repository_url": "https://user:secret@github.com/Organization/example-repository.git",
                    "commit_sha": SHA_A.to_uppercase()},
            "custom_tags": ["language:java", "department:engineering"]
        }))
        .await;
    assert_eq!(id, "4242fcdd31586083");
    let reply = app.get("/api/v2/dora/deployments/4242fcdd31586083").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type, "application/vnd.api+json");
    assert_eq!(
        reply.body,
        json!({"data": {"id": "4242fcdd31586083", "type": "dora_deployment", "attributes": {
            "service": "shopist", "env": "production", "team": "backend", "version": "v1.12.07",
            "started_at": "2023-08-31T14:26:14Z", "finished_at": "2023-08-31T14:26:24Z",
            "git": {"commit_sha": SHA_A, "repository_id": "github.com/Organization/example-repository"},
            "custom_tags": ["language:java", "department:engineering"]
        }}})
    );
    assert!(!reply.body.to_string().contains("secret"));
}

async fn generated_ids_have_their_documented_shapes() {
    let app = spawn_app().await;
    let deployment_id = app.deploy(deployment("svc", "prod", 0)).await;
    assert_eq!(deployment_id.len(), 16);
    assert!(deployment_id
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    let failure_id = app
        .fail(json!({"services": ["svc"], "started_at": 1_735_689_600}))
        .await;
    assert_eq!(failure_id.len(), 36);
    assert_eq!(failure_id.matches('-').count(), 4);
}

async fn a_repeated_id_replaces_the_event() {
    let app = spawn_app().await;
    let mut attributes = deployment("svc", "prod", 0);
    attributes["id"] = json!("deploy-0000000001");
    attributes["version"] = json!("v1");
    app.deploy(attributes.clone()).await;
    attributes["version"] = json!("v2");
    app.deploy(attributes).await;
    let reply = app.get("/api/v2/dora/deployments/deploy-0000000001").await;
    assert_eq!(reply.body["data"]["attributes"]["version"], "v2");
    assert_eq!(
        app.list_ids("deployments", json!({"limit": 1000}))
            .await
            .len(),
        1
    );
    // The old version is no longer searchable.
    assert!(app
        .list_ids("deployments", json!({"query": "version:v1"}))
        .await
        .is_empty());
}

async fn a_failure_is_resolved_by_reposting_its_id() {
    let app = spawn_app().await;
    let id = app
        .fail(json!({"id": "incident-00000042", "name": "checkout down", "services": ["shop", "cart"],
                     "env": "prod", "severity": "SEV-1", "started_at": 1_735_689_600,
                     "git": {"repository_url": "git@github.com:acme/shop.git", "commit_sha": SHA_A}}))
        .await;
    let open = app.get(&format!("/api/v2/dora/failures/{id}")).await;
    assert_eq!(open.status, StatusCode::OK);
    assert!(open.body["data"]["attributes"].get("finished_at").is_none());
    assert_eq!(
        open.body["data"]["attributes"]["git"]["repository_url"],
        "git@github.com:acme/shop.git"
    );
    app.fail(json!({"id": "incident-00000042", "name": "checkout down", "services": ["shop", "cart"],
                    "env": "prod", "severity": "SEV-1", "started_at": 1_735_689_600, "finished_at": 1_735_693_200}))
        .await;
    let resolved = app.get(&format!("/api/v2/dora/failures/{id}")).await;
    assert_eq!(resolved.body["data"]["type"], "dora_failure");
    assert_eq!(
        resolved.body["data"]["attributes"]["finished_at"],
        "2025-01-01T01:00:00Z"
    );
    assert_eq!(
        resolved.body["data"]["attributes"]["services"],
        json!(["shop", "cart"])
    );
}

async fn incident_is_an_alias_of_failure() {
    let app = spawn_app().await;
    let reply = app
        .post(
            "/api/v2/dora/incident",
            json!({"data": {"attributes": {"team": "core", "started_at": 1_735_689_600}}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(reply.body["data"]["type"], "dora_failure");
    let id = reply.body["data"]["id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/api/v2/dora/failures/{id}")).await.status,
        StatusCode::OK
    );
}

async fn deletes_remove_events_and_unknown_ids_are_404() {
    let app = spawn_app().await;
    let deployment_id = app.deploy(deployment("svc", "prod", 0)).await;
    let failure_id = app
        .fail(json!({"team": "t", "started_at": 1_735_689_600}))
        .await;
    let reply = app
        .call(
            Method::DELETE,
            &format!("/api/v2/dora/deployment/{deployment_id}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(
        app.get(&format!("/api/v2/dora/deployments/{deployment_id}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert!(app
        .list_ids("deployments", json!({"query": "service:svc"}))
        .await
        .is_empty());
    let again = app
        .call(
            Method::DELETE,
            &format!("/api/v2/dora/deployment/{deployment_id}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(
        again.body,
        json!({"errors": [format!("Deployment {deployment_id:?} not found")]})
    );
    let reply = app
        .call(
            Method::DELETE,
            &format!("/api/v2/dora/failure/{failure_id}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(
        app.get(&format!("/api/v2/dora/failures/{failure_id}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

async fn path_ids_are_percent_decoded() {
    let app = spawn_app().await;
    let mut attributes = deployment("svc", "prod", 0);
    attributes["id"] = json!("release:2025.01:build-7");
    app.deploy(attributes).await;
    let reply = app
        .get("/api/v2/dora/deployments/release%3A2025.01%3Abuild-7")
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["data"]["id"], "release:2025.01:build-7");
}

async fn unknown_routes_and_methods_answer_json() {
    let app = spawn_app().await;
    let reply = app.get("/api/v2/dora/nothing").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.body, json!({"errors": ["Not Found"]}));
    let reply = app
        .call(
            Method::PUT,
            "/api/v2/dora/deployment",
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
}

conformance!(
    a_deployment_reads_back_as_sent,
    generated_ids_have_their_documented_shapes,
    a_repeated_id_replaces_the_event,
    a_failure_is_resolved_by_reposting_its_id,
    incident_is_an_alias_of_failure,
    deletes_remove_events_and_unknown_ids_are_404,
    path_ids_are_percent_decoded,
    unknown_routes_and_methods_answer_json,
);
