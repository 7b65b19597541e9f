//! `POST /api/v1/deployments`: deployments in bulk, NDJSON or a JSON array of what the Datadog
//! endpoint takes as `data.attributes`, validated the same way, all or nothing.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

/// 2025-01-01T00:00:00Z.
const JAN1: i64 = 1_735_689_600;

fn attributes(n: i64) -> Value {
    json!({
        "id": format!("bulk-deployment-{n:04}"),
        "service": "shop", "env": "production", "team": "backend", "version": format!("v{n}"),
        "started_at": JAN1 + n * 3600 - 60, "finished_at": JAN1 + n * 3600,
        "git": {"repository_url": "https://user:secret@github.com/acme/shop.git",
                "commit_sha": format!("{n:040x}")},
        "custom_tags": ["region:eu"],
    })
}

async fn push(app: &TestApp, token: &str, content_type: &str, body: String) -> (StatusCode, Value) {
    app.post_raw("/api/v1/deployments", token, content_type, body)
        .await
}

async fn all_ids(app: &TestApp) -> Vec<String> {
    let mut ids = app
        .list_ids("deployments", json!({"query": "*", "limit": 1000}))
        .await;
    ids.sort();
    ids
}

async fn deployments_arrive_in_bulk_as_ndjson_or_an_array() {
    let app = spawn_app().await;
    let lines: String = (1..=3).map(|n| format!("{}\n\n", attributes(n))).collect();
    let (status, body) = push(&app, &app.write, "application/x-ndjson", lines).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    assert_eq!(body["received"], 3);
    assert_eq!(
        body["ids"],
        json!([
            "bulk-deployment-0001",
            "bulk-deployment-0002",
            "bulk-deployment-0003"
        ])
    );
    // Stored exactly as the single-event endpoint stores them (credentials stripped).
    let one = app
        .get("/api/v2/dora/deployments/bulk-deployment-0002")
        .await;
    assert_eq!(one.status, StatusCode::OK);
    let stored = &one.body["data"]["attributes"];
    assert_eq!(stored["git"]["repository_id"], "github.com/acme/shop");
    assert_eq!(stored["version"], "v2");

    // An array; a missing id is generated; a repeated id replaces.
    let mut anonymous = attributes(4);
    anonymous.as_object_mut().unwrap().remove("id");
    let mut replaced = attributes(1);
    replaced["version"] = json!("v1-again");
    let array = json!([anonymous, replaced]).to_string();
    let (status, body) = push(&app, &app.write, "application/json", array).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let generated = body["ids"][0].as_str().unwrap().to_string();
    assert_eq!(generated.len(), 16, "{generated}");
    assert_eq!(all_ids(&app).await.len(), 4);
    let again = app
        .get("/api/v2/dora/deployments/bulk-deployment-0001")
        .await;
    assert_eq!(again.body["data"]["attributes"]["version"], "v1-again");

    // Whole Datadog request documents are taken too (recorded requests replayed).
    let document = json!({"data": {"type": "dora_deployment", "attributes": attributes(5)}});
    let mut wrong_type = json!({"data": {"type": "dora_failure", "attributes": attributes(6)}});
    let (status, body) = push(
        &app,
        &app.write,
        "application/x-ndjson",
        format!("{document}\n"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    assert_eq!(body["ids"], json!(["bulk-deployment-0005"]));
    wrong_type["data"]["attributes"]["started_at"] = json!("yesterday");
    let (status, body) = push(
        &app,
        &app.write,
        "application/x-ndjson",
        format!("{wrong_type}\n"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
    assert_eq!(body["errors"][0]["source"]["pointer"], "/0/data/type");
    let reply = app
        .call(
            reqwest::Method::DELETE,
            "/api/v2/dora/deployment/bulk-deployment-0005",
            Some(&app.write),
            None,
        )
        .await;
    assert!(reply.status.is_success(), "{:?}", reply.body);

    // They count in the metrics like any other deployment.
    let reply = app
        .get("/api/v1/metrics?from=2025-01-01&to=2025-01-01&interval=all&query=service:shop")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["totals"]["deployments"], 4);
}

async fn one_bad_deployment_refuses_the_whole_body() {
    let app = spawn_app().await;
    let mut bad = attributes(2);
    bad["finished_at"] = json!(JAN1 - 3600);
    let lines = format!("{}\n{}\n{}\n", attributes(1), bad, attributes(3));
    let (status, body) = push(&app, &app.write, "application/x-ndjson", lines).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
    let error = &body["errors"][0];
    assert_eq!(error["source"]["pointer"], "/1/finished_at");
    assert_eq!(
        error["detail"],
        "line 2: finished_at must not be before started_at"
    );
    assert!(all_ids(&app).await.is_empty(), "nothing stored");

    let mut no_service = attributes(1);
    no_service.as_object_mut().unwrap().remove("service");
    let array = json!([attributes(2), no_service]).to_string();
    let (status, body) = push(&app, &app.write, "application/json", array).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
    assert_eq!(body["errors"][0]["source"]["pointer"], "/1/service");
    let detail = body["errors"][0]["detail"].as_str().unwrap();
    assert!(detail.starts_with("deployment [1]: "), "{detail}");

    let (status, body) = push(&app, &app.write, "application/json", "{}".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
    let detail = body["errors"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("JSON array of deployments"), "{detail}");
    let (status, _) = push(&app, &app.write, "application/x-ndjson", "{\n".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(all_ids(&app).await.is_empty(), "nothing stored");

    // Writing needs the write scope.
    let lines = format!("{}\n", attributes(1));
    let (status, _) = push(&app, &app.read, "application/x-ndjson", lines).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

conformance!(
    deployments_arrive_in_bulk_as_ndjson_or_an_array,
    one_bad_deployment_refuses_the_whole_body,
);
