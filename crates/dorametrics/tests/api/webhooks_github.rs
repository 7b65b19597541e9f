//! GitHub deliveries, shaped as GitHub documents its webhook payloads and signed as GitHub
//! signs them: the events they become, and metrics exactly as if the same events had been
//! posted by hand.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

const SECRET: &str = "It's a Secret to Everybody";
const REPO_ID: i64 = 1296269;
const C0: &str = "a10bd1c3e5f7091b2d4f6a8c0e1f3a5b7c9d0e2f";
const C1: &str = "b21ce2d4f6081a2c3e5f7b9d1f2a4b6c8d0e1f3a";
const C2: &str = "c32df3e5071a2b3d4f6081ace2f3b5c7d9e1f2a4";
const ISSUE_FAILURE: &str = "/api/v2/dora/failures/github:1296269:issue:1347";
const ZERO: &str = "0000000000000000000000000000000000000000";

fn repository() -> Value {
    json!({
        "id": REPO_ID,
        "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
        "name": "shop",
        "full_name": "acme/shop",
        "private": false,
        "owner": {"login": "acme", "id": 1, "type": "Organization"},
        "html_url": "https://github.com/acme/shop",
        "url": "https://api.github.com/repos/acme/shop",
        "default_branch": "main"
    })
}

fn sender() -> Value {
    json!({"login": "octocat", "id": 583231, "type": "User"})
}

/// A push of `commits` (sha, timestamp, message) to main after `before`.
fn push(before: &str, commits: &[(&str, &str, &str)]) -> Value {
    let listed: Vec<Value> = commits
        .iter()
        .map(|(sha, at, message)| {
            json!({
                "id": sha,
                "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433",
                "distinct": true,
                "message": message,
                "timestamp": at,
                "url": format!("https://github.com/acme/shop/commit/{sha}"),
                "author": {"name": "Mona Lisa", "email": "mona@example.com", "username": "mona"},
                "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"},
                "added": [], "removed": [], "modified": ["src/cart.rs"]
            })
        })
        .collect();
    let after = commits.last().map_or(ZERO, |c| c.0);
    json!({
        "ref": "refs/heads/main",
        "before": before,
        "after": after,
        "repository": repository(),
        "pusher": {"name": "mona", "email": "mona@example.com"},
        "sender": sender(),
        "created": before == ZERO,
        "deleted": false,
        "forced": false,
        "base_ref": null,
        "compare": format!("https://github.com/acme/shop/compare/{before}...{after}"),
        "commits": listed,
        "head_commit": listed.last().cloned()
    })
}

fn deployment_status(deployment_id: i64, sha: &str, created: &str, state: &str, at: &str) -> Value {
    json!({
        "action": "created",
        "deployment_status": {
            "url": format!("https://api.github.com/repos/acme/shop/deployments/{deployment_id}/statuses/{}", deployment_id * 10),
            "id": deployment_id * 10,
            "node_id": "MDE2OkRlcGxveW1lbnRTdGF0dXMx",
            "state": state,
            "creator": sender(),
            "description": "",
            "environment": "production",
            "target_url": "",
            "created_at": at,
            "updated_at": at,
            "deployment_url": format!("https://api.github.com/repos/acme/shop/deployments/{deployment_id}"),
            "repository_url": "https://api.github.com/repos/acme/shop"
        },
        "deployment": {
            "url": format!("https://api.github.com/repos/acme/shop/deployments/{deployment_id}"),
            "id": deployment_id,
            "node_id": "MDEwOkRlcGxveW1lbnQx",
            "sha": sha,
            "ref": "main",
            "task": "deploy",
            "payload": {},
            "original_environment": "production",
            "environment": "production",
            "description": null,
            "creator": sender(),
            "created_at": created,
            "updated_at": at,
            "statuses_url": format!("https://api.github.com/repos/acme/shop/deployments/{deployment_id}/statuses"),
            "repository_url": "https://api.github.com/repos/acme/shop"
        },
        "repository": repository(),
        "sender": sender()
    })
}

fn merged_pull_request(number: i64, merge_sha: &str, created: &str, merged: &str) -> Value {
    json!({
        "action": "closed",
        "number": number,
        "pull_request": {
            "url": format!("https://api.github.com/repos/acme/shop/pulls/{number}"),
            "id": 279147437,
            "number": number,
            "state": "closed",
            "locked": false,
            "title": "Cart totals in cents",
            "user": sender(),
            "created_at": created,
            "updated_at": merged,
            "closed_at": merged,
            "merged_at": merged,
            "merge_commit_sha": merge_sha,
            "merged": true,
            "head": {"ref": "cents", "sha": C1},
            "base": {"ref": "main", "sha": C0}
        },
        "repository": repository(),
        "sender": sender()
    })
}

fn issue(
    action: &str,
    labels: &[&str],
    created: &str,
    closed: Option<&str>,
    updated: &str,
) -> Value {
    let labels: Vec<Value> = labels
        .iter()
        .map(|name| json!({"id": 208045946, "name": name, "color": "d73a4a", "default": false}))
        .collect();
    json!({
        "action": action,
        "issue": {
            "url": "https://api.github.com/repos/acme/shop/issues/1347",
            "id": 1,
            "number": 1347,
            "title": "Checkout answers 500",
            "user": sender(),
            "labels": labels,
            "state": if closed.is_some() { "closed" } else { "open" },
            "created_at": created,
            "updated_at": updated,
            "closed_at": closed,
            "body": "Since the last deploy the checkout fails."
        },
        "label": labels.first().cloned(),
        "repository": repository(),
        "sender": sender()
    })
}

/// Delivers `payload` as GitHub does: `X-GitHub-Event`, a delivery id, the signature.
async fn deliver(
    app: &TestApp,
    event: &str,
    delivery: &str,
    payload: &Value,
    secret: &str,
) -> (StatusCode, Value) {
    let body = serde_json::to_vec(payload).unwrap();
    let signature = dora_server::webhooks::verify::sign::github(&body, secret);
    let headers = [
        ("User-Agent", "GitHub-Hookshot/044aadd".to_string()),
        ("X-GitHub-Event", event.to_string()),
        ("X-GitHub-Delivery", delivery.to_string()),
        ("X-GitHub-Hook-ID", "292430182".to_string()),
        ("X-Hub-Signature-256", signature),
    ];
    app.deliver("github", &headers, body).await
}

async fn make_hook(app: &TestApp) {
    let reply = app
        .make_hook("github", "acme-github", SECRET, json!({}))
        .await;
    assert_eq!(reply["secret"], SECRET);
    assert_eq!(reply["path"], "/api/v1/webhooks/github");
}

async fn deliveries_become_the_events_a_client_would_post() {
    let app = spawn_app().await;
    make_hook(&app).await;
    let ok = |(status, body): (StatusCode, Value)| {
        assert_eq!(status, StatusCode::OK, "{body:?}");
        body
    };
    ok(deliver(
        &app,
        "push",
        "d-1",
        &push(ZERO, &[(C0, "2025-03-10T07:00:00Z", "Start")]),
        SECRET,
    )
    .await);
    ok(deliver(
        &app,
        "deployment_status",
        "d-2",
        &deployment_status(
            1,
            C0,
            "2025-03-10T07:20:00Z",
            "success",
            "2025-03-10T07:30:00Z",
        ),
        SECRET,
    )
    .await);
    // The merged PR arrives before the push of its merge commit.
    ok(deliver(
        &app,
        "pull_request",
        "d-3",
        &merged_pull_request(7, C2, "2025-03-10T08:00:00Z", "2025-03-10T10:00:00Z"),
        SECRET,
    )
    .await);
    let pushed = push(
        C0,
        &[
            (
                C1,
                "2025-03-10T09:00:00+01:00",
                "Cart totals in cents\n\nThe long story.",
            ),
            (
                C2,
                "2025-03-10T10:00:00Z",
                "Merge pull request #7 from acme/cents",
            ),
        ],
    );
    let body = ok(deliver(&app, "push", "d-4", &pushed, SECRET).await);
    assert_eq!(body["outcome"], "stored");
    assert_eq!(body["hook"], "acme-github");
    ok(deliver(
        &app,
        "deployment_status",
        "d-5",
        &deployment_status(
            2,
            C2,
            "2025-03-10T10:40:00Z",
            "success",
            "2025-03-10T11:00:00Z",
        ),
        SECRET,
    )
    .await);
    ok(deliver(
        &app,
        "issues",
        "d-6",
        &issue(
            "labeled",
            &["incident"],
            "2025-03-10T11:30:00Z",
            None,
            "2025-03-10T11:31:00Z",
        ),
        SECRET,
    )
    .await);
    ok(deliver(
        &app,
        "issues",
        "d-7",
        &issue(
            "closed",
            &["incident"],
            "2025-03-10T11:30:00Z",
            Some("2025-03-10T12:30:00Z"),
            "2025-03-10T12:30:00Z",
        ),
        SECRET,
    )
    .await);

    // The same events, posted by hand to another server.
    let by_hand = spawn_app().await;
    let commit = |sha: &str, parents: &[&str], at: &str, subject: &str| {
        json!({"repository_url": "https://github.com/acme/shop", "sha": sha, "parents": parents,
               "authored_at": at, "committed_at": at,
               "author": "Mona Lisa <mona@example.com>", "subject": subject})
    };
    let mut merge = commit(
        C2,
        &[C1],
        "2025-03-10T10:00:00Z",
        "Merge pull request #7 from acme/cents",
    );
    merge["merge_request"] = json!({"number": 7, "created_at": "2025-03-10T08:00:00Z", "merged_at": "2025-03-10T10:00:00Z"});
    let commits = json!([
        commit(C0, &[], "2025-03-10T07:00:00Z", "Start"),
        commit(C1, &[C0], "2025-03-10T08:00:00Z", "Cart totals in cents"),
        merge,
    ]);
    let reply = by_hand.post("/api/v1/commits", commits).await;
    assert!(reply.status.is_success(), "{:?}", reply.body);
    for (id, sha, started, finished) in [
        (
            "github:1296269:deployment:1",
            C0,
            "2025-03-10T07:20:00Z",
            "2025-03-10T07:30:00Z",
        ),
        (
            "github:1296269:deployment:2",
            C2,
            "2025-03-10T10:40:00Z",
            "2025-03-10T11:00:00Z",
        ),
    ] {
        by_hand
            .deploy(json!({"id": id, "service": "shop", "env": "production",
                "started_at": started, "finished_at": finished,
                "git": {"repository_url": "https://github.com/acme/shop", "commit_sha": sha}}))
            .await;
    }
    by_hand
        .fail(
            json!({"id": "github:1296269:issue:1347", "name": "Checkout answers 500",
            "services": ["shop"], "started_at": "2025-03-10T11:30:00Z",
            "finished_at": "2025-03-10T12:30:00Z"}),
        )
        .await;

    let (got, expected) = (
        app.shop_march_totals().await,
        by_hand.shop_march_totals().await,
    );
    assert_eq!(got, expected);
    // And what those are, worked out here: two deployments, the second (11:00Z) shipping C1
    // (3 h: 09:00+01:00 is 08:00Z) and C2 (1 h), the median of the two 2 h; merged an hour
    // before it went out, failed by the incident half an hour after it, restored an hour later.
    assert_eq!(got["deployments"], 2, "{got:?}");
    assert_eq!(got["failed_deployments"], 1, "{got:?}");
    assert_eq!(got["lead_time_seconds"]["median"], 7200.0, "{got:?}");
    assert_eq!(got["merge_lead_time_seconds"]["median"], 3600.0, "{got:?}");
    assert_eq!(got["time_to_restore_seconds"]["median"], 3600.0, "{got:?}");

    // The deployment and the failure are events like any other: listed and explained.
    let listed = app
        .get("/api/v2/dora/deployments/github:1296269:deployment:2")
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    let attributes = &listed.body["data"]["attributes"];
    assert_eq!(attributes["service"], "shop", "{attributes:?}");
    assert_eq!(attributes["env"], "production", "{attributes:?}");
    let explained = app
        .get("/api/v1/deployments/github:1296269:deployment:2/changes")
        .await;
    assert_eq!(explained.status, StatusCode::OK, "{:?}", explained.body);
    let shipped = explained.body.to_string();
    assert!(shipped.contains(C1) && shipped.contains(C2), "{shipped}");
    let blamed = app
        .get("/api/v1/deployments/github:1296269:deployment:2/failure")
        .await;
    assert!(
        blamed
            .body
            .to_string()
            .contains("github:1296269:issue:1347"),
        "{:?}",
        blamed.body
    );
    let deliveries = app.get("/api/v1/webhooks/deliveries").await;
    assert_eq!(deliveries.status, StatusCode::OK);
    let kept = deliveries.body["deliveries"].as_array().unwrap();
    assert_eq!(kept.len(), 7);
    assert_eq!(kept[0]["event"], "issues");
    assert_eq!(kept[0]["outcome"], "stored");
    assert_eq!(kept[0]["delivery_id"], "292430182:d-7");
}

async fn bad_signatures_store_nothing() {
    let app = spawn_app().await;
    let payload = deployment_status(
        1,
        C0,
        "2025-03-10T07:20:00Z",
        "success",
        "2025-03-10T07:30:00Z",
    );
    // No hook yet: nothing to verify with.
    let (status, body) = deliver(&app, "deployment_status", "x-1", &payload, SECRET).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body:?}");
    assert!(
        body.to_string()
            .contains("webhook create --provider github"),
        "{body}"
    );
    make_hook(&app).await;
    let (status, body) = deliver(
        &app,
        "deployment_status",
        "x-2",
        &payload,
        "a guess at the secret",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body:?}");
    assert!(body.to_string().contains("x-hub-signature-256"), "{body}");
    let unsigned = app
        .client
        .post(format!("{}/api/v1/webhooks/github", app.base))
        .header("X-GitHub-Event", "deployment_status")
        .body(serde_json::to_vec(&payload).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);
    assert!(unsigned.text().await.unwrap().contains("is missing"));
    let listed = app.list("deployments", json!({"limit": 1000})).await;
    assert_eq!(listed.body["data"], json!([]), "{:?}", listed.body);
    // Refusals are kept, with why.
    let kept = app.get("/api/v1/webhooks/deliveries").await.body;
    let outcomes: Vec<&str> = kept["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["refused", "refused"]);
    for bad in ["limit=-1", "limit=0", "limit=1001", "before=x"] {
        let reply = app.get(&format!("/api/v1/webhooks/deliveries?{bad}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        let parameter = bad.split('=').next().unwrap();
        assert_eq!(
            reply.body["errors"][0]["source"]["parameter"], parameter,
            "{:?}",
            reply.body
        );
    }
    // A provider that does not exist.
    let reply = app
        .call(
            Method::POST,
            "/api/v1/webhooks/jenkins",
            None,
            Some(json!({})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

async fn replays_and_other_events_change_nothing() {
    let app = spawn_app().await;
    make_hook(&app).await;
    let payload = deployment_status(
        1,
        C0,
        "2025-03-10T07:20:00Z",
        "success",
        "2025-03-10T07:30:00Z",
    );
    let (status, body) = deliver(&app, "deployment_status", "r-1", &payload, SECRET).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("stored")),
        "{body:?}"
    );
    let (status, body) = deliver(&app, "deployment_status", "r-1", &payload, SECRET).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("replayed")),
        "{body:?}"
    );
    // Not a success, not an event dorametrics uses, a tag push: accepted, ignored.
    let failed = deployment_status(
        2,
        C0,
        "2025-03-10T08:00:00Z",
        "failure",
        "2025-03-10T08:10:00Z",
    );
    let mut tag = push(ZERO, &[(C1, "2025-03-10T09:00:00Z", "v1")]);
    tag["ref"] = json!("refs/tags/v1.0.0");
    for (event, id, payload) in [
        ("deployment_status", "r-2", failed),
        (
            "star",
            "r-3",
            json!({"action": "created", "repository": repository()}),
        ),
        ("push", "r-4", tag),
        (
            "ping",
            "r-5",
            json!({"zen": "Design for failure.", "hook_id": 292430182}),
        ),
    ] {
        let (status, body) = deliver(&app, event, id, &payload, SECRET).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{event}: {body:?}");
        assert_eq!(body["outcome"], "ignored", "{event}");
    }
    let listed = app.list("deployments", json!({"limit": 1000})).await;
    assert_eq!(
        listed.body["data"].as_array().unwrap().len(),
        1,
        "{:?}",
        listed.body
    );
    // A delivery missing what its event needs is a precise 400, and stores nothing.
    let mut broken = payload.clone();
    broken["deployment"]["sha"] = json!("not a sha");
    broken["deployment"]["id"] = json!(3);
    let (status, body) = deliver(&app, "deployment_status", "r-6", &broken, SECRET).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
    assert_eq!(
        body["errors"][0]["source"]["pointer"], "/deployment/sha",
        "{body:?}"
    );
    let kept = app.get("/api/v1/webhooks/deliveries?limit=1").await.body;
    let newest = &kept["deliveries"][0];
    assert_eq!(newest["outcome"], "refused", "{kept:?}");
    assert!(
        newest["detail"]
            .as_str()
            .unwrap()
            .starts_with("/deployment/sha: "),
        "{kept:?}"
    );
}

async fn issues_follow_their_incident_label_in_any_order() {
    let app = spawn_app().await;
    make_hook(&app).await;
    // Closed arrives before labeled: the older state does not reopen it.
    let closed = issue(
        "closed",
        &["incident", "bug"],
        "2025-03-10T11:30:00Z",
        Some("2025-03-10T12:30:00Z"),
        "2025-03-10T12:30:00Z",
    );
    let labeled = issue(
        "labeled",
        &["incident", "bug"],
        "2025-03-10T11:30:00Z",
        None,
        "2025-03-10T11:31:00Z",
    );
    deliver(&app, "issues", "i-1", &closed, SECRET).await;
    deliver(&app, "issues", "i-2", &labeled, SECRET).await;
    let stored = app.get(ISSUE_FAILURE).await;
    assert_eq!(stored.status, StatusCode::OK, "{:?}", stored.body);
    assert_eq!(
        stored.body["data"]["attributes"]["finished_at"], "2025-03-10T12:30:00Z",
        "{:?}",
        stored.body
    );
    // Reopened: open again.
    let reopened = issue(
        "reopened",
        &["incident"],
        "2025-03-10T11:30:00Z",
        None,
        "2025-03-10T13:00:00Z",
    );
    deliver(&app, "issues", "i-3", &reopened, SECRET).await;
    let stored = app.get(ISSUE_FAILURE).await;
    assert_eq!(
        stored.body["data"]["attributes"]["finished_at"],
        Value::Null,
        "{:?}",
        stored.body
    );
    // The label removed: not an incident any more.
    let mut unlabeled = issue(
        "unlabeled",
        &[],
        "2025-03-10T11:30:00Z",
        None,
        "2025-03-10T13:10:00Z",
    );
    unlabeled["label"] = json!({"name": "incident"});
    let (status, body) = deliver(&app, "issues", "i-4", &unlabeled, SECRET).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    assert_eq!(app.get(ISSUE_FAILURE).await.status, StatusCode::NOT_FOUND);
    // An issue without the label is no incident.
    let plain = issue(
        "opened",
        &["bug"],
        "2025-03-11T11:30:00Z",
        None,
        "2025-03-11T11:30:00Z",
    );
    let (status, _) = deliver(&app, "issues", "i-5", &plain, SECRET).await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

fn workflow_run(id: i64, name: &str, conclusion: &str, sha: &str) -> Value {
    json!({
        "action": "completed",
        "workflow_run": {
            "id": id,
            "name": name,
            "node_id": "WFR_kwLOAbcd",
            "head_branch": "main",
            "head_sha": sha,
            "path": ".github/workflows/deploy.yml",
            "run_number": 562,
            "event": "push",
            "status": "completed",
            "conclusion": conclusion,
            "workflow_id": 161335,
            "run_attempt": 1,
            "created_at": "2025-03-10T09:58:00Z",
            "run_started_at": "2025-03-10T10:00:00Z",
            "updated_at": "2025-03-10T10:06:00Z"
        },
        "workflow": {"id": 161335, "name": name, "path": ".github/workflows/deploy.yml"},
        "repository": repository(),
        "sender": sender()
    })
}

async fn workflow_runs_and_named_services_are_deployments_when_asked() {
    let app = spawn_app().await;
    let reply = app
        .make_hook(
            "github",
            "deploys",
            SECRET,
            json!({"deploy_workflow": "deploy.yml", "deploy_env": "prod-eu"}),
        )
        .await;
    assert_eq!(reply["deploy_workflow"], "deploy.yml");
    // The workflow named by its file: a deployment to the hook's env.
    let (status, body) = deliver(
        &app,
        "workflow_run",
        "w-1",
        &workflow_run(30433642, "Deploy", "success", C1),
        SECRET,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let stored = app
        .get("/api/v2/dora/deployments/github:1296269:run:30433642")
        .await;
    assert_eq!(stored.status, StatusCode::OK, "{:?}", stored.body);
    let attributes = &stored.body["data"]["attributes"];
    assert_eq!(attributes["env"], "prod-eu", "{attributes:?}");
    assert_eq!(
        attributes["started_at"], "2025-03-10T10:00:00Z",
        "{attributes:?}"
    );
    assert_eq!(
        attributes["finished_at"], "2025-03-10T10:06:00Z",
        "{attributes:?}"
    );
    // A failed run, or another workflow's: not deployments.
    for (id, payload) in [
        ("w-2", workflow_run(30433643, "Deploy", "failure", C1)),
        ("w-3", {
            let mut other = workflow_run(30433644, "Lint", "success", C1);
            other["workflow_run"]["path"] = json!(".github/workflows/lint.yml");
            other
        }),
    ] {
        let (status, body) = deliver(&app, "workflow_run", id, &payload, SECRET).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{id}: {body:?}");
    }
    // A deployment naming its service in its payload (as a JSON string, as some tools send it).
    let mut named = deployment_status(
        7,
        C2,
        "2025-03-10T10:40:00Z",
        "success",
        "2025-03-10T11:00:00Z",
    );
    named["deployment"]["payload"] = json!("{\"service\": \"shop-api\"}");
    let (status, body) = deliver(&app, "deployment_status", "w-4", &named, SECRET).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let stored = app
        .get("/api/v2/dora/deployments/github:1296269:deployment:7")
        .await;
    assert_eq!(
        stored.body["data"]["attributes"]["service"], "shop-api",
        "{:?}",
        stored.body
    );
    // Without --deploy-workflow, runs are not deployments.
    let plain = spawn_app().await;
    make_hook(&plain).await;
    let (status, _) = deliver(
        &plain,
        "workflow_run",
        "w-5",
        &workflow_run(30433645, "Deploy", "success", C1),
        SECRET,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

conformance!(
    workflow_runs_and_named_services_are_deployments_when_asked,
    deliveries_become_the_events_a_client_would_post,
    bad_signatures_store_nothing,
    replays_and_other_events_change_nothing,
    issues_follow_their_incident_label_in_any_order,
);
