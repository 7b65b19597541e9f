use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{deployment, spawn_app, TestApp};

async fn expect_400(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Value,
    pointer: &str,
    detail_contains: &str,
) {
    let reply = app
        .call(method, path, Some(&app.admin), Some(body.clone()))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "{body}: {:?}",
        reply.body
    );
    assert_eq!(reply.content_type, "application/vnd.api+json");
    let error = &reply.body["errors"][0];
    assert_eq!(error["status"], "400");
    assert_eq!(error["title"], "Bad Request");
    let (found_pointer, detail) = reply.problem();
    assert_eq!(found_pointer, pointer, "{body}: {detail}");
    assert!(
        detail.contains(detail_contains),
        "{body}: {detail:?} should contain {detail_contains:?}"
    );
}

fn with(mut attributes: Value, key: &str, value: Value) -> Value {
    attributes[key] = value;
    json!({"data": {"attributes": attributes}})
}

async fn deployment_intake_rejects_each_violation_precisely() {
    let app = spawn_app().await;
    let base = deployment("svc", "prod", 0);
    let path = "/api/v2/dora/deployment";
    let mut no_service = base.clone();
    no_service.as_object_mut().unwrap().remove("service");
    let cases = vec![
        (
            json!({"data": {"attributes": no_service}}),
            "/data/attributes/service",
            "service is required",
        ),
        (
            with(base.clone(), "id", json!("too-short")),
            "/data/attributes/id",
            "16 to 128",
        ),
        (
            with(base.clone(), "id", json!("has/slash/in/the/id")),
            "/data/attributes/id",
            "'/'",
        ),
        (
            with(base.clone(), "id", json!("x".repeat(129))),
            "/data/attributes/id",
            "16 to 128",
        ),
        (
            with(base.clone(), "started_at", json!(0)),
            "/data/attributes/started_at",
            "positive",
        ),
        (
            with(base.clone(), "started_at", json!("2025-13-01")),
            "/data/attributes/started_at",
            "RFC 3339",
        ),
        (
            with(base.clone(), "finished_at", json!(1_000)),
            "/data/attributes/finished_at",
            "before started_at",
        ),
        (
            with(base.clone(), "finished_at", json!(99_999_999_999_i64)),
            "/data/attributes/finished_at",
            "out of range",
        ),
        (
            with(base.clone(), "env", json!(["prod"])),
            "/data/attributes/env",
            "must be a string, got an array",
        ),
        (
            with(base.clone(), "service", json!("")),
            "/data/attributes/service",
            "must not be empty",
        ),
        (
            with(base.clone(), "custom_tags", json!(["nocolon"])),
            "/data/attributes/custom_tags/0",
            "key:value",
        ),
        (
            with(base.clone(), "custom_tags", json!("a:b")),
            "/data/attributes/custom_tags",
            "array",
        ),
        (
            with(
                base.clone(),
                "custom_tags",
                json!((0..101).map(|i| format!("k:{i}")).collect::<Vec<_>>()),
            ),
            "/data/attributes/custom_tags",
            "at most 100",
        ),
        (
            with(
                base.clone(),
                "git",
                json!({"repository_url": "https://github.com/a/b", "commit_sha": "1234567"}),
            ),
            "/data/attributes/git/commit_sha",
            "40 hex",
        ),
        (
            with(
                base.clone(),
                "git",
                json!({"repository_url": "https://github.com/a/b", "commit_sha": "z".repeat(40)}),
            ),
            "/data/attributes/git/commit_sha",
            "hex",
        ),
        (
            with(base.clone(), "git", json!({"commit_sha": "a".repeat(40)})),
            "/data/attributes/git/repository_url",
            "required",
        ),
        (
            with(
                base.clone(),
                "git",
                json!({"repository_url": "nohost", "commit_sha": "a".repeat(40)}),
            ),
            "/data/attributes/git/repository_url",
            "host",
        ),
        (
            json!({"data": {"type": "dora_failure", "attributes": base.clone()}}),
            "/data/type",
            "dora_deployment",
        ),
        (
            json!({"data": {}}),
            "/data/attributes",
            "attributes is required",
        ),
        (json!({"data": "x"}), "/data", "must be an object"),
        (json!([1, 2]), "", "JSON object"),
    ];
    for (body, pointer, detail) in cases {
        expect_400(&app, Method::POST, path, body, pointer, detail).await;
    }
    // Nothing of the rejected requests was written.
    assert!(app
        .list_ids("deployments", json!({"limit": 1000}))
        .await
        .is_empty());
}

async fn failure_intake_rejects_each_violation_precisely() {
    let app = spawn_app().await;
    let path = "/api/v2/dora/failure";
    let cases = vec![
        (
            json!({"data": {"attributes": {"started_at": 1_735_689_600}}}),
            "/data/attributes/services",
            "services or team",
        ),
        (
            json!({"data": {"attributes": {"team": "t"}}}),
            "/data/attributes/started_at",
            "required",
        ),
        (
            json!({"data": {"attributes": {"services": "shop", "started_at": 1_735_689_600}}}),
            "/data/attributes/services",
            "array",
        ),
        (
            json!({"data": {"attributes": {"services": ["shop", 3], "started_at": 1_735_689_600}}}),
            "/data/attributes/services/1",
            "string",
        ),
        (
            json!({"data": {"attributes": {"team": "t", "started_at": 1_735_689_600, "finished_at": 1_735_689_000}}}),
            "/data/attributes/finished_at",
            "before",
        ),
        (
            json!({"data": {"attributes": {"team": "t", "id": "short", "started_at": 1_735_689_600}}}),
            "/data/attributes/id",
            "16 to 128",
        ),
        (
            json!({"data": {"type": "dora_deployment", "attributes": {"team": "t", "started_at": 1_735_689_600}}}),
            "/data/type",
            "dora_failure",
        ),
    ];
    for (body, pointer, detail) in cases {
        expect_400(&app, Method::POST, path, body, pointer, detail).await;
    }
}

async fn list_requests_reject_each_violation_precisely() {
    let app = spawn_app().await;
    let list = |attributes: Value| json!({"data": {"type": "dora_deployments_list_request", "attributes": attributes}});
    let path = "/api/v2/dora/deployments";
    let cases = vec![
        (
            json!({"data": {"attributes": {}}}),
            "/data/type",
            "type is required",
        ),
        (
            json!({"data": {"type": "dora_failures_list_request", "attributes": {}}}),
            "/data/type",
            "dora_deployments_list_request",
        ),
        (
            list(json!({"limit": 0})),
            "/data/attributes/limit",
            "1 to 1000",
        ),
        (
            list(json!({"limit": 1001})),
            "/data/attributes/limit",
            "1 to 1000",
        ),
        (
            list(json!({"limit": 2.5})),
            "/data/attributes/limit",
            "1 to 1000",
        ),
        (
            list(json!({"sort": "service"})),
            "/data/attributes/sort",
            "started_at or finished_at",
        ),
        (
            list(json!({"from": "last week"})),
            "/data/attributes/from",
            "RFC 3339",
        ),
        (
            list(json!({"to": 1_735_689_600})),
            "/data/attributes/to",
            "string",
        ),
        (
            list(json!({"from": "2025-02-01T00:00:00Z", "to": "2025-01-01T00:00:00Z"})),
            "/data/attributes/from",
            "after to",
        ),
        (
            list(json!({"query": "service:(a OR b"})),
            "/data/attributes/query",
            "offset",
        ),
        (
            list(json!({"query": "env:production AND"})),
            "/data/attributes/query",
            "offset",
        ),
    ];
    for (body, pointer, detail) in cases {
        expect_400(&app, Method::POST, path, body, pointer, detail).await;
    }
}

async fn malformed_and_oversized_bodies_are_4xx_never_5xx() {
    let app = spawn_app().await;
    let url = format!("{}/api/v2/dora/deployment", app.base);
    let send = |body: Vec<u8>| {
        let request = app
            .client
            .post(&url)
            .header("DD-API-KEY", &app.admin)
            .header("content-type", "application/json")
            .body(body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = send(b"{\"data\": ".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{body}"
    );
    let (status, _) = send(Vec::new()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = send(b"\xff\xfe".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let mut huge = b"{\"data\": {\"attributes\": {\"service\": \"".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 2 * 1024 * 1024));
    huge.extend(b"\"}}}");
    let (status, body) = send(huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body["errors"][0].as_str().unwrap().contains("1048576"));
}

async fn patch_requests_reject_each_violation_precisely() {
    let app = spawn_app().await;
    let id = app.deploy(deployment("svc", "prod", 0)).await;
    let path = format!("/api/v2/dora/deployments/{id}");
    let patch = |attributes: Value| json!({"data": {"type": "dora_deployment_patch_request", "attributes": attributes}});
    let cases = vec![
        (
            json!({"data": {"attributes": {"change_failure": true}}}),
            "/data/type",
            "type is required",
        ),
        (
            patch(json!({})),
            "/data/attributes/change_failure",
            "nothing to patch",
        ),
        (
            patch(json!({"change_failure": "yes"})),
            "/data/attributes/change_failure",
            "true or false",
        ),
        (
            patch(json!({"remediation": {"id": "x", "type": "revert"}})),
            "/data/attributes/remediation/type",
            "rollback",
        ),
        (
            patch(json!({"remediation": {"type": "rollback"}})),
            "/data/attributes/remediation/id",
            "id or version",
        ),
        (
            patch(json!({"remediation": {"id": "a", "version": "b", "type": "rollback"}})),
            "/data/attributes/remediation/id",
            "not both",
        ),
        (
            patch(json!({"remediation": {"id": id, "type": "rollback"}})),
            "/data/attributes/remediation/id",
            "itself",
        ),
        (
            json!({"data": {"id": "another-id-entirely", "type": "dora_deployment_patch_request", "attributes": {"change_failure": true}}}),
            "/data/id",
            "does not match",
        ),
    ];
    for (body, pointer, detail) in cases {
        expect_400(&app, Method::PATCH, &path, body, pointer, detail).await;
    }
    let cases = vec![
        (
            patch(json!({"env": "prod", "version": "v1", "change_failure": true})),
            "/data/attributes/service",
            "required",
        ),
        (
            patch(json!({"service": "svc", "version": "v1", "change_failure": true})),
            "/data/attributes/env",
            "required",
        ),
        (
            patch(json!({"service": "svc", "env": "prod", "change_failure": true})),
            "/data/attributes/version",
            "required",
        ),
        (
            patch(json!({"service": "svc", "env": "prod", "version": "v1"})),
            "/data/attributes/change_failure",
            "required",
        ),
    ];
    for (body, pointer, detail) in cases {
        expect_400(
            &app,
            Method::PATCH,
            "/api/v2/dora/deployments",
            body,
            pointer,
            detail,
        )
        .await;
    }
    // Nothing was patched.
    assert_eq!(
        app.store
            .get_deployment(&id)
            .await
            .unwrap()
            .unwrap()
            .change_failure,
        None
    );
}

conformance!(
    deployment_intake_rejects_each_violation_precisely,
    failure_intake_rejects_each_violation_precisely,
    list_requests_reject_each_violation_precisely,
    malformed_and_oversized_bodies_are_4xx_never_5xx,
    patch_requests_reject_each_violation_precisely,
);
