//! Change sets, lead times and failure attribution end to end: a real git repository made by
//! the test, imported with `dorametrics import git`, deployments and failures over HTTP, and
//! the explain endpoints' answers checked to the second.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use support::postgres::{server_url, TestDatabase};
use support::{create_token, Server, BIN};

/// 2025-01-01T00:00:00Z
const T0: i64 = 1_735_689_600;
const HOUR: i64 = 3600;

fn git(repo: &Path, args: &[&str], at: i64) -> String {
    let date = format!("{at} +0000");
    let output = Command::new("git")
        .args(args)
        .current_dir(repo)
        .env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_DATE", &date)
        .env("GIT_AUTHOR_NAME", "Dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.com")
        .env("GIT_COMMITTER_NAME", "Dev")
        .env("GIT_COMMITTER_EMAIL", "dev@example.com")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

fn commit(repo: &Path, name: &str, at: i64) -> String {
    std::fs::write(repo.join(name), name).unwrap();
    git(repo, &["add", name], at);
    git(repo, &["commit", "-q", "-m", name], at);
    git(repo, &["rev-parse", "HEAD"], at)
}

fn import(repo: &Path, database: &str) {
    let output = Command::new(BIN)
        .args([
            "import",
            "git",
            repo.to_str().unwrap(),
            "--database",
            database,
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    async fn deploy(&self, id: &str, service: &str, env: &str, sha: &str, finished: i64) {
        let response = self
            .http
            .post(format!("{}/api/v2/dora/deployment", self.base))
            .header("DD-API-KEY", &self.token)
            .json(&json!({"data": {"attributes": {
                "id": id, "service": service, "env": env, "version": &sha[..8],
                "started_at": finished - 60, "finished_at": finished,
                "git": {"repository_url": "https://github.com/acme/shop", "commit_sha": sha}}}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "{:?}", response.text().await);
    }

    async fn fail(&self, id: &str, env: &str, started: i64) {
        let response = self
            .http
            .post(format!("{}/api/v2/dora/failure", self.base))
            .header("DD-API-KEY", &self.token)
            .json(&json!({"data": {"attributes": {
                "id": id, "services": ["shop"], "env": env, "started_at": started,
                "finished_at": started + 900}}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
    }

    async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("DD-API-KEY", &self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        response.json().await.unwrap()
    }

    /// (subject, lead time in seconds) of each commit, and whether there was no baseline.
    async fn changes(&self, id: &str) -> (Vec<(String, f64)>, bool) {
        let body = self.get(&format!("/api/v1/deployments/{id}/changes")).await;
        let mut commits: Vec<(String, f64)> = body["commits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["subject"].as_str().unwrap().to_string(),
                    c["lead_time_seconds"].as_f64().unwrap(),
                )
            })
            .collect();
        commits.sort_by(|a, b| a.0.cmp(&b.0));
        (commits, body["no_baseline"].as_bool().unwrap())
    }

    async fn failure(&self, id: &str) -> Value {
        self.get(&format!("/api/v1/deployments/{id}/failure")).await
    }
}

fn lead(pairs: &[(&str, i64)]) -> Vec<(String, f64)> {
    pairs
        .iter()
        .map(|(s, t)| (s.to_string(), *t as f64))
        .collect()
}

#[tokio::test]
async fn change_sets_lead_times_and_failures_from_a_real_repository_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("explain.db").display());
    scenario(&database).await;
}

#[tokio::test]
async fn change_sets_lead_times_and_failures_from_a_real_repository_postgres() {
    let Some(server) = server_url() else {
        return;
    };
    let database = TestDatabase::create(&server).await;
    scenario(&database.url).await;
}

#[tokio::test]
async fn a_force_push_ships_the_rewritten_commits_only() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("shop");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"], T0);
    git(
        &repo,
        &[
            "remote",
            "add",
            "origin",
            "https://github.com/acme/shop.git",
        ],
        T0,
    );
    commit(&repo, "a1", T0);
    let a2 = commit(&repo, "a2", T0 + HOUR);
    let database = format!("sqlite://{}", dir.path().join("force.db").display());
    import(&repo, &database);
    // History rewritten: a2 replaced by b2 on the same parent, then pushed with force.
    git(&repo, &["reset", "-q", "--hard", "HEAD~1"], T0);
    let b2 = commit(&repo, "b2", T0 + 2 * HOUR);
    let b3 = commit(&repo, "b3", T0 + 3 * HOUR);
    import(&repo, &database);
    let token = create_token(&database, "admin");
    let server = Server::start(&database);
    let client = Client {
        base: server.base.clone(),
        token,
        http: reqwest::Client::new(),
    };
    client
        .deploy(
            "shop-a2-0000000001",
            "shop",
            "production",
            &a2,
            T0 + HOUR + 600,
        )
        .await;
    client
        .deploy(
            "shop-b3-0000000002",
            "shop",
            "production",
            &b3,
            T0 + 4 * HOUR,
        )
        .await;
    assert_eq!(
        client.changes("shop-b3-0000000002").await,
        (lead(&[("b2", 2 * HOUR), ("b3", HOUR)]), false)
    );
    assert_ne!(a2, b2);
}

/// One repository, two services, out-of-order arrival, a rollback, failures in and out of the
/// window: the same answers on every store.
async fn scenario(database: &str) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("shop");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"], T0);
    git(
        &repo,
        &["remote", "add", "origin", "git@github.com:acme/shop.git"],
        T0,
    );
    let c1 = commit(&repo, "c1", T0);
    let c2 = commit(&repo, "c2", T0 + HOUR);
    git(&repo, &["checkout", "-q", "-b", "feature"], T0);
    commit(&repo, "f1", T0 + 2 * HOUR);
    commit(&repo, "f2", T0 + 3 * HOUR);
    git(&repo, &["checkout", "-q", "main"], T0);
    commit(&repo, "c3", T0 + 2 * HOUR + HOUR / 2);
    git(
        &repo,
        &["merge", "-q", "--no-ff", "-m", "merge feature", "feature"],
        T0 + 4 * HOUR,
    );
    let merge = git(&repo, &["rev-parse", "HEAD"], T0);
    let c4 = commit(&repo, "c4", T0 + 5 * HOUR);
    // A squash merge: one commit on main standing for a whole branch.
    let squash = commit(&repo, "squashed feature", T0 + 6 * HOUR);

    let token = create_token(database, "admin");
    let server = Server::start(database);
    let client = Client {
        base: server.base.clone(),
        token,
        http: reqwest::Client::new(),
    };

    // Out of order: the first deployment arrives before its commits.
    client
        .deploy(
            "shop-d1-0000000001",
            "shop",
            "production",
            &c2,
            T0 + HOUR + HOUR / 2,
        )
        .await;
    let early = client
        .get("/api/v1/deployments/shop-d1-0000000001/changes")
        .await;
    assert_eq!(early["commits_missing"], true);
    import(&repo, database);

    client
        .deploy(
            "shop-d2-0000000002",
            "shop",
            "production",
            &merge,
            T0 + 4 * HOUR + HOUR / 2,
        )
        .await;
    client
        .deploy(
            "shop-d3-0000000003",
            "shop",
            "production",
            &c4,
            T0 + 5 * HOUR + HOUR / 2,
        )
        .await;
    client
        .deploy(
            "shop-d4-0000000004",
            "shop",
            "production",
            &merge,
            T0 + 6 * HOUR,
        )
        .await; // rollback
    client
        .deploy(
            "shop-d5-0000000005",
            "shop",
            "production",
            &squash,
            T0 + 7 * HOUR,
        )
        .await;
    // A second service deployed from the same repository has its own change sets.
    client
        .deploy(
            "work-w1-0000000001",
            "worker",
            "production",
            &c4,
            T0 + 5 * HOUR + 12 * 60,
        )
        .await;
    client
        .deploy(
            "work-w2-0000000002",
            "worker",
            "production",
            &squash,
            T0 + 8 * HOUR,
        )
        .await;

    // The first deployment has no baseline: its commits are kept and flagged.
    assert_eq!(
        client.changes("shop-d1-0000000001").await,
        (lead(&[("c1", 5400), ("c2", 1800)]), true)
    );
    // The merge commit is walked through but not counted; exact lead times in seconds.
    assert_eq!(
        client.changes("shop-d2-0000000002").await,
        (lead(&[("c3", 7200), ("f1", 9000), ("f2", 5400)]), false)
    );
    assert_eq!(
        client.changes("shop-d3-0000000003").await,
        (lead(&[("c4", 1800)]), false)
    );
    // The rollback ships nothing new; the next deployment does not re-count c4.
    assert_eq!(client.changes("shop-d4-0000000004").await, (vec![], false));
    assert_eq!(
        client.changes("shop-d5-0000000005").await,
        (lead(&[("squashed feature", 3600)]), false)
    );
    assert_eq!(
        client.changes("work-w2-0000000002").await,
        (lead(&[("squashed feature", 7200)]), false)
    );

    // Rollback: d3 failed, d4 remediated it after 30 minutes and is rework.
    let d3 = client.failure("shop-d3-0000000003").await;
    assert_eq!(d3["failed"], true);
    assert_eq!(d3["rule"], "rollback");
    assert_eq!(d3["evidence"]["rolled_back_by"], "shop-d4-0000000004");
    assert_eq!(
        d3["remediation"],
        json!({"deployment_id": "shop-d4-0000000004", "type": "rollback", "recovery_time_seconds": 1800.0})
    );
    let d4 = client.failure("shop-d4-0000000004").await;
    assert_eq!(
        (d4["failed"].clone(), d4["rework"].clone()),
        (json!(false), json!(true))
    );

    // A failure within the window blames the latest deployment before it, and only that one.
    client
        .fail(
            "incident-0000000001",
            "production",
            T0 + 7 * HOUR + HOUR / 2,
        )
        .await;
    let d5 = client.failure("shop-d5-0000000005").await;
    assert_eq!(d5["failed"], true);
    assert_eq!(d5["rule"], "failure_window");
    assert_eq!(d5["evidence"]["failures"][0]["id"], "incident-0000000001");
    assert_eq!(client.failure("shop-d2-0000000002").await["failed"], false);
    // Negative cases: another env, and outside the window.
    client
        .fail("incident-0000000002", "staging", T0 + 7 * HOUR + HOUR / 2)
        .await;
    client
        .fail("incident-0000000003", "production", T0 + 40 * HOUR)
        .await;
    let d5 = client.failure("shop-d5-0000000005").await;
    assert_eq!(d5["evidence"]["failures"].as_array().unwrap().len(), 1);

    // A backfilled older deployment becomes the baseline of the first one.
    client
        .deploy(
            "shop-d0-0000000000",
            "shop",
            "production",
            &c1,
            T0 + HOUR / 2,
        )
        .await;
    assert_eq!(
        client.changes("shop-d0-0000000000").await,
        (lead(&[("c1", 1800)]), true)
    );
    assert_eq!(
        client.changes("shop-d1-0000000001").await,
        (lead(&[("c2", 1800)]), false)
    );
}
