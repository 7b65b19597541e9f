//! GitLab deliveries, shaped as GitLab's webhook events page documents them, with its secret
//! token or its signing token: the events they become, and metrics exactly as if posted by hand.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

const SECRET: &str = "gitlab-secret-token-0001";
const C0: &str = "d10bd1c3e5f7091b2d4f6a8c0e1f3a5b7c9d0e2f";
const C1: &str = "e21ce2d4f6081a2c3e5f7b9d1f2a4b6c8d0e1f3a";
const C2: &str = "f32df3e5071a2b3d4f6081ace2f3b5c7d9e1f2a4";
const ZERO: &str = "0000000000000000000000000000000000000000";

fn project() -> Value {
    json!({
        "id": 15,
        "name": "shop",
        "description": "",
        "web_url": "https://gitlab.example.com/acme/shop",
        "avatar_url": null,
        "git_ssh_url": "git@gitlab.example.com:acme/shop.git",
        "git_http_url": "https://gitlab.example.com/acme/shop.git",
        "namespace": "acme",
        "visibility_level": 0,
        "path_with_namespace": "acme/shop",
        "default_branch": "main",
        "ci_config_path": "",
        "homepage": "https://gitlab.example.com/acme/shop",
        "url": "git@gitlab.example.com:acme/shop.git",
        "ssh_url": "git@gitlab.example.com:acme/shop.git",
        "http_url": "https://gitlab.example.com/acme/shop.git"
    })
}

fn user() -> Value {
    json!({"id": 1, "name": "Administrator", "username": "root",
           "avatar_url": "https://gitlab.example.com/uploads/-/system/user/avatar/1/avatar.png",
           "email": "admin@example.com"})
}

fn push(before: &str, commits: &[(&str, &str, &str)], total: usize) -> Value {
    let listed: Vec<Value> = commits
        .iter()
        .map(|(sha, at, message)| {
            json!({
                "id": sha,
                "message": message,
                "title": message.lines().next().unwrap(),
                "timestamp": at,
                "url": format!("https://gitlab.example.com/acme/shop/-/commit/{sha}"),
                "author": {"name": "Jordi Mallach", "email": "jordi@example.com"},
                "added": ["CHANGELOG"], "modified": ["app/controller/application.rb"], "removed": []
            })
        })
        .collect();
    json!({
        "object_kind": "push",
        "event_name": "push",
        "before": before,
        "after": commits.last().map_or(ZERO, |c| c.0),
        "ref": "refs/heads/main",
        "ref_protected": true,
        "checkout_sha": commits.last().map_or(ZERO, |c| c.0),
        "user_id": 4,
        "user_name": "John Smith",
        "user_username": "jsmith",
        "user_email": "john@example.com",
        "project_id": 15,
        "project": project(),
        "commits": listed,
        "total_commits_count": total,
        "repository": {"name": "shop", "url": "git@gitlab.example.com:acme/shop.git",
                       "homepage": "https://gitlab.example.com/acme/shop"}
    })
}

fn deployment(id: i64, status: &str, at: &str, sha: &str) -> Value {
    json!({
        "object_kind": "deployment",
        "status": status,
        "status_changed_at": at,
        "deployment_id": id,
        "deployable_id": 796 + id,
        "deployable_url": format!("https://gitlab.example.com/acme/shop/-/jobs/{}", 796 + id),
        "environment": "main-cluster",
        "environment_tier": "production",
        "environment_slug": "main-cluster",
        "environment_external_url": "https://shop.example.com",
        "project": project(),
        "short_sha": &sha[..8],
        "user": user(),
        "user_url": "https://gitlab.example.com/root",
        "commit_url": format!("https://gitlab.example.com/acme/shop/-/commit/{sha}"),
        "commit_title": "Add the cart",
        "ref": "main"
    })
}

fn merge(iid: i64, sha: &str, created: &str, merged: &str) -> Value {
    json!({
        "object_kind": "merge_request",
        "event_type": "merge_request",
        "user": user(),
        "project": project(),
        "object_attributes": {
            "id": 99,
            "iid": iid,
            "target_branch": "main",
            "source_branch": "cents",
            "title": "Cart totals in cents",
            "created_at": created,
            "updated_at": merged,
            "merged_at": merged,
            "state": "merged",
            "merge_status": "can_be_merged",
            "merge_commit_sha": sha,
            "squash_commit_sha": null,
            "url": format!("https://gitlab.example.com/acme/shop/-/merge_requests/{iid}"),
            "action": "merge"
        },
        "labels": [],
        "changes": {},
        "repository": {"name": "shop", "url": "git@gitlab.example.com:acme/shop.git"}
    })
}

fn incident(state: &str, created: &str, closed: Option<&str>, updated: &str) -> Value {
    json!({
        "object_kind": "issue",
        "event_type": "issue",
        "user": user(),
        "project": project(),
        "object_attributes": {
            "id": 301,
            "iid": 23,
            "title": "Checkout answers 500",
            "type": "Incident",
            "issue_type": "incident",
            "severity": "high",
            "state": state,
            "created_at": created,
            "updated_at": updated,
            "closed_at": closed,
            "url": "https://gitlab.example.com/acme/shop/-/issues/23",
            "action": if closed.is_some() { "close" } else { "open" }
        },
        "labels": [],
        "repository": {"name": "shop", "url": "git@gitlab.example.com:acme/shop.git"}
    })
}

/// Delivers as GitLab does, with its secret token.
async fn deliver(
    app: &TestApp,
    event: &str,
    uuid: &str,
    payload: &Value,
    token: &str,
) -> (StatusCode, Value) {
    let headers = [
        ("User-Agent", "GitLab/17.11.1-ee".to_string()),
        ("X-Gitlab-Event", event.to_string()),
        ("X-Gitlab-Event-UUID", uuid.to_string()),
        (
            "X-Gitlab-Instance",
            "https://gitlab.example.com".to_string(),
        ),
        ("X-Gitlab-Token", token.to_string()),
    ];
    app.deliver("gitlab", &headers, serde_json::to_vec(payload).unwrap())
        .await
}

async fn deliveries_become_the_events_a_client_would_post() {
    let app = spawn_app().await;
    app.make_hook("gitlab", "acme-gitlab", SECRET, json!({}))
        .await;
    let ok = |(status, body): (StatusCode, Value)| {
        assert_eq!(status, StatusCode::OK, "{body:?}");
        body
    };
    ok(deliver(
        &app,
        "Push Hook",
        "u-1",
        &push(ZERO, &[(C0, "2025-03-10T07:00:00+00:00", "Start")], 1),
        SECRET,
    )
    .await);
    ok(deliver(
        &app,
        "Deployment Hook",
        "u-2",
        &deployment(1, "running", "2025-03-10 07:20:00 UTC", C0),
        SECRET,
    )
    .await);
    ok(deliver(
        &app,
        "Deployment Hook",
        "u-3",
        &deployment(1, "success", "2025-03-10 08:30:00 +0100", C0),
        SECRET,
    )
    .await);
    ok(deliver(
        &app,
        "Merge Request Hook",
        "u-4",
        &merge(7, C2, "2025-03-10 08:00:00 UTC", "2025-03-10 10:00:00 UTC"),
        SECRET,
    )
    .await);
    let pushed = push(
        C0,
        &[
            (C1, "2025-03-10T09:00:00+01:00", "Cart totals in cents"),
            (
                C2,
                "2025-03-10T10:00:00+00:00",
                "Merge branch 'cents' into 'main'",
            ),
        ],
        2,
    );
    ok(deliver(&app, "Push Hook", "u-5", &pushed, SECRET).await);
    // The success comes before the running: the start still follows.
    ok(deliver(
        &app,
        "Deployment Hook",
        "u-6",
        &deployment(2, "success", "2025-03-10 11:00:00 UTC", C2),
        SECRET,
    )
    .await);
    ok(deliver(
        &app,
        "Deployment Hook",
        "u-7",
        &deployment(2, "running", "2025-03-10 10:40:00 UTC", C2),
        SECRET,
    )
    .await);
    ok(deliver(
        &app,
        "Issue Hook",
        "u-8",
        &incident(
            "opened",
            "2025-03-10 11:30:00 UTC",
            None,
            "2025-03-10 11:30:00 UTC",
        ),
        SECRET,
    )
    .await);
    ok(deliver(
        &app,
        "Issue Hook",
        "u-9",
        &incident(
            "closed",
            "2025-03-10 11:30:00 UTC",
            Some("2025-03-10 12:30:00 UTC"),
            "2025-03-10 12:30:00 UTC",
        ),
        SECRET,
    )
    .await);
    let second = app
        .get("/api/v2/dora/deployments/gitlab:15:deployment:2")
        .await;
    assert_eq!(
        second.body["data"]["attributes"]["started_at"], "2025-03-10T10:40:00Z",
        "{:?}",
        second.body
    );

    let by_hand = spawn_app().await;
    let commit = |sha: &str, parents: &[&str], at: &str, subject: &str| {
        json!({"repository_url": "https://gitlab.example.com/acme/shop", "sha": sha,
               "parents": parents, "authored_at": at, "committed_at": at,
               "author": "Jordi Mallach <jordi@example.com>", "subject": subject})
    };
    let mut merged = commit(
        C2,
        &[C1],
        "2025-03-10T10:00:00Z",
        "Merge branch 'cents' into 'main'",
    );
    merged["merge_request"] = json!({"number": 7, "created_at": "2025-03-10T08:00:00Z", "merged_at": "2025-03-10T10:00:00Z"});
    let reply = by_hand
        .post(
            "/api/v1/commits",
            json!([
                commit(C0, &[], "2025-03-10T07:00:00Z", "Start"),
                commit(C1, &[C0], "2025-03-10T08:00:00Z", "Cart totals in cents"),
                merged,
            ]),
        )
        .await;
    assert!(reply.status.is_success(), "{:?}", reply.body);
    for (id, sha, started, finished) in [
        (
            "gitlab:15:deployment:1",
            C0,
            "2025-03-10T07:20:00Z",
            "2025-03-10T07:30:00Z",
        ),
        (
            "gitlab:15:deployment:2",
            C2,
            "2025-03-10T10:40:00Z",
            "2025-03-10T11:00:00Z",
        ),
    ] {
        by_hand
            .deploy(json!({"id": id, "service": "shop", "env": "main-cluster",
                "custom_tags": ["deployment_tier:production"],
                "started_at": started, "finished_at": finished,
                "git": {"repository_url": "https://gitlab.example.com/acme/shop", "commit_sha": sha}}))
            .await;
    }
    by_hand
        .fail(
            json!({"id": "gitlab:15:issue:23", "name": "Checkout answers 500",
            "services": ["shop"], "severity": "high", "started_at": "2025-03-10T11:30:00Z",
            "finished_at": "2025-03-10T12:30:00Z"}),
        )
        .await;
    let (got, expected) = (
        app.shop_march_totals().await,
        by_hand.shop_march_totals().await,
    );
    assert_eq!(got, expected);
    // GitLab's tier counts the deployments to "main-cluster" as production (the default tier).
    assert_eq!(got["deployments"], 2, "{got:?}");
    assert_eq!(got["failed_deployments"], 1, "{got:?}");
    assert_eq!(got["merge_lead_time_seconds"]["median"], 3600.0, "{got:?}");
    assert_eq!(got["time_to_restore_seconds"]["median"], 3600.0, "{got:?}");

    // The project answers to GitLab's own id (15) as to its path.
    let query = "dora/metrics?metric=deployment_frequency&start_date=2025-03-01&end_date=2025-03-31&interval=all";
    let by_id = app.get(&format!("/api/v4/projects/15/{query}")).await;
    let by_path = app
        .get(&format!("/api/v4/projects/acme%2Fshop/{query}"))
        .await;
    assert_eq!(by_id.status, StatusCode::OK, "{:?}", by_id.body);
    assert_eq!(by_id.body, by_path.body);
    assert_eq!(
        by_hand
            .get(&format!("/api/v4/projects/15/{query}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

async fn tokens_signatures_and_truncated_pushes() {
    let app = spawn_app().await;
    app.make_hook("gitlab", "acme-gitlab", SECRET, json!({}))
        .await;
    let payload = deployment(1, "success", "2025-03-10 08:30:00 UTC", C0);
    let (status, body) = deliver(&app, "Deployment Hook", "t-1", &payload, "not the token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body:?}");
    assert!(body.to_string().contains("x-gitlab-token"), "{body}");
    // GitLab's signing token (Standard Webhooks) verifies too.
    let body = serde_json::to_vec(&payload).unwrap();
    let now = dora_core::time::now() / 1_000_000_000;
    let signature = dora_server::webhooks::verify::sign::standard("t-2", now, &body, SECRET);
    let signed = app
        .client
        .post(format!("{}/api/v1/webhooks/gitlab", app.base))
        .header("X-Gitlab-Event", "Deployment Hook")
        .header("Idempotency-Key", "t-2")
        .header("webhook-id", "t-2")
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", signature)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), StatusCode::OK);
    // The same delivery again (its Idempotency-Key): a replay.
    let again = app
        .client
        .post(format!("{}/api/v1/webhooks/gitlab", app.base))
        .header("X-Gitlab-Event", "Deployment Hook")
        .header("Idempotency-Key", "t-2")
        .header("X-Gitlab-Token", SECRET)
        .body(body)
        .send()
        .await
        .unwrap();
    let answer: Value = again.json().await.unwrap();
    assert_eq!(answer["outcome"], "replayed");
    // A push listing 20 of its 25 commits: not stored, said why.
    let many: Vec<(String, String, String)> = (0..20)
        .map(|i| {
            (
                format!("{i:040x}"),
                "2025-03-10T09:00:00Z".to_string(),
                format!("change {i}"),
            )
        })
        .collect();
    let many: Vec<(&str, &str, &str)> = many
        .iter()
        .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
        .collect();
    let (status, body) = deliver(&app, "Push Hook", "t-3", &push(C0, &many, 25), SECRET).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body:?}");
    assert!(
        body["detail"].as_str().unwrap().contains("20 of its 25"),
        "{body:?}"
    );
    assert!(app
        .store
        .commits_of("gitlab.example.com/acme/shop")
        .await
        .unwrap()
        .is_empty());
    // An issue that is not an incident, a failed deployment: ignored.
    let mut plain = incident(
        "opened",
        "2025-03-10 11:30:00 UTC",
        None,
        "2025-03-10 11:30:00 UTC",
    );
    plain["object_attributes"]["type"] = json!("Issue");
    plain["object_attributes"]["issue_type"] = json!("issue");
    let (status, _) = deliver(&app, "Issue Hook", "t-4", &plain, SECRET).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let failed = deployment(3, "failed", "2025-03-10 09:30:00 UTC", C0);
    let (status, _) = deliver(&app, "Deployment Hook", "t-5", &failed, SECRET).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // A time GitLab never writes is a precise 400.
    let bad = deployment(4, "success", "10/03/2025", C0);
    let (status, body) = deliver(&app, "Deployment Hook", "t-6", &bad, SECRET).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
    assert_eq!(body["errors"][0]["source"]["pointer"], "/status_changed_at");
}

conformance!(
    deliveries_become_the_events_a_client_would_post,
    tokens_signatures_and_truncated_pushes,
);
