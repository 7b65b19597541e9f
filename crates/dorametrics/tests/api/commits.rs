//! `POST /api/v1/commits` (NDJSON or a JSON array, all or nothing) and
//! `POST /api/v1/commits/known`.

use dora_core::model::{Commit, MergeRequest};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{deployment, spawn_app, TestApp};

const REPO: &str = "github.com/acme/shop";
/// 2025-01-01T00:00:00Z.
const EPOCH: i64 = 1_735_689_600;
const NDJSON: &str = "application/x-ndjson";

fn sha(n: usize) -> String {
    format!("{n:040x}")
}

/// Commit `n` (committed `n` minutes after 2025-01-01) with these parents.
fn commit(n: usize, parents: &[usize]) -> Value {
    let parents: Vec<String> = parents.iter().map(|p| sha(*p)).collect();
    json!({
        "repository_id": REPO,
        "sha": sha(n),
        "parents": parents,
        "authored_at": EPOCH + n as i64 * 60 - 30,
        "committed_at": EPOCH + n as i64 * 60,
        "author": "Ada <ada@example.com>",
        "subject": format!("change {n}"),
    })
}

fn ndjson(commits: &[Value]) -> String {
    commits.iter().map(|c| format!("{c}\n")).collect()
}

async fn push(app: &TestApp, token: &str, content_type: &str, body: String) -> (StatusCode, Value) {
    app.post_raw("/api/v1/commits", token, content_type, body)
        .await
}

/// `(pointer, detail)` of the first JSON:API error.
fn problem(body: &Value) -> (&str, &str) {
    let error = &body["errors"][0];
    (
        error["source"]["pointer"].as_str().unwrap_or(""),
        error["detail"].as_str().unwrap_or(""),
    )
}

async fn stored(app: &TestApp) -> Vec<Commit> {
    let mut commits = app.store.commits_of(REPO).await.unwrap();
    commits.sort_by(|a, b| a.sha.cmp(&b.sha));
    commits
}

async fn commits_arrive_as_ndjson_or_as_an_array_and_repeats_are_not_new() {
    let app = spawn_app().await;
    let history = [commit(1, &[]), commit(2, &[1]), commit(3, &[1])];
    let (status, body) = push(&app, &app.write, NDJSON, ndjson(&history)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"received": 3, "new": 3}));

    let merge = commit(4, &[2, 3]);
    let again = json!([history[1], history[2], merge]);
    let (status, body) = push(&app, &app.write, "application/json", again.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"received": 3, "new": 1}));

    let commits = stored(&app).await;
    assert_eq!(commits.len(), 4);
    assert_eq!(
        commits[3],
        Commit {
            repository_id: REPO.into(),
            sha: sha(4),
            parents: vec![sha(2), sha(3)],
            authored_at: (EPOCH + 4 * 60 - 30) * 1_000_000_000,
            committed_at: (EPOCH + 4 * 60) * 1_000_000_000,
            author: Some("Ada <ada@example.com>".into()),
            subject: Some("change 4".into()),
            merge_request: None,
        }
    );
    assert!(commits[3].is_merge());
}

async fn times_merge_requests_and_shas_are_read_like_the_datadog_intake() {
    let app = spawn_app().await;
    let mut first = commit(1, &[]);
    first["sha"] = json!(sha(1).to_uppercase());
    first["authored_at"] = json!("2025-01-01T01:00:00+01:00");
    first["committed_at"] = json!(1_735_689_660_123_i64); // milliseconds
    first["merge_request"] =
        json!({"number": 7, "created_at": 1_735_000_000, "merged_at": "2025-01-01T00:02:00Z"});
    let (status, body) = push(&app, &app.write, NDJSON, ndjson(&[first])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let commit = &stored(&app).await[0];
    assert_eq!(commit.sha, sha(1));
    assert_eq!(commit.authored_at, EPOCH * 1_000_000_000);
    assert_eq!(commit.committed_at, 1_735_689_660_123_000_000);
    assert_eq!(
        commit.merge_request,
        Some(MergeRequest {
            number: 7,
            created_at: Some(1_735_000_000_000_000_000),
            merged_at: Some((EPOCH + 120) * 1_000_000_000),
        })
    );
}

async fn merge_request_facts_reach_commits_already_stored() {
    let app = spawn_app().await;
    push(&app, &app.write, NDJSON, ndjson(&[commit(1, &[])])).await;
    let mut with_mr = commit(1, &[]);
    with_mr["merge_request"] = json!({"number": 12});
    let (status, body) = push(&app, &app.write, NDJSON, ndjson(&[with_mr])).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"received": 1, "new": 0}))
    );
    assert_eq!(
        stored(&app).await[0]
            .merge_request
            .as_ref()
            .map(|mr| mr.number),
        Some(12)
    );
}

async fn one_invalid_commit_rejects_the_whole_request() {
    let app = spawn_app().await;
    let mut commits: Vec<Value> = (1..=5).map(|n| commit(n, &[])).collect();
    commits[3]["sha"] = json!("not-a-sha");
    let (status, body) = push(
        &app,
        &app.write,
        "application/json",
        json!(commits).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        problem(&body),
        (
            "/3/sha",
            "commit [3]: sha must be at least 40 hex digits, got 9 characters"
        )
    );

    commits[3] = commit(4, &[]);
    commits[2]["parents"] = json!([sha(1), 5]);
    let (status, body) = push(&app, &app.write, NDJSON, ndjson(&commits)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        problem(&body),
        (
            "/2/parents/1",
            "line 3: parents[1] must be a string, got a number"
        )
    );

    let (status, body) = push(
        &app,
        &app.write,
        NDJSON,
        format!("{}\n{{oops\n", commit(1, &[])),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(problem(&body).0, "/1");
    assert!(
        problem(&body).1.starts_with("line 2 is not valid JSON"),
        "{body}"
    );

    let (status, body) = push(
        &app,
        &app.write,
        "application/json",
        commit(1, &[]).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        problem(&body).1.contains("must be a JSON array of commits"),
        "{body}"
    );

    let (status, _) = push(&app, &app.write, NDJSON, "\n \n".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(stored(&app).await.is_empty(), "nothing may be written");
}

async fn every_spelling_of_the_repository_meets_the_deployments_id() {
    let app = spawn_app().await;
    let mut by_url = commit(1, &[]);
    by_url.as_object_mut().unwrap().remove("repository_id");
    by_url["repository_url"] = json!("https://ci:token@GitHub.com/acme/shop.git");
    let mut by_ssh = commit(2, &[1]);
    by_ssh["repository_id"] = json!("git@github.com:acme/shop.git");
    let (status, body) = push(&app, &app.write, NDJSON, ndjson(&[by_url, by_ssh])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(stored(&app).await.len(), 2);

    let mut attributes = deployment("shop", "production", 10);
    attributes["git"] =
        json!({"repository_url": "https://github.com/acme/shop", "commit_sha": sha(2)});
    let id = app.deploy(attributes).await;
    let deployed = app.store.get_deployment(&id).await.unwrap().unwrap();
    let git = deployed.deployment.git.unwrap();
    let commits = app.store.commits_of(&git.repository_id).await.unwrap();
    assert!(commits.iter().any(|c| c.sha == git.commit_sha));
}

async fn known_answers_which_shas_are_stored() {
    let app = spawn_app().await;
    push(
        &app,
        &app.write,
        NDJSON,
        ndjson(&[commit(1, &[]), commit(2, &[1])]),
    )
    .await;
    let ask =
        |shas: Value| json!({"repository_id": "https://github.com/acme/shop.git", "shas": shas});
    let reply = app
        .call(
            Method::POST,
            "/api/v1/commits/known",
            Some(&app.read),
            Some(ask(json!([sha(2).to_uppercase(), sha(3), sha(1)]))),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let mut known: Vec<String> = serde_json::from_value(reply.body["known"].clone()).unwrap();
    known.sort();
    assert_eq!(known, vec![sha(1), sha(2)]);

    // Another repository knows none of them.
    let other = json!({"repository_id": "github.com/acme/other", "shas": [sha(1)]});
    let reply = app.post("/api/v1/commits/known", other).await;
    assert_eq!(reply.body, json!({"known": []}));

    let reply = app
        .post("/api/v1/commits/known", ask(json!([sha(1), "xyz"])))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.problem().0, "/shas/1");
    let reply = app.post("/api/v1/commits/known", json!({"shas": []})).await;
    assert_eq!(reply.problem().0, "/repository_id");
    let reply = app
        .post("/api/v1/commits/known", json!({"repository_id": REPO}))
        .await;
    assert_eq!(reply.problem().0, "/shas");
    let too_many: Vec<String> = (0..10_001).map(sha).collect();
    let reply = app
        .post("/api/v1/commits/known", ask(json!(too_many)))
        .await;
    assert_eq!(reply.problem().0, "/shas");
}

async fn pushing_needs_write_and_asking_needs_read_or_write() {
    let app = spawn_app().await;
    let body = ndjson(&[commit(1, &[])]);
    assert_eq!(
        push(&app, "dora_wrong", NDJSON, body.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, answer) = push(&app, &app.read, NDJSON, body.clone()).await;
    assert_eq!(
        (status, answer),
        (StatusCode::FORBIDDEN, json!({"errors": ["Forbidden"]}))
    );
    assert_eq!(push(&app, &app.write, NDJSON, body).await.0, StatusCode::OK);
    let ask = json!({"repository_id": REPO, "shas": [sha(1)]});
    for token in [&app.read, &app.write, &app.admin] {
        let reply = app
            .call(
                Method::POST,
                "/api/v1/commits/known",
                Some(token),
                Some(ask.clone()),
            )
            .await;
        assert_eq!(reply.body, json!({"known": [sha(1)]}));
    }
    let reply = app
        .call(Method::POST, "/api/v1/commits/known", None, Some(ask))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

async fn histories_larger_than_other_bodies_are_accepted_up_to_64_mib() {
    let app = spawn_app().await;
    // About 2 MiB: over the 1 MiB limit of the other endpoints.
    let history: Vec<Value> = (1..=5000)
        .map(|n| {
            let mut c = commit(n, &[n - 1]);
            c["subject"] = json!("x".repeat(200));
            c
        })
        .collect();
    let body = ndjson(&history);
    assert!(body.len() > 1024 * 1024);
    let (status, answer) = push(&app, &app.write, NDJSON, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!({"received": 5000, "new": 5000}));

    let (status, _) = push(&app, &app.write, NDJSON, " ".repeat(64 * 1024 * 1024 + 1)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

/// A batch naming a sha twice stores it once, numbered in arrival order with the others; merge
/// request facts the repeat carries reach it, as if the two had come one after the other.
async fn a_sha_twice_in_one_batch_is_one_commit_with_the_later_facts() {
    let app = spawn_app().await;
    let mut repeat = commit(2, &[1]);
    repeat["merge_request"] = json!({"number": 9, "created_at": 1_735_000_000});
    let batch = [commit(1, &[]), commit(2, &[1]), repeat, commit(3, &[2])];
    let (status, body) = push(&app, &app.write, NDJSON, ndjson(&batch)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"received": 4, "new": 3}));
    let mut numbered = app.store.commit_graph(REPO).await.unwrap();
    numbered.sort_by_key(|(_, ordinal)| *ordinal);
    let order: Vec<(String, u32)> = numbered
        .iter()
        .map(|(c, ordinal)| (c.sha.clone(), *ordinal))
        .collect();
    assert_eq!(order, [(sha(1), 0), (sha(2), 1), (sha(3), 2)]);
    assert_eq!(
        numbered[1].0.merge_request,
        Some(MergeRequest {
            number: 9,
            created_at: Some(1_735_000_000_000_000_000),
            merged_at: None,
        })
    );
    // The next batch goes on from there.
    let (status, _) = push(&app, &app.write, NDJSON, ndjson(&[commit(4, &[3])])).await;
    assert_eq!(status, StatusCode::OK);
    let numbered = app.store.commit_graph(REPO).await.unwrap();
    let fourth = numbered.iter().find(|(c, _)| c.sha == sha(4)).unwrap();
    assert_eq!(fourth.1, 3);
}

/// A commit as a push lists it: its parent implied by the push's order.
fn pushed(n: usize, implied_parent: usize) -> Commit {
    Commit {
        repository_id: REPO.into(),
        sha: sha(n),
        parents: vec![sha(implied_parent)],
        authored_at: (EPOCH + n as i64 * 60) * 1_000_000_000,
        committed_at: (EPOCH + n as i64 * 60) * 1_000_000_000,
        author: None,
        subject: None,
        merge_request: None,
    }
}

async fn parents_a_push_implied_give_way_to_the_true_ones() {
    let app = spawn_app().await;
    // A push listed 3 right after 1 (2 came in another way): 3's parent is implied to be 1.
    let (status, _) = push(&app, &app.write, NDJSON, ndjson(&[commit(1, &[])])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.store
            .put_pushed_commits(vec![pushed(3, 1)])
            .await
            .unwrap(),
        1
    );
    for (n, at) in [(1, 1800), (3, 3600)] {
        app.deploy(
            json!({"service": "shop", "env": "prod", "started_at": EPOCH + at,
            "finished_at": EPOCH + at + 100,
            "git": {"repository_url": "https://github.com/acme/shop", "commit_sha": sha(n)}}),
        )
        .await;
    }
    // The second deployment ships 3 alone: its implied parent is the first's commit.
    let metrics = app
        .get("/api/v1/metrics?from=2025-01-01&to=2025-01-01&interval=all")
        .await;
    assert_eq!(
        metrics.body["totals"]["lead_time_seconds"]["count"], 1,
        "{:?}",
        metrics.body["totals"]
    );
    // Pushed again: still implied, nothing changes.
    assert_eq!(
        app.store
            .put_pushed_commits(vec![pushed(3, 1)])
            .await
            .unwrap(),
        0
    );
    // The true history: 1, 2, 3.
    let batch = [commit(2, &[1]), commit(3, &[2])];
    let (status, body) = push(&app, &app.write, NDJSON, ndjson(&batch)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let three = stored(&app)
        .await
        .into_iter()
        .find(|c| c.sha == sha(3))
        .unwrap();
    assert_eq!(three.parents, [sha(2)]);
    // The change set re-derived: the second deployment ships 2 and 3 now.
    let metrics = app
        .get("/api/v1/metrics?from=2025-01-01&to=2025-01-01&interval=all")
        .await;
    assert_eq!(
        metrics.body["totals"]["lead_time_seconds"]["count"], 2,
        "{:?}",
        metrics.body["totals"]
    );
    // True parents are never replaced by implied ones.
    app.store
        .put_pushed_commits(vec![pushed(3, 2)])
        .await
        .unwrap();
    let three = stored(&app)
        .await
        .into_iter()
        .find(|c| c.sha == sha(3))
        .unwrap();
    assert_eq!(three.parents, [sha(2)]);
}

conformance!(
    parents_a_push_implied_give_way_to_the_true_ones,
    commits_arrive_as_ndjson_or_as_an_array_and_repeats_are_not_new,
    times_merge_requests_and_shas_are_read_like_the_datadog_intake,
    merge_request_facts_reach_commits_already_stored,
    one_invalid_commit_rejects_the_whole_request,
    every_spelling_of_the_repository_meets_the_deployments_id,
    known_answers_which_shas_are_stored,
    pushing_needs_write_and_asking_needs_read_or_write,
    histories_larger_than_other_bodies_are_accepted_up_to_64_mib,
    a_sha_twice_in_one_batch_is_one_commit_with_the_later_facts,
);
