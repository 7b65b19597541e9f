//! The GitLab-compatible API (`/api/v4/…/dora/metrics` and the legacy
//! `…/analytics/deployment_frequency`): every parameter form, GitLab's error shapes, the range
//! limits at their boundaries, project and group addressing, restricted tokens, and exact numbers
//! on a small hand-built dataset.
//!
//! The dataset (2025-01-01 … 2025-01-05, UTC):
//!
//! | day   | acme/shop, env `production` (sha) | elsewhere |
//! |-------|-----------------------------------|-----------|
//! | 01-01 | D0 12:00 (c1, first: no baseline) | |
//! | 01-02 | D1 12:00 (c3: ships c2, c3), D2 18:00 (c4) | shop `staging` |
//! | 01-03 | | shop `nonprod` (staging tier), acme/platform/api `prod-eu` |
//! | 01-04 | | shop-canary `production` tagged `deployment_tier:testing`, billing `production` (no git) |
//! | 01-05 | D3 10:00 (c5), failed: a failure 11:00–12:30 | |
//!
//! Lead times: c2 7200 s, c3 3600 s (D1), c4 14400 s (D2), c5 86400 s (D3).

use chrono::{Months, NaiveDate};
use dora_core::metrics::day_of;
use dora_core::model::{Commit, Scope};
use dora_core::project::numeric_id;
use dora_server::auth::issue_token;
use dora_store::Restriction;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

conformance!(
    metric_values_on_a_hand_built_dataset,
    every_environment_tier_encoding,
    validation_errors_and_defaults,
    legacy_deployment_frequency,
    the_token_matrix,
);

const SHOP: &str = "github.com/acme/shop";

fn sha(n: u8) -> String {
    format!("{n:x}").repeat(40)
}

/// Nanoseconds of 2025-01-DD at HH:MM UTC.
fn at(day: i64, hour: i64, minute: i64) -> i64 {
    (1_735_689_600 + (day - 1) * 86_400 + hour * 3600 + minute * 60) * 1_000_000_000
}

fn rfc3339(nanos: i64) -> String {
    dora_core::time::to_rfc3339(nanos)
}

async fn deploy(app: &TestApp, service: &str, env: &str, finished: i64, git: Option<(&str, u8)>) {
    deploy_tagged(app, service, env, finished, git, &[]).await;
}

async fn deploy_tagged(
    app: &TestApp,
    service: &str,
    env: &str,
    finished: i64,
    git: Option<(&str, u8)>,
    tags: &[&str],
) {
    let mut attributes = json!({
        "service": service, "env": env, "custom_tags": tags,
        "started_at": rfc3339(finished - 300_000_000_000), "finished_at": rfc3339(finished),
    });
    if let Some((repository, n)) = git {
        attributes["git"] =
            json!({"repository_url": format!("https://{repository}"), "commit_sha": sha(n)});
    }
    app.deploy(attributes).await;
}

/// The dataset of the module documentation.
async fn seed(app: &TestApp) {
    let commits = [
        (1, None, at(0, 12, 0)),
        (2, Some(1), at(2, 10, 0)),
        (3, Some(2), at(2, 11, 0)),
        (4, Some(3), at(2, 14, 0)),
        (5, Some(4), at(4, 10, 0)),
    ];
    let commits = commits
        .iter()
        .map(|&(n, parent, committed_at)| Commit {
            repository_id: SHOP.into(),
            sha: sha(n),
            parents: parent.map(sha).into_iter().collect(),
            authored_at: committed_at,
            committed_at,
            author: None,
            subject: Some(format!("change {n}")),
            merge_request: None,
        })
        .collect();
    app.store.put_commits(commits).await.unwrap();
    deploy(app, "shop", "production", at(1, 12, 0), Some((SHOP, 1))).await;
    deploy(app, "shop", "production", at(2, 12, 0), Some((SHOP, 3))).await;
    deploy(app, "shop", "production", at(2, 18, 0), Some((SHOP, 4))).await;
    deploy(app, "shop", "production", at(5, 10, 0), Some((SHOP, 5))).await;
    deploy(app, "shop", "staging", at(2, 13, 0), Some((SHOP, 3))).await;
    deploy(app, "shop", "nonprod", at(3, 9, 0), Some((SHOP, 4))).await;
    let api = Some(("github.com/acme/platform/api", 10));
    deploy(app, "api", "prod-eu", at(3, 15, 0), api).await;
    let canary = Some((SHOP, 4));
    let testing = ["deployment_tier:testing"];
    deploy_tagged(
        app,
        "shop-canary",
        "production",
        at(4, 8, 0),
        canary,
        &testing,
    )
    .await;
    deploy(app, "billing", "production", at(4, 9, 0), None).await;
    app.fail(json!({
        "name": "Checkout errors", "services": ["shop"], "env": "production",
        "started_at": rfc3339(at(5, 11, 0)), "finished_at": rfc3339(at(5, 12, 30)),
    }))
    .await;
}

/// A GET with the token in GitLab's `PRIVATE-TOKEN` header (or none).
async fn get(app: &TestApp, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    get_with(app, path, token.map(|t| ("PRIVATE-TOKEN", t))).await
}

async fn get_with(app: &TestApp, path: &str, header: Option<(&str, &str)>) -> (StatusCode, Value) {
    let mut request = app.client.get(format!("{}{path}", app.base));
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(content_type.as_deref(), Some("application/json"), "{path}");
    (status, response.json().await.unwrap())
}

/// A successful answer's values, in order.
async fn values(app: &TestApp, path: &str) -> Vec<Value> {
    let (status, body) = get(app, path, Some(&app.read)).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body.as_array()
        .unwrap()
        .iter()
        .map(|row| row["value"].clone())
        .collect()
}

fn metrics(target: &str, query: &str) -> String {
    format!("/api/v4/{target}/dora/metrics?{query}")
}

const JAN: &str = "start_date=2025-01-01&end_date=2025-01-05";

async fn metric_values_on_a_hand_built_dataset() {
    let app = spawn_app().await;
    seed(&app).await;
    let shop = "projects/acme%2Fshop";

    // Deployment frequency: a count per day; per day of the range for monthly and all.
    let (status, body) = get(
        &app,
        &metrics(shop, &format!("metric=deployment_frequency&{JAN}")),
        Some(&app.read),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!([
            {"date": "2025-01-01", "value": 1}, {"date": "2025-01-02", "value": 2},
            {"date": "2025-01-03", "value": 0}, {"date": "2025-01-04", "value": 0},
            {"date": "2025-01-05", "value": 1},
        ])
    );
    let query = format!("metric=deployment_frequency&{JAN}&interval=monthly");
    let (_, monthly) = get(&app, &metrics(shop, &query), Some(&app.read)).await;
    assert_eq!(monthly, json!([{"date": "2025-01-01", "value": 0.8}]));
    let query = format!("metric=deployment_frequency&{JAN}&interval=all");
    let (_, all) = get(&app, &metrics(shop, &query), Some(&app.read)).await;
    assert_eq!(all, json!([{"date": null, "value": 0.8}]));

    // Monthly buckets are dated the 1st and divide by their days inside the range.
    let query =
        "metric=deployment_frequency&start_date=2024-12-30&end_date=2025-01-05&interval=monthly";
    let (_, months) = get(&app, &metrics(shop, query), Some(&app.read)).await;
    assert_eq!(
        months,
        json!([{"date": "2024-12-01", "value": 0.0}, {"date": "2025-01-01", "value": 0.8}])
    );

    // Lead time: the exact median over every commit of the bucket (not of daily medians).
    let query = format!("metric=lead_time_for_changes&{JAN}");
    assert_eq!(
        values(&app, &metrics(shop, &query)).await,
        [
            Value::Null,
            json!(7200.0),
            Value::Null,
            Value::Null,
            json!(86400.0)
        ]
    );
    let query = format!("metric=lead_time_for_changes&{JAN}&interval=all");
    assert_eq!(values(&app, &metrics(shop, &query)).await, [json!(10800.0)]);

    // Time to restore: the failure resolved on 01-05 took 90 minutes.
    let query = format!("metric=time_to_restore_service&{JAN}");
    let restore = values(&app, &metrics(shop, &query)).await;
    assert_eq!(restore[4], json!(5400.0));
    assert!(restore[..4].iter().all(Value::is_null), "{restore:?}");

    // Change failure rate: D3 failed; null on days without deployments.
    let query = format!("metric=change_failure_rate&{JAN}");
    assert_eq!(
        values(&app, &metrics(shop, &query)).await,
        [json!(0.0), json!(0.0), Value::Null, Value::Null, json!(1.0)]
    );
    let query = format!("metric=change_failure_rate&{JAN}&interval=all");
    assert_eq!(values(&app, &metrics(shop, &query)).await, [json!(0.25)]);

    // The same project by numeric id.
    let frequency = format!("metric=deployment_frequency&{JAN}");
    let expected = values(&app, &metrics(shop, &frequency)).await;
    let by_id = format!("projects/{}", numeric_id("project", "acme/shop"));
    assert_eq!(values(&app, &metrics(&by_id, &frequency)).await, expected);

    // Groups, nested: acme holds acme/shop and acme/platform/api; acme/platform only the latter.
    let acme = [1, 2, 1, 0, 1].map(|n| json!(n));
    assert_eq!(
        values(&app, &metrics("groups/acme", &frequency)).await,
        acme
    );
    let group_id = format!("groups/{}", numeric_id("group", "acme"));
    assert_eq!(values(&app, &metrics(&group_id, &frequency)).await, acme);
    assert_eq!(
        values(&app, &metrics("groups/acme%2Fplatform", &frequency)).await,
        [0, 0, 1, 0, 0].map(|n| json!(n))
    );
    let query = format!("metric=change_failure_rate&{JAN}&interval=all");
    assert_eq!(
        values(&app, &metrics("groups/acme", &query)).await,
        [json!(0.2)]
    );
    let query = format!("metric=time_to_restore_service&{JAN}&interval=all");
    assert_eq!(
        values(&app, &metrics("groups/acme", &query)).await,
        [json!(5400.0)]
    );
    // A deployment without git is the project named like its service; the project path is no
    // group, and a group is no project.
    assert_eq!(
        values(&app, &metrics("projects/billing", &frequency)).await,
        [0, 0, 0, 1, 0].map(|n| json!(n))
    );
    for (target, message) in [
        ("groups/acme%2Fshop", "404 Group Not Found"),
        ("projects/acme", "404 Project Not Found"),
        ("projects/acme%2Fplatform", "404 Project Not Found"),
    ] {
        let (status, body) = get(&app, &metrics(target, &frequency), Some(&app.read)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{target}");
        assert_eq!(body, json!({"message": message}), "{target}");
    }
}

async fn every_environment_tier_encoding() {
    let app = spawn_app().await;
    seed(&app).await;
    let frequency = |tiers: &str| {
        metrics(
            "projects/acme%2Fshop",
            &format!("metric=deployment_frequency&{JAN}&{tiers}"),
        )
    };
    let counts = |list: [u64; 5]| list.map(|n| json!(n)).to_vec();
    // `nonprod` is staging (GitLab's substring guess would say production), and the
    // `deployment_tier:` tag wins over the env name `production`.
    assert_eq!(
        values(&app, &frequency("environment_tiers=staging")).await,
        counts([0, 1, 1, 0, 0])
    );
    assert_eq!(
        values(&app, &frequency("environment_tiers=testing")).await,
        counts([0, 0, 0, 1, 0])
    );
    assert_eq!(
        values(&app, &frequency("environment_tiers=production")).await,
        counts([1, 2, 0, 0, 1])
    );
    let both = counts([1, 3, 1, 0, 1]);
    for tiers in [
        "environment_tiers[]=staging&environment_tiers[]=production",
        "environment_tiers%5B%5D=staging&environment_tiers%5B%5D=production",
        "environment_tiers=staging&environment_tiers=production",
        "environment_tiers=staging,production",
        "environment_tiers=staging%2Cproduction",
        "environment_tier=staging&environment_tiers=production",
    ] {
        assert_eq!(values(&app, &frequency(tiers)).await, both, "{tiers}");
    }
    // The deprecated single tier alone replaces the default.
    assert_eq!(
        values(&app, &frequency("environment_tier=testing")).await,
        counts([0, 0, 0, 1, 0])
    );
    let every = "environment_tiers[]=production&environment_tiers[]=staging&\
                 environment_tiers[]=testing&environment_tiers[]=development&\
                 environment_tiers[]=other";
    assert_eq!(
        values(&app, &frequency(every)).await,
        counts([1, 3, 1, 1, 1])
    );
    for tiers in [
        "environment_tiers=prod",
        "environment_tiers[]=production&environment_tiers[]=moon",
        "environment_tiers=",
        "environment_tier=Production",
    ] {
        let (status, body) = get(&app, &frequency(tiers), Some(&app.read)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{tiers}");
        assert_eq!(
            body,
            json!({"message": "The environment tiers must be from production, staging, testing, development, other."}),
            "{tiers}"
        );
    }
}

async fn validation_errors_and_defaults() {
    let app = spawn_app().await;
    seed(&app).await;
    let shop = "projects/acme%2Fshop";
    let cases: Vec<(String, StatusCode, Value)> = vec![
        (
            metrics(shop, JAN),
            StatusCode::BAD_REQUEST,
            json!({"error": "metric is missing"}),
        ),
        (
            metrics(shop, &format!("metric=deployments&{JAN}")),
            StatusCode::BAD_REQUEST,
            json!({"error": "metric does not have a valid value"}),
        ),
        (
            metrics(shop, "metric=deployment_frequency&start_date=2025-13-01"),
            StatusCode::BAD_REQUEST,
            json!({"error": "start_date is invalid"}),
        ),
        (
            metrics(shop, "metric=deployment_frequency&end_date=tomorrow"),
            StatusCode::BAD_REQUEST,
            json!({"error": "end_date is invalid"}),
        ),
        (
            metrics(
                shop,
                "metric=deployment_frequency&start_date=2025-01-01&end_date=2025-07-01",
            ),
            StatusCode::BAD_REQUEST,
            json!({"message": "Date range must be shorter than 180 days."}),
        ),
        (
            metrics(
                shop,
                "metric=deployment_frequency&start_date=2025-01-05&end_date=2025-01-01",
            ),
            StatusCode::BAD_REQUEST,
            json!({"message": "The start date must be earlier than the end date."}),
        ),
        (
            metrics(
                shop,
                "metric=deployment_frequency&start_date=2025-01-05&end_date=2025-01-05",
            ),
            StatusCode::BAD_REQUEST,
            json!({"message": "The start date must be earlier than the end date."}),
        ),
        (
            metrics(
                shop,
                &format!("metric=deployment_frequency&{JAN}&interval=weekly"),
            ),
            StatusCode::BAD_REQUEST,
            json!({"error": "interval does not have a valid value"}),
        ),
        (
            metrics("projects/acme%2Fnope", "metric=deployment_frequency"),
            StatusCode::NOT_FOUND,
            json!({"message": "404 Project Not Found"}),
        ),
        (
            metrics("projects/123", "metric=deployment_frequency"),
            StatusCode::NOT_FOUND,
            json!({"message": "404 Project Not Found"}),
        ),
        (
            metrics("groups/nope", "metric=deployment_frequency"),
            StatusCode::NOT_FOUND,
            json!({"message": "404 Group Not Found"}),
        ),
        (
            "/api/v4/projects/acme%2Fshop/nothing".to_string(),
            StatusCode::NOT_FOUND,
            json!({"error": "404 Not Found"}),
        ),
    ];
    for (path, status, body) in cases {
        assert_eq!(
            get(&app, &path, Some(&app.read)).await,
            (status, body),
            "{path}"
        );
    }

    // 180 days apart is the longest range: 181 daily buckets.
    let longest = "metric=deployment_frequency&start_date=2025-01-01&end_date=2025-06-30";
    let days = values(&app, &metrics(shop, longest)).await;
    assert_eq!(days.len(), 181);
    assert_eq!(days.iter().filter_map(Value::as_u64).sum::<u64>(), 4);

    // Defaults: daily, from 3 months ago to today, production.
    deploy(&app, "fresh", "production", dora_core::time::now(), None).await;
    let (status, body) = get(
        &app,
        &metrics("projects/fresh", "metric=deployment_frequency"),
        Some(&app.read),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rows = body.as_array().unwrap();
    let today: NaiveDate = day_of(dora_core::time::now());
    let start = today.checked_sub_months(Months::new(3)).unwrap();
    assert_eq!(rows[0]["date"], json!(start.to_string()));
    assert_eq!(rows.last().unwrap()["date"], json!(today.to_string()));
    assert_eq!(rows.len() as i64, (today - start).num_days() + 1);
    let total: u64 = rows.iter().filter_map(|r| r["value"].as_u64()).sum();
    assert_eq!(total, 1);
    // Only the end given: 3 months before today is after it (a backward range passes GitLab's
    // length check and fails the order check).
    let (status, body) = get(
        &app,
        &metrics(
            "projects/fresh",
            "metric=deployment_frequency&end_date=2020-01-01",
        ),
        Some(&app.read),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"message": "The start date must be earlier than the end date."})
    );
    // Only the start given, long ago: the range to today is too long.
    let (status, body) = get(
        &app,
        &metrics(
            "projects/fresh",
            "metric=deployment_frequency&start_date=2020-01-01",
        ),
        Some(&app.read),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"message": "Date range must be shorter than 180 days."})
    );
}

fn legacy(target: &str, query: &str) -> String {
    format!("/api/v4/{target}/analytics/deployment_frequency?{query}")
}

async fn legacy_deployment_frequency() {
    let app = spawn_app().await;
    seed(&app).await;
    let shop = "projects/acme%2Fshop";
    let range = "environment=production&from=2025-01-01T00:00:00Z&to=2025-01-06T00:00:00Z";
    // By env name, whatever its tier: shop-canary's `production` counts here.
    let (status, body) = get(&app, &legacy(shop, range), Some(&app.read)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!([{"from": "2025-01-01", "to": "2025-01-06", "value": 5}])
    );
    let (_, daily) = get(
        &app,
        &legacy(shop, &format!("{range}&interval=daily")),
        Some(&app.read),
    )
    .await;
    assert_eq!(
        daily,
        json!([
            {"from": "2025-01-01", "to": "2025-01-02", "value": 1},
            {"from": "2025-01-02", "to": "2025-01-03", "value": 2},
            {"from": "2025-01-04", "to": "2025-01-05", "value": 1},
            {"from": "2025-01-05", "to": "2025-01-06", "value": 1},
        ])
    );
    let (_, monthly) = get(
        &app,
        &legacy(shop, &format!("{range}&interval=monthly")),
        Some(&app.read),
    )
    .await;
    assert_eq!(
        monthly,
        json!([{"from": "2025-01-01", "to": "2025-02-01", "value": 5}])
    );
    // `from` inclusive, `to` exclusive: D1 finished at 12:00 on 01-02.
    let edge =
        "environment=production&from=2025-01-02T12:00:00Z&to=2025-01-05T10:00:00Z&interval=daily";
    assert_eq!(
        get(&app, &legacy(shop, edge), Some(&app.read)).await.1,
        json!([
            {"from": "2025-01-02", "to": "2025-01-03", "value": 2},
            {"from": "2025-01-04", "to": "2025-01-05", "value": 1},
        ])
    );
    // The group variant (GitLab never shipped it), nested groups and ids.
    let nested = "environment=prod-eu&from=2025-01-01&to=2025-01-06";
    assert_eq!(
        get(
            &app,
            &legacy("groups/acme%2Fplatform", nested),
            Some(&app.read)
        )
        .await
        .1[0]["value"],
        json!(1)
    );
    let acme = format!("groups/{}", numeric_id("group", "acme"));
    assert_eq!(
        get(&app, &legacy(&acme, range), Some(&app.read)).await.1[0]["value"],
        json!(5)
    );
    // `to` defaults to now, so a `from` long ago is too far from it.
    let (status, body) = get(
        &app,
        &legacy("projects/billing", "environment=production&from=2025-01-01"),
        Some(&app.read),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // 91 whole days at most between from and to.
    let ok = [
        "environment=production&from=2025-01-01T00:00:00Z&to=2025-04-02T00:00:00Z",
        "environment=production&from=2025-01-01T00:00:00Z&to=2025-04-02T23:59:59Z",
        "environment=production&from=2025-01-01T00:00:00Z&to=2025-01-01T00:00:00Z",
    ];
    for query in ok {
        let (status, body) = get(&app, &legacy(shop, query), Some(&app.read)).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
    }
    let errors = [
        (
            "environment=production&from=2025-01-01T00:00:00Z&to=2025-04-03T00:00:00Z",
            json!({"message": "400 Bad request - Date range is greater than 91 days"}),
        ),
        (
            "environment=production&from=2025-01-02T00:00:00Z&to=2025-01-01T23:59:59Z",
            json!({"message": "400 Bad request - Parameter `to` is before the `from` date"}),
        ),
        (
            "from=2025-01-01",
            json!({"error": "environment is missing"}),
        ),
        (
            "environment=production",
            json!({"error": "from is missing"}),
        ),
        (
            "environment=production&from=2025-01-01&to=later",
            json!({"error": "to is invalid"}),
        ),
        (
            "environment=production&from=2025-01-01&interval=weekly",
            json!({"error": "interval does not have a valid value"}),
        ),
    ];
    for (query, body) in errors {
        assert_eq!(
            get(&app, &legacy(shop, query), Some(&app.read)).await,
            (StatusCode::BAD_REQUEST, body),
            "{query}"
        );
    }
    let (status, body) = get(&app, &legacy("groups/nope", range), Some(&app.read)).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            json!({"message": "404 Group Not Found"})
        )
    );
    let recent = format!(
        "environment=production&from={}",
        rfc3339(dora_core::time::now() - 86_400_000_000_000)
    );
    deploy(&app, "fresh", "production", dora_core::time::now(), None).await;
    let (status, body) = get(&app, &legacy("projects/fresh", &recent), Some(&app.read)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body[0]["value"], json!(1));
}

async fn restricted_token(app: &TestApp, scopes: Vec<Scope>, restrictions: &[&str]) -> String {
    let restrictions = restrictions
        .iter()
        .map(|r| Restriction::parse(r).unwrap())
        .collect();
    let issued = issue_token("restricted".into(), scopes, restrictions, None);
    app.store.create_token(issued.record.clone()).await.unwrap();
    // The restrictions survive the store.
    assert_eq!(
        app.store.find_token(&issued.record.id).await.unwrap(),
        Some(issued.record)
    );
    issued.token
}

async fn the_token_matrix() {
    let app = spawn_app().await;
    seed(&app).await;
    let frequency = "metric=deployment_frequency&start_date=2025-01-01&end_date=2025-01-05";
    let unauthorized = (
        StatusCode::UNAUTHORIZED,
        json!({"message": "401 Unauthorized"}),
    );
    for path in [
        metrics("projects/acme%2Fshop", frequency),
        metrics("groups/nope", frequency),
        legacy(
            "projects/acme%2Fshop",
            "environment=production&from=2025-01-01",
        ),
        legacy("groups/acme", "environment=production"),
    ] {
        assert_eq!(get(&app, &path, None).await, unauthorized, "{path}");
        assert_eq!(
            get(&app, &path, Some("dora_not-a-real-token")).await,
            unauthorized,
            "{path}"
        );
    }
    let shop = metrics("projects/acme%2Fshop", frequency);
    assert_eq!(
        get(&app, &shop, Some(&app.write)).await,
        (StatusCode::FORBIDDEN, json!({"message": "403 Forbidden"}))
    );
    // Every way a token arrives.
    let bearer = format!("Bearer {}", app.read);
    for header in [
        ("PRIVATE-TOKEN", app.read.as_str()),
        ("DD-API-KEY", app.read.as_str()),
        ("Authorization", bearer.as_str()),
    ] {
        assert_eq!(get_with(&app, &shop, Some(header)).await.0, StatusCode::OK);
    }
    let with_param = format!("{shop}&private_token={}", app.read);
    assert_eq!(get(&app, &with_param, None).await.0, StatusCode::OK);

    let project_token = restricted_token(&app, vec![Scope::Read], &["project:acme/shop"]).await;
    let platform_token = restricted_token(&app, vec![Scope::Read], &["group:acme/platform"]).await;
    let acme_token = restricted_token(&app, vec![Scope::Read], &["group:acme"]).await;
    let both = restricted_token(
        &app,
        vec![Scope::Admin],
        &["project:billing", "group:acme/platform"],
    )
    .await;
    // (token, target, reachable)
    let matrix = [
        (&project_token, "projects/acme%2Fshop", true),
        (&project_token, "projects/acme%2Fplatform%2Fapi", false),
        (&project_token, "projects/billing", false),
        (&project_token, "groups/acme", false),
        (&platform_token, "projects/acme%2Fplatform%2Fapi", true),
        (&platform_token, "groups/acme%2Fplatform", true),
        (&platform_token, "groups/acme", false),
        (&platform_token, "projects/acme%2Fshop", false),
        (&acme_token, "groups/acme", true),
        (&acme_token, "groups/acme%2Fplatform", true),
        (&acme_token, "projects/acme%2Fshop", true),
        (&acme_token, "projects/billing", false),
        (&both, "projects/billing", true),
        (&both, "projects/acme%2Fplatform%2Fapi", true),
        (&both, "projects/acme%2Fshop", false),
    ];
    for (token, target, reachable) in matrix {
        let not_found = if target.starts_with("projects") {
            "404 Project Not Found"
        } else {
            "404 Group Not Found"
        };
        for path in [
            metrics(target, frequency),
            legacy(
                target,
                "environment=production&from=2025-01-01&to=2025-01-06",
            ),
        ] {
            let (status, body) = get(&app, &path, Some(token)).await;
            if reachable {
                assert_eq!(status, StatusCode::OK, "{path}: {body}");
            } else {
                assert_eq!(
                    (status, body),
                    (StatusCode::NOT_FOUND, json!({"message": not_found})),
                    "{path}"
                );
            }
        }
    }
    // By numeric id as well, and through the `private_token` query parameter.
    let api_id = numeric_id("project", "acme/platform/api");
    let path = format!(
        "{}&private_token={project_token}",
        metrics(&format!("projects/{api_id}"), frequency)
    );
    assert_eq!(get(&app, &path, None).await.0, StatusCode::NOT_FOUND);
    let path = format!("{shop}&private_token={project_token}");
    assert_eq!(get(&app, &path, None).await.0, StatusCode::OK);
    // Surfaces that do not check projects refuse restricted tokens, even admin ones.
    for token in [&project_token, &both] {
        let list = json!({"data": {"type": "dora_deployments_list_request", "attributes": {}}});
        let reply = app
            .call(
                Method::POST,
                "/api/v2/dora/deployments",
                Some(token),
                Some(list),
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
    }
    // Tokens never pool their reach: the first valid credential alone counts. Here that is the
    // unrestricted but write-only DD-API-KEY (tried before PRIVATE-TOKEN), which may not read.
    let request = app
        .client
        .get(format!(
            "{}{}",
            app.base,
            metrics("projects/acme%2Fplatform%2Fapi", frequency)
        ))
        .header("PRIVATE-TOKEN", &project_token)
        .header("DD-API-KEY", &app.write)
        .send()
        .await
        .unwrap();
    assert_eq!(request.status(), StatusCode::FORBIDDEN);
}
