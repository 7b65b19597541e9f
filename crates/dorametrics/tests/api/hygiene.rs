//! Input no store keeps faithfully, or that must never be kept: NUL characters, broken bodies,
//! secrets in repository URLs, dates past what nanoseconds hold. Each is a precise 400 (or is
//! dropped), the same on both stores, and nothing is written.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{deployment, spawn_app, TestApp, SHA_A};

fn create(attributes: Value) -> Value {
    json!({ "data": { "attributes": attributes } })
}

async fn stored_deployments(app: &TestApp) -> usize {
    app.list_ids("deployments", json!({"limit": 1000}))
        .await
        .len()
}

async fn a_nul_anywhere_is_a_400_with_a_pointer() {
    let app = spawn_app().await;
    let mut in_tag = deployment("svc", "prod", 0);
    in_tag["custom_tags"] = json!(["team:a", "k\u{0}:v"]);
    let mut in_key = deployment("svc", "prod", 0);
    in_key["x\u{0}y"] = json!(1);
    for (body, pointer) in [
        (
            create(deployment("s\u{0}vc", "prod", 0)),
            "/data/attributes/service",
        ),
        (create(in_tag), "/data/attributes/custom_tags/1"),
        (create(in_key), "/data/attributes/x\u{0}y"),
    ] {
        let reply = app
            .call(
                Method::POST,
                "/api/v2/dora/deployment",
                Some(&app.write),
                Some(body),
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
        let (at, detail) = reply.problem();
        assert_eq!(at, pointer, "{detail}");
        assert!(detail.contains("NUL"), "{detail}");
    }
    // In a list query, a failure, a bulk element, a commit.
    let list = json!({"data": {"type": "dora_deployments_list_request",
                               "attributes": {"query": "service:a\u{0}"}}});
    let reply = app.post("/api/v2/dora/deployments", list).await;
    assert_eq!(reply.problem().0, "/data/attributes/query");
    let failure = create(json!({"name": "x\u{0}", "services": ["svc"], "started_at": 1}));
    let reply = app.post("/api/v2/dora/failure", failure).await;
    assert_eq!(reply.problem().0, "/data/attributes/name");
    let bulk = [
        deployment("a", "prod", 0),
        deployment("b", "prod", 1),
        deployment("c\u{0}", "prod", 2),
    ];
    let body = bulk
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    let (status, answer) = app
        .post_raw(
            "/api/v1/deployments",
            &app.write,
            "application/x-ndjson",
            body,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["errors"][0]["source"]["pointer"], "/2/service");
    let commit = json!({"repository_url": "https://github.com/acme/shop", "sha": SHA_A,
                        "parents": [], "authored_at": 1, "committed_at": 1, "subject": "fix\u{0}"});
    let (status, answer) = app
        .post_raw(
            "/api/v1/commits",
            &app.write,
            "application/x-ndjson",
            commit.to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["errors"][0]["source"]["pointer"], "/0/subject");
    assert_eq!(stored_deployments(&app).await, 0, "nothing was written");

    // In a path id and in query parameters, on every surface.
    let reply = app.get("/api/v2/dora/deployments/abc%00def").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
    assert!(reply.problem().1.contains("path"), "{:?}", reply.body);
    let reply = app.get("/api/v1/metrics?service=a%00b").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
    assert_eq!(reply.body["errors"][0]["source"]["parameter"], "service");
    let reply = app
        .get("/api/v4/groups/acme/dora/metrics?metric=deployment_frequency%00")
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"error": "metric must not contain a NUL character (%00)"})
    );
}

/// Sends raw bytes on a fresh connection; returns everything the server answered.
async fn raw_exchange(app: &TestApp, request: String) -> String {
    let address = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

async fn broken_bodies_are_400_and_early_refusals_close() {
    let app = spawn_app().await;
    let malformed = format!(
        "POST /api/v2/dora/deployment HTTP/1.1\r\nHost: x\r\nDD-API-KEY: {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n",
        app.write
    );
    let answer = raw_exchange(&app, malformed).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("could not be read"), "{answer}");

    // A 401 before the body was read says it closes the connection.
    let body = create(deployment("svc", "prod", 0)).to_string();
    let unauthenticated = app
        .client
        .post(format!("{}/api/v2/dora/deployment", app.base))
        .header("DD-API-KEY", "wrong")
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unauthenticated.headers()["connection"], "close");
    // So does a 413.
    let huge = format!("{{\"data\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let too_large = app
        .client
        .post(format!("{}/api/v2/dora/deployment", app.base))
        .header("DD-API-KEY", &app.write)
        .header("Content-Type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_large.headers()["connection"], "close");
    // A request without a body keeps its connection.
    let no_body = app
        .client
        .get(format!("{}/api/v2/dora/deployments/x", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(no_body.status(), StatusCode::UNAUTHORIZED);
    assert!(no_body.headers().get("connection").is_none());
}

async fn queries_and_fragments_leave_repository_urls() {
    let app = spawn_app().await;
    let mut shop = deployment("shop", "production", 0);
    shop["git"] = json!({
        "repository_url": "https://ci:glpat-secret@github.com/acme/shop?private_token=glpat-secret#readme",
        "commit_sha": SHA_A,
    });
    let id = app.deploy(shop).await;
    let reply = app.get(&format!("/api/v2/dora/deployments/{id}")).await;
    assert_eq!(
        reply.body["data"]["attributes"]["git"]["repository_id"],
        "github.com/acme/shop"
    );
    let failure = create(json!({"name": "x", "services": ["shop"], "started_at": 1,
        "git": {"repository_url": "https://github.com/acme/shop.git?token=glpat-secret#x",
                "commit_sha": SHA_A}}));
    let reply = app.post("/api/v2/dora/failure", failure).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    let failure_id = reply.body["data"]["id"].as_str().unwrap().to_string();
    let reply = app
        .get(&format!("/api/v2/dora/failures/{failure_id}"))
        .await;
    assert_eq!(
        reply.body["data"]["attributes"]["git"]["repository_url"],
        "https://github.com/acme/shop.git"
    );
    let projects = app.get("/api/v1/projects").await;
    let text = projects.body.to_string();
    assert!(text.contains("\"acme/shop\""), "{text}");
    assert!(!text.contains("secret") && !text.contains('?'), "{text}");
}

async fn dates_past_nanoseconds_are_400_on_every_surface() {
    let app = spawn_app().await;
    app.deploy(deployment("svc", "production", 0)).await;
    let reply = app
        .get("/api/v1/metrics?from=2611-06-01&to=2611-12-31")
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
    // Both are out of range; the first checked is named.
    assert_eq!(reply.body["errors"][0]["source"]["parameter"], "to");
    assert!(
        reply.problem().1.contains("out of range"),
        "{:?}",
        reply.body
    );
    let reply = app
        .get("/api/v1/metrics?from=1600-01-01&to=2025-01-01")
        .await;
    assert_eq!(reply.body["errors"][0]["source"]["parameter"], "from");
    let reply = app.get("/api/v1/metrics?to=2611-12-31").await;
    assert_eq!(reply.body["errors"][0]["source"]["parameter"], "to");

    let gitlab =
        "/api/v4/groups/svc/dora/metrics?metric=deployment_frequency&start_date=2611-01-01";
    let reply = app.get(gitlab).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body, json!({"error": "start_date is invalid"}));
    let legacy = "/api/v4/projects/svc/analytics/deployment_frequency?environment=production&from=2611-01-01";
    let reply = app.get(legacy).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body, json!({"error": "from is invalid"}));

    let list = json!({"data": {"type": "dora_deployments_list_request",
                               "attributes": {"from": "2611-06-01T00:00:00Z"}}});
    let reply = app.post("/api/v2/dora/deployments", list).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.problem().0, "/data/attributes/from");
    let mut late = deployment("svc", "production", 0);
    late["finished_at"] = json!("2611-06-01T00:00:00Z");
    let reply = app.post("/api/v2/dora/deployment", create(late)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.problem().0, "/data/attributes/finished_at");
}

/// Many terms cost time in proportion (a deadline set for the test says so: PostgreSQL once
/// planned 1000 ANDed terms for minutes, SQLite refused them as too deep); one term past the
/// documented limit is a 400 naming it.
async fn query_cost_grows_with_the_terms_and_is_bounded() {
    let app = crate::helpers::spawn_app_with(&dora_store::StoreOptions {
        statement_timeout: std::time::Duration::from_secs(3),
        ..dora_store::StoreOptions::default()
    })
    .await;
    let limit = dora_core::query::MAX_TERMS;
    for (i, tags) in [json!(["a:b"]), json!(["a:c"])].into_iter().enumerate() {
        let mut d = deployment("svc", "production", i as i64);
        d["custom_tags"] = tags;
        app.deploy(d).await;
    }
    let all = vec!["a:b"; limit].join(" ");
    let ids = app.list_ids("deployments", json!({"query": all})).await;
    assert_eq!(ids.len(), 1);
    // As many ORed terms as 4 KiB holds.
    let any = format!("a:({} OR b)", vec!["x"; 800].join(" OR "));
    assert_eq!(
        app.list_ids("deployments", json!({"query": any}))
            .await
            .len(),
        1
    );
    let metrics = format!(
        "/api/v1/metrics?tiers=all&from=2025-01-01&to=2025-01-01&query={}",
        all.replace(' ', "+")
    );
    let reply = app.get(&metrics).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["totals"]["deployments"], 1);

    let too_many = vec!["a:b"; limit + 1].join(" ");
    let reply = app.list("deployments", json!({"query": too_many})).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let (pointer, detail) = reply.problem();
    assert_eq!(pointer, "/data/attributes/query");
    assert!(
        detail.contains(&format!("more than {limit} terms")),
        "{detail}"
    );
    let reply = app
        .get(&format!(
            "/api/v1/metrics?query={}",
            too_many.replace(' ', "+")
        ))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body["errors"][0]["source"]["parameter"], "query");
}

conformance!(
    query_cost_grows_with_the_terms_and_is_bounded,
    a_nul_anywhere_is_a_400_with_a_pointer,
    broken_bodies_are_400_and_early_refusals_close,
    queries_and_fragments_leave_repository_urls,
    dates_past_nanoseconds_are_400_on_every_surface,
);
